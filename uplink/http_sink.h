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
  static Result<std::unique_ptr<Sink>> Create(const config::UplinkConfig& config,
                                              const config::HttpUplink& http);
  Verdict Send(const std::vector<store::OutboxRow>& batch) override;

 private:
  HttpSink(config::HttpUplink http, std::unique_ptr<HttpClient> client)
      : http_(std::move(http)), client_(std::move(client)) {}
  config::HttpUplink http_;
  std::unique_ptr<HttpClient> client_;
};

}  // namespace vigil::uplink
