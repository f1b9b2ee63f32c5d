#include "store/sqlite/internal/migrations.h"

#include <string>
#include <string_view>
#include <vector>

namespace gpuorch::store::sqlite_internal {
namespace {

// Append only: a released migration is never edited; a change is a new entry.
const std::vector<std::string_view>& Migrations() {
  static const std::vector<std::string_view> migrations = {
      // 1: jobs and their transitions.
      R"sql(
CREATE TABLE jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  owner TEXT NOT NULL,
  idempotency_key TEXT NOT NULL DEFAULT '',
  name TEXT NOT NULL DEFAULT '',
  job_type TEXT NOT NULL,
  template_name TEXT NOT NULL DEFAULT '',
  priority INTEGER NOT NULL DEFAULT 0,
  timeout_seconds INTEGER NOT NULL DEFAULT 0,
  max_retries INTEGER NOT NULL DEFAULT 0,
  gpu_type TEXT NOT NULL DEFAULT '',
  gpu_count INTEGER NOT NULL DEFAULT 1,
  memory_gb REAL NOT NULL DEFAULT 0,
  docker_image TEXT NOT NULL DEFAULT '',
  model_name TEXT NOT NULL DEFAULT '',
  command_json TEXT NOT NULL DEFAULT '[]',
  env_json TEXT NOT NULL DEFAULT '{}',
  config_json TEXT NOT NULL DEFAULT '',
  state TEXT NOT NULL CHECK (state IN ('queued', 'scheduled', 'running', 'succeeded', 'failed',
                                       'cancelled', 'timed_out')),
  status_message TEXT NOT NULL DEFAULT '',
  attempt INTEGER NOT NULL DEFAULT 0,
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  started_at_ms INTEGER,
  finished_at_ms INTEGER,
  not_before_ms INTEGER,
  exit_code INTEGER,
  node_id TEXT NOT NULL DEFAULT '',
  gpu_indices_json TEXT NOT NULL DEFAULT '[]'
);
CREATE UNIQUE INDEX jobs_owner_idempotency_key ON jobs(owner, idempotency_key)
  WHERE idempotency_key <> '';
CREATE TABLE job_transitions (
  id INTEGER PRIMARY KEY,
  job_id TEXT NOT NULL REFERENCES jobs(id),
  from_state TEXT,
  to_state TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX job_transitions_job_id ON job_transitions(job_id, id);
)sql",
      // 2: indexes for the scheduler's and the API's listings.
      R"sql(
CREATE INDEX jobs_state_seq ON jobs(state, seq);
CREATE INDEX jobs_job_type_seq ON jobs(job_type, seq);
CREATE INDEX jobs_owner_seq ON jobs(owner, seq);
)sql",
      // 3: scheduling constraints of a job; the per-owner count of queued jobs (submit quota).
      // Rows written before read back as not preemptible, any node, any provider.
      R"sql(
ALTER TABLE jobs ADD COLUMN preemptible INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN node_selector_json TEXT NOT NULL DEFAULT '{}';
ALTER TABLE jobs ADD COLUMN allowed_providers_json TEXT NOT NULL DEFAULT '[]';
CREATE INDEX jobs_owner_state ON jobs(owner, state);
)sql",
      // 4: cloud capacity: instances we rent, node agents that registered, usage per job attempt
      // (cost accounting), and settings the service initialises once (e.g. its signing key).
      R"sql(
CREATE TABLE instances (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  provider TEXT NOT NULL,
  provider_instance_id TEXT NOT NULL DEFAULT '',
  state TEXT NOT NULL CHECK (state IN ('requested', 'provisioning', 'ready', 'terminating',
                                       'terminated', 'failed', 'lost')),
  status_message TEXT NOT NULL DEFAULT '',
  offer_json TEXT NOT NULL DEFAULT '{}',
  spot INTEGER NOT NULL DEFAULT 0,
  price_per_hour REAL NOT NULL DEFAULT 0,
  owner TEXT NOT NULL DEFAULT '',
  for_job_id TEXT NOT NULL DEFAULT '',
  node_id TEXT NOT NULL DEFAULT '',
  join_token_hash TEXT NOT NULL DEFAULT '',
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  billing_started_at_ms INTEGER,
  ready_at_ms INTEGER,
  billing_ended_at_ms INTEGER,
  last_busy_at_ms INTEGER,
  idle_timeout_seconds INTEGER NOT NULL DEFAULT 300
);
CREATE INDEX instances_state_seq ON instances(state, seq);
CREATE INDEX instances_owner_seq ON instances(owner, seq);
CREATE INDEX instances_provider_seq ON instances(provider, seq);
CREATE INDEX instances_join_token_hash ON instances(join_token_hash) WHERE join_token_hash <> '';
CREATE TABLE nodes (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  instance_id TEXT NOT NULL DEFAULT '',
  provider TEXT NOT NULL DEFAULT 'local',
  hostname TEXT NOT NULL DEFAULT '',
  gpus_json TEXT NOT NULL DEFAULT '[]',
  labels_json TEXT NOT NULL DEFAULT '{}',
  container_runtime INTEGER NOT NULL DEFAULT 0,
  token_hash TEXT NOT NULL DEFAULT '',
  state TEXT NOT NULL DEFAULT 'active',
  registered_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL
);
CREATE TABLE usage (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  owner TEXT NOT NULL DEFAULT '',
  instance_id TEXT NOT NULL DEFAULT '',
  provider TEXT NOT NULL DEFAULT '',
  node_id TEXT NOT NULL DEFAULT '',
  usd_per_hour REAL NOT NULL DEFAULT 0,
  started_at_ms INTEGER NOT NULL,
  ended_at_ms INTEGER,
  UNIQUE (job_id, attempt)
);
CREATE INDEX usage_owner_started ON usage(owner, started_at_ms);
CREATE INDEX usage_instance_started ON usage(instance_id, started_at_ms);
CREATE TABLE settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
)sql",
      // 5: security: API users, their long-lived API tokens (only hashes), and provider credentials
      // sealed by the secret vault (binary, hence a BLOB).
      R"sql(
CREATE TABLE users (
  id TEXT NOT NULL PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  role TEXT NOT NULL CHECK (role IN ('admin', 'user')),
  password_hash TEXT NOT NULL DEFAULT '',
  disabled INTEGER NOT NULL DEFAULT 0,
  token_version INTEGER NOT NULL DEFAULT 0,
  max_gpus INTEGER,
  max_queued_jobs INTEGER,
  monthly_budget_usd REAL,
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL
);
CREATE TABLE api_tokens (
  id TEXT NOT NULL PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id),
  name TEXT NOT NULL DEFAULT '',
  token_hash TEXT NOT NULL UNIQUE,
  hint TEXT NOT NULL DEFAULT '',
  created_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER,
  revoked_at_ms INTEGER
);
CREATE INDEX api_tokens_user_id ON api_tokens(user_id, created_at_ms);
CREATE TABLE provider_credentials (
  provider TEXT NOT NULL,
  name TEXT NOT NULL,
  sealed BLOB NOT NULL,
  key_id TEXT NOT NULL,
  hint TEXT NOT NULL DEFAULT '',
  fingerprint TEXT NOT NULL DEFAULT '',
  updated_at_ms INTEGER NOT NULL,
  PRIMARY KEY (provider, name)
) WITHOUT ROWID;
)sql",
      // 6: the number of queued jobs per owner, kept by triggers in the same transaction as every
      // insert and state change, so the submit quota reads one row instead of counting jobs.
      R"sql(
CREATE TABLE queued_counts (
  owner TEXT NOT NULL PRIMARY KEY,
  queued INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO queued_counts(owner, queued)
  SELECT owner, COUNT(*) FROM jobs WHERE state = 'queued' GROUP BY owner;
CREATE TRIGGER jobs_queued_on_insert AFTER INSERT ON jobs WHEN NEW.state = 'queued' BEGIN
  INSERT INTO queued_counts(owner, queued) VALUES (NEW.owner, 1)
    ON CONFLICT(owner) DO UPDATE SET queued = queued + 1;
END;
CREATE TRIGGER jobs_queued_on_enter AFTER UPDATE OF state ON jobs
  WHEN OLD.state <> 'queued' AND NEW.state = 'queued' BEGIN
  INSERT INTO queued_counts(owner, queued) VALUES (NEW.owner, 1)
    ON CONFLICT(owner) DO UPDATE SET queued = queued + 1;
END;
CREATE TRIGGER jobs_queued_on_leave AFTER UPDATE OF state ON jobs
  WHEN OLD.state = 'queued' AND NEW.state <> 'queued' BEGIN
  UPDATE queued_counts SET queued = queued - 1 WHERE owner = OLD.owner;
END;
CREATE TRIGGER jobs_queued_on_delete AFTER DELETE ON jobs WHEN OLD.state = 'queued' BEGIN
  UPDATE queued_counts SET queued = queued - 1 WHERE owner = OLD.owner;
END;
)sql",
  };
  return migrations;
}

constexpr std::string_view kCreateMigrationsTable =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, applied_at_ms INTEGER NOT NULL)";

// SQLite's own clock, so the store needs no Clock just to stamp a migration.
constexpr std::string_view kRecordMigration =
    "INSERT INTO schema_migrations(version, applied_at_ms) "
    "VALUES(?, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))";

core::Result<int> CurrentVersion(Connection& db) {
  GPUORCH_ASSIGN_OR_RETURN(Statement stmt,
                           db.Prepare("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"));
  GPUORCH_ASSIGN_OR_RETURN(bool row, stmt.Step());
  return row ? static_cast<int>(stmt.Int64(0)) : 0;
}

// Applies migration `version` unless a concurrent migrator already did; in one transaction.
core::Status ApplyOne(Connection& db, int version) {
  GPUORCH_TRY(db.Exec("BEGIN IMMEDIATE"));
  auto body = [&]() -> core::Status {
    GPUORCH_TRY(db.Exec(kCreateMigrationsTable));
    GPUORCH_ASSIGN_OR_RETURN(int current, CurrentVersion(db));
    if (current >= version) {
      return core::Ok();
    }
    GPUORCH_TRY(db.Exec(Migrations()[static_cast<size_t>(version - 1)]));
    GPUORCH_ASSIGN_OR_RETURN(Statement record, db.Prepare(std::string(kRecordMigration)));
    record.Bind(1, static_cast<int64_t>(version));
    return record.Run();
  };
  core::Status status = body();
  if (status) {
    status = db.Exec("COMMIT");
  }
  if (!status && db.InTransaction()) {
    (void)db.Exec("ROLLBACK");  // the migration's own error is the one to report
  }
  if (!status) {
    return core::Fail(status.error().WithContext("migration " + std::to_string(version)));
  }
  return core::Ok();
}

}  // namespace

int LatestSchemaVersion() { return static_cast<int>(Migrations().size()); }

core::Result<SchemaInfo> ReadSchemaInfo(Connection& db) {
  GPUORCH_ASSIGN_OR_RETURN(
      Statement tables,
      db.Prepare("SELECT COUNT(*), COALESCE(SUM(name = 'schema_migrations'), 0) FROM sqlite_master "
                 "WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"));
  GPUORCH_ASSIGN_OR_RETURN(bool row, tables.Step());
  const int64_t table_count = row ? tables.Int64(0) : 0;
  const bool has_migrations = row && tables.Int64(1) > 0;
  GPUORCH_TRY(tables.Run());
  SchemaInfo info;
  info.blank = table_count == 0;
  info.foreign = table_count > 0 && !has_migrations;
  if (has_migrations) {
    GPUORCH_ASSIGN_OR_RETURN(info.version, CurrentVersion(db));
  }
  return info;
}

core::Result<int> ApplyMigrations(Connection& db, int target_version) {
  if (target_version < 0 || target_version > LatestSchemaVersion()) {
    return core::Fail(core::Code::kInvalidArgument,
                      "no schema version " + std::to_string(target_version));
  }
  GPUORCH_ASSIGN_OR_RETURN(SchemaInfo info, ReadSchemaInfo(db));
  if (info.foreign) {
    return core::Fail(core::Code::kFailedPrecondition,
                      "the database holds tables but no schema_migrations; not a gpuorch store");
  }
  if (info.version > target_version) {
    return core::Fail(core::Code::kFailedPrecondition,
                      "the database schema is at version " + std::to_string(info.version) +
                          ", newer than version " + std::to_string(target_version) +
                          " this binary knows; upgrade gpuorch");
  }
  if (info.version == target_version) {
    return info.version;
  }
  for (int version = info.version + 1; version <= target_version; ++version) {
    GPUORCH_TRY(ApplyOne(db, version));
  }
  return CurrentVersion(db);
}

}  // namespace gpuorch::store::sqlite_internal
