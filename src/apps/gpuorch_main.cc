// gpuorch: the orchestration service and its admin commands.
//
//   gpuorch serve [--listen HOST:PORT] [--data-dir DIR] [--config FILE] [--init-db]
//   gpuorch migrate [--data-dir DIR] [--config FILE]
//   gpuorch user add|list|disable|enable|token ... [--data-dir DIR]   (apps/gpuorch/admin_commands.h)
//   gpuorch rotate-master-key [--data-dir DIR]
//   gpuorch agent [--server URL] [--join-token TOKEN] [--data-dir DIR] [--node-name NAME]
//                 [--gpus TYPE:COUNT[:MEM_GB],...]
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
#include <map>
#include <optional>
#include <string>
#include <thread>

#include "agent/container_runtime.h"
#include "agent/gpu_probe.h"
#include "agent/node_agent.h"
#include "agent/process_runner.h"
#include "api/api_router.h"
#include "apps/gpuorch/admin_commands.h"
#include "apps/gpuorch/security_setup.h"
#include "api/http_server.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/env.h"
#include "core/ids.h"
#include "core/log.h"
#include "core/periodic_loop.h"
#include "lifecycle/instance_manager.h"
#include "lifecycle/job_controller.h"
#include "lifecycle/node_registry.h"
#include "optimizer/offer_catalog.h"
#include "providers/factory.h"
#include "providers/reloadable_provider.h"
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

// A data dir this creates is the owner's alone (mode 0700): it holds the database (password and
// token hashes, sealed credentials) and, by default, the key files. An existing one is left as is.
core::Status EnsureDataDir(const std::string& dir) {
  std::error_code ec;
  const bool created = std::filesystem::create_directories(dir, ec);
  if (ec) {
    return core::Fail(core::Code::kUnavailable,
                      "cannot create data dir '" + dir + "': " + ec.message());
  }
  if (created) {
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace, ec);
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
  auto ids = core::MakeRandomIdGenerator(clock);

  // Cloud capacity: provider adapters, their offers, agents' nodes and the instances we rent.
  std::string deployment_id = config.deployment_id;
  if (deployment_id.empty()) {
    auto stored = (*store)->GetOrInitSetting("deployment_id", "gpuorch-" + core::RandomHexToken(6));
    if (!stored) {
      return Fatal("store: " + stored.error().message);
    }
    deployment_id = *stored;
  }
  // Security: keys, users, the vault of provider credentials, rate limits.
  if (auto finished = apps::FinishInterruptedRotation(config); !finished) {
    return Fatal("master key: " + finished.error().message);
  } else if (*finished) {
    spdlog::info("finished an interrupted master key rotation");
  }
  auto security_or = apps::StartSecurity(config, **store, clock, *ids);
  if (!security_or) {
    return Fatal("security: " + security_or.error().message);
  }
  apps::SecurityServices& security = **security_or;
  // Provider settings: the environment's, overridden by credentials stored through the API.
  auto provider_settings = [&config, &security]() -> core::Result<std::map<std::string, std::string>> {
    std::map<std::string, std::string> values = config.provider_settings;
    GPUORCH_ASSIGN_OR_RETURN(auto stored, security.credentials->OpenAll());
    for (auto& [name, value] : stored) {
      values[name] = std::move(value);
    }
    return values;
  };
  auto initial_settings = provider_settings();
  if (!initial_settings) {
    return Fatal("provider credentials: " + initial_settings.error().message);
  }
  std::vector<std::unique_ptr<providers::ReloadableProvider>> providers;
  std::vector<providers::Provider*> provider_ptrs;
  for (auto& p : providers::MakeProviders(
           providers::ProviderSettings{.deployment_id = deployment_id, .values = *initial_settings},
           clock)) {
    spdlog::info("provider {}: {}", p->Name(), p->Configured() ? "configured" : "not configured");
    providers.push_back(std::make_unique<providers::ReloadableProvider>(std::move(p)));
    provider_ptrs.push_back(providers.back().get());
  }
  // Credentials stored through the API take effect at once: the provider's adapter is rebuilt and
  // its offers fetched again.
  std::function<void(const std::string&)> refresh_offers;
  auto credentials_changed = [&](const std::string& name) -> core::Status {
    GPUORCH_ASSIGN_OR_RETURN(auto values, provider_settings());
    for (auto& fresh : providers::MakeProviders(
             providers::ProviderSettings{.deployment_id = deployment_id, .values = values},
             clock)) {
      if (fresh->Name() != name) {
        continue;
      }
      for (auto& current : providers) {
        if (current->Name() == name) {
          spdlog::info("provider {}: {} with the stored credentials", name,
                       fresh->Configured() ? "configured" : "not configured");
          current->Replace(std::move(fresh));
          if (refresh_offers) {
            refresh_offers(name);
          }
          return core::Ok();
        }
      }
    }
    return core::Fail(core::Code::kNotFound, "no provider " + name);
  };
  optimizer::OfferCatalog catalog(
      provider_ptrs, clock,
      optimizer::CatalogOptions{
          .refresh_interval = std::chrono::duration_cast<std::chrono::milliseconds>(config.offer_refresh),
          .ttl = std::chrono::duration_cast<std::chrono::milliseconds>(config.offer_ttl)});
  lifecycle::NodeRegistry registry(**store, clock,
                                   lifecycle::NodeRegistryOptions{
                                       .data_dir = config.data_dir,
                                       .lost_after = config.node_lost_after,
                                       .static_join_token = config.join_token});
  std::map<std::string, std::string> images;
  for (const auto& [provider, key] : std::map<std::string, std::string>{
           {"runpod", "RUNPOD_IMAGE"}, {"vastai", "VAST_IMAGE"}, {"aws", "AWS_AMI_ID"}}) {
    if (auto it = config.provider_settings.find(key); it != config.provider_settings.end()) {
      images[provider] = it->second;
    }
  }
  lifecycle::InstanceManager instances(
      lifecycle::InstanceManagerDeps{.store = **store,
                                     .clock = clock,
                                     .ids = *ids,
                                     .catalog = catalog,
                                     .providers = provider_ptrs,
                                     .registry = registry,
                                     .controller = controller},
      lifecycle::InstanceManagerOptions{.deployment_id = deployment_id,
                                        .public_url = config.public_url,
                                        .loop_interval = config.instance_loop_interval,
                                        .reconcile_interval = config.reconcile_interval,
                                        .provision_after = config.provision_after,
                                        .boot_timeout = config.boot_timeout,
                                        .create_grace = config.create_grace,
                                        .idle_timeout_seconds = config.idle_timeout_seconds,
                                        .max_instances = config.max_instances,
                                        .warm_pool = config.warm_pool,
                                        .images = images,
                                        .crash_point = config.crash_point});
  registry.SetListener(&instances);
  refresh_offers = [&catalog](const std::string& name) { catalog.RefreshProvider(name); };
  if (auto ok = registry.Recover(); !ok) {
    return Fatal(ok.error().message);
  }
  if (auto ok = controller.Recover(); !ok) {
    return Fatal(ok.error().message);
  }
  // Users' limits become scheduler quotas; the directory is re-read on a timer (changes made by the
  // `gpuorch user` commands) and at once after changes made through the API.
  apps::UserLimits user_limits(config, *security.directory, controller);
  user_limits.Apply();
  auto reload_users = [&security, &user_limits] {
    if (auto ok = security.directory->Reload(); !ok) {
      spdlog::warn("user directory reload failed: {}", ok.error().message);
      return;
    }
    user_limits.Apply();
  };
  core::PeriodicLoop directory_loop("user-directory", config.security.directory_reload,
                                    reload_users);
  directory_loop.Start();
  controller.Start();
  core::PeriodicLoop registry_loop("node-registry", std::chrono::milliseconds(1000),
                                   [&registry] { registry.Tick(); });
  registry_loop.Start();
  api::ApiRouter router(api::ApiDeps{.store = **store,
                                     .controller = controller,
                                     .clock = clock,
                                     .ids = *ids,
                                     .instances = &instances,
                                     .catalog = &catalog,
                                     .registry = &registry},
                        api::ApiOptions{.default_timeout_seconds = config.default_timeout_seconds,
                                        .version = kVersion,
                                        .max_queued_jobs =
                                            [&user_limits](const std::string& owner) {
                                              return user_limits.MaxQueuedJobs(owner);
                                            },
                                        .admission_check =
                                            [&user_limits](const std::string& owner) {
                                              return user_limits.AdmissionCheck(owner);
                                            }},
                        api::ApiSecurity{.authenticator = security.authenticator.get(),
                                         .directory = security.directory.get(),
                                         .users = security.users.get(),
                                         .credentials = security.credentials.get(),
                                         .user_limiter = security.user_limiter.get(),
                                         .address_limiter = security.address_limiter.get(),
                                         .login_limiter = security.login_limiter.get(),
                                         .users_changed = reload_users,
                                         .credentials_changed = credentials_changed,
                                         .metrics_open = !config.security.metrics_auth});
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
  if (config.public_url.empty()) {
    const std::string host = config.listen_host == "0.0.0.0" || config.listen_host == "::"
                                 ? "127.0.0.1"
                                 : config.listen_host;
    instances.SetPublicUrl("http://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) +
                           ":" + std::to_string((*server)->port()));
  }
  catalog.Start();
  instances.Start();
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
  instances.Stop();
  catalog.Stop();
  registry_loop.Stop();
  directory_loop.Stop();
  controller.Stop();
  return 0;
}

struct AgentFlags {
  std::optional<std::string> server;
  std::optional<std::string> join_token;
  std::optional<std::string> data_dir;
  std::optional<std::string> node_name;
  std::optional<std::string> gpus;
  std::optional<std::string> log_level;
};

// `gpuorch agent`: joins a service as a node and runs the attempts it assigns. Flags win over the
// environment (GPUORCH_SERVER, GPUORCH_JOIN_TOKEN, GPUORCH_DATA_DIR, GPUORCH_NODE_NAME,
// GPUORCH_LOCAL_GPUS). SIGTERM/SIGINT stop it; the attempts keep running under their shims.
int RunAgent(const AgentFlags& flags) {
  core::InitLogging(flags.log_level.value_or(core::GetEnv("GPUORCH_LOG_LEVEL").value_or("info")));
  agent::NodeAgentOptions options{
      .server_url = flags.server.value_or(core::GetEnv("GPUORCH_SERVER").value_or("")),
      .join_token = flags.join_token.value_or(core::GetEnv("GPUORCH_JOIN_TOKEN").value_or("")),
      .data_dir = flags.data_dir.value_or(core::GetEnv("GPUORCH_DATA_DIR").value_or("./agent-data")),
      .node_name = flags.node_name.value_or(core::GetEnv("GPUORCH_NODE_NAME").value_or("")),
      .local_gpus = flags.gpus ? flags.gpus : core::GetEnv("GPUORCH_LOCAL_GPUS")};
  if (options.server_url.empty()) {
    return Fatal("agent: --server (or GPUORCH_SERVER) is required");
  }
  // Taken by sigwait() below (SIGUSR1: main's own wake-up once Run() returned by itself); blocked
  // before any thread exists.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  auto node = agent::NodeAgent::Create(std::move(options), core::RealClock::Instance());
  if (!node) {
    return Fatal(node.error().message);
  }
  agent::NodeAgent& running = **node;
  std::thread waiter([&running, stop_signals] {
    int received = 0;
    sigwait(&stop_signals, &received);
    if (received != SIGUSR1) {
      spdlog::info("agent: received {}, stopping (attempts keep running)",
                   received == SIGTERM ? "SIGTERM" : "SIGINT");
    }
    running.Stop();
  });
  core::Status result = running.Run();
  ::kill(::getpid(), SIGUSR1);
  waiter.join();
  if (!result) {
    spdlog::error("{}", result.error().message);
    return result.error().reason == "node_gone" ? 3 : 1;
  }
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
  gpuorch::AgentFlags agent_flags;
  CLI::App* agent = app.add_subcommand("agent", "join a service as a node and run its jobs");
  agent->add_option("--server", agent_flags.server, "URL of the service (GPUORCH_SERVER)");
  agent->add_option("--join-token", agent_flags.join_token,
                    "join token, needed until the node is registered (GPUORCH_JOIN_TOKEN)");
  agent->add_option("--data-dir", agent_flags.data_dir,
                    "state and attempt directory (GPUORCH_DATA_DIR, default ./agent-data)");
  agent->add_option("--node-name", agent_flags.node_name,
                    "name of this node (GPUORCH_NODE_NAME, default the hostname)");
  agent->add_option("--gpus", agent_flags.gpus,
                    "declared GPUs TYPE:COUNT[:MEM_GB],... instead of nvidia-smi "
                    "(GPUORCH_LOCAL_GPUS)");
  agent->add_option("--log-level", agent_flags.log_level, "trace|debug|info|warn|error");
  gpuorch::apps::UserCommand user_command;
  CLI::App* user = app.add_subcommand("user", "manage users and their API tokens");
  user->require_subcommand(1);
  CLI::App* user_add = user->add_subcommand("add", "add a user; the password is read from stdin");
  user_add->add_option("name", user_command.name, "user name")->required();
  user_add->add_flag("--admin", user_command.admin, "make the user an admin");
  CLI::App* user_list = user->add_subcommand("list", "list users");
  CLI::App* user_disable = user->add_subcommand("disable", "disable a user and revoke its tokens");
  user_disable->add_option("name", user_command.name, "user name")->required();
  CLI::App* user_enable = user->add_subcommand("enable", "enable a disabled user");
  user_enable->add_option("name", user_command.name, "user name")->required();
  CLI::App* user_token = user->add_subcommand("token", "print a new API token for a user");
  user_token->add_option("name", user_command.name, "user name")->required();
  user_token->add_option("--name", user_command.token_name, "what the token is for");
  user_token->add_option("--expires-in-days", user_command.expires_in_days,
                         "lifetime in days (default: until revoked)");
  for (CLI::App* cmd : {user_add, user_list, user_disable, user_enable, user_token}) {
    add_common(cmd);
  }
  CLI::App* rotate = app.add_subcommand(
      "rotate-master-key", "re-seal stored provider credentials under a new master key");
  add_common(rotate);
  app.add_subcommand("version", "print the version");
  CLI11_PARSE(app, argc, argv);
  if (user->parsed() || rotate->parsed()) {
    auto config = gpuorch::BuildConfig(flags);
    if (!config) {
      return gpuorch::Fatal(config.error().message);
    }
    if (rotate->parsed()) {
      return gpuorch::apps::RunRotateMasterKey(*config);
    }
    for (CLI::App* cmd : {user_add, user_list, user_disable, user_enable, user_token}) {
      if (cmd->parsed()) {
        user_command.action = cmd->get_name();
      }
    }
    return gpuorch::apps::RunUserCommand(*config, user_command);
  }
  if (agent->parsed()) {
    return gpuorch::RunAgent(agent_flags);
  }
  if (serve->parsed()) {
    return gpuorch::RunServe(flags);
  }
  if (migrate->parsed()) {
    return gpuorch::RunMigrate(flags);
  }
  std::printf("gpuorch %s\n", gpuorch::kVersion);
  return 0;
}
