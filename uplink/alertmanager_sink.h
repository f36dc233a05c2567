#pragma once

#include <map>
#include <memory>
#include <string>

#include "uplink/http_client.h"
#include "uplink/sink.h"

namespace vigil::uplink {

// The `alertmanager` uplink (SPEC §9): alert events become Alertmanager v2 alerts, POSTed to
// `<url>/api/v2/alerts`: labels = alertname (rule id), severity, agent, the key's tags and
// alert.labels; annotations = summary and description (the rule's); startsAt = when the
// episode fired; endsAt = the event time on resolve. Aggregate events are not sent.
// Alertmanager forgets an alert it has not heard of for its resolve_timeout (5 m by default),
// so the sink re-sends every firing alert each `resend` interval (1 m) from Tick; it learns
// the firing set from the events it delivers and, at start, from Seed.
class AlertmanagerSink final : public Sink {
 public:
  static Result<std::unique_ptr<Sink>> Create(const config::UplinkConfig& config,
                                              const config::AlertmanagerUplink& alertmanager,
                                              const SinkContext& context);
  Verdict Send(const std::vector<store::OutboxRow>& batch) override;
  void Seed(const std::vector<rules::FiringAlert>& firing) override;
  void Tick(Millis now) override;

  static constexpr Millis kResend{60'000};

 private:
  AlertmanagerSink(config::UplinkConfig config, const std::string& url, SinkContext context,
                   std::unique_ptr<HttpClient> client);
  Verdict Post(const std::string& body);

  config::UplinkConfig config_;
  SinkContext context_;
  std::unique_ptr<HttpClient> client_;
  std::string endpoint_;
  std::map<std::string, std::string> firing_;  // alert_id → the alert as last sent (JSON)
  Millis last_resend_{0};
};

}  // namespace vigil::uplink
