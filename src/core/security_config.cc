// The security keys of the configuration (core/config.h: SecurityConfig). Error messages name the key
// and what it accepts, never the value given: several of these keys hold secrets.
#include <charconv>
#include <cmath>

#include "core/config.h"

namespace gpuorch::core {
namespace {

tl::unexpected<Error> Invalid(const std::string& key, const std::string& accepted) {
  return Fail(Code::kInvalidArgument, key + " must be " + accepted, key, "invalid_config");
}

Result<int64_t> ParseInteger(const std::string& key, const std::string& value, int64_t min,
                             int64_t max) {
  int64_t out = 0;
  auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
  if (ec != std::errc() || ptr != value.data() + value.size() || out < min || out > max) {
    return Invalid(key, "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return out;
}

Result<double> ParseRate(const std::string& key, const std::string& value) {
  double out = 0;
  auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
  if (ec != std::errc() || ptr != value.data() + value.size() || !std::isfinite(out) || out < 0 ||
      out > 1e9) {
    return Invalid(key, "a number of requests per second in [0, 1e9] (0: no limit)");
  }
  return out;
}

Result<bool> ParseOnOff(const std::string& key, const std::string& value) {
  if (value == "on" || value == "true") {
    return true;
  }
  if (value == "off" || value == "false") {
    return false;
  }
  return Invalid(key, "on or off");
}

}  // namespace

const std::vector<std::string>& SecurityConfigKeys() {
  static const std::vector<std::string> keys = {
      "GPUORCH_AUTH",
      "GPUORCH_METRICS_AUTH",
      "GPUORCH_JWT_ALG",
      "GPUORCH_JWT_SECRET",
      "GPUORCH_JWT_SECRET_FILE",
      "GPUORCH_JWT_PRIVATE_KEY_FILE",
      "GPUORCH_JWT_PUBLIC_KEY_FILE",
      "GPUORCH_JWT_ISSUER",
      "GPUORCH_JWT_AUDIENCE",
      "GPUORCH_JWT_TTL_SECONDS",
      "GPUORCH_JWT_LEEWAY_SECONDS",
      "GPUORCH_MASTER_KEY",
      "GPUORCH_MASTER_KEY_FILE",
      "GPUORCH_RATE_LIMIT_USER_RPS",
      "GPUORCH_RATE_LIMIT_USER_BURST",
      "GPUORCH_RATE_LIMIT_ADDRESS_RPS",
      "GPUORCH_RATE_LIMIT_ADDRESS_BURST",
      "GPUORCH_LOGIN_ATTEMPTS_PER_MINUTE",
      "GPUORCH_PASSWORD_COST",
      "GPUORCH_BUDGET_POLICY",
      "GPUORCH_AUTH_RELOAD_MS",
  };
  return keys;
}

Status ApplySecurityValue(const std::string& key, const std::string& value, Config& config) {
  SecurityConfig& s = config.security;
  if (key == "GPUORCH_AUTH") {
    GPUORCH_ASSIGN_OR_RETURN(s.auth_enabled, ParseOnOff(key, value));
  } else if (key == "GPUORCH_METRICS_AUTH") {
    GPUORCH_ASSIGN_OR_RETURN(s.metrics_auth, ParseOnOff(key, value));
  } else if (key == "GPUORCH_JWT_ALG") {
    if (value != "HS256" && value != "RS256" && value != "ES256" && value != "EdDSA") {
      return Invalid(key, "HS256, RS256, ES256 or EdDSA");
    }
    s.jwt_algorithm = value;
  } else if (key == "GPUORCH_JWT_SECRET") {
    s.jwt_secret = value;
  } else if (key == "GPUORCH_JWT_SECRET_FILE") {
    s.jwt_secret_file = value;
  } else if (key == "GPUORCH_JWT_PRIVATE_KEY_FILE") {
    s.jwt_private_key_file = value;
  } else if (key == "GPUORCH_JWT_PUBLIC_KEY_FILE") {
    s.jwt_public_key_file = value;
  } else if (key == "GPUORCH_JWT_ISSUER") {
    if (value.empty()) {
      return Invalid(key, "non-empty");
    }
    s.jwt_issuer = value;
  } else if (key == "GPUORCH_JWT_AUDIENCE") {
    if (value.empty()) {
      return Invalid(key, "non-empty");
    }
    s.jwt_audience = value;
  } else if (key == "GPUORCH_JWT_TTL_SECONDS") {
    GPUORCH_ASSIGN_OR_RETURN(int64_t v, ParseInteger(key, value, 60, 86400));
    s.jwt_ttl = std::chrono::seconds(v);
  } else if (key == "GPUORCH_JWT_LEEWAY_SECONDS") {
    GPUORCH_ASSIGN_OR_RETURN(int64_t v, ParseInteger(key, value, 0, 300));
    s.jwt_leeway = std::chrono::seconds(v);
  } else if (key == "GPUORCH_MASTER_KEY") {
    s.master_key = value;
  } else if (key == "GPUORCH_MASTER_KEY_FILE") {
    s.master_key_file = value;
  } else if (key == "GPUORCH_RATE_LIMIT_USER_RPS") {
    GPUORCH_ASSIGN_OR_RETURN(s.user_rate_per_second, ParseRate(key, value));
  } else if (key == "GPUORCH_RATE_LIMIT_USER_BURST") {
    GPUORCH_ASSIGN_OR_RETURN(int64_t v, ParseInteger(key, value, 1, 1'000'000'000));
    s.user_rate_burst = static_cast<int>(v);
  } else if (key == "GPUORCH_RATE_LIMIT_ADDRESS_RPS") {
    GPUORCH_ASSIGN_OR_RETURN(s.address_rate_per_second, ParseRate(key, value));
  } else if (key == "GPUORCH_RATE_LIMIT_ADDRESS_BURST") {
    GPUORCH_ASSIGN_OR_RETURN(int64_t v, ParseInteger(key, value, 1, 1'000'000'000));
    s.address_rate_burst = static_cast<int>(v);
  } else if (key == "GPUORCH_LOGIN_ATTEMPTS_PER_MINUTE") {
    GPUORCH_ASSIGN_OR_RETURN(int64_t v, ParseInteger(key, value, 1, 1'000'000));
    s.login_attempts_per_minute = static_cast<int>(v);
  } else if (key == "GPUORCH_PASSWORD_COST") {
    if (value != "interactive" && value != "minimal") {
      return Invalid(key, "interactive or minimal");
    }
    s.password_cost = value;
  } else if (key == "GPUORCH_BUDGET_POLICY") {
    if (value != "refuse" && value != "hold") {
      return Invalid(key, "refuse or hold");
    }
    s.budget_policy = value;
  } else if (key == "GPUORCH_AUTH_RELOAD_MS") {
    GPUORCH_ASSIGN_OR_RETURN(int64_t v, ParseInteger(key, value, 50, 600'000));
    s.directory_reload = std::chrono::milliseconds(v);
  } else {
    return Fail(Code::kNotFound, "not a security key", key);
  }
  return Ok();
}

}  // namespace gpuorch::core
