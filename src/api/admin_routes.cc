// The admin routes of the API (docs/api.md, docs/security.md): users (/api/v1/users) and stored
// provider credentials (/api/v1/providers/{p}/credentials). HandleSecurity routes here only for
// admins.
#include <cmath>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "api/api_router.h"
#include "api/internal/route_util.h"
#include "core/log.h"

namespace gpuorch::api {
namespace {

using internal::JsonObjectBody;
using internal::JsonResponse;
using internal::NotFound;
using internal::OnlyFields;
using internal::OptionalString;
using internal::Unavailable;
using nlohmann::json;

json UserJson(const store::UserRecord& user, const security::DirectorySnapshot* snapshot) {
  auto opt_int = [](const std::optional<int>& v) { return v ? json(*v) : json(nullptr); };
  json j{{"id", user.id},
         {"name", user.name},
         {"role", user.role},
         {"disabled", user.disabled},
         {"password_login", !user.password_hash.empty()},
         {"created_at", core::FormatRfc3339(user.created_at)},
         {"updated_at", core::FormatRfc3339(user.updated_at)},
         {"limits",
          {{"max_gpus", opt_int(user.max_gpus)},
           {"max_queued_jobs", opt_int(user.max_queued_jobs)},
           {"monthly_budget_usd",
            user.monthly_budget_usd ? json(*user.monthly_budget_usd) : json(nullptr)}}}};
  if (snapshot != nullptr) {
    auto spend = snapshot->month_spend_usd.find(user.name);
    if (spend != snapshot->month_spend_usd.end()) {
      j["month_spend_usd"] = std::round(spend->second * 1e6) / 1e6;
    }
  }
  return j;
}

// What is shown of `provider`'s stored credentials: names, hints and fingerprints, never values.
json CredentialsJson(const std::vector<security::CredentialInfo>& list,
                     const std::string& provider) {
  json stored = json::array();
  for (const auto& c : list) {
    if (c.provider == provider) {
      stored.push_back(json{{"name", c.name},
                            {"hint", c.hint},
                            {"fingerprint", c.fingerprint},
                            {"updated_at", core::FormatRfc3339(c.updated_at)}});
    }
  }
  return stored;
}

// An integer limit: a non-negative JSON integer, or null to reset it.
core::Status ReadLimit(const json& limits, const char* field, std::optional<int>& value,
                       bool& clear) {
  if (!limits.contains(field)) {
    return core::Ok();
  }
  const json& v = limits[field];
  if (v.is_null()) {
    clear = true;
    return core::Ok();
  }
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 100'000'000) {
    return core::Fail(core::Code::kInvalidArgument,
                      std::string(field) + " must be an integer in [0, 100000000] or null",
                      std::string("limits.") + field);
  }
  value = static_cast<int>(v.get<int64_t>());
  return core::Ok();
}

core::Result<security::UserLimitsUpdate> ParseLimits(const json& limits) {
  if (!limits.is_object()) {
    return core::Fail(core::Code::kInvalidArgument, "limits must be an object", "limits");
  }
  GPUORCH_TRY(OnlyFields(limits, {"max_gpus", "max_queued_jobs", "monthly_budget_usd"}));
  security::UserLimitsUpdate update;
  GPUORCH_TRY(ReadLimit(limits, "max_gpus", update.max_gpus, update.clear_max_gpus));
  GPUORCH_TRY(ReadLimit(limits, "max_queued_jobs", update.max_queued_jobs,
                        update.clear_max_queued_jobs));
  if (limits.contains("monthly_budget_usd")) {
    const json& v = limits["monthly_budget_usd"];
    if (v.is_null()) {
      update.clear_monthly_budget = true;
    } else if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0 ||
               v.get<double>() > 1e12) {
      return core::Fail(core::Code::kInvalidArgument,
                        "monthly_budget_usd must be a number in [0, 1e12] or null",
                        "limits.monthly_budget_usd");
    } else {
      update.monthly_budget_usd = v.get<double>();
    }
  }
  return update;
}

// The "limits" object of a request body, parsed; nullopt when the body has none.
core::Result<std::optional<security::UserLimitsUpdate>> LimitsIn(const json& body) {
  if (!body.contains("limits")) {
    return std::optional<security::UserLimitsUpdate>();
  }
  GPUORCH_ASSIGN_OR_RETURN(security::UserLimitsUpdate limits, ParseLimits(body["limits"]));
  return std::optional<security::UserLimitsUpdate>(limits);
}

}  // namespace

void ApiRouter::ListUsers(Responder respond) {
  if (security_.users == nullptr) {
    return respond(ErrorResponse(Unavailable("user management is not available")));
  }
  workers_->Post([this, respond = std::move(respond)] {
    auto users = store_.ListUsers();
    if (!users) {
      return respond(ErrorResponse(users.error()));
    }
    auto snapshot = security_.directory ? security_.directory->Current() : nullptr;
    json list = json::array();
    for (const auto& user : *users) {
      list.push_back(UserJson(user, snapshot.get()));
    }
    respond(JsonResponse(200, json{{"users", list}}));
  });
}

void ApiRouter::ShowUser(const std::string& name, Responder respond) {
  if (security_.users == nullptr) {
    return respond(ErrorResponse(Unavailable("user management is not available")));
  }
  workers_->Post([this, name, respond = std::move(respond)] {
    auto user = store_.GetUserByName(name);
    if (!user) {
      return respond(ErrorResponse(user.error().code == core::Code::kNotFound
                                       ? NotFound("user " + name)
                                       : user.error()));
    }
    auto snapshot = security_.directory ? security_.directory->Current() : nullptr;
    respond(JsonResponse(200, UserJson(*user, snapshot.get())));
  });
}

void ApiRouter::CreateUser(const HttpRequest& request, Responder respond) {
  if (security_.users == nullptr) {
    return respond(ErrorResponse(Unavailable("user management is not available")));
  }
  auto body = JsonObjectBody(request, {"name", "password", "role", "limits"});
  if (!body) {
    return respond(ErrorResponse(body.error()));
  }
  auto name = OptionalString(*body, "name");
  auto password = OptionalString(*body, "password");
  auto role = OptionalString(*body, "role");
  for (auto* field : {&name, &password, &role}) {
    if (!*field) {
      return respond(ErrorResponse(field->error()));
    }
  }
  if (!*name) {
    return respond(ErrorResponse(
        core::Error{core::Code::kInvalidArgument, "name is required", "name"}));
  }
  auto parsed_limits = LimitsIn(*body);
  if (!parsed_limits) {
    return respond(ErrorResponse(parsed_limits.error()));
  }
  const security::UserLimitsUpdate limits = parsed_limits->value_or(security::UserLimitsUpdate{});
  workers_->Post([this, name = name->value(), password = password->value_or(""),
                  role = role->value_or(security::kUserRole), limits,
                  respond = std::move(respond)] {
    auto user = security_.users->AddUser(name, password, role, limits);
    if (!user) {
      return respond(ErrorResponse(user.error()));
    }
    if (security_.users_changed) {
      security_.users_changed();
    }
    HttpResponse r = JsonResponse(201, UserJson(*user, nullptr));
    r.headers.emplace_back("Location", "/api/v1/users/" + user->name);
    respond(std::move(r));
  });
}

void ApiRouter::UpdateUser(const std::string& name, const HttpRequest& request,
                           Responder respond) {
  if (security_.users == nullptr) {
    return respond(ErrorResponse(Unavailable("user management is not available")));
  }
  auto body = JsonObjectBody(request, {"password", "role", "disabled", "limits"});
  if (!body) {
    return respond(ErrorResponse(body.error()));
  }
  auto password = OptionalString(*body, "password");
  auto role = OptionalString(*body, "role");
  if (!password || !role) {
    return respond(ErrorResponse(!password ? password.error() : role.error()));
  }
  std::optional<bool> disabled;
  if (body->contains("disabled")) {
    if (!(*body)["disabled"].is_boolean()) {
      return respond(ErrorResponse(core::Error{core::Code::kInvalidArgument,
                                               "disabled must be true or false", "disabled"}));
    }
    disabled = (*body)["disabled"].get<bool>();
  }
  auto limits = LimitsIn(*body);
  if (!limits) {
    return respond(ErrorResponse(limits.error()));
  }
  workers_->Post([this, name, password = *password, role = *role, disabled, limits = *limits,
                  respond = std::move(respond)] {
    if (password && password->size() > security::kMaxPasswordBytes) {
      return respond(ErrorResponse(core::Error{
          core::Code::kInvalidArgument,
          "password must be at most " + std::to_string(security::kMaxPasswordBytes) + " bytes",
          "password"}));
    }
    // One write: a refused request changes nothing.
    auto user = security_.users->Update(name, security::UserChange{.role = role,
                                                                   .disabled = disabled,
                                                                   .password = password,
                                                                   .limits = limits});
    if (!user) {
      return respond(ErrorResponse(user.error().code == core::Code::kNotFound
                                       ? NotFound("user " + name)
                                       : user.error()));
    }
    if (security_.users_changed) {
      security_.users_changed();
    }
    auto snapshot = security_.directory ? security_.directory->Current() : nullptr;
    respond(JsonResponse(200, UserJson(*user, snapshot.get())));
  });
}

void ApiRouter::PutCredentials(const std::string& provider, const HttpRequest& request,
                               Responder respond) {
  if (security_.credentials == nullptr) {
    return respond(ErrorResponse(Unavailable("credential storage is not available")));
  }
  if (!security::CredentialFields().count(provider)) {
    return respond(ErrorResponse(NotFound("provider " + provider)));
  }
  auto body = JsonObjectBody(request);
  if (!body) {
    return respond(ErrorResponse(body.error()));
  }
  std::map<std::string, std::string> fields;
  for (const auto& [key, value] : body->items()) {
    if (!value.is_string()) {
      return respond(ErrorResponse(
          core::Error{core::Code::kInvalidArgument, "must be a string", key}));
    }
    fields[key] = value.get<std::string>();
  }
  workers_->Post([this, provider, fields = std::move(fields), respond = std::move(respond)] {
    if (auto put = security_.credentials->Put(provider, fields); !put) {
      return respond(ErrorResponse(put.error()));
    }
    bool applied = true;
    if (security_.credentials_changed) {
      if (auto changed = security_.credentials_changed(provider); !changed) {
        spdlog::warn("provider {}: stored credentials not applied: {}", provider,
                     core::SanitizeForLog(changed.error().message, 300));
        applied = false;
      }
    }
    spdlog::info("provider {}: credentials stored (sealed)", provider);
    auto list = security_.credentials->List();
    if (!list) {
      return respond(ErrorResponse(list.error()));
    }
    respond(JsonResponse(200, json{{"provider", provider},
                                   {"credentials", CredentialsJson(*list, provider)},
                                   {"applied", applied}}));
  });
}

void ApiRouter::ShowCredentials(const std::string& provider, Responder respond) {
  if (security_.credentials == nullptr) {
    return respond(ErrorResponse(Unavailable("credential storage is not available")));
  }
  if (!security::CredentialFields().count(provider)) {
    return respond(ErrorResponse(NotFound("provider " + provider)));
  }
  workers_->Post([this, provider, respond = std::move(respond)] {
    auto list = security_.credentials->List();
    if (!list) {
      return respond(ErrorResponse(list.error()));
    }
    respond(JsonResponse(
        200, json{{"provider", provider}, {"credentials", CredentialsJson(*list, provider)}}));
  });
}

void ApiRouter::DeleteCredentials(const std::string& provider, Responder respond) {
  if (security_.credentials == nullptr) {
    return respond(ErrorResponse(Unavailable("credential storage is not available")));
  }
  if (!security::CredentialFields().count(provider)) {
    return respond(ErrorResponse(NotFound("provider " + provider)));
  }
  workers_->Post([this, provider, respond = std::move(respond)] {
    if (auto deleted = security_.credentials->Delete(provider); !deleted) {
      return respond(ErrorResponse(deleted.error().code == core::Code::kNotFound
                                       ? NotFound("stored credentials of " + provider)
                                       : deleted.error()));
    }
    if (security_.credentials_changed) {
      if (auto changed = security_.credentials_changed(provider); !changed) {
        spdlog::warn("provider {}: credentials not reapplied: {}", provider,
                     core::SanitizeForLog(changed.error().message, 300));
      }
    }
    respond(JsonResponse(200, json{{"provider", provider}, {"credentials", json::array()}}));
  });
}

}  // namespace gpuorch::api
