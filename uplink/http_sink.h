#pragma once

#include <memory>
#include <string>

#include "uplink/sink.h"

namespace vigil::uplink {

// The `http` uplink (SPEC §9): POSTs a batch as a JSON array of events, with
// `Content-Type: application/json`, optional gzip, the configured headers and
// `Idempotency-Key` = hash of the batch's event ids. 2xx: delivered; connection errors,
// timeouts, 408, 429 and 5xx: retry (with Retry-After when given); other statuses: reject.
// Keeps one libcurl handle (and its connection) alive between batches.
class HttpSink final : public Sink {
 public:
  static Result<std::unique_ptr<Sink>> Create(const config::UplinkConfig& config);
  ~HttpSink() override;

  Verdict Send(const std::vector<store::OutboxRow>& batch) override;

 private:
  struct Impl;
  explicit HttpSink(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The verdict for an HTTP status (SPEC §8): 2xx delivered; 408, 429, 5xx retry; else reject.
Verdict::Outcome ClassifyHttpStatus(long status);

// Gzip of `data` (RFC 1952).
std::string Gzip(const std::string& data);

}  // namespace vigil::uplink
