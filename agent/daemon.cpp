#include <unistd.h>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "agent/clock.h"
#include "agent/commands.h"
#include "agent/decode.h"
#include "agent/http_endpoint.h"
#include "agent/ingest.h"
#include "agent/intake.h"
#include "agent/metrics.h"
#include "agent/pipeline.h"
#include "agent/rule_watcher.h"
#include "agent/systemd_notify.h"
#include "agent/table_reloader.h"
#include "config/log.h"
#include "rules/engine.h"
#include "rules/rule.h"
#include "rules/rule_loader.h"
#include "rules/table_loader.h"
#include "store/journal.h"
#include "store/store.h"
#include "uplink/dispatcher.h"
#include "uplink/sink.h"

namespace vigil::agent {
namespace {

constexpr Millis kDrainTime{5000};

// Logs (at most once a minute per rule) the rules whose max_keys dropped readings since the
// last call, (at most once a minute) the readings the key budget dropped, and (at most once a
// minute, at info) the keys evicted; `seen` keeps the counts already reported.
void LogDroppedKeys(const config::Config& config, const Pipeline& pipeline,
                    std::map<std::string, std::uint64_t>* seen) {
  std::uint64_t budget = 0, evicted = 0, keys = 0;
  for (const auto& r : pipeline.LastSnapshot().rules) {
    budget += r.budget_dropped;
    evicted += r.evicted;
    keys += r.keys;
    std::uint64_t& before = (*seen)[r.rule];
    if (r.dropped_keys <= before) continue;
    log::WriteLimited(
        log::Level::kWarning, "max-keys-" + r.rule,
        "rule " + r.rule + ": max_keys reached (" + std::to_string(r.keys) + " keys); " +
            std::to_string(r.dropped_keys - before) +
            " reading(s) of new keys dropped (vigil_dropped_total{what=\"max_keys\"})");
    before = r.dropped_keys;
  }
  // Rule ids never hold a space: these names are apart from theirs.
  std::uint64_t& budget_before = (*seen)["key budget"];
  if (budget > budget_before) {
    log::WriteLimited(log::Level::kWarning, "key-budget",
                      "rules.max_keys_total reached (" + std::to_string(keys) + " of " +
                          std::to_string(config.rule_limits.max_keys_total) + " keys); " +
                          std::to_string(budget - budget_before) +
                          " reading(s) of new keys dropped "
                          "(vigil_dropped_total{what=\"key_budget\"})");
    budget_before = budget;
  }
  std::uint64_t& evicted_before = (*seen)["evicted keys"];
  if (evicted > evicted_before) {
    log::WriteLimited(log::Level::kInfo, "keys-evicted",
                      "rules: evicted " + std::to_string(evicted - evicted_before) +
                          " quiet key(s) (vigil_keys_evicted_total); " + std::to_string(keys) +
                          " key(s) now");
    evicted_before = evicted;
  }
}

// The signals the main thread waits for; blocked in every thread so sigwait gets them.
sigset_t DaemonSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

// Whether two versions of vigil.json differ only in agent.log_level (the one key besides the
// rule files that a reload applies).
bool SameBesidesLogLevel(const std::string& a, const std::string& b) {
  auto strip = [](const std::string& text) {
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_object() && j.contains("agent") && j["agent"].is_object()) {
      j["agent"].erase("log_level");
    }
    return j;
  };
  return strip(a) == strip(b);
}

}  // namespace

int RunDaemon(const config::Config& config) {
  const Millis started = Now();
  const sigset_t signals = DaemonSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  rules::LoadResult loaded = rules::LoadRules(config.rule_paths, config.rule_limits);
  if (!loaded.diagnostics.empty()) {
    for (const auto& d : loaded.diagnostics) log::Error(d.ToString());
    log::Error("invalid rules: " + std::to_string(loaded.diagnostics.size()) +
               " error(s); not starting");
    return kExitConfig;
  }
  rules::TablesLoadResult tables = rules::LoadTables(config.tables);
  if (!tables.diagnostics.empty()) {
    for (const auto& d : tables.diagnostics) log::Error(d.ToString());
    log::Error("invalid tables: " + std::to_string(tables.diagnostics.size()) +
               " error(s); not starting");
    return kExitConfig;
  }

  uplink::SinkContext sink_context{config.agent.id, {}};
  for (const auto& rule : loaded.rules->rules) {
    sink_context.rule_descriptions[rule->id] = rule->description;
  }
  std::vector<std::unique_ptr<uplink::Sink>> sinks;
  for (const auto& u : config.uplinks) {
    auto sink = uplink::MakeSink(u, sink_context);
    if (!sink.ok()) {
      log::Error(config.path + ": " + sink.error());
      return kExitConfig;
    }
    sinks.push_back(std::move(sink).value());
  }

  const std::filesystem::path state_dir(config.agent.state_dir);
  if (std::error_code ec; !std::filesystem::exists(state_dir, ec)) {
    // Only the agent reads its state (README "Security"): a folder made here is 0700 (the
    // files in it are 0600, store/README.md); systemd's StateDirectoryMode says the same.
    std::filesystem::create_directories(state_dir, ec);
    if (!ec) {
      std::filesystem::permissions(state_dir, std::filesystem::perms::owner_all,
                                   std::filesystem::perm_options::replace, ec);
    }
  }
  const std::string db_path = (state_dir / "vigil.db").string();
  // Only a damaged file is moved aside (and reported below); anything else (locked, disk full,
  // read-only, a newer schema) stops the start with the files left as they are.
  auto opened = store::Store::Open(db_path, config.store);
  if (!opened.ok()) {
    log::Error("cannot open state database " + db_path + ": " + opened.error() +
               "; not starting, the file is left as it is");
    return kExitFatal;
  }
  std::unique_ptr<store::Store> store = std::move(opened).value();
  const std::string journal_path = (state_dir / "journal.db").string();
  auto opened_journal = store::Journal::Open(journal_path, config.store);
  if (!opened_journal.ok()) {
    log::Error("cannot open journal " + journal_path + ": " + opened_journal.error() +
               "; not starting, the file is left as it is");
    return kExitFatal;
  }
  std::unique_ptr<store::Journal> journal = std::move(opened_journal).value();
  std::vector<std::string> warnings;
  if (!store->moved_aside().empty()) {
    warnings.push_back("state database " + db_path + " was damaged (" + store->damage() +
                       "); moved aside to " + store->moved_aside() + ", started afresh");
  }
  if (!journal->moved_aside().empty()) {
    warnings.push_back("journal " + journal_path + " was damaged (" + journal->damage() +
                       "); moved aside to " + journal->moved_aside() + ", started afresh");
  }
  for (const auto& w : warnings) log::Error(w);

  std::vector<std::unique_ptr<uplink::Dispatcher>> dispatchers;
  std::map<std::string, uplink::Dispatcher*> by_name;
  for (std::size_t i = 0; i < config.uplinks.size(); ++i) {
    dispatchers.push_back(std::make_unique<uplink::Dispatcher>(config.uplinks[i], store.get(),
                                                               std::move(sinks[i]), AgentClock()));
    by_name[config.uplinks[i].name] = dispatchers.back().get();
  }

  Metrics metrics;
  Pipeline pipeline(
      config, loaded.rules, tables.tables, store.get(), journal.get(), &metrics,
      [&by_name](const std::string& name) {
        auto it = by_name.find(name);
        if (it != by_name.end()) it->second->Notify();
      },
      AgentClock());
  if (Status s = pipeline.Restore(); !s.ok()) {
    log::Error("cannot restore state from " + db_path + ": " + s.message());
    return kExitFatal;
  }
  TableReloader table_reloader(config.tables, tables.tables, &metrics,
                               [&pipeline](std::shared_ptr<const rules::Tables> t) {
                                 pipeline.RequestTables(std::move(t));
                               });
  const std::vector<rules::FiringAlert> firing = pipeline.Firing();
  for (auto& d : dispatchers) {
    d->Seed(firing);
    d->Start();
  }
  pipeline.Start();

  MessageIntake intake(config.mqtt, journal.get(), &metrics,
                       [&pipeline](IngestMessage m) { return pipeline.Push(std::move(m)); });
  // VIGIL_FAILPOINT=crash-after-journal=N: the crash tests' way to kill the agent inside the
  // message callback, after the N-th message is journaled and before it is acknowledged.
  if (const char* fp = std::getenv("VIGIL_FAILPOINT")) {
    const std::string failpoint = fp;
    const std::string prefix = "crash-after-journal=";
    if (failpoint.rfind(prefix, 0) == 0) intake.CrashAfterJournal(std::atol(fp + prefix.size()));
  }
  Ingest ingest(
      config.mqtt,
      [&intake](const std::string& topic, const std::string& payload, int packet_id,
                bool duplicate) { intake.OnMessage(topic, payload, packet_id, duplicate); },
      [&metrics, &intake](bool connected) {
        metrics.mqtt_connected = connected;
        if (!connected) intake.OnConnectionClosed();
      },
      &metrics, [&intake] { intake.OnConnecting(); });
  ingest.Start();

  std::unique_ptr<HttpEndpoint> endpoint;
  if (!config.http.listen.empty()) {
    EndpointSources sources{&config,   &metrics, store.get(), journal.get(),
                            &pipeline, {},       started,     warnings};
    for (const auto& d : dispatchers) sources.dispatchers.push_back(d.get());
    auto ep = HttpEndpoint::Start(config.http.listen, std::move(sources));
    if (ep.ok()) {
      endpoint = std::move(ep).value();
    } else {
      // The endpoint only reports; the agent's work goes on without it.
      log::Error(ep.error() + "; running without the HTTP endpoint");
    }
  }
  log::Info("vigil " + std::string(VIGIL_VERSION) + " running as agent " + config.agent.id +
            " with " + std::to_string(loaded.rules->rules.size()) + " rule(s), " +
            std::to_string(config.tables.size()) + " table(s), " +
            std::to_string(config.uplinks.size()) + " uplink(s), state in " + db_path);

  // Reload (SPEC §7): SIGHUP, or a rule file that changed (the watcher sends SIGHUP). A
  // changed table file reloads the tables alone, on the table watcher's thread.
  const std::string config_text = config::ReadFile(config.path).value_or("");
  std::string log_level = config.agent.log_level;
  // Set by the rule watcher: that SIGHUP is for the rule files alone, the tables are as they
  // were (their own watcher reloads them when they change).
  std::atomic<bool> rule_files_changed{false};
  auto reload = [&] {
    if (!rule_files_changed.exchange(false)) table_reloader.Reload();
    rules::LoadResult next = rules::LoadRules(config.rule_paths, config.rule_limits);
    if (!next.diagnostics.empty()) {
      metrics.reload_failures.fetch_add(1, std::memory_order_relaxed);
      for (const auto& d : next.diagnostics) log::Error("reload: " + d.ToString());
      log::Error("reload: invalid rules; the previous rules stay in force");
      return;
    }
    config::ConfigResult now_config = config::LoadConfig(config.path);
    std::vector<std::string> secrets = config.secrets;  // the old ones stay secret too
    secrets.insert(secrets.end(), now_config.secrets.begin(), now_config.secrets.end());
    log::SetSecrets(secrets);
    if (now_config.config) {
      if (now_config.config->agent.log_level != log_level) {
        // Said at the old level, so a quieter new level does not hide it.
        log_level = now_config.config->agent.log_level;
        log::Info("reload: log level " + log_level);
        log::SetLevel(log_level);
      }
      if (!SameBesidesLogLevel(config_text, config::ReadFile(config.path).value_or(""))) {
        log::Warning("reload: " + config.path +
                     " changed outside agent.log_level: those changes need a restart");
      }
    }
    pipeline.RequestReload(next.rules);
  };
  RuleWatcher watcher(config.rule_paths, [&rule_files_changed] {
    rule_files_changed = true;
    kill(getpid(), SIGHUP);
  });
  watcher.Start();
  RuleWatcher table_watcher(
      table_reloader.files(), [&table_reloader] { table_reloader.Reload(); }, "tables");
  if (!config.tables.empty()) table_watcher.Start();

  SdNotify("READY=1\nSTATUS=running with " + std::to_string(loaded.rules->rules.size()) +
           " rule(s)");
  const auto watchdog = WatchdogInterval();
  const auto tick = watchdog ? std::chrono::duration_cast<std::chrono::milliseconds>(*watchdog / 2)
                             : std::chrono::milliseconds(1000);
  std::map<std::string, std::uint64_t> dropped_keys_seen;
  while (true) {
    LogDroppedKeys(config, pipeline, &dropped_keys_seen);
    timespec timeout{static_cast<time_t>(tick.count() / 1000),
                     static_cast<long>(tick.count() % 1000) * 1'000'000};
    const int sig = sigtimedwait(&signals, nullptr, &timeout);
    // The watchdog is fed only while the engine thread is alive.
    if (watchdog && pipeline.Alive(Now())) SdNotify("WATCHDOG=1");
    if (sig < 0) continue;  // timeout or EINTR
    if (sig == SIGHUP) {
      SdNotify("RELOADING=1");
      reload();
      SdNotify("READY=1");
      continue;
    }
    log::Info(std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") + ": stopping");
    break;
  }
  SdNotify("STOPPING=1");
  watcher.Stop();
  table_watcher.Stop();

  endpoint.reset();
  // Take no more messages. A message the journal could not take is held unacknowledged: then
  // the connection is left open until the process ends (the broker delivers it again).
  const bool held = intake.Stop();
  if (held) {
    ingest.Abandon();
  } else {
    ingest.Stop();
  }
  pipeline.Stop();  // process what is queued, final commit
  for (auto& d : dispatchers) d->Stop(kDrainTime);
  log::Info("stopped");
  if (held) std::_Exit(kExitOk);  // ends Paho's threads with the message unacknowledged
  return kExitOk;
}

}  // namespace vigil::agent
