// Events an uplink does not send (aggregates to Alertmanager, alerts to InfluxDB) leave the
// outbox counted as `skipped`, not `delivered` (vigil_deliveries_total{outcome}): the sinks
// and the dispatcher against a real HTTP server on loopback and a real SQLite outbox.

#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/unit/test_support.h"
#include "uplink/dispatcher.h"

namespace vigil::uplink {
namespace {

using namespace std::chrono_literals;

// Answers 200 to every POST (Alertmanager's and InfluxDB's paths alike); keeps the bodies.
class Upstream {
 public:
  Upstream() {
    server_.Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      bodies_.push_back(req.path + " " + req.body);
      res.status = req.path == "/write" ? 204 : 200;
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(1ms);
  }
  ~Upstream() {
    server_.stop();
    thread_.join();
  }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> bodies() {
    std::lock_guard lock(mu_);
    return bodies_;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> bodies_;
};

constexpr const char* kAlert =
    R"({"id":"a%d","kind":"alert","agent":"gw","rule":"hot","key":{"device":"d1"},)"
    R"("state":"firing","severity":"critical","summary":"hot","labels":{},)"
    R"("values":{"avg":50},"time":"2026-11-22T10:02:00.000Z","alert_id":"x%d"})";
constexpr const char* kAggregate =
    R"({"id":"g%d","kind":"aggregate","agent":"gw","rule":"hot","key":{"device":"d1"},)"
    R"("values":{"avg":50,"n":2},"window":{"start":"2026-11-22T10:0%d:00.000Z",)"
    R"("end":"2026-11-22T10:0%d:00.000Z"},"time":"2026-11-22T10:02:00.000Z"})";

std::string Format(const char* pattern, int i) {
  char buf[1024];
  std::snprintf(buf, sizeof buf, pattern, i, i, i + 1);
  return buf;
}

class Skipped : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir("vigil_skipped");
    auto s = store::Store::Open((dir_ / "vigil.db").string(), config::StoreConfig{});
    ASSERT_TRUE(s.ok()) << s.error();
    store_ = std::move(s.value());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // `alerts` alert events and `aggregates` aggregate events, interleaved, for uplink `to`.
  void Commit(const std::string& to, int alerts, int aggregates) {
    store::CommitBatch batch;
    for (int i = 0; i < std::max(alerts, aggregates); ++i) {
      if (i < alerts) {
        batch.events.push_back({"a" + std::to_string(i),
                                rules::EventKind::kAlert,
                                "hot",
                                Format(kAlert, i),
                                Millis(i),
                                {to}});
      }
      if (i < aggregates) {
        batch.events.push_back({"g" + std::to_string(i),
                                rules::EventKind::kAggregate,
                                "hot",
                                Format(kAggregate, i),
                                Millis(i),
                                {to}});
      }
    }
    ASSERT_TRUE(store_->Commit(batch, Millis(0)).ok());
  }

  DispatcherStats Deliver(const config::UplinkConfig& u) {
    auto sink = MakeSink(u, {"gw", {}});
    EXPECT_TRUE(sink.ok()) << sink.error();
    Dispatcher d(u, store_.get(), std::move(sink).value());
    d.Start();
    EXPECT_TRUE(WaitFor([&] {
      auto counts = store_->Counts();
      if (!counts.ok()) return false;
      for (const auto& c : counts.value()) {
        if (c.uplink == u.name && c.pending > 0) return false;
      }
      return true;
    })) << "the outbox drains";
    d.Stop(Millis(0));
    return d.Stats();
  }

  // An uplink of type `Type` (config::AlertmanagerUplink, config::InfluxUplink) at `url`.
  template <class Type>
  static config::UplinkConfig Uplink(const std::string& name, const std::string& url) {
    Type type;
    type.url = url;
    config::UplinkConfig u;
    u.name = name;
    u.type = type;
    u.batch_max_events = 100;
    u.batch_max_delay = Millis(0);
    u.timeout = Millis(2000);
    return u;
  }

  std::filesystem::path dir_;
  std::unique_ptr<store::Store> store_;
};

TEST_F(Skipped, AlertmanagerCountsAggregatesAsSkipped) {
  Upstream upstream;
  Commit("am", 2, 3);
  DispatcherStats st = Deliver(Uplink<config::AlertmanagerUplink>("am", upstream.base()));
  EXPECT_EQ(st.delivered, 2u);
  EXPECT_EQ(st.skipped, 3u);
  // The batch's two alerts (the sink may re-send the firing ones after it: a second body).
  ASSERT_GE(upstream.bodies().size(), 1u);
  const std::string first = upstream.bodies()[0];
  EXPECT_EQ(first.rfind("/api/v2/alerts [", 0), 0u) << first;
  EXPECT_EQ(nlohmann::json::parse(first.substr(first.find('['))).size(), 2u) << first;
}

TEST_F(Skipped, InfluxdbCountsAlertsAsSkipped) {
  Upstream upstream;
  Commit("influx", 2, 3);
  DispatcherStats st =
      Deliver(Uplink<config::InfluxUplink>("influx", upstream.base() + "/write?db=iot"));
  EXPECT_EQ(st.delivered, 3u);
  EXPECT_EQ(st.skipped, 2u);
  ASSERT_EQ(upstream.bodies().size(), 1u);
  const std::string body = upstream.bodies()[0];
  EXPECT_EQ(std::count(body.begin(), body.end(), '\n'), 3) << body;
}

TEST_F(Skipped, ABatchWithNothingToSendIsAllSkippedWithoutARequest) {
  Upstream upstream;
  Commit("influx", 4, 0);
  DispatcherStats st =
      Deliver(Uplink<config::InfluxUplink>("influx", upstream.base() + "/write?db=iot"));
  EXPECT_EQ(st.delivered, 0u);
  EXPECT_EQ(st.skipped, 4u);
  EXPECT_TRUE(upstream.bodies().empty());
}

TEST_F(Skipped, AFailedSendSkipsNothing) {
  // Nobody listens: the batch is retried, nothing is counted as skipped or delivered.
  auto sink = MakeSink(Uplink<config::AlertmanagerUplink>("am", "http://127.0.0.1:1"), {"gw", {}});
  ASSERT_TRUE(sink.ok()) << sink.error();
  std::vector<store::OutboxRow> rows = {{1, "am", "a0", Format(kAlert, 0), Millis(0), 0, ""},
                                        {2, "am", "g0", Format(kAggregate, 0), Millis(0), 0, ""}};
  Verdict v = sink.value()->Send(rows);
  EXPECT_EQ(v.outcome, Verdict::Outcome::kRetry);
  EXPECT_EQ(v.skipped, 0u);
}

}  // namespace
}  // namespace vigil::uplink
