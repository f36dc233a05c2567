#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace vigil::agent {

// Watches the rule files and folders (inotify) and calls `on_change` once the changes have
// settled for 500 ms (an editor's save is several events). Owns one thread; Stop() joins it.
// Paths that cannot be watched are logged and skipped: SIGHUP still reloads.
class RuleWatcher {
 public:
  RuleWatcher(std::vector<std::string> paths, std::function<void()> on_change);
  ~RuleWatcher();
  RuleWatcher(const RuleWatcher&) = delete;
  RuleWatcher& operator=(const RuleWatcher&) = delete;

  void Start();
  void Stop();

 private:
  void Run();

  std::vector<std::string> paths_;
  std::function<void()> on_change_;
  int fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  std::thread thread_;
};

}  // namespace vigil::agent
