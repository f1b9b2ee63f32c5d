#include "core/config.h"

#include <charconv>
#include <fstream>
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

const std::vector<std::string>& Keys() {
  static const std::vector<std::string> keys = {
      "GPUORCH_LISTEN",          "GPUORCH_DATA_DIR",           "GPUORCH_LOG_LEVEL",
      "GPUORCH_LOCAL_GPUS",      "GPUORCH_NODE_NAME",          "GPUORCH_MAX_BODY_BYTES",
      "GPUORCH_HTTP_THREADS",    "GPUORCH_KILL_GRACE_SECONDS", "GPUORCH_SCHEDULER_INTERVAL_MS",
      "GPUORCH_RETRY_BACKOFF_SECONDS", "GPUORCH_RETRY_BACKOFF_MAX_SECONDS",
      "GPUORCH_DEFAULT_TIMEOUT_SECONDS", "GPUORCH_GROUP_COMMIT_MAX_BATCH",
      "GPUORCH_CONTAINER_RUNTIME"};
  return keys;
}

}  // namespace

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
    return Fail(Code::kInvalidArgument, "unknown configuration key '" + key + "'", key,
                "invalid_config");
  }
  return Ok();
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
  return config;
}

}  // namespace gpuorch::core
