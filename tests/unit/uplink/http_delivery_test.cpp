// The http sink and the dispatcher against a real HTTP server on loopback and a real SQLite
// outbox: delivery, retry through refusals and 503s in order, dead letters on 4xx.

#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/unit/test_support.h"
#include "uplink/dispatcher.h"
#include "uplink/http_sink.h"

namespace vigil::uplink {
namespace {

using namespace std::chrono_literals;

// A receiver that answers with a status chosen by the test, recording what it accepted.
class Receiver {
 public:
  Receiver() {
    server_.Post("/events", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      ++requests_;
      idempotency_keys_.push_back(req.get_header_value("Idempotency-Key"));
      res.status = status_;
      if (status_ == 503 && retry_after_) res.set_header("Retry-After", "0");
      if (status_ >= 200 && status_ < 300) {
        for (const auto& e : nlohmann::json::parse(req.body)) {
          received_.push_back(e.at("id").get<std::string>());
        }
      }
      res.set_content(status_ < 300 ? "ok" : "nope", "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~Receiver() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/events"; }
  void set_status(int s) {
    std::lock_guard lock(mu_);
    status_ = s;
  }
  std::vector<std::string> received() {
    std::lock_guard lock(mu_);
    return received_;
  }
  int requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  std::vector<std::string> keys() {
    std::lock_guard lock(mu_);
    return idempotency_keys_;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  int status_ = 200;
  bool retry_after_ = true;
  int requests_ = 0;
  std::vector<std::string> received_;
  std::vector<std::string> idempotency_keys_;
};

class HttpDelivery : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir("vigil_http_delivery");
    auto s = store::Store::Open((dir_ / "vigil.db").string(), config::StoreConfig{});
    ASSERT_TRUE(s.ok()) << s.error();
    store_ = std::move(s.value());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  config::UplinkConfig Config(const std::string& url) {
    config::UplinkConfig u;
    u.name = "cloud";
    config::HttpUplink http;
    http.url = url;
    u.type = http;
    u.batch_max_events = 3;
    u.batch_max_delay = Millis(0);
    u.retry_initial = Millis(20);
    u.retry_max = Millis(100);
    u.timeout = Millis(2000);
    return u;
  }

  void Commit(int from, int to) {
    store::CommitBatch batch;
    for (int i = from; i < to; ++i) {
      std::string id = "e" + std::to_string(i);
      batch.events.push_back(
          {id, rules::EventKind::kAlert, "r", "{\"id\":\"" + id + "\"}", Millis(i), {"cloud"}});
    }
    ASSERT_TRUE(store_->Commit(batch, Millis(0)).ok());
  }

  static std::vector<std::string> Ids(int from, int to) {
    std::vector<std::string> out;
    for (int i = from; i < to; ++i) out.push_back("e" + std::to_string(i));
    return out;
  }

  std::filesystem::path dir_;
  std::unique_ptr<store::Store> store_;
};

TEST_F(HttpDelivery, SinkPostsAJsonArrayWithIdempotencyKey) {
  Receiver receiver;
  auto sink = MakeSink(Config(receiver.url()));
  ASSERT_TRUE(sink.ok()) << sink.error();
  std::vector<store::OutboxRow> rows = {{1, "cloud", "a", R"({"id":"a"})", Millis(0), 0, ""},
                                        {2, "cloud", "b", R"({"id":"b"})", Millis(0), 0, ""}};
  Verdict v = sink.value()->Send(rows);
  EXPECT_EQ(v.outcome, Verdict::Outcome::kDelivered) << v.error;
  EXPECT_EQ(receiver.received(), (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(receiver.keys().size(), 1u);
  EXPECT_EQ(receiver.keys()[0].size(), 32u);

  receiver.set_status(503);
  v = sink.value()->Send(rows);
  EXPECT_EQ(v.outcome, Verdict::Outcome::kRetry);
  EXPECT_EQ(v.error, "HTTP 503: nope");
  ASSERT_TRUE(v.retry_after.has_value());
  EXPECT_EQ(*v.retry_after, Millis(0));
  receiver.set_status(400);
  EXPECT_EQ(sink.value()->Send(rows).outcome, Verdict::Outcome::kReject);
  receiver.set_status(429);
  EXPECT_EQ(sink.value()->Send(rows).outcome, Verdict::Outcome::kRetry);
}

TEST_F(HttpDelivery, ConnectionRefusedIsRetried) {
  int port = 0;
  {
    Receiver gone;  // a port that was just free: nothing listens on it now
    port = std::stoi(gone.url().substr(gone.url().rfind(':') + 1));
  }
  auto sink = MakeSink(Config("http://127.0.0.1:" + std::to_string(port) + "/events"));
  ASSERT_TRUE(sink.ok());
  Verdict v = sink.value()->Send({{1, "cloud", "a", "{}", Millis(0), 0, ""}});
  EXPECT_EQ(v.outcome, Verdict::Outcome::kRetry);
  EXPECT_FALSE(v.error.empty());
}

TEST_F(HttpDelivery, DispatcherRetriesThroughOutageInOrder) {
  Receiver receiver;
  receiver.set_status(503);
  Commit(0, 7);
  auto sink = MakeSink(Config(receiver.url()));
  ASSERT_TRUE(sink.ok());
  Dispatcher d(Config(receiver.url()), store_.get(), std::move(sink.value()));
  d.Start();
  ASSERT_TRUE(WaitFor([&] { return receiver.requests() >= 3; }));
  EXPECT_TRUE(receiver.received().empty());
  EXPECT_EQ(store_->Pending("cloud", 100).value().size(), 7u);  // nothing lost while failing
  receiver.set_status(200);
  Commit(7, 10);
  d.Notify();
  ASSERT_TRUE(WaitFor([&] { return receiver.received().size() >= 10; }));
  d.Stop(Millis(1000));
  EXPECT_EQ(receiver.received(), Ids(0, 10));  // every event, once, in order
  EXPECT_TRUE(store_->Pending("cloud", 100).value().empty());
  DispatcherStats stats = d.Stats();
  EXPECT_EQ(stats.delivered, 10u);
  EXPECT_GE(stats.retried, 3u);
}

TEST_F(HttpDelivery, RejectedBatchBecomesDeadLetters) {
  Receiver receiver;
  receiver.set_status(422);
  Commit(0, 2);
  auto sink = MakeSink(Config(receiver.url()));
  Dispatcher d(Config(receiver.url()), store_.get(), std::move(sink.value()));
  d.Start();
  ASSERT_TRUE(WaitFor([&] { return store_->List(true, 10).value().size() == 2; }));
  d.Stop(Millis(0));
  auto dead = store_->List(true, 10).value();
  EXPECT_EQ(dead[0].last_error, "HTTP 422: nope");
  EXPECT_EQ(d.Stats().dead, 2u);
  EXPECT_TRUE(store_->Pending("cloud", 10).value().empty());
}

}  // namespace
}  // namespace vigil::uplink
