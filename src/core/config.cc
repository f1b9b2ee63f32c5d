#include "core/config.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <set>
#include <vector>

#include "core/env.h"

namespace gpuorch::core {
namespace {

Result<int64_t> ParseInt(const std::string& key, const std::string& value, int64_t min,
                         int64_t max) {
  int64_t out = 0;
  auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
  if (ec != std::errc() || ptr != value.data() + value.size() || out < min || out > max) {
    return Fail(Code::kInvalidArgument,
                key + " must be an integer in [" + std::to_string(min) + ", " +
                    std::to_string(max) + "], got '" + value + "'",
                key, "invalid_config");
  }
  return out;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) {
    return "";
  }
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

constexpr int64_t kMaxGpusLimit = 1'000'000;
constexpr int64_t kMaxQueuedJobsLimit = 100'000'000;
constexpr double kMaxWeight = 1'000'000;

tl::unexpected<Error> Invalid(const std::string& key, std::string message) {
  return Fail(Code::kInvalidArgument, std::move(message), key, "invalid_config");
}

Result<bool> ParseBool(const std::string& key, const std::string& value) {
  if (value == "true") {
    return true;
  }
  if (value == "false") {
    return false;
  }
  return Invalid(key, key + " must be true or false, got '" + value + "'");
}

// "unlimited" (nullopt) or an integer in [0, kMaxGpusLimit].
Result<std::optional<int>> ParseMaxGpus(const std::string& key, const std::string& value) {
  if (value == "unlimited") {
    return std::optional<int>();
  }
  auto n = ParseInt(key, value, 0, kMaxGpusLimit);
  if (!n) {
    return Invalid(key, key + ": max GPUs must be 'unlimited' or an integer in [0, " +
                            std::to_string(kMaxGpusLimit) + "], got '" + value + "'");
  }
  return std::optional<int>(static_cast<int>(*n));
}

// A user name as jobs carry it in `owner`: 1..128 characters of [A-Za-z0-9._@-].
bool IsUserName(const std::string& s) {
  return !s.empty() && s.size() <= 128 && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '@' ||
           c == '-';
  });
}

std::vector<std::string> Split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t end = text.find(sep, start);
    parts.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) {
      return parts;
    }
    start = end + 1;
  }
}

// Splits "a:1,b:2" into entries of `fields` colon-separated, trimmed parts, the first a user name
// named once. An empty (or blank) value is no entries.
Result<std::vector<std::vector<std::string>>> ParseUserList(const std::string& key,
                                                            const std::string& value, size_t fields,
                                                            const std::string& shape) {
  std::vector<std::vector<std::string>> entries;
  if (Trim(value).empty()) {
    return entries;
  }
  std::set<std::string> users;
  for (const std::string& raw : Split(value, ',')) {
    const std::string entry = Trim(raw);
    std::vector<std::string> parts = Split(entry, ':');
    for (std::string& part : parts) {
      part = Trim(part);
    }
    if (parts.size() != fields) {
      return Invalid(key, key + ": entry '" + entry + "' must be " + shape);
    }
    if (!IsUserName(parts[0])) {
      return Invalid(key, key + ": entry '" + entry +
                              "' must start with a user name of 1 to 128 characters of "
                              "[A-Za-z0-9._@-]");
    }
    if (!users.insert(parts[0]).second) {
      return Invalid(key, key + ": user '" + parts[0] + "' is named twice");
    }
    entries.push_back(std::move(parts));
  }
  return entries;
}

Result<std::map<std::string, UserQuota>> ParseUserQuotas(const std::string& key,
                                                         const std::string& value) {
  GPUORCH_ASSIGN_OR_RETURN(auto entries,
                           ParseUserList(key, value, 3, "user:max_gpus:max_queued_jobs"));
  std::map<std::string, UserQuota> quotas;
  for (const auto& parts : entries) {
    UserQuota quota;
    GPUORCH_ASSIGN_OR_RETURN(quota.max_gpus, ParseMaxGpus(key, parts[1]));
    auto queued = ParseInt(key, parts[2], 0, kMaxQueuedJobsLimit);
    if (!queued) {
      return Invalid(key, key + ": max queued jobs of '" + parts[0] +
                              "' must be an integer in [0, " + std::to_string(kMaxQueuedJobsLimit) +
                              "], got '" + parts[2] + "'");
    }
    quota.max_queued_jobs = static_cast<int>(*queued);
    quotas[parts[0]] = quota;
  }
  return quotas;
}

Result<std::map<std::string, double>> ParseUserWeights(const std::string& key,
                                                       const std::string& value) {
  GPUORCH_ASSIGN_OR_RETURN(auto entries, ParseUserList(key, value, 2, "user:weight"));
  std::map<std::string, double> weights;
  for (const auto& parts : entries) {
    const std::string& text = parts[1];
    double weight = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), weight);
    if (ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(weight) ||
        weight <= 0 || weight > kMaxWeight) {
      return Invalid(key, key + ": weight of '" + parts[0] +
                              "' must be a number in (0, 1000000], got '" + text + "'");
    }
    weights[parts[0]] = weight;
  }
  return weights;
}

const std::vector<std::string>& Keys() {
  static const std::vector<std::string> keys = {
      "GPUORCH_LISTEN",          "GPUORCH_DATA_DIR",           "GPUORCH_LOG_LEVEL",
      "GPUORCH_LOCAL_GPUS",      "GPUORCH_NODE_NAME",          "GPUORCH_MAX_BODY_BYTES",
      "GPUORCH_HTTP_THREADS",    "GPUORCH_KILL_GRACE_SECONDS", "GPUORCH_SCHEDULER_INTERVAL_MS",
      "GPUORCH_RETRY_BACKOFF_SECONDS", "GPUORCH_RETRY_BACKOFF_MAX_SECONDS",
      "GPUORCH_DEFAULT_TIMEOUT_SECONDS", "GPUORCH_GROUP_COMMIT_MAX_BATCH",
      "GPUORCH_CONTAINER_RUNTIME", "GPUORCH_QUOTA_MAX_GPUS", "GPUORCH_QUOTA_MAX_QUEUED_JOBS",
      "GPUORCH_USER_QUOTAS", "GPUORCH_USER_WEIGHTS", "GPUORCH_FAIR_SHARE_HALF_LIFE_SECONDS",
      "GPUORCH_BACKFILL", "GPUORCH_PREEMPTION", "GPUORCH_PUBLIC_URL", "GPUORCH_JOIN_TOKEN",
      "GPUORCH_DEPLOYMENT_ID", "GPUORCH_NODE_LOST_SECONDS", "GPUORCH_INSTANCE_LOOP_MS",
      "GPUORCH_RECONCILE_INTERVAL_MS", "GPUORCH_PROVISION_AFTER_MS", "GPUORCH_BOOT_TIMEOUT_SECONDS", "GPUORCH_CREATE_GRACE_MS",
      "GPUORCH_IDLE_TIMEOUT_SECONDS", "GPUORCH_MAX_INSTANCES", "GPUORCH_WARM_POOL",
      "GPUORCH_OFFER_REFRESH_SECONDS", "GPUORCH_OFFER_TTL_SECONDS", "GPUORCH_CRASH_POINT"};
  return keys;
}

Result<std::map<std::string, int>> ParseWarmPool(const std::string& key, const std::string& value) {
  std::map<std::string, int> pool;
  size_t start = 0;
  while (start < value.size()) {
    size_t comma = value.find(',', start);
    std::string item = Trim(value.substr(start, comma == std::string::npos ? std::string::npos
                                                                            : comma - start));
    start = comma == std::string::npos ? value.size() : comma + 1;
    if (item.empty()) {
      continue;
    }
    size_t colon = item.find(':');
    if (colon == std::string::npos || colon == 0) {
      return Fail(Code::kInvalidArgument, key + ": expected TYPE:COUNT, got '" + item + "'", key,
                  "invalid_config");
    }
    GPUORCH_ASSIGN_OR_RETURN(int64_t count, ParseInt(key, item.substr(colon + 1), 0, 1000));
    pool[item.substr(0, colon)] = static_cast<int>(count);
  }
  return pool;
}

// The keys of cloud capacity and node agents.
Status ApplyCloudValue(const std::string& key, const std::string& value, Config& config) {
  if (key == "GPUORCH_PUBLIC_URL") {
    config.public_url = value;
  } else if (key == "GPUORCH_JOIN_TOKEN") {
    config.join_token = value;
  } else if (key == "GPUORCH_DEPLOYMENT_ID") {
    config.deployment_id = value;
  } else if (key == "GPUORCH_NODE_LOST_SECONDS") {
    GPUORCH_ASSIGN_OR_RETURN(int64_t v, ParseInt(key, value, 1, 86400));
    config.node_lost_after = std::chrono::seconds(v);
  } else if (key == "GPUORCH_INSTANCE_LOOP_MS") {
    GPUORCH_ASSIGN_OR_RETURN(int64_t v, ParseInt(key, value, 10, 3600000));
    config.instance_loop_interval = std::chrono::milliseconds(v);
  } else if (key == "GPUORCH_RECONCILE_INTERVAL_MS") {
    GPUORCH_ASSIGN_OR_RETURN(int64_t v, ParseInt(key, value, 10, 3600000));
    config.reconcile_interval = std::chrono::milliseconds(v);
  } else if (key == "GPUORCH_PROVISION_AFTER_MS") {
    GPUORCH_ASSIGN_OR_RETURN(int64_t v, ParseInt(key, value, 0, 86400000));
    config.provision_after = std::chrono::milliseconds(v);
  } else if (key == "GPUORCH_BOOT_TIMEOUT_SECONDS") {
    GPUORCH_ASSIGN_OR_RETURN(int64_t v, ParseInt(key, value, 1, 86400));
    config.boot_timeout = std::chrono::seconds(v);
  } else if (key == "GPUORCH_CREATE_GRACE_MS") {
    GPUORCH_ASSIGN_OR_RETURN(int64_t v, ParseInt(key, value, 100, 86400000));
    config.create_grace = std::chrono::milliseconds(v);
  } else if (key == "GPUORCH_IDLE_TIMEOUT_SECONDS") {
    GPUORCH_ASSIGN_OR_RETURN(config.idle_timeout_seconds, ParseInt(key, value, 0, 30LL * 86400));
  } else if (key == "GPUORCH_MAX_INSTANCES") {
    GPUORCH_ASSIGN_OR_RETURN(int64_t v, ParseInt(key, value, 0, 100000));
    config.max_instances = static_cast<int>(v);
  } else if (key == "GPUORCH_WARM_POOL") {
    GPUORCH_ASSIGN_OR_RETURN(config.warm_pool, ParseWarmPool(key, value));
  } else if (key == "GPUORCH_OFFER_REFRESH_SECONDS") {
    GPUORCH_ASSIGN_OR_RETURN(int64_t v, ParseInt(key, value, 1, 86400));
    config.offer_refresh = std::chrono::seconds(v);
  } else if (key == "GPUORCH_OFFER_TTL_SECONDS") {
    GPUORCH_ASSIGN_OR_RETURN(int64_t v, ParseInt(key, value, 1, 7 * 86400));
    config.offer_ttl = std::chrono::seconds(v);
  } else if (key == "GPUORCH_CRASH_POINT") {
    if (!value.empty() && value != "before_provider_call" && value != "after_provider_call") {
      return Fail(Code::kInvalidArgument,
                  key + " must be before_provider_call or after_provider_call", key,
                  "invalid_config");
    }
    config.crash_point = value;
  } else if (std::find(ProviderSettingKeys().begin(), ProviderSettingKeys().end(), key) !=
             ProviderSettingKeys().end()) {
    config.provider_settings[key] = value;
  } else if (auto security = ApplySecurityValue(key, value, config);
             security || security.error().code != Code::kNotFound) {
    return security;
  } else {
    return Fail(Code::kInvalidArgument, "unknown configuration key '" + key + "'", key,
                "invalid_config");
  }
  return Ok();
}

// The keys of scheduling at cluster scale; unknown keys are an error naming the key.
Status ApplySchedulingValue(const std::string& key, const std::string& value, Config& config) {
  if (key == "GPUORCH_QUOTA_MAX_GPUS") {
    GPUORCH_ASSIGN_OR_RETURN(config.default_quota.max_gpus, ParseMaxGpus(key, value));
  } else if (key == "GPUORCH_QUOTA_MAX_QUEUED_JOBS") {
    GPUORCH_ASSIGN_OR_RETURN(int64_t v, ParseInt(key, value, 0, kMaxQueuedJobsLimit));
    config.default_quota.max_queued_jobs = static_cast<int>(v);
  } else if (key == "GPUORCH_USER_QUOTAS") {
    GPUORCH_ASSIGN_OR_RETURN(config.user_quotas, ParseUserQuotas(key, value));
  } else if (key == "GPUORCH_USER_WEIGHTS") {
    GPUORCH_ASSIGN_OR_RETURN(config.user_weights, ParseUserWeights(key, value));
  } else if (key == "GPUORCH_FAIR_SHARE_HALF_LIFE_SECONDS") {
    GPUORCH_ASSIGN_OR_RETURN(int64_t v, ParseInt(key, value, 1, 30LL * 24 * 3600));
    config.fair_share_half_life = std::chrono::seconds(v);
  } else if (key == "GPUORCH_BACKFILL") {
    GPUORCH_ASSIGN_OR_RETURN(config.backfill, ParseBool(key, value));
  } else if (key == "GPUORCH_PREEMPTION") {
    GPUORCH_ASSIGN_OR_RETURN(config.preemption, ParseBool(key, value));
  } else {
    return ApplyCloudValue(key, value, config);
  }
  return Ok();
}

}  // namespace

const std::vector<std::string>& ProviderSettingKeys() {
  static const std::vector<std::string> keys = {
      "RUNPOD_API_KEY",    "RUNPOD_API_URL",        "VAST_API_KEY",      "VAST_API_URL",
      "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
      "AWS_EC2_ENDPOINT",  "AWS_AMI_ID",            "RUNPOD_IMAGE",      "VAST_IMAGE"};
  return keys;
}

Status ParseListen(const std::string& text, Config& config) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return Fail(Code::kInvalidArgument, "listen address must be HOST:PORT, got '" + text + "'",
                "GPUORCH_LISTEN", "invalid_config");
  }
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  GPUORCH_ASSIGN_OR_RETURN(int64_t port, ParseInt("GPUORCH_LISTEN", text.substr(colon + 1), 0, 65535));
  config.listen_host = host;
  config.listen_port = static_cast<uint16_t>(port);
  return Ok();
}

Status ApplyConfigValue(const std::string& key, const std::string& value, Config& config) {
  if (key == "GPUORCH_LISTEN") {
    return ParseListen(value, config);
  }
  if (key == "GPUORCH_DATA_DIR") {
    config.data_dir = value;
  } else if (key == "GPUORCH_LOG_LEVEL") {
    config.log_level = value;
  } else if (key == "GPUORCH_LOCAL_GPUS") {
    config.local_gpus = value;
  } else if (key == "GPUORCH_NODE_NAME") {
    config.node_name = value;
  } else if (key == "GPUORCH_MAX_BODY_BYTES") {
    GPUORCH_ASSIGN_OR_RETURN(int64_t v, ParseInt(key, value, 1024, 64 << 20));
    config.max_body_bytes = static_cast<size_t>(v);
  } else if (key == "GPUORCH_HTTP_THREADS") {
    GPUORCH_ASSIGN_OR_RETURN(int64_t v, ParseInt(key, value, 1, 256));
    config.http_threads = static_cast<int>(v);
  } else if (key == "GPUORCH_KILL_GRACE_SECONDS") {
    GPUORCH_ASSIGN_OR_RETURN(int64_t v, ParseInt(key, value, 0, 3600));
    config.kill_grace = std::chrono::seconds(v);
  } else if (key == "GPUORCH_SCHEDULER_INTERVAL_MS") {
    GPUORCH_ASSIGN_OR_RETURN(int64_t v, ParseInt(key, value, 1, 60000));
    config.scheduler_interval = std::chrono::milliseconds(v);
  } else if (key == "GPUORCH_RETRY_BACKOFF_SECONDS") {
    GPUORCH_ASSIGN_OR_RETURN(int64_t v, ParseInt(key, value, 0, 3600));
    config.retry_backoff_base = std::chrono::seconds(v);
  } else if (key == "GPUORCH_RETRY_BACKOFF_MAX_SECONDS") {
    GPUORCH_ASSIGN_OR_RETURN(int64_t v, ParseInt(key, value, 0, 86400));
    config.retry_backoff_max = std::chrono::seconds(v);
  } else if (key == "GPUORCH_DEFAULT_TIMEOUT_SECONDS") {
    GPUORCH_ASSIGN_OR_RETURN(int64_t v, ParseInt(key, value, 1, 30LL * 24 * 3600));
    config.default_timeout_seconds = v;
  } else if (key == "GPUORCH_GROUP_COMMIT_MAX_BATCH") {
    GPUORCH_ASSIGN_OR_RETURN(int64_t v, ParseInt(key, value, 1, 100000));
    config.group_commit_max_batch = static_cast<int>(v);
  } else if (key == "GPUORCH_CONTAINER_RUNTIME") {
    config.container_runtime = value;
  } else {
    return ApplySchedulingValue(key, value, config);
  }
  return Ok();
}

const UserQuota& QuotaFor(const Config& config, const std::string& user) {
  auto it = config.user_quotas.find(user);
  return it == config.user_quotas.end() ? config.default_quota : it->second;
}

Result<Config> LoadConfig(const std::optional<std::string>& config_file) {
  Config config;
  if (config_file) {
    std::ifstream in(*config_file);
    if (!in) {
      return Fail(Code::kInvalidArgument, "cannot read config file '" + *config_file + "'",
                  "config", "invalid_config");
    }
    std::string line;
    int line_no = 0;
    while (std::getline(in, line)) {
      ++line_no;
      line = Trim(line);
      if (line.empty() || line[0] == '#') {
        continue;
      }
      size_t eq = line.find('=');
      if (eq == std::string::npos) {
        return Fail(Code::kInvalidArgument,
                    *config_file + ":" + std::to_string(line_no) + ": expected KEY=VALUE",
                    "config", "invalid_config");
      }
      auto status = ApplyConfigValue(Trim(line.substr(0, eq)), Trim(line.substr(eq + 1)), config);
      if (!status) {
        return Fail(status.error().WithContext(*config_file + ":" + std::to_string(line_no)));
      }
    }
  }
  for (const std::string& key : Keys()) {
    if (auto value = GetEnv(key)) {
      GPUORCH_TRY(ApplyConfigValue(key, *value, config));
    }
  }
  for (const std::string& key : SecurityConfigKeys()) {
    if (auto value = GetEnv(key)) {
      GPUORCH_TRY(ApplyConfigValue(key, *value, config));
    }
  }
  for (const std::string& key : ProviderSettingKeys()) {
    if (auto value = GetEnv(key)) {
      config.provider_settings[key] = *value;
    }
  }
  return config;
}

}  // namespace gpuorch::core
