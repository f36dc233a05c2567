#include "agent/decode.h"

#include <gtest/gtest.h>

#include <cmath>

namespace vigil::agent {
namespace {

constexpr Millis kNow{1'795'341'720'000};  // 2026-11-22T10:02:00Z

config::MqttConfig Mqtt() {
  auto r = config::ParseConfig(R"({ "mqtt": { "subscriptions": [
      { "topic": "sensors/{device}/{metric}",
        "payload": { "format": "json", "value": "value", "time": "ts", "tags": ["site"] } },
      { "topic": "plant/{line}/{device}/state",
        "payload": { "metrics": ["temperature", "pressure"], "time": "t", "time_unit": "s" } },
      { "topic": "legacy/{device}/rpm", "payload": { "format": "number" } },
      { "topic": "nested/{device}", "metric": "humidity",
        "payload": { "value": "data.h", "time": "at", "time_unit": "rfc3339" } }
    ] } })",
                               "v.json");
  EXPECT_TRUE(r.config.has_value());
  return r.config->mqtt;
}

class DecodeTest : public ::testing::Test {
 protected:
  Decoded Decode(std::string_view topic, std::string_view payload) {
    Decoded out;
    decoder_.Decode(topic, payload, kNow, &out);
    return out;
  }
  config::MqttConfig mqtt_ = Mqtt();
  Decoder decoder_{mqtt_};
};

TEST_F(DecodeTest, JsonValueWithTimeAndTags) {
  Decoded d = Decode("sensors/boiler-3/temperature",
                     R"({"value": 21.5, "ts": 1795341719000, "site": "berlin"})");
  ASSERT_EQ(d.readings.size(), 1u);
  ASSERT_TRUE(d.rejects.empty());
  const rules::Reading& r = d.readings[0];
  EXPECT_EQ(r.metric, "temperature");
  EXPECT_EQ(r.value, 21.5);
  EXPECT_EQ(r.time, Millis(1'795'341'719'000));
  rules::Tags want{{"device", "boiler-3"}, {"metric", "temperature"}, {"site", "berlin"}};
  EXPECT_EQ(r.tags, want);
}

// Tags are sorted by name; of two with the same name the first wins: the topic's over the
// payload's. Few tags take an insertion sort, many a stable sort: both the same.
TEST_F(DecodeTest, TagsAreSortedAndTheTopicsWinOverThePayloads) {
  auto r = config::ParseConfig(R"({ "mqtt": { "subscriptions": [
      { "topic": "a/{zone}/{device}/{metric}",
        "payload": { "value": "v", "tags": ["device", "site", "t01", "t02", "t03",
                     "t04", "t05", "t06", "t07", "t08", "t09", "t10", "t11", "t12", "t13",
                     "t14", "t15", "t16"] } } ] } })",
                               "v.json");
  ASSERT_TRUE(r.config.has_value());
  Decoder decoder(r.config->mqtt);
  for (bool many : {false, true}) {
    std::string payload = R"({"v": 1, "device": "from-payload", "site": "s")";
    if (many) {
      for (int i = 16; i >= 1; --i) {
        payload += ",\"t" + std::string(i < 10 ? "0" : "") + std::to_string(i) + "\": \"x\"";
      }
    }
    payload += "}";
    Decoded d;
    decoder.Decode("a/z1/from-topic/temp", payload, kNow, &d);
    ASSERT_EQ(d.readings.size(), 1u) << payload;
    const rules::Tags& tags = d.readings[0].tags;
    ASSERT_EQ(tags.size(), many ? 20u : 4u);
    for (std::size_t i = 1; i < tags.size(); ++i) EXPECT_LT(tags[i - 1].first, tags[i].first);
    EXPECT_EQ(tags[0], (std::pair<std::string, std::string>{"device", "from-topic"}));
    EXPECT_EQ(tags[1], (std::pair<std::string, std::string>{"metric", "temp"}));
    EXPECT_EQ(tags[2], (std::pair<std::string, std::string>{"site", "s"}));
    EXPECT_EQ(tags.back(), (std::pair<std::string, std::string>{"zone", "z1"}));
  }
}

TEST_F(DecodeTest, ReadingWithoutTimeGetsArrivalTime) {
  Decoded d = Decode("sensors/d1/temperature", R"({"value": 1})");
  ASSERT_EQ(d.readings.size(), 1u);
  EXPECT_EQ(d.readings[0].time, kNow);
}

TEST_F(DecodeTest, StringNumbersAndBooleansAreValues) {
  EXPECT_EQ(Decode("sensors/d1/t", R"({"value": "21.5"})").readings.at(0).value, 21.5);
  EXPECT_EQ(Decode("sensors/d1/door", R"({"value": true})").readings.at(0).value, 1);
  EXPECT_EQ(Decode("sensors/d1/door", R"({"value": false})").readings.at(0).value, 0);
}

TEST_F(DecodeTest, BadMessagesAreRejectedWithTheirReason) {
  struct Case {
    const char* topic;
    const char* payload;
    RejectReason reason;
  };
  const Case cases[] = {
      {"sensors/d1/t", "{not json", RejectReason::kJson},
      {"sensors/d1/t", R"({"temp": 1})", RejectReason::kValue},
      {"sensors/d1/t", R"({"value": null})", RejectReason::kValue},
      {"sensors/d1/t", R"({"value": "warm"})", RejectReason::kValue},
      {"sensors/d1/t", R"({"value": [1]})", RejectReason::kValue},
      {"sensors/d1/t", R"({"value": {"x": 1}})", RejectReason::kValue},
      {"sensors/d1/t", R"({"value": "NaN"})", RejectReason::kNaN},
      {"sensors/d1/t", R"({"value": "inf"})", RejectReason::kNaN},
      // A number beyond double range does not parse as JSON at all.
      {"sensors/d1/t", R"({"value": 1e999})", RejectReason::kJson},
      {"sensors/d1/t", R"({"value": 1, "ts": "yesterday"})", RejectReason::kTime},
      {"sensors/d1/t", R"({"value": 1, "ts": -5})", RejectReason::kTime},
      {"sensors/d1/t", R"({"value": 1, "ts": 1795349000000})", RejectReason::kFuture},
      {"nowhere/x", R"({"value": 1})", RejectReason::kNoMatch},
      {"legacy/d1/rpm", "fast", RejectReason::kValue},
  };
  for (const Case& c : cases) {
    Decoded d = Decode(c.topic, c.payload);
    EXPECT_TRUE(d.readings.empty()) << c.payload;
    ASSERT_EQ(d.rejects.size(), 1u) << c.payload;
    EXPECT_EQ(d.rejects[0].reason, c.reason) << c.payload << ": " << d.rejects[0].detail;
  }
}

TEST_F(DecodeTest, OversizePayloadIsRejected) {
  std::string big(mqtt_.max_payload_bytes + 1, ' ');
  Decoded d = Decode("sensors/d1/t", big);
  ASSERT_EQ(d.rejects.size(), 1u);
  EXPECT_EQ(d.rejects[0].reason, RejectReason::kSize);
  EXPECT_STREQ(ReasonName(d.rejects[0].reason), "size");
}

TEST_F(DecodeTest, BatchElementsStandAlone) {
  Decoded d = Decode("sensors/d1/t", R"([{"value": 1}, {"value": "x"}, {"value": 3}])");
  ASSERT_EQ(d.readings.size(), 2u);
  EXPECT_EQ(d.readings[0].value, 1);
  EXPECT_EQ(d.readings[1].value, 3);
  ASSERT_EQ(d.rejects.size(), 1u);
  EXPECT_EQ(d.rejects[0].reason, RejectReason::kValue);
}

TEST_F(DecodeTest, MetricsMappingMakesOneReadingPerField) {
  Decoded d =
      Decode("plant/l1/press-7/state", R"({"temperature": 80, "pressure": 2.5, "t": 1795341700})");
  ASSERT_EQ(d.readings.size(), 2u);
  EXPECT_EQ(d.readings[0].metric, "temperature");
  EXPECT_EQ(d.readings[1].metric, "pressure");
  EXPECT_EQ(d.readings[1].time, Millis(1'795'341'700'000));
  rules::Tags want{{"device", "press-7"}, {"line", "l1"}, {"metric", "pressure"}};
  EXPECT_EQ(d.readings[1].tags, want);
}

TEST_F(DecodeTest, NumberFormatAndLastLevelMetric) {
  Decoded d = Decode("legacy/m1/rpm", " 1500 ");
  ASSERT_EQ(d.readings.size(), 1u);
  EXPECT_EQ(d.readings[0].metric, "rpm");
  EXPECT_EQ(d.readings[0].value, 1500);
}

TEST_F(DecodeTest, NestedValueFieldRfc3339TimeAndConfiguredMetric) {
  Decoded d = Decode("nested/n1", R"({"data": {"h": 40}, "at": "2026-11-22T11:01:00+01:00"})");
  ASSERT_EQ(d.readings.size(), 1u) << (d.rejects.empty() ? "" : d.rejects[0].detail);
  EXPECT_EQ(d.readings[0].metric, "humidity");
  EXPECT_EQ(d.readings[0].value, 40);
  EXPECT_EQ(d.readings[0].time, Millis(1'795'341'660'000));
}

// Plain payloads are read in place (agent/json_fields.h); a member that is an object sends the
// same payload through the full parse. Both must give the same readings and rejects.
TEST_F(DecodeTest, InPlaceAndFullParseGiveTheSameResult) {
  const std::vector<std::pair<std::string, std::string>> messages = {
      {"sensors/b1/temperature", R"({"value": 21.5, "ts": 1795341719000, "site": "berlin")"},
      {"sensors/b1/temperature", R"({"value": "21.5", "ts": "1795341719000")"},
      {"sensors/b1/temperature", R"({"value": true, "ts": null, "site": null)"},
      {"sensors/b1/temperature", R"({"value": -0, "site": "")"},
      {"sensors/b1/temperature", R"({"value": null)"},
      {"sensors/b1/temperature", R"({"value": "abc")"},
      {"sensors/b1/temperature", R"({"value": " nan ")"},
      {"sensors/b1/temperature", R"({"ts": 1)"},
      {"sensors/b1/temperature", R"({"value": 1, "ts": -5)"},
      {"sensors/b1/temperature", R"({"value": 1, "ts": 1e300)"},
      {"sensors/b1/temperature", R"({"value": 1, "ts": true)"},
      {"sensors/b1/temperature", R"({"value": 1, "ts": "2026-11-22T10:00:00Z")"},
      {"sensors/b1/temperature", R"({"value": 1, "ts": 1895341719000)"},
      {"sensors/b1/temperature", R"({"value": 1.7976931348623157e308, "site": "a)"
                                 "\x7f"
                                 R"(")"},
      {"plant/l1/p7/state", R"({"temperature": 80, "pressure": "x", "t": 1795341700)"},
      {"plant/l1/p7/state", R"({"t": 1795341700)"},
      {"plant/l1/p7/state", R"({"temperature": 80.25, "t": "1795341700.5")"},
  };
  for (const auto& [topic, body] : messages) {
    Decoded in_place = Decode(topic, body + "}");
    Decoded parsed = Decode(topic, body + R"(, "pad": {}})");
    ASSERT_EQ(in_place.readings.size(), parsed.readings.size()) << body;
    for (std::size_t i = 0; i < parsed.readings.size(); ++i) {
      EXPECT_EQ(in_place.readings[i].metric, parsed.readings[i].metric) << body;
      EXPECT_EQ(in_place.readings[i].tags, parsed.readings[i].tags) << body;
      EXPECT_EQ(in_place.readings[i].time, parsed.readings[i].time) << body;
      EXPECT_EQ(in_place.readings[i].value, parsed.readings[i].value) << body;
    }
    ASSERT_EQ(in_place.rejects.size(), parsed.rejects.size()) << body;
    for (std::size_t i = 0; i < parsed.rejects.size(); ++i) {
      EXPECT_EQ(in_place.rejects[i].reason, parsed.rejects[i].reason) << body;
      EXPECT_EQ(in_place.rejects[i].detail, parsed.rejects[i].detail) << body;
    }
  }
}

}  // namespace
}  // namespace vigil::agent
