// vigil: the command line (SPEC §1). Parses arguments, loads the config, runs a command.

#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/commands.h"
#include "config/config.h"
#include "config/log.h"
#include "rules/engine.h"
#include "rules/rule_loader.h"
#include "rules/table_loader.h"

namespace {

using vigil::agent::kExitInvalid;
using vigil::agent::kExitOk;
using vigil::agent::kExitUsage;

constexpr const char* kDefaultConfig = "/etc/vigil/vigil.json";

constexpr const char* kUsage = R"(usage: vigil COMMAND [--config FILE] [options]

vigil is an IoT edge agent: it reads sensor readings from an MQTT broker, evaluates windowed
rules and anomaly detectors over them, keeps its state in SQLite and forwards alerts and
aggregates upstream.

commands:
  run                      the daemon, in the foreground
  check                    validate the config and every rule and table file; prints
                           "ok: N rules"
  replay [--input FILE|-] [--journal [--since D]]
                           evaluate the rules over recorded messages or the journal; print
                           every event
  simulate [--devices N] [--rate R] [--seconds S] [--qos Q] [--seed K] [--anomalies]
                           publish synthetic sensor readings to the configured broker
  status                   summary of the running daemon
  outbox list|retry|purge [--dead]
                           inspect, retry or purge undelivered events and dead letters

options:
  --config FILE            the config file (default /etc/vigil/vigil.json)
  --version, --help        as usual; `vigil COMMAND --help` for one command
)";

const std::map<std::string, std::string>& CommandHelp() {
  static const std::map<std::string, std::string> kHelp = {
      {"run",
       "usage: vigil run [--config FILE]\n\nRuns the daemon in the foreground until SIGTERM "
       "or SIGINT, then commits its state and\ndrains the uplinks for up to 5 s. SIGHUP, or "
       "a saved rule file, reloads the rules\nand the tables; a saved table file reloads the "
       "tables. Exits 78 with one line why when\nthe config, a rule or a table is invalid.\n"},
      {"check",
       "usage: vigil check [--config FILE]\n\nValidates the config and every rule and table "
       "file it names. Prints `ok: N rules` and exits\n0, or prints every error (one a line, "
       "on stderr) and exits 1.\n"},
      {"replay",
       "usage: vigil replay [--config FILE] [--input FILE|-] [--journal [--since D]]\n\nEvaluates "
       "the configured "
       "rules over recorded messages, one JSON object a line:\n  {\"topic\": \"...\", "
       "\"payload\": <string or JSON value>, \"received_at\": <ms, optional>}\nand prints "
       "every output event, one JSON object a line. Reads stdin without --input or\nwith "
       "`--input -`. Nothing is sent and no state is changed. At the end of the input every\n"
       "open window closes.\nWith --journal it replays the messages kept in the state folder's "
       "journal (those "
       "received\nin the last D with --since), each with its arrival time as the clock.\n"},
      {"simulate",
       "usage: vigil simulate [--config FILE] [--devices N] [--metrics M] [--rate R/s] "
       "[--seconds S]\n       [--qos Q] [--seed K] [--anomalies] [--labels FILE]\n\nPublishes "
       "synthetic "
       "readings (per-device baselines with noise; every fifth device drifts\nup and back over "
       "two minutes) to the configured broker, on topics that match the first\nsubscription. "
       "Defaults: 10 devices, 10 readings/s in all, until interrupted, QoS 1, seed 1.\n"
       "--anomalies injects labelled anomalies (level shift, spike, drift, stuck value, "
       "silence,\nout of range) into the other devices, one every 5 minutes per device after "
       "10 minutes;\n--labels FILE writes them, one JSON object a line. --metrics M (M > 1) "
       "publishes M\nmetrics per device, named <metric>_0 … <metric>_M-1 (the metric of the "
       "subscription,\nor temperature), for N × M series in all. Prints how many "
       "readings it published\nand at what rate.\n"},
      {"status",
       "usage: vigil status [--config FILE]\n\nAsks the running daemon for a summary. Exits "
       "3 when no daemon answers.\n"},
      {"outbox",
       "usage: vigil outbox [--config FILE] list|retry|purge [--dead]\n\nlist: pending "
       "deliveries per uplink (with --dead: dead letters).\nretry: move dead letters back "
       "to pending.\npurge: delete pending deliveries (with --dead: dead letters).\nlist "
       "opens the state database read-only; none of them creates, migrates or moves it.\n"},
  };
  return kHelp;
}

struct Args {
  std::string command;
  std::string config = kDefaultConfig;
  std::map<std::string, std::string> options;  // --name → value ("" for flags)
  std::vector<std::string> positional;
  bool help = false;
};

// Options that take a value; every other --option is a flag.
bool TakesValue(const std::string& name) {
  static const std::vector<std::string> kWithValue = {
      "config", "input", "devices", "metrics", "rate", "seconds", "qos", "seed", "since", "labels"};
  return std::find(kWithValue.begin(), kWithValue.end(), name) != kWithValue.end();
}

std::optional<Args> Parse(int argc, char** argv, std::string* error) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      args.help = true;
    } else if (a.rfind("--", 0) == 0 && a.size() > 2) {
      std::string name = a.substr(2);
      std::string value;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      } else if (TakesValue(name)) {
        if (i + 1 >= argc) {
          *error = "option --" + name + " needs a value";
          return std::nullopt;
        }
        value = argv[++i];
      }
      if (name == "config") {
        args.config = value;
      } else {
        args.options[name] = value;
      }
    } else if (args.command.empty()) {
      args.command = a;
    } else {
      args.positional.push_back(a);
    }
  }
  return args;
}

std::optional<vigil::config::Config> Load(const std::string& path) {
  vigil::config::ConfigResult loaded = vigil::config::LoadConfig(path);
  // From here on no secret of the config is written anywhere (README "Security").
  vigil::log::SetSecrets(loaded.secrets);
  for (const auto& d : loaded.diagnostics) std::cerr << vigil::log::Redact(d.ToString()) << '\n';
  return loaded.config;
}

bool ParseNumber(const Args& args, const std::string& name, double* out, std::string* error) {
  auto it = args.options.find(name);
  if (it == args.options.end()) return true;
  std::string text = it->second;
  if (name == "rate" && text.size() > 2 && text.substr(text.size() - 2) == "/s") {
    text.resize(text.size() - 2);
  }
  try {
    std::size_t used = 0;
    *out = std::stod(text, &used);
    if (used != text.size() || *out < 0) throw std::invalid_argument(text);
  } catch (const std::exception&) {
    *error = "--" + name + ": not a number: " + it->second;
    return false;
  }
  return true;
}

int Check(const Args& args) {
  vigil::config::ConfigResult loaded = vigil::config::LoadConfig(args.config);
  vigil::log::SetSecrets(loaded.secrets);
  std::size_t errors = loaded.diagnostics.size();
  for (const auto& d : loaded.diagnostics) std::cerr << vigil::log::Redact(d.ToString()) << '\n';
  if (!loaded.config) return kExitInvalid;
  vigil::rules::LoadResult rules =
      vigil::rules::LoadRules(loaded.config->rule_paths, loaded.config->rule_limits);
  errors += rules.diagnostics.size();
  for (const auto& d : rules.diagnostics) std::cerr << vigil::log::Redact(d.ToString()) << '\n';
  vigil::rules::TablesLoadResult tables = vigil::rules::LoadTables(loaded.config->tables);
  errors += tables.diagnostics.size();
  for (const auto& d : tables.diagnostics) std::cerr << vigil::log::Redact(d.ToString()) << '\n';
  if (errors > 0) return kExitInvalid;
  std::cout << "ok: " << rules.rules->rules.size() << " rules\n";
  return kExitOk;
}

int RunCommand(const Args& args) {
  const std::string& cmd = args.command;
  if (cmd == "check") return Check(args);

  auto config = Load(args.config);
  if (cmd == "run") {
    if (!config) return vigil::agent::kExitConfig;
    if (!vigil::log::SetLevel(config->agent.log_level)) {
      std::cerr << args.config << ": /agent/log_level: unknown level \"" << config->agent.log_level
                << "\"\n";
      return vigil::agent::kExitConfig;
    }
    return vigil::agent::RunDaemon(*config);
  }
  if (!config) return kExitInvalid;

  if (cmd == "replay") {
    if (args.options.count("journal")) {
      std::optional<vigil::Millis> since;
      if (auto it = args.options.find("since"); it != args.options.end()) {
        since = vigil::config::ParseDuration(it->second);
        if (!since) {
          std::cerr << "replay: --since: not a duration: " << it->second << '\n';
          return kExitUsage;
        }
      }
      return vigil::agent::ReplayJournal(*config, since, std::cout);
    }
    auto input = args.options.find("input");
    if (input == args.options.end() || input->second == "-") {
      return vigil::agent::Replay(*config, std::cin, std::cout);
    }
    std::ifstream file(input->second);
    if (!file) {
      std::cerr << "replay: cannot read " << input->second << '\n';
      return kExitInvalid;
    }
    return vigil::agent::Replay(*config, file, std::cout);
  }
  if (cmd == "simulate") {
    vigil::agent::SimulateOptions o;
    std::string error;
    double devices = o.devices, metrics = o.metrics, rate = o.rate, qos = o.qos,
           seed = static_cast<double>(o.seed);
    double seconds = -1;
    if (!ParseNumber(args, "devices", &devices, &error) ||
        !ParseNumber(args, "metrics", &metrics, &error) ||
        !ParseNumber(args, "rate", &rate, &error) ||
        !ParseNumber(args, "seconds", &seconds, &error) ||
        !ParseNumber(args, "qos", &qos, &error) || !ParseNumber(args, "seed", &seed, &error)) {
      std::cerr << "simulate: " << error << '\n';
      return kExitUsage;
    }
    if (devices < 1 || metrics < 1 || qos > 2 || rate <= 0) {
      std::cerr << "simulate: need --devices >= 1, --metrics >= 1, --rate > 0, --qos 0, 1 or 2\n";
      return kExitUsage;
    }
    o.devices = static_cast<int>(devices);
    o.metrics = static_cast<int>(metrics);
    o.rate = rate;
    o.qos = static_cast<int>(qos);
    o.seed = static_cast<std::uint64_t>(seed);
    if (seconds >= 0) o.seconds = seconds;
    o.anomalies = args.options.count("anomalies") > 0;
    if (auto it = args.options.find("labels"); it != args.options.end()) o.labels = it->second;
    return vigil::agent::Simulate(*config, o);
  }
  if (cmd == "outbox") {
    if (args.positional.empty()) {
      std::cerr << CommandHelp().at("outbox");
      return kExitUsage;
    }
    return vigil::agent::Outbox(*config, args.positional[0], args.options.count("dead") > 0);
  }
  if (cmd == "status") {
    return vigil::agent::ShowStatus(*config);
  }
  std::cerr << "vigil: unknown command \"" << cmd << "\"\n" << kUsage;
  return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  std::string error;
  auto args = Parse(argc, argv, &error);
  if (!args) {
    std::cerr << "vigil: " << error << '\n';
    return kExitUsage;
  }
  if (args->options.count("version") || args->command == "version") {
    std::cout << "vigil " << VIGIL_VERSION << '\n';
    return kExitOk;
  }
  if (args->command.empty() || args->command == "help") {
    if (args->help || args->command == "help") {
      std::cout << kUsage;
      return kExitOk;
    }
    std::cerr << kUsage;
    return kExitUsage;
  }
  if (args->help) {
    auto it = CommandHelp().find(args->command);
    if (it == CommandHelp().end()) {
      std::cerr << "vigil: unknown command \"" << args->command << "\"\n" << kUsage;
      return kExitUsage;
    }
    std::cout << it->second;
    return kExitOk;
  }
  return RunCommand(*args);
}
