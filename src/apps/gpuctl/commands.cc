#include "apps/gpuctl/commands.h"

#include <ostream>
#include <set>

#include "apps/gpuctl/errors.h"
#include "apps/gpuctl/format.h"

namespace gpuorch::gpuctl {
namespace {

using nlohmann::json;

constexpr size_t kMaxIdempotencyKeyChars = 128;

void PrintJson(CommandContext& ctx, const json& value) { ctx.out << value.dump(2) << "\n"; }

// The array under `key` in a list answer, or an error when the server sent another shape.
core::Result<json> ArrayField(const json& answer, const char* key) {
  if (!answer.is_object() || !answer.contains(key) || !answer[key].is_array()) {
    return core::Fail(core::Code::kInternal,
                      std::string("unexpected answer from the server: no \"") + key + "\" list", "",
                      "bad_response");
  }
  return answer[key];
}

}  // namespace

core::Status ValidateIdempotencyKey(const std::string& key) {
  if (key.empty() || key.size() > kMaxIdempotencyKeyChars) {
    return core::Fail(
        UsageError("--idempotency-key must be 1 to 128 characters", "--idempotency-key"));
  }
  for (char c : key) {
    if (c < 0x20 || c > 0x7E) {
      return core::Fail(
          UsageError("--idempotency-key must be printable ASCII", "--idempotency-key"));
    }
  }
  return core::Ok();
}

core::Status RunSubmit(CommandContext& ctx, const SubmitOptions& options) {
  if (options.idempotency_key) {
    GPUORCH_TRY(ValidateIdempotencyKey(*options.idempotency_key));
  }
  json base;
  if (options.file) {
    GPUORCH_ASSIGN_OR_RETURN(base, LoadSpecFile(*options.file, ctx.in));
  }
  GPUORCH_ASSIGN_OR_RETURN(json body, BuildSubmitBody(base, options.overrides));
  if (options.dry_run) {
    PrintJson(ctx, body);
    return core::Ok();
  }
  GPUORCH_ASSIGN_OR_RETURN(SubmitResult result, ctx.api.SubmitJob(body, options.idempotency_key));
  if (ctx.output == OutputFormat::kJson) {
    PrintJson(ctx, result.job);
    return core::Ok();
  }
  ctx.out << (result.replayed ? "already submitted " : "submitted ") << Field(result.job, "job_id")
          << " (" << Field(result.job, "status") << ")\n";
  return core::Ok();
}

core::Status RunGet(CommandContext& ctx, const std::string& job_id) {
  GPUORCH_ASSIGN_OR_RETURN(json job, ctx.api.GetJob(job_id));
  if (ctx.output == OutputFormat::kJson) {
    PrintJson(ctx, job);
  } else {
    ctx.out << FormatJobDetail(job, ctx.clock.Now());
  }
  return core::Ok();
}

core::Status RunList(CommandContext& ctx, const ListOptions& options) {
  ListJobsQuery query = options.query;
  json jobs = json::array();
  json next_cursor;
  std::set<std::string> seen_cursors;
  while (true) {
    GPUORCH_ASSIGN_OR_RETURN(json page, ctx.api.ListJobs(query));
    GPUORCH_ASSIGN_OR_RETURN(json page_jobs, ArrayField(page, "jobs"));
    for (auto& job : page_jobs) {
      jobs.push_back(std::move(job));
    }
    next_cursor = page.value("next_cursor", json());
    if (!options.all || !next_cursor.is_string() || next_cursor.get<std::string>().empty()) {
      break;
    }
    // A server that hands out the same cursor twice would otherwise keep us here forever.
    if (!seen_cursors.insert(next_cursor.get<std::string>()).second) {
      return core::Fail(core::Code::kInternal, "the server repeated a page cursor", "",
                        "bad_response");
    }
    query.cursor = next_cursor.get<std::string>();
  }
  if (options.all) {
    next_cursor = nullptr;
  }
  if (ctx.output == OutputFormat::kJson) {
    PrintJson(ctx, json{{"jobs", jobs}, {"next_cursor", next_cursor}});
    return core::Ok();
  }
  if (jobs.empty()) {
    ctx.out << "No jobs found.\n";
  } else {
    ctx.out << FormatJobTable(jobs, ctx.clock.Now());
  }
  if (next_cursor.is_string()) {
    ctx.err << "(more jobs on the server: use --all to list them all)\n";
  }
  return core::Ok();
}

core::Status RunCancel(CommandContext& ctx, const std::string& job_id) {
  GPUORCH_ASSIGN_OR_RETURN(json job, ctx.api.CancelJob(job_id));
  if (ctx.output == OutputFormat::kJson) {
    PrintJson(ctx, job);
  } else {
    ctx.out << "cancelled " << Field(job, "job_id") << " (" << Field(job, "status") << ")\n";
  }
  return core::Ok();
}

core::Status RunLogs(CommandContext& ctx, const std::string& job_id, const LogsQuery& query) {
  // Logs are raw bytes in either output mode; flush per chunk so `-f` shows lines as they come.
  return ctx.api.StreamLogs(job_id, query, [&ctx](std::string_view chunk) {
    ctx.out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    ctx.out.flush();
    return ctx.out.good();
  });
}

core::Status RunTemplates(CommandContext& ctx) {
  GPUORCH_ASSIGN_OR_RETURN(json answer, ctx.api.ListTemplates());
  if (ctx.output == OutputFormat::kJson) {
    PrintJson(ctx, answer);
    return core::Ok();
  }
  GPUORCH_ASSIGN_OR_RETURN(json templates, ArrayField(answer, "templates"));
  ctx.out << FormatTemplateTable(templates);
  return core::Ok();
}

core::Status RunInstances(CommandContext& ctx) {
  GPUORCH_ASSIGN_OR_RETURN(json answer, ctx.api.ListInstances());
  if (ctx.output == OutputFormat::kJson) {
    PrintJson(ctx, answer);
    return core::Ok();
  }
  GPUORCH_ASSIGN_OR_RETURN(json instances, ArrayField(answer, "instances"));
  ctx.out << FormatInstanceTable(instances);
  return core::Ok();
}

}  // namespace gpuorch::gpuctl
