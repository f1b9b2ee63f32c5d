// Managing users and their API tokens in the store: what `gpuorch user ...` and the admin routes
// (/api/v1/users) do. Validates names, hashes passwords (Argon2id), and bumps a user's
// token_version whenever a change must revoke the access tokens issued before it (disable, role,
// password).
//
// Thread-safe (the store is); every method blocks on the store, and those that take a password on
// one Argon2id computation.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/error.h"
#include "core/ids.h"
#include "security/password.h"
#include "store/store.h"

namespace gpuorch::security {

// kInvalidArgument (field "name") unless `name` is 1-64 characters of [a-z0-9._-] starting with a
// letter or digit.
[[nodiscard]] core::Status ValidateUserName(const std::string& name);

// Limits an admin sets on a user; each nullopt leaves that limit as it is, and `clear_*` resets it
// to the service default.
struct UserLimitsUpdate {
  std::optional<int> max_gpus;
  bool clear_max_gpus = false;
  std::optional<int> max_queued_jobs;
  bool clear_max_queued_jobs = false;
  std::optional<double> monthly_budget_usd;
  bool clear_monthly_budget = false;
};

// Several changes to one user, applied in one write: each nullopt leaves that part as it is. An
// empty password means API tokens only.
struct UserChange {
  std::optional<std::string> role;
  std::optional<bool> disabled;
  std::optional<std::string> password;
  std::optional<UserLimitsUpdate> limits;
};

struct NewApiToken {
  store::ApiTokenRecord record;
  std::string secret;  // shown once; only its hash is stored
};

class UserAdmin {
 public:
  UserAdmin(store::Store& store, const core::Clock& clock, core::IdGenerator& ids,
            PasswordCost cost);

  // kAlreadyExists when the name is taken; kInvalidArgument for a bad name, role, password (an
  // empty password means the user logs in with API tokens only) or limit. Everything is
  // validated first, then the user is stored, limits included, in one write.
  [[nodiscard]] core::Result<store::UserRecord> AddUser(const std::string& name,
                                                        const std::string& password,
                                                        const std::string& role,
                                                        const UserLimitsUpdate& limits = {});
  // Validates every part before anything is written, then stores them in one write; bumps
  // token_version once when the role, the disabled state or the password changes. kNotFound;
  // kInvalidArgument as for the Set* methods below.
  [[nodiscard]] core::Result<store::UserRecord> Update(const std::string& name,
                                                       const UserChange& change);
  [[nodiscard]] core::Result<store::UserRecord> SetDisabled(const std::string& name,
                                                            bool disabled);
  [[nodiscard]] core::Result<store::UserRecord> SetRole(const std::string& name,
                                                        const std::string& role);
  [[nodiscard]] core::Result<store::UserRecord> SetPassword(const std::string& name,
                                                            const std::string& password);
  // kInvalidArgument for a negative limit or a budget that is negative or not finite.
  [[nodiscard]] core::Result<store::UserRecord> SetLimits(const std::string& name,
                                                          const UserLimitsUpdate& limits);
  // A new API token for the user named `user_name`; `ttl` nullopt: it never expires.
  [[nodiscard]] core::Result<NewApiToken> CreateToken(const std::string& user_name,
                                                      const std::string& token_name,
                                                      std::optional<std::chrono::seconds> ttl);
  [[nodiscard]] core::Result<store::ApiTokenRecord> RevokeToken(const std::string& token_id);

  // First start: when the store has no user at all, creates the admin user "admin" (no password)
  // with an API token, writes the token to `token_path` (mode 0600, atomically) and returns true.
  // Returns false (and writes nothing) when any user exists.
  [[nodiscard]] core::Result<bool> BootstrapAdmin(const std::string& token_path);

 private:
  core::Result<store::UserRecord> Modify(const std::string& name,
                                         const std::function<core::Status(store::UserRecord&)>& fn);

  store::Store& store_;
  const core::Clock& clock_;
  core::IdGenerator& ids_;
  const PasswordCost cost_;
};

}  // namespace gpuorch::security
