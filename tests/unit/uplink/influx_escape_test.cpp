// InfluxDB line protocol escaping of names and tag values holding backslashes, commas,
// spaces, equals signs and quotes, as InfluxDB 1.x parses them (its scanner takes a backslash
// before a comma, space or equals sign for an escape, and refuses a tag value that ends in one;
// tests/integration/test_uplinks.py writes such values to a real influxd and reads them back).

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "uplink/influx_sink.h"

namespace vigil::uplink {
namespace {

// An aggregate event of rule `rule` with one key tag and the given aggregate values.
std::string Aggregate(const std::string& tag, const std::string& value,
                      const nlohmann::json& values = {{"avg", 1.5}}) {
  nlohmann::json e = {{"id", "1"},
                      {"kind", "aggregate"},
                      {"agent", "gw"},
                      {"rule", "r"},
                      {"key", {{tag, value}}},
                      {"values", values},
                      {"window", {{"end", "2026-11-22T10:02:00.000Z"}}}};
  return e.dump();
}

// The line without its timestamp and fields: measurement and tags.
std::string Series(const std::string& line) { return line.substr(0, line.find(" avg=")); }

TEST(LineProtocolEscape, CommasSpacesEqualsAreEscapedQuotesAndBackslashesKept) {
  EXPECT_EQ(Series(LineProtocol(Aggregate("device", R"(C:\temp\boiler 3,"x"=1)"), 1)),
            R"(r,agent=gw,device=C:\temp\boiler\ 3\,"x"\=1)");
}

TEST(LineProtocolEscape, BackslashBeforeASpecialIsDoubledSoTheSpecialStaysEscaped) {
  // Written as-is, `a\ b` would end the tag set after `a\\` (an escaped backslash) and the
  // rest would be read as fields: InfluxDB refuses the line and the batch is a dead letter.
  EXPECT_EQ(Series(LineProtocol(Aggregate("device", R"(a\ b)"), 1)), R"(r,agent=gw,device=a\\\ b)");
  EXPECT_EQ(Series(LineProtocol(Aggregate("device", R"(a\,b\=c)"), 1)),
            R"(r,agent=gw,device=a\\\,b\\\=c)");
}

TEST(LineProtocolEscape, TrailingBackslashesAreDroppedAndAnEmptyTagLeftOut) {
  // A trailing backslash would escape the separator after it: InfluxDB refuses the line.
  EXPECT_EQ(Series(LineProtocol(Aggregate("device", R"(dev\)"), 1)), "r,agent=gw,device=dev");
  EXPECT_EQ(Series(LineProtocol(Aggregate("device", R"(dev\\)"), 1)), "r,agent=gw,device=dev");
  EXPECT_EQ(Series(LineProtocol(Aggregate("device", R"(\)"), 1)), "r,agent=gw");
}

TEST(LineProtocolEscape, TagKeysAndFieldKeysAreEscapedLikeTagValues) {
  EXPECT_EQ(Series(LineProtocol(Aggregate(R"(a b=c\d,)", "v"), 1)), R"(r,a\ b\=c\d\,=v,agent=gw)");
  EXPECT_EQ(LineProtocol(Aggregate("device", "d", {{R"(p 50\)", 2.5}, {"n=x", 3}}), 1),
            R"(r,agent=gw,device=d n\=x=3i,p\ 50=2.5 1795341720000)");
  EXPECT_EQ(LineProtocol(Aggregate("device", "d", {{R"(\)", 2.5}}), 1), "")
      << "no field left: no line";
}

TEST(LineProtocolEscape, ValuesWithoutSpecialsAreUntouched) {
  EXPECT_EQ(Series(LineProtocol(Aggregate("device", R"(boiler\3 "north")"), 1)),
            R"(r,agent=gw,device=boiler\3\ "north")");
  EXPECT_EQ(Series(LineProtocol(Aggregate("device", "kessel-ä"), 1)), "r,agent=gw,device=kessel-ä");
}

}  // namespace
}  // namespace vigil::uplink
