#include "lifecycle/internal/remote_node.h"

#include <csignal>
#include <utility>

#include <spdlog/spdlog.h>

#include "core/log.h"

namespace gpuorch::lifecycle::internal {
namespace {

// (job id, attempt) from "<data_dir>/jobs/<job_id>/attempt-<n>", the controller's AttemptDir.
std::optional<agent::AttemptRef> ParseAttemptDir(const std::string& data_dir,
                                                 const std::string& attempt_dir) {
  const std::string prefix = data_dir + "/jobs/";
  if (attempt_dir.compare(0, prefix.size(), prefix) != 0) {
    return std::nullopt;
  }
  const std::string rest = attempt_dir.substr(prefix.size());
  const size_t slash = rest.find('/');
  if (slash == std::string::npos) {
    return std::nullopt;
  }
  const std::string job_id = rest.substr(0, slash);
  const std::string leaf = rest.substr(slash + 1);
  const std::string kAttempt = "attempt-";
  if (!agent::IsValidJobId(job_id) || leaf.compare(0, kAttempt.size(), kAttempt) != 0 ||
      leaf.size() == kAttempt.size() || leaf.size() > kAttempt.size() + 9) {
    return std::nullopt;
  }
  int attempt = 0;
  for (size_t i = kAttempt.size(); i < leaf.size(); ++i) {
    if (leaf[i] < '0' || leaf[i] > '9') {
      return std::nullopt;
    }
    attempt = attempt * 10 + (leaf[i] - '0');
  }
  if (attempt < 1) {
    return std::nullopt;
  }
  return agent::AttemptRef{.job_id = job_id, .attempt = attempt};
}

core::Status ValidateLaunch(const agent::LaunchSpec& spec) {
  if (!agent::IsValidJobId(spec.job_id)) {
    return core::Fail(core::Code::kInvalidArgument, "remote runner: launch: invalid job id",
                      "job_id");
  }
  if (spec.attempt < 1) {
    return core::Fail(core::Code::kInvalidArgument, "remote runner: launch: attempt must be >= 1",
                      "attempt");
  }
  if (spec.argv.empty() || spec.argv[0].empty()) {
    return core::Fail(core::Code::kInvalidArgument, "remote runner: launch: empty argv", "argv");
  }
  for (const auto& [key, value] : spec.env) {
    if (key.empty() || key.find('=') != std::string::npos ||
        key.find('\0') != std::string::npos || value.find('\0') != std::string::npos) {
      return core::Fail(core::Code::kInvalidArgument,
                        "remote runner: launch: invalid environment variable name '" +
                            core::SanitizeForLog(key) + "'",
                        "env");
    }
  }
  return core::Ok();
}

class RemoteNodeRunner final : public agent::ProcessRunner {
 public:
  explicit RemoteNodeRunner(std::shared_ptr<RemoteNodeState> state) : state_(std::move(state)) {}

  core::Result<agent::AttemptHandle> Launch(const agent::LaunchSpec& spec) override {
    return state_->Launch(spec);
  }
  agent::AttemptProbe Probe(const std::string& attempt_dir) override {
    return state_->Probe(attempt_dir);
  }
  core::Status Signal(const agent::AttemptHandle& handle, int signal) override {
    return state_->Signal(handle, signal);
  }

 private:
  const std::shared_ptr<RemoteNodeState> state_;
};

}  // namespace

RemoteNodeState::RemoteNodeState(std::string node_id, std::string data_dir,
                                 const core::Clock& clock)
    : node_id_(std::move(node_id)), data_dir_(std::move(data_dir)), clock_(clock) {}

std::string_view RemoteNodeState::PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kAssigned: return "assigned";
    case Phase::kUnconfirmed: return "unconfirmed";
    case Phase::kStarting: return "starting";
    case Phase::kRunning: return "running";
    case Phase::kExited: return "exited";
    case Phase::kLost: return "lost";
  }
  return "lost";
}

std::string RemoteNodeState::AttemptDirOf(const std::string& job_id, int attempt) const {
  return data_dir_ + "/jobs/" + job_id + "/attempt-" + std::to_string(attempt);
}

RemoteNodeState::Entry* RemoteNodeState::Find(const std::string& attempt_dir) {
  auto dir = key_of_dir_.find(attempt_dir);
  std::optional<Key> key;
  if (dir != key_of_dir_.end()) {
    key = dir->second;
  } else {
    key = ParseAttemptDir(data_dir_, attempt_dir);
  }
  if (!key) {
    return nullptr;
  }
  auto it = entries_.find(*key);
  return it == entries_.end() ? nullptr : &it->second;
}

void RemoteNodeState::End(Entry& entry, Phase phase, std::optional<int> exit_code,
                          const std::string& why) {
  entry.phase = phase;
  entry.exit_code = exit_code;
  entry.assignment.reset();
  entry.ended_at = clock_.MonotonicNow();
  if (phase == Phase::kLost && !why.empty()) {
    spdlog::warn("node {}: job {} attempt {} lost: {}", node_id_, entry.job_id, entry.attempt,
                 why);
  }
}

core::Result<agent::AttemptHandle> RemoteNodeState::Launch(const agent::LaunchSpec& spec) {
  GPUORCH_TRY(ValidateLaunch(spec));
  std::lock_guard lock(mu_);
  if (down_) {
    return core::Fail(core::Code::kUnavailable, "remote runner: node " + node_id_ + " is down");
  }
  const Key key{.job_id = spec.job_id, .attempt = spec.attempt};
  if (entries_.count(key) != 0) {
    return core::Fail(core::Code::kAlreadyExists, "remote runner: node " + node_id_ +
                                                      " already has attempt " +
                                                      std::to_string(spec.attempt) + " of job " +
                                                      spec.job_id);
  }
  const std::string dir =
      spec.attempt_dir.empty() ? AttemptDirOf(spec.job_id, spec.attempt) : spec.attempt_dir;
  Entry entry{.job_id = spec.job_id,
              .attempt = spec.attempt,
              .attempt_dir = dir,
              .phase = Phase::kAssigned,
              .assignment = agent::Assignment{.job_id = spec.job_id,
                                              .attempt = spec.attempt,
                                              .argv = spec.argv,
                                              .env = spec.env,
                                              .gpu_indices = spec.gpu_indices,
                                              .working_dir = spec.working_dir},
              .owned = true};
  entries_.emplace(key, std::move(entry));
  key_of_dir_[dir] = key;
  return agent::AttemptHandle{.attempt_dir = dir};
}

agent::AttemptProbe RemoteNodeState::Probe(const std::string& attempt_dir) {
  std::lock_guard lock(mu_);
  agent::AttemptProbe probe{.status = agent::AttemptStatus::kLost};
  Entry* entry = Find(attempt_dir);
  if (entry == nullptr) {
    auto key = ParseAttemptDir(data_dir_, attempt_dir);
    if (!recovering_ || down_ || !key) {
      return probe;
    }
    // After a restart of the service: the agent may well still run it; its first heartbeat says.
    Entry unconfirmed{.job_id = key->job_id,
                      .attempt = key->attempt,
                      .attempt_dir = attempt_dir,
                      .phase = Phase::kUnconfirmed,
                      .owned = true};
    entry = &entries_.emplace(*key, std::move(unconfirmed)).first->second;
  }
  entry->owned = true;
  key_of_dir_[attempt_dir] = Key{.job_id = entry->job_id, .attempt = entry->attempt};
  if (entry->pid > 0) {
    probe.handle = agent::AttemptHandle{.attempt_dir = attempt_dir, .job_pid = entry->pid};
  }
  switch (entry->phase) {
    case Phase::kExited:
      probe.status = agent::AttemptStatus::kExited;
      probe.exit_code = entry->exit_code;
      break;
    case Phase::kLost:
      probe.status = agent::AttemptStatus::kLost;
      break;
    default:
      probe.status = down_ ? agent::AttemptStatus::kLost : agent::AttemptStatus::kRunning;
      break;
  }
  return probe;
}

core::Status RemoteNodeState::Signal(const agent::AttemptHandle& handle, int signal) {
  if (signal < 1 || signal > 64) {
    return core::Fail(core::Code::kInvalidArgument,
                      "remote runner: invalid signal " + std::to_string(signal));
  }
  std::lock_guard lock(mu_);
  Entry* entry = Find(handle.attempt_dir);
  if (entry == nullptr || down_ || IsFinal(entry->phase)) {
    return core::Ok();
  }
  entry->signals.push_back(PendingSignal{.signal = signal});
  return core::Ok();
}

void RemoteNodeState::BeginRecovery() {
  std::lock_guard lock(mu_);
  recovering_ = true;
}

void RemoteNodeState::MarkDown(const std::string& why) {
  std::lock_guard lock(mu_);
  down_ = true;
  recovering_ = false;
  int lost = 0;
  for (auto& [key, entry] : entries_) {
    if (!IsFinal(entry.phase)) {
      End(entry, Phase::kLost, std::nullopt, "");
      ++lost;
    }
    entry.signals.clear();
    entry.agent_holds = false;
  }
  if (lost > 0) {
    spdlog::warn("node {} is down ({}): {} attempt(s) lost", node_id_, core::SanitizeForLog(why),
                 lost);
  }
}

bool RemoteNodeState::ApplyReport(Entry& entry, const agent::AttemptReport& report, int64_t seq) {
  if (report.pid > 0) {
    entry.pid = report.pid;
  }
  const bool final_report = agent::IsFinal(report.state);
  entry.agent_holds = !final_report;
  if (IsFinal(entry.phase)) {
    if (!final_report && entry.phase == Phase::kLost) {
      // The service already counts it as lost (and may run the job elsewhere): never two live
      // attempts of one job.
      bool kill_pending = false;
      for (const auto& s : entry.signals) {
        kill_pending |= s.signal == SIGKILL && (!s.delivered_seq || *s.delivered_seq == seq);
      }
      if (!kill_pending) {
        entry.signals.push_back(PendingSignal{.signal = SIGKILL});
      }
    }
    return final_report;
  }
  entry.assignment.reset();
  switch (report.state) {
    case agent::ReportedState::kStarting:
      entry.phase = Phase::kStarting;
      break;
    case agent::ReportedState::kRunning:
      entry.phase = Phase::kRunning;
      break;
    case agent::ReportedState::kExited:
      End(entry, Phase::kExited, report.exit_code, "");
      break;
    case agent::ReportedState::kLost:
      End(entry, Phase::kLost, std::nullopt, "the agent lost its process");
      break;
  }
  return final_report;
}

void RemoteNodeState::SettleUnreported(const std::set<Key>& reported, int64_t seq) {
  for (auto& [key, entry] : entries_) {
    if (reported.count(key) != 0 || IsFinal(entry.phase)) {
      continue;
    }
    entry.agent_holds = false;
    switch (entry.phase) {
      case Phase::kAssigned:
        if (entry.delivered_seq && seq > *entry.delivered_seq) {
          End(entry, Phase::kLost, std::nullopt, "the agent did not take the assignment");
        }
        break;
      case Phase::kUnconfirmed:
        End(entry, Phase::kLost, std::nullopt,
            "the agent does not hold it after a restart of the service");
        break;
      case Phase::kStarting:
      case Phase::kRunning:
        End(entry, Phase::kLost, std::nullopt, "the agent no longer reports it");
        break;
      default:
        break;
    }
  }
}

agent::HeartbeatReply RemoteNodeState::Deliveries(int64_t seq,
                                                  std::vector<agent::AttemptRef> forget) {
  agent::HeartbeatReply reply;
  reply.forget = std::move(forget);
  for (auto& [key, entry] : entries_) {
    if (entry.phase == Phase::kAssigned && entry.assignment &&
        (!entry.delivered_seq || *entry.delivered_seq == seq)) {
      entry.delivered_seq = seq;
      reply.assignments.push_back(*entry.assignment);
    }
    for (auto& signal : entry.signals) {
      if (!signal.delivered_seq || *signal.delivered_seq == seq) {
        signal.delivered_seq = seq;
        reply.signals.push_back(agent::SignalOrder{
            .job_id = entry.job_id, .attempt = entry.attempt, .signal = signal.signal});
      }
    }
  }
  return reply;
}

core::Result<agent::HeartbeatReply> RemoteNodeState::ApplyHeartbeat(
    const agent::HeartbeatRequest& request) {
  std::lock_guard lock(mu_);
  if (down_) {
    return core::Fail(core::Code::kFailedPrecondition, "node " + node_id_ + " is no longer active",
                      "", "node_gone");
  }
  const int64_t seq = request.seq;
  if (last_seq_ && seq < *last_seq_) {
    return agent::HeartbeatReply{};  // a late duplicate of an older heartbeat
  }
  last_seq_ = seq;
  // Signals delivered for an older seq reached the agent: the agent sent this heartbeat after
  // handling that reply.
  for (auto& [key, entry] : entries_) {
    std::erase_if(entry.signals, [seq](const PendingSignal& s) {
      return s.delivered_seq && *s.delivered_seq < seq;
    });
  }
  std::set<Key> reported;
  std::vector<agent::AttemptRef> forget;
  for (const auto& report : request.attempts) {
    const Key key{.job_id = report.job_id, .attempt = report.attempt};
    if (!reported.insert(key).second) {
      continue;
    }
    auto it = entries_.find(key);
    if (it == entries_.end()) {
      // Not launched here since the service started: kept so that the controller can re-attach it;
      // its log is accepted once the controller asked about it.
      Entry adopted{.job_id = key.job_id,
                    .attempt = key.attempt,
                    .attempt_dir = AttemptDirOf(key.job_id, key.attempt),
                    .phase = Phase::kRunning};
      it = entries_.emplace(key, std::move(adopted)).first;
      key_of_dir_[it->second.attempt_dir] = key;
    }
    if (ApplyReport(it->second, report, seq)) {
      forget.push_back(key);
    }
  }
  SettleUnreported(reported, seq);
  recovering_ = false;
  return Deliveries(seq, std::move(forget));
}

std::optional<std::string> RemoteNodeState::LogPathOf(const std::string& job_id,
                                                      int attempt) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(Key{.job_id = job_id, .attempt = attempt});
  if (it == entries_.end() || !it->second.owned) {
    return std::nullopt;
  }
  return it->second.attempt_dir + "/log";
}

std::vector<AttemptView> RemoteNodeState::LiveAttempts() const {
  std::lock_guard lock(mu_);
  std::vector<AttemptView> out;
  for (const auto& [key, entry] : entries_) {
    if (!IsFinal(entry.phase)) {
      out.push_back(AttemptView{.job_id = entry.job_id,
                                .attempt = entry.attempt,
                                .state = std::string(PhaseName(entry.phase)),
                                .exit_code = entry.exit_code,
                                .pid = entry.pid});
    }
  }
  return out;
}

void RemoteNodeState::Prune(core::MonotonicTime before) {
  std::lock_guard lock(mu_);
  for (auto it = entries_.begin(); it != entries_.end();) {
    const Entry& entry = it->second;
    if (IsFinal(entry.phase) && !entry.agent_holds && entry.ended_at && *entry.ended_at < before) {
      key_of_dir_.erase(entry.attempt_dir);
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

std::shared_ptr<agent::ProcessRunner> MakeRemoteNodeRunner(std::shared_ptr<RemoteNodeState> state) {
  return std::make_shared<RemoteNodeRunner>(std::move(state));
}

}  // namespace gpuorch::lifecycle::internal
