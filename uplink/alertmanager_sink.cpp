#include "uplink/alertmanager_sink.h"

#include <nlohmann/json.hpp>

#include "config/log.h"
#include "rules/event.h"

namespace vigil::uplink {
namespace {

using nlohmann::json;

json Alert(const std::string& agent, const std::string& rule, const json& key,
           const std::string& severity, const std::string& summary, const std::string& description,
           const json& labels, const std::string& starts_at) {
  json l = json::object();
  for (const auto& [name, value] : key.items()) l[name] = value;
  for (const auto& [name, value] : labels.items()) l[name] = value;
  l["alertname"] = rule;
  l["severity"] = severity;
  l["agent"] = agent;
  json a = {{"labels", std::move(l)}, {"annotations", {{"summary", summary}}}};
  if (!description.empty()) a["annotations"]["description"] = description;
  a["startsAt"] = starts_at;
  return a;
}

}  // namespace

AlertmanagerSink::AlertmanagerSink(config::UplinkConfig config, const std::string& url,
                                   SinkContext context, std::unique_ptr<HttpClient> client)
    : config_(std::move(config)), context_(std::move(context)), client_(std::move(client)) {
  endpoint_ = url;
  while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
  endpoint_ += "/api/v2/alerts";
}

Result<std::unique_ptr<Sink>> AlertmanagerSink::Create(
    const config::UplinkConfig& config, const config::AlertmanagerUplink& alertmanager,
    const SinkContext& context) {
  auto client = HttpClient::Create(config, alertmanager.headers);
  if (!client.ok()) return Result<std::unique_ptr<Sink>>::Error(client.error());
  return std::unique_ptr<Sink>(
      new AlertmanagerSink(config, alertmanager.url, context, std::move(client.value())));
}

Verdict AlertmanagerSink::Post(const std::string& body) {
  return client_->Post(endpoint_, body, {"Content-Type: application/json"});
}

Verdict AlertmanagerSink::Send(const std::vector<store::OutboxRow>& batch) {
  json alerts = json::array();
  std::size_t skipped = 0;  // aggregates: Alertmanager takes alerts only
  for (const auto& row : batch) {
    json e = json::parse(row.json, nullptr, false);
    if (!e.is_object() || rules::ParseEventKind(e.value("kind", "")) != rules::EventKind::kAlert) {
      ++skipped;
      continue;
    }
    const std::string rule = e.value("rule", "");
    const bool resolved =
        rules::ParseEventState(e.value("state", "")) == rules::EventState::kResolved;
    auto desc = context_.rule_descriptions.find(rule);
    // An episode starts at its alert_id's firing event; a resolved event without a firing
    // one seen here (sent before a restart) uses its window start.
    const std::string alert_id = e.value("alert_id", "");
    std::string starts_at = e.value("time", "");
    if (auto it = firing_.find(alert_id); it != firing_.end()) {
      starts_at = json::parse(it->second).value("startsAt", starts_at);
    } else if (resolved && e.contains("window")) {
      starts_at = e["window"].value("start", starts_at);
    }
    json a = Alert(e.value("agent", context_.agent), rule, e.value("key", json::object()),
                   e.value("severity", "warning"), e.value("summary", ""),
                   desc == context_.rule_descriptions.end() ? "" : desc->second,
                   e.value("labels", json::object()), starts_at);
    if (resolved) {
      a["endsAt"] = e.value("time", "");
      firing_.erase(alert_id);
    } else {
      firing_[alert_id] = a.dump();
    }
    alerts.push_back(std::move(a));
  }
  Verdict v;
  if (alerts.empty()) {
    v.outcome = Verdict::Outcome::kDelivered;
  } else {
    v = Post(alerts.dump());
  }
  if (v.outcome == Verdict::Outcome::kDelivered) v.skipped = skipped;
  return v;
}

void AlertmanagerSink::Seed(const std::vector<rules::FiringAlert>& firing) {
  for (const auto& f : firing) {
    json key = json::object();
    for (const auto& [name, value] : f.key) key[name] = value;
    json labels = json::object();
    for (const auto& [name, value] : f.labels) labels[name] = value;
    auto desc = context_.rule_descriptions.find(f.rule);
    firing_[f.alert_id] = Alert(context_.agent, f.rule, key, f.severity, f.summary,
                                desc == context_.rule_descriptions.end() ? "" : desc->second,
                                labels, config::FormatRfc3339(f.since))
                              .dump();
  }
}

void AlertmanagerSink::Tick(Millis now) {
  if (firing_.empty() || now - last_resend_ < kResend) return;
  last_resend_ = now;
  std::string body = "[";
  for (const auto& [id, alert] : firing_) {
    if (body.size() > 1) body += ",";
    body += alert;
  }
  body += "]";
  Verdict v = Post(body);
  if (v.outcome != Verdict::Outcome::kDelivered) {
    log::WriteLimited(log::Level::kWarning, "am-resend-" + config_.name,
                      "uplink " + config_.name + ": re-sending " + std::to_string(firing_.size()) +
                          " firing alert(s) failed: " + v.error);
  }
}

}  // namespace vigil::uplink
