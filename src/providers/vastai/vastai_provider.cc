#include "providers/vastai/vastai_provider.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/log.h"
#include "domain/gpu.h"
#include "providers/internal/json_fields.h"

namespace gpuorch::providers {
namespace {

using internal::ContainsAny;
using internal::Lower;
using internal::Num;
using internal::Str;

using json = nlohmann::json;

constexpr size_t kMaxReplyBytes = 32u << 20;
constexpr int kSearchLimit = 256;
constexpr int kAllocatedStorageGb = 50;  // what dph_total in the search includes
// Started by the image at boot (runtype "ssh" runs `onstart`): the node agent, when the image has
// it.
constexpr std::string_view kOnStart =
    "if command -v gpuorch >/dev/null 2>&1; then nohup gpuorch agent >>/var/log/gpuorch-agent.log "
    "2>&1 & fi";


bool Bool(const json& object, const char* key) {
  if (!object.is_object()) {
    return false;
  }
  auto it = object.find(key);
  if (it == object.end()) {
    return false;
  }
  return it->is_boolean() ? it->get<bool>() : (it->is_number() && it->get<double>() != 0);
}

// Vast ids are integers on the wire; some answers quote them.
std::string IdOf(const json& object, const char* key) {
  if (!object.is_object()) {
    return "";
  }
  auto it = object.find(key);
  if (it == object.end()) {
    return "";
  }
  if (it->is_number_integer()) {
    return std::to_string(it->get<int64_t>());
  }
  return it->is_string() ? it->get<std::string>() : "";
}

bool IsNumericId(const std::string& id) {
  return !id.empty() && id.size() <= 20 &&
         std::all_of(id.begin(), id.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

std::string Trim(std::string text) {
  const auto space = [](unsigned char c) { return std::isspace(c) != 0; };
  text.erase(text.begin(), std::find_if_not(text.begin(), text.end(), space));
  text.erase(std::find_if_not(text.rbegin(), text.rend(), space).base(), text.end());
  return text;
}


// Vast reports memory in MB (vastai.md §2.2).
double GbOfMb(double mb) { return std::round(mb / 1024.0); }

// Error bodies are {"success": false, "error": "<code>", "msg": "<text>"} (sometimes only msg,
// message or detail; 429 bodies are often plain text). The words decide before the status does,
// because Vast answers "no such ask" with 404 or 410 and odd codes with 403 (vastai.md §3, §7).
ProviderCause Classify(int status, const std::string& error, const std::string& msg) {
  const std::string text = Lower(error + " " + msg);
  if (status == 429 || ContainsAny(text, {"too frequent", "rate limit"})) {
    return ProviderCause::kRateLimited;
  }
  if (status >= 500) {
    return ProviderCause::kTransient;
  }
  if (ContainsAny(text, {"no_such_ask", "not available", "no longer available", "unavailable"})) {
    return ProviderCause::kNoCapacity;
  }
  if (ContainsAny(text, {"insufficient", "credit", "balance", "quota", "limit"})) {
    return ProviderCause::kQuota;
  }
  if (status == 401 || status == 403 || ContainsAny(text, {"auth_error", "invalid user key"})) {
    return ProviderCause::kAuth;
  }
  return ProviderCause::kBadRequest;
}

// A bid instance stopped without our asking was outbid (vastai.md §6): we never stop instances.
ProviderInstanceStatus InstanceStatus(const json& instance, bool spot) {
  const std::string actual = Str(instance, "actual_status");
  const std::string intended = Str(instance, "intended_status");
  const std::string cur = Str(instance, "cur_state");
  if (cur == "unloaded") {
    return ProviderInstanceStatus::kTerminated;
  }
  if (actual == "stopped" || cur == "stopped" || intended == "stopped") {
    return spot ? ProviderInstanceStatus::kInterrupted : ProviderInstanceStatus::kStopped;
  }
  if (actual.empty() || actual == "loading" || actual == "created" || actual == "rebooting") {
    return ProviderInstanceStatus::kPending;
  }
  if (actual == "running") {
    return ProviderInstanceStatus::kRunning;
  }
  if (actual == "exited" || actual == "frozen") {
    return ProviderInstanceStatus::kStopped;
  }
  return ProviderInstanceStatus::kUnknown;  // "unknown", "offline": no recent heartbeat
}

template <typename F>
auto Parsing(std::string_view what, F&& parse) -> decltype(parse()) {
  try {
    return parse();
  } catch (const json::exception&) {
    return core::Fail(ProviderError(ProviderCause::kTransient,
                                    "vastai: " + std::string(what) + ": malformed answer"));
  }
}

class VastAiProvider final : public Provider {
 public:
  VastAiProvider(VastAiOptions options, std::shared_ptr<HttpClient> http, const core::Clock& clock)
      : options_(std::move(options)), http_(std::move(http)), clock_(clock) {
    while (!options_.api_url.empty() && options_.api_url.back() == '/') {
      options_.api_url.pop_back();
    }
  }

  std::string_view Name() const override { return "vastai"; }
  bool Configured() const override { return !options_.api_key.empty() && http_ != nullptr; }

  core::Result<std::vector<domain::Offer>> ListOffers() override;
  core::Result<ProviderInstance> Create(const CreateInstanceRequest& request) override;
  core::Result<ProviderInstance> Describe(const std::string& provider_instance_id) override;
  core::Result<std::vector<ProviderInstance>> ListOurs() override;
  core::Status Terminate(const std::string& provider_instance_id) override;
  core::Status Health() override;

 private:
  struct Reply {
    int status = 0;
    json body;  // the parsed object, or null (missing_ok and the target is gone)
  };
  // Sends one request; its parsed JSON object, or the error mapped to its cause. With `missing_ok`,
  // 404 / "not_found" / "no_such_instance" yield a null body instead of an error.
  core::Result<Reply> Send(std::string_view what, const std::string& method,
                           const std::string& path, const json* body, bool idempotent,
                           bool missing_ok = false) const;
  domain::Offer OfferOf(const json& ask) const;
  ProviderInstance InstanceOf(const json& instance) const;
  std::string OurPrefix() const { return "gpuorch:" + options_.deployment_id + ":"; }
  // Our instance id from a label of this deployment; "" when the label is not ours.
  std::string OurInstanceId(const std::string& label) const;

  VastAiOptions options_;
  const std::shared_ptr<HttpClient> http_;
  [[maybe_unused]] const core::Clock& clock_;
};

core::Result<VastAiProvider::Reply> VastAiProvider::Send(std::string_view what,
                                                         const std::string& method,
                                                         const std::string& path, const json* body,
                                                         bool idempotent, bool missing_ok) const {
  const std::string context = "vastai: " + std::string(what) + ": ";
  HttpCall call;
  call.method = method;
  call.url = options_.api_url + path;
  call.headers = {{"Accept", "application/json"}, {"Authorization", "Bearer " + options_.api_key}};
  if (body != nullptr) {
    call.headers.emplace_back("Content-Type", "application/json");
    call.body = body->dump(-1, ' ', false, json::error_handler_t::replace);
  }
  call.idempotent = idempotent;
  call.timeout = options_.request_timeout;
  auto reply = http_->Send(call);
  if (!reply) {
    return core::Fail(ProviderError(ProviderCause::kTransient, context + reply.error().message));
  }
  const int status = reply->status;
  const std::string http_status = "HTTP " + std::to_string(status);
  json parsed = reply->body.size() > kMaxReplyBytes ? json(json::value_t::discarded)
                                                    : json::parse(reply->body, nullptr, false);
  const bool object = !parsed.is_discarded() && parsed.is_object();
  const std::string error = object ? Str(parsed, "error") : "";
  std::string msg = object ? Str(parsed, "msg") : "";
  if (msg.empty() && object) {
    msg = Str(parsed, "message").empty() ? Str(parsed, "detail") : Str(parsed, "message");
  }
  if (missing_ok && (status == 404 || error == "not_found" || error == "no_such_instance")) {
    return Reply{status, json()};
  }
  const bool ok_status = status >= 200 && status < 300;
  if (ok_status && !object) {
    return core::Fail(ProviderError(ProviderCause::kTransient,
                                    context + "malformed answer (" + http_status + ")"));
  }
  if (!ok_status || (object && parsed.contains("success") && !Bool(parsed, "success"))) {
    if (status < 200) {
      return core::Fail(ProviderError(ProviderCause::kTransient, context + http_status));
    }
    if (!object && status < 500) {
      msg = reply->body.substr(0, 200);  // plain-text 4xx ("API requests too frequent")
    }
    std::string detail = http_status;
    if (!error.empty() || !msg.empty()) {
      detail += ": " + core::SanitizeForLog(error.empty() ? msg : error + ": " + msg, 300);
    }
    const ProviderCause cause = Classify(status, error, msg);
    if (cause == ProviderCause::kAuth) {
      detail = "API key rejected (" + http_status + ")";
    }
    core::Error failure = ProviderError(cause, context + detail);
    // A refused bid may still have made a (stopped) contract: end it, so nothing bills.
    if (object && what == "create" && !IdOf(parsed, "new_contract").empty()) {
      const std::string orphan = IdOf(parsed, "new_contract");
      if (IsNumericId(orphan)) {
        const json empty = json::object();
        (void)Send("destroy refused contract", "DELETE", "/instances/" + orphan + "/", &empty, true,
                   true);
      }
    }
    return core::Fail(std::move(failure));
  }
  return Reply{status, std::move(parsed)};
}

domain::Offer VastAiProvider::OfferOf(const json& ask) const {
  domain::Offer offer;
  offer.provider = "vastai";
  offer.offer_id = IdOf(ask, "id");
  const std::string gpu_name = Str(ask, "gpu_name");
  offer.gpu_count = static_cast<int>(Num(ask, "num_gpus"));
  offer.instance_type = std::to_string(offer.gpu_count) + "x " + gpu_name;
  offer.gpu_type = domain::CanonicalGpuModel(gpu_name);
  offer.gpu_memory_gb = GbOfMb(Num(ask, "gpu_ram"));
  offer.on_demand_price = Num(ask, "dph_total");
  if (const double bid = Num(ask, "min_bid"); bid > 0) {
    offer.spot_price = bid;
  }
  offer.region = Str(ask, "geolocation");
  const double reliability =
      ask.contains("reliability2") ? Num(ask, "reliability2") : Num(ask, "reliability");
  offer.reliability = std::clamp(reliability, 0.0, 1.0);
  const bool rentable = !ask.contains("rentable") || Bool(ask, "rentable");
  offer.available = rentable && !Bool(ask, "rented") ? 1 : 0;
  const double cores =
      ask.contains("cpu_cores_effective") ? Num(ask, "cpu_cores_effective") : Num(ask, "cpu_cores");
  offer.cpu_count = static_cast<int>(cores);
  offer.ram_gb = GbOfMb(Num(ask, "cpu_ram"));
  return offer;
}

std::string VastAiProvider::OurInstanceId(const std::string& label) const {
  if (!label.starts_with(OurPrefix())) {
    return "";
  }
  std::string id = label.substr(OurPrefix().size());
  // A deployment id that extends ours ("a" vs "a:b") leaves a ':' in the rest.
  return id.find(':') == std::string::npos ? id : "";
}

ProviderInstance VastAiProvider::InstanceOf(const json& instance) const {
  ProviderInstance out;
  out.provider_instance_id = IdOf(instance, "id");
  const std::string label = Str(instance, "label");
  if (std::string ours = OurInstanceId(label); !ours.empty()) {
    out.tags = OwnerTags{options_.deployment_id, std::move(ours)};
  } else if (label.starts_with("gpuorch:")) {
    const size_t colon = label.find(':', 8);
    if (colon != std::string::npos) {
      out.tags = OwnerTags{label.substr(8, colon - 8), label.substr(colon + 1)};
    }
  }
  out.spot = Bool(instance, "is_bid");
  out.status = InstanceStatus(instance, out.spot);
  const std::string actual = Str(instance, "actual_status");
  out.status_detail = (actual.empty() ? "provisioning" : actual);
  if (const std::string intended = Str(instance, "intended_status");
      !intended.empty() && intended != actual) {
    out.status_detail += " (intended " + intended + ")";
  }
  out.gpu_type = domain::CanonicalGpuModel(Str(instance, "gpu_name"));
  out.gpu_count = static_cast<int>(Num(instance, "num_gpus"));
  out.price_per_hour = Num(instance, "dph_total");
  out.region = Str(instance, "geolocation");
  out.public_ip = Trim(Str(instance, "public_ipaddr"));
  return out;
}

core::Result<std::vector<domain::Offer>> VastAiProvider::ListOffers() {
  const json query = {
      {"verified", {{"eq", true}}}, {"rentable", {{"eq", true}}},
      {"rented", {{"eq", false}}},  {"external", {{"eq", false}}},
      {"type", "on-demand"},        {"order", json::array({json::array({"dph_total", "asc"})})},
      {"limit", kSearchLimit},      {"allocated_storage", kAllocatedStorageGb}};
  GPUORCH_ASSIGN_OR_RETURN(Reply reply, Send("offers", "POST", "/bundles/", &query, true));
  return Parsing("offers", [&]() -> core::Result<std::vector<domain::Offer>> {
    if (!reply.body.contains("offers") || !reply.body["offers"].is_array()) {
      return core::Fail(
          ProviderError(ProviderCause::kTransient, "vastai: offers: malformed answer (no offers)"));
    }
    std::vector<domain::Offer> offers;
    for (const auto& ask : reply.body["offers"]) {
      if (!ask.is_object()) {
        continue;
      }
      domain::Offer offer = OfferOf(ask);
      if (!offer.offer_id.empty() && offer.gpu_count > 0 && offer.on_demand_price > 0) {
        offers.push_back(std::move(offer));
      }
    }
    return offers;
  });
}

core::Result<ProviderInstance> VastAiProvider::Create(const CreateInstanceRequest& request) {
  const std::string& ask_id = request.offer.offer_id;
  if (!IsNumericId(ask_id)) {
    return core::Fail(
        ProviderError(ProviderCause::kBadRequest, "vastai: create: offer id is not an ask id"));
  }
  const std::string deployment =
      request.tags.deployment_id.empty() ? options_.deployment_id : request.tags.deployment_id;
  if (request.tags.instance_id.empty() || deployment != options_.deployment_id ||
      request.tags.instance_id.find(':') != std::string::npos) {
    return core::Fail(ProviderError(
        ProviderCause::kBadRequest,
        "vastai: create: the request must carry our instance id and this deployment's id"));
  }
  json env = json::object();
  for (const auto& [key, value] : request.env) {
    env[key] = value;
  }
  env["GPUORCH_INSTANCE_ID"] = request.tags.instance_id;
  env["GPUORCH_DEPLOYMENT_ID"] = deployment;
  json body = {{"client_id", "me"},
               {"image", request.image.empty() ? options_.default_image : request.image},
               {"disk", request.disk_gb},
               {"label", OurPrefix() + request.tags.instance_id},
               {"env", env},
               {"onstart", kOnStart},
               {"runtype", "ssh"},
               {"cancel_unavail", true}};
  double price = request.offer.on_demand_price;
  if (request.spot) {
    if (request.max_price_per_hour > 0) {
      price = request.max_price_per_hour;
    } else if (request.offer.spot_price && *request.offer.spot_price > 0) {
      price = *request.offer.spot_price;
    } else {
      return core::Fail(ProviderError(ProviderCause::kBadRequest,
                                      "vastai: create: spot requested but the offer has no "
                                      "min_bid and no maximum price was given"));
    }
    body["price"] = price;
  }
  GPUORCH_ASSIGN_OR_RETURN(Reply reply,
                           Send("create", "PUT", "/asks/" + ask_id + "/", &body, false));
  const std::string contract = IdOf(reply.body, "new_contract");
  if (contract.empty()) {
    return core::Fail(ProviderError(ProviderCause::kTransient,
                                    "vastai: create: malformed answer (no new_contract)"));
  }
  ProviderInstance instance;
  instance.provider_instance_id = contract;
  instance.tags = OwnerTags{deployment, request.tags.instance_id};
  instance.status = ProviderInstanceStatus::kPending;
  instance.status_detail = "provisioning";
  instance.offer_id = ask_id;
  instance.gpu_type = request.offer.gpu_type;
  instance.gpu_count = request.offer.gpu_count;
  instance.price_per_hour = price;
  instance.spot = request.spot;
  instance.region = request.offer.region;
  return instance;
}

core::Result<ProviderInstance> VastAiProvider::Describe(const std::string& provider_instance_id) {
  if (!IsNumericId(provider_instance_id)) {
    return core::Fail(core::Code::kNotFound,
                      "vastai: describe: no instance " + core::SanitizeForLog(provider_instance_id),
                      "", "not_found");
  }
  GPUORCH_ASSIGN_OR_RETURN(
      Reply reply, Send("describe", "GET", "/instances/" + provider_instance_id + "/?owner=me",
                        nullptr, true, true));
  // {"instances": {...}}: a plural key holding one object, or null once it is gone (§4).
  if (!reply.body.is_object() || !reply.body.contains("instances") ||
      !reply.body["instances"].is_object()) {
    return core::Fail(core::Code::kNotFound,
                      "vastai: describe: no instance " + provider_instance_id, "", "not_found");
  }
  return Parsing("describe", [&]() -> core::Result<ProviderInstance> {
    ProviderInstance instance = InstanceOf(reply.body["instances"]);
    if (instance.status == ProviderInstanceStatus::kTerminated) {
      return core::Fail(core::Code::kNotFound,
                        "vastai: describe: instance " + provider_instance_id + " was destroyed", "",
                        "not_found");
    }
    return instance;
  });
}

core::Result<std::vector<ProviderInstance>> VastAiProvider::ListOurs() {
  GPUORCH_ASSIGN_OR_RETURN(Reply reply, Send("list", "GET", "/instances/?owner=me", nullptr, true));
  return Parsing("list", [&]() -> core::Result<std::vector<ProviderInstance>> {
    if (!reply.body.contains("instances") || !reply.body["instances"].is_array()) {
      return core::Fail(ProviderError(ProviderCause::kTransient,
                                      "vastai: list: malformed answer (no instances)"));
    }
    std::vector<ProviderInstance> ours;
    for (const auto& instance : reply.body["instances"]) {
      if (!instance.is_object() || OurInstanceId(Str(instance, "label")).empty()) {
        continue;
      }
      ProviderInstance parsed = InstanceOf(instance);
      if (parsed.status != ProviderInstanceStatus::kTerminated) {
        ours.push_back(std::move(parsed));
      }
    }
    return ours;
  });
}

core::Status VastAiProvider::Terminate(const std::string& provider_instance_id) {
  if (!IsNumericId(provider_instance_id)) {
    return core::Fail(core::Code::kInvalidArgument, "vastai: terminate: not an instance id: " +
                                                        core::SanitizeForLog(provider_instance_id));
  }
  // Unknown or already destroyed: 404 "not_found" / "no_such_instance" (§5), which is success.
  const json empty = json::object();
  GPUORCH_TRY(
      Send("terminate", "DELETE", "/instances/" + provider_instance_id + "/", &empty, true, true));
  return core::Ok();
}

core::Status VastAiProvider::Health() {
  GPUORCH_ASSIGN_OR_RETURN(Reply reply,
                           Send("health", "GET", "/instances/?owner=me", nullptr, true));
  if (!reply.body.is_object()) {
    return core::Fail(ProviderError(ProviderCause::kTransient, "vastai: health: malformed answer"));
  }
  return core::Ok();
}

}  // namespace

std::unique_ptr<Provider> MakeVastAiProvider(VastAiOptions options,
                                             std::shared_ptr<HttpClient> http,
                                             const core::Clock& clock) {
  return std::make_unique<VastAiProvider>(std::move(options), std::move(http), clock);
}

}  // namespace gpuorch::providers
