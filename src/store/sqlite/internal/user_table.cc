#include "store/sqlite/internal/user_table.h"

#include <string_view>
#include <utility>

#include "store/sqlite/internal/row_codec.h"

namespace gpuorch::store::sqlite_internal {
namespace {

// ReadUser() reads the columns in this order.
constexpr std::string_view kUserColumns =
    "id, name, role, password_hash, disabled, token_version, max_gpus, max_queued_jobs, "
    "monthly_budget_usd, created_at_ms, updated_at_ms";
constexpr size_t kUserColumnCount = 11;

// ReadApiToken() reads the columns in this order.
constexpr std::string_view kApiTokenColumns =
    "id, user_id, name, token_hash, hint, created_at_ms, expires_at_ms, revoked_at_ms";
constexpr size_t kApiTokenColumnCount = 8;

std::string SelectUsersSql(std::string_view tail) {
  return "SELECT " + std::string(kUserColumns) + " FROM users " + std::string(tail);
}

std::string SelectApiTokensSql(std::string_view tail) {
  return "SELECT " + std::string(kApiTokenColumns) + " FROM api_tokens " + std::string(tail);
}

std::optional<int64_t> ToInt64(const std::optional<int>& value) {
  if (!value) {
    return std::nullopt;
  }
  return int64_t{*value};
}

std::optional<int> ToInt(const std::optional<int64_t>& value) {
  if (!value) {
    return std::nullopt;
  }
  return static_cast<int>(*value);
}

UserRecord ReadUser(const Statement& row) {
  return UserRecord{.id = row.Text(0),
                    .name = row.Text(1),
                    .role = row.Text(2),
                    .password_hash = row.Text(3),
                    .disabled = row.Int64(4) != 0,
                    .token_version = row.Int64(5),
                    .max_gpus = ToInt(row.OptionalInt64(6)),
                    .max_queued_jobs = ToInt(row.OptionalInt64(7)),
                    .monthly_budget_usd = row.OptionalDouble(8),
                    .created_at = core::FromUnixMillis(row.Int64(9)),
                    .updated_at = core::FromUnixMillis(row.Int64(10))};
}

ApiTokenRecord ReadApiToken(const Statement& row) {
  return ApiTokenRecord{.id = row.Text(0),
                        .user_id = row.Text(1),
                        .name = row.Text(2),
                        .token_hash = row.Text(3),
                        .hint = row.Text(4),
                        .created_at = core::FromUnixMillis(row.Int64(5)),
                        .expires_at = FromMillis(row.OptionalInt64(6)),
                        .revoked_at = FromMillis(row.OptionalInt64(7))};
}

// The checks shared by insert and update; the name only matters to an insert.
core::Status CheckUser(const UserRecord& user, bool check_name) {
  if (user.id.empty()) {
    return core::Fail(core::Code::kInvalidArgument, "a user needs an id", "id");
  }
  if (check_name && user.name.empty()) {
    return core::Fail(core::Code::kInvalidArgument, "a user needs a name", "name");
  }
  if (user.role != "admin" && user.role != "user") {
    return core::Fail(core::Code::kInvalidArgument,
                      "a user's role is \"admin\" or \"user\", not \"" + user.role + "\"", "role");
  }
  if (user.monthly_budget_usd) {
    GPUORCH_TRY(CheckFinite(*user.monthly_budget_usd, "monthly_budget_usd"));
  }
  return core::Ok();
}

// True when `sql` (one parameter) finds a row for `value`.
core::Result<bool> Exists(Connection& db, const std::string& sql, const std::string& value) {
  GPUORCH_ASSIGN_OR_RETURN(Statement stmt, db.Prepare(sql));
  stmt.Bind(1, value);
  GPUORCH_ASSIGN_OR_RETURN(bool row, stmt.Step());
  GPUORCH_TRY(stmt.Run());
  return row;
}

// kAlreadyExists (naming `field`) when `sql` finds a row for `value`.
core::Status CheckFree(Connection& db, const std::string& sql, const std::string& value,
                       const std::string& what, const std::string& field) {
  GPUORCH_ASSIGN_OR_RETURN(bool taken, Exists(db, sql, value));
  if (taken) {
    return core::Fail(core::Code::kAlreadyExists, what + " " + value + " is taken", field);
  }
  return core::Ok();
}

core::Result<std::optional<ApiTokenRecord>> SelectApiTokenById(Connection& db,
                                                               const std::string& id) {
  GPUORCH_ASSIGN_OR_RETURN(Statement stmt, db.Prepare(SelectApiTokensSql("WHERE id = ?")));
  stmt.Bind(1, id);
  return ReadFirstRow<ApiTokenRecord>(stmt, &ReadApiToken);
}

}  // namespace

core::Status InsertUserRow(Connection& db, const UserRecord& user) {
  GPUORCH_TRY(CheckUser(user, /*check_name=*/true));
  // Checked first for a message that names the field; the UNIQUE constraints still hold the line.
  GPUORCH_TRY(CheckFree(db, "SELECT 1 FROM users WHERE id = ?", user.id, "user id", "id"));
  GPUORCH_TRY(CheckFree(db, "SELECT 1 FROM users WHERE name = ?", user.name, "user name", "name"));
  GPUORCH_ASSIGN_OR_RETURN(
      Statement stmt, db.Prepare("INSERT INTO users(" + std::string(kUserColumns) + ") VALUES(" +
                                 Placeholders(kUserColumnCount) + ")"));
  stmt.Bind(1, user.id).Bind(2, user.name).Bind(3, user.role).Bind(4, user.password_hash);
  stmt.Bind(5, int64_t{user.disabled ? 1 : 0}).Bind(6, user.token_version);
  stmt.Bind(7, ToInt64(user.max_gpus)).Bind(8, ToInt64(user.max_queued_jobs));
  stmt.Bind(9, user.monthly_budget_usd);
  stmt.Bind(10, core::ToUnixMillis(user.created_at));
  stmt.Bind(11, core::ToUnixMillis(user.updated_at));
  return stmt.Run();
}

core::Result<std::optional<UserRecord>> SelectUserById(Connection& db, const std::string& id) {
  GPUORCH_ASSIGN_OR_RETURN(Statement stmt, db.Prepare(SelectUsersSql("WHERE id = ?")));
  stmt.Bind(1, id);
  return ReadFirstRow<UserRecord>(stmt, &ReadUser);
}

core::Result<std::optional<UserRecord>> SelectUserByName(Connection& db, const std::string& name) {
  GPUORCH_ASSIGN_OR_RETURN(Statement stmt, db.Prepare(SelectUsersSql("WHERE name = ?")));
  stmt.Bind(1, name);
  return ReadFirstRow<UserRecord>(stmt, &ReadUser);
}

core::Result<std::vector<UserRecord>> SelectUsers(Connection& db) {
  GPUORCH_ASSIGN_OR_RETURN(Statement stmt,
                           db.Prepare(SelectUsersSql("ORDER BY created_at_ms, rowid")));
  return ReadAllRows<UserRecord>(stmt, &ReadUser);
}

core::Result<UserRecord> UpdateUserRow(Connection& db, const UserRecord& user) {
  GPUORCH_TRY(CheckUser(user, /*check_name=*/false));
  GPUORCH_ASSIGN_OR_RETURN(bool exists, Exists(db, "SELECT 1 FROM users WHERE id = ?", user.id));
  if (!exists) {
    return core::Fail(core::Code::kNotFound, "user " + user.id + " not found", "id");
  }
  GPUORCH_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Prepare("UPDATE users SET role = ?, password_hash = ?, disabled = ?, token_version = ?, "
                 "max_gpus = ?, max_queued_jobs = ?, monthly_budget_usd = ?, updated_at_ms = ? "
                 "WHERE id = ?"));
  stmt.Bind(1, user.role).Bind(2, user.password_hash).Bind(3, int64_t{user.disabled ? 1 : 0});
  stmt.Bind(4, user.token_version).Bind(5, ToInt64(user.max_gpus));
  stmt.Bind(6, ToInt64(user.max_queued_jobs)).Bind(7, user.monthly_budget_usd);
  stmt.Bind(8, core::ToUnixMillis(user.updated_at)).Bind(9, user.id);
  GPUORCH_TRY(stmt.Run());
  // The row as a later read returns it: the stored name and created_at, times in whole ms.
  GPUORCH_ASSIGN_OR_RETURN(std::optional<UserRecord> stored, SelectUserById(db, user.id));
  if (!stored) {
    return core::Fail(core::Code::kInternal, "user " + user.id + " vanished on update");
  }
  return std::move(*stored);
}

core::Status InsertApiTokenRow(Connection& db, const ApiTokenRecord& token) {
  for (auto [value, field] : {std::pair{&token.id, "id"}, std::pair{&token.user_id, "user_id"},
                              std::pair{&token.token_hash, "token_hash"}}) {
    if (value->empty()) {
      return core::Fail(core::Code::kInvalidArgument, "an API token needs a " + std::string(field),
                        field);
    }
  }
  GPUORCH_ASSIGN_OR_RETURN(bool user_exists,
                           Exists(db, "SELECT 1 FROM users WHERE id = ?", token.user_id));
  if (!user_exists) {
    return core::Fail(core::Code::kNotFound, "user " + token.user_id + " not found", "user_id");
  }
  GPUORCH_TRY(
      CheckFree(db, "SELECT 1 FROM api_tokens WHERE id = ?", token.id, "API token id", "id"));
  // The hash itself stays out of the message: it identifies a live secret.
  GPUORCH_ASSIGN_OR_RETURN(
      bool hash_taken,
      Exists(db, "SELECT 1 FROM api_tokens WHERE token_hash = ?", token.token_hash));
  if (hash_taken) {
    return core::Fail(core::Code::kAlreadyExists, "another API token has the same hash",
                      "token_hash");
  }
  GPUORCH_ASSIGN_OR_RETURN(Statement stmt,
                           db.Prepare("INSERT INTO api_tokens(" + std::string(kApiTokenColumns) +
                                      ") VALUES(" + Placeholders(kApiTokenColumnCount) + ")"));
  stmt.Bind(1, token.id).Bind(2, token.user_id).Bind(3, token.name).Bind(4, token.token_hash);
  stmt.Bind(5, token.hint).Bind(6, core::ToUnixMillis(token.created_at));
  stmt.Bind(7, ToMillis(token.expires_at)).Bind(8, ToMillis(token.revoked_at));
  return stmt.Run();
}

core::Result<std::vector<ApiTokenRecord>> SelectApiTokens(
    Connection& db, const std::optional<std::string>& user_id) {
  GPUORCH_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Prepare(SelectApiTokensSql(user_id ? "WHERE user_id = ? ORDER BY created_at_ms, rowid"
                                            : "ORDER BY created_at_ms, rowid")));
  if (user_id) {
    stmt.Bind(1, *user_id);
  }
  return ReadAllRows<ApiTokenRecord>(stmt, &ReadApiToken);
}

core::Result<ApiTokenRecord> RevokeApiTokenRow(Connection& db, const std::string& id,
                                               core::SystemTime now) {
  GPUORCH_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Prepare("UPDATE api_tokens SET revoked_at_ms = ? WHERE id = ? AND revoked_at_ms IS NULL"));
  stmt.Bind(1, core::ToUnixMillis(now)).Bind(2, id);
  GPUORCH_TRY(stmt.Run());
  GPUORCH_ASSIGN_OR_RETURN(std::optional<ApiTokenRecord> stored, SelectApiTokenById(db, id));
  if (!stored) {
    return core::Fail(core::Code::kNotFound, "API token " + id + " not found", "id");
  }
  return std::move(*stored);
}

}  // namespace gpuorch::store::sqlite_internal
