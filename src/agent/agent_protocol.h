// The wire protocol between the service and the node agents (`gpuorch agent`): plain request and
// reply values, and their JSON codecs. Both sides use these codecs, so the shapes live in one place.
//
//   POST /api/v1/agent/register   RegisterRequest  → 201 RegisterReply
//   POST /api/v1/agent/heartbeat  HeartbeatRequest → 200 HeartbeatReply   (Bearer node token)
//   POST /api/v1/agent/logs?job_id=J&attempt=N&offset=O, raw bytes → 200 {"size":S}
//
// Heartbeat contract (the agent's side):
// - `seq` grows strictly over the node's whole life, across restarts of the agent (the agent starts
//   from the wall clock in milliseconds and adds one per heartbeat). A retry of a heartbeat reuses
//   its seq; the server then answers again with what it delivered for that seq.
// - Every attempt the agent holds is reported in every heartbeat, until the server lists it in
//   `forget` (which it does once it has seen the attempt's final state, "exited" or "lost").
// - Assignments are launched before the next heartbeat is sent: an assignment missing from a report
//   whose seq is greater than the seq of the heartbeat that delivered it counts as lost.
// - Log bytes of an attempt are uploaded before its final state is reported, so that a settled
//   attempt's log on the server is complete.
//
// Decoders: kInvalidArgument with reason "invalid_json" (HTTP 400) for text that is not JSON, and
// reason "validation_error" with `field` naming the offending member (HTTP 422) for wrong shapes.
// Pure functions; thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "domain/gpu.h"

namespace gpuorch::agent {

inline constexpr size_t kMaxLogChunkBytes = 256 * 1024;  // the most bytes one log append carries
inline constexpr std::string_view kAgentVersion = "0.1.0";

struct RegisterRequest {
  std::string join_token;
  std::string node_name;
  std::string hostname;
  std::vector<domain::GpuDevice> gpus;
  bool container_runtime = false;
  std::string agent_version;

  bool operator==(const RegisterRequest&) const = default;
};

struct RegisterReply {
  std::string node_id;
  std::string node_token;  // the bearer token of every later call; shown only here
  std::chrono::milliseconds heartbeat_interval{1000};
  std::chrono::milliseconds lost_after{60000};  // no heartbeat this long: the node is lost

  bool operator==(const RegisterReply&) const = default;
};

// What the agent knows of an attempt it holds.
enum class ReportedState { kStarting, kRunning, kExited, kLost };

std::string_view ToString(ReportedState state);
std::optional<ReportedState> ParseReportedState(std::string_view text);
// True for kExited and kLost.
bool IsFinal(ReportedState state);

struct AttemptReport {
  std::string job_id;
  int attempt = 0;
  ReportedState state = ReportedState::kStarting;
  std::optional<int> exit_code;  // set with kExited (128+N when killed by signal N)
  int64_t pid = 0;               // the job's process (group) id on the node; 0 while unknown

  bool operator==(const AttemptReport&) const = default;
};

struct GpuMetric {
  int index = 0;
  double utilization_pct = 0;
  int64_t memory_used_mb = 0;
  int64_t memory_total_mb = 0;

  bool operator==(const GpuMetric&) const = default;
};

struct HeartbeatRequest {
  int64_t seq = 0;
  std::vector<AttemptReport> attempts;
  std::vector<GpuMetric> gpu_metrics;

  bool operator==(const HeartbeatRequest&) const = default;
};

struct Assignment {
  std::string job_id;
  int attempt = 0;
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;
  std::vector<int> gpu_indices;
  std::string working_dir;  // empty: the attempt's directory on the node

  bool operator==(const Assignment&) const = default;
};

struct AttemptRef {
  std::string job_id;
  int attempt = 0;

  bool operator==(const AttemptRef&) const = default;
  auto operator<=>(const AttemptRef&) const = default;
};

struct SignalOrder {
  std::string job_id;
  int attempt = 0;
  int signal = 0;  // a Linux signal number, sent to the attempt's whole process group

  bool operator==(const SignalOrder&) const = default;
};

struct HeartbeatReply {
  std::vector<Assignment> assignments;  // launch these (ignore ones already held)
  std::vector<SignalOrder> signals;     // after the assignments of the same reply
  std::vector<AttemptRef> forget;       // stop reporting these

  bool operator==(const HeartbeatReply&) const = default;
};

// A log upload: `data` belongs at byte `offset` of the attempt's log.
struct LogAppend {
  std::string job_id;
  int attempt = 0;
  int64_t offset = 0;
  std::string data;  // at most kMaxLogChunkBytes

  bool operator==(const LogAppend&) const = default;
};

struct LogAppendReply {
  int64_t size = 0;  // the size of the log on the server after the call
  bool gap = false;  // offset was beyond `size`: nothing was written (HTTP 409)

  bool operator==(const LogAppendReply&) const = default;
};

// A job id that is safe as one path component: 1..128 of [A-Za-z0-9._-], not "." or "..".
bool IsValidJobId(std::string_view job_id);

std::string EncodeRegisterRequest(const RegisterRequest& request);
[[nodiscard]] core::Result<RegisterRequest> DecodeRegisterRequest(std::string_view body);
std::string EncodeRegisterReply(const RegisterReply& reply);
[[nodiscard]] core::Result<RegisterReply> DecodeRegisterReply(std::string_view body);

std::string EncodeHeartbeatRequest(const HeartbeatRequest& request);
[[nodiscard]] core::Result<HeartbeatRequest> DecodeHeartbeatRequest(std::string_view body);
std::string EncodeHeartbeatReply(const HeartbeatReply& reply);
[[nodiscard]] core::Result<HeartbeatReply> DecodeHeartbeatReply(std::string_view body);

// {"size":S}; the 409 answer carries the same member next to its "error".
std::string EncodeLogAppendReply(const LogAppendReply& reply);
// Reads "size" from a 200 or 409 body (gap is left false; the caller knows the status).
[[nodiscard]] core::Result<LogAppendReply> DecodeLogAppendReply(std::string_view body);

// The message of an error body {"error":{"code","message",...}}, or the body cut short when it is
// not one (for logs).
std::string ErrorMessageOf(std::string_view body);

}  // namespace gpuorch::agent
