#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/result.h"
#include "config/values.h"
#include "rules/event.h"
#include "store/access.h"

namespace vigil::store {

// One (rule, key) state row; bytes == nullopt deletes the row.
struct StateRow {
  std::string rule;
  std::string key;
  std::optional<std::string> bytes;
};

// One event to put in the outbox, with one delivery row per routed uplink.
struct OutboxEvent {
  std::string event_id;
  rules::EventKind kind = rules::EventKind::kAggregate;  // the quota drops aggregates first
  std::string rule;
  std::string json;  // the event as sent (SPEC §6)
  Millis time{0};    // the event's time
  std::vector<std::string> uplinks;
};

// A moment at which the engine's processing-time timers were due (rules::Engine::Advance
// returned true): at processing time `now`, after the journal message `after` was processed.
// Crash recovery calls Advance at the same moments, so timer-driven events come out the same.
struct Tick {
  std::int64_t after = 0;
  Millis now{0};
  bool operator==(const Tick&) const = default;
};

// What one group commit writes, atomically.
struct CommitBatch {
  std::vector<StateRow> state;
  // More state rows, made while the transaction is open so that a checkpoint of many keys
  // is never all in memory at once: called until it adds no row to *rows (which it is given
  // empty). May be empty.
  std::function<bool(std::vector<StateRow>* rows)> more_state;
  std::vector<OutboxEvent> events;
  // The last journal message whose effects the stored state includes: the state rows of a
  // checkpoint are always committed with it. Unset: unchanged.
  std::optional<std::int64_t> journal_position;
  // The last journal message whose events are in the outbox (≥ journal_position: events are
  // committed at every commit, state at checkpoints). Unset: unchanged.
  std::optional<std::int64_t> events_position;
  // The timer moments since the last checkpoint whose events this commit holds.
  std::vector<Tick> ticks;
  // Set with every checkpoint (rules::Engine::SaveTimers): replaces the stored timers and
  // deletes the stored ticks (the checkpointed state includes what they did).
  std::optional<std::string> timers;
};

// One pending delivery of one event to one uplink. `seq` orders deliveries per uplink.
struct OutboxRow {
  std::int64_t seq = 0;
  std::string uplink;
  std::string event_id;
  std::string json;
  Millis created{0};  // processing time at which it was committed
  int attempts = 0;
  std::string last_error;  // dead letters: why
};

// What a quota drop removed: outbox rows, and their bytes as Store::MeasureOutbox counts them.
struct Dropped {
  std::int64_t rows = 0;
  std::uint64_t bytes = 0;
};

// The outbox's rows and their bytes (each row's JSON plus kOutboxRowOverhead), pending and
// dead: an estimate of the space they take, for the quota.
struct OutboxSize {
  std::int64_t pending_rows = 0;
  std::uint64_t pending_bytes = 0;
  std::int64_t dead_rows = 0;
  std::uint64_t dead_bytes = 0;
};
// Bytes counted for an outbox row besides its JSON (its other columns, index entry, page share).
constexpr std::uint64_t kOutboxRowOverhead = 64;

struct OutboxCounts {
  std::string uplink;
  std::int64_t pending = 0;
  std::int64_t dead = 0;
  Millis oldest_pending{0};  // created time of the oldest pending row; 0 when none
};

// The state database `<state_dir>/vigil.db`: SQLite in WAL mode, file mode 0600. Holds rule
// state, the outbox (pending deliveries per uplink) and dead letters. All SQL of vigil lives
// in store/.
//
// Thread-safe: every method may be called from any thread; writes are serialized on one
// connection (SQLite has one writer), guarded by mu_. Methods return errors, never throw.
class Store {
 public:
  // Access::kAgent (vigil run) opens or creates the database (and its folder), applies the
  // schema, sets WAL and `synchronous` from `options.sync`. Only a damaged file is moved aside
  // and a fresh one made (see moved_aside()); any other problem (locked, disk full, read-only,
  // a newer schema, ...) is an error that leaves the files as they are. kReadWrite and
  // kReadOnly open an existing file of this schema version and nothing else (store/access.h).
  static Result<std::unique_ptr<Store>> Open(const std::string& path,
                                             const config::StoreConfig& options,
                                             Access access = Access::kAgent);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // One transaction: state upserts/deletes and outbox rows. `now` stamps the rows.
  Status Commit(const CommitBatch& batch, Millis now);

  // Calls fn for every stored state row (restore at start).
  Status LoadState(const std::function<void(const std::string& rule, const std::string& key,
                                            const std::string& bytes)>& fn);

  // Up to `limit` pending rows of `uplink`, oldest first (by seq).
  Result<std::vector<OutboxRow>> Pending(const std::string& uplink, std::size_t limit);
  // Deletes delivered rows.
  Status Ack(const std::string& uplink, const std::vector<std::int64_t>& seqs);
  // Records a failed attempt (attempts+1, last_error) without removing the rows.
  Status RecordFailure(const std::string& uplink, const std::vector<std::int64_t>& seqs,
                       const std::string& error);
  // Moves rows to dead letters with the reason.
  Status MoveToDead(const std::string& uplink, const std::vector<std::int64_t>& seqs,
                    const std::string& reason);

  // `vigil outbox`: rows pending (dead=false) or dead (dead=true), oldest first.
  Result<std::vector<OutboxRow>> List(bool dead, std::size_t limit);
  // Moves dead letters back to pending (all uplinks, or one); returns how many.
  Result<std::int64_t> RetryDead(const std::string& uplink = "");
  // Deletes pending (dead=false) or dead (dead=true) rows; returns how many.
  Result<std::int64_t> Purge(bool dead, const std::string& uplink = "");
  Result<std::vector<OutboxCounts>> Counts();

  // The journal position of the last checkpoint of the state (0 before any).
  Result<std::int64_t> JournalPosition();
  // The journal position up to which events are committed (never below JournalPosition()).
  Result<std::int64_t> EventsPosition();
  // The timers of the last checkpoint ("" before any) and the ticks committed since, in order.
  Result<std::string> Timers();
  Result<std::vector<Tick>> Ticks();
  // TTL: deletes outbox rows (pending or dead) committed before `before`; returns how many.
  Result<std::int64_t> DropExpired(Millis before);
  // The processing clock stepped forward by `by`: every outbox row's commit time moves with it,
  // so its age (the TTL's measure) stays what it was.
  Status ShiftCreated(Millis by);
  // Quota: deletes the oldest undelivered events of `kind` (every uplink's pending row), oldest
  // first, until at least `bytes` are freed (as MeasureOutbox counts them) or none is left; one
  // event more than needed at most.
  Result<Dropped> DropOldest(rules::EventKind kind, std::uint64_t bytes);
  // Quota: deletes dead letters (any uplink), oldest (by seq) first, until at least `bytes`
  // are freed (as MeasureOutbox counts them) or none is left; one row more than needed at most.
  Result<Dropped> DropOldestDead(std::uint64_t bytes);
  // The outbox's pending and dead rows and bytes (reads every row: for the quota only).
  Result<OutboxSize> MeasureOutbox();
  // Bytes of rule state (rule, key and state bytes of every row; reads every row).
  Result<std::uint64_t> StateBytes();
  // Bytes on disk (file and WAL); Vacuum returns free pages and truncates the WAL.
  std::uint64_t SizeBytes() const;
  void Vacuum();

  // PRAGMA synchronous of the connection: 1 NORMAL, 2 FULL (store.sync).
  int SynchronousLevel();
  // When the file was damaged at Open: where it was moved and why (else empty).
  const std::string& moved_aside() const;
  const std::string& damage() const;

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil::store
