// gpuorch: the orchestration service and its admin commands.
//
//   gpuorch serve [--listen HOST:PORT] [--data-dir DIR] [--config FILE] [--init-db]
//   gpuorch migrate [--data-dir DIR] [--config FILE]
//   gpuorch version
//
// Builds the object graph (store, GPU probe, process runner, job controller, HTTP routes) and owns the
// process lifetime: SIGTERM/SIGINT stop it cleanly. Jobs keep running across a stop or a crash of the
// service: they run under gpuorch-shim and are re-attached on the next start.
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <climits>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

#include "agent/container_runtime.h"
#include "agent/gpu_probe.h"
#include "agent/process_runner.h"
#include "api/api_router.h"
#include "api/http_server.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/env.h"
#include "core/ids.h"
#include "core/log.h"
#include "lifecycle/job_controller.h"
#include "scheduler/scheduler.h"
#include "store/sqlite/sqlite_store.h"

namespace gpuorch {
namespace {

constexpr const char* kVersion = "0.1.0";

struct CommonFlags {
  std::optional<std::string> config_file;
  std::optional<std::string> listen;
  std::optional<std::string> data_dir;
  std::optional<std::string> log_level;
  bool init_db = false;
};

core::Result<core::Config> BuildConfig(const CommonFlags& flags) {
  std::optional<std::string> file = flags.config_file;
  if (!file) {
    file = core::GetEnv("GPUORCH_CONFIG");
  }
  GPUORCH_ASSIGN_OR_RETURN(core::Config config, core::LoadConfig(file));
  if (flags.listen) {
    GPUORCH_TRY(core::ParseListen(*flags.listen, config));
  }
  if (flags.data_dir) {
    config.data_dir = *flags.data_dir;
  }
  if (flags.log_level) {
    config.log_level = *flags.log_level;
  }
  // Absolute, so that attempt directories mean the same after a restart from another directory.
  std::error_code ec;
  std::filesystem::path absolute = std::filesystem::absolute(config.data_dir, ec);
  if (!ec) {
    config.data_dir = absolute.lexically_normal().string();
  }
  return config;
}

scheduler::Quota ToQuota(const core::UserQuota& quota) {
  return scheduler::Quota{.max_gpus_in_use = quota.max_gpus.value_or(INT_MAX),
                          .max_queued_jobs = quota.max_queued_jobs};
}

scheduler::SchedulerConfig SchedulingConfig(const core::Config& config) {
  scheduler::SchedulerConfig out{.fair_share_half_life = config.fair_share_half_life,
                                 .user_weights = config.user_weights,
                                 .default_quota = ToQuota(config.default_quota),
                                 .backfill = config.backfill,
                                 .preemption = config.preemption};
  for (const auto& [user, quota] : config.user_quotas) {
    out.user_quotas[user] = ToQuota(quota);
  }
  return out;
}

std::string DatabasePath(const core::Config& config) { return config.data_dir + "/gpuorch.db"; }

int Fatal(const std::string& message) {
  std::fprintf(stderr, "gpuorch: %s\n", message.c_str());
  return 1;
}

core::Status EnsureDataDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return core::Fail(core::Code::kUnavailable,
                      "cannot create data dir '" + dir + "': " + ec.message());
  }
  return core::Ok();
}

int RunMigrate(const CommonFlags& flags) {
  auto config = BuildConfig(flags);
  if (!config) {
    return Fatal(config.error().message);
  }
  if (auto ok = EnsureDataDir(config->data_dir); !ok) {
    return Fatal(ok.error().message);
  }
  auto version = store::MigrateSqlite(DatabasePath(*config));
  if (!version) {
    return Fatal("migrate: " + version.error().message);
  }
  std::printf("gpuorch: schema of %s is at version %d\n", DatabasePath(*config).c_str(), *version);
  return 0;
}

int RunServe(const CommonFlags& flags) {
  auto config_or = BuildConfig(flags);
  if (!config_or) {
    return Fatal(config_or.error().message);
  }
  const core::Config config = *config_or;
  core::InitLogging(config.log_level);
  if (auto ok = EnsureDataDir(config.data_dir); !ok) {
    return Fatal(ok.error().message);
  }
  if (flags.init_db) {
    return RunMigrate(flags);
  }
  // One service per data dir: two would run the same queued jobs twice.
  const std::string lock_path = config.data_dir + "/gpuorch.lock";
  int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0 || ::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    return Fatal("another gpuorch serve is using data dir " + config.data_dir);
  }

  // Keep freed memory instead of handing it back to the kernel after every burst: returning it
  // (trim) and faulting it in again costs TLB shootdowns across all threads on each request wave.
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  mallopt(M_MMAP_THRESHOLD, 4 << 20);

  // SIGTERM/SIGINT are taken by sigwait() below; block them before any thread exists.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  core::Clock& clock = core::RealClock::Instance();
  auto store = store::OpenSqliteStore(store::SqliteStoreOptions{
      .path = DatabasePath(config), .max_batch = config.group_commit_max_batch});
  if (!store) {
    return Fatal("store: " + store.error().message);
  }
  auto probe = agent::MakeSystemGpuProbe(config.local_gpus);
  auto gpus = probe->Discover();
  if (!gpus) {
    spdlog::warn("GPU discovery failed: {}; this node has no GPUs", gpus.error().message);
    gpus = std::vector<domain::GpuDevice>{};
  }
  const bool runtime_ok =
      agent::ContainerRuntimeWorks(config.container_runtime, std::chrono::seconds(5));
  auto runner = agent::MakeShimProcessRunner(
      agent::ProcessRunnerOptions{.shim_path = agent::ExecutableDir() + "/gpuorch-shim"});
  lifecycle::JobController controller(
      lifecycle::JobControllerDeps{**store, *runner, clock},
      lifecycle::JobControllerOptions{.data_dir = config.data_dir,
                                      .node_id = config.node_name,
                                      .gpus = *gpus,
                                      .gpu_source = probe->Source(),
                                      .container_runtime = runtime_ok ? config.container_runtime : "",
                                      .kill_grace = config.kill_grace,
                                      .retry_backoff_base = config.retry_backoff_base,
                                      .retry_backoff_max = config.retry_backoff_max,
                                      .default_timeout_seconds = config.default_timeout_seconds,
                                      .loop_interval = config.scheduler_interval,
                                      .scheduling = SchedulingConfig(config)});
  if (auto ok = controller.Recover(); !ok) {
    return Fatal(ok.error().message);
  }
  controller.Start();
  auto ids = core::MakeRandomIdGenerator(clock);
  api::ApiRouter router(api::ApiDeps{**store, controller, clock, *ids},
                        api::ApiOptions{.default_timeout_seconds = config.default_timeout_seconds,
                                        .version = kVersion,
                                        .max_queued_jobs = [&config](const std::string& owner) {
                                          return std::optional<int>(
                                              core::QuotaFor(config, owner).max_queued_jobs);
                                        }});
  auto server = api::StartHttpServer(
      api::HttpServerOptions{.host = config.listen_host,
                             .port = config.listen_port,
                             .threads = config.http_threads,
                             .max_body_bytes = config.max_body_bytes},
      [&router](api::HttpRequest request, api::Responder respond) {
        router.Handle(std::move(request), std::move(respond));
      });
  if (!server) {
    controller.Stop();
    return Fatal(server.error().message);
  }
  std::string gpu_text = std::to_string(gpus->size()) + " GPU(s)";
  if (!gpus->empty()) {
    gpu_text += " (" + gpus->front().type + ", " + probe->Source() + ")";
  }
  spdlog::info("data dir {}, node {} with {}, container runtime: {}", config.data_dir,
               config.node_name, gpu_text, runtime_ok ? config.container_runtime : "none");
  std::printf("gpuorch: listening on http://%s:%u\n",
              config.listen_host.find(':') != std::string::npos
                  ? ("[" + config.listen_host + "]").c_str()
                  : config.listen_host.c_str(),
              static_cast<unsigned>((*server)->port()));
  std::fflush(stdout);

  int received = 0;
  sigwait(&stop_signals, &received);
  spdlog::info("received {}, shutting down (running jobs keep running and are re-attached on "
               "the next start)",
               received == SIGTERM ? "SIGTERM" : "SIGINT");
  (*server)->Stop();
  controller.Stop();
  return 0;
}

}  // namespace
}  // namespace gpuorch

int main(int argc, char** argv) {
  using gpuorch::CommonFlags;
  CLI::App app{"gpuorch: GPU job orchestration service"};
  app.require_subcommand(1);
  CommonFlags flags;
  auto add_common = [&flags](CLI::App* cmd) {
    cmd->add_option("--config", flags.config_file, "config file of GPUORCH_*=value lines");
    cmd->add_option("--data-dir", flags.data_dir, "state directory (default ./data)");
    cmd->add_option("--log-level", flags.log_level, "trace|debug|info|warn|error");
  };
  CLI::App* serve = app.add_subcommand("serve", "run the service");
  add_common(serve);
  serve->add_option("--listen", flags.listen, "HOST:PORT to listen on (default 127.0.0.1:8000)");
  serve->add_flag("--init-db", flags.init_db, "create or upgrade the database schema, then exit");
  CLI::App* migrate = app.add_subcommand("migrate", "create or upgrade the database schema");
  add_common(migrate);
  app.add_subcommand("version", "print the version");
  CLI11_PARSE(app, argc, argv);
  if (serve->parsed()) {
    return gpuorch::RunServe(flags);
  }
  if (migrate->parsed()) {
    return gpuorch::RunMigrate(flags);
  }
  std::printf("gpuorch %s\n", gpuorch::kVersion);
  return 0;
}
