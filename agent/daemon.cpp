#include <csignal>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <vector>

#include "agent/commands.h"
#include "agent/decode.h"
#include "agent/http_endpoint.h"
#include "agent/ingest.h"
#include "agent/metrics.h"
#include "agent/pipeline.h"
#include "config/log.h"
#include "rules/engine.h"
#include "store/store.h"
#include "uplink/dispatcher.h"
#include "uplink/sink.h"

namespace vigil::agent {
namespace {

constexpr Millis kDrainTime{5000};

// The signals the main thread waits for; blocked in every thread so sigwait gets them.
sigset_t DaemonSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

}  // namespace

int RunDaemon(const config::Config& config) {
  const Millis started = Now();
  const sigset_t signals = DaemonSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  rules::LoadResult loaded = rules::LoadRules(config.rule_paths);
  if (!loaded.diagnostics.empty()) {
    for (const auto& d : loaded.diagnostics) log::Error(d.ToString());
    log::Error("invalid rules: " + std::to_string(loaded.diagnostics.size()) +
               " error(s); not starting");
    return kExitConfig;
  }

  std::vector<std::unique_ptr<uplink::Sink>> sinks;
  for (const auto& u : config.uplinks) {
    auto sink = uplink::MakeSink(u);
    if (!sink.ok()) {
      log::Error(config.path + ": " + sink.error());
      return kExitConfig;
    }
    sinks.push_back(std::move(sink).value());
  }

  const std::string db_path = (std::filesystem::path(config.agent.state_dir) / "vigil.db").string();
  auto opened = store::Store::Open(db_path, config.store);
  if (!opened.ok()) {
    log::Error("cannot open state database " + db_path + ": " + opened.error());
    return kExitFatal;
  }
  std::unique_ptr<store::Store> store = std::move(opened).value();

  std::vector<std::unique_ptr<uplink::Dispatcher>> dispatchers;
  std::map<std::string, uplink::Dispatcher*> by_name;
  for (std::size_t i = 0; i < config.uplinks.size(); ++i) {
    dispatchers.push_back(
        std::make_unique<uplink::Dispatcher>(config.uplinks[i], store.get(), std::move(sinks[i])));
    by_name[config.uplinks[i].name] = dispatchers.back().get();
  }

  Metrics metrics;
  Pipeline pipeline(config, loaded.rules, store.get(), &metrics,
                    [&by_name](const std::string& name) {
                      auto it = by_name.find(name);
                      if (it != by_name.end()) it->second->Notify();
                    });
  if (Status s = pipeline.Restore(); !s.ok()) {
    log::Error("cannot restore state from " + db_path + ": " + s.message());
    return kExitFatal;
  }
  for (auto& d : dispatchers) d->Start();
  pipeline.Start();

  Decoder decoder(config.mqtt);
  Ingest ingest(
      config.mqtt,
      [&](const std::string& topic, const std::string& payload) {
        Decoded decoded;
        decoder.Decode(topic, payload, Now(), &decoded);
        for (const auto& reject : decoded.rejects) {
          metrics.CountReject(reject.reason);
          log::WriteLimited(log::Level::kWarning, ReasonName(reject.reason),
                            std::string("rejected reading (") + ReasonName(reject.reason) +
                                ") on " + topic + ": " + reject.detail);
        }
        for (auto& reading : decoded.readings) {
          metrics.readings_total.fetch_add(1, std::memory_order_relaxed);
          pipeline.Push(std::move(reading));
        }
      },
      [&metrics](bool connected) { metrics.mqtt_connected = connected; });
  ingest.Start();

  std::unique_ptr<HttpEndpoint> endpoint;
  if (!config.http.listen.empty()) {
    EndpointSources sources{&config, &metrics, store.get(), &pipeline, {}, started};
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
            std::to_string(config.uplinks.size()) + " uplink(s), state in " + db_path);

  while (true) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      log::Info("SIGHUP: rule reload is not available in this version; restart to apply changes");
      continue;
    }
    log::Info(std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") + ": stopping");
    break;
  }

  endpoint.reset();
  ingest.Stop();    // take no more messages
  pipeline.Stop();  // process what is queued, final commit
  for (auto& d : dispatchers) d->Stop(kDrainTime);
  log::Info("stopped");
  return kExitOk;
}

}  // namespace vigil::agent
