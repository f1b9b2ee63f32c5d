// Service configuration: built-in defaults, then an optional config file, then environment variables,
// then command-line flags (applied by the caller), each layer overriding the one before.
//
// The config file holds the same keys as the environment, one `KEY=VALUE` per line ('#' starts a
// comment), so one spelling works everywhere: `GPUORCH_LISTEN=0.0.0.0:8000`. Plain values; thread-safe
// to read once built.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "core/error.h"

namespace gpuorch::core {

struct Config {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 8000;
  std::string data_dir = "./data";
  std::string log_level = "info";
  // "RTX4090:6" or "RTX4090:6:24,A100:2:80" (type:count[:memory_gb]); empty: ask nvidia-smi.
  std::optional<std::string> local_gpus;
  std::string node_name = "local";
  size_t max_body_bytes = 64 * 1024;
  int http_threads = 2;
  std::chrono::seconds kill_grace{10};
  std::chrono::milliseconds scheduler_interval{200};
  std::chrono::seconds retry_backoff_base{2};
  std::chrono::seconds retry_backoff_max{300};
  int64_t default_timeout_seconds = 24 * 3600;
  int group_commit_max_batch = 512;
  // Path of a container runtime CLI ("docker"); empty disables containers.
  std::string container_runtime = "docker";
};

// Parses "HOST:PORT" (IPv6 as "[::1]:8000").
Status ParseListen(const std::string& text, Config& config);

// Applies one `GPUORCH_*` key. Unknown keys are an error naming the key.
Status ApplyConfigValue(const std::string& key, const std::string& value, Config& config);

// Defaults, then the file named by `config_file` (if set; missing file is an error), then
// GPUORCH_* environment variables.
Result<Config> LoadConfig(const std::optional<std::string>& config_file);

}  // namespace gpuorch::core
