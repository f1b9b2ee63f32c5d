// The security objects of `gpuorch serve`, built from configuration: JWT keys, the master key and
// its vault, the user directory, the authenticator, rate limiters; the first-start admin; and the
// bridge that turns users' limits (set by admins) into scheduler quotas and budget decisions.
//
// Thread-safe once built (each part documents its own).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "api/api_router.h"
#include "core/config.h"
#include "lifecycle/job_controller.h"
#include "security/authenticator.h"
#include "security/credential_vault.h"
#include "security/jwt.h"
#include "security/password.h"
#include "security/rate_limiter.h"
#include "security/secret_vault.h"
#include "security/user_admin.h"
#include "security/user_directory.h"

namespace gpuorch::apps {

struct SecurityServices {
  std::unique_ptr<security::JwtCodec> codec;
  std::unique_ptr<security::PasswordVerifier> passwords;
  std::unique_ptr<security::UserDirectory> directory;
  std::unique_ptr<security::Authenticator> authenticator;  // null when GPUORCH_AUTH=off
  std::unique_ptr<security::UserAdmin> users;
  std::unique_ptr<security::SecretVault> vault;
  std::unique_ptr<security::CredentialVault> credentials;
  std::unique_ptr<security::RateLimiter> user_limiter;     // null: no limit
  std::unique_ptr<security::RateLimiter> address_limiter;  // null: no limit
  std::unique_ptr<security::RateLimiter> login_limiter;
};

// Password cost named by GPUORCH_PASSWORD_COST.
security::PasswordCost PasswordCostOf(const core::Config& config);

// Loads keys (creating jwt.key and master.key in the data dir on first use), reads the directory,
// and on a first start with authentication on creates the admin and <data-dir>/admin.token. Logs
// what it did, never a secret. kInvalidArgument for unusable key configuration (e.g. an HMAC
// secret under 256 bits).
[[nodiscard]] core::Result<std::unique_ptr<SecurityServices>> StartSecurity(
    const core::Config& config, store::Store& store, const core::Clock& clock,
    core::IdGenerator& ids);

// Users' limits as the scheduler and the submit route apply them: an admin's per-user values win
// over the configured defaults (GPUORCH_QUOTA_*, GPUORCH_USER_QUOTAS). A user whose month-to-date
// spend reached their budget is refused new work (policy "refuse", HTTP 403 budget_exceeded) or
// held in the queue (policy "hold").
class UserLimits {
 public:
  UserLimits(const core::Config& config, const security::UserDirectory& directory,
             lifecycle::JobController& controller);

  // Pushes changed quotas to the controller. Call after each directory reload.
  void Apply();
  // The submit route's budget check (never blocks).
  std::optional<core::Error> AdmissionCheck(const std::string& owner) const;
  // The queued-jobs limit of `owner` (never blocks).
  std::optional<int> MaxQueuedJobs(const std::string& owner) const;

 private:
  const core::Config& config_;
  const security::UserDirectory& directory_;
  lifecycle::JobController& controller_;
  std::mutex mu_;
  std::map<std::string, scheduler::Quota> pushed_;  // GUARDED_BY(mu_)
};

}  // namespace gpuorch::apps
