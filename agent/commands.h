#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>

#include "config/config.h"

namespace vigil::agent {

// Exit codes shared by the commands.
constexpr int kExitOk = 0;
constexpr int kExitInvalid = 1;     // check/replay: invalid config or rules
constexpr int kExitUsage = 2;       // bad command line
constexpr int kExitNotRunning = 3;  // status: no daemon answers
constexpr int kExitConfig = 78;     // run: invalid config at start (EX_CONFIG)
constexpr int kExitFatal = 1;       // run: cannot start (state directory, …)

// `vigil run`: the daemon in the foreground until SIGTERM/SIGINT (SPEC §1).
int RunDaemon(const config::Config& config);

// `vigil replay` (SPEC §1, §6): evaluates the configured rules over recorded messages read
// from `in`, one JSON object a line, and writes every event to `out`, one JSON line each.
// Malformed lines are reported on stderr with their line number and skipped.
int Replay(const config::Config& config, std::istream& in, std::ostream& out);
// `vigil replay --journal [--since D]`: the same over the journal's messages (all, or those
// received in the last D), each with its recorded arrival time as the clock.
int ReplayJournal(const config::Config& config, std::optional<Millis> since, std::ostream& out);

struct SimulateOptions {
  int devices = 10;
  int metrics = 1;                // --metrics N: each device publishes N metrics in turn
  double rate = 10;               // readings per second, all devices together
  std::optional<double> seconds;  // unset: until SIGINT/SIGTERM
  int qos = 1;
  std::uint64_t seed = 1;
  bool anomalies = false;  // --anomalies: inject labelled anomalies (agent/signal.h)
  std::string labels;      // --labels FILE: write them, one JSON object a line
};
// `vigil simulate` (SPEC §1): publishes synthetic readings to the configured broker.
int Simulate(const config::Config& config, const SimulateOptions& options);

// `vigil status` (SPEC §1): asks the daemon's HTTP endpoint; 3 when none answers.
int ShowStatus(const config::Config& config);

// `vigil outbox list|retry|purge [--dead]` (SPEC §1).
int Outbox(const config::Config& config, const std::string& action, bool dead);

}  // namespace vigil::agent
