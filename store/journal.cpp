#include "store/journal.h"

#include <algorithm>

#include "store/sqlite.h"

namespace vigil::store {
namespace {

// Version 2 added packet_id (redeliveries are matched by it).
constexpr int kSchemaVersion = 2;
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta (
  name  TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS journal (
  seq       INTEGER PRIMARY KEY,
  received  INTEGER NOT NULL,
  topic     TEXT NOT NULL,
  payload   BLOB NOT NULL,
  hash      INTEGER NOT NULL,
  packet_id INTEGER NOT NULL DEFAULT 0
);
)sql";
const Migrations kMigrations = {
    "ALTER TABLE journal ADD COLUMN packet_id INTEGER NOT NULL DEFAULT 0",  // 1 → 2
};

// Rows a multi-row insert appends at once (one statement step instead of one a row).
constexpr std::size_t kAppendRows = 32;

// The insert of `rows` messages (seq, received, topic, payload, hash, packet_id each).
constexpr int kAppendColumns = 6;
std::string AppendRows(std::size_t rows) {
  std::string sql = "INSERT INTO journal (seq, received, topic, payload, hash, packet_id) VALUES ";
  for (std::size_t i = 0; i < rows; ++i) sql += i == 0 ? "(?,?,?,?,?,?)" : ",(?,?,?,?,?,?)";
  return sql;
}
// Newest first, within one range of seqs (the primary key): reads at most that range.
constexpr const char* kRedelivered =
    "SELECT seq FROM journal WHERE seq >= ?1 AND seq <= ?2 AND packet_id = ?3 AND hash = ?4 "
    "AND topic = ?5 AND payload = ?6 ORDER BY seq DESC";
constexpr const char* kRead =
    "SELECT seq, received, topic, payload FROM journal WHERE seq > ?1 AND received >= ?2 "
    "ORDER BY seq LIMIT 1000";
// The oldest rows up to the first received at or after ?1 (arrival order is seq order), none
// after ?2: one bound on seq, so the delete reads only the rows it removes (a condition on
// `received`, which has no index, would read the whole table).
constexpr const char* kTrimBefore =
    "DELETE FROM journal WHERE seq < MIN(?2 + 1, IFNULL((SELECT seq FROM journal "
    "WHERE received >= ?1 ORDER BY seq LIMIT 1), ?2 + 1))";
constexpr const char* kTrimOldest =
    "DELETE FROM journal WHERE seq IN (SELECT seq FROM journal WHERE seq <= ?2 ORDER BY seq "
    "LIMIT ?1)";
// The largest seq ever given: the newest row's, or, once trimming has removed every row, the
// one kept in meta (or, in files made by earlier versions, by AUTOINCREMENT in sqlite_sequence).
constexpr const char* kLastSeq =
    "SELECT MAX(IFNULL((SELECT MAX(seq) FROM journal), 0), "
    "IFNULL((SELECT CAST(value AS INTEGER) FROM meta WHERE name = 'last_seq'), 0))";
constexpr const char* kLastSeqAutoincrement =
    "SELECT IFNULL((SELECT seq FROM sqlite_sequence WHERE name = 'journal'), 0)";
constexpr const char* kSaveLastSeq =
    "INSERT INTO meta (name, value) VALUES ('last_seq', ?1) "
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value";

}  // namespace

std::int64_t MessageHash(const std::string& topic, const std::string& payload) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&h](const std::string& s) {
    for (char c : s) {
      h ^= static_cast<unsigned char>(c);
      h *= 0x100000001b3ull;
    }
    h ^= 0xff;
    h *= 0x100000001b3ull;
  };
  mix(topic);
  mix(payload);
  return static_cast<std::int64_t>(h >> 1);
}

struct Journal::Impl : Database {
  // Prepared once: with mqtt.ack = after_commit, Append runs once per message.
  std::unique_ptr<Statement> begin, insert, insert_many, commit;
  // Append numbers rows itself (no AUTOINCREMENT, whose sqlite_sequence row would be one more
  // page written per transaction); seqs stay increasing across trims through meta.last_seq.
  std::int64_t last_seq = 0;
  std::int64_t saved_last_seq = -1;  // what meta.last_seq holds, once written

  // Before rows are deleted: the newest seq survives them (written only when it moved).
  Status SaveLastSeq() {
    std::lock_guard lock(mu);
    if (saved_last_seq == last_seq) return Status::Ok();
    Statement st(db, kSaveLastSeq);
    st.Bind(1, std::to_string(last_seq));
    st.Step();
    if (!st.ok()) return Status::Error(st.error());
    saved_last_seq = last_seq;
    return Status::Ok();
  }
};

Journal::Journal(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Journal::~Journal() = default;

Result<std::unique_ptr<Journal>> Journal::Open(const std::string& path,
                                               const config::StoreConfig& options, Access access) {
  using R = Result<std::unique_ptr<Journal>>;
  auto opened = OpenDatabase(path, options, kSchema, kSchemaVersion, kMigrations, access);
  if (!opened.ok()) return R::Error(opened.error());
  auto impl = std::make_unique<Impl>();
  impl->Adopt(path, std::move(opened.value()));
  for (const char* sql : {kLastSeq, kLastSeqAutoincrement}) {
    Statement st(impl->db, sql);  // sqlite_sequence: only in files of earlier versions
    if (st.Step()) impl->last_seq = std::max(impl->last_seq, st.Int(0));
  }
  return std::unique_ptr<Journal>(new Journal(std::move(impl)));
}

const std::string& Journal::moved_aside() const { return impl_->moved_aside; }
const std::string& Journal::damage() const { return impl_->damage; }

Status Journal::Append(std::vector<JournalMessage*> messages) {
  if (messages.empty()) return Status::Ok();
  std::lock_guard lock(impl_->mu);
  sqlite3* db = impl_->db;
  if (!impl_->insert) {
    impl_->begin = std::make_unique<Statement>(db, "BEGIN IMMEDIATE");
    impl_->insert = std::make_unique<Statement>(db, AppendRows(1).c_str());
    impl_->insert_many = std::make_unique<Statement>(db, AppendRows(kAppendRows).c_str());
    impl_->commit = std::make_unique<Statement>(db, "COMMIT");
  }
  Statement& begin = *impl_->begin;
  Statement& commit = *impl_->commit;
  const std::int64_t before = impl_->last_seq;
  auto fail = [&](Statement& st, bool rollback) {
    std::string e = st.error();
    st.Clear();
    if (rollback) (void)Exec(db, "ROLLBACK");
    impl_->last_seq = before;
    return Status::Error(e);
  };
  begin.Step();
  if (!begin.ok()) return fail(begin, false);
  begin.Reset();
  // kAppendRows messages a statement while that many are left, then one at a time.
  for (std::size_t i = 0; i < messages.size();) {
    const bool many = messages.size() - i >= kAppendRows;
    Statement& insert = many ? *impl_->insert_many : *impl_->insert;
    const std::size_t rows = many ? kAppendRows : 1;
    for (std::size_t r = 0; r < rows; ++r, ++i) {
      JournalMessage* m = messages[i];
      m->seq = ++impl_->last_seq;
      const int at = static_cast<int>(r) * kAppendColumns;
      insert.Bind(at + 1, m->seq)
          .Bind(at + 2, std::int64_t{m->received.count()})
          .BindRef(at + 3, m->topic)
          .BindBlobRef(at + 4, m->payload)
          .Bind(at + 5, MessageHash(m->topic, m->payload))
          .Bind(at + 6, std::int64_t{m->packet_id});
    }
    insert.Step();
    if (!insert.ok()) return fail(insert, true);
    insert.Reset();
  }
  commit.Step();
  if (!commit.ok()) return fail(commit, true);
  commit.Reset();
  return Status::Ok();
}

Result<std::int64_t> Journal::FindRedelivered(int packet_id, const std::string& topic,
                                              const std::string& payload, std::int64_t first,
                                              std::int64_t last,
                                              const std::vector<std::int64_t>& taken) {
  std::lock_guard lock(impl_->mu);
  Statement st(impl_->db, kRedelivered);
  st.Bind(1, first)
      .Bind(2, last)
      .Bind(3, std::int64_t{packet_id})
      .Bind(4, MessageHash(topic, payload))
      .BindRef(5, topic)
      .BindBlobRef(6, payload);
  while (st.Step()) {
    const std::int64_t seq = st.Int(0);
    if (std::find(taken.begin(), taken.end(), seq) == taken.end()) return seq;
  }
  if (!st.ok()) return Result<std::int64_t>::Error(st.error());
  return std::int64_t{0};
}

Status Journal::Read(std::int64_t after, Millis since,
                     const std::function<bool(const JournalMessage&)>& fn) {
  // In pages, so the lock is not held while fn runs.
  while (true) {
    std::vector<JournalMessage> page;
    {
      std::lock_guard lock(impl_->mu);
      Statement st(impl_->db, kRead);
      st.Bind(1, after).Bind(2, std::int64_t{since.count()});
      while (st.Step()) {
        page.push_back({st.Int(0), Millis(st.Int(1)), st.Text(2), st.Text(3)});
      }
      if (!st.ok()) return Status::Error(st.error());
    }
    if (page.empty()) return Status::Ok();
    for (const auto& m : page) {
      if (!fn(m)) return Status::Ok();
      after = m.seq;
    }
  }
}

Result<std::int64_t> Journal::TrimBefore(Millis before, std::int64_t up_to) {
  if (Status s = impl_->SaveLastSeq(); !s.ok()) return Result<std::int64_t>::Error(s.message());
  return impl_->Change(
      kTrimBefore, [&](Statement& st) { st.Bind(1, std::int64_t{before.count()}).Bind(2, up_to); });
}

Result<std::int64_t> Journal::TrimOldest(std::int64_t count, std::int64_t up_to) {
  if (Status s = impl_->SaveLastSeq(); !s.ok()) return Result<std::int64_t>::Error(s.message());
  return impl_->Change(kTrimOldest, [&](Statement& st) { st.Bind(1, count).Bind(2, up_to); });
}

int Journal::SynchronousLevel() { return impl_->SynchronousLevel(); }
std::uint64_t Journal::SizeBytes() const { return impl_->SizeBytes(); }
void Journal::Vacuum() { impl_->Vacuum(); }

std::int64_t Journal::LastSeq() {
  std::lock_guard lock(impl_->mu);
  return impl_->last_seq;
}

}  // namespace vigil::store
