#pragma once

#include <memory>
#include <string>

#include "uplink/http_client.h"
#include "uplink/sink.h"

namespace vigil::uplink {

// The `influxdb` uplink (SPEC §9, §12.25): aggregate events as InfluxDB line protocol POSTed
// to the configured write URL (e.g. `http://influx:8086/write?db=iot`): measurement = rule id,
// tags = the key's tags + `agent`, fields = the aggregate values (count() and distinct() as
// integers `5i`, the rest as floats; null values left out), timestamp = window end, in the
// precision the URL asks for (`precision=s|ms|u|ns`, default ns). Names and tag values are
// escaped as InfluxDB 1.x parses the line protocol (a backslash it cannot store exactly is
// dropped at the end of a value and doubled before a comma, space or `=`; uplink/README.md).
// Alert events, and aggregates without a numeric value, are not sent: they are `skipped`.
class InfluxSink final : public Sink {
 public:
  static Result<std::unique_ptr<Sink>> Create(const config::UplinkConfig& config,
                                              const config::InfluxUplink& influx);
  Verdict Send(const std::vector<store::OutboxRow>& batch) override;

 private:
  InfluxSink(config::InfluxUplink influx, std::unique_ptr<HttpClient> client);
  config::InfluxUplink influx_;
  std::unique_ptr<HttpClient> client_;
  long long per_ms_ = 1'000'000;  // timestamp units per millisecond (0: seconds)
};

// One event (SPEC §6 JSON) as a line, or "" when it has nothing to write.
std::string LineProtocol(const std::string& event_json, long long units_per_ms);

}  // namespace vigil::uplink
