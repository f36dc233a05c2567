#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/values.h"
#include "rules/reading.h"

namespace vigil::agent {

// Why a message (or one element of a batch) was rejected: the `reason` label of
// vigil_rejected_readings_total (SPEC §7, §12).
enum class RejectReason {
  kNoMatch,  // "topic": no subscription template matches the topic
  kJson,     // "json": the payload is not valid JSON
  kValue,    // "value": missing, null, object, array or non-numeric string value
  kNaN,      // "nan": NaN or infinite value
  kTime,     // "time": the time field is present but unparseable, or before 1970
  kFuture,   // "future": more than max_clock_skew ahead of the agent's clock
  kSize,     // "size": payload larger than mqtt.max_payload_bytes
};
const char* ReasonName(RejectReason reason);

struct Reject {
  RejectReason reason;
  std::string detail;  // for the log, e.g. `field "value" missing`
};

struct Decoded {
  std::vector<rules::Reading> readings;
  std::vector<Reject> rejects;
};

// Turns one MQTT message into readings (SPEC §2 payload formats, §12.1, §12.2, §12.11,
// §12.12): the first subscription whose template matches decodes it; topic captures become
// tags, plus `metric`. Readings without a time get `now`. Never throws; pure.
class Decoder {
 public:
  explicit Decoder(const config::MqttConfig& mqtt);
  // Appends to *out (does not clear it).
  void Decode(std::string_view topic, std::string_view payload, Millis now, Decoded* out) const;

 private:
  const config::MqttConfig& mqtt_;  // not owned; outlives the decoder
};

}  // namespace vigil::agent
