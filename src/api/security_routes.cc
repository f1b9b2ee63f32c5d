// The security side of the API (docs/api.md): admission (rate limits, then authentication), login,
// the routing of the security routes, and API tokens. Users and provider credentials (admin only)
// are in admin_routes.cc.
#include <nlohmann/json.hpp>

#include "api/api_router.h"
#include "api/internal/route_util.h"

namespace gpuorch::api {
namespace {

using internal::Forbidden;
using internal::JsonObjectBody;
using internal::JsonResponse;
using internal::NotFound;
using internal::OptionalString;
using internal::Segments;
using internal::TimeOrNull;
using internal::Unavailable;
using nlohmann::json;

constexpr const char* kLoginPath = "/api/v1/auth/token";




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


json TokenJson(const store::ApiTokenRecord& token, const std::string& user_name) {
  return json{{"id", token.id},
              {"name", token.name},
              {"user", user_name},
              {"hint", token.hint},
              {"created_at", core::FormatRfc3339(token.created_at)},
              {"expires_at", TimeOrNull(token.expires_at)},
              {"revoked_at", TimeOrNull(token.revoked_at)}};
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




}  // namespace gpuorch::api
