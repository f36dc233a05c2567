#pragma once

namespace vigil::store {

// How Store::Open and Journal::Open open a file (store/README.md, "Opening a file").
enum class Access {
  // `vigil run`: creates the file and its folder, migrates an older schema, moves a damaged
  // file (SQLITE_CORRUPT, SQLITE_NOTADB, a failed quick_check) aside and starts afresh.
  kAgent,
  // An existing file of this vigil's schema version, read and written (rows only): never
  // created, migrated or moved aside (`vigil outbox retry|purge`).
  kReadWrite,
  // An existing file of this vigil's schema version, opened SQLITE_OPEN_READONLY: nothing is
  // written (`vigil outbox list`, `vigil replay --journal`).
  kReadOnly,
};

}  // namespace vigil::store
