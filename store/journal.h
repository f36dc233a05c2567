#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/result.h"
#include "config/values.h"
#include "store/access.h"

namespace vigil::store {

// One MQTT message as received: the journal keeps messages (not decoded readings), so
// recovery and `vigil replay --journal` decode them exactly as the live subscription did.
struct JournalMessage {
  std::int64_t seq = 0;  // set by Append: increasing, never reused
  Millis received{0};    // processing time at arrival
  std::string topic;
  std::string payload;
  int packet_id = 0;  // the MQTT packet identifier it arrived with (0: QoS 0, or not known)
};

// The journal `<state_dir>/journal.db` (SPEC §8): every message that yielded an accepted
// reading, kept for store.journal_retention (bounded by the quota). Its own SQLite file in
// WAL mode, so appends on the MQTT callback thread never wait for the engine's commits.
// Thread-safe (one connection behind a mutex).
class Journal {
 public:
  // Opens as `access` says (store/access.h): vigil run's Access::kAgent creates, migrates
  // and moves only a damaged file aside; Access::kReadOnly (`vigil replay --journal`) opens an
  // existing journal of this schema version read-only and writes nothing.
  static Result<std::unique_ptr<Journal>> Open(const std::string& path,
                                               const config::StoreConfig& options,
                                               Access access = Access::kAgent);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Appends the messages in one transaction, setting their seq. When this returns Ok they
  // are durable (per store.sync): only then may the broker get its acknowledgement.
  Status Append(std::vector<JournalMessage*> messages);
  // A redelivery (MQTT DUP) matches the journaled message with the same packet id, topic
  // and payload among the messages with seq in [first, last]: the newest such message whose
  // seq is not in `taken`. Returns its seq, or 0 when none matches.
  Result<std::int64_t> FindRedelivered(int packet_id, const std::string& topic,
                                       const std::string& payload, std::int64_t first,
                                       std::int64_t last, const std::vector<std::int64_t>& taken);
  // Calls fn, in seq order, for every message with seq > after and received ≥ since; fn
  // returns false to stop.
  Status Read(std::int64_t after, Millis since,
              const std::function<bool(const JournalMessage&)>& fn);
  // Deletes messages received before `before` whose seq ≤ `up_to` (only messages the state
  // checkpoint already covers may go). Returns how many.
  Result<std::int64_t> TrimBefore(Millis before, std::int64_t up_to);
  // Deletes the `count` oldest messages with seq ≤ up_to (quota). Returns how many.
  Result<std::int64_t> TrimOldest(std::int64_t count, std::int64_t up_to);
  // Bytes in use on disk: the database file and its WAL.
  std::uint64_t SizeBytes() const;
  // Returns free pages to the file system (auto_vacuum = incremental).
  void Vacuum();
  // The largest seq given, also after trims have removed every row.
  std::int64_t LastSeq();
  // PRAGMA synchronous of the connection: 1 NORMAL, 2 FULL (store.sync).
  int SynchronousLevel();
  // When the file was damaged at Open: where it was moved and why (else empty).
  const std::string& moved_aside() const;
  const std::string& damage() const;

 private:
  struct Impl;
  explicit Journal(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A 64-bit hash of topic and payload, as the journal stores it for FindRedelivered.
std::int64_t MessageHash(const std::string& topic, const std::string& payload);

}  // namespace vigil::store
