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

class AgentApi;

struct ApiOptions {
  int64_t default_timeout_seconds = 24 * 3600;
  int worker_threads = 4;
  std::string version = "0.1.0";
  // The most queued jobs `owner` may have; a submit over it answers 429 quota_exceeded. Empty, or
  // nullopt for an owner: no limit. Called on an I/O thread; must not block.
  std::function<std::optional<int>(const std::string& owner)> max_queued_jobs;
};

// The HTTP status for an error: reasons first (invalid_json → 400, body_too_large → 413,
// unsupported_media_type → 415, conflict → 409, quota_exceeded → 429), then the canonical code
// (kInvalidArgument → 422, kNotFound → 404, kUnavailable → 503, ...).
int ErrorStatus(const core::Error& error);
// A JSON error response; kInternal messages are replaced by a generic text.
HttpResponse ErrorResponse(const core::Error& error);

class ApiRouter {
 public:
  ApiRouter(ApiDeps deps, ApiOptions options);
  ~ApiRouter();
  ApiRouter(const ApiRouter&) = delete;
  ApiRouter& operator=(const ApiRouter&) = delete;

  void Handle(HttpRequest request, Responder respond);

 private:
  void Submit(HttpRequest request, Responder respond);
  void ListJobs(const HttpRequest& request, Responder respond);
  void GetJob(const std::string& job_id, Responder respond);
  void CancelJob(const std::string& job_id, Responder respond);
  void Logs(const std::string& job_id, const HttpRequest& request, Responder respond);
  void Queue(const HttpRequest& request, Responder respond);
  void Templates(Responder respond);
  // Adds "queue_position" (null unless queued) and, for a queued job, why it waits.
  void AddWaitInfo(const domain::Job& job, nlohmann::json& out) const;
  void Instances(const std::string& instance_id, Responder respond);
  void TerminateInstance(const std::string& instance_id, Responder respond);
  void Nodes(Responder respond);
  void Providers(Responder respond);
  void ProviderPricing(const std::string& provider, Responder respond);
  void ProviderStatus(const std::string& provider, Responder respond);
  void Costs(Responder respond);
  // Submit with "dry_run": true: the ranked offers and estimated cost, nothing stored or rented.
  void DryRun(const domain::JobSpec& spec, Responder respond);
  // Adds "cost_usd" (usage so far) and, for a queued job, "provisioning" (the cloud choice).
  void AddCloudInfo(const domain::Job& job, nlohmann::json& out) const;
  // The cloud routes: true when `request` was one of them (and answered).
  bool HandleCloud(const HttpRequest& request, Responder& respond);
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
};

}  // namespace gpuorch::api
