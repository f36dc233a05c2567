#include <filesystem>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "agent/commands.h"
#include "agent/decode.h"
#include "agent/drive.h"
#include "agent/pipeline.h"
#include "rules/engine.h"
#include "rules/rule_loader.h"
#include "rules/table_loader.h"
#include "store/journal.h"

namespace vigil::agent {
namespace {

constexpr std::size_t kMaxPayloadDepth = 256;

// Whether `j` nests objects and arrays deeper than `limit` (without recursing itself).
bool NestedDeeperThan(const nlohmann::json& j, std::size_t limit) {
  std::vector<std::pair<const nlohmann::json*, std::size_t>> todo{{&j, 0}};
  while (!todo.empty()) {
    auto [node, depth] = todo.back();
    todo.pop_back();
    if (!node->is_structured()) continue;
    if (depth >= limit) return true;
    for (const auto& child : *node) todo.emplace_back(&child, depth + 1);
  }
  return false;
}

config::MqttConfig Unclocked(config::MqttConfig mqtt) {
  mqtt.max_clock_skew = Millis(std::numeric_limits<std::int64_t>::max() / 4);
  return mqtt;
}

// Drives the engine (agent/drive.h, as the daemon does) over recorded messages, each at its
// recorded arrival time, its timers after each message, printing every event as it is produced.
class Replayer {
 public:
  Replayer(const config::Config& config, const std::shared_ptr<const rules::RuleSet>& rules,
           std::shared_ptr<const rules::Tables> tables, std::ostream& out)
      : engine_(config.agent.id, rules),
        drive_(&engine_),
        unclocked_config_(Unclocked(config.mqtt)),
        clocked_(config.mqtt),
        unclocked_(unclocked_config_),
        out_(out) {
    engine_.SetTables(std::move(tables));
  }

  // One message; `received` is its processing time when known. `where` names it in errors.
  void Feed(const std::string& topic, const std::string& payload, std::optional<Millis> received,
            const std::string& where) {
    Decoded decoded;
    if (received) {
      clock_ = *received;
      clocked_.Decode(topic, payload, clock_, &decoded);
    } else {
      // Without a processing-time clock there is nothing to judge "future" against: the
      // readings' own event time drives the clock (SPEC §6).
      unclocked_.Decode(topic, payload, clock_, &decoded);
    }
    for (const auto& reject : decoded.rejects) {
      std::cerr << "replay: " << where << ": rejected (" << ReasonName(reject.reason)
                << "): " << reject.detail << '\n';
    }
    if (received) {
      drive_.Feed(decoded.readings, clock_, &events_);
    } else {
      for (const auto& reading : decoded.readings) {
        clock_ = std::max(clock_, reading.time);
        drive_.Feed({&reading, 1}, clock_, &events_);
      }
    }
    drive_.Tick(clock_, 0, &events_);
    Print();
  }

  void Finish() {
    engine_.Finish(&events_);
    Print();
    out_.flush();
  }

 private:
  void Print() {
    for (const auto& e : events_) out_ << rules::ToJson(e) << '\n';
    events_.clear();
  }

  rules::Engine engine_;
  Drive drive_;
  config::MqttConfig unclocked_config_;
  Decoder clocked_;
  Decoder unclocked_;
  std::ostream& out_;
  std::vector<rules::Event> events_;
  Millis clock_{0};
};

// The rules and the tables (as they are now: replay reads them once), or null after
// printing every problem.
struct Loaded {
  std::shared_ptr<const rules::RuleSet> rules;
  std::shared_ptr<const rules::Tables> tables;
};
std::optional<Loaded> LoadOrReport(const config::Config& config) {
  rules::LoadResult loaded = rules::LoadRules(config.rule_paths, config.rule_limits);
  for (const auto& d : loaded.diagnostics) std::cerr << d.ToString() << '\n';
  rules::TablesLoadResult tables = rules::LoadTables(config.tables);
  for (const auto& d : tables.diagnostics) std::cerr << d.ToString() << '\n';
  if (!loaded.rules || !tables.tables) return std::nullopt;
  return Loaded{loaded.rules, tables.tables};
}

}  // namespace

int Replay(const config::Config& config, std::istream& in, std::ostream& out) {
  auto loaded = LoadOrReport(config);
  if (!loaded) return kExitInvalid;
  Replayer replayer(config, loaded->rules, loaded->tables, out);
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
      // A time in ms since 1970 (before year 287 000): converting a larger double is UB.
      const double ms = it->is_number() ? it->get<double>() : -1;
      if (!(ms >= 0 && ms <= 9e15)) {
        ++bad_lines;
        std::cerr << "replay: line " << line_no << ": received_at must be a number (ms)\n";
        continue;
      }
      received_at =
          Millis(it->is_number_integer() ? it->get<std::int64_t>() : static_cast<std::int64_t>(ms));
    }
    const auto& payload = msg["payload"];
    if (!payload.is_string() && NestedDeeperThan(payload, kMaxPayloadDepth)) {
      // Turning it back into text recurses once a level: the stack would not last.
      ++bad_lines;
      std::cerr << "replay: line " << line_no << ": payload nested deeper than " << kMaxPayloadDepth
                << " levels\n";
      continue;
    }
    const std::string raw = payload.is_string() ? payload.get<std::string>() : payload.dump();
    replayer.Feed(msg["topic"].get<std::string>(), raw, received_at,
                  "line " + std::to_string(line_no));
  }
  replayer.Finish();
  if (bad_lines > 0) std::cerr << "replay: skipped " << bad_lines << " malformed line(s)\n";
  return kExitOk;
}

int ReplayJournal(const config::Config& config, std::optional<Millis> since, std::ostream& out) {
  auto loaded = LoadOrReport(config);
  if (!loaded) return kExitInvalid;
  const std::string path = (std::filesystem::path(config.agent.state_dir) / "journal.db").string();
  if (!std::filesystem::exists(path)) {
    std::cerr << "replay: no journal at " << path << '\n';
    return kExitInvalid;
  }
  // Read-only: the journal of a running agent is read, never written, migrated or moved.
  auto journal = store::Journal::Open(path, config.store, store::Access::kReadOnly);
  if (!journal.ok()) {
    std::cerr << "replay: cannot open " << path << ": " << journal.error() << '\n';
    return kExitInvalid;
  }
  Replayer replayer(config, loaded->rules, loaded->tables, out);
  const Millis from = since ? Now() - *since : Millis(0);
  Status s = journal.value()->Read(0, from, [&](const store::JournalMessage& m) {
    replayer.Feed(m.topic, m.payload, m.received, "journal #" + std::to_string(m.seq));
    return true;
  });
  replayer.Finish();
  if (!s.ok()) {
    std::cerr << "replay: reading the journal: " << s.message() << '\n';
    return kExitInvalid;
  }
  return kExitOk;
}

}  // namespace vigil::agent
