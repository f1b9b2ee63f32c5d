// The registry of remote nodes: machines that run `gpuorch agent` and talk to the service over the
// agent protocol (agent/agent_protocol.h). It admits agents (join tokens), authenticates them (node
// tokens), turns their heartbeats into what each node's ProcessRunner answers, stores their logs
// where the job controller's AttemptDir puts them, and declares nodes lost when heartbeats stop.
//
// Each remote node gets a ProcessRunner (handed out through NodeListener::OnNodeReady) that the job
// controller drives exactly as the local shim runner:
//   Launch  queues an assignment for the agent's next heartbeat reply and returns at once, with a
//           handle whose job_pid is 0 until the agent reported the pid (Probe's handle carries it;
//           handle.attempt_dir is always the launch's attempt_dir, the runner's key). kUnavailable
//           when the node is lost or gone; kAlreadyExists for an attempt the node already has;
//           kInvalidArgument for an empty argv, a bad env name, an invalid job id or attempt < 1.
//   Probe   kRunning while the attempt is assigned, starting or running; kExited with the exit code
//           once the agent reported it; kLost when the agent dropped it (or never took it: missing
//           from a report sent after the assignment was delivered), or when the node is lost or gone
//           before an exit was reported. An attempt the runner never heard of is kLost, except right
//           after Recover(): then it is kRunning until the node's first heartbeat settles it.
//   Signal  queued for the next heartbeat reply; ignored (Ok) when the attempt already ended or is
//           unknown. A job_pid of 0 is accepted (the agent knows the process).
// Tokens: only SHA-256 hex digests are stored (NodeRecord::token_hash, Instance::join_token_hash).
//
// Thread-safe: heartbeats arrive on HTTP worker threads while the controller calls the runners.
// Register, Recover, Tick, MarkLost, Deregister and AppendLog block on the store or the disk.
// Listener callbacks run on the calling thread, never under the registry's locks.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/agent_protocol.h"
#include "agent/process_runner.h"
#include "core/clock.h"
#include "core/error.h"
#include "domain/instance.h"
#include "security/api_token.h"
#include "store/store.h"

namespace gpuorch::lifecycle {

namespace internal {
class RemoteNodeState;
}  // namespace internal

struct NodeRegistryOptions {
  std::string data_dir;  // the service's; logs go to <data_dir>/jobs/<job_id>/attempt-<n>/log
  std::chrono::seconds lost_after{60};
  std::string static_join_token;  // multi-use join token for self-run machines; empty: none
  std::chrono::milliseconds heartbeat_interval{1000};
  // How long an ended attempt stays answerable by Probe after the agent forgot it.
  std::chrono::seconds ended_retention{3600};
};

struct RemoteNode {
  store::NodeRecord record;
  std::shared_ptr<agent::ProcessRunner> runner;
};

// Told about nodes coming and going. Implementations must not call back into the registry's
// Register or Heartbeat from these callbacks on the same thread while holding their own locks that
// those paths need.
class NodeListener {
 public:
  virtual ~NodeListener() = default;
  // A node registered (or was recovered after a restart of the service) and takes attempts now.
  virtual void OnNodeReady(const RemoteNode& node) = 0;
  // The node is lost (no heartbeats, or MarkLost) or gone (Deregister). Called just before its
  // runner starts answering kLost for every attempt that had not ended (and refusing launches), so
  // that those answers can be read as the node's loss rather than as failures of the attempts.
  virtual void OnNodeLost(const std::string& node_id, const std::string& reason) = 0;
};

struct AttemptView {
  std::string job_id;
  int attempt = 0;
  // "assigned" (not yet taken by the agent), "unconfirmed" (after a restart, before the node's
  // first heartbeat), "starting", "running", "exited" or "lost".
  std::string state;
  std::optional<int> exit_code;
  int64_t pid = 0;

  bool operator==(const AttemptView&) const = default;
};

struct NodeView {
  store::NodeRecord record;
  std::optional<core::SystemTime> last_heartbeat;  // nullopt: none since registration or restart
  std::vector<agent::GpuMetric> gpu_metrics;        // from the latest heartbeat
  std::vector<AttemptView> attempts;                // attempts that have not ended
};

// SHA-256 of `token`, lowercase hex: the form in which join and node tokens are stored (the same
// as API tokens').
using security::TokenHash;

class NodeRegistry {
 public:
  NodeRegistry(store::Store& store, const core::Clock& clock, NodeRegistryOptions options);
  ~NodeRegistry();
  NodeRegistry(const NodeRegistry&) = delete;
  NodeRegistry& operator=(const NodeRegistry&) = delete;

  // REQUIRES: called before Recover() and before any request; `listener` outlives the registry.
  // nullptr: nobody is told.
  void SetListener(NodeListener* listener);

  // Loads the nodes of the store. Active ones get a runner (see the header comment for how it
  // answers until their first heartbeat) and are announced with OnNodeReady; lost and gone ones are
  // remembered so that their agents get 410. Each active node is lost if no heartbeat arrives within
  // lost_after. Call once, before serving requests. Errors of the store are returned as they are.
  [[nodiscard]] core::Status Recover();

  // Admits an agent. The join token is an instance's one-time token (the instance moves to ready,
  // through provisioning when it was still requested, and records the node; the token cannot be
  // used again) or the static join token. kUnauthenticated for any other token; kInvalidArgument
  // (field named) for an unusable request; store errors as they are. Announces the node with
  // OnNodeReady before returning.
  [[nodiscard]] core::Result<agent::RegisterReply> Register(const agent::RegisterRequest& request);

  // Takes a heartbeat of the node whose token is `node_token`. kUnauthenticated for an unknown
  // token; kFailedPrecondition with reason "node_gone" (HTTP 410) when the node is lost or gone.
  [[nodiscard]] core::Result<agent::HeartbeatReply> Heartbeat(
      const std::string& node_token, const agent::HeartbeatRequest& request);

  // Writes log bytes of an attempt assigned to (or re-attached on) the node. Errors as Heartbeat,
  // plus kNotFound for an attempt that is not the node's, kInvalidArgument for a chunk over
  // agent::kMaxLogChunkBytes, an invalid job id, attempt < 1 or offset < 0, and kUnavailable when
  // the disk write failed. A gap (offset beyond the stored size) is a reply with gap = true.
  [[nodiscard]] core::Result<agent::LogAppendReply> AppendLog(const std::string& node_token,
                                                              const agent::LogAppend& append);

  // Declares lost every active node without a heartbeat (or registration, or recovery) for longer
  // than lost_after, and forgets ended attempts older than ended_retention. Call about once a second.
  void Tick();
  // The node is lost now (e.g. the provider reports its instance gone). No-op unless active.
  void MarkLost(const std::string& node_id, const std::string& reason);
  // The node is gone for good (an instance we terminated): state "gone"; its agent gets 410.
  void Deregister(const std::string& node_id, const std::string& reason);

  // Every node known, in registration order, with its live attempts.
  std::vector<NodeView> Nodes() const;

 private:
  struct Node;

  core::Result<std::shared_ptr<Node>> Authenticate(const std::string& node_token) const;
  // nullopt for the static join token, the instance for an unspent instance token;
  // kUnauthenticated otherwise.
  core::Result<std::optional<domain::Instance>> InstanceOfJoinToken(const std::string& join_token);
  store::NodeRecord NewRecord(const agent::RegisterRequest& request,
                              const std::optional<domain::Instance>& instance);
  core::Status MoveInstance(const domain::Instance& instance, domain::InstanceState from,
                            domain::InstanceState to, const std::string& node_id);
  std::string UniqueNodeId(const std::string& wanted);
  // A second registration with the join token of an instance whose node registered but never sent
  // a heartbeat (the reply was lost): a new node token for the same node. REQUIRES register_mu_.
  core::Result<agent::RegisterReply> RegisterAgain(const domain::Instance& instance);
  // After a node's first heartbeat: clears its instance's join token hash, once.
  void SpendJoinToken(Node& node);
  void SetDown(const std::string& node_id, const std::string& state, const std::string& reason);
  std::shared_ptr<Node> MakeNode(store::NodeRecord record);

  store::Store& store_;
  const core::Clock& clock_;
  const NodeRegistryOptions options_;
  NodeListener* listener_ = nullptr;

  std::mutex register_mu_;  // serializes Register (node ids, one-time tokens)
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Node>> nodes_;  // GUARDED_BY(mu_), by id
  std::map<std::string, std::string> node_of_token_;    // GUARDED_BY(mu_): token hash → node id
};

}  // namespace gpuorch::lifecycle
