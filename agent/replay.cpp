#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agent/commands.h"
#include "agent/decode.h"
#include "rules/engine.h"

namespace vigil::agent {
namespace {

void Print(std::vector<rules::Event>* events, std::ostream& out) {
  for (const auto& e : *events) out << rules::ToJson(e) << '\n';
  events->clear();
}

}  // namespace

int Replay(const config::Config& config, std::istream& in, std::ostream& out) {
  rules::LoadResult loaded = rules::LoadRules(config.rule_paths);
  if (!loaded.diagnostics.empty()) {
    for (const auto& d : loaded.diagnostics) std::cerr << d.ToString() << '\n';
    return kExitInvalid;
  }
  rules::Engine engine(config.agent.id, loaded.rules);
  // Lines without `received_at` have no processing-time clock to judge "future" against:
  // their own event time drives the clock (SPEC §6), so that check is off for them.
  config::MqttConfig unclocked = config.mqtt;
  unclocked.max_clock_skew = Millis(std::numeric_limits<std::int64_t>::max() / 4);
  Decoder clocked_decoder(config.mqtt);
  Decoder unclocked_decoder(unclocked);

  std::vector<rules::Event> events;
  Decoded decoded;
  Millis clock{0};
  std::string line;
  std::size_t line_no = 0;
  std::size_t bad_lines = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json msg = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!msg.is_object() || !msg.contains("topic") || !msg["topic"].is_string() ||
        !msg.contains("payload")) {
      ++bad_lines;
      std::cerr << "replay: line " << line_no
                << ": expected {\"topic\": \"…\", \"payload\": …, \"received_at\": ms}\n";
      continue;
    }
    std::optional<Millis> received_at;
    if (auto it = msg.find("received_at"); it != msg.end() && !it->is_null()) {
      if (!it->is_number()) {
        ++bad_lines;
        std::cerr << "replay: line " << line_no << ": received_at must be a number (ms)\n";
        continue;
      }
      received_at = Millis(it->get<std::int64_t>());
    }
    const auto& payload = msg["payload"];
    const std::string raw = payload.is_string() ? payload.get<std::string>() : payload.dump();
    decoded.readings.clear();
    decoded.rejects.clear();
    if (received_at) {
      clock = *received_at;
      clocked_decoder.Decode(msg["topic"].get<std::string>(), raw, clock, &decoded);
    } else {
      unclocked_decoder.Decode(msg["topic"].get<std::string>(), raw, clock, &decoded);
    }
    for (const auto& reject : decoded.rejects) {
      std::cerr << "replay: line " << line_no << ": rejected (" << ReasonName(reject.reason)
                << "): " << reject.detail << '\n';
    }
    for (const auto& reading : decoded.readings) {
      Millis now = received_at ? *received_at : std::max(clock, reading.time);
      if (!received_at) clock = now;
      engine.Process(reading, now, &events);
    }
    engine.Advance(clock, &events);
    Print(&events, out);
  }
  engine.Finish(&events);
  Print(&events, out);
  out.flush();
  if (bad_lines > 0) std::cerr << "replay: skipped " << bad_lines << " malformed line(s)\n";
  return kExitOk;
}

}  // namespace vigil::agent
