#include "config/config.h"
#include "tests/unit/errors.h"

#include <gtest/gtest.h>

namespace vigil::config {
namespace {

constexpr const char* kMinimal = R"({
  "agent": { "id": "gw-1", "state_dir": "state" },
  "mqtt": { "subscriptions": [ { "topic": "sensors/{device}/{metric}" } ] }
})";

TEST(Config, MinimalGetsDefaultsAndRelativePaths) {
  ConfigResult r = ParseConfig(kMinimal, "/etc/vigil/vigil.json");
  ASSERT_TRUE(r.config.has_value()) << Errors(r);
  const Config& c = *r.config;
  EXPECT_EQ(c.agent.id, "gw-1");
  EXPECT_EQ(c.agent.state_dir, "/etc/vigil/state");
  EXPECT_EQ(c.rule_paths, std::vector<std::string>{"/etc/vigil/rules.d"});
  EXPECT_EQ(c.mqtt.uri, "tcp://localhost:1883");
  EXPECT_EQ(c.mqtt.client_id, "vigil-gw-1");
  EXPECT_EQ(c.mqtt.ack, MqttConfig::Ack::kAfterCommit);
  ASSERT_EQ(c.mqtt.subscriptions.size(), 1u);
  EXPECT_EQ(c.mqtt.subscriptions[0].qos, 1);
  EXPECT_EQ(c.store.commit_interval, Millis(100));
  EXPECT_EQ(c.store.ttl, Millis(7LL * 86'400'000));
  EXPECT_EQ(c.http.listen, "127.0.0.1:9460");
  EXPECT_TRUE(c.uplinks.empty());
}

TEST(Config, ReadsUplinksAndRoutes) {
  ConfigResult r = ParseConfig(R"({
    "mqtt": { "subscriptions": [ { "topic": "s/{device}/{metric}", "qos": 2 } ] },
    "uplinks": [ { "name": "cloud", "type": "http", "url": "http://127.0.0.1:1/x",
                   "headers": { "X-A": "b" }, "batch": { "max_events": 10, "max_delay": "250ms" },
                   "retry": { "initial": "100ms", "max": "2s" }, "timeout": "3s", "gzip": true } ],
    "routes": [ { "kinds": ["alert"], "rules": ["boiler-*"], "to": ["cloud"] } ]
  })",
                               "/tmp/v.json");
  ASSERT_TRUE(r.config.has_value()) << Errors(r);
  const UplinkConfig& u = r.config->uplinks.at(0);
  EXPECT_EQ(u.batch_max_events, 10u);
  EXPECT_EQ(u.batch_max_delay, Millis(250));
  EXPECT_EQ(u.retry_initial, Millis(100));
  EXPECT_EQ(u.retry_max, Millis(2000));
  EXPECT_EQ(u.timeout, Millis(3000));
  ASSERT_TRUE(std::holds_alternative<HttpUplink>(u.type));
  const auto& http = std::get<HttpUplink>(u.type);
  EXPECT_EQ(http.url, "http://127.0.0.1:1/x");
  EXPECT_EQ(http.headers, (std::vector<std::pair<std::string, std::string>>{{"X-A", "b"}}));
  EXPECT_TRUE(http.gzip);
  EXPECT_EQ(r.config->mqtt.subscriptions[0].qos, 2);
  EXPECT_EQ(r.config->routes.at(0).rules, std::vector<std::string>{"boiler-*"});
}

TEST(Config, SyntaxErrorNamesLineAndColumn) {
  ConfigResult r = ParseConfig("{\n  \"agent\": {,\n}", "/x/vigil.json");
  ASSERT_FALSE(r.config.has_value());
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_EQ(r.diagnostics[0].location, "2:13");
  EXPECT_EQ(r.diagnostics[0].ToString().rfind("/x/vigil.json:2:13: invalid JSON", 0), 0u)
      << r.diagnostics[0].ToString();
}

TEST(Config, ReportsEveryProblemWithItsPointer) {
  ConfigResult r = ParseConfig(R"({
    "agnet": {},
    "mqtt": { "subscriptions": [ { "topic": "a/{x}/{x}", "qos": 3 } ], "ack": "sometimes" },
    "store": { "commit_interval": "soon", "max_bytes": "lots" },
    "uplinks": [ { "name": "u", "type": "ftp", "url": "ftp://x" } ],
    "routes": [ { "to": ["nowhere"] } ]
  })",
                               "/x/vigil.json");
  ASSERT_FALSE(r.config.has_value());
  std::string all = Errors(r);
  EXPECT_NE(all.find("/x/vigil.json: /agnet: unknown key \"agnet\" (did you mean \"agent\"?)"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("/mqtt/subscriptions/0/topic: capture {x} appears twice"), std::string::npos)
      << all;
  EXPECT_NE(all.find("/mqtt/ack:"), std::string::npos) << all;
  EXPECT_NE(all.find("/store/commit_interval: must be a duration"), std::string::npos) << all;
  EXPECT_NE(all.find("/store/max_bytes: must be a size"), std::string::npos) << all;
  EXPECT_NE(all.find("/uplinks/0/type: unknown uplink type \"ftp\""), std::string::npos) << all;
  EXPECT_NE(all.find("/routes/0/to: unknown uplink \"nowhere\""), std::string::npos) << all;
}

TEST(Config, MissingSubscriptionsIsAnError) {
  ConfigResult r = ParseConfig(R"({ "mqtt": { "uri": "tcp://127.0.0.1:1883" } })", "v.json");
  ASSERT_FALSE(r.config.has_value());
  EXPECT_NE(Errors(r).find("/mqtt/subscriptions: at least one subscription"), std::string::npos);
}

TEST(Config, MissingEnvVariableNamesTheKeyNotTheValue) {
  ConfigResult r = ParseConfig(R"({
    "mqtt": { "password": "${env:VIGIL_TEST_UNSET_PASSWORD}",
              "subscriptions": [ { "topic": "s/{metric}" } ] } })",
                               "v.json");
  ASSERT_FALSE(r.config.has_value());
  EXPECT_NE(Errors(r).find("v.json: /mqtt/password: environment variable "
                           "VIGIL_TEST_UNSET_PASSWORD is not set"),
            std::string::npos)
      << Errors(r);
}

TEST(Config, UnreadableFileIsAnError) {
  ConfigResult r = LoadConfig("/nonexistent/vigil.json");
  ASSERT_FALSE(r.config.has_value());
  EXPECT_EQ(r.diagnostics.at(0).ToString(), "/nonexistent/vigil.json: cannot read the config file");
}

}  // namespace
}  // namespace vigil::config
