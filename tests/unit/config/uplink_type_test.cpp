// An uplink's `type` is a variant of per-type settings (UplinkConfig::type): each uplink
// keeps the keys of its type and no other, while the file accepts and checks the keys as it
// always did.

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "config/config.h"
#include "tests/unit/errors.h"

namespace vigil::config {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

ConfigResult WithUplinks(const std::string& uplinks) {
  return ParseConfig(R"({
    "mqtt": { "subscriptions": [ { "topic": "sensors/{device}/{metric}" } ] },
    "uplinks": [ )" + uplinks +
                         R"( ]
  })",
                     "/etc/vigil/vigil.json");
}

TEST(UplinkType, EachUplinkHoldsTheKeysOfItsType) {
  ConfigResult r = WithUplinks(R"(
    { "name": "cloud", "type": "http", "url": "https://in.example/v1", "gzip": true,
      "headers": { "X-A": "b" } },
    { "name": "am", "type": "alertmanager", "url": "http://am:9093", "headers": { "X-B": "c" } },
    { "name": "influx", "type": "influxdb", "url": "http://influx:8086/write?db=iot" },
    { "name": "broker", "type": "mqtt", "uri": "tcp://cloud:1883", "qos": 2,
      "username": "gw", "password": "pw-12345", "retain": true,
      "payload": { "firing": "ON" } })");
  ASSERT_TRUE(r.config.has_value()) << Errors(r);
  const std::vector<UplinkConfig>& u = r.config->uplinks;
  ASSERT_EQ(u.size(), 4u);

  const auto* http = std::get_if<HttpUplink>(&u[0].type);
  ASSERT_NE(http, nullptr);
  EXPECT_EQ(http->url, "https://in.example/v1");
  EXPECT_EQ(http->headers, (Headers{{"X-A", "b"}}));
  EXPECT_TRUE(http->gzip);

  const auto* am = std::get_if<AlertmanagerUplink>(&u[1].type);
  ASSERT_NE(am, nullptr);
  EXPECT_EQ(am->url, "http://am:9093");
  EXPECT_EQ(am->headers, (Headers{{"X-B", "c"}}));

  const auto* influx = std::get_if<InfluxUplink>(&u[2].type);
  ASSERT_NE(influx, nullptr);
  EXPECT_EQ(influx->url, "http://influx:8086/write?db=iot");
  EXPECT_FALSE(influx->gzip);

  const auto* mqtt = std::get_if<MqttUplink>(&u[3].type);
  ASSERT_NE(mqtt, nullptr);
  EXPECT_EQ(mqtt->uri, "tcp://cloud:1883");
  EXPECT_EQ(mqtt->topic, "vigil/{agent}/{kind}/{rule}") << "the default topic";
  EXPECT_EQ(mqtt->qos, 2);
  EXPECT_EQ(mqtt->username, "gw");
  EXPECT_EQ(mqtt->password, "pw-12345");
  EXPECT_EQ(mqtt->payload, R"({"firing":"ON"})");
  EXPECT_TRUE(mqtt->retain);
}

TEST(UplinkType, KeysOfAnotherTypeAreAcceptedAndNotKept) {
  ConfigResult r = WithUplinks(R"(
    { "name": "cloud", "type": "http", "url": "https://in.example/v1",
      "uri": "tcp://x:1", "topic": "t/{rule}", "qos": 0, "username": "u" },
    { "name": "broker", "type": "mqtt", "uri": "tcp://cloud:1883",
      "url": "http://x", "headers": { "X-A": "b" }, "gzip": true })");
  ASSERT_TRUE(r.config.has_value()) << Errors(r);
  const auto& http = std::get<HttpUplink>(r.config->uplinks.at(0).type);
  EXPECT_EQ(http.url, "https://in.example/v1");
  EXPECT_TRUE(http.headers.empty());
  const auto& mqtt = std::get<MqttUplink>(r.config->uplinks.at(1).type);
  EXPECT_EQ(mqtt.uri, "tcp://cloud:1883");
  EXPECT_EQ(mqtt.topic, "vigil/{agent}/{kind}/{rule}");
  EXPECT_EQ(mqtt.qos, 1);
}

TEST(UplinkType, KeysOfAnotherTypeAreCheckedAsBefore) {
  ConfigResult r = WithUplinks(R"(
    { "name": "cloud", "type": "http", "url": "https://in.example/v1", "qos": 3 },
    { "name": "broker", "type": "mqtt", "uri": "tcp://cloud:1883", "url": 1 },
    { "name": "odd", "type": "ftp", "url": "ftp://x" })");
  EXPECT_FALSE(r.config.has_value());
  EXPECT_EQ(Errors(r),
            "/etc/vigil/vigil.json: /uplinks/0/qos: must be an integer from 0 to 2\n"
            "/etc/vigil/vigil.json: /uplinks/1/url: must be a string\n"
            "/etc/vigil/vigil.json: /uplinks/2/type: unknown uplink type \"ftp\" (http, "
            "alertmanager, influxdb, mqtt)\n");
}

TEST(UplinkType, SecretsOfKeysAnotherTypeDoesNotKeepAreStillSecrets) {
  ConfigResult r = WithUplinks(R"(
    { "name": "cloud", "type": "http", "url": "https://in.example/v1",
      "password": "http-password-1", "uri": "tcp://u:uri-password-2@h:1" },
    { "name": "broker", "type": "mqtt", "uri": "tcp://cloud:1883",
      "headers": { "Authorization": "Bearer mqtt-token-3" },
      "url": "http://x/?token=url-token-4" })");
  ASSERT_TRUE(r.config.has_value()) << Errors(r);
  for (const char* secret : {"http-password-1", "uri-password-2", "Bearer mqtt-token-3",
                             "mqtt-token-3", "url-token-4"}) {
    const std::vector<std::string>& s = r.config->secrets;
    EXPECT_NE(std::find(s.begin(), s.end(), secret), s.end()) << secret;
  }
}

}  // namespace
}  // namespace vigil::config
