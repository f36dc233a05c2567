#include "config/topic_template.h"

#include <gtest/gtest.h>

namespace vigil::config {
namespace {

TopicTemplate Make(const char* text) {
  std::string error;
  auto t = TopicTemplate::Parse(text, &error);
  EXPECT_TRUE(t.has_value()) << error;
  return *t;
}

TEST(TopicTemplate, CapturesNamedLevels) {
  TopicTemplate t = Make("sensors/{device}/{metric}");
  std::vector<std::pair<std::string, std::string>> caps;
  ASSERT_TRUE(t.Match("sensors/boiler-3/temperature", &caps));
  ASSERT_EQ(caps.size(), 2u);
  EXPECT_EQ(caps[0], std::make_pair(std::string("device"), std::string("boiler-3")));
  EXPECT_EQ(caps[1], std::make_pair(std::string("metric"), std::string("temperature")));
  EXPECT_EQ(t.Filter(), "sensors/+/+");
  EXPECT_FALSE(t.Match("sensors/boiler-3", &caps));
  EXPECT_FALSE(t.Match("sensors/boiler-3/temperature/extra", &caps));
  EXPECT_FALSE(t.Match("other/boiler-3/temperature", &caps));
}

TEST(TopicTemplate, HashMatchesTheRestIncludingNothing) {
  TopicTemplate t = Make("plant/{line}/#");
  EXPECT_EQ(t.Filter(), "plant/+/#");
  EXPECT_TRUE(t.Match("plant/l1/a/b/c", nullptr));
  EXPECT_TRUE(t.Match("plant/l1", nullptr));
  EXPECT_FALSE(t.Match("plant", nullptr));
}

// Empty levels are levels (MQTT): `+` matches one, a capture refuses one, and a topic with
// more or fewer levels than the template does not match.
TEST(TopicTemplate, EmptyLevelsCountAsLevels) {
  TopicTemplate plus = Make("a/+");
  EXPECT_TRUE(plus.Match("a/", nullptr));
  EXPECT_TRUE(plus.Match("a/b", nullptr));
  EXPECT_FALSE(plus.Match("a", nullptr));
  EXPECT_FALSE(plus.Match("a//", nullptr));
  EXPECT_FALSE(plus.Match("a/b/", nullptr));
  TopicTemplate capture = Make("{device}/x");
  EXPECT_FALSE(capture.Match("/x", nullptr));
  EXPECT_TRUE(capture.Match("d/x", nullptr));
  EXPECT_FALSE(capture.Match("d/x/", nullptr));
  EXPECT_TRUE(Make("a/#").Match("a/", nullptr));
  EXPECT_TRUE(Make("#").Match("", nullptr));
  EXPECT_TRUE(Make("+").Match("", nullptr));
  EXPECT_FALSE(Make("+").Match("/", nullptr));
}

TEST(TopicTemplate, RejectsMalformed) {
  std::string error;
  EXPECT_FALSE(TopicTemplate::Parse("a/#/b", &error).has_value());
  EXPECT_FALSE(TopicTemplate::Parse("a/{x}/{x}", &error).has_value());
  EXPECT_NE(error.find("twice"), std::string::npos);
  EXPECT_FALSE(TopicTemplate::Parse("a/pre{x}", &error).has_value());
  EXPECT_FALSE(TopicTemplate::Parse("a/{}", &error).has_value());
  EXPECT_FALSE(TopicTemplate::Parse("", &error).has_value());
}

}  // namespace
}  // namespace vigil::config
