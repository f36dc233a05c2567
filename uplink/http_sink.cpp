#include "uplink/http_sink.h"

#include "rules/event.h"

namespace vigil::uplink {

Result<std::unique_ptr<Sink>> HttpSink::Create(const config::UplinkConfig& config,
                                               const config::HttpUplink& http) {
  auto client = HttpClient::Create(config, http.headers);
  if (!client.ok()) return Result<std::unique_ptr<Sink>>::Error(client.error());
  return std::unique_ptr<Sink>(new HttpSink(http, std::move(client.value())));
}

Verdict HttpSink::Send(const std::vector<store::OutboxRow>& batch) {
  std::string body = "[";
  std::vector<std::string> ids;
  ids.reserve(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (i > 0) body.push_back(',');
    body += batch[i].json;
    ids.push_back(batch[i].event_id);
  }
  body.push_back(']');
  std::vector<std::string> headers = {"Content-Type: application/json",
                                      "Idempotency-Key: " + rules::StableHash(ids)};
  if (http_.gzip) {
    body = Gzip(body);
    headers.emplace_back("Content-Encoding: gzip");
  }
  return client_->Post(http_.url, body, headers);
}

}  // namespace vigil::uplink
