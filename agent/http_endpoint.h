#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "agent/metrics.h"
#include "agent/pipeline.h"
#include "config/config.h"
#include "config/result.h"
#include "store/store.h"
#include "uplink/dispatcher.h"

namespace httplib {
class Server;
}

namespace vigil::agent {

// Everything the endpoint reports on; each source is thread-safe, none is owned.
struct EndpointSources {
  const config::Config* config = nullptr;
  const Metrics* metrics = nullptr;
  store::Store* store = nullptr;
  store::Journal* journal = nullptr;
  const Pipeline* pipeline = nullptr;
  std::vector<const uplink::Dispatcher*> dispatchers;
  Millis started{0};
  // Shown by /readyz and /api/v1/status, e.g. a damaged state file that was moved aside.
  std::vector<std::string> warnings;
};

// The local HTTP endpoint (SPEC §10), on `http.listen` (loopback by default): GET /metrics
// (Prometheus text format), /healthz, /readyz, /api/v1/status (the JSON behind
// `vigil status`), /api/v1/alerts. Serves from its own thread.
class HttpEndpoint {
 public:
  // Binds and starts serving; fails with a message when the address cannot be bound.
  static Result<std::unique_ptr<HttpEndpoint>> Start(const std::string& listen,
                                                     EndpointSources sources);
  ~HttpEndpoint();  // stops serving and joins
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  // The text of each route, for tests and for the handlers.
  static std::string MetricsText(const EndpointSources& s);
  static std::string StatusJson(const EndpointSources& s);
  static std::string AlertsJson(const EndpointSources& s);
  // Empty when ready, else the one-line reason (SPEC §12.26).
  static std::string NotReadyReason(const EndpointSources& s);

 private:
  explicit HttpEndpoint(EndpointSources sources);

  EndpointSources sources_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace vigil::agent
