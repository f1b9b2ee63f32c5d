#include "agent/node_agent.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "agent/container_runtime.h"
#include "agent/gpu_metrics.h"
#include "agent/gpu_probe.h"
#include "core/log.h"

namespace gpuorch::agent {
namespace {

using namespace std::chrono_literals;

constexpr int kMaxChunksPerRound = 8;      // log bytes per attempt per round: 8 chunks
constexpr size_t kMinChunkBytes = 16 * 1024;
constexpr int kMaxUploadRefusals = 3;      // 4xx answers before a final attempt's log is given up
constexpr auto kSleepStep = 20ms;          // how often an idle agent looks at Stop()
constexpr auto kKillWait = 3s;             // how long KillAll waits for the shims to record exits
const char* const kIdentityFile = "node.json";
const char* const kForgottenMarker = "forgotten";

bool FileExists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// Up to `max` bytes of `path` from `offset`; empty at the end or when the file is missing.
std::string ReadAt(const std::string& path, int64_t offset, size_t max) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return "";
  }
  std::string data(max, '\0');
  size_t got = 0;
  while (got < max) {
    ssize_t n = ::pread(fd, data.data() + got, max - got, offset + static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  data.resize(got);
  return data;
}

void AppendLine(const std::string& path, const std::string& line) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd >= 0) {
    ssize_t ignored = ::write(fd, line.data(), line.size());
    (void)ignored;
    ::close(fd);
  }
}

std::string Hostname() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) {
    return "";
  }
  return name;
}

}  // namespace

struct NodeAgent::Held {
  std::string job_id;
  int attempt = 0;
  std::string dir;
  std::optional<AttemptHandle> handle;
  ReportedState state = ReportedState::kStarting;
  std::optional<int> exit_code;
  int64_t log_offset = 0;
  bool offset_known = true;  // false after a re-attach: ask the service how much it has
  bool log_done = false;     // final, and the whole log uploaded (or the upload given up)
  int upload_refusals = 0;
  std::vector<int> pending_signals;  // for an attempt whose pid is not known yet
};

core::Result<std::unique_ptr<NodeAgent>> NodeAgent::Create(NodeAgentOptions options,
                                                           const core::Clock& clock) {
  if (options.server_url.empty()) {
    return core::Fail(core::Code::kInvalidArgument, "agent: the server URL is required",
                      "server_url");
  }
  if (options.data_dir.empty()) {
    return core::Fail(core::Code::kInvalidArgument, "agent: the data dir is required", "data_dir");
  }
  while (options.server_url.size() > 1 && options.server_url.back() == '/') {
    options.server_url.pop_back();
  }
  std::error_code ec;
  auto absolute = std::filesystem::absolute(options.data_dir, ec);
  if (!ec) {
    options.data_dir = absolute.lexically_normal().string();
  }
  while (options.data_dir.size() > 1 && options.data_dir.back() == '/') {
    options.data_dir.pop_back();
  }
  if (options.shim_path.empty()) {
    options.shim_path = ExecutableDir() + "/gpuorch-shim";
  }
  auto http = providers::MakeCurlHttpClient(
      clock, providers::HttpClientOptions{.user_agent = "gpuorch-agent/" + std::string(kAgentVersion),
                                          .max_attempts = 3,
                                          .base_backoff = 100ms,
                                          .max_backoff = 2s,
                                          .max_retry_after = 5s,
                                          .connect_timeout = 5s});
  return std::unique_ptr<NodeAgent>(new NodeAgent(std::move(options), clock, std::move(http)));
}

NodeAgent::NodeAgent(NodeAgentOptions options, const core::Clock& clock,
                     std::unique_ptr<providers::HttpClient> http)
    : options_(std::move(options)),
      clock_(clock),
      http_(std::move(http)),
      runner_(MakeShimProcessRunner(ProcessRunnerOptions{.shim_path = options_.shim_path})),
      interval_(options_.heartbeat_interval) {}

NodeAgent::~NodeAgent() = default;

void NodeAgent::Stop() { stop_ = true; }

std::string NodeAgent::node_id() const {
  std::lock_guard lock(id_mu_);
  return node_id_;
}

std::string NodeAgent::AttemptDir(const std::string& job_id, int attempt) const {
  return options_.data_dir + "/jobs/" + job_id + "/attempt-" + std::to_string(attempt);
}

void NodeAgent::SleepInterruptibly(std::chrono::nanoseconds d) const {
  while (d > 0ns && !stop_) {
    auto step = std::min<std::chrono::nanoseconds>(d, kSleepStep);
    clock_.SleepFor(step);
    d -= step;
  }
}

std::chrono::nanoseconds NodeAgent::FenceAfter() const {
  // The service declares the node lost after lost_after and may then run its jobs elsewhere: the
  // attempts here must be dead before that.
  return std::min<std::chrono::nanoseconds>(options_.fence_after, lost_after_ * 3 / 4);
}

providers::HttpCall NodeAgent::Call(const std::string& path, std::string body) const {
  providers::HttpCall call{.method = "POST",
                           .url = options_.server_url + path,
                           .headers = {{"Content-Type", "application/json"}},
                           .body = std::move(body),
                           .idempotent = true,
                           .timeout = 10s};
  if (!node_token_.empty()) {
    call.headers.emplace_back("Authorization", "Bearer " + node_token_);
  }
  return call;
}

core::Status NodeAgent::LoadIdentity() {
  const std::string path = options_.data_dir + "/" + kIdentityFile;
  if (!FileExists(path)) {
    return core::Ok();
  }
  std::string text = ReadAt(path, 0, 64 * 1024);
  try {
    auto doc = nlohmann::json::parse(text);
    node_token_ = doc.at("node_token").get<std::string>();
    std::lock_guard lock(id_mu_);
    node_id_ = doc.at("node_id").get<std::string>();
    interval_ = std::chrono::milliseconds(doc.value("heartbeat_interval_ms", int64_t{1000}));
    lost_after_ = std::chrono::milliseconds(doc.value("lost_after_ms", int64_t{60000}));
  } catch (const nlohmann::json::exception& e) {
    return core::Fail(core::Code::kUnavailable,
                      "agent: " + path + " is unreadable (" + e.what() +
                          "); remove it to join as a new node");
  }
  if (node_token_.empty() || interval_ <= 0ms || lost_after_ <= 0ms) {
    return core::Fail(core::Code::kUnavailable,
                      "agent: " + path + " is incomplete; remove it to join as a new node");
  }
  return core::Ok();
}

core::Status NodeAgent::SaveIdentity() const {
  const std::string path = options_.data_dir + "/" + kIdentityFile;
  const std::string tmp = path + ".tmp";
  const std::string text = nlohmann::json{{"server_url", options_.server_url},
                                          {"node_id", node_id()},
                                          {"node_token", node_token_},
                                          {"heartbeat_interval_ms", interval_.count()},
                                          {"lost_after_ms", lost_after_.count()}}
                               .dump(2);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return core::Fail(core::Code::kUnavailable,
                      "agent: write " + tmp + ": " + std::strerror(errno));
  }
  ::fchmod(fd, 0600);
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    return core::Fail(core::Code::kUnavailable,
                      "agent: write " + path + ": " + std::strerror(errno));
  }
  return core::Ok();
}

void NodeAgent::Reattach() {
  std::error_code ec;
  const std::filesystem::path jobs = options_.data_dir + "/jobs";
  for (const auto& job : std::filesystem::directory_iterator(jobs, ec)) {
    const std::string job_id = job.path().filename().string();
    if (!job.is_directory() || !IsValidJobId(job_id)) {
      continue;
    }
    std::error_code inner;
    for (const auto& dir : std::filesystem::directory_iterator(job.path(), inner)) {
      const std::string leaf = dir.path().filename().string();
      if (!dir.is_directory() || leaf.rfind("attempt-", 0) != 0 ||
          FileExists(dir.path().string() + "/" + kForgottenMarker)) {
        continue;
      }
      int attempt = std::atoi(leaf.c_str() + 8);
      if (attempt < 1 || leaf != "attempt-" + std::to_string(attempt)) {
        continue;
      }
      auto held = std::make_unique<Held>();
      held->job_id = job_id;
      held->attempt = attempt;
      held->dir = dir.path().string();
      held->offset_known = false;
      held_[AttemptRef{.job_id = job_id, .attempt = attempt}] = std::move(held);
    }
  }
  if (!held_.empty()) {
    spdlog::info("agent: re-attached {} attempt(s) found in {}", held_.size(), jobs.string());
  }
}

core::Status NodeAgent::Prepare() {
  std::error_code ec;
  std::filesystem::create_directories(options_.data_dir + "/jobs", ec);
  if (ec) {
    return core::Fail(core::Code::kUnavailable,
                      "agent: cannot create data dir " + options_.data_dir + ": " + ec.message());
  }
  GPUORCH_TRY(LoadIdentity());
  if (node_token_.empty() && options_.join_token.empty()) {
    return core::Fail(core::Code::kInvalidArgument,
                      "agent: a join token is required (no " + std::string(kIdentityFile) +
                          " in " + options_.data_dir + ")",
                      "join_token");
  }
  Reattach();
  metrics_enabled_ = QueryGpuMetrics(options_.nvidia_smi).has_value();
  return core::Ok();
}

core::Status NodeAgent::RegisterWithRetry() {
  auto probe = MakeSystemGpuProbe(options_.local_gpus, options_.nvidia_smi);
  auto gpus = probe->Discover();
  if (!gpus) {
    spdlog::warn("agent: GPU discovery failed: {}; joining without GPUs", gpus.error().message);
    gpus = std::vector<domain::GpuDevice>{};
  }
  const bool runtime = ContainerRuntimeWorks(options_.container_runtime, 5s);
  const std::string hostname = Hostname();
  RegisterRequest request{.join_token = options_.join_token,
                          .node_name = options_.node_name.empty() ? hostname : options_.node_name,
                          .hostname = hostname,
                          .gpus = *gpus,
                          .container_runtime = runtime,
                          .agent_version = std::string(kAgentVersion)};
  providers::HttpCall call = Call("/api/v1/agent/register", EncodeRegisterRequest(request));
  call.idempotent = false;  // a retried register could consume a one-time token twice
  auto backoff = std::chrono::milliseconds(500);
  while (!stop_) {
    auto reply = http_->Send(call);
    if (reply && reply->status == 201) {
      auto decoded = DecodeRegisterReply(reply->body);
      if (!decoded) {
        return core::Fail(decoded.error().WithContext("agent: register reply"));
      }
      {
        std::lock_guard lock(id_mu_);
        node_id_ = decoded->node_id;
      }
      node_token_ = decoded->node_token;
      interval_ = decoded->heartbeat_interval;
      lost_after_ = decoded->lost_after;
      GPUORCH_TRY(SaveIdentity());
      spdlog::info("agent: joined {} as node {} ({} GPU(s), {})", options_.server_url,
                   decoded->node_id, gpus->size(), probe->Source());
      return core::Ok();
    }
    if (reply && (reply->status == 401 || reply->status == 403)) {
      return core::Fail(core::Code::kUnauthenticated,
                        "agent: the service refused the join token: " +
                            ErrorMessageOf(reply->body));
    }
    if (reply && (reply->status == 400 || reply->status == 422)) {
      return core::Fail(core::Code::kInvalidArgument,
                        "agent: the service refused to register this node: " +
                            ErrorMessageOf(reply->body));
    }
    spdlog::warn("agent: cannot register with {} ({}); retrying in {} ms", options_.server_url,
                 reply ? "HTTP " + std::to_string(reply->status) : reply.error().message,
                 backoff.count());
    SleepInterruptibly(backoff);
    backoff = std::min(backoff * 2, options_.max_register_backoff);
  }
  return core::Ok();
}

void NodeAgent::RefreshAttempts() {
  for (auto& [ref, held] : held_) {
    if (IsFinal(held->state)) {
      continue;
    }
    AttemptProbe probe = runner_->Probe(held->dir);
    if (probe.handle) {
      held->handle = probe.handle;
    }
    switch (probe.status) {
      case AttemptStatus::kRunning:
        held->state = held->handle ? ReportedState::kRunning : ReportedState::kStarting;
        break;
      case AttemptStatus::kExited:
        held->state = ReportedState::kExited;
        held->exit_code = probe.exit_code;
        break;
      case AttemptStatus::kLost:
      case AttemptStatus::kNotStarted:
        held->state = ReportedState::kLost;
        break;
    }
    if (held->handle && !IsFinal(held->state)) {
      for (int signal : held->pending_signals) {
        (void)runner_->Signal(*held->handle, signal);
      }
      held->pending_signals.clear();
    }
  }
}

void NodeAgent::UploadLog(Held& held) {
  const bool final_state = IsFinal(held.state);  // probed before the log is read: the log is whole
  const std::string base = "/api/v1/agent/logs?job_id=" + held.job_id +
                           "&attempt=" + std::to_string(held.attempt) + "&offset=";
  const std::string path = held.dir + "/log";
  for (int round = 0; round < kMaxChunksPerRound && !held.log_done; ++round) {
    std::string data =
        held.offset_known ? ReadAt(path, held.log_offset, chunk_bytes_) : std::string();
    if (held.offset_known && data.empty()) {
      held.log_done = final_state;
      return;
    }
    const size_t sent = data.size();
    providers::HttpCall call =
        Call(base + std::to_string(held.offset_known ? held.log_offset : 0), std::move(data));
    call.headers[0].second = "application/octet-stream";
    call.timeout = 30s;
    auto reply = http_->Send(call);
    if (!reply) {
      return;  // unreachable: the heartbeat will tell
    }
    if (reply->status == 200 || reply->status == 409) {
      auto size = DecodeLogAppendReply(reply->body);
      if (!size) {
        return;
      }
      held.log_offset = size->size;
      held.offset_known = true;
      held.upload_refusals = 0;
      continue;
    }
    if (reply->status == 413 && chunk_bytes_ > kMinChunkBytes && sent > kMinChunkBytes) {
      chunk_bytes_ = std::max(kMinChunkBytes, chunk_bytes_ / 2);
      continue;
    }
    if (reply->status >= 400 && reply->status < 500 && ++held.upload_refusals >= kMaxUploadRefusals &&
        final_state) {
      spdlog::warn("agent: job {} attempt {}: the service refuses its log ({}); giving up",
                   held.job_id, held.attempt, ErrorMessageOf(reply->body));
      held.log_done = true;
    }
    return;
  }
}

void NodeAgent::UploadLogs() {
  for (auto& [ref, held] : held_) {
    if (stop_) {
      return;
    }
    UploadLog(*held);
  }
}

core::Result<HeartbeatReply> NodeAgent::SendHeartbeat() {
  HeartbeatRequest request{.seq = ++seq_};
  for (const auto& [ref, held] : held_) {
    // A final state waits for the log: the service settles the attempt on it.
    const bool report_final = IsFinal(held->state) && held->log_done;
    request.attempts.push_back(AttemptReport{
        .job_id = held->job_id,
        .attempt = held->attempt,
        .state = report_final            ? held->state
                 : IsFinal(held->state)  ? ReportedState::kRunning
                                         : held->state,
        .exit_code = report_final ? held->exit_code : std::nullopt,
        .pid = held->handle ? held->handle->job_pid : 0});
  }
  if (metrics_enabled_) {
    if (auto metrics = QueryGpuMetrics(options_.nvidia_smi)) {
      request.gpu_metrics = std::move(*metrics);
    }
  }
  auto reply = http_->Send(Call("/api/v1/agent/heartbeat", EncodeHeartbeatRequest(request)));
  if (!reply) {
    return core::Fail(reply.error());
  }
  if (reply->status == 200) {
    return DecodeHeartbeatReply(reply->body);
  }
  const std::string message = ErrorMessageOf(reply->body);
  if (reply->status == 410) {
    return core::Fail(core::Code::kFailedPrecondition, "agent: " + message, "", "node_gone");
  }
  if (reply->status == 401) {
    return core::Fail(core::Code::kUnauthenticated, "agent: heartbeat refused: " + message);
  }
  return core::Fail(core::Code::kUnavailable,
                    "agent: heartbeat: HTTP " + std::to_string(reply->status) + ": " + message);
}

void NodeAgent::Launch(const Assignment& assignment) {
  const AttemptRef ref{.job_id = assignment.job_id, .attempt = assignment.attempt};
  if (held_.count(ref) != 0) {
    return;  // delivered again (a retried heartbeat)
  }
  auto held = std::make_unique<Held>();
  held->job_id = assignment.job_id;
  held->attempt = assignment.attempt;
  held->dir = AttemptDir(assignment.job_id, assignment.attempt);
  auto handle = runner_->Launch(LaunchSpec{.attempt_dir = held->dir,
                                           .argv = assignment.argv,
                                           .env = assignment.env,
                                           .working_dir = assignment.working_dir,
                                           .job_id = assignment.job_id,
                                           .attempt = assignment.attempt,
                                           .gpu_indices = assignment.gpu_indices});
  if (handle) {
    held->handle = *handle;
    held->state = ReportedState::kRunning;
    spdlog::info("agent: job {} attempt {} started, pid {}", assignment.job_id,
                 assignment.attempt, handle->job_pid);
  } else {
    held->state = ReportedState::kLost;
    std::error_code ec;
    std::filesystem::create_directories(held->dir, ec);
    AppendLine(held->dir + "/log", "gpuorch agent: cannot start the attempt: " +
                                       handle.error().message + "\n");
    spdlog::warn("agent: job {} attempt {}: cannot start: {}", assignment.job_id,
                 assignment.attempt, handle.error().message);
  }
  held_[ref] = std::move(held);
}

void NodeAgent::Forget(const AttemptRef& ref) {
  auto it = held_.find(ref);
  if (it == held_.end()) {
    return;
  }
  AppendLine(it->second->dir + "/" + kForgottenMarker, "");
  held_.erase(it);
}

void NodeAgent::ApplyReply(const HeartbeatReply& reply) {
  for (const auto& assignment : reply.assignments) {
    Launch(assignment);
  }
  for (const auto& order : reply.signals) {
    auto it = held_.find(AttemptRef{.job_id = order.job_id, .attempt = order.attempt});
    if (it == held_.end() || IsFinal(it->second->state)) {
      continue;
    }
    Held& held = *it->second;
    if (held.handle) {
      if (auto sent = runner_->Signal(*held.handle, order.signal); !sent) {
        spdlog::warn("agent: job {}: signal {}: {}", held.job_id, order.signal,
                     sent.error().message);
      }
    } else {
      held.pending_signals.push_back(order.signal);
    }
  }
  for (const auto& ref : reply.forget) {
    Forget(ref);
  }
}

void NodeAgent::KillAll(const std::string& why) {
  int killed = 0;
  for (auto& [ref, held] : held_) {
    if (IsFinal(held->state)) {
      continue;
    }
    // A shim that has not written the pid file yet does so within moments.
    for (int tries = 0; !held->handle && tries < 50; ++tries) {
      held->handle = runner_->Probe(held->dir).handle;
      if (!held->handle) {
        clock_.SleepFor(kSleepStep);
      }
    }
    if (held->handle) {
      (void)runner_->Signal(*held->handle, SIGKILL);
      ++killed;
    }
  }
  spdlog::error("agent: {}: killed {} attempt(s)", why, killed);
  for (auto waited = 0ns; waited < kKillWait; waited += kSleepStep) {
    RefreshAttempts();
    bool all_ended = std::all_of(held_.begin(), held_.end(),
                                 [](const auto& entry) { return IsFinal(entry.second->state); });
    if (all_ended) {
      return;
    }
    clock_.SleepFor(kSleepStep);
  }
}

core::Status NodeAgent::Run() {
  GPUORCH_TRY(Prepare());
  if (node_token_.empty()) {
    GPUORCH_TRY(RegisterWithRetry());
  } else {
    spdlog::info("agent: continuing as node {} (from {}/{})", node_id(), options_.data_dir,
                 kIdentityFile);
  }
  // Above the wall clock in milliseconds: grows across restarts of the agent (agent_protocol.h).
  seq_ = core::ToUnixMillis(clock_.Now());
  auto last_success = clock_.MonotonicNow();
  bool fenced = false;
  int failures = 0;
  while (!stop_) {
    const auto round_start = clock_.MonotonicNow();
    RefreshAttempts();
    UploadLogs();
    auto reply = SendHeartbeat();
    if (reply) {
      last_success = round_start;
      fenced = false;
      failures = 0;
      ApplyReply(*reply);
    } else if (reply.error().reason == "node_gone") {
      spdlog::error("agent: the service says this node is gone: {}", reply.error().message);
      KillAll("node gone");
      std::vector<AttemptRef> refs;
      for (const auto& [ref, held] : held_) {
        refs.push_back(ref);
      }
      for (const auto& ref : refs) {
        Forget(ref);
      }
      std::error_code ec;
      std::filesystem::remove(options_.data_dir + "/" + kIdentityFile, ec);
      return core::Fail(reply.error());
    } else if (failures++ % 10 == 0) {
      spdlog::warn("agent: heartbeat failed: {}", reply.error().message);
    }
    if (!fenced && clock_.MonotonicNow() - last_success > FenceAfter()) {
      KillAll("no successful heartbeat within the fence time");
      fenced = true;
    }
    const auto elapsed = clock_.MonotonicNow() - round_start;
    if (elapsed < interval_) {
      SleepInterruptibly(interval_ - elapsed);
    }
  }
  spdlog::info("agent: stopped; {} attempt(s) keep running under their shims", held_.size());
  return core::Ok();
}

}  // namespace gpuorch::agent
