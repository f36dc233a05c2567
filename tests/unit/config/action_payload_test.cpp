// An mqtt uplink's `payload` template and `retain` flag (actions to devices), and the
// placeholder syntax of its strings.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "config/text_template.h"
#include "tests/unit/errors.h"

namespace vigil::config {
namespace {

// A config with one uplink whose members are `uplink` (JSON text of an object's members).
ConfigResult WithUplink(const std::string& uplink) {
  return ParseConfig(R"({
    "mqtt": { "subscriptions": [ { "topic": "sensors/{device}/{metric}" } ] },
    "uplinks": [ { "name": "actuators", )" +
                         uplink + R"( } ]
  })",
                     "/etc/vigil/vigil.json");
}

TEST(ActionPayload, ReadsTheTemplateAndRetain) {
  ConfigResult r = WithUplink(R"("type": "mqtt", "uri": "tcp://127.0.0.1:1883",
      "topic": "actuators/{device}/fan", "retain": true,
      "payload": { "firing": { "on": true, "why": "{summary}", "avg": "{values.avg}" },
                   "resolved": { "on": false }, "aggregate": ["{device}", 1, "{{x}}"] })");
  ASSERT_TRUE(r.config.has_value()) << Errors(r);
  const auto& u = std::get<MqttUplink>(r.config->uplinks.at(0).type);
  EXPECT_TRUE(u.retain);
  EXPECT_EQ(nlohmann::json::parse(u.payload), nlohmann::json::parse(R"({
      "firing": { "on": true, "why": "{summary}", "avg": "{values.avg}" },
      "resolved": { "on": false }, "aggregate": ["{device}", 1, "{{x}}"] })"));
}

TEST(ActionPayload, WithoutPayloadEventsAreSentAsTheyAreAndNotRetained) {
  ConfigResult r = WithUplink(R"("type": "mqtt", "uri": "tcp://127.0.0.1:1883")");
  ASSERT_TRUE(r.config.has_value()) << Errors(r);
  EXPECT_EQ(std::get<MqttUplink>(r.config->uplinks.at(0).type).payload, "");
  EXPECT_FALSE(std::get<MqttUplink>(r.config->uplinks.at(0).type).retain);
}

TEST(ActionPayload, EveryKindOfEntryValueButNull) {
  ConfigResult r = WithUplink(R"("type": "mqtt", "uri": "tcp://h:1",
      "payload": { "firing": "ON", "resolved": 0, "aggregate": false })");
  EXPECT_TRUE(r.config.has_value()) << Errors(r);
  r = WithUplink(R"("type": "mqtt", "uri": "tcp://h:1", "payload": { "firing": null })");
  EXPECT_EQ(Errors(r),
            "/etc/vigil/vigil.json: /uplinks/0/payload/firing: must be an object, list, string, "
            "number or boolean (leave firing out to send nothing)\n");
}

TEST(ActionPayload, UnknownKeysAreErrorsListingTheAllowedOnes) {
  ConfigResult r = WithUplink(R"("type": "mqtt", "uri": "tcp://h:1",
      "payload": { "fireing": { "on": true }, "alert": 1 })");
  EXPECT_FALSE(r.config.has_value());
  EXPECT_EQ(Errors(r),
            "/etc/vigil/vigil.json: /uplinks/0/payload/alert: unknown key \"alert\"; the keys "
            "are firing, resolved, aggregate\n"
            "/etc/vigil/vigil.json: /uplinks/0/payload/fireing: unknown key \"fireing\" (did "
            "you mean \"firing\"?); the keys are firing, resolved, aggregate\n");
}

TEST(ActionPayload, MustBeANonEmptyObject) {
  for (const char* payload : {"{}", "[]", "\"on\"", "true"}) {
    ConfigResult r =
        WithUplink(std::string(R"("type": "mqtt", "uri": "tcp://h:1", "payload": )") + payload);
    EXPECT_EQ(Errors(r),
              "/etc/vigil/vigil.json: /uplinks/0/payload: must be an object with at least one "
              "of firing, resolved, aggregate\n")
        << payload;
  }
}

TEST(ActionPayload, UnbalancedBracesAreErrorsNamingTheString) {
  ConfigResult r = WithUplink(R"("type": "mqtt", "uri": "tcp://h:1",
      "payload": { "firing": { "a": ["ok", "{device"] }, "resolved": "}", "aggregate": "{}" })");
  EXPECT_FALSE(r.config.has_value());
  EXPECT_EQ(Errors(r),
            "/etc/vigil/vigil.json: /uplinks/0/payload/aggregate: empty placeholder {} at "
            "position 1\n"
            "/etc/vigil/vigil.json: /uplinks/0/payload/firing/a/1: '{' at position 1 is not "
            "closed (write {{ for a literal {)\n"
            "/etc/vigil/vigil.json: /uplinks/0/payload/resolved: '}' at position 1 closes no "
            "'{' (write }} for a literal })\n");
}

TEST(ActionPayload, ObjectKeysAreNotTemplates) {
  ConfigResult r = WithUplink(R"("type": "mqtt", "uri": "tcp://h:1",
      "payload": { "firing": { "{": "}}" } })");
  EXPECT_TRUE(r.config.has_value()) << Errors(r);
}

TEST(ActionPayload, NestingIsBounded) {
  std::string deep = "1";
  for (int i = 0; i < 40; ++i) deep = "[" + deep + "]";
  ConfigResult r =
      WithUplink(R"("type": "mqtt", "uri": "tcp://h:1", "payload": { "firing": )" + deep + "}");
  ASSERT_EQ(r.diagnostics.size(), 1u) << Errors(r);
  EXPECT_NE(r.diagnostics[0].message.find("nested deeper than 32"), std::string::npos);
}

TEST(ActionPayload, PayloadAndRetainOnlyForMqttUplinks) {
  ConfigResult r = WithUplink(R"("type": "http", "url": "http://h/x", "retain": true,
      "payload": { "firing": { "on": true } })");
  EXPECT_EQ(Errors(r),
            "/etc/vigil/vigil.json: /uplinks/0/payload: only for mqtt uplinks\n"
            "/etc/vigil/vigil.json: /uplinks/0/retain: only for mqtt uplinks\n");
  r = WithUplink(R"("type": "mqtt", "uri": "tcp://h:1", "retain": "yes")");
  EXPECT_FALSE(r.config.has_value());
  EXPECT_NE(Errors(r).find("/uplinks/0/retain"), std::string::npos) << Errors(r);
}

std::vector<TextPiece> Pieces(std::string_view text) {
  std::string error;
  auto pieces = ParseTextTemplate(text, &error);
  EXPECT_TRUE(pieces.has_value()) << text << ": " << error;
  return pieces.value_or(std::vector<TextPiece>{});
}

std::string Error(std::string_view text) {
  std::string error;
  EXPECT_FALSE(ParseTextTemplate(text, &error).has_value()) << text;
  return error;
}

TEST(TextTemplate, SplitsLiteralsAndPlaceholders) {
  using K = TextPiece::Kind;
  auto p = Pieces("fan {device}: {values.avg}{x}");
  ASSERT_EQ(p.size(), 5u);
  EXPECT_EQ(p[0].kind, K::kLiteral);
  EXPECT_EQ(p[0].text, "fan ");
  EXPECT_EQ(p[1].kind, K::kPlaceholder);
  EXPECT_EQ(p[1].text, "device");
  EXPECT_EQ(p[2].text, ": ");
  EXPECT_EQ(p[3].text, "values.avg");
  EXPECT_EQ(p[4].kind, K::kPlaceholder);
  EXPECT_EQ(p[4].text, "x");
  EXPECT_TRUE(Pieces("").empty());
}

TEST(TextTemplate, DoubledBracesAreLiteralAndJoinTheirNeighbours) {
  auto p = Pieces("{{\"on\": {{{device}}}}}");
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0].text, "{\"on\": {");
  EXPECT_EQ(p[1].kind, TextPiece::Kind::kPlaceholder);
  EXPECT_EQ(p[1].text, "device");
  EXPECT_EQ(p[2].text, "}}");
}

TEST(TextTemplate, UnbalancedOrEmptyOrSpacedPlaceholdersAreErrors) {
  EXPECT_EQ(Error("a {b"), "'{' at position 3 is not closed (write {{ for a literal {)");
  EXPECT_EQ(Error("{a{b}"), "'{' at position 1 is not closed (write {{ for a literal {)");
  EXPECT_EQ(Error("a}"), "'}' at position 2 closes no '{' (write }} for a literal })");
  EXPECT_EQ(Error("{a}}"), "'}' at position 4 closes no '{' (write }} for a literal })");
  EXPECT_EQ(Error("{}"), "empty placeholder {} at position 1");
  EXPECT_EQ(Error("{ \"on\": 1 }"),
            "placeholder { \"on\": 1 } holds a space or control character (write {{ and }} for "
            "literal braces)");
}

}  // namespace
}  // namespace vigil::config
