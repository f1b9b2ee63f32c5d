#include "store/sqlite/internal/usage_table.h"

#include <string_view>
#include <utility>

#include "store/sqlite/internal/row_codec.h"

namespace gpuorch::store::sqlite_internal {
namespace {

// ReadUsage() reads the columns in this order.
constexpr std::string_view kUsageColumns =
    "job_id, attempt, owner, instance_id, provider, node_id, usd_per_hour, started_at_ms, "
    "ended_at_ms";

UsageRecord ReadUsage(const Statement& row) {
  return UsageRecord{.job_id = row.Text(0),
                     .attempt = static_cast<int>(row.Int64(1)),
                     .owner = row.Text(2),
                     .instance_id = row.Text(3),
                     .provider = row.Text(4),
                     .node_id = row.Text(5),
                     .usd_per_hour = row.Double(6),
                     .started_at = core::FromUnixMillis(row.Int64(7)),
                     .ended_at = FromMillis(row.OptionalInt64(8))};
}

}  // namespace

core::Status InsertUsageRowIfAbsent(Connection& db, const UsageRecord& usage) {
  if (usage.job_id.empty()) {
    return core::Fail(core::Code::kInvalidArgument, "a usage record needs a job_id", "job_id");
  }
  GPUORCH_TRY(CheckFinite(usage.usd_per_hour, "usd_per_hour"));
  GPUORCH_ASSIGN_OR_RETURN(
      Statement stmt, db.Prepare("INSERT INTO usage(" + std::string(kUsageColumns) + ") VALUES(" +
                                 Placeholders(9) + ") ON CONFLICT(job_id, attempt) DO NOTHING"));
  stmt.Bind(1, usage.job_id).Bind(2, int64_t{usage.attempt}).Bind(3, usage.owner);
  stmt.Bind(4, usage.instance_id).Bind(5, usage.provider).Bind(6, usage.node_id);
  stmt.Bind(7, usage.usd_per_hour).Bind(8, core::ToUnixMillis(usage.started_at));
  stmt.Bind(9, ToMillis(usage.ended_at));
  return stmt.Run();
}

core::Status CloseUsageRow(Connection& db, const std::string& job_id, int attempt,
                           core::SystemTime ended_at) {
  GPUORCH_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Prepare("UPDATE usage SET ended_at_ms = ? WHERE job_id = ? AND attempt = ? AND "
                 "ended_at_ms IS NULL"));
  stmt.Bind(1, core::ToUnixMillis(ended_at)).Bind(2, job_id).Bind(3, int64_t{attempt});
  return stmt.Run();
}

core::Result<std::vector<UsageRecord>> SelectUsage(Connection& db, const UsageQuery& query) {
  std::string sql = "SELECT " + std::string(kUsageColumns) + " FROM usage WHERE 1";
  if (query.owner) {
    sql += " AND owner = ?";
  }
  if (query.job_id) {
    sql += " AND job_id = ?";
  }
  if (query.instance_id) {
    sql += " AND instance_id = ?";
  }
  if (query.active_since) {
    sql += " AND (ended_at_ms IS NULL OR ended_at_ms >= ?)";
  }
  GPUORCH_ASSIGN_OR_RETURN(Statement stmt, db.Prepare(sql + " ORDER BY started_at_ms, seq"));
  int index = 1;
  for (const auto* text : {&query.owner, &query.job_id, &query.instance_id}) {
    if (*text) {
      stmt.Bind(index++, **text);
    }
  }
  if (query.active_since) {
    stmt.Bind(index++, core::ToUnixMillis(*query.active_since));
  }
  return ReadAllRows<UsageRecord>(stmt, &ReadUsage);
}

core::Result<std::string> InitAndSelectSetting(Connection& db, const std::string& key,
                                               const std::string& initial) {
  GPUORCH_ASSIGN_OR_RETURN(
      Statement insert,
      db.Prepare("INSERT INTO settings(key, value) VALUES(?, ?) ON CONFLICT(key) DO NOTHING"));
  insert.Bind(1, key).Bind(2, initial);
  GPUORCH_TRY(insert.Run());
  GPUORCH_ASSIGN_OR_RETURN(std::optional<std::string> value, SelectSetting(db, key));
  if (!value) {
    return core::Fail(core::Code::kInternal, "setting " + key + " vanished after its insert");
  }
  return std::move(*value);
}

core::Result<std::optional<std::string>> SelectSetting(Connection& db, const std::string& key) {
  GPUORCH_ASSIGN_OR_RETURN(Statement stmt, db.Prepare("SELECT value FROM settings WHERE key = ?"));
  stmt.Bind(1, key);
  GPUORCH_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) {
    return std::optional<std::string>();
  }
  return std::optional<std::string>(stmt.Text(0));
}

}  // namespace gpuorch::store::sqlite_internal
