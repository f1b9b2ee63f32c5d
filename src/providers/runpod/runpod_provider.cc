#include "providers/runpod/runpod_provider.h"

#include <algorithm>
#include <cctype>
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
constexpr int kGpuCounts[] = {1, 2, 4, 8};

// The pod fields every pod-returning operation selects (runpod.md §3.4).
constexpr std::string_view kPodFields =
    "id name desiredStatus costPerHr gpuCount imageName podType env machine { gpuDisplayName } "
    "runtime { uptimeInSeconds ports { ip isIpPublic privatePort publicPort type } }";

bool Bool(const json& object, const char* key) {
  if (!object.is_object()) {
    return false;
  }
  auto it = object.find(key);
  return it != object.end() && it->is_boolean() && it->get<bool>();
}

// Runs `parse` (which reads a reply already known to be JSON); a reply of an unexpected shape that
// slipped past the checks is a malformed answer, not a crash.
template <typename F>
auto Parsing(std::string_view what, F&& parse) -> decltype(parse()) {
  try {
    return parse();
  } catch (const json::exception&) {
    return core::Fail(ProviderError(ProviderCause::kTransient,
                                    "runpod: " + std::string(what) + ": malformed answer"));
  }
}



// stockStatus → how many pods of the type we expect to be creatable now; a coarse estimate since
// RunPod publishes levels, not counts.
int StockLevel(const std::string& status) {
  const std::string lower = Lower(status);
  if (lower == "high") {
    return 8;
  }
  if (lower == "medium") {
    return 4;
  }
  if (lower == "low") {
    return 1;
  }
  return 0;  // null or "None": out of stock
}

ProviderCause ClassifyMessage(const std::string& message, const std::string& code) {
  const std::string text = Lower(message + " " + code);
  if (ContainsAny(text, {"no longer any instances", "not enough free gpus",
                         "no instances available", "no gpus available", "out of stock"})) {
    return ProviderCause::kNoCapacity;
  }
  if (ContainsAny(text, {"rate limit", "too many requests"})) {
    return ProviderCause::kRateLimited;
  }
  if (ContainsAny(text, {"balance", "insufficient funds", "not enough funds", "credit", "quota",
                         "spend limit", "limit reached", "maximum number"})) {
    return ProviderCause::kQuota;
  }
  if (ContainsAny(text,
                  {"unauthorized", "unauthenticated", "forbidden", "api key", "permission"})) {
    return ProviderCause::kAuth;
  }
  if (ContainsAny(text, {"internal_server_error", "internal server error", "something went wrong",
                         "temporarily", "timed out"})) {
    return ProviderCause::kTransient;
  }
  return ProviderCause::kBadRequest;  // validation errors and everything RunPod
                                      // refuses as asked
}

std::map<std::string, std::string> EnvOf(const json& pod) {
  std::map<std::string, std::string> env;
  auto it = pod.find("env");
  if (it == pod.end()) {
    return env;
  }
  if (it->is_array()) {  // ["K=V", ...] (and tolerate [{key, value}])
    for (const auto& entry : *it) {
      if (entry.is_string()) {
        const std::string kv = entry.get<std::string>();
        const size_t eq = kv.find('=');
        if (eq != std::string::npos) {
          env[kv.substr(0, eq)] = kv.substr(eq + 1);
        }
      } else if (entry.is_object()) {
        env[Str(entry, "key")] = Str(entry, "value");
      }
    }
  } else if (it->is_object()) {
    for (const auto& [key, value] : it->items()) {
      if (value.is_string()) {
        env[key] = value.get<std::string>();
      }
    }
  }
  return env;
}

// We never stop pods ourselves, so a stopped spot pod was interrupted by RunPod (runpod.md §3.3:
// EXITED with runtime null; the exact transition is unconfirmed).
ProviderInstanceStatus PodStatus(const std::string& desired, bool has_runtime, bool spot) {
  if (desired == "RUNNING") {
    return has_runtime ? ProviderInstanceStatus::kRunning : ProviderInstanceStatus::kPending;
  }
  if (desired == "CREATED" || desired == "RESTARTING") {
    return ProviderInstanceStatus::kPending;
  }
  if (desired == "EXITED" || desired == "PAUSED") {
    return spot ? ProviderInstanceStatus::kInterrupted : ProviderInstanceStatus::kStopped;
  }
  if (desired == "TERMINATED") {
    return ProviderInstanceStatus::kTerminated;
  }
  return ProviderInstanceStatus::kUnknown;
}

class RunPodProvider final : public Provider {
 public:
  RunPodProvider(RunPodOptions options, std::shared_ptr<HttpClient> http, const core::Clock& clock)
      : options_(std::move(options)), http_(std::move(http)), clock_(clock) {}

  std::string_view Name() const override { return "runpod"; }
  bool Configured() const override { return !options_.api_key.empty() && http_ != nullptr; }

  core::Result<std::vector<domain::Offer>> ListOffers() override;
  core::Result<ProviderInstance> Create(const CreateInstanceRequest& request) override;
  core::Result<ProviderInstance> Describe(const std::string& provider_instance_id) override;
  core::Result<std::vector<ProviderInstance>> ListOurs() override;
  core::Status Terminate(const std::string& provider_instance_id) override;
  core::Status Health() override;

 private:
  // Sends one GraphQL operation; its `data` object, or the error mapped to its cause. With
  // `missing_ok`, an error saying the target was not found yields a null `data` instead.
  core::Result<json> Call(std::string_view what, const std::string& query, const json& variables,
                          bool idempotent, bool missing_ok = false) const;
  core::Result<json> ParseReply(std::string_view what, const HttpReply& reply,
                                bool missing_ok) const;
  std::vector<domain::Offer> OffersOf(const json& gpu_type) const;
  ProviderInstance InstanceOf(const json& pod) const;
  std::string OurPrefix() const { return "gpuorch-" + options_.deployment_id + "-"; }
  bool IsOurs(const json& pod) const;

  const RunPodOptions options_;
  const std::shared_ptr<HttpClient> http_;
  [[maybe_unused]] const core::Clock& clock_;
};

core::Result<json> RunPodProvider::Call(std::string_view what, const std::string& query,
                                        const json& variables, bool idempotent,
                                        bool missing_ok) const {
  json body = {{"query", query}};
  if (!variables.is_null()) {
    body["variables"] = variables;
  }
  HttpCall call;
  call.method = "POST";
  call.url = options_.api_url;
  call.headers = {{"Content-Type", "application/json"},
                  {"Accept", "application/json"},
                  {"Authorization", "Bearer " + options_.api_key}};
  call.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  call.idempotent = idempotent;
  call.timeout = options_.request_timeout;
  auto reply = http_->Send(call);
  if (!reply) {
    return core::Fail(ProviderError(ProviderCause::kTransient,
                                    "runpod: " + std::string(what) + ": " + reply.error().message));
  }
  return ParseReply(what, *reply, missing_ok);
}

core::Result<json> RunPodProvider::ParseReply(std::string_view what, const HttpReply& reply,
                                              bool missing_ok) const {
  const std::string context = "runpod: " + std::string(what) + ": ";
  const std::string http_status = "HTTP " + std::to_string(reply.status);
  if (reply.status == 401 || reply.status == 403) {
    return core::Fail(
        ProviderError(ProviderCause::kAuth, context + "API key rejected (" + http_status + ")"));
  }
  if (reply.status == 429) {
    return core::Fail(
        ProviderError(ProviderCause::kRateLimited, context + "rate limited (" + http_status + ")"));
  }
  if (reply.status >= 500 || reply.status < 200) {
    return core::Fail(ProviderError(ProviderCause::kTransient, context + http_status));
  }
  const bool ok_status = reply.status < 300;
  json parsed = reply.body.size() > kMaxReplyBytes ? json(json::value_t::discarded)
                                                   : json::parse(reply.body, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return core::Fail(ProviderError(
        ok_status ? ProviderCause::kTransient : ProviderCause::kBadRequest,
        context + (ok_status ? "malformed answer (" + http_status + ")" : http_status)));
  }
  // Business errors come back as HTTP 200 with an `errors` array (runpod.md §2.1).
  auto errors = parsed.find("errors");
  if (errors != parsed.end() && errors->is_array() && !errors->empty()) {
    const json& first = (*errors)[0];
    const std::string message = Str(first, "message");
    std::string code;
    if (first.is_object() && first.contains("extensions")) {
      code = Str(first["extensions"], "code");
    }
    if (missing_ok && Lower(message).find("not found") != std::string::npos) {
      return json();
    }
    return core::Fail(ProviderError(ClassifyMessage(message, code),
                                    context + core::SanitizeForLog(message, 300)));
  }
  if (!ok_status) {
    return core::Fail(ProviderError(ProviderCause::kBadRequest, context + http_status));
  }
  auto data = parsed.find("data");
  if (data == parsed.end() || !data->is_object()) {
    return core::Fail(
        ProviderError(ProviderCause::kTransient, context + "malformed answer (no data)"));
  }
  return *data;
}

std::vector<domain::Offer> RunPodProvider::OffersOf(const json& gpu_type) const {
  std::vector<domain::Offer> offers;
  const std::string id = Str(gpu_type, "id");
  const std::string display = Str(gpu_type, "displayName");
  const json& lowest = gpu_type.contains("lowestPrice") ? gpu_type["lowestPrice"] : json();
  if (id.empty() || !lowest.is_object()) {
    return offers;
  }
  const double on_demand = Num(lowest, "uninterruptablePrice");
  const double bid = Num(lowest, "minimumBidPrice");
  if (on_demand <= 0 && bid <= 0) {
    return offers;
  }
  const int available = StockLevel(Str(lowest, "stockStatus"));
  const int max_count = std::max(1, static_cast<int>(Num(gpu_type, "maxGpuCount")));
  for (int count : kGpuCounts) {
    if (count > max_count) {
      break;
    }
    domain::Offer offer;
    offer.provider = "runpod";
    offer.offer_id = id + "|" + std::to_string(count);
    offer.instance_type = std::to_string(count) + "x " + (display.empty() ? id : display);
    offer.gpu_type = domain::CanonicalGpuModel(id);
    offer.gpu_count = count;
    offer.gpu_memory_gb = Num(gpu_type, "memoryInGb");
    offer.on_demand_price = on_demand > 0 ? on_demand * count : 0;
    if (bid > 0) {
      offer.spot_price = bid * count;
    }
    offer.available = available;
    offer.cpu_count = static_cast<int>(Num(lowest, "minVcpu")) * count;
    offer.ram_gb = Num(lowest, "minMemory") * count;
    offers.push_back(std::move(offer));
  }
  return offers;
}

bool RunPodProvider::IsOurs(const json& pod) const {
  if (!Str(pod, "name").starts_with(OurPrefix())) {
    return false;
  }
  // A longer deployment id can share our prefix ("a" vs "a-b"); the env tells them apart.
  const auto env = EnvOf(pod);
  auto it = env.find("GPUORCH_DEPLOYMENT_ID");
  return it == env.end() || it->second == options_.deployment_id;
}

ProviderInstance RunPodProvider::InstanceOf(const json& pod) const {
  ProviderInstance instance;
  instance.provider_instance_id = Str(pod, "id");
  const auto env = EnvOf(pod);
  if (auto it = env.find("GPUORCH_DEPLOYMENT_ID"); it != env.end()) {
    instance.tags.deployment_id = it->second;
  }
  if (auto it = env.find("GPUORCH_INSTANCE_ID"); it != env.end()) {
    instance.tags.instance_id = it->second;
  }
  const std::string name = Str(pod, "name");
  if (instance.tags.instance_id.empty() && name.starts_with(OurPrefix())) {
    instance.tags.deployment_id = options_.deployment_id;
    instance.tags.instance_id = name.substr(OurPrefix().size());
  }
  instance.spot = Lower(Str(pod, "podType")).find("interrupt") != std::string::npos;
  const json& runtime = pod.contains("runtime") ? pod["runtime"] : json();
  instance.status_detail = Str(pod, "desiredStatus");
  instance.status = PodStatus(instance.status_detail, runtime.is_object(), instance.spot);
  instance.gpu_count = static_cast<int>(Num(pod, "gpuCount"));
  instance.price_per_hour = Num(pod, "costPerHr");
  if (pod.contains("machine")) {
    instance.gpu_type = domain::CanonicalGpuModel(Str(pod["machine"], "gpuDisplayName"));
  }
  if (runtime.is_object() && runtime.contains("ports") && runtime["ports"].is_array()) {
    for (const auto& port : runtime["ports"]) {
      if (Bool(port, "isIpPublic")) {
        instance.public_ip = Str(port, "ip");
        break;
      }
    }
  }
  return instance;
}

core::Result<std::vector<domain::Offer>> RunPodProvider::ListOffers() {
  static const std::string kQuery =
      "query GpuTypes($lowestPriceInput: GpuLowestPriceInput) { gpuTypes { id displayName "
      "memoryInGb maxGpuCount lowestPrice(input: $lowestPriceInput) { minimumBidPrice "
      "uninterruptablePrice stockStatus minVcpu minMemory } } }";
  // Per-GPU prices for one GPU; larger pods cost count × that (how RunPod prices pods).
  json lowest = {{"gpuCount", 1}};
  if (options_.cloud_type == "SECURE") {
    lowest["secureCloud"] = true;
  } else if (options_.cloud_type == "COMMUNITY") {
    lowest["secureCloud"] = false;
  }
  GPUORCH_ASSIGN_OR_RETURN(json data, Call("offers", kQuery, {{"lowestPriceInput", lowest}}, true));
  return Parsing("offers", [&]() -> core::Result<std::vector<domain::Offer>> {
    const json& types = data.contains("gpuTypes") ? data["gpuTypes"] : json();
    if (!types.is_array()) {
      return core::Fail(ProviderError(ProviderCause::kTransient,
                                      "runpod: offers: malformed answer (no gpuTypes)"));
    }
    std::vector<domain::Offer> offers;
    for (const auto& type : types) {
      for (auto& offer : OffersOf(type)) {
        offers.push_back(std::move(offer));
      }
    }
    return offers;
  });
}

core::Result<ProviderInstance> RunPodProvider::Create(const CreateInstanceRequest& request) {
  const std::string& offer_id = request.offer.offer_id;
  const size_t bar = offer_id.rfind('|');
  int count = 0;
  if (bar != std::string::npos && bar > 0) {
    try {
      count = std::stoi(offer_id.substr(bar + 1));
    } catch (const std::exception&) {
      count = 0;
    }
  }
  if (count < 1) {
    return core::Fail(ProviderError(ProviderCause::kBadRequest,
                                    "runpod: create: offer id is not \"<gpuTypeId>|<count>\""));
  }
  const std::string deployment =
      request.tags.deployment_id.empty() ? options_.deployment_id : request.tags.deployment_id;
  if (request.tags.instance_id.empty() || deployment != options_.deployment_id) {
    return core::Fail(ProviderError(ProviderCause::kBadRequest,
                                    "runpod: create: the request must carry our instance id "
                                    "and this deployment's id"));
  }
  json env = json::array();
  std::map<std::string, std::string> vars = request.env;
  vars["GPUORCH_INSTANCE_ID"] = request.tags.instance_id;
  vars["GPUORCH_DEPLOYMENT_ID"] = deployment;
  for (const auto& [key, value] : vars) {
    env.push_back({{"key", key}, {"value", value}});
  }
  json input = {{"name", OurPrefix() + request.tags.instance_id},
                {"imageName", request.image.empty() ? options_.default_image : request.image},
                {"gpuTypeId", offer_id.substr(0, bar)},
                {"gpuCount", count},
                {"cloudType", options_.cloud_type},
                {"containerDiskInGb", request.disk_gb},
                {"volumeInGb", 0},
                {"volumeMountPath", "/workspace"},
                {"env", env}};
  std::string field = "podFindAndDeployOnDemand";
  std::string query = "mutation Deploy($input: PodFindAndDeployOnDemandInput!) { ";
  if (request.spot) {
    double bid = 0;
    if (request.max_price_per_hour > 0) {
      bid = request.max_price_per_hour / count;
    } else if (request.offer.spot_price && *request.offer.spot_price > 0) {
      bid = *request.offer.spot_price / count;
    } else {
      return core::Fail(ProviderError(ProviderCause::kBadRequest,
                                      "runpod: create: spot requested but the offer has no spot "
                                      "price and no maximum price was given"));
    }
    input["bidPerGpu"] = bid;
    field = "podRentInterruptable";
    query = "mutation Rent($input: PodRentInterruptableInput!) { ";
  }
  query += field + "(input: $input) { " + std::string(kPodFields) + " } }";
  GPUORCH_ASSIGN_OR_RETURN(json data, Call("create", query, {{"input", input}}, false));
  return Parsing("create", [&]() -> core::Result<ProviderInstance> {
    const json& pod = data.contains(field) ? data[field] : json();
    if (!pod.is_object() || Str(pod, "id").empty()) {
      return core::Fail(
          ProviderError(ProviderCause::kTransient, "runpod: create: malformed answer (no pod id)"));
    }
    ProviderInstance instance = InstanceOf(pod);
    instance.tags = OwnerTags{deployment, request.tags.instance_id};
    instance.offer_id = offer_id;
    instance.gpu_type = request.offer.gpu_type.empty()
                            ? domain::CanonicalGpuModel(offer_id.substr(0, bar))
                                                       : request.offer.gpu_type;
    instance.gpu_count = count;
    instance.spot = request.spot;
    if (instance.status == ProviderInstanceStatus::kUnknown && instance.status_detail.empty()) {
      instance.status = ProviderInstanceStatus::kPending;
    }
    if (instance.price_per_hour <= 0) {
      instance.price_per_hour =
          request.spot ? input["bidPerGpu"].get<double>() * count : request.offer.on_demand_price;
    }
    return instance;
  });
}

core::Result<ProviderInstance> RunPodProvider::Describe(const std::string& provider_instance_id) {
  if (provider_instance_id.empty()) {
    return core::Fail(core::Code::kInvalidArgument, "runpod: describe: empty pod id");
  }
  const std::string query =
      "query { pod(input: {podId: " +
      json(provider_instance_id).dump(-1, ' ', false, json::error_handler_t::replace) + "}) { " +
      std::string(kPodFields) + " } }";
  GPUORCH_ASSIGN_OR_RETURN(json data, Call("describe", query, json(), true, true));
  if (!data.is_object() || !data.contains("pod") || !data["pod"].is_object()) {
    return core::Fail(core::Code::kNotFound,
                      "runpod: describe: no pod " + core::SanitizeForLog(provider_instance_id), "",
                      "not_found");
  }
  return Parsing("describe",
                 [&]() -> core::Result<ProviderInstance> { return InstanceOf(data["pod"]); });
}

core::Result<std::vector<ProviderInstance>> RunPodProvider::ListOurs() {
  const std::string query = "query { myself { pods { " + std::string(kPodFields) + " } } }";
  GPUORCH_ASSIGN_OR_RETURN(json data, Call("list", query, json(), true));
  return Parsing("list", [&]() -> core::Result<std::vector<ProviderInstance>> {
    const json& myself = data.contains("myself") ? data["myself"] : json();
    if (!myself.is_object() || !myself.contains("pods") || !myself["pods"].is_array()) {
      return core::Fail(
          ProviderError(ProviderCause::kTransient, "runpod: list: malformed answer (no pods)"));
    }
    std::vector<ProviderInstance> ours;
    for (const auto& pod : myself["pods"]) {
      if (!pod.is_object() || !IsOurs(pod)) {
        continue;
      }
      ProviderInstance instance = InstanceOf(pod);
      if (instance.status != ProviderInstanceStatus::kTerminated) {
        ours.push_back(std::move(instance));
      }
    }
    return ours;
  });
}

core::Status RunPodProvider::Terminate(const std::string& provider_instance_id) {
  if (provider_instance_id.empty()) {
    return core::Fail(core::Code::kInvalidArgument, "runpod: terminate: empty pod id");
  }
  // A pod that is already gone answers "pod not found to terminate" (runpod.md §2.1): success.
  const std::string query =
      "mutation { podTerminate(input: {podId: " +
      json(provider_instance_id).dump(-1, ' ', false, json::error_handler_t::replace) + "}) }";
  GPUORCH_TRY(Call("terminate", query, json(), true, true));
  return core::Ok();
}

core::Status RunPodProvider::Health() {
  GPUORCH_ASSIGN_OR_RETURN(json data, Call("health", "query { myself { id } }", json(), true));
  if (!data.contains("myself") || !data["myself"].is_object()) {
    return core::Fail(ProviderError(ProviderCause::kAuth, "runpod: health: no account"));
  }
  return core::Ok();
}

}  // namespace

std::unique_ptr<Provider> MakeRunPodProvider(RunPodOptions options,
                                             std::shared_ptr<HttpClient> http,
                                             const core::Clock& clock) {
  return std::make_unique<RunPodProvider>(std::move(options), std::move(http), clock);
}

}  // namespace gpuorch::providers
