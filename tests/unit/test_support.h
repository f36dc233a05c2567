#pragma once

// What the unit tests that use real files and threads share: a folder of their own and a
// bounded wait on a condition.

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

namespace vigil {

// A fresh folder for the running test: <tmp>/<prefix>_<pid>_<test name>, emptied first.
inline std::filesystem::path TestDir(const std::string& prefix) {
  auto dir = std::filesystem::temp_directory_path() /
             (prefix + "_" + std::to_string(::getpid()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  return dir;
}

// Polls `condition` every 5 ms until it holds or `limit` has passed; returns its last value.
template <typename F>
bool WaitFor(F condition, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return condition();
}

}  // namespace vigil
