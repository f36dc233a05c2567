// The message limits around the decoder (decode.h, README "Limits") and the decode fuzzer's
// findings.

#include <gtest/gtest.h>

#include "agent/decode.h"

namespace vigil::agent {
namespace {

constexpr Millis kNow{1'795'341'720'000};

config::MqttConfig Mqtt() {
  auto r = config::ParseConfig(R"({ "mqtt": {
      "max_readings_per_message": 3, "max_tag_bytes": 16,
      "subscriptions": [
        { "topic": "sensors/{device}/{metric}",
          "payload": { "value": "value", "time": "ts", "tags": ["site", "room", "floor"] } },
        { "topic": "plant/{device}/state", "payload": { "metrics": ["temperature", "pressure"] } },
        { "topic": "fine/{device}/+", "payload": { "time": "t" } } ] } })",
                               "v.json");
  EXPECT_TRUE(r.config.has_value());
  // Below what the first subscription can make (5 tags): the config refuses that, so it is
  // set here to reach the decoder's own check.
  r.config->mqtt.max_tags = 4;
  return r.config->mqtt;
}

class DecodeLimits : public ::testing::Test {
 protected:
  Decoded Decode(std::string_view topic, std::string_view payload) {
    Decoded out;
    decoder_.Decode(topic, payload, kNow, &out);
    return out;
  }
  static std::string Reasons(const Decoded& d) {
    std::string out;
    for (const auto& r : d.rejects) out += std::string(ReasonName(r.reason)) + ":" + r.detail + ";";
    return out;
  }
  config::MqttConfig mqtt_ = Mqtt();
  Decoder decoder_{mqtt_};
};

TEST_F(DecodeLimits, TooManyReadingsRejectTheWholeMessageOnce) {
  Decoded ok = Decode("sensors/d1/t", R"([{"value": 1}, {"value": 2}, {"value": null}])");
  EXPECT_EQ(ok.readings.size(), 2u);
  EXPECT_EQ(ok.rejects.size(), 1u);
  Decoded d = Decode("sensors/d1/t", R"([{"value": 1}, {"value": 2}, {"value": 3}, {"value": 4}])");
  EXPECT_TRUE(d.readings.empty());
  ASSERT_EQ(d.rejects.size(), 1u) << Reasons(d);
  EXPECT_EQ(d.rejects[0].reason, RejectReason::kReadings);
  EXPECT_EQ(d.rejects[0].detail, "4 readings in one message (mqtt.max_readings_per_message is 3)");
  EXPECT_STREQ(ReasonName(RejectReason::kReadings), "readings");
}

TEST_F(DecodeLimits, ReadingBeyondTheTagLimitsIsRejectedAlone) {
  // device, metric, site, room, floor: 5 tags, the limit is 4.
  Decoded d = Decode("sensors/d1/t", R"([{"value": 1, "site": "a"},
                                         {"value": 2, "site": "a", "room": "b", "floor": 3}])");
  ASSERT_EQ(d.readings.size(), 1u) << Reasons(d);
  EXPECT_EQ(d.readings[0].value, 1);
  EXPECT_EQ(Reasons(d), "tags:5 tags (mqtt.max_tags is 4);");
  d = Decode("sensors/d1/t", R"({"value": 1, "site": "a-site-name-longer-than-16"})");
  EXPECT_TRUE(d.readings.empty());
  EXPECT_EQ(Reasons(d), "tags:tag \"site\" is longer than 16 bytes (mqtt.max_tag_bytes);");
  d = Decode("sensors/a-device-name-longer-than-16/t", R"({"value": 1})");
  EXPECT_EQ(d.rejects.at(0).reason, RejectReason::kTags);
  // Control characters: the key separators (\x1e, \x1f) and log lines are safe.
  for (const char* payload :
       {R"({"value": 1, "site": "a\u001fb"})", R"({"value": 1, "site": "a\nb"})",
        R"({"value": 1, "site": "a\u0000"})"}) {
    d = Decode("sensors/d1/t", payload);
    EXPECT_TRUE(d.readings.empty()) << payload;
    EXPECT_EQ(Reasons(d), "tags:tag \"site\" holds control characters or is not UTF-8;");
  }
}

TEST_F(DecodeLimits, TopicThatIsNotCleanTextIsRejected) {
  for (std::string topic : {std::string("sensors/d\xff/t"), std::string("sensors/d\n1/t"),
                            std::string("sensors/\xc0\xaf/t"), std::string("sensors/d1/t\x7f"),
                            std::string("sensors/\xed\xa0\x80/t")}) {
    Decoded d = Decode(topic, R"({"value": 1})");
    EXPECT_TRUE(d.readings.empty()) << topic;
    EXPECT_EQ(Reasons(d), "topic:the topic is not UTF-8 text;") << topic;
  }
  Decoded d = Decode("sensors/gerät-ü/t", R"({"value": 1})");
  EXPECT_EQ(d.readings.size(), 1u) << Reasons(d);
}

TEST_F(DecodeLimits, EveryMessageIsKeptOrCounted) {
  Decoded d = Decode("sensors/d1/t", "[]");
  EXPECT_EQ(Reasons(d), "value:the message holds no reading;");
  d = Decode("plant/p1/state", R"({"humidity": 3})");
  EXPECT_EQ(Reasons(d), "value:the message holds no reading;");
  // Found by the decode fuzzer: a topic ending in "/" on a template ending in + made a
  // reading with an empty metric.
  d = Decode("fine/d1/", R"({"value": 1})");
  EXPECT_TRUE(d.readings.empty());
  EXPECT_EQ(Reasons(d), "topic:the topic names no metric;");
}

// A time of -1e300 was cast to an integer before the range check (UB; found with a
// hand-written seed of the decode fuzzer).
TEST_F(DecodeLimits, HugeNegativeTimeIsATimeReject) {
  Decoded d = Decode("sensors/d1/t", R"({"value": 1, "ts": -1e300})");
  EXPECT_TRUE(d.readings.empty());
  ASSERT_EQ(d.rejects.size(), 1u);
  EXPECT_EQ(d.rejects[0].reason, RejectReason::kTime);
}

// Found with a hand-written input for the bad-input test: a tag field holding deeply nested
// arrays was dumped as the tag's text, recursively, until the stack overflowed.
TEST_F(DecodeLimits, ObjectOrArrayInATagFieldIsIgnoredAsNullIs) {
  const std::string deep = std::string(100'000, '[') + std::string(100'000, ']');
  Decoded d = Decode("sensors/d1/t", R"({"value": 1, "room": )" + deep + "}");
  ASSERT_EQ(d.readings.size(), 1u) << Reasons(d);
  EXPECT_EQ(rules::FindTag(d.readings[0].tags, "room"), nullptr);
  d = Decode("sensors/d1/t", R"({"value": 1, "room": {"a": 1}, "site": 7})");
  ASSERT_EQ(d.readings.size(), 1u);
  EXPECT_EQ(rules::FindTag(d.readings[0].tags, "room"), nullptr);
  EXPECT_EQ(*rules::FindTag(d.readings[0].tags, "site"), "7");
}

TEST_F(DecodeLimits, PayloadAboveTheLimitIsRejectedUnread) {
  Decoded d = Decode("sensors/d1/t", std::string(256 * 1024 + 1, '['));
  EXPECT_EQ(Reasons(d), "size:262145 bytes;");
}

}  // namespace
}  // namespace vigil::agent
