// Shared pieces of the wire-level fake providers (fake_runpod, fake_vastai, fake_ec2): the ledger of
// instances and money, fault injection, and the launcher that makes a created instance real by
// starting a `gpuorch agent` process on this machine with the instance's GPUs.
//
// Thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <thread>
#include <utility>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "api/http_server.h"
#include "core/clock.h"

namespace gpuorch::fakes {

// One instance the fake provider rented out, alive or not.
struct LedgerEntry {
  std::string provider_instance_id;
  std::string our_instance_id;   // from the tag/label/name we sent; empty when none
  std::string deployment_id;
  std::string offer_id;
  std::string gpu_type;          // canonical
  int gpu_count = 0;
  bool spot = false;
  double price_per_hour = 0;
  core::SystemTime created_at{};
  std::optional<core::SystemTime> ended_at;  // terminated or interrupted
  bool interrupted = false;
  pid_t agent_pid = 0;           // 0: no agent started

  bool live() const { return !ended_at.has_value(); }
  // price × (ended_at or now − created_at), per second.
  double CostUsd(core::SystemTime now) const;
};

enum class FaultKind {
  kHttpStatus,    // answer `status` (with Retry-After when retry_after_seconds > 0)
  kTimeout,       // hold the request for `delay`, then answer 504 (the client should time out first)
  kMalformed,     // 200 with a body that is not what the protocol promises (truncated JSON/XML)
  kNoCapacity,    // the provider's own "no capacity" answer for create
  kQuota,         // the provider's own quota/limit answer for create
  kAuth,          // the provider's own auth failure
};

struct Fault {
  FaultKind kind = FaultKind::kHttpStatus;
  std::string operation;          // "" any; else "offers", "create", "describe", "list", "terminate"
  int status = 500;
  int retry_after_seconds = 0;
  std::chrono::milliseconds delay{0};
  int times = 1;                  // how many matching requests it hits; -1: until cleared
};

// Faults queued by tests, consumed by matching requests in order.
class FaultInjector {
 public:
  void Add(Fault fault);
  void Clear();
  // The first queued fault matching `operation` (counting it down), or nullopt.
  std::optional<Fault> Take(const std::string& operation);

 private:
  std::mutex mu_;
  std::deque<Fault> faults_;
};

struct AgentLaunch {
  std::string agent_binary;   // path of `gpuorch`
  std::string server_url;     // GPUORCH_SERVER
  std::string join_token;     // GPUORCH_JOIN_TOKEN
  std::string local_gpus;     // GPUORCH_LOCAL_GPUS, e.g. "A100:2:80"
  std::string data_dir;       // the agent's own data dir (created)
  std::string node_name;      // GPUORCH_NODE_NAME (the provider instance id)
  std::map<std::string, std::string> extra_env;  // anything else the instance was given
  std::string log_path;       // the agent's stdout+stderr; empty: <data_dir>/agent.log
};

// Answers that timeout faults hold back, each on a thread of its own. Thread-safe.
class LateAnswers {
 public:
  LateAnswers() = default;
  LateAnswers(const LateAnswers&) = delete;
  LateAnswers& operator=(const LateAnswers&) = delete;
  ~LateAnswers();  // Stop()s

  // Sends `response` through `respond` after `delay`, or as soon as Stop() is called (at once when
  // already stopped).
  void Send(std::chrono::milliseconds delay, api::Responder respond, api::HttpResponse response);
  // Releases every held answer and joins their threads. Idempotent.
  void Stop();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;               // GUARDED_BY(mu_)
  std::vector<std::thread> threads_;    // GUARDED_BY(mu_)
};

// An agent a fake started: its pid and data dir.
using AgentProcess = std::pair<pid_t, std::string>;
// The agents of `ledger`'s entries (data dirs <work_dir>/<provider instance id>), forgetting their
// pids so that nothing kills them twice. REQUIRES: the caller holds the lock guarding `ledger`.
std::vector<AgentProcess> TakeAgents(std::vector<LedgerEntry>& ledger, const std::string& work_dir);
void KillAgents(const std::vector<AgentProcess>& agents);

// Starts `gpuorch agent` in its own process group; the pid, or -1 on failure.
pid_t LaunchAgent(const AgentLaunch& launch);
// SIGKILLs the agent's process group and everything its jobs started (they run in their own
// process groups under the agent's data dir, found via their shim pid files), then reaps it.
void KillAgent(pid_t agent_pid, const std::string& agent_data_dir);

// What every fake provider server is built from.
struct FakeProviderOptions {
  std::string agent_binary;  // path of `gpuorch`, for start_agents
  std::string work_dir;      // agents' data dirs live in <work_dir>/<provider instance id>
  std::string api_key;       // the key (EC2: access key id) the fake accepts
  std::string secret;        // EC2: the secret access key the fake verifies signatures with
  bool start_agents = true;  // create starts a real `gpuorch agent` via LaunchAgent
};

// A fake provider speaking the provider's real wire protocol over HTTP on loopback. Thread-safe.
class FakeProviderServer {
 public:
  virtual ~FakeProviderServer() = default;
  virtual std::string name() const = 0;  // "runpod", "vastai", "aws"
  virtual std::string url() const = 0;   // base URL, e.g. "http://127.0.0.1:PORT"
  virtual FaultInjector& faults() = 0;
  // Every instance ever created, live or ended, in creation order.
  virtual std::vector<LedgerEntry> Ledger() const = 0;
  // Simulates the provider taking the instance back (spot interruption): the agent is killed and
  // the ledger entry ends interrupted. False when the instance is unknown or already ended.
  virtual bool Interrupt(const std::string& provider_instance_id) = 0;
  // How many more instances of `gpu_type` (canonical) can be created; 0: out of stock. Types never
  // set are unlimited.
  virtual void SetCapacity(const std::string& gpu_type, int available) = 0;
  virtual void SetStartAgents(bool start) = 0;
  // Stops serving and kills every agent it started. Idempotent; the destructor calls it.
  virtual void Stop() = 0;
};

}  // namespace gpuorch::fakes
