#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "config/result.h"
#include "uplink/sink.h"

namespace vigil::uplink {

// One libcurl easy handle for one uplink: POSTs with the uplink's timeout, TLS settings
// (verification on unless insecure_skip_verify; ca_file, cert_file, key_file) and headers
// (those of its type: http, alertmanager, influxdb), keeping the connection alive between
// requests. Classifies the answer as SPEC §8 says. Not thread-safe: one dispatcher thread
// owns it.
class HttpClient {
 public:
  using Headers = std::vector<std::pair<std::string, std::string>>;
  static Result<std::unique_ptr<HttpClient>> Create(const config::UplinkConfig& config,
                                                    Headers headers);
  ~HttpClient();

  // POSTs `body` to `url` with the uplink's headers plus `headers` ("Name: value").
  Verdict Post(const std::string& url, const std::string& body,
               const std::vector<std::string>& headers);

 private:
  struct Impl;
  explicit HttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The verdict for an HTTP status (SPEC §8): 2xx delivered; 408, 429, 5xx retry; else reject.
Verdict::Outcome ClassifyHttpStatus(long status);

// Gzip of `data` (RFC 1952).
std::string Gzip(const std::string& data);

}  // namespace vigil::uplink
