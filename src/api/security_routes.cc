// The security side of the API (docs/api.md): admission (rate limits, then authentication), login,
// API tokens, users and provider credentials.
#include <cmath>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "api/api_router.h"
#include "api/internal/job_codec.h"
#include "api/internal/route_util.h"
#include "core/log.h"

namespace gpuorch::api {
namespace {

using internal::BadRequest;
using internal::JsonResponse;
using internal::NotFound;
using internal::Segments;
using nlohmann::json;

constexpr const char* kLoginPath = "/api/v1/auth/token";

json Time(const std::optional<core::SystemTime>& t) {
  return t ? json(core::FormatRfc3339(*t)) : json(nullptr);
}

core::Error Forbidden(const std::string& message) {
  return core::Error{core::Code::kPermissionDenied, message, "", "forbidden"};
}

core::Error Unavailable(const std::string& message) {
  return core::Error{core::Code::kUnavailable, message, "", "unavailable"};
}

// A 429 with Retry-After; the RateLimit-* headers come from the admission wrapper.
HttpResponse TooManyRequests(const security::RateDecision& decision, const std::string& what) {
  HttpResponse r = ErrorResponse(core::Error{core::Code::kResourceExhausted,
                                             "too many requests " + what + "; retry after " +
                                                 std::to_string(decision.retry_after.count()) +
                                                 " s",
                                             "", "rate_limited"});
  r.headers.emplace_back("Retry-After", std::to_string(decision.retry_after.count()));
  return r;
}

void AddRateHeaders(HttpResponse& r, const security::RateDecision& decision) {
  r.headers.emplace_back("RateLimit-Limit", std::to_string(decision.limit));
  r.headers.emplace_back("RateLimit-Remaining", std::to_string(decision.remaining));
  r.headers.emplace_back("RateLimit-Reset", std::to_string(decision.reset.count()));
}

HttpResponse Unauthorized(const core::Error& error) {
  HttpResponse r = ErrorResponse(error);
  r.headers.emplace_back("WWW-Authenticate",
                         error.reason == "invalid_token"
                             ? "Bearer realm=\"gpuorch\", error=\"invalid_token\""
                             : "Bearer realm=\"gpuorch\"");
  return r;
}

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

json TokenJson(const store::ApiTokenRecord& token, const std::string& user_name) {
  return json{{"id", token.id},
              {"name", token.name},
              {"user", user_name},
              {"hint", token.hint},
              {"created_at", core::FormatRfc3339(token.created_at)},
              {"expires_at", Time(token.expires_at)},
              {"revoked_at", Time(token.revoked_at)}};
}

core::Status OnlyFields(const json& body, std::initializer_list<const char*> allowed);

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

// The JSON object body of a request, or the error to answer; with `allowed` non-empty, a field
// not in it is an error too.
core::Result<json> JsonObjectBody(const HttpRequest& request,
                                  std::initializer_list<const char*> allowed = {}) {
  if (!internal::IsJsonContentType(request.Header("content-type"))) {
    return core::Fail(core::Error{core::Code::kInvalidArgument,
                                  "Content-Type must be application/json (UTF-8)", "Content-Type",
                                  "unsupported_media_type"});
  }
  GPUORCH_ASSIGN_OR_RETURN(json body, internal::ParseJsonBody(request.body));
  if (!body.is_object()) {
    return core::Fail(BadRequest("the body must be a JSON object", ""));
  }
  if (allowed.size() > 0) {
    GPUORCH_TRY(OnlyFields(body, allowed));
  }
  return body;
}

// `body[field]` as a string: nullopt when absent; an error when present but not a string.
core::Result<std::optional<std::string>> OptionalString(const json& body, const char* field) {
  if (!body.contains(field) || body[field].is_null()) {
    return std::optional<std::string>();
  }
  if (!body[field].is_string()) {
    return core::Fail(core::Code::kInvalidArgument, std::string(field) + " must be a string",
                      field);
  }
  return std::optional<std::string>(body[field].get<std::string>());
}

core::Status OnlyFields(const json& body, std::initializer_list<const char*> allowed) {
  for (const auto& [key, value] : body.items()) {
    if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return key == a; })) {
      return core::Fail(core::Code::kInvalidArgument, "unknown field", key);
    }
  }
  return core::Ok();
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

}  // namespace

std::optional<security::Principal> ApiRouter::Admit(const HttpRequest& request,
                                                    Responder& respond) {
  // Per client address first: it also shields login's Argon2id and token checks from floods.
  std::optional<security::RateDecision> shown;
  if (security_.address_limiter != nullptr) {
    security::RateDecision decision =
        security_.address_limiter->Admit("addr:" + request.remote_address);
    if (!decision.allowed) {
      HttpResponse r = TooManyRequests(decision, "from this address");
      AddRateHeaders(r, decision);
      respond(std::move(r));
      return std::nullopt;
    }
    shown = decision;
  }
  if (request.path == kLoginPath) {
    if (request.method != "POST") {
      respond(internal::MethodNotAllowed(request.method, "POST"));
    } else {
      Login(request, std::move(respond));
    }
    return std::nullopt;
  }
  Principal caller{.user_id = "default", .name = "default", .role = security::kAdminRole};
  if (security_.authenticator != nullptr) {
    auto principal = security_.authenticator->Authenticate(request.Header("authorization"));
    if (!principal) {
      respond(Unauthorized(principal.error()));
      return std::nullopt;
    }
    caller = std::move(*principal);
  }
  if (security_.user_limiter != nullptr) {
    security::RateDecision decision = security_.user_limiter->Admit("user:" + caller.user_id);
    if (!decision.allowed) {
      HttpResponse r = TooManyRequests(decision, "for this user");
      AddRateHeaders(r, decision);
      respond(std::move(r));
      return std::nullopt;
    }
    shown = decision;
  }
  if (shown) {
    respond = [inner = std::move(respond), decision = *shown](HttpResponse r) {
      AddRateHeaders(r, decision);
      inner(std::move(r));
    };
  }
  return caller;
}

void ApiRouter::Login(HttpRequest request, Responder respond) {
  if (security_.authenticator == nullptr) {
    return respond(ErrorResponse(
        Unavailable("authentication is turned off (GPUORCH_AUTH=off): no token is needed")));
  }
  auto body = JsonObjectBody(request);
  if (!body) {
    return respond(ErrorResponse(body.error()));
  }
  auto name = OptionalString(*body, "username");
  auto password = OptionalString(*body, "password");
  if (!name || !*name || name->value().empty()) {
    return respond(ErrorResponse(name ? core::Error{core::Code::kInvalidArgument,
                                                    "username is required", "username"}
                                      : name.error()));
  }
  if (!password || !*password || password->value().empty()) {
    return respond(ErrorResponse(password ? core::Error{core::Code::kInvalidArgument,
                                                        "password is required", "password"}
                                          : password.error()));
  }
  if (name->value().size() > 256 || password->value().size() > 1024) {
    return respond(ErrorResponse(core::Error{core::Code::kUnauthenticated,
                                             "invalid username or password", "",
                                             "invalid_credentials"}));
  }
  // Guessing is limited per account and per address, whether or not the account exists.
  if (security_.login_limiter != nullptr) {
    for (const std::string& key :
         {"login-name:" + name->value(), "login-addr:" + request.remote_address}) {
      security::RateDecision decision = security_.login_limiter->Admit(key);
      if (!decision.allowed) {
        HttpResponse r = TooManyRequests(decision, "to log in");
        AddRateHeaders(r, decision);
        return respond(std::move(r));
      }
    }
  }
  workers_->Post([this, name = name->value(), password = password->value(),
                  respond = std::move(respond)] {
    auto token = security_.authenticator->Login(name, password);
    if (!token) {
      if (token.error().code == core::Code::kResourceExhausted) {
        HttpResponse r = ErrorResponse(core::Error{core::Code::kResourceExhausted,
                                                   "too many logins at once; retry shortly", "",
                                                   "rate_limited"});
        r.headers.emplace_back("Retry-After", "1");
        return respond(std::move(r));
      }
      return respond(Unauthorized(token.error()));
    }
    respond(JsonResponse(200, json{{"access_token", token->token},
                                   {"token_type", "Bearer"},
                                   {"expires_in", token->expires_in.count()}}));
  });
}

bool ApiRouter::HandleSecurity(const HttpRequest& request, const Principal& caller,
                               Responder& respond) {
  const std::string& path = request.path;
  const std::string& method = request.method;
  auto only = [&](const char* allowed) {
    respond(internal::MethodNotAllowed(method, allowed));
    return true;
  };
  auto forbid = [&]() {
    respond(ErrorResponse(Forbidden("this route is for admins")));
    return true;
  };
  if (path == "/api/v1/auth/whoami") {
    if (method != "GET") {
      return only("GET");
    }
    json j{{"user_id", caller.user_id}, {"name", caller.name}, {"role", caller.role}};
    respond(JsonResponse(200, j));
    return true;
  }
  if (path == "/api/v1/auth/tokens" || path == "/api/v1/auth/tokens/") {
    if (method == "GET") {
      ListTokens(caller, std::move(respond));
    } else if (method == "POST") {
      CreateToken(caller.name, request, std::move(respond));
    } else {
      return only("GET, POST");
    }
    return true;
  }
  if (path.rfind("/api/v1/auth/tokens/", 0) == 0) {
    auto segs = Segments(path, "/api/v1/auth/tokens/");
    if (segs.size() != 1 || segs[0].empty()) {
      return false;
    }
    if (method != "DELETE") {
      return only("DELETE");
    }
    RevokeToken(segs[0], caller, std::move(respond));
    return true;
  }
  // Admin routes: deny by default.
  if (path == "/api/v1/users" || path == "/api/v1/users/") {
    if (!caller.IsAdmin()) {
      return forbid();
    }
    if (method == "GET") {
      ListUsers(std::move(respond));
    } else if (method == "POST") {
      CreateUser(request, std::move(respond));
    } else {
      return only("GET, POST");
    }
    return true;
  }
  if (path.rfind("/api/v1/users/", 0) == 0) {
    if (!caller.IsAdmin()) {
      return forbid();
    }
    auto segs = Segments(path, "/api/v1/users/");
    if (segs.size() == 1 && !segs[0].empty()) {
      if (method == "GET") {
        ShowUser(segs[0], std::move(respond));
      } else if (method == "PATCH") {
        UpdateUser(segs[0], request, std::move(respond));
      } else {
        return only("GET, PATCH");
      }
      return true;
    }
    if (segs.size() == 2 && !segs[0].empty() && segs[1] == "tokens") {
      if (method != "POST") {
        return only("POST");
      }
      CreateToken(segs[0], request, std::move(respond));
      return true;
    }
    return false;
  }
  if (path.rfind("/api/v1/providers/", 0) == 0) {
    auto segs = Segments(path, "/api/v1/providers/");
    if (segs.size() != 2 || segs[1] != "credentials") {
      return false;
    }
    if (!caller.IsAdmin()) {
      return forbid();
    }
    if (method == "PUT") {
      PutCredentials(segs[0], request, std::move(respond));
    } else if (method == "GET") {
      ShowCredentials(segs[0], std::move(respond));
    } else if (method == "DELETE") {
      DeleteCredentials(segs[0], std::move(respond));
    } else {
      return only("GET, PUT, DELETE");
    }
    return true;
  }
  return false;
}

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
  security::UserLimitsUpdate limits;
  if (body->contains("limits")) {
    auto parsed = ParseLimits((*body)["limits"]);
    if (!parsed) {
      return respond(ErrorResponse(parsed.error()));
    }
    limits = *parsed;
  }
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
  std::optional<security::UserLimitsUpdate> limits;
  if (body->contains("limits")) {
    auto parsed = ParseLimits((*body)["limits"]);
    if (!parsed) {
      return respond(ErrorResponse(parsed.error()));
    }
    limits = *parsed;
  }
  workers_->Post([this, name, password = *password, role = *role, disabled, limits,
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

void ApiRouter::CreateToken(const std::string& user_name, const HttpRequest& request,
                            Responder respond) {
  if (security_.users == nullptr) {
    return respond(ErrorResponse(Unavailable("token management is not available")));
  }
  auto body = JsonObjectBody(request, {"name", "expires_in_seconds"});
  if (!body) {
    return respond(ErrorResponse(body.error()));
  }
  auto name = OptionalString(*body, "name");
  if (!name) {
    return respond(ErrorResponse(name.error()));
  }
  std::optional<std::chrono::seconds> ttl;
  if (body->contains("expires_in_seconds") && !(*body)["expires_in_seconds"].is_null()) {
    const json& v = (*body)["expires_in_seconds"];
    if (!v.is_number_integer()) {
      return respond(ErrorResponse(core::Error{core::Code::kInvalidArgument,
                                               "expires_in_seconds must be an integer",
                                               "expires_in_seconds"}));
    }
    ttl = std::chrono::seconds(v.get<int64_t>());
  }
  workers_->Post([this, user_name, token_name = name->value_or("api"), ttl,
                  respond = std::move(respond)] {
    auto token = security_.users->CreateToken(user_name, token_name, ttl);
    if (!token) {
      return respond(ErrorResponse(token.error().code == core::Code::kNotFound
                                       ? NotFound("user " + user_name)
                                       : token.error()));
    }
    if (security_.users_changed) {
      security_.users_changed();
    }
    json j = TokenJson(token->record, user_name);
    j["token"] = token->secret;  // shown once
    respond(JsonResponse(201, j));
  });
}

void ApiRouter::ListTokens(const Principal& caller, Responder respond) {
  workers_->Post([this, caller, respond = std::move(respond)] {
    auto tokens = store_.ListApiTokens(caller.IsAdmin() ? std::nullopt
                                                        : std::optional(caller.user_id));
    if (!tokens) {
      return respond(ErrorResponse(tokens.error()));
    }
    auto snapshot = security_.directory ? security_.directory->Current() : nullptr;
    json list = json::array();
    for (const auto& token : *tokens) {
      const store::UserRecord* user = snapshot ? snapshot->FindUser(token.user_id) : nullptr;
      list.push_back(TokenJson(token, user ? user->name : token.user_id));
    }
    respond(JsonResponse(200, json{{"tokens", list}}));
  });
}

void ApiRouter::RevokeToken(const std::string& token_id, const Principal& caller,
                            Responder respond) {
  if (security_.users == nullptr) {
    return respond(ErrorResponse(Unavailable("token management is not available")));
  }
  workers_->Post([this, token_id, caller, respond = std::move(respond)] {
    // Another user's token answers exactly as a missing one.
    auto own = store_.ListApiTokens(caller.IsAdmin() ? std::nullopt
                                                     : std::optional(caller.user_id));
    if (!own) {
      return respond(ErrorResponse(own.error()));
    }
    if (std::none_of(own->begin(), own->end(),
                     [&](const store::ApiTokenRecord& t) { return t.id == token_id; })) {
      return respond(ErrorResponse(NotFound("token " + token_id)));
    }
    auto revoked = security_.users->RevokeToken(token_id);
    if (!revoked) {
      return respond(ErrorResponse(revoked.error()));
    }
    if (security_.users_changed) {
      security_.users_changed();
    }
    auto snapshot = security_.directory ? security_.directory->Current() : nullptr;
    const store::UserRecord* owner = snapshot ? snapshot->FindUser(revoked->user_id) : nullptr;
    respond(JsonResponse(200, TokenJson(*revoked, owner ? owner->name : revoked->user_id)));
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
