#include "apps/gpuorch/security_setup.h"

#include <climits>
#include <cmath>

#include <spdlog/spdlog.h>

namespace gpuorch::apps {
namespace {

std::unique_ptr<security::RateLimiter> LimiterOf(const core::Clock& clock, double per_second,
                                                 int burst) {
  if (per_second <= 0) {
    return nullptr;
  }
  return std::make_unique<security::RateLimiter>(
      clock, security::RateLimit{.per_second = per_second, .burst = burst});
}

std::string Usd(double usd) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "$%.2f", usd);
  return buf;
}

}  // namespace

security::PasswordCost PasswordCostOf(const core::Config& config) {
  return config.security.password_cost == "minimal" ? security::MinimalCost()
                                                    : security::InteractiveCost();
}

core::Result<std::unique_ptr<SecurityServices>> StartSecurity(const core::Config& config,
                                                              store::Store& store,
                                                              const core::Clock& clock,
                                                              core::IdGenerator& ids) {
  const core::SecurityConfig& s = config.security;
  auto out = std::make_unique<SecurityServices>();
  // Key errors name the settings to fix; they never carry key material.
  auto jwt_error = [](const core::Error& error) {
    return core::Fail(error.WithContext(
        "JWT keys (GPUORCH_JWT_ALG, GPUORCH_JWT_SECRET, GPUORCH_JWT_SECRET_FILE, "
        "GPUORCH_JWT_PRIVATE_KEY_FILE, GPUORCH_JWT_PUBLIC_KEY_FILE)"));
  };
  auto keys = security::LoadJwtKeys(security::JwtKeySource{.algorithm = s.jwt_algorithm,
                                                           .secret = s.jwt_secret,
                                                           .secret_file = s.jwt_secret_file,
                                                           .private_key_file = s.jwt_private_key_file,
                                                           .public_key_file = s.jwt_public_key_file,
                                                           .data_dir = config.data_dir});
  if (!keys) {
    return jwt_error(keys.error());
  }
  auto codec = security::JwtCodec::Create(
      std::move(*keys), security::JwtProfile{.issuer = s.jwt_issuer,
                                             .audience = s.jwt_audience,
                                             .leeway = s.jwt_leeway});
  if (!codec) {
    return jwt_error(codec.error());
  }
  out->codec = std::move(*codec);
  GPUORCH_ASSIGN_OR_RETURN(
      std::string master_key,
      security::LoadMasterKey(security::MasterKeySource{.env_value = s.master_key,
                                                        .key_file = s.master_key_file,
                                                        .data_dir = config.data_dir,
                                                        .create_if_missing = true}));
  GPUORCH_ASSIGN_OR_RETURN(out->vault, security::SecretVault::Create(std::move(master_key)));
  out->credentials = std::make_unique<security::CredentialVault>(store, *out->vault, clock);
  out->passwords = std::make_unique<security::PasswordVerifier>(PasswordCostOf(config),
                                                                /*max_concurrent=*/2,
                                                                /*max_waiting=*/32);
  out->users = std::make_unique<security::UserAdmin>(store, clock, ids, PasswordCostOf(config));
  out->directory = std::make_unique<security::UserDirectory>(store, clock);
  if (s.auth_enabled) {
    const std::string token_path = config.data_dir + "/admin.token";
    GPUORCH_ASSIGN_OR_RETURN(bool created, out->users->BootstrapAdmin(token_path));
    if (created) {
      spdlog::info("first start: created the admin user 'admin'; its API token is in {} "
                   "(mode 0600). gpuctl reads it from there or from GPUORCH_TOKEN.",
                   token_path);
    }
    out->authenticator = std::make_unique<security::Authenticator>(
        *out->directory, *out->codec, *out->passwords, clock, s.jwt_ttl);
    spdlog::info("authentication on: {} access tokens ({} s), API tokens; rate limits {} rps "
                 "per user, {} rps per address",
                 security::JwtAlgorithmName(out->codec->algorithm()), s.jwt_ttl.count(),
                 s.user_rate_per_second, s.address_rate_per_second);
  } else {
    spdlog::warn("**************************************************************************");
    spdlog::warn("AUTHENTICATION IS OFF (GPUORCH_AUTH=off): every caller is an admin.");
    spdlog::warn("Use this only for local development, never on a shared network.");
    spdlog::warn("**************************************************************************");
  }
  GPUORCH_TRY(out->directory->Reload());
  out->user_limiter = LimiterOf(clock, s.user_rate_per_second, s.user_rate_burst);
  out->address_limiter = LimiterOf(clock, s.address_rate_per_second, s.address_rate_burst);
  out->login_limiter =
      LimiterOf(clock, s.login_attempts_per_minute / 60.0, s.login_attempts_per_minute);
  return out;
}

UserLimits::UserLimits(const core::Config& config, const security::UserDirectory& directory,
                       lifecycle::JobController& controller)
    : config_(config), directory_(directory), controller_(controller) {}

void UserLimits::Apply() {
  const auto snapshot = directory_.Current();
  const bool hold = config_.security.budget_policy == "hold";
  std::lock_guard lock(mu_);
  std::map<std::string, scheduler::Quota> next;
  for (const auto& [id, user] : snapshot->users) {
    const core::UserQuota& configured = core::QuotaFor(config_, user.name);
    scheduler::Quota quota{
        .max_gpus_in_use = user.max_gpus.value_or(configured.max_gpus.value_or(INT_MAX)),
        .max_queued_jobs = user.max_queued_jobs.value_or(configured.max_queued_jobs)};
    if (hold && user.monthly_budget_usd) {
      auto spend = snapshot->month_spend_usd.find(user.name);
      if (spend != snapshot->month_spend_usd.end() && spend->second >= *user.monthly_budget_usd) {
        quota.hold_reason = "monthly budget of " + Usd(*user.monthly_budget_usd) + " spent (" +
                            Usd(spend->second) + " this month)";
      }
    }
    next[user.name] = quota;
  }
  for (const auto& [name, quota] : next) {
    auto it = pushed_.find(name);
    if (it == pushed_.end() || it->second != quota) {
      controller_.SetQuota(name, quota);
    }
  }
  for (const auto& [name, quota] : pushed_) {
    if (!next.count(name)) {
      controller_.SetQuota(name, std::nullopt);
    }
  }
  pushed_ = std::move(next);
}

std::optional<core::Error> UserLimits::AdmissionCheck(const std::string& owner) const {
  if (config_.security.budget_policy != "refuse") {
    return std::nullopt;
  }
  const auto snapshot = directory_.Current();
  const store::UserRecord* user = snapshot->FindUserByName(owner);
  if (user == nullptr || !user->monthly_budget_usd) {
    return std::nullopt;
  }
  auto spend = snapshot->month_spend_usd.find(owner);
  const double spent = spend == snapshot->month_spend_usd.end() ? 0 : spend->second;
  if (spent < *user->monthly_budget_usd) {
    return std::nullopt;
  }
  return core::Error{core::Code::kPermissionDenied,
                     "monthly budget of " + Usd(*user->monthly_budget_usd) + " is spent (" +
                         Usd(spent) + " this month); an admin can raise it",
                     "", "budget_exceeded"};
}

std::optional<int> UserLimits::MaxQueuedJobs(const std::string& owner) const {
  const auto snapshot = directory_.Current();
  const store::UserRecord* user = snapshot->FindUserByName(owner);
  const int configured = core::QuotaFor(config_, owner).max_queued_jobs;
  return user != nullptr && user->max_queued_jobs ? *user->max_queued_jobs : configured;
}

}  // namespace gpuorch::apps
