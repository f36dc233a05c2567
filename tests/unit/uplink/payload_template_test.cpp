// The mqtt uplink's payload templates (actions to devices): which events they send, what
// each placeholder becomes, and the sink skipping the events a template has no entry for.

#include "uplink/payload_template.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "uplink/dispatcher.h"
#include "uplink/mqtt_sink.h"

namespace vigil::uplink {
namespace {

using nlohmann::json;

constexpr const char* kFiring = R"json({"id":"e1","kind":"alert","agent":"gw-1",
  "rule":"fan-on","key":{"device":"d1","room":"r 2"},"state":"firing","severity":"critical",
  "summary":"d1: average 51.5","labels":{"team":"heating"},
  "values":{"avg":51.5,"n":2,"hot":true,"min":null},
  "window":{"start":"2026-11-22T10:00:00.000Z","end":"2026-11-22T10:01:00.000Z"},
  "time":"2026-11-22T10:01:00.000Z","alert_id":"a1"})json";

constexpr const char* kResolved = R"json({"id":"e2","kind":"alert","agent":"gw-1",
  "rule":"fan-on","key":{"device":"d1"},"state":"resolved","severity":"critical",
  "summary":"d1: average 20.0","labels":{},"values":{"avg":20.0,"n":1},
  "time":"2026-11-22T10:02:00.000Z","alert_id":"a1"})json";

constexpr const char* kAggregate = R"json({"id":"e3","kind":"aggregate","agent":"gw-1",
  "rule":"fan-on","key":{"device":"d1"},"values":{"avg":51.5,"n":2},
  "window":{"start":"2026-11-22T10:00:00.000Z","end":"2026-11-22T10:01:00.000Z"},
  "time":"2026-11-22T10:01:00.000Z"})json";

// The rendered body as JSON, or null when the event is not sent.
json Render(const json& tmpl, const char* event) {
  std::optional<std::string> body = RenderPayload(tmpl.dump(), event);
  if (!body) return nullptr;
  return json::parse(*body);
}

TEST(RenderPayload, FiringAndResolvedAlertsPickTheirEntry) {
  const json tmpl = {{"firing", {{"on", true}}}, {"resolved", {{"on", false}}}};
  EXPECT_EQ(RenderPayload(tmpl.dump(), kFiring), R"({"on":true})");
  EXPECT_EQ(RenderPayload(tmpl.dump(), kResolved), R"({"on":false})");
}

TEST(RenderPayload, AnEventWithoutAnEntryIsNotSent) {
  const json firing_only = {{"firing", {{"on", true}}}};
  EXPECT_EQ(RenderPayload(firing_only.dump(), kResolved), std::nullopt);
  EXPECT_EQ(RenderPayload(firing_only.dump(), kAggregate), std::nullopt);
  const json aggregates = {{"aggregate", {{"avg", "{values.avg}"}}}};
  EXPECT_EQ(RenderPayload(aggregates.dump(), kAggregate), R"({"avg":51.5})");
  EXPECT_EQ(RenderPayload(aggregates.dump(), kFiring), std::nullopt);
  EXPECT_EQ(RenderPayload(aggregates.dump(), "not json"), std::nullopt);
  EXPECT_EQ(RenderPayload(aggregates.dump(), R"({"kind":"alert","state":"aggregate"})"),
            std::nullopt);
}

TEST(RenderPayload, EveryEventFieldAsAPlaceholder) {
  const json tmpl = {{"firing",
                      {{"text",
                        "{agent}|{rule}|{kind}|{state}|{severity}|{summary}|{alert_id}|"
                        "{id}|{time}|{device}|{room}"}}}};
  EXPECT_EQ(Render(tmpl, kFiring)["text"],
            "gw-1|fan-on|alert|firing|critical|d1: average 51.5|a1|e1|"
            "2026-11-22T10:01:00.000Z|d1|r 2");
}

TEST(RenderPayload, ExactPlaceholderOfANumberOrBooleanKeepsItsType) {
  const json tmpl = {{"firing",
                      {{"avg", "{values.avg}"},
                       {"n", "{values.n}"},
                       {"hot", "{values.hot}"},
                       {"min", "{values.min}"},
                       {"device", "{device}"},
                       {"missing", "{values.nope}"}}}};
  EXPECT_EQ(Render(tmpl, kFiring), json::parse(R"({"avg":51.5,"n":2,"hot":true,"min":null,
                                                   "device":"d1","missing":""})"));
}

TEST(RenderPayload, NumbersInsideLongerStringsArePrintedLikeJson) {
  const json tmpl = {{"firing", "avg={values.avg} n={values.n} hot={values.hot}"},
                     {"resolved", "avg={values.avg}"}};
  EXPECT_EQ(RenderPayload(tmpl.dump(), kFiring), "avg=51.5 n=2 hot=true");
  EXPECT_EQ(RenderPayload(tmpl.dump(), kResolved), "avg=20.0");
}

TEST(RenderPayload, NestedValuesAreRenderedObjectKeysAreNot) {
  const json tmpl = {
      {"firing",
       {{"{device}", {{"cmd", {"fan", "{device}", 3, false, nullptr}}, {"why", "{summary}"}}}}}};
  EXPECT_EQ(Render(tmpl, kFiring), json::parse(R"({"{device}":{"cmd":["fan","d1",3,false,null],
                                          "why":"d1: average 51.5"}})"));
}

TEST(RenderPayload, UnknownPlaceholdersBecomeEmptyAndDoubledBracesLiteral) {
  const json tmpl = {
      {"firing", {{"a", "[{nope}]"}, {"b", "{{device}} is {device}"}, {"c", "{x.y}"}}}};
  EXPECT_EQ(Render(tmpl, kFiring), json::parse(R"({"a":"[]","b":"{device} is d1","c":""})"));
}

TEST(RenderPayload, FixedFieldsComeBeforeKeyTagsOfTheSameName) {
  const char* event = R"({"kind":"alert","state":"firing","rule":"r","key":{"rule":"tag"}})";
  EXPECT_EQ(RenderPayload(json{{"firing", "{rule}"}}.dump(), event), "r");
}

TEST(RenderPayload, AStringEntryIsSentAsItsTextOtherValuesAsJson) {
  EXPECT_EQ(RenderPayload(json{{"firing", "ON"}}.dump(), kFiring), "ON");
  EXPECT_EQ(RenderPayload(json{{"firing", 1}}.dump(), kFiring), "1");
  EXPECT_EQ(RenderPayload(json{{"firing", true}}.dump(), kFiring), "true");
  EXPECT_EQ(RenderPayload(json{{"firing", json::array({1, "{device}"})}}.dump(), kFiring),
            R"([1,"d1"])");
  // A string entry that is exactly a number placeholder sends the number's text.
  EXPECT_EQ(RenderPayload(json{{"firing", "{values.avg}"}}.dump(), kFiring), "51.5");
}

config::UplinkConfig Actuators(const std::string& payload) {
  config::UplinkConfig u;
  u.name = "actuators";
  config::MqttUplink mqtt;
  mqtt.uri = "tcp://127.0.0.1:1";  // nothing listens: any connection attempt fails
  mqtt.topic = "actuators/{device}/fan";
  mqtt.payload = payload;
  u.type = mqtt;
  u.timeout = Millis(1000);
  return u;
}

TEST(MqttSinkActions, EventsWithoutAnEntryAreSkippedWithoutConnecting) {
  auto sink = MakeSink(Actuators(R"({"firing":{"on":true}})"), {"gw-1", {}});
  ASSERT_TRUE(sink.ok()) << sink.error();
  std::vector<store::OutboxRow> rows = {{1, "actuators", "e3", kAggregate, Millis(0), 0, ""},
                                        {2, "actuators", "e2", kResolved, Millis(0), 0, ""}};
  Verdict v = sink.value()->Send(rows);
  EXPECT_EQ(v.outcome, Verdict::Outcome::kDelivered) << v.error;
  EXPECT_EQ(v.skipped, 2u);
}

TEST(MqttSinkActions, AnEventToSendWithTheBrokerDownIsRetried) {
  auto sink = MakeSink(Actuators(R"({"firing":{"on":true}})"), {"gw-1", {}});
  ASSERT_TRUE(sink.ok()) << sink.error();
  std::vector<store::OutboxRow> rows = {{1, "actuators", "e3", kAggregate, Millis(0), 0, ""},
                                        {2, "actuators", "e1", kFiring, Millis(0), 0, ""}};
  Verdict v = sink.value()->Send(rows);
  EXPECT_EQ(v.outcome, Verdict::Outcome::kRetry);
  EXPECT_NE(v.error.find("cannot connect to tcp://127.0.0.1:1"), std::string::npos) << v.error;
}

TEST(MqttSinkActions, TheDispatcherAcksSkippedEventsAndCountsThemApart) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("vigil_actions_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto store = store::Store::Open((dir / "vigil.db").string(), config::StoreConfig{});
  ASSERT_TRUE(store.ok()) << store.error();
  store::CommitBatch batch;
  for (const char* id : {"e3", "e4"}) {
    batch.events.push_back(
        {id, rules::EventKind::kAggregate, "fan-on", kAggregate, Millis(0), {"actuators"}});
  }
  ASSERT_TRUE(store.value()->Commit(batch, Millis(0)).ok());
  config::UplinkConfig config = Actuators(R"({"firing":{"on":true}})");
  config.batch_max_delay = Millis(0);
  auto sink = MakeSink(config, {"gw-1", {}});
  ASSERT_TRUE(sink.ok()) << sink.error();
  Dispatcher d(config, store.value().get(), std::move(sink.value()));
  d.Start();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (d.Stats().skipped < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  d.Stop(Millis(0));
  const DispatcherStats stats = d.Stats();
  EXPECT_EQ(stats.skipped, 2u);
  EXPECT_EQ(stats.delivered, 0u);
  EXPECT_EQ(stats.retried, 0u);
  EXPECT_TRUE(store.value()->Pending("actuators", 10).value().empty());
  store.value().reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace vigil::uplink
