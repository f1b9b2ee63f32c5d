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

// One user's limits. Plain values; the scheduler and the API translate them into their own types.
struct UserQuota {
  std::optional<int> max_gpus;  // GPUs in use at once; nullopt: unlimited
  int max_queued_jobs = 10000;  // queued jobs at once; a submit over it is refused (HTTP 429)

  bool operator==(const UserQuota&) const = default;
};

// Authentication, authorisation, rate limits and secrets (security/). Secret values here are never
// logged or echoed in errors.
struct SecurityConfig {
  bool auth_enabled = true;      // GPUORCH_AUTH=on|off; off: every caller is an admin (local dev)
  bool metrics_auth = false;     // GPUORCH_METRICS_AUTH=on|off: /metrics needs a token
  std::string jwt_algorithm = "HS256";  // GPUORCH_JWT_ALG: HS256, RS256, ES256 or EdDSA
  std::string jwt_secret;        // GPUORCH_JWT_SECRET (HS256, >= 32 bytes; "base64:..." allowed)
  std::string jwt_secret_file;   // GPUORCH_JWT_SECRET_FILE; neither: <data-dir>/jwt.key
  std::string jwt_private_key_file;  // GPUORCH_JWT_PRIVATE_KEY_FILE (RS256/ES256/EdDSA, PEM)
  std::string jwt_public_key_file;   // GPUORCH_JWT_PUBLIC_KEY_FILE (RS256/ES256/EdDSA, PEM)
  std::string jwt_issuer = "gpuorch";        // GPUORCH_JWT_ISSUER
  std::string jwt_audience = "gpuorch-api";  // GPUORCH_JWT_AUDIENCE
  std::chrono::seconds jwt_ttl{900};         // GPUORCH_JWT_TTL_SECONDS
  std::chrono::seconds jwt_leeway{60};       // GPUORCH_JWT_LEEWAY_SECONDS
  std::string master_key;        // GPUORCH_MASTER_KEY ("base64:..." or 64 hex chars)
  std::string master_key_file;   // GPUORCH_MASTER_KEY_FILE; neither: <data-dir>/master.key
  // Requests per second and burst, per user and per client address; 0 per second: no limit.
  double user_rate_per_second = 100;     // GPUORCH_RATE_LIMIT_USER_RPS
  int user_rate_burst = 200;             // GPUORCH_RATE_LIMIT_USER_BURST
  double address_rate_per_second = 200;  // GPUORCH_RATE_LIMIT_ADDRESS_RPS
  int address_rate_burst = 400;          // GPUORCH_RATE_LIMIT_ADDRESS_BURST
  int login_attempts_per_minute = 10;    // GPUORCH_LOGIN_ATTEMPTS_PER_MINUTE, per name and address
  // GPUORCH_PASSWORD_COST: "interactive" (Argon2id, 64 MiB) or "minimal" (tests only).
  std::string password_cost = "interactive";
  // GPUORCH_BUDGET_POLICY: "refuse" (a submit over the monthly budget answers 403) or "hold" (it
  // is accepted and waits until the budget allows).
  std::string budget_policy = "refuse";
  std::chrono::milliseconds directory_reload{2000};  // GPUORCH_AUTH_RELOAD_MS

  bool operator==(const SecurityConfig&) const = default;
};

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

  // Scheduling at cluster scale.
  // GPUORCH_QUOTA_MAX_GPUS ("unlimited" or an integer), GPUORCH_QUOTA_MAX_QUEUED_JOBS.
  UserQuota default_quota;
  // GPUORCH_USER_QUOTAS "alice:8:100,bob:unlimited:50" (user:max_gpus:max_queued_jobs): replaces
  // default_quota for the users named.
  std::map<std::string, UserQuota> user_quotas;
  // GPUORCH_USER_WEIGHTS "alice:2,bob:0.5": fair-share weights (> 0); users not named weigh 1.
  std::map<std::string, double> user_weights;
  // GPUORCH_FAIR_SHARE_HALF_LIFE_SECONDS: how fast past GPU usage is forgotten.
  std::chrono::seconds fair_share_half_life{3600};
  bool backfill = true;    // GPUORCH_BACKFILL=true|false
  bool preemption = true;  // GPUORCH_PREEMPTION=true|false

  // Cloud capacity and node agents.
  std::string public_url;   // GPUORCH_PUBLIC_URL: what agents dial; empty: http://<listen address>
  std::string join_token;   // GPUORCH_JOIN_TOKEN: multi-use token for self-run agents; empty: none
  std::string deployment_id;  // GPUORCH_DEPLOYMENT_ID: our tag at providers; empty: made once, stored
  std::chrono::seconds node_lost_after{60};              // GPUORCH_NODE_LOST_SECONDS
  std::chrono::milliseconds instance_loop_interval{2000};  // GPUORCH_INSTANCE_LOOP_MS
  std::chrono::milliseconds reconcile_interval{10000};   // GPUORCH_RECONCILE_INTERVAL_MS
  std::chrono::milliseconds provision_after{5000};       // GPUORCH_PROVISION_AFTER_MS
  std::chrono::seconds boot_timeout{600};                // GPUORCH_BOOT_TIMEOUT_SECONDS
  std::chrono::milliseconds create_grace{60000};         // GPUORCH_CREATE_GRACE_MS
  int64_t idle_timeout_seconds = 300;                    // GPUORCH_IDLE_TIMEOUT_SECONDS
  int max_instances = 10;                                // GPUORCH_MAX_INSTANCES
  std::map<std::string, int> warm_pool;                  // GPUORCH_WARM_POOL "A100:1,H100:2"
  std::chrono::seconds offer_refresh{60};                // GPUORCH_OFFER_REFRESH_SECONDS
  std::chrono::seconds offer_ttl{300};                   // GPUORCH_OFFER_TTL_SECONDS
  std::string crash_point;  // GPUORCH_CRASH_POINT: fault injection for crash tests; empty: off

  // Provider credentials and endpoints (the providers' own variable names). A provider without
  // its key is not configured and never called.
  std::map<std::string, std::string> provider_settings;  // e.g. "RUNPOD_API_KEY" → value

  SecurityConfig security;
};

// The security keys (GPUORCH_AUTH, GPUORCH_JWT_*, GPUORCH_MASTER_KEY*, GPUORCH_RATE_LIMIT_*, ...).
const std::vector<std::string>& SecurityConfigKeys();
// Applies one security key; kNotFound when `key` is not one of them. Errors never echo the value.
Status ApplySecurityValue(const std::string& key, const std::string& value, Config& config);

// The provider variables read from the environment and config files: RUNPOD_API_KEY,
// RUNPOD_API_URL, VAST_API_KEY, VAST_API_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN, AWS_REGION, AWS_EC2_ENDPOINT, AWS_AMI_ID, RUNPOD_IMAGE, VAST_IMAGE.
const std::vector<std::string>& ProviderSettingKeys();

// The quota of `user`: their entry in user_quotas, else default_quota.
const UserQuota& QuotaFor(const Config& config, const std::string& user);

// Parses "HOST:PORT" (IPv6 as "[::1]:8000").
Status ParseListen(const std::string& text, Config& config);

// Applies one `GPUORCH_*` key. Unknown keys are an error naming the key.
Status ApplyConfigValue(const std::string& key, const std::string& value, Config& config);

// Defaults, then the file named by `config_file` (if set; missing file is an error), then
// GPUORCH_* environment variables.
Result<Config> LoadConfig(const std::optional<std::string>& config_file);

}  // namespace gpuorch::core
