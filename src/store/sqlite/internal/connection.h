// A thin RAII layer over one sqlite3 connection and its prepared statements, turning SQLite's
// return codes into core::Error. Internal to store/sqlite; no other module includes it.
//
// Not thread-safe: a Connection (and every Statement leased from it) is used by one thread at a
// time. The owner (the writer thread, or the read pool's current lessee) guarantees that.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/error.h"

struct sqlite3;
struct sqlite3_stmt;

namespace gpuorch::store::sqlite_internal {

// The canonical code for a SQLite result code: lock and I/O trouble is kUnavailable (retry), a
// UNIQUE or PRIMARY KEY violation kAlreadyExists, a too-big value kInvalidArgument, a file that is
// not a database kFailedPrecondition, the rest kInternal.
core::Code CodeForSqlite(int extended_code);

// A statement leased from a Connection's cache; resets and clears its bindings when it goes away.
// Bind errors are remembered and reported by the next Step(), so binds chain without checks.
class Statement {
 public:
  Statement(sqlite3_stmt* stmt, sqlite3* db) : stmt_(stmt), db_(db) {}
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  ~Statement();

  // Parameters are numbered from 1. Text is bound by copy, with its exact length (NULs kept).
  Statement& Bind(int index, std::string_view text);
  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, double value);
  Statement& BindNull(int index);
  Statement& Bind(int index, const std::optional<int64_t>& value);
  Statement& Bind(int index, const std::optional<double>& value);
  // Binary data, bound by copy as a BLOB with its exact length (any bytes, NULs included).
  Statement& BindBlob(int index, std::string_view bytes);

  // Advances: true when a row is available, false when the statement is done.
  [[nodiscard]] core::Result<bool> Step();
  // Steps to completion, for statements that return no rows.
  [[nodiscard]] core::Status Run();

  // Columns of the current row, numbered from 0. NULL reads as "" / 0 / nullopt.
  std::string Text(int column) const;
  int64_t Int64(int column) const;
  double Double(int column) const;
  bool IsNull(int column) const;
  std::optional<int64_t> OptionalInt64(int column) const;
  std::optional<double> OptionalDouble(int column) const;
  // The column's bytes, exactly as stored (for BLOB columns).
  std::string Blob(int column) const;

 private:
  void NoteBindResult(int rc);

  sqlite3_stmt* stmt_;
  sqlite3* db_;
  int bind_rc_ = 0;
};

// Row readers. `read` turns the current row of a Statement into a T, returning either T or
// core::Result<T> (a decode that may fail); a failed step or decode ends the read with its error.

// The row at `stmt`'s current position, read by `read`.
template <typename T, typename Read>
core::Result<T> ReadRow(Statement& stmt, Read& read) {
  if constexpr (std::is_same_v<std::invoke_result_t<Read&, Statement&>, core::Result<T>>) {
    return read(stmt);
  } else {
    return core::Result<T>(read(stmt));
  }
}

// The first row of `stmt`, or nullopt when there is none.
template <typename T, typename Read>
core::Result<std::optional<T>> ReadFirstRow(Statement& stmt, Read read) {
  GPUORCH_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) {
    return std::optional<T>();
  }
  GPUORCH_ASSIGN_OR_RETURN(T value, ReadRow<T>(stmt, read));
  return std::optional<T>(std::move(value));
}

// Every row of `stmt`, in order.
template <typename T, typename Read>
core::Result<std::vector<T>> ReadAllRows(Statement& stmt, Read read) {
  std::vector<T> out;
  for (;;) {
    GPUORCH_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) {
      return out;
    }
    GPUORCH_ASSIGN_OR_RETURN(T value, ReadRow<T>(stmt, read));
    out.push_back(std::move(value));
  }
}

class Connection {
 public:
  struct Options {
    std::string path;
    bool create = true;  // create the file when missing
    std::chrono::milliseconds busy_timeout{5000};
  };

  // Opens the database file (no pragmas beyond busy_timeout). kUnavailable when it cannot be
  // opened.
  [[nodiscard]] static core::Result<std::unique_ptr<Connection>> Open(const Options& options);

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Runs one or more statements that return no rows (DDL, pragmas, BEGIN/COMMIT).
  [[nodiscard]] core::Status Exec(std::string_view sql);
  // Runs a query returning one row of one column, e.g. "PRAGMA journal_mode=WAL".
  [[nodiscard]] core::Result<std::string> QueryText(std::string_view sql);
  // A cached prepared statement for `sql` (prepared on first use, reused afterwards).
  [[nodiscard]] core::Result<Statement> Prepare(const std::string& sql);

  int64_t LastInsertRowId() const;
  // True while an explicit transaction is open (SQLite may end one by itself after some errors).
  bool InTransaction() const;
  // The error of the last failed call, with `what` as context.
  core::Error LastError(std::string_view what) const;

 private:
  explicit Connection(sqlite3* db) : db_(db) {}

  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

}  // namespace gpuorch::store::sqlite_internal
