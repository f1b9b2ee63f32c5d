#include "agent/agent_protocol.h"

#include <nlohmann/json.hpp>

#include <limits>
#include <utility>

namespace gpuorch::agent {
namespace {

using nlohmann::json;

constexpr size_t kMaxStringBytes = 4096;
constexpr size_t kMaxTokenBytes = 512;
constexpr size_t kMaxListItems = 4096;
constexpr size_t kMaxArgBytes = 128 * 1024;
constexpr int kMaxJsonDepth = 16;

tl::unexpected<core::Error> Invalid(const std::string& field, const std::string& message) {
  return core::Fail(core::Code::kInvalidArgument, field + " " + message, field,
                    "validation_error");
}

core::Result<json> Parse(std::string_view body) {
  try {
    int depth_exceeded = 0;
    json::parser_callback_t limit = [&depth_exceeded](int depth, json::parse_event_t, json&) {
      if (depth > kMaxJsonDepth) {
        depth_exceeded = 1;
      }
      return true;
    };
    json value = json::parse(body.begin(), body.end(), limit);
    if (depth_exceeded != 0) {
      return core::Fail(core::Code::kInvalidArgument, "JSON nests too deeply", "",
                        "invalid_json");
    }
    if (!value.is_object()) {
      return Invalid("body", "must be a JSON object");
    }
    return value;
  } catch (const json::exception& e) {
    return core::Fail(core::Code::kInvalidArgument, std::string("malformed JSON: ") + e.what(), "",
                      "invalid_json");
  }
}

// The member `name` of `obj`, or nullptr when absent or null.
const json* Member(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) {
    return nullptr;
  }
  return &*it;
}

core::Result<std::string> String(const json& obj, const char* name, const std::string& field,
                                 size_t max_bytes, bool required) {
  const json* v = Member(obj, name);
  if (v == nullptr) {
    if (required) {
      return Invalid(field, "is required");
    }
    return std::string();
  }
  if (!v->is_string()) {
    return Invalid(field, "must be a string");
  }
  std::string s = v->get<std::string>();
  if (s.size() > max_bytes) {
    return Invalid(field, "must be at most " + std::to_string(max_bytes) + " bytes");
  }
  if (s.find('\0') != std::string::npos) {
    return Invalid(field, "must not contain NUL");
  }
  return s;
}

core::Result<int64_t> Int(const json& obj, const char* name, const std::string& field, int64_t min,
                          int64_t max, bool required, int64_t fallback = 0) {
  const json* v = Member(obj, name);
  if (v == nullptr) {
    if (required) {
      return Invalid(field, "is required");
    }
    return fallback;
  }
  if (!v->is_number_integer()) {
    return Invalid(field, "must be an integer");
  }
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(max)) {
    return Invalid(field, "must be at most " + std::to_string(max));
  }
  int64_t i = v->get<int64_t>();
  if (i < min || i > max) {
    return Invalid(field, "must be in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return i;
}

core::Result<double> Number(const json& obj, const char* name, const std::string& field) {
  const json* v = Member(obj, name);
  if (v == nullptr) {
    return 0.0;
  }
  if (!v->is_number()) {
    return Invalid(field, "must be a number");
  }
  return v->get<double>();
}

core::Result<const json*> Array(const json& obj, const char* name, const std::string& field) {
  const json* v = Member(obj, name);
  if (v == nullptr) {
    static const json kEmpty = json::array();
    return &kEmpty;
  }
  if (!v->is_array()) {
    return Invalid(field, "must be an array");
  }
  if (v->size() > kMaxListItems) {
    return Invalid(field, "must have at most " + std::to_string(kMaxListItems) + " items");
  }
  return v;
}

core::Result<const json*> Object(const json& item, const std::string& field) {
  if (!item.is_object()) {
    return Invalid(field, "must be an object");
  }
  return &item;
}

std::string Item(const char* list, size_t i) {
  return std::string(list) + "[" + std::to_string(i) + "]";
}

core::Result<AttemptRef> DecodeRef(const json& item, const std::string& field) {
  GPUORCH_TRY(Object(item, field));
  GPUORCH_ASSIGN_OR_RETURN(std::string job_id,
                           String(item, "job_id", field + ".job_id", 128, true));
  if (!IsValidJobId(job_id)) {
    return Invalid(field + ".job_id", "is not a valid job id");
  }
  GPUORCH_ASSIGN_OR_RETURN(int64_t attempt, Int(item, "attempt", field + ".attempt", 1,
                                                std::numeric_limits<int>::max(), true));
  return AttemptRef{.job_id = std::move(job_id), .attempt = static_cast<int>(attempt)};
}

core::Result<domain::GpuDevice> DecodeGpu(const json& item, const std::string& field) {
  GPUORCH_TRY(Object(item, field));
  domain::GpuDevice gpu;
  GPUORCH_ASSIGN_OR_RETURN(int64_t index, Int(item, "index", field + ".index", 0, 1023, true));
  gpu.index = static_cast<int>(index);
  GPUORCH_ASSIGN_OR_RETURN(gpu.name, String(item, "name", field + ".name", 256, false));
  GPUORCH_ASSIGN_OR_RETURN(gpu.type, String(item, "type", field + ".type", 64, false));
  GPUORCH_ASSIGN_OR_RETURN(gpu.memory_mb, Int(item, "memory_mb", field + ".memory_mb", 0,
                                              int64_t{1} << 40, false));
  GPUORCH_ASSIGN_OR_RETURN(gpu.uuid, String(item, "uuid", field + ".uuid", 256, false));
  return gpu;
}

core::Result<AttemptReport> DecodeReport(const json& item, const std::string& field) {
  GPUORCH_ASSIGN_OR_RETURN(AttemptRef ref, DecodeRef(item, field));
  AttemptReport report{.job_id = std::move(ref.job_id), .attempt = ref.attempt};
  GPUORCH_ASSIGN_OR_RETURN(std::string state, String(item, "state", field + ".state", 32, true));
  auto parsed = ParseReportedState(state);
  if (!parsed) {
    return Invalid(field + ".state", "must be one of starting, running, exited, lost");
  }
  report.state = *parsed;
  if (Member(item, "exit_code") != nullptr) {
    GPUORCH_ASSIGN_OR_RETURN(int64_t value, Int(item, "exit_code", field + ".exit_code",
                                                std::numeric_limits<int>::min(),
                                                std::numeric_limits<int>::max(), true));
    report.exit_code = static_cast<int>(value);
  }
  GPUORCH_ASSIGN_OR_RETURN(report.pid, Int(item, "pid", field + ".pid", 0,
                                           std::numeric_limits<int32_t>::max(), false));
  return report;
}

core::Result<GpuMetric> DecodeMetric(const json& item, const std::string& field) {
  GPUORCH_TRY(Object(item, field));
  GpuMetric metric;
  GPUORCH_ASSIGN_OR_RETURN(int64_t index, Int(item, "index", field + ".index", 0, 1023, true));
  metric.index = static_cast<int>(index);
  GPUORCH_ASSIGN_OR_RETURN(metric.utilization_pct,
                           Number(item, "utilization_pct", field + ".utilization_pct"));
  GPUORCH_ASSIGN_OR_RETURN(metric.memory_used_mb, Int(item, "memory_used_mb",
                                                      field + ".memory_used_mb", 0,
                                                      int64_t{1} << 40, false));
  GPUORCH_ASSIGN_OR_RETURN(metric.memory_total_mb, Int(item, "memory_total_mb",
                                                       field + ".memory_total_mb", 0,
                                                       int64_t{1} << 40, false));
  return metric;
}

core::Result<Assignment> DecodeAssignment(const json& item, const std::string& field) {
  GPUORCH_ASSIGN_OR_RETURN(AttemptRef ref, DecodeRef(item, field));
  Assignment out{.job_id = std::move(ref.job_id), .attempt = ref.attempt};
  GPUORCH_ASSIGN_OR_RETURN(const json* argv, Array(item, "argv", field + ".argv"));
  for (size_t i = 0; i < argv->size(); ++i) {
    const std::string f = field + ".argv[" + std::to_string(i) + "]";
    if (!(*argv)[i].is_string()) {
      return Invalid(f, "must be a string");
    }
    std::string arg = (*argv)[i].get<std::string>();
    if (arg.size() > kMaxArgBytes || arg.find('\0') != std::string::npos) {
      return Invalid(f, "is too long or contains NUL");
    }
    out.argv.push_back(std::move(arg));
  }
  if (out.argv.empty()) {
    return Invalid(field + ".argv", "must not be empty");
  }
  if (const json* env = Member(item, "env")) {
    if (!env->is_object()) {
      return Invalid(field + ".env", "must be an object of strings");
    }
    for (const auto& [key, value] : env->items()) {
      if (!value.is_string() || key.empty() || key.find('=') != std::string::npos ||
          key.find('\0') != std::string::npos) {
        return Invalid(field + ".env." + key, "must be a string under a valid name");
      }
      out.env[key] = value.get<std::string>();
    }
  }
  GPUORCH_ASSIGN_OR_RETURN(const json* gpus, Array(item, "gpu_indices", field + ".gpu_indices"));
  for (size_t i = 0; i < gpus->size(); ++i) {
    if (!(*gpus)[i].is_number_integer() || (*gpus)[i].get<int64_t>() < 0 ||
        (*gpus)[i].get<int64_t>() > 1023) {
      return Invalid(field + ".gpu_indices[" + std::to_string(i) + "]",
                     "must be an integer in [0, 1023]");
    }
    out.gpu_indices.push_back((*gpus)[i].get<int>());
  }
  GPUORCH_ASSIGN_OR_RETURN(out.working_dir, String(item, "working_dir", field + ".working_dir",
                                                   kMaxStringBytes, false));
  return out;
}

json GpuJson(const domain::GpuDevice& gpu) {
  return json{{"index", gpu.index},
              {"name", gpu.name},
              {"type", gpu.type},
              {"memory_mb", gpu.memory_mb},
              {"uuid", gpu.uuid}};
}

json RefJson(const std::string& job_id, int attempt) {
  return json{{"job_id", job_id}, {"attempt", attempt}};
}

}  // namespace

std::string_view ToString(ReportedState state) {
  switch (state) {
    case ReportedState::kStarting: return "starting";
    case ReportedState::kRunning: return "running";
    case ReportedState::kExited: return "exited";
    case ReportedState::kLost: return "lost";
  }
  return "lost";
}

std::optional<ReportedState> ParseReportedState(std::string_view text) {
  for (auto state : {ReportedState::kStarting, ReportedState::kRunning, ReportedState::kExited,
                     ReportedState::kLost}) {
    if (ToString(state) == text) {
      return state;
    }
  }
  return std::nullopt;
}

bool IsFinal(ReportedState state) {
  return state == ReportedState::kExited || state == ReportedState::kLost;
}

bool IsValidJobId(std::string_view job_id) {
  if (job_id.empty() || job_id.size() > 128 || job_id == "." || job_id == "..") {
    return false;
  }
  for (char c : job_id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

std::string EncodeRegisterRequest(const RegisterRequest& request) {
  json gpus = json::array();
  for (const auto& gpu : request.gpus) {
    gpus.push_back(GpuJson(gpu));
  }
  return json{{"join_token", request.join_token},
              {"node_name", request.node_name},
              {"hostname", request.hostname},
              {"gpus", gpus},
              {"container_runtime", request.container_runtime},
              {"agent_version", request.agent_version}}
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

core::Result<RegisterRequest> DecodeRegisterRequest(std::string_view body) {
  GPUORCH_ASSIGN_OR_RETURN(json obj, Parse(body));
  RegisterRequest out;
  GPUORCH_ASSIGN_OR_RETURN(out.join_token,
                           String(obj, "join_token", "join_token", kMaxTokenBytes, true));
  GPUORCH_ASSIGN_OR_RETURN(out.node_name, String(obj, "node_name", "node_name", 253, false));
  GPUORCH_ASSIGN_OR_RETURN(out.hostname, String(obj, "hostname", "hostname", 253, false));
  GPUORCH_ASSIGN_OR_RETURN(const json* gpus, Array(obj, "gpus", "gpus"));
  for (size_t i = 0; i < gpus->size(); ++i) {
    GPUORCH_ASSIGN_OR_RETURN(domain::GpuDevice gpu, DecodeGpu((*gpus)[i], Item("gpus", i)));
    out.gpus.push_back(std::move(gpu));
  }
  if (const json* runtime = Member(obj, "container_runtime")) {
    if (!runtime->is_boolean()) {
      return Invalid("container_runtime", "must be a boolean");
    }
    out.container_runtime = runtime->get<bool>();
  }
  GPUORCH_ASSIGN_OR_RETURN(out.agent_version,
                           String(obj, "agent_version", "agent_version", 64, false));
  return out;
}

std::string EncodeRegisterReply(const RegisterReply& reply) {
  return json{{"node_id", reply.node_id},
              {"node_token", reply.node_token},
              {"heartbeat_interval_ms", reply.heartbeat_interval.count()},
              {"lost_after_ms", reply.lost_after.count()}}
      .dump();
}

core::Result<RegisterReply> DecodeRegisterReply(std::string_view body) {
  GPUORCH_ASSIGN_OR_RETURN(json obj, Parse(body));
  RegisterReply out;
  GPUORCH_ASSIGN_OR_RETURN(out.node_id, String(obj, "node_id", "node_id", 253, true));
  GPUORCH_ASSIGN_OR_RETURN(out.node_token,
                           String(obj, "node_token", "node_token", kMaxTokenBytes, true));
  if (out.node_id.empty() || out.node_token.empty()) {
    return Invalid(out.node_id.empty() ? "node_id" : "node_token", "must not be empty");
  }
  constexpr int64_t kDay = 24LL * 3600 * 1000;
  GPUORCH_ASSIGN_OR_RETURN(int64_t interval, Int(obj, "heartbeat_interval_ms",
                                                 "heartbeat_interval_ms", 1, kDay, false, 1000));
  GPUORCH_ASSIGN_OR_RETURN(int64_t lost, Int(obj, "lost_after_ms", "lost_after_ms", 1, kDay,
                                             false, 60000));
  out.heartbeat_interval = std::chrono::milliseconds(interval);
  out.lost_after = std::chrono::milliseconds(lost);
  return out;
}

std::string EncodeHeartbeatRequest(const HeartbeatRequest& request) {
  json attempts = json::array();
  for (const auto& a : request.attempts) {
    json item = RefJson(a.job_id, a.attempt);
    item["state"] = ToString(a.state);
    item["exit_code"] = a.exit_code ? json(*a.exit_code) : json(nullptr);
    item["pid"] = a.pid;
    attempts.push_back(std::move(item));
  }
  json metrics = json::array();
  for (const auto& m : request.gpu_metrics) {
    metrics.push_back({{"index", m.index},
                       {"utilization_pct", m.utilization_pct},
                       {"memory_used_mb", m.memory_used_mb},
                       {"memory_total_mb", m.memory_total_mb}});
  }
  return json{{"seq", request.seq}, {"attempts", attempts}, {"gpu_metrics", metrics}}.dump(
      -1, ' ', false, json::error_handler_t::replace);
}

core::Result<HeartbeatRequest> DecodeHeartbeatRequest(std::string_view body) {
  GPUORCH_ASSIGN_OR_RETURN(json obj, Parse(body));
  HeartbeatRequest out;
  GPUORCH_ASSIGN_OR_RETURN(out.seq, Int(obj, "seq", "seq", 0, std::numeric_limits<int64_t>::max(),
                                        true));
  GPUORCH_ASSIGN_OR_RETURN(const json* attempts, Array(obj, "attempts", "attempts"));
  for (size_t i = 0; i < attempts->size(); ++i) {
    GPUORCH_ASSIGN_OR_RETURN(AttemptReport report,
                             DecodeReport((*attempts)[i], Item("attempts", i)));
    out.attempts.push_back(std::move(report));
  }
  GPUORCH_ASSIGN_OR_RETURN(const json* metrics, Array(obj, "gpu_metrics", "gpu_metrics"));
  for (size_t i = 0; i < metrics->size(); ++i) {
    GPUORCH_ASSIGN_OR_RETURN(GpuMetric metric, DecodeMetric((*metrics)[i], Item("gpu_metrics", i)));
    out.gpu_metrics.push_back(metric);
  }
  return out;
}

std::string EncodeHeartbeatReply(const HeartbeatReply& reply) {
  json assignments = json::array();
  for (const auto& a : reply.assignments) {
    json item = RefJson(a.job_id, a.attempt);
    item["argv"] = a.argv;
    item["env"] = json::object();
    for (const auto& [key, value] : a.env) {
      item["env"][key] = value;
    }
    item["gpu_indices"] = a.gpu_indices;
    item["working_dir"] = a.working_dir;
    assignments.push_back(std::move(item));
  }
  json signals = json::array();
  for (const auto& s : reply.signals) {
    json item = RefJson(s.job_id, s.attempt);
    item["signal"] = s.signal;
    signals.push_back(std::move(item));
  }
  json forget = json::array();
  for (const auto& f : reply.forget) {
    forget.push_back(RefJson(f.job_id, f.attempt));
  }
  return json{{"assignments", assignments}, {"signals", signals}, {"forget", forget}}.dump(
      -1, ' ', false, json::error_handler_t::replace);
}

core::Result<HeartbeatReply> DecodeHeartbeatReply(std::string_view body) {
  GPUORCH_ASSIGN_OR_RETURN(json obj, Parse(body));
  HeartbeatReply out;
  GPUORCH_ASSIGN_OR_RETURN(const json* assignments, Array(obj, "assignments", "assignments"));
  for (size_t i = 0; i < assignments->size(); ++i) {
    GPUORCH_ASSIGN_OR_RETURN(Assignment a,
                             DecodeAssignment((*assignments)[i], Item("assignments", i)));
    out.assignments.push_back(std::move(a));
  }
  GPUORCH_ASSIGN_OR_RETURN(const json* signals, Array(obj, "signals", "signals"));
  for (size_t i = 0; i < signals->size(); ++i) {
    const std::string field = Item("signals", i);
    GPUORCH_ASSIGN_OR_RETURN(AttemptRef ref, DecodeRef((*signals)[i], field));
    GPUORCH_ASSIGN_OR_RETURN(int64_t sig,
                             Int((*signals)[i], "signal", field + ".signal", 1, 64, true));
    out.signals.push_back(SignalOrder{
        .job_id = std::move(ref.job_id), .attempt = ref.attempt, .signal = static_cast<int>(sig)});
  }
  GPUORCH_ASSIGN_OR_RETURN(const json* forget, Array(obj, "forget", "forget"));
  for (size_t i = 0; i < forget->size(); ++i) {
    GPUORCH_ASSIGN_OR_RETURN(AttemptRef ref, DecodeRef((*forget)[i], Item("forget", i)));
    out.forget.push_back(std::move(ref));
  }
  return out;
}

std::string EncodeLogAppendReply(const LogAppendReply& reply) {
  return json{{"size", reply.size}}.dump();
}

core::Result<LogAppendReply> DecodeLogAppendReply(std::string_view body) {
  GPUORCH_ASSIGN_OR_RETURN(json obj, Parse(body));
  LogAppendReply out;
  GPUORCH_ASSIGN_OR_RETURN(out.size, Int(obj, "size", "size", 0,
                                         std::numeric_limits<int64_t>::max(), true));
  return out;
}

std::string ErrorMessageOf(std::string_view body) {
  try {
    json obj = json::parse(body.begin(), body.end());
    const json& error = obj.at("error");
    if (error.is_object() && error.contains("message") && error["message"].is_string()) {
      return error["message"].get<std::string>();
    }
    if (error.is_string()) {
      return error.get<std::string>();
    }
  } catch (const json::exception&) {
  }
  return std::string(body.substr(0, 200));
}

}  // namespace gpuorch::agent
