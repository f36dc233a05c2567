#include "agent/http_endpoint.h"

#include <httplib.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "config/log.h"

namespace vigil::agent {
namespace {

// Prometheus label values escape backslash, double quote and newline.
std::string Label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void Header(std::ostringstream& o, const char* name, const char* type, const char* help) {
  o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
}

nlohmann::json KeyJson(const rules::Tags& key) {
  nlohmann::json k = nlohmann::json::object();
  for (const auto& [name, value] : key) k[name] = value;
  return k;
}

// The endpoint serves GETs: a request body beyond this is refused (413) before it is read.
constexpr std::size_t kMaxRequestBody = std::size_t{64} * 1024;

// Refuses, before cpp-httplib reads it into memory, a body that is chunked (of unknown size)
// or declared longer than kMaxRequestBody (or whose length cannot be read), and closes the
// connection so the unread body is never taken for the next request.
httplib::Server::HandlerResponse RefuseLargeBodies(const httplib::Request& req,
                                                   httplib::Response& res) {
  bool too_large = false;
  const std::string encoding = req.get_header_value("Transfer-Encoding");
  if (!encoding.empty() && encoding != "identity") {
    too_large = true;
  } else if (req.has_header("Content-Length")) {
    const std::string length = req.get_header_value("Content-Length");
    too_large = length.empty() || length.size() > 18 ||
                length.find_first_not_of("0123456789") != std::string::npos ||
                std::stoull(length) > kMaxRequestBody;
  }
  if (!too_large) return httplib::Server::HandlerResponse::Unhandled;
  res.status = 413;
  res.set_header("Connection", "close");
  res.set_content("request body too large: the endpoint takes at most " +
                      std::to_string(kMaxRequestBody / 1024) + " KiB\n",
                  "text/plain");
  return httplib::Server::HandlerResponse::Handled;
}

bool SplitListen(const std::string& listen, std::string* host, int* port) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) return false;
  *host = listen.substr(0, colon);
  if (host->size() > 1 && host->front() == '[') *host = host->substr(1, host->size() - 2);
  try {
    *port = std::stoi(listen.substr(colon + 1));
  } catch (const std::exception&) {
    return false;
  }
  return !host->empty() && *port >= 0 && *port < 65536;
}

}  // namespace

HttpEndpoint::HttpEndpoint(EndpointSources sources) : sources_(std::move(sources)) {}

HttpEndpoint::~HttpEndpoint() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

Result<std::unique_ptr<HttpEndpoint>> HttpEndpoint::Start(const std::string& listen,
                                                          EndpointSources sources) {
  std::string host;
  int port = 0;
  if (!SplitListen(listen, &host, &port)) {
    return Result<std::unique_ptr<HttpEndpoint>>::Error("http.listen: expected host:port, got \"" +
                                                        listen + "\"");
  }
  std::unique_ptr<HttpEndpoint> ep(new HttpEndpoint(std::move(sources)));
  ep->server_ = std::make_unique<httplib::Server>();
  httplib::Server& srv = *ep->server_;
  const EndpointSources* s = &ep->sources_;
  srv.set_pre_routing_handler(RefuseLargeBodies);
  srv.set_payload_max_length(kMaxRequestBody);  // a second guard (413 too)
  srv.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  srv.Get("/readyz", [s](const httplib::Request&, httplib::Response& res) {
    std::string reason = NotReadyReason(*s);
    res.status = reason.empty() ? 200 : 503;
    std::string body = reason.empty() ? "ready\n" : reason + "\n";
    for (const auto& w : s->warnings) body += "warning: " + log::Redact(w) + "\n";
    res.set_content(body, "text/plain");
  });
  srv.Get("/metrics", [s](const httplib::Request&, httplib::Response& res) {
    res.set_content(MetricsText(*s), "text/plain; version=0.0.4");
  });
  srv.Get("/api/v1/status", [s](const httplib::Request&, httplib::Response& res) {
    res.set_content(StatusJson(*s), "application/json");
  });
  srv.Get("/api/v1/alerts", [s](const httplib::Request&, httplib::Response& res) {
    res.set_content(AlertsJson(*s), "application/json");
  });
  if (!srv.bind_to_port(host, port)) {
    return Result<std::unique_ptr<HttpEndpoint>>::Error("http.listen: cannot listen on " + listen);
  }
  ep->thread_ = std::thread([&srv] { srv.listen_after_bind(); });
  return ep;
}

std::string HttpEndpoint::NotReadyReason(const EndpointSources& s) {
  if (!s.metrics->mqtt_connected) return log::Redact("broker not connected: " + s.config->mqtt.uri);
  if (s.metrics->last_commit_failed) return "state database not writable: last commit failed";
  return "";
}

std::string HttpEndpoint::MetricsText(const EndpointSources& s) {
  const Metrics& m = *s.metrics;
  std::ostringstream o;
  Header(o, "vigil_readings_total", "counter", "Accepted readings.");
  o << "vigil_readings_total " << m.readings_total.load() << '\n';
  Header(o, "vigil_rejected_readings_total", "counter", "Rejected readings by reason.");
  for (std::size_t i = 0; i < Metrics::kReasons; ++i) {
    o << "vigil_rejected_readings_total{reason=\"" << ReasonName(static_cast<RejectReason>(i))
      << "\"} " << m.rejected[i].load() << '\n';
  }
  const Pipeline::Snapshot snap = s.pipeline->LastSnapshot();
  std::uint64_t dropped_keys = 0;
  std::uint64_t budget_dropped = 0;
  Header(o, "vigil_late_readings_total", "counter", "Readings dropped as late, by rule.");
  for (const auto& r : snap.rules) {
    o << "vigil_late_readings_total{rule=\"" << Label(r.rule) << "\"} " << r.late_readings << '\n';
    dropped_keys += r.dropped_keys;
    budget_dropped += r.budget_dropped;
  }
  Header(o, "vigil_rule_keys", "gauge", "Keys (series) with state, by rule.");
  for (const auto& r : snap.rules) {
    o << "vigil_rule_keys{rule=\"" << Label(r.rule) << "\"} " << r.keys << '\n';
  }
  Header(o, "vigil_keys_evicted_total", "counter",
         "Keys evicted from memory and state (idle, or early under a key limit), by rule.");
  for (const auto& r : snap.rules) {
    o << "vigil_keys_evicted_total{rule=\"" << Label(r.rule) << "\"} " << r.evicted << '\n';
  }
  Header(o, "vigil_join_dropped_total", "counter",
         "Join inputs lacking an `on` tag or pushed out of a full buffer, by rule.");
  for (const auto& r : snap.rules) {
    o << "vigil_join_dropped_total{rule=\"" << Label(r.rule) << "\"} " << r.join_dropped << '\n';
  }
  Header(o, "vigil_rule_evaluations_total", "counter", "Readings evaluated, by rule.");
  for (const auto& r : snap.rules) {
    o << "vigil_rule_evaluations_total{rule=\"" << Label(r.rule) << "\"} " << r.evaluations << '\n';
  }
  Header(o, "vigil_events_total", "counter", "Events produced, by kind.");
  o << "vigil_events_total{kind=\"alert\"} " << m.alert_events.load() << '\n';
  o << "vigil_events_total{kind=\"aggregate\"} " << m.aggregate_events.load() << '\n';

  std::map<std::string, store::OutboxCounts> counts;
  if (auto c = s.store->Counts(); c.ok()) {
    for (auto& row : c.value()) counts[row.uplink] = row;
  }
  const Millis now = Now();
  Header(o, "vigil_outbox_depth", "gauge", "Events waiting for delivery, by uplink.");
  for (const auto* d : s.dispatchers) {
    o << "vigil_outbox_depth{uplink=\"" << Label(d->name()) << "\"} " << counts[d->name()].pending
      << '\n';
  }
  Header(o, "vigil_outbox_oldest_seconds", "gauge",
         "Age of the oldest undelivered event, by uplink.");
  for (const auto* d : s.dispatchers) {
    const auto& c = counts[d->name()];
    double age = c.pending > 0 ? static_cast<double>((now - c.oldest_pending).count()) / 1000.0 : 0;
    o << "vigil_outbox_oldest_seconds{uplink=\"" << Label(d->name()) << "\"} " << age << '\n';
  }
  Header(o, "vigil_deliveries_total", "counter", "Delivery outcomes, by uplink.");
  for (const auto* d : s.dispatchers) {
    auto st = d->Stats();
    const std::string u = Label(d->name());
    o << "vigil_deliveries_total{uplink=\"" << u << "\",outcome=\"delivered\"} " << st.delivered
      << '\n';
    o << "vigil_deliveries_total{uplink=\"" << u << "\",outcome=\"skipped\"} " << st.skipped
      << '\n';
    o << "vigil_deliveries_total{uplink=\"" << u << "\",outcome=\"retry\"} " << st.retried << '\n';
    o << "vigil_deliveries_total{uplink=\"" << u << "\",outcome=\"dead\"} " << st.dead << '\n';
  }
  Header(o, "vigil_outbox_ack_failures_total", "counter",
         "Delivered batches the outbox could not delete (deleted again after a backoff), by "
         "uplink.");
  for (const auto* d : s.dispatchers) {
    o << "vigil_outbox_ack_failures_total{uplink=\"" << Label(d->name()) << "\"} "
      << d->Stats().ack_failures << '\n';
  }
  Header(o, "vigil_dropped_total", "counter", "Data dropped, by what.");
  o << "vigil_dropped_total{what=\"max_keys\"} " << dropped_keys << '\n';
  o << "vigil_dropped_total{what=\"key_budget\"} " << budget_dropped << '\n';
  o << "vigil_dropped_total{what=\"journal\"} " << m.dropped_journal.load() << '\n';
  o << "vigil_dropped_total{what=\"aggregates\"} " << m.dropped_aggregates.load() << '\n';
  o << "vigil_dropped_total{what=\"alerts\"} " << m.dropped_alerts.load() << '\n';
  o << "vigil_dropped_total{what=\"ttl\"} " << m.dropped_ttl.load() << '\n';
  o << "vigil_dropped_total{what=\"unjournaled\"} " << m.dropped_unjournaled.load() << '\n';
  o << "vigil_dropped_total{what=\"dead_letters\"} " << m.dropped_dead_letters.load() << '\n';
  Header(o, "vigil_duplicate_messages_total", "counter",
         "Redeliveries of messages already journaled, skipped (not processed twice).");
  o << "vigil_duplicate_messages_total " << m.duplicates.load() << '\n';
  Header(o, "vigil_redelivered_new_total", "counter",
         "Redeliveries that match no journaled message: processed as new readings.");
  o << "vigil_redelivered_new_total " << m.redelivered_new.load() << '\n';
  Header(o, "vigil_clock_steps_total", "counter",
         "Steps of the system clock, forward or back, of more than a second.");
  o << "vigil_clock_steps_total " << m.clock_steps.load() << '\n';
  Header(o, "vigil_reload_failures_total", "counter",
         "Reloads refused: a rule file invalid or beyond a limit; the previous rules stay.");
  o << "vigil_reload_failures_total " << m.reload_failures.load() << '\n';
  Header(o, "vigil_table_rows", "gauge", "Rows of each reference table in force.");
  for (const auto& t : m.tables) {
    o << "vigil_table_rows{table=\"" << Label(t.name) << "\"} " << t.rows.load() << '\n';
  }
  Header(o, "vigil_table_reloads_total", "counter",
         "Reference table reloads, by table and outcome (error: the previous table stays).");
  for (const auto& t : m.tables) {
    const std::string name = Label(t.name);
    o << "vigil_table_reloads_total{table=\"" << name << "\",outcome=\"ok\"} "
      << t.reloads_ok.load() << '\n';
    o << "vigil_table_reloads_total{table=\"" << name << "\",outcome=\"error\"} "
      << t.reloads_error.load() << '\n';
  }
  Header(o, "vigil_store_bytes", "gauge", "Bytes on disk of the state database and journal.");
  o << "vigil_store_bytes " << s.store->SizeBytes() + (s.journal ? s.journal->SizeBytes() : 0)
    << '\n';
  Header(o, "vigil_state_bytes", "gauge",
         "Bytes of rule state in the state database, as last measured.");
  o << "vigil_state_bytes " << m.state_bytes.load() << '\n';
  Header(o, "vigil_quota_exceeded_by_state", "gauge",
         "1 while rule state leaves the outbox only its floor of store.max_bytes.");
  o << "vigil_quota_exceeded_by_state " << (m.quota_exceeded_by_state ? 1 : 0) << '\n';
  Header(o, "vigil_commit_duration_seconds", "histogram", "Group commit latency.");
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < Metrics::kCommitBuckets.size(); ++i) {
    cumulative += m.commit_buckets[i].load();
    o << "vigil_commit_duration_seconds_bucket{le=\"" << Metrics::kCommitBuckets[i] << "\"} "
      << cumulative << '\n';
  }
  cumulative += m.commit_buckets.back().load();
  o << "vigil_commit_duration_seconds_bucket{le=\"+Inf\"} " << cumulative << '\n';
  o << "vigil_commit_duration_seconds_sum " << static_cast<double>(m.commit_micros_sum.load()) / 1e6
    << '\n';
  o << "vigil_commit_duration_seconds_count " << cumulative << '\n';
  Header(o, "vigil_commit_rows", "histogram", "Rows (state and outbox) per group commit.");
  cumulative = 0;
  for (std::size_t i = 0; i < Metrics::kRowBuckets.size(); ++i) {
    cumulative += m.commit_row_buckets[i].load();
    o << "vigil_commit_rows_bucket{le=\"" << Metrics::kRowBuckets[i] << "\"} " << cumulative
      << '\n';
  }
  cumulative += m.commit_row_buckets.back().load();
  o << "vigil_commit_rows_bucket{le=\"+Inf\"} " << cumulative << '\n';
  o << "vigil_commit_rows_sum " << m.commit_rows_sum.load() << '\n';
  o << "vigil_commit_rows_count " << cumulative << '\n';
  Header(o, "vigil_mqtt_connected", "gauge", "1 while connected to the broker.");
  o << "vigil_mqtt_connected " << (m.mqtt_connected ? 1 : 0) << '\n';
  Header(o, "vigil_mqtt_subscribed", "gauge",
         "1 while the broker grants the topic filter's subscription on the current connection.");
  for (const auto& sub : m.subscriptions) {
    o << "vigil_mqtt_subscribed{topic=\"" << Label(sub.filter) << "\"} " << (sub.subscribed ? 1 : 0)
      << '\n';
  }
  Header(o, "vigil_mqtt_subscription_failures_total", "counter",
         "Subscriptions the broker refused (SUBACK 0x80), by topic filter.");
  for (const auto& sub : m.subscriptions) {
    o << "vigil_mqtt_subscription_failures_total{topic=\"" << Label(sub.filter) << "\"} "
      << sub.failures.load() << '\n';
  }
  return o.str();
}

std::string HttpEndpoint::AlertsJson(const EndpointSources& s) {
  nlohmann::json alerts = nlohmann::json::array();
  for (const auto& a : s.pipeline->LastSnapshot().firing) {
    alerts.push_back({{"rule", a.rule},
                      {"key", KeyJson(a.key)},
                      {"alert_id", a.alert_id},
                      {"severity", a.severity},
                      {"summary", a.summary},
                      {"since", config::FormatRfc3339(a.since)}});
  }
  // Summaries hold tag values; replace what is not UTF-8 rather than throw.
  return alerts.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string HttpEndpoint::StatusJson(const EndpointSources& s) {
  const Metrics& m = *s.metrics;
  const Millis now = Now();
  const double uptime = static_cast<double>((now - s.started).count()) / 1000.0;
  std::uint64_t rejected = 0;
  for (const auto& r : m.rejected) rejected += r.load();
  nlohmann::json j;
  j["version"] = VIGIL_VERSION;
  j["agent"] = s.config->agent.id;
  j["uptime_seconds"] = static_cast<std::int64_t>(uptime);
  j["mqtt"] = {{"uri", log::Redact(s.config->mqtt.uri)}, {"connected", m.mqtt_connected.load()}};
  j["readings_total"] = m.readings_total.load();
  j["readings_per_second"] =
      uptime > 0 ? std::round(static_cast<double>(m.readings_total.load()) / uptime * 10) / 10 : 0;
  j["rejected_total"] = rejected;
  j["ready"] = NotReadyReason(s).empty();
  j["warnings"] = s.warnings;
  const std::uint64_t max_bytes = s.config->store.max_bytes;
  j["store"] = {{"bytes", s.store->SizeBytes() + (s.journal ? s.journal->SizeBytes() : 0)},
                {"max_bytes", max_bytes},
                {"state_bytes", m.state_bytes.load()},
                {"outbox_floor_bytes", max_bytes / Pipeline::kOutboxFloorShare},
                {"quota_exceeded_by_state", m.quota_exceeded_by_state.load()},
                {"dropped",
                 {{"journal", m.dropped_journal.load()},
                  {"dead_letters", m.dropped_dead_letters.load()},
                  {"aggregates", m.dropped_aggregates.load()},
                  {"alerts", m.dropped_alerts.load()},
                  {"ttl", m.dropped_ttl.load()}}}};
  if (m.quota_exceeded_by_state) {
    j["warnings"].push_back(
        "rule state (" + std::to_string(m.state_bytes.load()) +
        " bytes) leaves the outbox only its floor of store.max_bytes (" +
        std::to_string(max_bytes) +
        " bytes): older undelivered events are dropped; raise store.max_bytes or lower the "
        "rules' keys");
  }
  const Pipeline::Snapshot snap = s.pipeline->LastSnapshot();
  j["rules"] = nlohmann::json::array();
  for (const auto& r : snap.rules) {
    j["rules"].push_back({{"id", r.rule},
                          {"keys", r.keys},
                          {"evaluations", r.evaluations},
                          {"late_readings", r.late_readings},
                          {"dropped_keys", r.dropped_keys},
                          {"key_budget_dropped", r.budget_dropped},
                          {"keys_evicted", r.evicted}});
  }
  j["tables"] = nlohmann::json::array();
  for (const auto& t : m.tables) {
    j["tables"].push_back({{"name", t.name},
                           {"rows", t.rows.load()},
                           {"reloads", t.reloads_ok.load()},
                           {"reload_errors", t.reloads_error.load()}});
  }
  j["alerts"] = nlohmann::json::parse(AlertsJson(s));
  std::map<std::string, store::OutboxCounts> counts;
  if (auto c = s.store->Counts(); c.ok()) {
    for (auto& row : c.value()) counts[row.uplink] = row;
  }
  j["uplinks"] = nlohmann::json::array();
  for (const auto* d : s.dispatchers) {
    auto st = d->Stats();
    const auto& c = counts[d->name()];
    j["uplinks"].push_back({{"name", d->name()},
                            {"pending", c.pending},
                            {"dead", c.dead},
                            {"delivered", st.delivered},
                            {"skipped", st.skipped},
                            {"retried", st.retried},
                            {"last_error", log::Redact(st.last_error)}});
  }
  // last_error may quote an upstream's answer: any bytes. Secrets are redacted above (and
  // control characters escaped); what is not UTF-8 is replaced rather than thrown on.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace vigil::agent
