#include "uplink/http_client.h"

#include <curl/curl.h>
#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <mutex>

namespace vigil::uplink {
namespace {

std::once_flag g_curl_init;

std::size_t CollectBody(char* data, std::size_t size, std::size_t n, void* user) {
  auto* body = static_cast<std::string*>(user);
  if (body->size() < 4096) body->append(data, std::min<std::size_t>(size * n, 4096));
  return size * n;
}

std::optional<Millis> RetryAfter(CURL* curl) {
  struct curl_header* h = nullptr;
  if (curl_easy_header(curl, "Retry-After", 0, CURLH_HEADER, -1, &h) != CURLHE_OK) {
    return std::nullopt;
  }
  std::string v = h->value;
  char* end = nullptr;
  long secs = std::strtol(v.c_str(), &end, 10);
  if (end != v.c_str() && *end == '\0' && secs >= 0) return Millis(secs * 1000);
  time_t when = curl_getdate(v.c_str(), nullptr);
  if (when < 0) return std::nullopt;
  time_t now = time(nullptr);
  return Millis(std::max<time_t>(0, when - now) * 1000);
}

}  // namespace

Verdict::Outcome ClassifyHttpStatus(long status) {
  if (status >= 200 && status < 300) return Verdict::Outcome::kDelivered;
  if (status == 408 || status == 429 || status >= 500) return Verdict::Outcome::kRetry;
  return Verdict::Outcome::kReject;
}

std::string Gzip(const std::string& data) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    return {};
  }
  std::string out(deflateBound(&zs, static_cast<uLong>(data.size())), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

struct HttpClient::Impl {
  Headers headers;  // the uplink's, sent with every request
  CURL* curl = nullptr;
  ~Impl() { curl_easy_cleanup(curl); }
};

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpClient::~HttpClient() = default;

Result<std::unique_ptr<HttpClient>> HttpClient::Create(const config::UplinkConfig& config,
                                                       Headers headers) {
  using R = Result<std::unique_ptr<HttpClient>>;
  std::call_once(g_curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  auto impl = std::make_unique<Impl>();
  impl->headers = std::move(headers);
  impl->curl = curl_easy_init();
  if (impl->curl == nullptr) return R::Error("uplink " + config.name + ": cannot set up libcurl");
  CURL* c = impl->curl;
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(config.timeout.count()));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::min<long long>(config.timeout.count(), 10'000)));
  curl_easy_setopt(c, CURLOPT_USERAGENT, "vigil");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &CollectBody);
  const config::TlsConfig& tls = config.tls;
  if (!tls.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, tls.ca_file.c_str());
  if (!tls.cert_file.empty()) curl_easy_setopt(c, CURLOPT_SSLCERT, tls.cert_file.c_str());
  if (!tls.key_file.empty()) curl_easy_setopt(c, CURLOPT_SSLKEY, tls.key_file.c_str());
  if (tls.insecure_skip_verify) {
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  return std::unique_ptr<HttpClient>(new HttpClient(std::move(impl)));
}

Verdict HttpClient::Post(const std::string& url, const std::string& body,
                         const std::vector<std::string>& headers) {
  CURL* c = impl_->curl;
  curl_slist* list = nullptr;
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  for (const auto& [name, value] : impl_->headers) {
    list = curl_slist_append(list, std::string(name).append(": ").append(value).c_str());
  }
  std::string response;
  char errbuf[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  CURLcode rc = curl_easy_perform(c);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, nullptr);
  curl_slist_free_all(list);

  Verdict v;
  if (rc != CURLE_OK) {
    v.outcome = Verdict::Outcome::kRetry;
    v.error = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
    return v;
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  v.outcome = ClassifyHttpStatus(status);
  if (v.outcome != Verdict::Outcome::kDelivered) {
    v.error = "HTTP " + std::to_string(status);
    std::size_t line_end = response.find('\n');
    std::string first = response.substr(0, std::min<std::size_t>(line_end, 200));
    if (!first.empty()) v.error += ": " + first;
    if (v.outcome == Verdict::Outcome::kRetry) v.retry_after = RetryAfter(c);
  }
  return v;
}

}  // namespace vigil::uplink
