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
  kNoMatch,   // "topic": no subscription template matches the topic
  kJson,      // "json": the payload is not valid JSON
  kValue,     // "value": missing, null, object, array or non-numeric string value
  kNaN,       // "nan": NaN or infinite value
  kTime,      // "time": the time field is present but unparseable, or before 1970
  kFuture,    // "future": more than max_clock_skew ahead of the agent's clock
  kSize,      // "size": payload larger than mqtt.max_payload_bytes
  kReadings,  // "readings": more readings in one message than mqtt.max_readings_per_message
  kTags,      // "tags": more tags than mqtt.max_tags, a tag longer than mqtt.max_tag_bytes,
              // or a tag with control characters
};
// The last reason: metrics keep one counter per reason up to it.
constexpr RejectReason kLastRejectReason = RejectReason::kTags;
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
//
// The message limits (README "Limits") hold for whatever it returns: a payload above
// mqtt.max_payload_bytes, a topic that is not valid UTF-8 or holds control characters, and a
// message that would make more than mqtt.max_readings_per_message readings are rejected
// whole (one reject); a reading with more than mqtt.max_tags tags, or a tag name or value
// longer than mqtt.max_tag_bytes or holding control characters, or with an empty metric
// name (the topic's last level), is rejected alone. A message
// that makes neither a reading nor a reject (an empty batch, a `metrics` object without any
// of them) is rejected as `value`: every message is either kept or counted.
class Decoder {
 public:
  explicit Decoder(const config::MqttConfig& mqtt);
  // Appends to *out (does not clear it).
  void Decode(std::string_view topic, std::string_view payload, Millis now, Decoded* out) const;

 private:
  // The payload formats (decode.cpp); Decode (decode_limits.cpp) applies the limits around it.
  void DecodeMessage(std::string_view topic, std::string_view payload, Millis now,
                     Decoded* out) const;

  const config::MqttConfig& mqtt_;  // not owned; outlives the decoder
};

}  // namespace vigil::agent
