#include <gtest/gtest.h>
#include <zlib.h>

#include "uplink/alertmanager_sink.h"
#include "uplink/http_sink.h"
#include "uplink/influx_sink.h"
#include "uplink/mqtt_sink.h"
#include "uplink/sink.h"

namespace vigil::uplink {
namespace {

std::vector<config::UplinkConfig> Uplinks() {
  config::UplinkConfig cloud, am, influx;
  cloud.name = "cloud";
  am.name = "am";
  influx.name = "influx";
  return {cloud, am, influx};
}

TEST(Route, WithoutRoutesEveryEventGoesEverywhere) {
  EXPECT_EQ(Route({}, Uplinks(), rules::EventKind::kAggregate, "r", ""),
            (std::vector<std::string>{"cloud", "am", "influx"}));
}

TEST(Route, MatchesKindsRuleGlobsAndSeverities) {
  std::vector<config::RouteConfig> routes = {
      {{"alert"}, {}, {}, {"am", "cloud"}},
      {{"aggregate"}, {"boiler-*"}, {}, {"influx"}},
      {{}, {}, {"critical"}, {"cloud"}},
  };
  EXPECT_EQ(Route(routes, Uplinks(), rules::EventKind::kAlert, "x", "warning"),
            (std::vector<std::string>{"cloud", "am"}));
  EXPECT_EQ(Route(routes, Uplinks(), rules::EventKind::kAggregate, "boiler-3", ""),
            (std::vector<std::string>{"influx"}));
  EXPECT_TRUE(Route(routes, Uplinks(), rules::EventKind::kAggregate, "pump-1", "").empty());
}

TEST(HttpStatus, TwoHundredsDeliverTransientRetryOtherReject) {
  EXPECT_EQ(ClassifyHttpStatus(200), Verdict::Outcome::kDelivered);
  EXPECT_EQ(ClassifyHttpStatus(204), Verdict::Outcome::kDelivered);
  for (long s : {408L, 429L, 500L, 502L, 503L, 504L}) {
    EXPECT_EQ(ClassifyHttpStatus(s), Verdict::Outcome::kRetry) << s;
  }
  for (long s : {301L, 400L, 401L, 403L, 404L, 413L, 422L}) {
    EXPECT_EQ(ClassifyHttpStatus(s), Verdict::Outcome::kReject) << s;
  }
}

TEST(Gzip, RoundTripsThroughZlib) {
  std::string text(10000, 'x');
  std::string packed = Gzip(text);
  ASSERT_LT(packed.size(), text.size());
  z_stream zs{};
  ASSERT_EQ(inflateInit2(&zs, 15 + 16), Z_OK);
  std::string out(text.size() + 16, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(packed.data());
  zs.avail_in = static_cast<uInt>(packed.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(inflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  inflateEnd(&zs);
  EXPECT_EQ(out, text);
}

// A type's settings with its `url`.
template <class Type>
Type Of(const std::string& url) {
  Type type;
  type.url = url;
  return type;
}

// An uplink's type is one of four (config/ refuses any other): the factory makes that type's
// sink from it.
TEST(MakeSink, EachTypeMakesItsSink) {
  config::UplinkConfig u;
  u.name = "x";
  u.type = Of<config::HttpUplink>("http://127.0.0.1:1/");
  auto http = MakeSink(u);
  ASSERT_TRUE(http.ok()) << http.error();
  EXPECT_NE(dynamic_cast<HttpSink*>(http.value().get()), nullptr);
  u.type = Of<config::AlertmanagerUplink>("http://127.0.0.1:1/");
  auto am = MakeSink(u);
  ASSERT_TRUE(am.ok()) << am.error();
  EXPECT_NE(dynamic_cast<AlertmanagerSink*>(am.value().get()), nullptr);
  u.type = Of<config::InfluxUplink>("http://127.0.0.1:1/write?db=x");
  auto influx = MakeSink(u);
  ASSERT_TRUE(influx.ok()) << influx.error();
  EXPECT_NE(dynamic_cast<InfluxSink*>(influx.value().get()), nullptr);
  config::MqttUplink mqtt;
  mqtt.uri = "tcp://127.0.0.1:1";  // not connected before the first batch
  u.type = mqtt;
  auto broker = MakeSink(u, {"gw", {}});
  ASSERT_TRUE(broker.ok()) << broker.error();
  EXPECT_NE(dynamic_cast<MqttSink*>(broker.value().get()), nullptr);
}

constexpr const char* kAggregate =
    R"json({"id":"1","kind":"aggregate","agent":"gw 1","rule":"boiler temp,x","key":{"device":"boiler 3,\"x\"","room":"a=b"},"values":{"avg":93.5,"n":5,"d":null},"window":{"start":"2026-11-22T10:01:00.000Z","end":"2026-11-22T10:02:00.000Z"},"time":"2026-11-22T10:02:00.000Z"})json";

TEST(LineProtocol, EscapesNamesAndTypesFields) {
  EXPECT_EQ(LineProtocol(kAggregate, 1'000'000),
            "boiler\\ temp\\,x,agent=gw\\ 1,device=boiler\\ 3\\,\"x\",room=a\\=b "
            "avg=93.5,n=5i 1795341720000000000");
  EXPECT_EQ(LineProtocol(kAggregate, 1),
            "boiler\\ temp\\,x,agent=gw\\ 1,device=boiler\\ 3\\,"
            "\"x\",room=a\\=b avg=93.5,n=5i 1795341720000");
  EXPECT_EQ(LineProtocol(R"json({"kind":"alert","rule":"r","values":{"a":1}})json", 1), "");
  EXPECT_EQ(
      LineProtocol(
          R"json({"kind":"aggregate","rule":"r","values":{"a":null},"time":"2026-11-22T10:02:00.000Z"})json",
          1),
      "")
      << "no field: no line";
}

TEST(MqttTopic, ExpandsTemplateFromTheEvent) {
  EXPECT_EQ(ExpandTopic("fleet/{agent}/{kind}/{rule}/{device}", kAggregate),
            "fleet/gw 1/aggregate/boiler temp,x/boiler 3,\"x\"");
  EXPECT_EQ(ExpandTopic("a/{missing}/{room}", R"json({"key":{"room":"x/y+#"}})json"), "a/_/x_y__");
}

}  // namespace
}  // namespace vigil::uplink
