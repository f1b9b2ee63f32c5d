// The service's HTTP routes (docs/api.md): jobs, logs, templates, instances and health, mapped onto
// the Store and the JobController. Request validation happens here; every error answer has the shape
// {"error":{"code","message","field"}} with the status of ErrorStatus().
//
// Thread-safe. Handle() runs on an HTTP I/O thread and never blocks on the store: submits go through
// the store's group commit; reads run on the router's worker pool.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "api/http_server.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/ids.h"
#include "core/worker_pool.h"
#include "lifecycle/instance_manager.h"
#include "lifecycle/job_controller.h"
#include "lifecycle/node_registry.h"
#include "optimizer/offer_catalog.h"
#include "security/authenticator.h"
#include "security/credential_vault.h"
#include "security/principal.h"
#include "security/rate_limiter.h"
#include "security/user_admin.h"
#include "security/user_directory.h"
#include "store/store.h"

namespace gpuorch::api {

struct ApiDeps {
  store::Store& store;
  lifecycle::JobController& controller;
  const core::Clock& clock;
  core::IdGenerator& ids;
  // Cloud capacity; each null when not wired (then its routes answer 404 or empty lists).
  lifecycle::InstanceManager* instances = nullptr;
  optimizer::OfferCatalog* catalog = nullptr;
  lifecycle::NodeRegistry* registry = nullptr;
};

// Authentication, authorisation and rate limits. Every pointer is borrowed and may be null.
struct ApiSecurity {
  // Null: authentication is off and every caller is the admin "default" (local development).
  security::Authenticator* authenticator = nullptr;
  security::UserDirectory* directory = nullptr;
  security::UserAdmin* users = nullptr;          // null: the user routes answer 503
  security::CredentialVault* credentials = nullptr;  // null: the credential routes answer 503
  security::RateLimiter* user_limiter = nullptr;     // per authenticated user; null: no limit
  security::RateLimiter* address_limiter = nullptr;  // per client address; null: no limit
  security::RateLimiter* login_limiter = nullptr;    // login attempts per name and per address
  // Called on a worker thread after users or tokens changed through the API (reload the directory
  // and the quotas derived from it), and after a provider's credentials changed.
  std::function<void()> users_changed;
  std::function<core::Status(const std::string& provider)> credentials_changed;
  // /metrics without a token (GPUORCH_METRICS_AUTH=off, the default: Prometheus scrapes it), or
  // like every API route.
  bool metrics_open = true;
};

class AgentApi;

struct ApiOptions {
  int64_t default_timeout_seconds = 24 * 3600;
  int worker_threads = 4;
  std::string version = "0.1.0";
  // The most queued jobs `owner` may have; a submit over it answers 429 quota_exceeded. Empty, or
  // nullopt for an owner: no limit. Called on an I/O thread; must not block.
  std::function<std::optional<int>(const std::string& owner)> max_queued_jobs;
  // When set and it returns an error for `owner` (reason "budget_exceeded", HTTP 403), a submit is
  // refused before anything is stored or rented. Called on an I/O thread; must not block.
  std::function<std::optional<core::Error>(const std::string& owner)> admission_check;
};

// The HTTP status for an error: reasons first (invalid_json → 400, body_too_large → 413,
// unsupported_media_type → 415, conflict → 409, quota_exceeded → 429), then the canonical code
// (kInvalidArgument → 422, kNotFound → 404, kUnavailable → 503, ...).
int ErrorStatus(const core::Error& error);
// A JSON error response; kInternal messages are replaced by a generic text.
HttpResponse ErrorResponse(const core::Error& error);

class ApiRouter {
 public:
  ApiRouter(ApiDeps deps, ApiOptions options, ApiSecurity security = {});
  ~ApiRouter();
  ApiRouter(const ApiRouter&) = delete;
  ApiRouter& operator=(const ApiRouter&) = delete;

  void Handle(HttpRequest request, Responder respond);

 private:
  using Principal = security::Principal;
  // Rate limits and authentication of one request: the caller, or nullopt when `respond` was
  // already called with the refusal (401, 429). Adds the RateLimit-* headers to `respond`.
  std::optional<Principal> Admit(const HttpRequest& request, Responder& respond);
  void Route(HttpRequest request, const Principal& caller, Responder respond);
  void Submit(HttpRequest request, const Principal& caller, Responder respond);
  void ListJobs(const HttpRequest& request, const Principal& caller, Responder respond);
  void GetJob(const std::string& job_id, const Principal& caller, Responder respond);
  void CancelJob(const std::string& job_id, const Principal& caller, Responder respond);
  void Logs(const std::string& job_id, const HttpRequest& request, const Principal& caller,
            Responder respond);
  void Queue(const HttpRequest& request, const Principal& caller, Responder respond);
  void Templates(Responder respond);
  // Adds "queue_position" (null unless queued) and, for a queued job, why it waits.
  void AddWaitInfo(const domain::Job& job, nlohmann::json& out) const;
  void Instances(const std::string& instance_id, const Principal& caller, Responder respond);
  void TerminateInstance(const std::string& instance_id, const Principal& caller,
                         Responder respond);
  void Nodes(Responder respond);
  void Providers(Responder respond);
  void ProviderPricing(const std::string& provider, Responder respond);
  void ProviderStatus(const std::string& provider, Responder respond);
  void Costs(const Principal& caller, Responder respond);
  // Submit with "dry_run": true: the ranked offers and estimated cost, nothing stored or rented.
  void DryRun(const domain::JobSpec& spec, Responder respond);
  // Adds "cost_usd" (usage so far) and, for a queued job, "provisioning" (the cloud choice).
  void AddCloudInfo(const domain::Job& job, nlohmann::json& out) const;
  // The cloud routes: true when `request` was one of them (and answered).
  bool HandleCloud(const HttpRequest& request, const Principal& caller, Responder& respond);
  // The security routes (auth, users, tokens, credentials): true when `request` was one of them.
  bool HandleSecurity(const HttpRequest& request, const Principal& caller, Responder& respond);
  void Login(HttpRequest request, Responder respond);
  void CreateUser(const HttpRequest& request, Responder respond);
  void UpdateUser(const std::string& name, const HttpRequest& request, Responder respond);
  void ListUsers(Responder respond);
  void ShowUser(const std::string& name, Responder respond);
  void CreateToken(const std::string& user_name, const HttpRequest& request, Responder respond);
  void ListTokens(const Principal& caller, Responder respond);
  void RevokeToken(const std::string& token_id, const Principal& caller, Responder respond);
  void PutCredentials(const std::string& provider, const HttpRequest& request,
                      Responder respond);
  void ShowCredentials(const std::string& provider, Responder respond);
  void DeleteCredentials(const std::string& provider, Responder respond);
  void Health(Responder respond);

  store::Store& store_;
  lifecycle::JobController& controller_;
  const core::Clock& clock_;
  core::IdGenerator& ids_;
  const ApiOptions options_;
  std::shared_ptr<core::WorkerPool> workers_;
  std::set<std::string> known_gpu_types_;  // canonical GPU types a submit may name
  lifecycle::InstanceManager* instances_;
  optimizer::OfferCatalog* catalog_;
  lifecycle::NodeRegistry* registry_;
  std::unique_ptr<AgentApi> agent_api_;
  ApiSecurity security_;
};

}  // namespace gpuorch::api
