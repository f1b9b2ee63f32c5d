// The SQLite schema as an ordered list of migrations; version N is the state after the first N
// scripts. Each migration runs in its own transaction together with its row in schema_migrations,
// so a crash leaves the database at a whole version. Internal to store/sqlite.
// Functions take a Connection the caller confines to one thread.
#pragma once

#include "core/error.h"
#include "store/sqlite/internal/connection.h"

namespace gpuorch::store::sqlite_internal {

// The newest version (the number of migrations).
int LatestSchemaVersion();

struct SchemaInfo {
  int version = 0;       // highest applied migration; 0 when schema_migrations is absent
  bool blank = true;     // the database holds no tables at all
  bool foreign = false;  // it holds tables but no schema_migrations: not a gpuorch store
};

[[nodiscard]] core::Result<SchemaInfo> ReadSchemaInfo(Connection& db);

// Applies the migrations after the current version up to `target_version` (<= latest), each in its
// own BEGIN IMMEDIATE transaction, and returns the version reached. Safe against a concurrent
// migrator: a version another process applied meanwhile is skipped.
// kFailedPrecondition when the database is foreign or newer than `target_version`.
[[nodiscard]] core::Result<int> ApplyMigrations(Connection& db, int target_version);

}  // namespace gpuorch::store::sqlite_internal
