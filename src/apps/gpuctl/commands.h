// The gpuctl subcommands, after flag parsing: each talks to the server through an ApiClient and
// writes its result to `out` (a table or JSON) and notes to `err`. Errors are returned, not
// printed; the caller prints them once with FormatError and exits with ExitCodeFor.
// Not thread-safe: borrows the context's streams and client for the call.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>

#include "apps/gpuctl/api_client.h"
#include "apps/gpuctl/spec.h"
#include "core/clock.h"
#include "core/error.h"

namespace gpuorch::gpuctl {

enum class OutputFormat { kTable, kJson };

struct CommandContext {
  ApiClient& api;
  OutputFormat output = OutputFormat::kTable;
  std::istream& in;  // for `submit -f -`
  std::ostream& out;
  std::ostream& err;
  const core::Clock& clock;
};

struct SubmitOptions {
  std::optional<std::string> file;  // -f; "-" reads ctx.in
  SubmitOverrides overrides;
  std::optional<std::string> idempotency_key;
  bool dry_run = false;  // print the body instead of sending it
};

struct ListOptions {
  ListJobsQuery query;
  bool all = false;  // follow next_cursor through every page
};

// Up to 128 printable ASCII characters, as docs/api.md requires; else a usage error.
[[nodiscard]] core::Status ValidateIdempotencyKey(const std::string& key);

[[nodiscard]] core::Status RunSubmit(CommandContext& ctx, const SubmitOptions& options);
[[nodiscard]] core::Status RunGet(CommandContext& ctx, const std::string& job_id);
[[nodiscard]] core::Status RunList(CommandContext& ctx, const ListOptions& options);
[[nodiscard]] core::Status RunCancel(CommandContext& ctx, const std::string& job_id);
// Copies log bytes to ctx.out as they arrive, flushing each chunk; blocks until the stream ends.
[[nodiscard]] core::Status RunLogs(CommandContext& ctx, const std::string& job_id,
                                   const LogsQuery& query);
[[nodiscard]] core::Status RunTemplates(CommandContext& ctx);
[[nodiscard]] core::Status RunInstances(CommandContext& ctx);

}  // namespace gpuorch::gpuctl
