// The floor for any MQTT client here: a Paho subscriber that only counts messages.
//   count_subscriber URI TOPIC QOS N  → exits after N messages, 2 s after the last message, or
//   after 120 s, printing the count, the seconds from the first message to the last, and its
//   peak RSS in KiB (VmHWM: the kernel's rusage of a child also counts the parent's RSS before
//   exec, here the Python harness's).

#include <mqtt/async_client.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

namespace {

long PeakRssKib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: count_subscriber URI TOPIC QOS N\n");
    return 2;
  }
  const long want = std::atol(argv[4]);
  using Clock = std::chrono::steady_clock;
  std::atomic<long> count{0};
  std::atomic<Clock::rep> first{0};
  std::atomic<Clock::rep> last{0};
  mqtt::async_client client(argv[1], "vigil-bench-counter");
  client.set_message_callback([&](mqtt::const_message_ptr) {
    const auto now = Clock::now().time_since_epoch().count();
    if (count.fetch_add(1) == 0) first = now;
    last = now;
  });
  auto opts = mqtt::connect_options_builder().clean_session(true).finalize();
  client.connect(opts)->wait();
  client.subscribe(argv[2], std::atoi(argv[3]))->wait();
  std::printf("subscribed\n");
  std::fflush(stdout);
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  const auto idle = std::chrono::duration_cast<Clock::duration>(std::chrono::seconds(2)).count();
  while (count.load() < want && Clock::now() < deadline &&
         (count.load() == 0 || Clock::now().time_since_epoch().count() - last.load() < idle)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const double span = std::chrono::duration<double>(Clock::duration(last - first)).count();
  std::printf("%ld %.3f %ld\n", count.load(), span, PeakRssKib());
  client.disconnect()->wait();
  return 0;
}
