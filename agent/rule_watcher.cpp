#include "agent/rule_watcher.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "config/log.h"

namespace vigil::agent {
namespace {

constexpr int kSettleMs = 500;
constexpr std::uint32_t kEvents =
    IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_DELETE_SELF;

}  // namespace

RuleWatcher::RuleWatcher(std::vector<std::string> paths, std::function<void()> on_change,
                         std::string what)
    : paths_(std::move(paths)), on_change_(std::move(on_change)), what_(std::move(what)) {}

RuleWatcher::~RuleWatcher() { Stop(); }

void RuleWatcher::Start() {
  fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0 || pipe2(stop_pipe_, O_CLOEXEC) != 0) {
    std::string message = what_ + ": cannot watch " + what_ + " files (";
    message += std::strerror(errno);
    message += "); reload with SIGHUP";
    log::Warning(message);
    return;
  }
  std::set<int> whole_folders;
  for (const auto& path : paths_) {
    // A file is watched through its folder, so an editor's rename-over-save is seen too.
    std::error_code ec;
    const bool folder = std::filesystem::is_directory(path, ec);
    std::filesystem::path dir =
        folder ? std::filesystem::path(path) : std::filesystem::path(path).parent_path();
    const std::string target =
        dir.empty() ? std::filesystem::current_path(ec).string() : dir.string();
    const int wd = inotify_add_watch(fd_, target.c_str(), kEvents);
    if (wd >= 0) {
      // The same folder twice gives the same descriptor: a folder path makes it count whole.
      if (folder) whole_folders.insert(wd);
      auto& names = names_[wd];
      if (!folder) names.insert(std::filesystem::path(path).filename().string());
    } else {
      std::string message = what_ + ": cannot watch ";
      message += target;
      message += ": ";
      message += std::strerror(errno);
      message += "; reload with SIGHUP";
      log::Warning(message);
    }
  }
  for (int wd : whole_folders) names_[wd].clear();
  thread_ = std::thread([this] { Run(); });
}

void RuleWatcher::Stop() {
  if (thread_.joinable()) {
    const char byte = 'x';
    (void)!write(stop_pipe_[1], &byte, 1);
    thread_.join();
  }
  for (int fd : {fd_, stop_pipe_[0], stop_pipe_[1]}) {
    if (fd >= 0) close(fd);
  }
  fd_ = stop_pipe_[0] = stop_pipe_[1] = -1;
}

bool RuleWatcher::Relevant(int wd, std::string_view name) const {
  auto it = names_.find(wd);
  // The queue overflowed (wd -1), or the folder itself went: it may have been anything.
  if (it == names_.end() || name.empty()) return true;
  return it->second.empty() || it->second.count(std::string(name)) > 0;
}

void RuleWatcher::Run() {
  bool pending = false;
  alignas(inotify_event) char buffer[4096];
  while (true) {
    pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    const int ready = poll(fds, 2, pending ? kSettleMs : -1);
    if (ready < 0 && errno != EINTR) return;
    if (fds[1].revents != 0) return;
    if (ready == 0 && pending) {  // settled
      pending = false;
      on_change_();
      continue;
    }
    if (fds[0].revents != 0) {
      ssize_t n = 0;
      while ((n = read(fd_, buffer, sizeof buffer)) > 0) {
        for (std::size_t at = 0; at + sizeof(inotify_event) <= static_cast<std::size_t>(n);) {
          inotify_event event;
          std::memcpy(&event, buffer + at, sizeof event);
          const char* name = buffer + at + sizeof event;
          const std::string_view named(name, event.len > 0 ? strnlen(name, event.len) : 0);
          pending = pending || Relevant(event.wd, named);
          at += sizeof event + event.len;
        }
      }
    }
  }
}

}  // namespace vigil::agent
