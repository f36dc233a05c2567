// A `tls` block with a plaintext MQTT URI (tcp://, mqtt://, ws://, no scheme) would connect
// without TLS: a config error naming the pointer, for the broker and for mqtt uplinks.

#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "tests/unit/errors.h"

namespace vigil::config {
namespace {

std::string Broker(const std::string& uri, const std::string& tls = R"({"ca_file": "ca.pem"})") {
  return R"({"mqtt": {"uri": ")" + uri + R"(", "tls": )" + tls +
         R"(, "subscriptions": [{"topic": "s/{metric}"}]}})";
}

TEST(MqttTls, TlsWithAPlaintextBrokerUriIsAnErrorAtItsPointer) {
  for (const char* uri : {"tcp://gw:1883", "mqtt://gw:1883", "ws://gw:8080", "gw:1883"}) {
    ConfigResult r = ParseConfig(Broker(uri), "/etc/vigil/vigil.json");
    ASSERT_FALSE(r.config.has_value()) << uri;
    ASSERT_EQ(r.diagnostics.size(), 1u) << Errors(r);
    const std::string scheme = std::string(uri) == "gw:1883"
                                   ? "tcp"
                                   : std::string(uri).substr(0, std::string(uri).find(':'));
    EXPECT_EQ(r.diagnostics[0].ToString(),
              "/etc/vigil/vigil.json: /mqtt/tls: given for a plaintext " + scheme +
                  ":// broker, which would not use it: use an ssl:// or mqtts:// URI for TLS "
                  "(e.g. ssl://host:8883), or remove tls");
  }
}

TEST(MqttTls, EvenAnEmptyOrSkipVerifyTlsBlockIsRefusedWithTcp) {
  EXPECT_FALSE(ParseConfig(Broker("tcp://gw:1883", "{}"), "v.json").config.has_value());
  EXPECT_FALSE(ParseConfig(Broker("tcp://gw:1883", R"({"insecure_skip_verify": true})"), "v.json")
                   .config.has_value());
}

TEST(MqttTls, TlsUrisTakeTheBlockAndPlaintextNeedsNone) {
  for (const char* uri : {"ssl://gw:8883", "mqtts://gw:8883", "wss://gw:443"}) {
    ConfigResult r = ParseConfig(Broker(uri), "/etc/vigil/vigil.json");
    ASSERT_TRUE(r.config.has_value()) << uri << ": " << Errors(r);
    ASSERT_TRUE(r.config->mqtt.tls.has_value());
    EXPECT_EQ(r.config->mqtt.tls->ca_file, "/etc/vigil/ca.pem");
  }
  ConfigResult plain = ParseConfig(
      R"({"mqtt": {"uri": "tcp://gw:1883", "subscriptions": [{"topic": "s/{metric}"}]}})",
      "v.json");
  ASSERT_TRUE(plain.config.has_value()) << Errors(plain);
  EXPECT_FALSE(plain.config->mqtt.tls.has_value());
}

TEST(MqttTls, MqttUplinkWithTlsAndAPlaintextUriIsAnError) {
  ConfigResult r = ParseConfig(R"({
    "mqtt": {"subscriptions": [{"topic": "s/{metric}"}]},
    "uplinks": [
      {"name": "cloud", "type": "mqtt", "uri": "tcp://cloud:1883", "tls": {"ca_file": "ca.pem"}},
      {"name": "tls", "type": "mqtt", "uri": "ssl://cloud:8883", "tls": {"ca_file": "ca.pem"}},
      {"name": "plain", "type": "mqtt", "uri": "mqtt://cloud:1883"}
    ]})",
                               "v.json");
  ASSERT_FALSE(r.config.has_value());
  EXPECT_EQ(Errors(r),
            "v.json: /uplinks/0/tls: given for a plaintext tcp:// broker, which would not use "
            "it: use an ssl:// or mqtts:// URI for TLS (e.g. ssl://host:8883), or remove tls\n");
}

}  // namespace
}  // namespace vigil::config
