#include "store/sqlite/internal/job_table.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string_view>
#include <utility>

#include "store/sqlite/internal/row_codec.h"

namespace gpuorch::store::sqlite_internal {
namespace {

using domain::Job;
using domain::JobState;
using domain::JobTransition;

// ReadJob() reads the columns in this order.
constexpr std::string_view kJobColumns =
    "seq, id, owner, idempotency_key, name, job_type, template_name, priority, timeout_seconds, "
    "max_retries, gpu_type, gpu_count, memory_gb, docker_image, model_name, command_json, "
    "env_json, "
    "config_json, state, status_message, attempt, created_at_ms, updated_at_ms, started_at_ms, "
    "finished_at_ms, not_before_ms, exit_code, node_id, gpu_indices_json, preemptible, "
    "node_selector_json, allowed_providers_json";
constexpr size_t kJobColumnCount = 32;

std::string SelectJobsSql(std::string_view tail) {
  return "SELECT " + std::string(kJobColumns) + " FROM jobs " + std::string(tail);
}

core::Result<JobState> DecodeState(const std::string& text) {
  std::optional<JobState> state = domain::ParseJobState(text);
  if (!state) {
    return core::Fail(core::Code::kInternal, "corrupt job state '" + text + "'");
  }
  return *state;
}

core::Result<Job> ReadJob(const Statement& row) {
  Job job;
  job.seq = row.Int64(0);
  job.id = row.Text(1);
  job.owner = row.Text(2);
  job.idempotency_key = row.Text(3);
  domain::JobSpec& spec = job.spec;
  spec.name = row.Text(4);
  spec.job_type = row.Text(5);
  spec.template_name = row.Text(6);
  spec.priority = static_cast<int>(row.Int64(7));
  spec.timeout_seconds = row.Int64(8);
  spec.max_retries = static_cast<int>(row.Int64(9));
  spec.gpu_type = row.Text(10);
  spec.gpu_count = static_cast<int>(row.Int64(11));
  spec.memory_gb = row.Double(12);
  spec.docker_image = row.Text(13);
  spec.model_name = row.Text(14);
  GPUORCH_ASSIGN_OR_RETURN(spec.command,
                           DecodeJson<std::vector<std::string>>(row.Text(15), "command_json"));
  GPUORCH_ASSIGN_OR_RETURN(
      spec.env, (DecodeJson<std::map<std::string, std::string>>(row.Text(16), "env_json")));
  spec.config_json = row.Text(17);
  GPUORCH_ASSIGN_OR_RETURN(job.state, DecodeState(row.Text(18)));
  job.status_message = row.Text(19);
  job.attempt = static_cast<int>(row.Int64(20));
  job.created_at = core::FromUnixMillis(row.Int64(21));
  job.updated_at = core::FromUnixMillis(row.Int64(22));
  job.started_at = FromMillis(row.OptionalInt64(23));
  job.finished_at = FromMillis(row.OptionalInt64(24));
  job.not_before = FromMillis(row.OptionalInt64(25));
  if (!row.IsNull(26)) {
    job.exit_code = static_cast<int>(row.Int64(26));
  }
  job.node_id = row.Text(27);
  GPUORCH_ASSIGN_OR_RETURN(job.gpu_indices,
                           DecodeJson<std::vector<int>>(row.Text(28), "gpu_indices_json"));
  spec.preemptible = row.Int64(29) != 0;
  GPUORCH_ASSIGN_OR_RETURN(spec.node_selector, (DecodeJson<std::map<std::string, std::string>>(
                                                   row.Text(30), "node_selector_json")));
  GPUORCH_ASSIGN_OR_RETURN(spec.allowed_providers, DecodeJson<std::vector<std::string>>(
                                                       row.Text(31), "allowed_providers_json"));
  return job;
}

core::Result<std::optional<Job>> ReadOptionalJob(Statement& stmt) {
  return ReadFirstRow<Job>(stmt, &ReadJob);
}

core::Result<std::vector<Job>> ReadAllJobs(Statement& stmt) {
  return ReadAllRows<Job>(stmt, &ReadJob);
}

}  // namespace

core::Result<std::optional<Job>> SelectJobById(Connection& db, const std::string& job_id) {
  GPUORCH_ASSIGN_OR_RETURN(Statement stmt, db.Prepare(SelectJobsSql("WHERE id = ?")));
  stmt.Bind(1, job_id);
  return ReadOptionalJob(stmt);
}

core::Result<std::optional<Job>> SelectJobByIdempotencyKey(Connection& db, const std::string& owner,
                                                           const std::string& idempotency_key) {
  // The predicate repeats the partial index's WHERE so that SQLite may use the index.
  GPUORCH_ASSIGN_OR_RETURN(
      Statement stmt, db.Prepare(SelectJobsSql(
                          "WHERE owner = ? AND idempotency_key = ? AND idempotency_key <> ''")));
  stmt.Bind(1, owner).Bind(2, idempotency_key);
  return ReadOptionalJob(stmt);
}

core::Result<int64_t> InsertJobRow(Connection& db, const Job& job) {
  const domain::JobSpec& spec = job.spec;
  GPUORCH_TRY(CheckFinite(spec.memory_gb, "spec.memory_gb"));
  GPUORCH_ASSIGN_OR_RETURN(std::string command, EncodeJson(spec.command, "spec.command"));
  GPUORCH_ASSIGN_OR_RETURN(std::string env, EncodeJson(spec.env, "spec.env"));
  GPUORCH_ASSIGN_OR_RETURN(std::string gpus, EncodeJson(job.gpu_indices, "gpu_indices"));
  GPUORCH_ASSIGN_OR_RETURN(std::string selector,
                           EncodeJson(spec.node_selector, "spec.node_selector"));
  GPUORCH_ASSIGN_OR_RETURN(std::string providers,
                           EncodeJson(spec.allowed_providers, "spec.allowed_providers"));
  GPUORCH_ASSIGN_OR_RETURN(Statement stmt,
                           db.Prepare("INSERT INTO jobs(" + std::string(kJobColumns.substr(5)) +
                                      ") VALUES(" + Placeholders(kJobColumnCount - 1) + ")"));
  stmt.Bind(1, job.id).Bind(2, job.owner).Bind(3, job.idempotency_key);
  stmt.Bind(4, spec.name).Bind(5, spec.job_type).Bind(6, spec.template_name);
  stmt.Bind(7, int64_t{spec.priority}).Bind(8, spec.timeout_seconds);
  stmt.Bind(9, int64_t{spec.max_retries}).Bind(10, spec.gpu_type);
  stmt.Bind(11, int64_t{spec.gpu_count}).Bind(12, spec.memory_gb);
  stmt.Bind(13, spec.docker_image).Bind(14, spec.model_name).Bind(15, command).Bind(16, env);
  stmt.Bind(17, spec.config_json).Bind(18, domain::ToString(job.state));
  stmt.Bind(19, job.status_message).Bind(20, int64_t{job.attempt});
  stmt.Bind(21, core::ToUnixMillis(job.created_at)).Bind(22, core::ToUnixMillis(job.updated_at));
  stmt.Bind(23, ToMillis(job.started_at)).Bind(24, ToMillis(job.finished_at));
  stmt.Bind(25, ToMillis(job.not_before));
  stmt.Bind(26, job.exit_code ? std::optional<int64_t>(*job.exit_code) : std::nullopt);
  stmt.Bind(27, job.node_id).Bind(28, gpus);
  stmt.Bind(29, int64_t{spec.preemptible ? 1 : 0}).Bind(30, selector).Bind(31, providers);
  GPUORCH_TRY(stmt.Run());
  return db.LastInsertRowId();
}

core::Result<int64_t> CountQueuedJobs(Connection& db, const std::string& owner, int64_t at_most) {
  // One row of the per-owner counter the schema's triggers keep (migration 6).
  GPUORCH_ASSIGN_OR_RETURN(Statement stmt,
                           db.Prepare("SELECT queued FROM queued_counts WHERE owner = ?"));
  stmt.Bind(1, owner);
  GPUORCH_ASSIGN_OR_RETURN(bool row, stmt.Step());
  const int64_t count = row ? stmt.Int64(0) : 0;
  GPUORCH_TRY(stmt.Run());
  return std::min(count, std::max<int64_t>(at_most, 0));
}

core::Status UpdateJobRow(Connection& db, const Job& job) {
  GPUORCH_ASSIGN_OR_RETURN(std::string gpus, EncodeJson(job.gpu_indices, "gpu_indices"));
  GPUORCH_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Prepare("UPDATE jobs SET state = ?, status_message = ?, attempt = ?, updated_at_ms = ?, "
                 "started_at_ms = ?, finished_at_ms = ?, not_before_ms = ?, exit_code = ?, "
                 "node_id = ?, gpu_indices_json = ? WHERE seq = ?"));
  stmt.Bind(1, domain::ToString(job.state)).Bind(2, job.status_message);
  stmt.Bind(3, int64_t{job.attempt}).Bind(4, core::ToUnixMillis(job.updated_at));
  stmt.Bind(5, ToMillis(job.started_at)).Bind(6, ToMillis(job.finished_at));
  stmt.Bind(7, ToMillis(job.not_before));
  stmt.Bind(8, job.exit_code ? std::optional<int64_t>(*job.exit_code) : std::nullopt);
  stmt.Bind(9, job.node_id).Bind(10, gpus).Bind(11, job.seq);
  return stmt.Run();
}

core::Status InsertTransitionRow(Connection& db, const JobTransition& transition) {
  GPUORCH_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Prepare("INSERT INTO job_transitions(job_id, from_state, to_state, at_ms, attempt, "
                 "message) VALUES(?, ?, ?, ?, ?, ?)"));
  stmt.Bind(1, transition.job_id);
  if (transition.from) {
    stmt.Bind(2, domain::ToString(*transition.from));
  } else {
    stmt.BindNull(2);
  }
  stmt.Bind(3, domain::ToString(transition.to)).Bind(4, core::ToUnixMillis(transition.at));
  stmt.Bind(5, int64_t{transition.attempt}).Bind(6, transition.message);
  return stmt.Run();
}

core::Result<std::vector<JobTransition>> SelectTransitions(Connection& db,
                                                           const std::string& job_id) {
  GPUORCH_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Prepare("SELECT from_state, to_state, at_ms, attempt, message FROM job_transitions "
                 "WHERE job_id = ? ORDER BY id"));
  stmt.Bind(1, job_id);
  std::vector<JobTransition> out;
  for (;;) {
    GPUORCH_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) {
      return out;
    }
    JobTransition t{.job_id = job_id};
    if (!stmt.IsNull(0)) {
      GPUORCH_ASSIGN_OR_RETURN(t.from, DecodeState(stmt.Text(0)));
    }
    GPUORCH_ASSIGN_OR_RETURN(t.to, DecodeState(stmt.Text(1)));
    t.at = core::FromUnixMillis(stmt.Int64(2));
    t.attempt = static_cast<int>(stmt.Int64(3));
    t.message = stmt.Text(4);
    out.push_back(std::move(t));
  }
}

core::Result<std::vector<Job>> SelectJobPage(Connection& db, const JobQuery& query) {
  const std::vector<JobState> states = Distinct(query.states);
  std::string where = "WHERE 1 = 1";
  if (query.owner) {
    where += " AND owner = ?";
  }
  if (!states.empty()) {
    where += " AND state IN (" + Placeholders(states.size()) + ")";
  }
  if (query.job_type) {
    where += " AND job_type = ?";
  }
  if (query.before_seq) {
    where += " AND seq < ?";
  }
  GPUORCH_ASSIGN_OR_RETURN(Statement stmt,
                           db.Prepare(SelectJobsSql(where + " ORDER BY seq DESC LIMIT ?")));
  int index = 1;
  if (query.owner) {
    stmt.Bind(index++, *query.owner);
  }
  for (JobState state : states) {
    stmt.Bind(index++, domain::ToString(state));
  }
  if (query.job_type) {
    stmt.Bind(index++, *query.job_type);
  }
  if (query.before_seq) {
    stmt.Bind(index++, *query.before_seq);
  }
  stmt.Bind(index, int64_t{query.limit});
  return ReadAllJobs(stmt);
}

core::Result<std::vector<Job>> SelectJobsInStates(Connection& db,
                                                  const std::vector<JobState>& requested) {
  const std::vector<JobState> states = Distinct(requested);
  if (states.empty()) {
    return std::vector<Job>();
  }
  GPUORCH_ASSIGN_OR_RETURN(
      Statement stmt, db.Prepare(SelectJobsSql("WHERE state IN (" + Placeholders(states.size()) +
                                               ") ORDER BY seq ASC")));
  int index = 1;
  for (JobState state : states) {
    stmt.Bind(index++, domain::ToString(state));
  }
  return ReadAllJobs(stmt);
}

}  // namespace gpuorch::store::sqlite_internal
