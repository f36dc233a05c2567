// Decoder::Decode: the message limits around the payload formats of decode.cpp (decode.h
// says which). Kept apart so the formats can change without touching the limits.

#include <cstdint>
#include <string>

#include "agent/decode.h"

namespace vigil::agent {
namespace {

// Valid UTF-8 without C0 control characters or DEL: text that is safe in a log line, a
// JSON event and a key (keys use \x1e and \x1f as separators).
bool CleanText(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7f) return false;
      ++i;
      continue;
    }
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated
    for (std::size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Overlong forms, UTF-16 surrogates and code points beyond U+10FFFF are not UTF-8.
    static constexpr std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return false;
    i += n + 1;
  }
  return true;
}

// Why a reading breaks the tag limits, or "".
std::string TagProblem(const rules::Reading& r, const config::MqttConfig& mqtt) {
  if (r.tags.size() > mqtt.max_tags) {
    return std::to_string(r.tags.size()) + " tags (mqtt.max_tags is " +
           std::to_string(mqtt.max_tags) + ")";
  }
  for (const auto& [name, value] : r.tags) {
    if (name.size() > mqtt.max_tag_bytes || value.size() > mqtt.max_tag_bytes) {
      return "tag \"" + name.substr(0, 64) + "\" is longer than " +
             std::to_string(mqtt.max_tag_bytes) + " bytes (mqtt.max_tag_bytes)";
    }
    if (!CleanText(name) || !CleanText(value)) {
      return "tag \"" + (CleanText(name) ? name : std::string("?")) +
             "\" holds control characters or is not UTF-8";
    }
  }
  return "";
}

}  // namespace

void Decoder::Decode(std::string_view topic, std::string_view payload, Millis now,
                     Decoded* out) const {
  if (payload.size() > mqtt_.max_payload_bytes) {
    out->rejects.push_back({RejectReason::kSize, std::to_string(payload.size()) + " bytes"});
    return;
  }
  if (!CleanText(topic)) {
    out->rejects.push_back({RejectReason::kNoMatch, "the topic is not UTF-8 text"});
    return;
  }
  const std::size_t first_reading = out->readings.size();
  const std::size_t first_reject = out->rejects.size();
  DecodeMessage(topic, payload, now, out);

  const std::size_t made = out->readings.size() - first_reading;
  if (made > mqtt_.max_readings_per_message) {
    out->readings.resize(first_reading);
    out->rejects.resize(first_reject);
    out->rejects.push_back(
        {RejectReason::kReadings, std::to_string(made) + " readings in one message (" +
                                      "mqtt.max_readings_per_message is " +
                                      std::to_string(mqtt_.max_readings_per_message) + ")"});
    return;
  }
  auto kept = out->readings.begin() + static_cast<std::ptrdiff_t>(first_reading);
  for (auto it = kept; it != out->readings.end(); ++it) {
    std::string problem = TagProblem(*it, mqtt_);
    if (it->metric.empty()) {
      // `a/b/` on a template ending in + or #: the last level, the metric, is empty.
      out->rejects.push_back({RejectReason::kNoMatch, "the topic names no metric"});
    } else if (!problem.empty()) {
      out->rejects.push_back({RejectReason::kTags, std::move(problem)});
    } else {
      if (kept != it) *kept = std::move(*it);
      ++kept;
    }
  }
  out->readings.erase(kept, out->readings.end());
  if (out->readings.size() == first_reading && out->rejects.size() == first_reject) {
    out->rejects.push_back({RejectReason::kValue, "the message holds no reading"});
  }
}

}  // namespace vigil::agent
