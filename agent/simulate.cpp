#include <mqtt/async_client.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <deque>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "agent/commands.h"
#include "agent/pipeline.h"
#include "agent/signal.h"
#include "config/log.h"

namespace vigil::agent {
namespace {

std::atomic<bool> g_stop{false};
extern "C" void OnStopSignal(int) { g_stop = true; }

constexpr std::size_t kMaxInFlight = 2000;

// Splits "a/{x}/#" into levels; fills captures: device → the device name, metric → metric,
// anything else → "sim"; a final `#` is dropped.
std::string MakeTopic(const config::TopicTemplate& tmpl, const std::string& device,
                      const std::string& metric) {
  std::string out;
  std::stringstream levels(tmpl.text());
  std::string level;
  bool first = true;
  while (std::getline(levels, level, '/')) {
    if (level == "#") break;
    if (!first) out += '/';
    first = false;
    if (level == "{device}") {
      out += device;
    } else if (level == "{metric}") {
      out += metric;
    } else if (level == "+" || (level.size() > 2 && level.front() == '{')) {
      out += "sim";
    } else {
      out += level;
    }
  }
  return out;
}

void SetPath(nlohmann::json& obj, const std::string& path, nlohmann::json value) {
  nlohmann::json* at = &obj;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? dot : dot - start);
    if (dot == std::string::npos) {
      (*at)[part] = std::move(value);
      return;
    }
    at = &(*at)[part];
    start = dot + 1;
  }
}

std::string MakePayload(const config::PayloadMapping& mapping, double value, Millis now) {
  if (mapping.format == config::PayloadMapping::Format::kNumber) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", value);
    return buf;
  }
  nlohmann::json obj = nlohmann::json::object();
  const double rounded = std::round(value * 100) / 100;
  if (mapping.metrics.empty()) {
    SetPath(obj, mapping.value, rounded);
  } else {
    for (const auto& m : mapping.metrics) SetPath(obj, m, rounded);
  }
  if (!mapping.time.empty()) {
    using config::TimeUnit;
    const auto ms = now.count();
    switch (mapping.time_unit.value_or(TimeUnit::kMillis)) {
      case TimeUnit::kSeconds:
        SetPath(obj, mapping.time, static_cast<double>(ms) / 1000.0);
        break;
      case TimeUnit::kMillis:
        SetPath(obj, mapping.time, ms);
        break;
      case TimeUnit::kMicros:
        SetPath(obj, mapping.time, ms * 1000);
        break;
      case TimeUnit::kNanos:
        SetPath(obj, mapping.time, ms * 1'000'000);
        break;
      case TimeUnit::kRfc3339:
        SetPath(obj, mapping.time, config::FormatRfc3339(now));
        break;
    }
  }
  return obj.dump();
}

}  // namespace

int Simulate(const config::Config& config, const SimulateOptions& options) {
  if (config.mqtt.subscriptions.empty()) {
    std::cerr << "simulate: the config has no mqtt.subscriptions to publish to\n";
    return kExitInvalid;
  }
  const config::Subscription& sub = config.mqtt.subscriptions.front();
  Signal signal(options.devices, options.seed, options.anomalies, Now());
  std::size_t labels_written = 0;
  std::FILE* labels = nullptr;
  if (!options.labels.empty()) {
    labels = std::fopen(options.labels.c_str(), "w");
    if (labels == nullptr) {
      std::cerr << "simulate: cannot write " << options.labels << '\n';
      return kExitInvalid;
    }
  }
  const std::string base = sub.metric.empty() ? "temperature" : sub.metric;
  std::vector<std::string> metrics;
  metrics.reserve(static_cast<std::size_t>(std::max(options.metrics, 0)));
  for (int i = 0; i < options.metrics; ++i) {
    metrics.push_back(options.metrics == 1 ? base : base + "_" + std::to_string(i));
  }

  std::signal(SIGINT, OnStopSignal);
  std::signal(SIGTERM, OnStopSignal);

  // Room in Paho's command queue for every publish in flight (its default is 100).
  mqtt::async_client client(config.mqtt.uri, config.mqtt.client_id + "-simulate",
                            static_cast<int>(kMaxInFlight) + 100, nullptr);
  auto opts =
      mqtt::connect_options_builder().clean_session(true).connect_timeout(std::chrono::seconds(10));
  if (!config.mqtt.username.empty()) opts.user_name(config.mqtt.username);
  if (!config.mqtt.password.empty()) opts.password(config.mqtt.password);
  try {
    client.connect(opts.finalize())->wait();
  } catch (const mqtt::exception& e) {
    std::cerr << "simulate: cannot connect to " << config.mqtt.uri << ": " << e.what() << '\n';
    return kExitFatal;
  }

  const double rate = options.rate > 0 ? options.rate : 10;
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t turn = 0;  // whose reading is next
  std::deque<mqtt::delivery_token_ptr> in_flight;
  std::uint64_t published = 0;
  std::uint64_t failed = 0;
  while (!g_stop) {
    const double elapsed_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (options.seconds && elapsed_s >= *options.seconds) break;
    const auto due = static_cast<std::uint64_t>(elapsed_s * rate) + 1;
    if (published >= due) {
      std::this_thread::sleep_for(std::chrono::microseconds(
          static_cast<std::int64_t>(1e6 * (static_cast<double>(published) / rate - elapsed_s)) +
          50));
      continue;
    }
    // Every device's first metric, then every device's second, …
    const int device = static_cast<int>(turn % static_cast<std::uint64_t>(signal.devices()));
    const std::string& metric =
        metrics[(turn++ / static_cast<std::uint64_t>(signal.devices())) % metrics.size()];
    const Millis now = Now();
    const std::optional<double> value = signal.Value(device, now);
    for (; labels != nullptr && labels_written < signal.labels().size(); ++labels_written) {
      const Signal::Label& l = signal.labels()[labels_written];
      std::fprintf(labels, "{\"device\":\"%s\",\"kind\":\"%s\",\"start\":%lld,\"end\":%lld}\n",
                   l.device.c_str(), l.kind.c_str(), static_cast<long long>(l.start.count()),
                   static_cast<long long>(l.end.count()));
      std::fflush(labels);
    }
    if (!value) continue;  // a silent device
    try {
      auto msg = mqtt::make_message(MakeTopic(sub.topic, signal.name(device), metric),
                                    MakePayload(sub.payload, *value, now), options.qos, false);
      in_flight.push_back(client.publish(msg));
      while (in_flight.size() > kMaxInFlight) {
        in_flight.front()->wait();
        in_flight.pop_front();
      }
      ++published;
    } catch (const mqtt::exception& e) {
      ++failed;
      log::WriteLimited(log::Level::kWarning, "simulate", std::string("simulate: ") + e.what(), 5);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (failed > 100 && published == 0) break;
    }
  }
  try {
    for (auto& tok : in_flight) tok->wait_for(std::chrono::seconds(5));
    client.disconnect()->wait_for(std::chrono::seconds(5));
  } catch (const mqtt::exception& e) {
    std::cerr << "simulate: " << e.what() << '\n';
  }
  if (labels != nullptr) std::fclose(labels);
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("published %llu readings in %.1f s (%.0f/s)\n",
              static_cast<unsigned long long>(published), took,
              took > 0 ? static_cast<double>(published) / took : 0.0);
  return failed > 0 && published == 0 ? kExitFatal : kExitOk;
}

}  // namespace vigil::agent
