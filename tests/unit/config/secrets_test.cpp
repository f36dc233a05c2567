// Secrets never shown (README "Security"): what the config marks secret, how the log and
// Redact hide them, and what ${file:} refuses to read.

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "config/config.h"
#include "config/log.h"

namespace vigil::config {
namespace {

bool Has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

class SecretsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("vigil-secrets-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ / "token") << "file-token-123\n";
    ::setenv("VIGIL_TEST_SECRET_PASSWORD", "env-password-456", 1);
  }
  void TearDown() override {
    std::filesystem::remove_all(dir_);
    log::SetSecrets({});
  }
  std::filesystem::path dir_;
};

TEST_F(SecretsTest, ConfigListsEverySecret) {
  ConfigResult r = ParseConfig(R"({
    "mqtt": { "uri": "ssl://vigil:uri-password-789@broker:8883",
              "password": "${env:VIGIL_TEST_SECRET_PASSWORD}",
              "subscriptions": [ { "topic": "s/{metric}" } ] },
    "uplinks": [
      { "name": "cloud", "type": "http", "url": "https://ingest.example.com/v1?tenant=a&token=query-token",
        "headers": { "Authorization": "Bearer ${file:token}", "Content-Type": "application/json",
                     "X-Api-Key": "plain-api-key" } },
      { "name": "influx", "type": "influxdb", "url": "http://influx:8086/write?db=iot&u=vigil&p=influx-pass" },
      { "name": "broker", "type": "mqtt", "uri": "ssl://cloud:8883", "password": "mqtt-uplink-pass" } ] })",
                               (dir_ / "vigil.json").string());
  ASSERT_TRUE(r.config.has_value());
  const auto& s = r.config->secrets;
  for (const char* want :
       {"env-password-456", "file-token-123", "Bearer file-token-123", "uri-password-789",
        "query-token", "plain-api-key", "influx-pass", "mqtt-uplink-pass"}) {
    EXPECT_TRUE(Has(s, want)) << want;
  }
  for (const char* not_secret : {"application/json", "a", "iot", "vigil"}) {
    EXPECT_FALSE(Has(s, not_secret)) << not_secret;
  }
  EXPECT_EQ(r.secrets, s);
}

TEST_F(SecretsTest, SecretsAreKnownEvenWhenTheConfigIsInvalid) {
  ConfigResult r = ParseConfig(R"({ "agent": { "log_level": "${env:VIGIL_TEST_SECRET_PASSWORD}" },
    "mqtt": { "subscriptions": [ { "topic": "s/{metric}" } ] } })",
                               "v.json");
  ASSERT_FALSE(r.config.has_value());
  EXPECT_TRUE(Has(r.secrets, "env-password-456"));
  // The diagnostic quotes the value; what main prints goes through Redact.
  log::SetSecrets(r.secrets);
  const std::string shown = log::Redact(r.diagnostics.at(0).ToString());
  EXPECT_EQ(shown.find("env-password-456"), std::string::npos) << shown;
  EXPECT_NE(shown.find("***"), std::string::npos) << shown;
}

TEST_F(SecretsTest, LogReplacesSecretsAndEscapesControlCharacters) {
  log::SetSecrets({"Bearer file-token-123", "file-token-123", "abc"});
  ::testing::internal::CaptureStderr();
  log::Warning("uplink cloud: HTTP 401: sent Bearer file-token-123 and file-token-123");
  log::Warning("rejected reading (topic) on a/b\n<3>error: forged line\x1b[31m");
  log::Warning("abc is too short to be hidden");
  const std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(out,
            "<4>warning: uplink cloud: HTTP 401: sent *** and ***\n"
            "<4>warning: rejected reading (topic) on a/b\\n<3>error: forged line\\x1b[31m\n"
            "<4>warning: abc is too short to be hidden\n");
}

TEST_F(SecretsTest, FileSubstitutionReadsOnlySmallRegularFiles) {
  std::ofstream(dir_ / "big") << std::string(kMaxSubstitutedFileBytes + 1, 'x');
  for (const char* ref : {"${file:/dev/zero}", "${file:big}", "${file:missing}"}) {
    Result<std::string> r = Substitute(ref, dir_.string());
    EXPECT_FALSE(r.ok()) << ref;
  }
  Result<std::string> big = Substitute("${file:big}", dir_.string());
  EXPECT_NE(big.error().find("is larger than 65536 bytes"), std::string::npos) << big.error();
  std::vector<std::string> secrets;
  Result<std::string> ok = Substitute("Bearer ${file:token}", dir_.string(), &secrets);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok.value(), "Bearer file-token-123");
  EXPECT_EQ(secrets, std::vector<std::string>{"file-token-123"});
}

}  // namespace
}  // namespace vigil::config
