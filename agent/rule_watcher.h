#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace vigil::agent {

// Watches files and folders (inotify): the rule files and folders, and the reference table
// files. Calls `on_change` once the changes have settled for 500 ms (an editor's save is
// several events). A folder counts any change inside it; a file is watched through its folder
// (so an editor's rename-over-save is seen) and counts only changes that name it. Owns one
// thread, which calls `on_change`; Stop() joins it. Paths that cannot be watched are logged
// (prefixed with `what`, e.g. "rules") and skipped: SIGHUP still reloads.
class RuleWatcher {
 public:
  RuleWatcher(std::vector<std::string> paths, std::function<void()> on_change,
              std::string what = "rules");
  ~RuleWatcher();
  RuleWatcher(const RuleWatcher&) = delete;
  RuleWatcher& operator=(const RuleWatcher&) = delete;

  void Start();
  void Stop();

 private:
  void Run();

  // Whether an event of watch `wd` about `name` ("" for the folder itself) is a change.
  bool Relevant(int wd, std::string_view name) const;

  std::vector<std::string> paths_;
  std::function<void()> on_change_;
  std::string what_;
  // Watch descriptor → the file names that count in that folder; an empty set: every name.
  std::map<int, std::set<std::string>> names_;
  int fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  std::thread thread_;
};

}  // namespace vigil::agent
