// The limits of vigil.json (README "Limits") and loading hostile config text.

#include <gtest/gtest.h>

#include "config/config.h"
#include "config/json_reader.h"
#include "tests/unit/errors.h"

namespace vigil::config {
namespace {

constexpr const char* kMinimal =
    R"({ "mqtt": { "subscriptions": [ { "topic": "s/{metric}" } ] } })";

TEST(ConfigLimits, DefaultsApply) {
  ConfigResult r = ParseConfig(kMinimal, "/etc/vigil/vigil.json");
  ASSERT_TRUE(r.config) << Errors(r);
  EXPECT_EQ(r.config->mqtt.max_payload_bytes, 256u * 1024);
  EXPECT_EQ(r.config->mqtt.max_readings_per_message, 1000u);
  EXPECT_EQ(r.config->mqtt.max_tags, 32u);
  EXPECT_EQ(r.config->mqtt.max_tag_bytes, 256u);
  EXPECT_EQ(r.config->rule_limits.max_files, 1000u);
  EXPECT_EQ(r.config->rule_limits.max_file_bytes, 1u << 20);
  EXPECT_EQ(r.config->rule_limits.max_expression_bytes, 4096u);
  EXPECT_EQ(r.config->rule_limits.max_keys_total, 1'000'000u);
  EXPECT_EQ(r.config->rule_limits.key_idle_evict, Millis(24 * 3'600'000));
}

TEST(ConfigLimits, CanBeSetWithinBounds) {
  ConfigResult r = ParseConfig(R"({
    "mqtt": { "subscriptions": [ { "topic": "s/{metric}" } ],
              "max_readings_per_message": 10, "max_tags": 4, "max_tag_bytes": 64 },
    "rules": { "max_files": 3, "max_file_bytes": "64KiB", "max_expression_bytes": 100 } })",
                               "v.json");
  ASSERT_TRUE(r.config) << Errors(r);
  EXPECT_EQ(r.config->mqtt.max_readings_per_message, 10u);
  EXPECT_EQ(r.config->mqtt.max_tags, 4u);
  EXPECT_EQ(r.config->mqtt.max_tag_bytes, 64u);
  EXPECT_EQ(r.config->rule_limits.max_files, 3u);
  EXPECT_EQ(r.config->rule_limits.max_file_bytes, 64u * 1024);
  EXPECT_EQ(r.config->rule_limits.max_expression_bytes, 100u);

  // The key budget and idle eviction; 0 turns either off.
  r = ParseConfig(R"({ "mqtt": { "subscriptions": [ { "topic": "s/{metric}" } ] },
                       "rules": { "max_keys_total": 0, "key_idle_evict": "0s" } })",
                  "v.json");
  ASSERT_TRUE(r.config) << Errors(r);
  EXPECT_EQ(r.config->rule_limits.max_keys_total, 0u);
  EXPECT_EQ(r.config->rule_limits.key_idle_evict, Millis(0));
  r = ParseConfig(R"({ "mqtt": { "subscriptions": [ { "topic": "s/{metric}" } ] },
                       "rules": { "max_keys_total": 20000, "key_idle_evict": "2h" } })",
                  "v.json");
  ASSERT_TRUE(r.config) << Errors(r);
  EXPECT_EQ(r.config->rule_limits.max_keys_total, 20'000u);
  EXPECT_EQ(r.config->rule_limits.key_idle_evict, Millis(2 * 3'600'000));
  r = ParseConfig(R"({ "mqtt": { "subscriptions": [ { "topic": "s/{metric}" } ] },
                       "rules": { "max_keys_total": -1, "key_idle_evict": "soon" } })",
                  "v.json");
  EXPECT_NE(Errors(r).find("/rules/max_keys_total: must be an integer from 0 to 1000000000"),
            std::string::npos)
      << Errors(r);
  EXPECT_NE(Errors(r).find("/rules/key_idle_evict: must be a duration"), std::string::npos)
      << Errors(r);

  // A tag is matched by std::regex, which recurses per byte: 1024 is as far as it goes.
  r = ParseConfig(R"({ "mqtt": { "subscriptions": [ { "topic": "s/{metric}" } ],
                                 "max_tag_bytes": 100000, "max_tags": 0 } })",
                  "v.json");
  EXPECT_NE(Errors(r).find("/mqtt/max_tag_bytes: must be an integer from 1 to 1024"),
            std::string::npos)
      << Errors(r);
  EXPECT_NE(Errors(r).find("/mqtt/max_tags: must be an integer from 1 to 1000"), std::string::npos);
}

TEST(ConfigLimits, SubscriptionWithMoreTagsThanTheLimitIsAnError) {
  ConfigResult r = ParseConfig(R"({ "mqtt": { "max_tags": 3, "subscriptions": [
      { "topic": "s/{site}/{device}/{metric}", "payload": { "tags": ["room"] } } ] } })",
                               "v.json");
  EXPECT_NE(Errors(r).find("v.json: /mqtt/subscriptions/0: makes readings of up to 4 tags; "
                           "mqtt.max_tags is 3"),
            std::string::npos)
      << Errors(r);
}

// Found by the config fuzzer: nlohmann throws out_of_range (not parse_error) for a number
// beyond double, which escaped the loader and terminated `vigil check` and `vigil run`.
TEST(ConfigLimits, NumberBeyondDoubleIsADiagnosticWithItsPlace) {
  ConfigResult r = ParseConfig("{\n  \"mqtt\": { \"keepalive\": 1e999 }\n}", "v.json");
  ASSERT_FALSE(r.config);
  ASSERT_EQ(r.diagnostics.size(), 1u) << Errors(r);
  EXPECT_EQ(r.diagnostics[0].ToString(),
            "v.json:2:26: invalid JSON: number overflow parsing '1e999'");
}

TEST(ConfigLimits, LongUnknownKeyIsReportedWithoutASuggestion) {
  std::string key(100'000, 'x');
  ConfigResult r = ParseConfig("{\"" + key + "\": 1}", "v.json");
  ASSERT_FALSE(r.config);
  EXPECT_NE(Errors(r).find("unknown key"), std::string::npos);
  EXPECT_EQ(Errors(r).find("did you mean"), std::string::npos);
}

}  // namespace
}  // namespace vigil::config
