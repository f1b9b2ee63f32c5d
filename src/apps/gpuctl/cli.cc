#include "apps/gpuctl/cli.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>

#include "apps/gpuctl/commands.h"
#include "apps/gpuctl/errors.h"

namespace gpuorch::gpuctl {
namespace {

struct GlobalOptions {
  std::string server;
  std::string output = "table";
  double timeout_seconds = 30;
};

// Everything the subcommands' flags write into; one instance per RunGpuctl call.
struct ParsedArgs {
  GlobalOptions global;
  SubmitOptions submit;
  ListOptions list;
  std::string job_id;
  LogsQuery logs;
};

template <typename T>
void SetOptional(CLI::App& app, const std::string& flags, std::optional<T>& target,
                 const std::string& help) {
  app.add_option_function<T>(
      flags, [&target](const T& v) { target = v; }, help);
}

void AddSubmit(CLI::App& app, ParsedArgs& a) {
  auto* sub = app.add_subcommand(
      "submit", "Submit a job: gpuctl submit [-f FILE] [--template NAME] [flags] [-- CMD ARGS...]");
  SubmitOverrides& o = a.submit.overrides;
  sub->add_option("-f,--file", a.submit.file, "Job spec file, JSON or YAML ('-' reads stdin)")
      ->type_name("FILE");
  SetOptional(*sub, "--name", o.name, "Job name");
  SetOptional(*sub, "--job-type", o.job_type, "Job type, e.g. custom");
  SetOptional(*sub, "--template", o.template_name, "Template that fills defaults");
  SetOptional(*sub, "--priority", o.priority, "Job priority");
  SetOptional(*sub, "--timeout-seconds", o.timeout_seconds, "Run-time limit of the job");
  SetOptional(*sub, "--max-retries", o.max_retries, "Retries after a failed attempt");
  SetOptional(*sub, "--gpu-type", o.gpu_type, "GPU type, e.g. RTX4090");
  SetOptional(*sub, "--gpus", o.gpu_count, "Number of GPUs (config.gpu_count)");
  SetOptional(*sub, "--memory-gb", o.memory_gb, "Memory in GB");
  SetOptional(*sub, "--image", o.docker_image, "Docker image (config.docker_image)");
  sub->add_option("--env", o.env, "Environment variable (repeatable)")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);
  SetOptional(*sub, "--command", o.command_string,
              "Command as one shell string (run as sh -c STRING); or give argv after --");
  SetOptional(*sub, "--idempotency-key", a.submit.idempotency_key,
              "Idempotency-Key header: a retried submit returns the first job");
  sub->add_flag("--dry-run", a.submit.dry_run, "Print the request body instead of sending it");
  sub->footer("Flags override the fields loaded from -f; --env merges into config.env.");
}

void AddQueries(CLI::App& app, ParsedArgs& a) {
  auto* get = app.add_subcommand("get", "Show one job, with its state transitions");
  get->add_option("JOB_ID", a.job_id, "Job id")->required();

  auto* list = app.add_subcommand("list", "List jobs, newest first");
  SetOptional(*list, "--status", a.list.query.status, "Only these states (comma-separated)");
  SetOptional(*list, "--job-type", a.list.query.job_type, "Only this job type");
  list->add_option_function<int64_t>(
          "--limit", [&a](const int64_t& v) { a.list.query.limit = v; },
          "Jobs per page (1-1000, server default 50)")
      ->check(CLI::Range(1, 1000));
  list->add_flag("--all", a.list.all, "Follow next_cursor through all pages");

  auto* cancel = app.add_subcommand("cancel", "Cancel a job");
  cancel->add_option("JOB_ID", a.job_id, "Job id")->required();

  auto* logs = app.add_subcommand("logs", "Print a job's stdout and stderr");
  logs->add_option("JOB_ID", a.job_id, "Job id")->required();
  logs->add_flag("-f,--follow", a.logs.follow, "Stream the log until the job ends");
  logs->add_option_function<int64_t>(
          "--attempt", [&a](const int64_t& v) { a.logs.attempt = v; },
          "An earlier attempt's log (default: the current one)")
      ->check(CLI::NonNegativeNumber);

  app.add_subcommand("templates", "List job templates");
  app.add_subcommand("instances", "List instances (nodes) and their free GPUs");
}

// Splits off the argv after the first "--": CLI11 would otherwise parse "-u" in
// `gpuctl submit -- python -u x.py` as a flag of its own.
std::vector<std::string> SplitCommandArgv(const std::vector<std::string>& args,
                                          std::vector<std::string>& command_argv) {
  auto dashdash = std::find(args.begin() + std::min<size_t>(1, args.size()), args.end(), "--");
  if (dashdash == args.end()) {
    return args;
  }
  command_argv.assign(dashdash + 1, args.end());
  return std::vector<std::string>(args.begin(), dashdash);
}

core::Result<std::unique_ptr<HttpClient>> MakeHttpClient(const CliDeps& deps) {
  if (deps.http != nullptr) {
    return std::unique_ptr<HttpClient>();
  }
  GPUORCH_ASSIGN_OR_RETURN(auto curl, CurlHttpClient::Create());
  return std::unique_ptr<HttpClient>(std::move(curl));
}

// The token of GPUORCH_TOKEN_FILE, $GPUORCH_DATA_DIR/admin.token or ./data/admin.token: its first
// line. nullopt when no such file exists; an error when GPUORCH_TOKEN_FILE names a missing file.
core::Result<std::optional<std::string>> TokenFromFile(const CliDeps& deps) {
  const bool named = deps.env_token_file && !deps.env_token_file->empty();
  std::string path = named ? *deps.env_token_file
                           : (deps.env_data_dir && !deps.env_data_dir->empty() ? *deps.env_data_dir
                                                                              : "./data") +
                                 "/admin.token";
  std::ifstream in(path);
  if (!in) {
    if (named) {
      return core::Fail(UsageError("cannot read GPUORCH_TOKEN_FILE " + path, "GPUORCH_TOKEN_FILE"));
    }
    return std::optional<std::string>();
  }
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
    line.pop_back();
  }
  return line.empty() ? std::optional<std::string>() : std::optional<std::string>(line);
}

core::Status Dispatch(const CLI::App& app, ParsedArgs& a, const CliDeps& deps) {
  // Checked here rather than with CLI::PositiveNumber, whose message prints DBL_MAX in full.
  if (!(a.global.timeout_seconds > 0) || a.global.timeout_seconds > 1e6) {
    return core::Fail(UsageError("--timeout must be a number of seconds above 0", "--timeout"));
  }
  GPUORCH_ASSIGN_OR_RETURN(auto owned_http, MakeHttpClient(deps));
  HttpClient& http = deps.http != nullptr ? *deps.http : *owned_http;
  auto token = deps.env_token;
  if (token && token->empty()) {
    token.reset();
  }
  if (!token) {
    GPUORCH_ASSIGN_OR_RETURN(token, TokenFromFile(deps));
  }
  GPUORCH_ASSIGN_OR_RETURN(
      ApiClient api,
      ApiClient::Create(http, ApiClientOptions{
                                  .server_url = a.global.server,
                                  .token = token,
                                  .timeout = std::chrono::milliseconds(std::max<int64_t>(
                                      1, std::llround(a.global.timeout_seconds * 1000))),
                              }));
  CommandContext ctx{
      .api = api,
      .output = a.global.output == "json" ? OutputFormat::kJson : OutputFormat::kTable,
      .in = deps.in,
      .out = deps.out,
      .err = deps.err,
      .clock = deps.clock,
  };
  const std::string name = app.get_subcommands().front()->get_name();
  if (name != "submit" && !a.submit.overrides.command_argv.empty()) {
    return core::Fail(UsageError("only submit takes a command after --"));
  }
  if (name == "submit") {
    return RunSubmit(ctx, a.submit);
  }
  if (name == "get") {
    return RunGet(ctx, a.job_id);
  }
  if (name == "list") {
    return RunList(ctx, a.list);
  }
  if (name == "cancel") {
    return RunCancel(ctx, a.job_id);
  }
  if (name == "logs") {
    return RunLogs(ctx, a.job_id, a.logs);
  }
  if (name == "templates") {
    return RunTemplates(ctx);
  }
  return RunInstances(ctx);
}

void AddGlobalOptions(CLI::App& app, GlobalOptions& global) {
  // Global options may also follow the subcommand: `gpuctl list -o json`.
  app.fallthrough();
  app.set_version_flag("--version", "gpuctl 0.1.0");
  app.add_option("--server", global.server,
                 "Server URL (default: $GPUORCH_SERVER, else http://127.0.0.1:8000)")
      ->type_name("URL");
  app.add_option("-o,--output", global.output, "Output format")
      ->type_name("FORMAT")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  app.add_option("--timeout", global.timeout_seconds,
                 "Request timeout in seconds (logs -f: connecting only)")
      ->type_name("SECONDS")
      ->capture_default_str();
  app.footer(
      "Exit codes: 0 ok, 1 server error, 2 usage error, 3 not found, 4 server unreachable.\n"
      "Token: $GPUORCH_TOKEN, else the file $GPUORCH_TOKEN_FILE, else\n"
      "$GPUORCH_DATA_DIR/admin.token or ./data/admin.token when it exists.");
}

}  // namespace

int RunGpuctl(const std::vector<std::string>& args, const CliDeps& deps) {
  ParsedArgs a;
  a.global.server =
      deps.env_server && !deps.env_server->empty() ? *deps.env_server : kDefaultServer;
  CLI::App app("gpuctl: submit and inspect GPU jobs on a gpuorch server", "gpuctl");
  AddGlobalOptions(app, a.global);  // before the subcommands, which inherit fallthrough
  AddSubmit(app, a);
  AddQueries(app, a);
  app.require_subcommand(1);

  std::vector<std::string> cli_args = SplitCommandArgv(args, a.submit.overrides.command_argv);
  std::vector<const char*> argv;
  for (const auto& arg : cli_args) {
    argv.push_back(arg.c_str());
  }
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e, deps.out, deps.err);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e, deps.out, deps.err);
  } catch (const CLI::CallForVersion& e) {
    deps.out << e.what() << "\n";
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    // Point at the help of the subcommand being parsed, when there is one.
    auto subs = app.get_subcommands();
    std::string help =
        subs.empty() ? "gpuctl --help" : "gpuctl " + subs.front()->get_name() + " --help";
    deps.err << "error: " << e.what() << " [" << kReasonUsage << "]\n"
             << "Run '" << help << "' for usage.\n";
    return kExitUsage;
  }

  core::Status status = Dispatch(app, a, deps);
  if (!status) {
    deps.out.flush();
    deps.err << FormatError(status.error()) << "\n";
    return ExitCodeFor(status.error());
  }
  return kExitOk;
}

}  // namespace gpuorch::gpuctl
