// The cloud routes of the API (docs/api.md): instances, nodes, providers, costs and dry runs.
#include <nlohmann/json.hpp>

#include "api/api_router.h"
#include "api/internal/job_codec.h"
#include "api/internal/route_util.h"
#include "optimizer/ranking.h"

namespace gpuorch::api {
namespace {

using internal::JsonResponse;
using internal::NotFound;
using internal::Segments;
using nlohmann::json;

json Time(const std::optional<core::SystemTime>& t) {
  return t ? json(core::FormatRfc3339(*t)) : json(nullptr);
}

double Round(double usd, double unit = 1e-6) { return std::round(usd / unit) * unit; }

json OfferJson(const domain::Offer& offer) {
  return json{{"provider", offer.provider},
              {"offer_id", offer.offer_id},
              {"instance_type", offer.instance_type},
              {"gpu_type", offer.gpu_type},
              {"gpu_count", offer.gpu_count},
              {"gpu_memory_gb", offer.gpu_memory_gb},
              {"on_demand_price_per_hour",
               offer.on_demand_price > 0 ? json(offer.on_demand_price) : json(nullptr)},
              {"spot_price_per_hour", offer.spot_price ? json(*offer.spot_price) : json(nullptr)},
              {"region", offer.region},
              {"reliability", offer.reliability},
              {"available", offer.available},
              {"cpu_count", offer.cpu_count},
              {"ram_gb", offer.ram_gb}};
}

json RankedJson(const optimizer::RankedOffer& ranked) {
  json j = OfferJson(ranked.offer);
  j["spot"] = ranked.spot;
  j["price_per_hour"] = ranked.price_per_hour;
  j["effective_price_per_hour"] = Round(ranked.effective_price_per_hour, 1e-4);
  j["why"] = ranked.why;
  return j;
}

json InstanceJson(const domain::Instance& instance, core::SystemTime now,
                  const std::vector<lifecycle::NodeStatus>& nodes) {
  json j{{"instance_id", instance.id},
         {"provider", instance.provider},
         {"provider_instance_id",
          instance.provider_instance_id.empty() ? json(nullptr) : json(instance.provider_instance_id)},
         {"status", domain::ToString(instance.state)},
         {"status_message", instance.status_message},
         {"gpu_type", instance.offer.gpu_type},
         {"gpu_count", instance.offer.gpu_count},
         {"instance_type", instance.offer.instance_type},
         {"offer_id", instance.offer.offer_id},
         {"region", instance.offer.region},
         {"spot", instance.spot},
         {"price_per_hour", instance.price_per_hour},
         {"cost_usd", Round(domain::InstanceCostUsd(instance, now))},
         {"owner", instance.owner.empty() ? json(nullptr) : json(instance.owner)},
         {"job_id", instance.for_job_id.empty() ? json(nullptr) : json(instance.for_job_id)},
         {"node_id", instance.node_id.empty() ? json(nullptr) : json(instance.node_id)},
         {"idle_timeout_seconds", instance.idle_timeout_seconds},
         {"created_at", core::FormatRfc3339(instance.created_at)},
         {"updated_at", core::FormatRfc3339(instance.updated_at)},
         {"billing_started_at", Time(instance.billing_started_at)},
         {"ready_at", Time(instance.ready_at)},
         {"billing_ended_at", Time(instance.billing_ended_at)}};
  j["node"] = nullptr;
  for (const auto& node : nodes) {
    if (!instance.node_id.empty() && node.node_id == instance.node_id) {
      j["node"] = internal::NodeJson(node);
    }
  }
  return j;
}

}  // namespace

bool ApiRouter::HandleCloud(const HttpRequest& request, const Principal& caller,
                            Responder& respond) {
  const std::string& path = request.path;
  const std::string& method = request.method;
  auto only = [&](const char* allowed) {
    respond(internal::MethodNotAllowed(method, allowed));
    return true;
  };
  if (path == "/api/v1/instances/" || path == "/api/v1/instances") {
    if (method != "GET") {
      return only("GET");
    }
    Instances("", caller, std::move(respond));
    return true;
  }
  if (path.rfind("/api/v1/instances/", 0) == 0) {
    auto segs = Segments(path, "/api/v1/instances/");
    if (segs.size() != 1) {
      return false;
    }
    if (method == "GET") {
      Instances(segs[0], caller, std::move(respond));
    } else if (method == "DELETE") {
      TerminateInstance(segs[0], caller, std::move(respond));
    } else {
      return only("GET, DELETE");
    }
    return true;
  }
  if (path == "/api/v1/nodes" || path == "/api/v1/nodes/") {
    if (method != "GET") {
      return only("GET");
    }
    Nodes(std::move(respond));
    return true;
  }
  if (path == "/api/v1/costs" || path == "/api/v1/costs/") {
    if (method != "GET") {
      return only("GET");
    }
    Costs(caller, std::move(respond));
    return true;
  }
  if (path == "/api/v1/providers" || path == "/api/v1/providers/") {
    if (method != "GET") {
      return only("GET");
    }
    Providers(std::move(respond));
    return true;
  }
  if (path.rfind("/api/v1/providers/", 0) == 0) {
    auto segs = Segments(path, "/api/v1/providers/");
    if (segs.size() != 2 || (segs[1] != "pricing" && segs[1] != "status")) {
      return false;
    }
    if (method != "GET") {
      return only("GET");
    }
    if (segs[1] == "pricing") {
      ProviderPricing(segs[0], std::move(respond));
    } else {
      ProviderStatus(segs[0], std::move(respond));
    }
    return true;
  }
  return false;
}

void ApiRouter::Instances(const std::string& instance_id, const Principal& caller,
                          Responder respond) {
  // A user sees the instances rented for their own jobs; admins see all. The local node is shared.
  auto visible = [caller](const domain::Instance& instance) {
    return caller.IsAdmin() || instance.owner == caller.name;
  };
  workers_->Post([this, instance_id, visible, respond = std::move(respond)] {
    const std::vector<lifecycle::NodeStatus> nodes = controller_.Nodes();
    const lifecycle::NodeStatus& local = nodes.front();
    const core::SystemTime now = clock_.Now();
    if (!instance_id.empty()) {
      if (instance_id == local.node_id) {
        return respond(JsonResponse(200, internal::NodeJson(local)));
      }
      auto instance = store_.GetInstance(instance_id);
      if (instance && !visible(*instance)) {
        instance = tl::unexpected(NotFound("instance " + instance_id));
      }
      if (!instance) {
        return respond(ErrorResponse(instance.error().code == core::Code::kNotFound ||
                                             instance.error().code == core::Code::kUnimplemented
                                         ? NotFound("instance " + instance_id)
                                         : instance.error()));
      }
      return respond(JsonResponse(200, InstanceJson(*instance, now, nodes)));
    }
    json list = json::array({internal::NodeJson(local)});
    if (instances_ != nullptr) {
      auto all = store_.ListInstances({});
      if (!all) {
        return respond(ErrorResponse(all.error()));
      }
      // Newest first; ended instances stay listed for their cost.
      for (auto it = all->rbegin(); it != all->rend(); ++it) {
        if (!visible(*it)) {
          continue;
        }
        list.push_back(InstanceJson(*it, now, nodes));
      }
    }
    respond(JsonResponse(200, json{{"instances", list}}));
  });
}

void ApiRouter::TerminateInstance(const std::string& instance_id, const Principal& caller,
                                  Responder respond) {
  workers_->Post([this, instance_id, caller, respond = std::move(respond)] {
    if (instance_id == controller_.Node().node_id) {
      return respond(ErrorResponse(core::Error{core::Code::kFailedPrecondition,
                                               "the local node cannot be terminated", "",
                                               "conflict"}));
    }
    if (instances_ == nullptr) {
      return respond(ErrorResponse(NotFound("instance " + instance_id)));
    }
    if (!caller.IsAdmin()) {
      auto owned = store_.GetInstance(instance_id);
      if (!owned || owned->owner != caller.name) {
        return respond(ErrorResponse(owned || owned.error().code == core::Code::kNotFound
                                         ? NotFound("instance " + instance_id)
                                         : owned.error()));
      }
    }
    auto ended = instances_->Terminate(instance_id, "terminated by user");
    if (!ended) {
      return respond(ErrorResponse(ended.error().code == core::Code::kNotFound
                                       ? NotFound("instance " + instance_id)
                                       : ended.error()));
    }
    respond(JsonResponse(200, InstanceJson(*ended, clock_.Now(), controller_.Nodes())));
  });
}

void ApiRouter::Nodes(Responder respond) {
  workers_->Post([this, respond = std::move(respond)] {
    std::map<std::string, lifecycle::NodeView> views;
    if (registry_ != nullptr) {
      for (auto& view : registry_->Nodes()) {
        views[view.record.id] = view;
      }
    }
    json list = json::array();
    for (const auto& node : controller_.Nodes()) {
      json j = internal::NodeJson(node);
      if (auto it = views.find(node.node_id); it != views.end()) {
        j["last_heartbeat"] = Time(it->second.last_heartbeat);
        j["hostname"] = it->second.record.hostname;
        j["labels"] = it->second.record.labels;
        json metrics = json::array();
        for (const auto& m : it->second.gpu_metrics) {
          metrics.push_back({{"index", m.index},
                             {"utilization_pct", m.utilization_pct},
                             {"memory_used_mb", m.memory_used_mb},
                             {"memory_total_mb", m.memory_total_mb}});
        }
        j["gpu_metrics"] = metrics;
      }
      list.push_back(std::move(j));
    }
    respond(JsonResponse(200, json{{"nodes", list}}));
  });
}

namespace {

json StatusJson(const optimizer::ProviderStatus& status) {
  return json{{"name", status.name},
              {"configured", status.configured},
              {"reachable", status.reachable},
              {"latency_ms", status.latency_ms},
              {"last_error", status.last_error.empty() ? json(nullptr) : json(status.last_error)},
              {"last_refresh_at", Time(status.last_refresh_at)},
              {"offers_count", status.offers_count},
              {"stale", status.stale}};
}

}  // namespace

void ApiRouter::Providers(Responder respond) {
  json list = json::array();
  if (catalog_ != nullptr) {
    for (const auto& status : catalog_->Statuses()) {
      list.push_back(StatusJson(status));
    }
  }
  respond(JsonResponse(200, json{{"providers", list}}));
}

void ApiRouter::ProviderStatus(const std::string& provider, Responder respond) {
  if (catalog_ == nullptr) {
    return respond(ErrorResponse(NotFound("provider " + provider)));
  }
  auto status = catalog_->Status(provider);
  if (!status) {
    return respond(ErrorResponse(NotFound("provider " + provider)));
  }
  respond(JsonResponse(200, StatusJson(*status)));
}

void ApiRouter::ProviderPricing(const std::string& provider, Responder respond) {
  if (catalog_ == nullptr || !catalog_->Status(provider)) {
    return respond(ErrorResponse(NotFound("provider " + provider)));
  }
  json offers = json::array();
  for (const auto& offer : catalog_->OffersOf(provider)) {
    offers.push_back(OfferJson(offer));
  }
  respond(JsonResponse(200, json{{"provider", provider}, {"offers", offers}}));
}

void ApiRouter::Costs(const Principal& caller, Responder respond) {
  workers_->Post([this, caller, respond = std::move(respond)] {
    lifecycle::CostSummary costs;
    if (instances_ != nullptr) {
      costs = instances_->Costs();
    }
    if (!caller.IsAdmin()) {
      // A user's view: their own usage only.
      const double own = costs.by_user.count(caller.name) ? costs.by_user.at(caller.name) : 0;
      json by_user = json::object();
      by_user[caller.name] = Round(own);
      return respond(JsonResponse(200, json{{"total_usd", Round(own)},
                                            {"by_user", by_user}}));
    }
    json by_provider = json::object();
    for (const auto& [name, usd] : costs.by_provider) {
      by_provider[name] = Round(usd);
    }
    json by_user = json::object();
    for (const auto& [name, usd] : costs.by_user) {
      by_user[name] = Round(usd);
    }
    respond(JsonResponse(200, json{{"total_usd", Round(costs.total_usd)},
                                   {"idle_usd", Round(costs.idle_usd)},
                                   {"by_provider", by_provider},
                                   {"by_user", by_user}}));
  });
}

void ApiRouter::DryRun(const domain::JobSpec& spec, Responder respond) {
  if (instances_ == nullptr) {
    return respond(JsonResponse(
        200, json{{"dry_run", true}, {"offers", json::array()},
                  {"explanation", "no cloud provider is configured"},
                  {"estimated_cost_usd", nullptr}}));
  }
  auto decision = instances_->DryRun(spec);
  if (!decision) {
    return respond(ErrorResponse(decision.error()));
  }
  json offers = json::array();
  for (const auto& ranked : decision->ranked) {
    json j = RankedJson(ranked);
    j["estimated_cost_usd"] = Round(optimizer::EstimateCostUsd(ranked, spec.timeout_seconds), 1e-4);
    offers.push_back(std::move(j));
  }
  respond(JsonResponse(
      200, json{{"dry_run", true},
                {"runtime_bound_seconds", spec.timeout_seconds},
                {"considered", decision->considered},
                {"feasible", decision->feasible},
                {"offers", offers},
                {"explanation", decision->explanation},
                {"estimated_cost_usd",
                 decision->ranked.empty()
                     ? json(nullptr)
                     : json(Round(optimizer::EstimateCostUsd(decision->ranked.front(),
                                                             spec.timeout_seconds),
                                  1e-4))}}));
}

void ApiRouter::AddCloudInfo(const domain::Job& job, nlohmann::json& out) const {
  if (instances_ == nullptr) {
    return;
  }
  double cost = 0;
  // A job that never started has no usage: spare the read.
  if (job.attempt > 0) {
    if (auto usage = store_.ListUsage({.job_id = job.id})) {
      const core::SystemTime now = clock_.Now();
      for (const auto& record : *usage) {
        cost += store::UsageCostUsd(record, now);
      }
    }
  }
  out["cost_usd"] = Round(cost);
  if (job.state == domain::JobState::kQueued) {
    if (auto info = instances_->ForJob(job.id)) {
      out["provisioning"] = json{
          {"instance_id", info->instance_id.empty() ? json(nullptr) : json(info->instance_id)},
          {"explanation", info->explanation}};
    }
  }
}

}  // namespace gpuorch::api
