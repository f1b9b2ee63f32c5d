#include "store/sqlite/internal/connection.h"

#include <sqlite3.h>

#include <limits>
#include <utility>

namespace gpuorch::store::sqlite_internal {

core::Code CodeForSqlite(int extended_code) {
  switch (extended_code) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
      return core::Code::kAlreadyExists;
    default:
      break;
  }
  switch (extended_code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PROTOCOL:
    case SQLITE_NOMEM:
    case SQLITE_PERM:
      return core::Code::kUnavailable;
    case SQLITE_TOOBIG:
      return core::Code::kInvalidArgument;
    case SQLITE_NOTADB:
      return core::Code::kFailedPrecondition;
    default:
      return core::Code::kInternal;
  }
}

namespace {

core::Error ErrorFor(sqlite3* db, int rc, std::string_view what) {
  const int extended = db != nullptr ? sqlite3_extended_errcode(db) : rc;
  // sqlite3_errmsg describes the latest call on `db`; for a bind error that is not the bind, so
  // fall back to the generic text of the code.
  const char* message =
      (db != nullptr && (extended & 0xff) == (rc & 0xff)) ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  const int code = (extended & 0xff) == (rc & 0xff) ? extended : rc;
  return core::Error{.code = CodeForSqlite(code),
                     .message = std::string(what) + ": " + (message ? message : "sqlite error")};
}

}  // namespace

Statement::Statement(Statement&& other) noexcept
    : stmt_(std::exchange(other.stmt_, nullptr)), db_(other.db_), bind_rc_(other.bind_rc_) {}

Statement::~Statement() {
  if (stmt_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
}

void Statement::NoteBindResult(int rc) {
  if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) {
    bind_rc_ = rc;
  }
}

Statement& Statement::Bind(int index, std::string_view text) {
  if (text.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    NoteBindResult(SQLITE_TOOBIG);
    return *this;
  }
  // A zero-length view may carry a null data pointer, which SQLite would store as NULL.
  const char* data = text.data() != nullptr ? text.data() : "";
  NoteBindResult(
      sqlite3_bind_text(stmt_, index, data, static_cast<int>(text.size()), SQLITE_TRANSIENT));
  return *this;
}

Statement& Statement::Bind(int index, int64_t value) {
  NoteBindResult(sqlite3_bind_int64(stmt_, index, value));
  return *this;
}

Statement& Statement::Bind(int index, double value) {
  NoteBindResult(sqlite3_bind_double(stmt_, index, value));
  return *this;
}

Statement& Statement::BindNull(int index) {
  NoteBindResult(sqlite3_bind_null(stmt_, index));
  return *this;
}

Statement& Statement::Bind(int index, const std::optional<int64_t>& value) {
  return value ? Bind(index, *value) : BindNull(index);
}

Statement& Statement::Bind(int index, const std::optional<double>& value) {
  return value ? Bind(index, *value) : BindNull(index);
}

Statement& Statement::BindBlob(int index, std::string_view bytes) {
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    NoteBindResult(SQLITE_TOOBIG);
    return *this;
  }
  // A null data pointer would bind NULL, not an empty BLOB.
  const char* data = bytes.data() != nullptr ? bytes.data() : "";
  NoteBindResult(
      sqlite3_bind_blob(stmt_, index, data, static_cast<int>(bytes.size()), SQLITE_TRANSIENT));
  return *this;
}

core::Result<bool> Statement::Step() {
  if (bind_rc_ != SQLITE_OK) {
    return core::Fail(ErrorFor(nullptr, bind_rc_, "bind"));
  }
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) {
    return true;
  }
  if (rc == SQLITE_DONE) {
    return false;
  }
  return core::Fail(ErrorFor(db_, rc, "step"));
}

core::Status Statement::Run() {
  for (;;) {
    GPUORCH_ASSIGN_OR_RETURN(bool row, Step());
    if (!row) {
      return core::Ok();
    }
  }
}

std::string Statement::Text(int column) const {
  const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
  if (data == nullptr) {
    return {};
  }
  return std::string(data, static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

int64_t Statement::Int64(int column) const { return sqlite3_column_int64(stmt_, column); }

double Statement::Double(int column) const { return sqlite3_column_double(stmt_, column); }

bool Statement::IsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

std::optional<int64_t> Statement::OptionalInt64(int column) const {
  if (IsNull(column)) {
    return std::nullopt;
  }
  return Int64(column);
}

std::optional<double> Statement::OptionalDouble(int column) const {
  if (IsNull(column)) {
    return std::nullopt;
  }
  return Double(column);
}

std::string Statement::Blob(int column) const {
  const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt_, column));
  // Read the size after the pointer: sqlite3_column_blob may convert the value first.
  const int size = sqlite3_column_bytes(stmt_, column);
  if (data == nullptr || size <= 0) {
    return {};
  }
  return std::string(data, static_cast<size_t>(size));
}

core::Result<std::unique_ptr<Connection>> Connection::Open(const Options& options) {
  sqlite3* db = nullptr;
  // NOMUTEX: each connection is confined to one thread at a time by its owner.
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  if (options.create) {
    flags |= SQLITE_OPEN_CREATE;
  }
  const int rc = sqlite3_open_v2(options.path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    core::Error error = ErrorFor(db, rc, "open " + options.path);
    error.code = core::Code::kUnavailable;
    sqlite3_close_v2(db);  // a handle is returned even on failure; closing nullptr is a no-op
    return core::Fail(std::move(error));
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, static_cast<int>(options.busy_timeout.count()));
  return std::unique_ptr<Connection>(new Connection(db));
}

Connection::~Connection() {
  for (auto& [sql, stmt] : cache_) {
    sqlite3_finalize(stmt);
  }
  sqlite3_close_v2(db_);
}

core::Status Connection::Exec(std::string_view sql) {
  const std::string text(sql);
  char* message = nullptr;
  const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &message);
  if (rc != SQLITE_OK) {
    core::Error error = ErrorFor(db_, rc, "exec");
    sqlite3_free(message);
    return core::Fail(std::move(error));
  }
  return core::Ok();
}

core::Result<std::string> Connection::QueryText(std::string_view sql) {
  GPUORCH_ASSIGN_OR_RETURN(Statement stmt, Prepare(std::string(sql)));
  GPUORCH_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) {
    return std::string();
  }
  std::string value = stmt.Text(0);
  GPUORCH_TRY(stmt.Run());
  return value;
}

core::Result<Statement> Connection::Prepare(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) {
      return core::Fail(ErrorFor(db_, rc, "prepare"));
    }
    it = cache_.emplace(sql, stmt).first;
  }
  return Statement(it->second, db_);
}

int64_t Connection::LastInsertRowId() const { return sqlite3_last_insert_rowid(db_); }

bool Connection::InTransaction() const { return sqlite3_get_autocommit(db_) == 0; }

core::Error Connection::LastError(std::string_view what) const {
  return ErrorFor(db_, sqlite3_extended_errcode(db_), what);
}

}  // namespace gpuorch::store::sqlite_internal
