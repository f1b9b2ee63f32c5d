#include "api/internal/job_codec.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "domain/gpu.h"
#include "domain/templates.h"

namespace gpuorch::api::internal {
namespace {

using nlohmann::json;

constexpr size_t kMaxNameBytes = 256;
constexpr size_t kMaxImageBytes = 512;
constexpr size_t kMaxCommandArgs = 4096;
constexpr size_t kMaxEnvVars = 256;
constexpr int64_t kMaxTimeoutSeconds = 30LL * 24 * 3600;
constexpr size_t kMaxNodeSelectorLabels = 64;
constexpr size_t kMaxLabelBytes = 63;
constexpr size_t kMaxAllowedProviders = 64;

tl::unexpected<core::Error> Invalid(std::string field, std::string message,
                                    std::string reason = "validation_error") {
  return core::Fail(core::Code::kInvalidArgument, std::move(message), std::move(field),
                    std::move(reason));
}

std::string TypeName(const json& v) {
  if (v.is_number_float()) {
    return "a fractional number";
  }
  if (v.is_number()) {
    return "a number";
  }
  return std::string("a ") + v.type_name();
}

// Strict integer: JSON integer literal within [min, max]; floats (even 4.0), strings and null fail.
core::Result<int64_t> GetInt(const json& v, const std::string& field, int64_t min, int64_t max) {
  const std::string range = "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
  if (!v.is_number_integer()) {
    return Invalid(field, field + " must be " + range + ", got " + TypeName(v));
  }
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(max) || static_cast<int64_t>(u) < min) {
      return Invalid(field, field + " must be " + range + ", got " + v.dump());
    }
    return static_cast<int64_t>(u);
  }
  int64_t i = v.get<int64_t>();
  if (i < min || i > max) {
    return Invalid(field, field + " must be " + range + ", got " + std::to_string(i));
  }
  return i;
}

core::Result<std::string> GetString(const json& v, const std::string& field, size_t max_bytes,
                                    bool allow_empty = true) {
  if (!v.is_string()) {
    return Invalid(field, field + " must be a string, got " + TypeName(v));
  }
  std::string s = v.get<std::string>();
  if (s.size() > max_bytes) {
    return Invalid(field, field + " must be at most " + std::to_string(max_bytes) + " bytes");
  }
  if (!allow_empty && s.empty()) {
    return Invalid(field, field + " must not be empty");
  }
  return s;
}

bool HasNul(const std::string& s) { return s.find('\0') != std::string::npos; }

core::Status CheckKeys(const json& obj, const std::string& where,
                       std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : obj.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return Invalid(where.empty() ? key : where + "." + key, "unknown field '" + key + "'");
    }
  }
  return core::Ok();
}

core::Status ApplyCommand(const json& v, domain::JobSpec& spec) {
  const std::string field = "config.command";
  if (v.is_null()) {
    return core::Ok();
  }
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    if (s.empty() || HasNul(s)) {
      return Invalid(field, "config.command must be a non-empty string without NUL bytes");
    }
    spec.command = {"sh", "-c", s};
    return core::Ok();
  }
  if (!v.is_array() || v.empty() || v.size() > kMaxCommandArgs) {
    return Invalid(field, "config.command must be a shell string or a non-empty array of at most " +
                              std::to_string(kMaxCommandArgs) + " strings");
  }
  std::vector<std::string> argv;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string item_field = field + "[" + std::to_string(i) + "]";
    if (!v[i].is_string() || HasNul(v[i].get<std::string>())) {
      return Invalid(item_field, item_field + " must be a string without NUL bytes");
    }
    argv.push_back(v[i].get<std::string>());
  }
  if (argv[0].empty()) {
    return Invalid(field + "[0]", "config.command[0] must name a program");
  }
  spec.command = std::move(argv);
  return core::Ok();
}

bool IsAsciiAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// [A-Za-z_][A-Za-z0-9_]{0,127}
bool IsEnvName(const std::string& s) {
  if (s.empty() || s.size() > 128 || (s[0] >= '0' && s[0] <= '9')) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [](char c) { return IsAsciiAlnum(c) || c == '_'; });
}

// [A-Za-z0-9][A-Za-z0-9._/:@+-]*
bool IsImageReference(const std::string& s) {
  if (s.empty() || !IsAsciiAlnum(s[0])) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [](char c) {
    return IsAsciiAlnum(c) || std::string_view("._/:@+-").find(c) != std::string_view::npos;
  });
}

bool IsReservedEnv(const std::string& key) {
  return key == "CUDA_VISIBLE_DEVICES" || key == "NVIDIA_VISIBLE_DEVICES" ||
         key == "CUDA_DEVICE_ORDER" || key.rfind("GPUORCH_", 0) == 0;
}

core::Status ApplyEnv(const json& v, domain::JobSpec& spec) {
  if (v.is_null()) {
    return core::Ok();
  }
  if (!v.is_object() || v.size() > kMaxEnvVars) {
    return Invalid("config.env", "config.env must be an object of at most " +
                                     std::to_string(kMaxEnvVars) + " string values");
  }
  for (const auto& [key, value] : v.items()) {
    const std::string field = "config.env." + key;
    if (!IsEnvName(key)) {
      return Invalid("config.env", "config.env names must match [A-Za-z_][A-Za-z0-9_]*");
    }
    if (IsReservedEnv(key)) {
      return Invalid(field, key + " is set by the service and cannot be overridden");
    }
    if (!value.is_string() || HasNul(value.get<std::string>())) {
      return Invalid(field, field + " must be a string without NUL bytes");
    }
    spec.env[key] = value.get<std::string>();
  }
  return core::Ok();
}

// 1..63 chars of [A-Za-z0-9._/-]: a node label key or value.
bool IsLabelText(const std::string& s) {
  if (s.empty() || s.size() > kMaxLabelBytes) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [](char c) {
    return IsAsciiAlnum(c) || std::string_view("._/-").find(c) != std::string_view::npos;
  });
}

core::Status ApplyNodeSelector(const json& v, domain::JobSpec& spec) {
  const std::string field = "config.node_selector";
  if (v.is_null()) {
    return core::Ok();
  }
  if (!v.is_object() || v.size() > kMaxNodeSelectorLabels) {
    return Invalid(field, field + " must be an object of at most " +
                              std::to_string(kMaxNodeSelectorLabels) + " string values");
  }
  std::map<std::string, std::string> selector;
  for (const auto& [key, value] : v.items()) {
    if (!IsLabelText(key)) {
      // The key stays out of `field`: it is not known to be printable.
      return Invalid(field,
                     "config.node_selector keys must be 1 to 63 characters of [A-Za-z0-9._/-]");
    }
    const std::string value_field = field + "." + key;
    if (!value.is_string()) {
      return Invalid(value_field, value_field + " must be a string, got " + TypeName(value));
    }
    if (!IsLabelText(value.get<std::string>())) {
      return Invalid(value_field, value_field + " must be 1 to 63 characters of [A-Za-z0-9._/-]");
    }
    selector[key] = value.get<std::string>();
  }
  spec.node_selector = std::move(selector);
  return core::Ok();
}

core::Status ApplyAllowedProviders(const json& v, domain::JobSpec& spec) {
  const std::string field = "config.allowed_providers";
  if (v.is_null()) {
    return core::Ok();
  }
  if (!v.is_array() || v.size() > kMaxAllowedProviders) {
    return Invalid(field, field + " must be an array of at most " +
                              std::to_string(kMaxAllowedProviders) + " provider names");
  }
  const std::vector<std::string>& known = KnownProviders();
  std::vector<std::string> providers;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string item_field = field + "[" + std::to_string(i) + "]";
    if (!v[i].is_string()) {
      return Invalid(item_field, item_field + " must be a string, got " + TypeName(v[i]));
    }
    const std::string name = v[i].get<std::string>();
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      std::string list;
      for (const auto& k : known) {
        list += (list.empty() ? "" : ", ") + k;
      }
      return Invalid(item_field,
                     "unknown provider '" + name.substr(0, 64) + "' (known: " + list + ")",
                     "unknown_provider");
    }
    if (std::find(providers.begin(), providers.end(), name) == providers.end()) {
      providers.push_back(name);  // a repeat adds nothing
    }
  }
  spec.allowed_providers = std::move(providers);
  return core::Ok();
}

core::Status ApplyConfig(const json& config, const SubmitLimits& limits, domain::JobSpec& spec) {
  if (!config.is_object()) {
    return Invalid("config", "config must be an object, got " + TypeName(config));
  }
  if (config.contains("gpu_type") && !config["gpu_type"].is_null()) {
    GPUORCH_ASSIGN_OR_RETURN(std::string type, GetString(config["gpu_type"], "config.gpu_type", 64));
    std::string canonical = domain::CanonicalGpuType(type);
    if (!canonical.empty() && !limits.known_gpu_types.count(canonical)) {
      return Invalid("config.gpu_type", "unknown GPU type '" + type + "'", "unknown_gpu_type");
    }
    spec.gpu_type = canonical;
  }
  if (config.contains("gpu_count")) {
    GPUORCH_ASSIGN_OR_RETURN(int64_t n, GetInt(config["gpu_count"], "config.gpu_count", 1, kMaxGpuCount));
    spec.gpu_count = static_cast<int>(n);
  }
  if (config.contains("memory_gb") && !config["memory_gb"].is_null()) {
    const json& m = config["memory_gb"];
    if (!m.is_number() || !std::isfinite(m.get<double>()) || m.get<double>() < 0 ||
        m.get<double>() > 1'000'000) {
      return Invalid("config.memory_gb", "config.memory_gb must be a number in [0, 1000000]");
    }
    spec.memory_gb = m.get<double>();
  }
  if (config.contains("docker_image") && !config["docker_image"].is_null()) {
    GPUORCH_ASSIGN_OR_RETURN(std::string image,
                             GetString(config["docker_image"], "config.docker_image", kMaxImageBytes));
    if (!image.empty() && !IsImageReference(image)) {
      return Invalid("config.docker_image", "config.docker_image is not a valid image reference");
    }
    spec.docker_image = image;
  }
  if (config.contains("model_name") && !config["model_name"].is_null()) {
    GPUORCH_ASSIGN_OR_RETURN(spec.model_name,
                             GetString(config["model_name"], "config.model_name", kMaxNameBytes));
  }
  if (config.contains("command")) {
    GPUORCH_TRY(ApplyCommand(config["command"], spec));
  }
  if (config.contains("env")) {
    GPUORCH_TRY(ApplyEnv(config["env"], spec));
  }
  if (config.contains("node_selector")) {
    GPUORCH_TRY(ApplyNodeSelector(config["node_selector"], spec));
  }
  if (config.contains("allowed_providers")) {
    GPUORCH_TRY(ApplyAllowedProviders(config["allowed_providers"], spec));
  }
  return core::Ok();
}

}  // namespace

const std::vector<std::string>& KnownProviders() {
  static const std::vector<std::string> providers = {"local", "runpod", "vastai",
                                                     "aws",   "slurm",  "kubernetes"};
  return providers;
}

core::Result<json> ParseJsonBody(std::string_view body) {
  // Depth check before parsing: bounded work and no deep recursion on hostile input.
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) {
        return core::Fail(core::Code::kInvalidArgument,
                          "JSON nesting deeper than " + std::to_string(kMaxJsonDepth), "",
                          "invalid_json");
      }
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  json parsed = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return core::Fail(core::Code::kInvalidArgument,
                      "request body is not valid JSON (RFC 8259, UTF-8)", "", "invalid_json");
  }
  return parsed;
}

core::Result<domain::JobSpec> ParseJobSpec(const json& body, const SubmitLimits& limits) {
  if (!body.is_object()) {
    return Invalid("", "request body must be a JSON object, got " + TypeName(body));
  }
  GPUORCH_TRY(CheckKeys(body, "",
                        {"name", "job_type", "template", "priority", "timeout_seconds",
                         "max_retries", "preemptible", "config", "dry_run"}));
  domain::JobSpec spec;
  if (body.contains("template") && !body["template"].is_null()) {
    GPUORCH_ASSIGN_OR_RETURN(std::string name, GetString(body["template"], "template", 128));
    const domain::JobTemplate* tmpl = domain::FindTemplate(name);
    if (tmpl == nullptr) {
      return Invalid("template", "unknown template '" + name + "'", "unknown_template");
    }
    spec = tmpl->defaults;
  } else {
    spec.name = "";
  }
  if (body.contains("name") && !body["name"].is_null()) {
    GPUORCH_ASSIGN_OR_RETURN(spec.name, GetString(body["name"], "name", kMaxNameBytes));
  }
  if (body.contains("job_type") && !body["job_type"].is_null()) {
    GPUORCH_ASSIGN_OR_RETURN(std::string type, GetString(body["job_type"], "job_type", 64));
    const auto& known = domain::KnownJobTypes();
    if (std::find(known.begin(), known.end(), type) == known.end()) {
      std::string list;
      for (const auto& k : known) {
        list += (list.empty() ? "" : ", ") + k;
      }
      return Invalid("job_type", "unknown job_type '" + type + "' (known: " + list + ")",
                     "unknown_job_type");
    }
    spec.job_type = type;
  }
  if (body.contains("priority")) {
    GPUORCH_ASSIGN_OR_RETURN(int64_t p, GetInt(body["priority"], "priority", -1000, 1000));
    spec.priority = static_cast<int>(p);
  }
  if (body.contains("timeout_seconds")) {
    GPUORCH_ASSIGN_OR_RETURN(spec.timeout_seconds,
                             GetInt(body["timeout_seconds"], "timeout_seconds", 1, kMaxTimeoutSeconds));
  }
  if (spec.timeout_seconds == 0) {
    spec.timeout_seconds = limits.default_timeout_seconds;
  }
  if (body.contains("max_retries")) {
    GPUORCH_ASSIGN_OR_RETURN(int64_t r, GetInt(body["max_retries"], "max_retries", 0, 20));
    spec.max_retries = static_cast<int>(r);
  }
  if (body.contains("preemptible")) {
    const json& p = body["preemptible"];
    if (!p.is_boolean()) {
      return Invalid("preemptible", "preemptible must be true or false, got " + TypeName(p));
    }
    spec.preemptible = p.get<bool>();
  }
  json config = json::object();
  if (body.contains("config")) {
    config = body["config"];
    GPUORCH_TRY(ApplyConfig(config, limits, spec));
  } else if (spec.template_name.empty()) {
    return Invalid("config", "config is required unless a template is named");
  }
  if (spec.command.empty() && spec.docker_image.empty()) {
    return Invalid("config.command", "config.command or config.docker_image is required");
  }
  if (spec.name.empty()) {
    spec.name = spec.job_type + "-job";
  }
  spec.config_json = config.dump();
  return spec;
}

core::Status ValidateIdempotencyKey(std::string_view key) {
  if (key.empty() || key.size() > 128 ||
      !std::all_of(key.begin(), key.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
    return core::Fail(core::Code::kInvalidArgument,
                      "Idempotency-Key must be 1 to 128 printable ASCII characters",
                      "Idempotency-Key", "bad_request");
  }
  return core::Ok();
}

namespace {
json TimeOrNull(const std::optional<core::SystemTime>& t) {
  return t ? json(core::FormatRfc3339(*t)) : json(nullptr);
}
json StringOrNull(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }
}  // namespace

json SpecConfigToJson(const domain::JobSpec& spec) {
  json config = json::parse(spec.config_json.empty() ? "{}" : spec.config_json, nullptr, false);
  if (!config.is_object()) {
    config = json::object();
  }
  config["gpu_type"] = StringOrNull(spec.gpu_type);
  config["gpu_count"] = spec.gpu_count;
  config["memory_gb"] = spec.memory_gb;
  config["docker_image"] = StringOrNull(spec.docker_image);
  config["model_name"] = StringOrNull(spec.model_name);
  config["command"] = spec.command;
  config["env"] = spec.env;
  config["node_selector"] = spec.node_selector;
  config["allowed_providers"] = spec.allowed_providers;
  return config;
}

json JobToJson(const domain::Job& job) {
  return json{{"job_id", job.id},
              {"name", job.spec.name},
              {"job_type", job.spec.job_type},
              {"template", StringOrNull(job.spec.template_name)},
              {"owner", job.owner},
              {"status", std::string(domain::ToString(job.state))},
              {"status_message", job.status_message},
              {"priority", job.spec.priority},
              {"timeout_seconds", job.spec.timeout_seconds},
              {"max_retries", job.spec.max_retries},
              {"preemptible", job.spec.preemptible},
              {"attempt", job.attempt},
              {"config", SpecConfigToJson(job.spec)},
              {"node_id", StringOrNull(job.node_id)},
              {"gpu_indices", job.gpu_indices},
              {"exit_code", job.exit_code ? json(*job.exit_code) : json(nullptr)},
              {"created_at", core::FormatRfc3339(job.created_at)},
              {"updated_at", core::FormatRfc3339(job.updated_at)},
              {"started_at", TimeOrNull(job.started_at)},
              {"finished_at", TimeOrNull(job.finished_at)},
              {"retry_at", TimeOrNull(job.not_before)}};
}

json TransitionToJson(const domain::JobTransition& t) {
  return json{{"from", t.from ? json(std::string(domain::ToString(*t.from))) : json(nullptr)},
              {"to", std::string(domain::ToString(t.to))},
              {"at", core::FormatRfc3339(t.at)},
              {"attempt", t.attempt},
              {"message", t.message}};
}

}  // namespace gpuorch::api::internal
