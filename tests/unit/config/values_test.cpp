#include "config/values.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace vigil::config {
namespace {

TEST(ParseDuration, AcceptsUnitsSequencesAndDecimals) {
  EXPECT_EQ(ParseDuration("250ms"), Millis(250));
  EXPECT_EQ(ParseDuration("10s"), Millis(10'000));
  EXPECT_EQ(ParseDuration("5m"), Millis(300'000));
  EXPECT_EQ(ParseDuration("2h"), Millis(7'200'000));
  EXPECT_EQ(ParseDuration("1d"), Millis(86'400'000));
  EXPECT_EQ(ParseDuration("1m30s"), Millis(90'000));
  EXPECT_EQ(ParseDuration("1.5s"), Millis(1'500));
  EXPECT_EQ(ParseDuration("0"), Millis(0));
  EXPECT_EQ(ParseDuration("0s"), Millis(0));
}

TEST(ParseDuration, RejectsMalformed) {
  for (const char* bad : {"", "10", "s", "10x", "-5s", "1.s", "10 s", "ms"}) {
    EXPECT_FALSE(ParseDuration(bad).has_value()) << bad;
  }
}

TEST(ParseSize, AcceptsBinaryAndDecimalUnits) {
  EXPECT_EQ(ParseSize("64KiB"), 64u * 1024);
  EXPECT_EQ(ParseSize("512MiB"), 512ull * 1024 * 1024);
  EXPECT_EQ(ParseSize("1GiB"), 1024ull * 1024 * 1024);
  EXPECT_EQ(ParseSize("100B"), 100u);
  EXPECT_EQ(ParseSize("10MB"), 10'000'000u);
  EXPECT_EQ(ParseSize("4096"), 4096u);
  EXPECT_FALSE(ParseSize("12XB").has_value());
  EXPECT_FALSE(ParseSize("").has_value());
}

TEST(Rfc3339, ParsesOffsetsAndFractions) {
  EXPECT_EQ(ParseRfc3339("1970-01-01T00:00:00Z"), Millis(0));
  EXPECT_EQ(ParseRfc3339("2026-11-22T10:02:00Z"), Millis(1'795'341'720'000));
  EXPECT_EQ(ParseRfc3339("2026-11-22T11:02:00.5+01:00"), Millis(1'795'341'720'500));
  EXPECT_EQ(ParseRfc3339("2026-11-22T10:02:00.123456Z"), Millis(1'795'341'720'123));
  EXPECT_FALSE(ParseRfc3339("2026-11-22 10:02").has_value());
  EXPECT_FALSE(ParseRfc3339("2026-13-22T10:02:00Z").has_value());
  EXPECT_FALSE(ParseRfc3339("2026-11-22T10:02:00").has_value());
}

TEST(Rfc3339, FormatsUtcWithMilliseconds) {
  EXPECT_EQ(FormatRfc3339(Millis(1'795'341'720'000)), "2026-11-22T10:02:00.000Z");
  EXPECT_EQ(FormatRfc3339(Millis(1'795'341'720'042)), "2026-11-22T10:02:00.042Z");
  EXPECT_EQ(FormatRfc3339(Millis(0)), "1970-01-01T00:00:00.000Z");
  // Leap day round trip.
  auto t = ParseRfc3339("2024-02-29T23:59:59.999Z");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(FormatRfc3339(*t), "2024-02-29T23:59:59.999Z");
}

TEST(Substitute, ReplacesEnvAndFileAndNamesWhatIsMissing) {
  setenv("VIGIL_TEST_SECRET", "s3cret", 1);
  auto dir = std::filesystem::temp_directory_path() / "vigil_substitute_test";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "token") << "abc\n";
  auto r = Substitute("Bearer ${file:token} ${env:VIGIL_TEST_SECRET}", dir.string());
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value(), "Bearer abc s3cret");  // one trailing newline dropped

  auto missing = Substitute("${env:VIGIL_TEST_NOT_SET_ANYWHERE}", dir.string());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().find("VIGIL_TEST_NOT_SET_ANYWHERE"), std::string::npos);
  EXPECT_FALSE(Substitute("${file:nope}", dir.string()).ok());
  EXPECT_FALSE(Substitute("${vault:x}", dir.string()).ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace vigil::config
