// The service's book of one remote node's attempts, shared by the NodeRegistry (which feeds it the
// agent's heartbeats) and the node's ProcessRunner (which the job controller drives). Internal to
// lifecycle/; the contracts the runner keeps are in node_registry.h.
//
// Each attempt moves along: assigned → (starting) → running → exited | lost. "unconfirmed" is an
// attempt the controller asked about after a restart of the service, before the node's first
// heartbeat. exited and lost are final; a report never moves an attempt out of them (an agent that
// still runs an attempt the service counts as lost is told to SIGKILL it).
//
// Thread-safe (one mutex).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/agent_protocol.h"
#include "agent/process_runner.h"
#include "core/clock.h"
#include "core/error.h"
#include "lifecycle/node_registry.h"

namespace gpuorch::lifecycle::internal {

class RemoteNodeState {
 public:
  RemoteNodeState(std::string node_id, std::string data_dir, const core::Clock& clock);
  RemoteNodeState(const RemoteNodeState&) = delete;
  RemoteNodeState& operator=(const RemoteNodeState&) = delete;

  // --- the runner's side (see node_registry.h) ---
  core::Result<agent::AttemptHandle> Launch(const agent::LaunchSpec& spec);
  agent::AttemptProbe Probe(const std::string& attempt_dir);
  core::Status Signal(const agent::AttemptHandle& handle, int signal);

  // --- the registry's side ---
  // Until the first heartbeat, an attempt Probe has not heard of is kRunning ("unconfirmed").
  void BeginRecovery();
  // Applies the agent's report and returns what to tell it. kFailedPrecondition (reason
  // "node_gone") once the node is down. A seq below the last one seen is stale: nothing changes
  // and the reply is empty; the same seq again gets what was delivered for it again.
  core::Result<agent::HeartbeatReply> ApplyHeartbeat(const agent::HeartbeatRequest& request);
  // The node is lost or gone: every attempt that has not ended is lost; launches are refused.
  void MarkDown(const std::string& why);
  // The log file of the attempt when the controller launched or asked about it on this node.
  std::optional<std::string> LogPathOf(const std::string& job_id, int attempt) const;
  // Attempts that have not ended.
  std::vector<AttemptView> LiveAttempts() const;
  // Forgets ended attempts the agent no longer holds, ended before `before`.
  void Prune(core::MonotonicTime before);

 private:
  enum class Phase { kAssigned, kUnconfirmed, kStarting, kRunning, kExited, kLost };
  struct PendingSignal {
    int signal = 0;
    std::optional<int64_t> delivered_seq;
  };
  struct Entry {
    std::string job_id;
    int attempt = 0;
    std::string attempt_dir;
    Phase phase = Phase::kAssigned;
    std::optional<agent::Assignment> assignment;  // while assigned
    std::optional<int64_t> delivered_seq;          // the heartbeat whose reply carried it
    std::optional<int> exit_code;
    int64_t pid = 0;
    bool owned = false;        // launched or probed by the controller: may write its log
    bool agent_holds = false;  // the agent reports it and has not been told to forget it
    std::optional<core::MonotonicTime> ended_at;
    std::vector<PendingSignal> signals;
  };
  using Key = agent::AttemptRef;

  static bool IsFinal(Phase phase) { return phase == Phase::kExited || phase == Phase::kLost; }
  static std::string_view PhaseName(Phase phase);
  Entry* Find(const std::string& attempt_dir);
  void End(Entry& entry, Phase phase, std::optional<int> exit_code, const std::string& why);
  // Applies one report; true when the agent may forget the attempt now.
  bool ApplyReport(Entry& entry, const agent::AttemptReport& report, int64_t seq);
  void SettleUnreported(const std::set<Key>& reported, int64_t seq);
  agent::HeartbeatReply Deliveries(int64_t seq, std::vector<agent::AttemptRef> forget);
  std::string AttemptDirOf(const std::string& job_id, int attempt) const;

  const std::string node_id_;
  const std::string data_dir_;
  const core::Clock& clock_;
  mutable std::mutex mu_;
  std::map<Key, Entry> entries_;                    // GUARDED_BY(mu_)
  std::map<std::string, Key> key_of_dir_;           // GUARDED_BY(mu_)
  std::optional<int64_t> last_seq_;                 // GUARDED_BY(mu_)
  bool recovering_ = false;                         // GUARDED_BY(mu_)
  bool down_ = false;                               // GUARDED_BY(mu_)
};

// The ProcessRunner of a remote node: a thin view on `state`.
std::shared_ptr<agent::ProcessRunner> MakeRemoteNodeRunner(std::shared_ptr<RemoteNodeState> state);

}  // namespace gpuorch::lifecycle::internal
