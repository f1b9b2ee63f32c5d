#include "security/user_admin.h"

#include <algorithm>
#include <cmath>

#include "security/api_token.h"
#include "security/principal.h"
#include "security/secret_file.h"

namespace gpuorch::security {
namespace {

core::Status ValidateRole(const std::string& role) {
  if (role != kAdminRole && role != kUserRole) {
    return core::Fail(core::Code::kInvalidArgument, "role must be \"admin\" or \"user\"", "role");
  }
  return core::Ok();
}

core::Status ValidateLimit(const std::optional<int>& value, const char* field) {
  if (value && (*value < 0 || *value > 100'000'000)) {
    return core::Fail(core::Code::kInvalidArgument,
                      std::string(field) + " must be an integer in [0, 100000000]", field);
  }
  return core::Ok();
}

core::Status ValidateLimits(const UserLimitsUpdate& limits) {
  GPUORCH_TRY(ValidateLimit(limits.max_gpus, "max_gpus"));
  GPUORCH_TRY(ValidateLimit(limits.max_queued_jobs, "max_queued_jobs"));
  if (limits.monthly_budget_usd &&
      (!std::isfinite(*limits.monthly_budget_usd) || *limits.monthly_budget_usd < 0 ||
       *limits.monthly_budget_usd > 1e12)) {
    return core::Fail(core::Code::kInvalidArgument,
                      "monthly_budget_usd must be a number in [0, 1e12]", "monthly_budget_usd");
  }
  return core::Ok();
}

void ApplyLimits(const UserLimitsUpdate& limits, store::UserRecord& user) {
  if (limits.clear_max_gpus) {
    user.max_gpus.reset();
  } else if (limits.max_gpus) {
    user.max_gpus = limits.max_gpus;
  }
  if (limits.clear_max_queued_jobs) {
    user.max_queued_jobs.reset();
  } else if (limits.max_queued_jobs) {
    user.max_queued_jobs = limits.max_queued_jobs;
  }
  if (limits.clear_monthly_budget) {
    user.monthly_budget_usd.reset();
  } else if (limits.monthly_budget_usd) {
    user.monthly_budget_usd = limits.monthly_budget_usd;
  }
}

}  // namespace

core::Status ValidateUserName(const std::string& name) {
  auto allowed = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  };
  if (name.empty() || name.size() > 64 || !std::all_of(name.begin(), name.end(), allowed) ||
      !allowed(name[0]) || name[0] == '.' || name[0] == '_' || name[0] == '-') {
    return core::Fail(core::Code::kInvalidArgument,
                      "name must be 1-64 characters of a-z, 0-9, '.', '_' or '-', starting with a "
                      "letter or digit",
                      "name");
  }
  return core::Ok();
}

UserAdmin::UserAdmin(store::Store& store, const core::Clock& clock, core::IdGenerator& ids,
                     PasswordCost cost)
    : store_(store), clock_(clock), ids_(ids), cost_(cost) {}

core::Result<store::UserRecord> UserAdmin::AddUser(const std::string& name,
                                                   const std::string& password,
                                                   const std::string& role,
                                                   const UserLimitsUpdate& limits) {
  GPUORCH_TRY(ValidateUserName(name));
  GPUORCH_TRY(ValidateRole(role));
  GPUORCH_TRY(ValidateLimits(limits));
  store::UserRecord user{.id = ids_.NewId("usr"), .name = name, .role = role};
  ApplyLimits(limits, user);
  if (!password.empty()) {
    GPUORCH_ASSIGN_OR_RETURN(user.password_hash, HashPassword(password, cost_));
  }
  user.created_at = user.updated_at = clock_.Now();
  if (auto inserted = store_.InsertUser(user); !inserted) {
    if (inserted.error().code == core::Code::kAlreadyExists) {
      return core::Fail(core::Error{core::Code::kAlreadyExists,
                                    "a user named '" + name + "' exists", "name", "conflict"});
    }
    return core::Fail(inserted.error());
  }
  return store_.GetUser(user.id);
}

core::Result<store::UserRecord> UserAdmin::Modify(
    const std::string& name, const std::function<core::Status(store::UserRecord&)>& fn) {
  auto user = store_.GetUserByName(name);
  if (!user) {
    if (user.error().code == core::Code::kNotFound) {
      return core::Fail(core::Code::kNotFound, "no user named '" + name + "'", "name");
    }
    return core::Fail(user.error());
  }
  GPUORCH_TRY(fn(*user));
  user->updated_at = clock_.Now();
  return store_.UpdateUser(*user);
}

core::Result<store::UserRecord> UserAdmin::Update(const std::string& name,
                                                  const UserChange& change) {
  if (change.role) {
    GPUORCH_TRY(ValidateRole(*change.role));
  }
  if (change.limits) {
    GPUORCH_TRY(ValidateLimits(*change.limits));
  }
  std::string hash;
  if (change.password && !change.password->empty()) {
    GPUORCH_ASSIGN_OR_RETURN(hash, HashPassword(*change.password, cost_));
  }
  return Modify(name, [&](store::UserRecord& user) -> core::Status {
    // A change of role, state or password revokes the access tokens issued before it.
    bool revoke = false;
    if (change.role && user.role != *change.role) {
      user.role = *change.role;
      revoke = true;
    }
    if (change.disabled && user.disabled != *change.disabled) {
      user.disabled = *change.disabled;
      revoke = true;
    }
    if (change.password) {
      user.password_hash = hash;
      revoke = true;
    }
    if (revoke) {
      ++user.token_version;
    }
    if (change.limits) {
      ApplyLimits(*change.limits, user);
    }
    return core::Ok();
  });
}

core::Result<store::UserRecord> UserAdmin::SetDisabled(const std::string& name, bool disabled) {
  return Update(name, UserChange{.disabled = disabled});
}

core::Result<store::UserRecord> UserAdmin::SetRole(const std::string& name,
                                                   const std::string& role) {
  return Update(name, UserChange{.role = role});
}

core::Result<store::UserRecord> UserAdmin::SetPassword(const std::string& name,
                                                       const std::string& password) {
  return Update(name, UserChange{.password = password});
}

core::Result<store::UserRecord> UserAdmin::SetLimits(const std::string& name,
                                                     const UserLimitsUpdate& limits) {
  return Update(name, UserChange{.limits = limits});
}

core::Result<NewApiToken> UserAdmin::CreateToken(const std::string& user_name,
                                                 const std::string& token_name,
                                                 std::optional<std::chrono::seconds> ttl) {
  if (token_name.empty() || token_name.size() > 64 ||
      !std::all_of(token_name.begin(), token_name.end(),
                   [](char c) { return c >= 0x20 && c < 0x7f; })) {
    return core::Fail(core::Code::kInvalidArgument,
                      "token name must be 1-64 printable ASCII characters", "name");
  }
  if (ttl && (ttl->count() < 60 || ttl->count() > 10LL * 365 * 86400)) {
    return core::Fail(core::Code::kInvalidArgument,
                      "expires_in_seconds must be in [60, 315360000]", "expires_in_seconds");
  }
  auto user = store_.GetUserByName(user_name);
  if (!user) {
    if (user.error().code == core::Code::kNotFound) {
      return core::Fail(core::Code::kNotFound, "no user named '" + user_name + "'", "user");
    }
    return core::Fail(user.error());
  }
  NewApiToken out;
  out.secret = NewApiTokenSecret();
  const core::SystemTime now = clock_.Now();
  out.record = store::ApiTokenRecord{.id = ids_.NewId("tok"),
                                     .user_id = user->id,
                                     .name = token_name,
                                     .token_hash = TokenHash(out.secret),
                                     .hint = out.secret.substr(out.secret.size() - 4),
                                     .created_at = now};
  if (ttl) {
    out.record.expires_at = now + *ttl;
  }
  GPUORCH_TRY(store_.InsertApiToken(out.record));
  return out;
}

core::Result<store::ApiTokenRecord> UserAdmin::RevokeToken(const std::string& token_id) {
  return store_.RevokeApiToken(token_id, clock_.Now());
}

core::Result<bool> UserAdmin::BootstrapAdmin(const std::string& token_path) {
  GPUORCH_ASSIGN_OR_RETURN(auto users, store_.ListUsers());
  if (!users.empty()) {
    return false;
  }
  auto admin = AddUser("admin", "", kAdminRole);
  if (!admin) {
    // Another process created it first: not a first start after all.
    if (admin.error().code == core::Code::kAlreadyExists) {
      return false;
    }
    return core::Fail(admin.error());
  }
  GPUORCH_ASSIGN_OR_RETURN(NewApiToken token, CreateToken("admin", "bootstrap", std::nullopt));
  GPUORCH_TRY(WriteSecretFile(token_path, token.secret + "\n"));
  return true;
}

}  // namespace gpuorch::security
