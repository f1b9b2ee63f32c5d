// The SQLite backend of the Store: one file in WAL mode with synchronous=FULL.
//
// Writes go through one writer thread that batches whatever is waiting (up to `max_batch`) into one
// transaction, so concurrent writers share one fsync (group commit). Reads use a pool of read-only
// connections and never wait for the writer. Schema changes are versioned migrations applied by
// Migrate() (and by Open() when the database is empty). Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/error.h"
#include "store/store.h"

namespace gpuorch::store {

struct SqliteStoreOptions {
  std::string path;             // database file; created when missing
  int max_batch = 512;          // most writes committed in one transaction
  bool migrate_if_empty = true; // apply migrations on open when the schema is absent
  // How long a connection waits for a lock another process holds before failing with kUnavailable.
  std::chrono::milliseconds busy_timeout{5000};
};

// Opens (and when allowed, creates) the store. kFailedPrecondition when the schema is older than
// this binary and migrate_if_empty is false or the database is not empty (run `gpuorch migrate`);
// kUnavailable when the file cannot be opened.
[[nodiscard]] core::Result<std::unique_ptr<Store>> OpenSqliteStore(
    const SqliteStoreOptions& options);

// Applies pending migrations to the database at `path`; returns the schema version reached.
[[nodiscard]] core::Result<int> MigrateSqlite(const std::string& path);

// The schema version this binary writes.
int SqliteSchemaVersion();

// Counters of the group-commit writer: `writes` operations were committed in `transactions`
// transactions (one fsync each), so writes / transactions is the mean batch size.
struct GroupCommitStats {
  uint64_t transactions = 0;
  uint64_t writes = 0;
};

// The counters of `store` when it is a SQLite store (opened by OpenSqliteStore); nullopt otherwise.
// Thread-safe; the counters only grow.
std::optional<GroupCommitStats> GetGroupCommitStats(const Store& store);

}  // namespace gpuorch::store
