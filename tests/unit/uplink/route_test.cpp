#include <gtest/gtest.h>
#include <zlib.h>

#include "uplink/http_sink.h"
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
  EXPECT_EQ(Route({}, Uplinks(), "aggregate", "r", ""),
            (std::vector<std::string>{"cloud", "am", "influx"}));
}

TEST(Route, MatchesKindsRuleGlobsAndSeverities) {
  std::vector<config::RouteConfig> routes = {
      {{"alert"}, {}, {}, {"am", "cloud"}},
      {{"aggregate"}, {"boiler-*"}, {}, {"influx"}},
      {{}, {}, {"critical"}, {"cloud"}},
  };
  EXPECT_EQ(Route(routes, Uplinks(), "alert", "x", "warning"),
            (std::vector<std::string>{"cloud", "am"}));
  EXPECT_EQ(Route(routes, Uplinks(), "aggregate", "boiler-3", ""),
            (std::vector<std::string>{"influx"}));
  EXPECT_TRUE(Route(routes, Uplinks(), "aggregate", "pump-1", "").empty());
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

TEST(MakeSink, UnsupportedTypeIsAClearError) {
  config::UplinkConfig u;
  u.name = "am";
  u.type = "alertmanager";
  auto r = MakeSink(u);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("not available in this version"), std::string::npos);
}

}  // namespace
}  // namespace vigil::uplink
