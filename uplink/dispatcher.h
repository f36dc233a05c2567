#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/clock.h"
#include "config/config.h"
#include "store/store.h"
#include "uplink/sink.h"

namespace vigil::uplink {

struct DispatcherStats {
  std::uint64_t delivered = 0;  // events
  std::uint64_t skipped = 0;    // events acked with nothing sent (Verdict::skipped)
  std::uint64_t retried = 0;    // failed attempts that will be retried (batches)
  std::uint64_t dead = 0;       // events moved to dead letters
  // Delivered batches whose rows could not be deleted from the outbox (Store::Ack failed):
  // the dispatcher backs off and deletes them again before sending anything else.
  std::uint64_t ack_failures = 0;
  std::string last_error;
};

// Delivers one uplink's outbox in order, at least once: reads pending rows from the store,
// sends them in batches (batch_max_events; waits up to batch_max_delay for a batch to fill),
// acks delivered rows, backs off with full jitter between retry_initial and retry_max
// (honouring Retry-After) on Retry, and moves a rejected batch to dead letters.
// When the ack of a delivered batch fails (the store cannot delete the rows), it backs off
// the same way and retries the ack before sending anything else: the rows are never lost,
// and are sent again only if the agent stops before the ack succeeds (at least once).
// Every time it reads or waits for comes from the injected Clock (tests move a fake one by hand).
// Owns one thread. Never blocks the caller of Notify.
class Dispatcher {
 public:
  // `clock`: processing time (the outbox rows' `created`, Sink::Tick) and the steady time of
  // its waits; not owned, outlives the dispatcher.
  Dispatcher(config::UplinkConfig config, store::Store* store, std::unique_ptr<Sink> sink,
             Clock& clock = SystemClock());
  ~Dispatcher();  // Stop(0) if still running
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Tells the sink which alerts are firing at start. REQUIRES: before Start().
  void Seed(const std::vector<rules::FiringAlert>& firing);
  void Start();
  // New rows were committed for this uplink.
  void Notify();
  // Stops the thread; first keeps delivering for at most `drain` while rows are pending and
  // the sink accepts them. Blocks up to drain + the uplink's timeout.
  void Stop(Millis drain);

  const std::string& name() const { return config_.name; }
  DispatcherStats Stats() const;

 private:
  void Run();

  config::UplinkConfig config_;
  store::Store* store_;  // not owned; outlives the dispatcher
  std::unique_ptr<Sink> sink_;
  Clock& clock_;
  std::thread thread_;
  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  bool notified_ = false;
  bool stopping_ = false;
  Millis drain_until_{0};
  DispatcherStats stats_;
};

}  // namespace vigil::uplink
