// The floor for any MQTT client here: a Paho subscriber that only counts messages.
//   count_subscriber URI TOPIC QOS N  → exits after N messages (or 120 s), printing the count.

#include <mqtt/async_client.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: count_subscriber URI TOPIC QOS N\n");
    return 2;
  }
  const long want = std::atol(argv[4]);
  std::atomic<long> count{0};
  mqtt::async_client client(argv[1], "vigil-bench-counter");
  client.set_message_callback([&](mqtt::const_message_ptr) { ++count; });
  auto opts = mqtt::connect_options_builder().clean_session(true).finalize();
  client.connect(opts)->wait();
  client.subscribe(argv[2], std::atoi(argv[3]))->wait();
  std::printf("subscribed\n");
  std::fflush(stdout);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (count.load() < want && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::printf("%ld\n", count.load());
  client.disconnect()->wait();
  return 0;
}
