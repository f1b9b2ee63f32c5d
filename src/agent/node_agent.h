// The node agent (`gpuorch agent`): runs on a machine with GPUs, joins a gpuorch service and runs the
// attempts the service assigns to it, speaking the agent protocol (agent/agent_protocol.h).
//
// Lifecycle: discovers the GPUs (nvidia-smi, or the declared ones) and the container runtime, then
// registers with the join token (retrying with backoff while the service is unreachable) and keeps
// the node's identity in <data_dir>/node.json (mode 0600), so a restarted agent continues as the
// same node without a join token. Then it loops every heartbeat interval (the service's):
//   1. probes its attempts; 2. uploads their new log bytes (by offset); 3. sends a heartbeat with
//   every attempt it holds and the GPU metrics (nvidia-smi, when it answers); 4. launches the
//   assignments of the reply, delivers its signals, and drops the attempts it says to forget.
// Attempts run under gpuorch-shim (agent/process_runner.h) in <data_dir>/jobs/<job_id>/attempt-<n>/,
// so they survive a stop or crash of the agent, which re-attaches them on its next start. A
// forgotten attempt's directory keeps its files and gets a `forgotten` marker.
// An attempt's final state is reported only once its log is uploaded (or the upload keeps
// failing), so the service's copy of a settled attempt's log is complete.
//
// Fencing (never two live attempts of one job): on 410 Gone the agent SIGKILLs every attempt,
// forgets them, deletes node.json and Run() fails. Without a successful heartbeat for the fence
// time — fence_after, but at most 3/4 of the service's lost_after — it SIGKILLs every attempt and
// keeps trying to reach the service (it reports their ends once it can).
//
// Thread-safe: Run() on one thread; Stop() and node_id() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/agent_protocol.h"
#include "agent/process_runner.h"
#include "core/clock.h"
#include "core/error.h"
#include "domain/gpu.h"
#include "providers/http_client.h"

namespace gpuorch::agent {

struct NodeAgentOptions {
  std::string server_url;     // "http://host:port" of the service
  std::string join_token;     // needed only when <data_dir>/node.json does not exist
  std::string data_dir;       // made absolute
  std::string node_name;      // empty: the hostname
  std::optional<std::string> local_gpus;  // "TYPE:COUNT[:MEM_GB],..." like GPUORCH_LOCAL_GPUS
  std::string container_runtime = "docker";  // empty: none
  std::chrono::milliseconds heartbeat_interval{1000};  // replaced by the service's
  std::chrono::seconds fence_after{120};  // service unreachable this long: kill all attempts
  std::string shim_path;                  // empty: gpuorch-shim beside the running executable
  std::string nvidia_smi = "nvidia-smi";  // for GPU discovery and metrics
  // The longest a service that does not answer keeps the agent from starting again to register.
  std::chrono::milliseconds max_register_backoff{30000};
};

class NodeAgent {
 public:
  // kInvalidArgument when server_url or data_dir is empty. `clock` must outlive the agent.
  [[nodiscard]] static core::Result<std::unique_ptr<NodeAgent>> Create(NodeAgentOptions options,
                                                                      const core::Clock& clock);
  ~NodeAgent();
  NodeAgent(const NodeAgent&) = delete;
  NodeAgent& operator=(const NodeAgent&) = delete;

  // Joins and serves until Stop() (Ok; running attempts keep running under their shims) or a fatal
  // end: kUnauthenticated when the service refused the join token; kInvalidArgument when there is no
  // join token and no node.json, or the service refused the request; kFailedPrecondition with
  // reason "node_gone" after a 410 (every attempt killed); kUnavailable when the data dir cannot be
  // used. Blocks. REQUIRES: called once.
  [[nodiscard]] core::Status Run();
  // Makes Run() return soon (within about one heartbeat round). Idempotent.
  void Stop();
  // The node id, once registered (or loaded from node.json); empty before.
  std::string node_id() const;

 private:
  struct Held;
  NodeAgent(NodeAgentOptions options, const core::Clock& clock,
            std::unique_ptr<providers::HttpClient> http);

  core::Status Prepare();
  core::Status RegisterWithRetry();
  core::Status LoadIdentity();
  core::Status SaveIdentity() const;
  void Reattach();
  void RefreshAttempts();
  void UploadLogs();
  void UploadLog(Held& held);
  core::Result<HeartbeatReply> SendHeartbeat();
  void ApplyReply(const HeartbeatReply& reply);
  void Launch(const Assignment& assignment);
  void Forget(const AttemptRef& ref);
  void KillAll(const std::string& why);
  void SleepInterruptibly(std::chrono::nanoseconds d) const;
  std::chrono::nanoseconds FenceAfter() const;
  std::string AttemptDir(const std::string& job_id, int attempt) const;
  providers::HttpCall Call(const std::string& path, std::string body) const;

  NodeAgentOptions options_;
  const core::Clock& clock_;
  std::unique_ptr<providers::HttpClient> http_;
  std::unique_ptr<ProcessRunner> runner_;
  std::atomic<bool> stop_{false};

  mutable std::mutex id_mu_;
  std::string node_id_;  // GUARDED_BY(id_mu_)

  // Owned by the thread of Run().
  std::string node_token_;
  std::chrono::milliseconds interval_{1000};
  std::chrono::milliseconds lost_after_{60000};
  int64_t seq_ = 0;
  bool metrics_enabled_ = false;
  size_t chunk_bytes_ = kMaxLogChunkBytes;  // halved when the service answers 413
  std::map<AttemptRef, std::unique_ptr<Held>> held_;
};

}  // namespace gpuorch::agent
