#pragma once

#include <memory>
#include <string>

#include "uplink/http_client.h"
#include "uplink/sink.h"

namespace vigil::uplink {

// The `http` uplink (SPEC §9): POSTs a batch as a JSON array of events, with
// `Content-Type: application/json`, optional gzip, the configured headers and
// `Idempotency-Key` = hash of the batch's event ids.
class HttpSink final : public Sink {
 public:
  static Result<std::unique_ptr<Sink>> Create(const config::UplinkConfig& config);
  Verdict Send(const std::vector<store::OutboxRow>& batch) override;

 private:
  HttpSink(config::UplinkConfig config, std::unique_ptr<HttpClient> client)
      : config_(std::move(config)), client_(std::move(client)) {}
  config::UplinkConfig config_;
  std::unique_ptr<HttpClient> client_;
};

}  // namespace vigil::uplink
