#include "fakes/fake_runpod.h"

#include <algorithm>
#include <filesystem>
#include <random>
#include <regex>
#include <utility>

#include <nlohmann/json.hpp>

namespace gpuorch::fakes {
namespace {

using json = nlohmann::json;

// RunPod's own words (runpod.md §2.1); the balance text is ours, RunPod's is not on record.
constexpr const char* kNoCapacityMessage =
    "There are no longer any instances available with the requested specifications. Please "
    "refresh and try again.";
constexpr const char* kQuotaMessage =
    "Your account balance is too low to deploy this pod. Please add funds to your account.";
constexpr const char* kNotFoundToTerminate = "pod not found to terminate";

api::HttpResponse JsonResponse(int status, const json& body) {
  api::HttpResponse response;
  response.status = status;
  response.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return response;
}

// A business error: HTTP 200, errors[0].message, data.<field> null.
api::HttpResponse GraphQlError(const std::string& field, const std::string& message) {
  json body = {{"errors", json::array({{{"message", message}, {"path", json::array({field})}}})}};
  body["data"] = field.empty() ? json() : json{{field, nullptr}};
  return JsonResponse(200, body);
}

api::HttpResponse ValidationError(const std::string& message) {
  return JsonResponse(
      400, {{"errors", json::array({{{"message", message},
                                     {"extensions", {{"code", "GRAPHQL_VALIDATION_FAILED"}}}}})}});
}

api::HttpResponse Unauthorized() {
  api::HttpResponse response;
  response.status = 401;
  response.content_type = "text/plain";
  response.body = "Unauthorized";
  return response;
}

std::string Base36(uint64_t value, size_t width) {
  static constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::string out;
  while (out.size() < width) {
    out.insert(out.begin(), kDigits[value % 36]);
    value /= 36;
  }
  return out;
}

// The string literal after `podId:` in an inline-literal query, unescaped.
std::string InlinePodId(const std::string& query) {
  static const std::regex kPodId(R"re(podId\s*:\s*("(?:[^"\\]|\\.)*"))re");
  std::smatch match;
  if (!std::regex_search(query, match, kPodId)) {
    return "";
  }
  json literal = json::parse(match[1].str(), nullptr, false);
  return literal.is_string() ? literal.get<std::string>() : "";
}

std::string StockStatus(std::optional<int> capacity) {
  if (!capacity) {
    return "High";
  }
  if (*capacity >= 8) {
    return "High";
  }
  if (*capacity >= 3) {
    return "Medium";
  }
  return *capacity > 0 ? "Low" : "";
}

}  // namespace

struct FakeRunPod::Call {
  std::string operation;  // the fault operation; "" when the query is not one we serve
  std::string field;      // the GraphQL field answered
  std::string query;
  json input;  // variables.input, for creates
  std::string pod_id;
  bool spot = false;
};

std::vector<FakeRunPodGpuType> FakeRunPod::DefaultCatalog() {
  return {
      {"NVIDIA GeForce RTX 4090", "RTX 4090", "RTX4090", 24, 8, 0.69, 0.35, 6, 41},
      {"NVIDIA GeForce RTX 3090", "RTX 3090", "RTX3090", 24, 8, 0.43, 0.22, 4, 24},
      {"NVIDIA RTX A6000", "RTX A6000", "RTXA6000", 48, 8, 0.76, 0.39, 8, 50},
      {"NVIDIA L40S", "L40S", "L40S", 48, 8, 0.86, 0.53, 12, 62},
      {"NVIDIA A100 80GB PCIe", "A100 80GB", "A100", 80, 8, 1.64, 0.82, 8, 117},
      {"NVIDIA A100-SXM4-80GB", "A100 SXM 80GB", "A100", 80, 8, 1.89, 0.95, 16, 125},
      {"NVIDIA H100 80GB HBM3", "H100 SXM", "H100", 80, 8, 2.99, 1.75, 20, 125},
      {"NVIDIA H100 PCIe", "H100 PCIe", "H100", 80, 8, 2.39, std::nullopt, 16, 188},
      {"NVIDIA H200", "H200 SXM", "H200", 141, 8, 3.99, std::nullopt, 24, 251},
  };
}

core::Result<std::unique_ptr<FakeRunPod>> FakeRunPod::Start(FakeProviderOptions options,
                                                            std::vector<FakeRunPodGpuType> catalog,
                                                            const core::Clock& clock) {
  std::unique_ptr<FakeRunPod> fake(new FakeRunPod(std::move(options), std::move(catalog), clock));
  api::HttpServerOptions server_options;
  server_options.host = "127.0.0.1";
  server_options.port = 0;
  server_options.threads = 2;
  FakeRunPod* self = fake.get();
  auto server = api::StartHttpServer(server_options,
                                     [self](api::HttpRequest request, api::Responder respond) {
                                       self->Handle(std::move(request), std::move(respond));
                                     });
  if (!server) {
    return core::Fail(server.error().WithContext("fake runpod"));
  }
  fake->server_ = std::move(*server);
  return fake;
}

FakeRunPod::FakeRunPod(FakeProviderOptions options, std::vector<FakeRunPodGpuType> catalog,
                       const core::Clock& clock)
    : options_(std::move(options)), catalog_(std::move(catalog)), clock_(clock) {
  start_agents_ = options_.start_agents;
  next_id_ = std::random_device{}() % 1'000'000'000ULL * 1000;
}

FakeRunPod::~FakeRunPod() { Stop(); }

std::string FakeRunPod::url() const {
  return "http://127.0.0.1:" + std::to_string(server_ ? server_->port() : 0) + "/graphql";
}

std::vector<LedgerEntry> FakeRunPod::Ledger() const {
  std::lock_guard lock(mu_);
  return ledger_;
}

void FakeRunPod::SetCapacity(const std::string& gpu_type, int available) {
  std::lock_guard lock(mu_);
  capacity_[gpu_type] = std::max(0, available);
}

void FakeRunPod::SetStartAgents(bool start) {
  std::lock_guard lock(mu_);
  start_agents_ = start;
}

int FakeRunPod::Requests(const std::string& operation) const {
  std::lock_guard lock(mu_);
  auto it = requests_.find(operation);
  return it == requests_.end() ? 0 : it->second;
}

std::optional<FakeRunPodPod> FakeRunPod::Pod(const std::string& pod_id) const {
  std::lock_guard lock(mu_);
  auto it = pods_.find(pod_id);
  return it == pods_.end() ? std::nullopt : std::optional<FakeRunPodPod>(it->second);
}

bool FakeRunPod::Interrupt(const std::string& provider_instance_id) {
  std::lock_guard lock(mu_);
  auto pod = pods_.find(provider_instance_id);
  auto entry = std::find_if(ledger_.begin(), ledger_.end(), [&](const LedgerEntry& e) {
    return e.provider_instance_id == provider_instance_id;
  });
  if (pod == pods_.end() || entry == ledger_.end() || !entry->live()) {
    return false;
  }
  if (entry->agent_pid > 0) {
    KillAgent(entry->agent_pid, options_.work_dir + "/" + provider_instance_id);
    entry->agent_pid = 0;
  }
  entry->ended_at = clock_.Now();
  entry->interrupted = true;
  pod->second.desired_status = "EXITED";
  return true;
}

void FakeRunPod::Stop() {
  std::vector<AgentProcess> agents;
  {
    std::lock_guard lock(mu_);
    agents = TakeAgents(ledger_, options_.work_dir);
  }
  late_answers_.Stop();
  if (server_) {
    server_->Stop();
  }
  KillAgents(agents);
}

void FakeRunPod::Handle(api::HttpRequest request, api::Responder respond) {
  if (request.path != "/graphql") {
    respond(JsonResponse(404, {{"errors", json::array({{{"message", "Not Found"}}})}}));
    return;
  }
  if (request.method != "POST") {
    respond(JsonResponse(405, {{"errors", json::array({{{"message", "Method Not Allowed"}}})}}));
    return;
  }
  json body = json::parse(request.body, nullptr, false);
  if (body.is_discarded() || !body.is_object() || !body.contains("query") ||
      !body["query"].is_string()) {
    respond(ValidationError("Must provide query string."));
    return;
  }
  Call call;
  call.query = body["query"].get<std::string>();
  const json variables = body.contains("variables") ? body["variables"] : json();
  const std::string& q = call.query;
  if (q.find("podFindAndDeployOnDemand") != std::string::npos ||
      q.find("podRentInterruptable") != std::string::npos) {
    call.spot = q.find("podRentInterruptable") != std::string::npos;
    call.operation = "create";
    call.field = call.spot ? "podRentInterruptable" : "podFindAndDeployOnDemand";
    if (variables.is_object() && variables.contains("input")) {
      call.input = variables["input"];
    }
  } else if (q.find("podTerminate") != std::string::npos) {
    call.operation = "terminate";
    call.field = "podTerminate";
  } else if (q.find("gpuTypes") != std::string::npos) {
    call.operation = "offers";
    call.field = "gpuTypes";
  } else if (q.find("myself") != std::string::npos) {
    call.operation = q.find("pods") != std::string::npos ? "list" : "health";
    call.field = "myself";
  } else if (std::regex_search(q, std::regex(R"(\bpod\s*\()"))) {
    call.operation = "describe";
    call.field = "pod";
  }
  if (call.operation == "terminate" || call.operation == "describe") {
    call.pod_id = InlinePodId(q);
    if (call.pod_id.empty() && variables.is_object() && variables.contains("input") &&
        variables["input"].is_object() && variables["input"].contains("podId") &&
        variables["input"]["podId"].is_string()) {
      call.pod_id = variables["input"]["podId"].get<std::string>();
    }
  }
  std::string key;
  if (auto auth = request.Header("authorization"); auth && auth->starts_with("Bearer ")) {
    key = auth->substr(7);
  } else if (auto param = request.Query("api_key")) {
    key = *param;
  }
  {
    std::lock_guard lock(mu_);
    ++requests_[call.operation.empty() ? "unknown" : call.operation];
  }
  // The catalog is public; everything else needs the account's key.
  if (key.empty() ? call.operation != "offers" : key != options_.api_key) {
    respond(Unauthorized());
    return;
  }
  if (call.operation.empty()) {
    respond(ValidationError("Cannot query field on type \"Query\": not served by this server."));
    return;
  }
  if (auto fault = faults_.Take(call.operation)) {
    Inject(*fault, call.field, std::move(respond));
    return;
  }
  try {
    respond(Dispatch(call));
  } catch (const std::exception& e) {
    respond(JsonResponse(500, {{"errors", json::array({{{"message", e.what()}}})}}));
  }
}

api::HttpResponse FakeRunPod::Dispatch(const Call& call) {
  if (call.operation == "create") {
    return CreatePod(call);
  }
  if (call.operation == "describe") {
    return DescribePod(call);
  }
  if (call.operation == "list") {
    return ListPods();
  }
  if (call.operation == "terminate") {
    return TerminatePod(call);
  }
  if (call.operation == "offers") {
    return GpuTypes();
  }
  return JsonResponse(200, {{"data", {{"myself", {{"id", "fake-user"}}}}}});
}

void FakeRunPod::Inject(const Fault& fault, const std::string& field, api::Responder respond) {
  switch (fault.kind) {
    case FaultKind::kHttpStatus: {
      api::HttpResponse response = JsonResponse(
          fault.status,
          {{"errors", json::array({{{"message", "HTTP " + std::to_string(fault.status)}}})}});
      if (fault.retry_after_seconds > 0) {
        response.headers.emplace_back("Retry-After", std::to_string(fault.retry_after_seconds));
      }
      respond(std::move(response));
      return;
    }
    case FaultKind::kTimeout:
      late_answers_.Send(
          fault.delay, std::move(respond),
          JsonResponse(504, {{"errors", json::array({{{"message", "Gateway Timeout"}}})}}));
      return;
    case FaultKind::kMalformed: {
      api::HttpResponse response;
      response.body = "{\"data\": {\"" + field + "\": [{\"id\": \"NVIDIA GeFo";
      respond(std::move(response));
      return;
    }
    case FaultKind::kNoCapacity:
      respond(GraphQlError(field, kNoCapacityMessage));
      return;
    case FaultKind::kQuota:
      respond(GraphQlError(field, kQuotaMessage));
      return;
    case FaultKind::kAuth:
      respond(Unauthorized());
      return;
  }
  respond(JsonResponse(504, {{"errors", json::array({{{"message", "Gateway Timeout"}}})}}));
}

const FakeRunPodGpuType* FakeRunPod::FindType(const std::string& id) const {
  for (const auto& type : catalog_) {
    if (type.id == id) {
      return &type;
    }
  }
  return nullptr;
}

namespace {

json RenderPod(const FakeRunPodPod& pod, const FakeRunPodGpuType* type, bool runtime) {
  json env = json::array();
  for (const auto& [key, value] : pod.env) {
    env.push_back(key + "=" + value);
  }
  json out = {{"id", pod.id},
              {"name", pod.name},
              {"desiredStatus", pod.desired_status},
              {"costPerHr", pod.cost_per_hr},
              {"gpuCount", pod.gpu_count},
              {"imageName", pod.image},
              {"podType", pod.spot ? "INTERRUPTABLE" : "RESERVED"},
              {"env", env},
              {"machineId", "m-" + pod.id},
              {"machine",
               {{"gpuDisplayName", type != nullptr ? type->display_name : pod.gpu_type_id},
                {"podHostId", pod.id + "-64410065"}}}};
  out["runtime"] = nullptr;
  if (runtime) {
    out["runtime"] = {{"uptimeInSeconds", 1},
                      {"ports", json::array({{{"ip", "127.0.0.1"},
                                              {"isIpPublic", true},
                                              {"privatePort", 22},
                                              {"publicPort", 22022},
                                              {"type", "tcp"}}})},
                      {"gpus", json::array()}};
  }
  return out;
}

}  // namespace

api::HttpResponse FakeRunPod::GpuTypes() {
  std::lock_guard lock(mu_);
  json types = json::array();
  for (const auto& type : catalog_) {
    auto cap = capacity_.find(type.gpu_type);
    const std::string stock =
        StockStatus(cap == capacity_.end() ? std::nullopt : std::optional<int>(cap->second));
    json lowest = {{"uninterruptablePrice", type.price_per_gpu},
                   {"minVcpu", type.vcpus_per_gpu},
                   {"minMemory", type.ram_gb_per_gpu}};
    lowest["minimumBidPrice"] = type.min_bid_per_gpu ? json(*type.min_bid_per_gpu) : json();
    lowest["stockStatus"] = stock.empty() ? json() : json(stock);
    types.push_back({{"id", type.id},
                     {"displayName", type.display_name},
                     {"memoryInGb", type.memory_gb},
                     {"maxGpuCount", type.max_gpu_count},
                     {"lowestPrice", lowest}});
  }
  return JsonResponse(200, {{"data", {{"gpuTypes", types}}}});
}

api::HttpResponse FakeRunPod::CreatePod(const Call& call) {
  const json& in = call.input;
  const std::string input_type =
      call.spot ? "PodRentInterruptableInput!" : "PodFindAndDeployOnDemandInput!";
  if (!in.is_object()) {
    return ValidationError("Variable \"$input\" of required type \"" + input_type +
                           "\" was not provided.");
  }
  auto text = [&](const char* key) {
    return in.contains(key) && in[key].is_string() ? in[key].get<std::string>() : std::string();
  };
  auto number = [&](const char* key) {
    return in.contains(key) && in[key].is_number() ? in[key].get<double>() : 0.0;
  };
  FakeRunPodPod pod;
  pod.name = text("name");
  pod.image = text("imageName");
  pod.gpu_type_id = text("gpuTypeId");
  pod.gpu_count = static_cast<int>(number("gpuCount"));
  pod.cloud_type = text("cloudType");
  pod.container_disk_gb = static_cast<int>(number("containerDiskInGb"));
  pod.spot = call.spot;
  if (in.contains("env") && in["env"].is_array()) {
    for (const auto& entry : in["env"]) {
      if (entry.is_object() && entry.contains("key") && entry["key"].is_string() &&
          entry.contains("value") && entry["value"].is_string()) {
        pod.env[entry["key"].get<std::string>()] = entry["value"].get<std::string>();
      }
    }
  }
  if (pod.image.empty()) {
    return ValidationError("Field \"imageName\" of required type \"String!\" was not provided.");
  }
  std::lock_guard lock(mu_);
  const FakeRunPodGpuType* type = FindType(pod.gpu_type_id);
  if (type == nullptr) {
    return GraphQlError(call.field, "Invalid gpuTypeId: " + pod.gpu_type_id);
  }
  if (pod.gpu_count < 1 || pod.gpu_count > type->max_gpu_count) {
    return GraphQlError(
        call.field, "gpuCount must be between 1 and " + std::to_string(type->max_gpu_count) + ".");
  }
  if (call.spot) {
    if (!in.contains("bidPerGpu") || !in["bidPerGpu"].is_number()) {
      return ValidationError("Field \"bidPerGpu\" of required type \"Float!\" was not provided.");
    }
    if (!type->min_bid_per_gpu) {
      return GraphQlError(call.field, kNoCapacityMessage);
    }
    pod.bid_per_gpu = in["bidPerGpu"].get<double>();
    if (pod.bid_per_gpu < *type->min_bid_per_gpu) {
      return GraphQlError(call.field, "Your bid is below the minimum bid price for this GPU.");
    }
  }
  auto cap = capacity_.find(type->gpu_type);
  if (cap != capacity_.end()) {
    if (cap->second <= 0) {
      return GraphQlError(call.field, kNoCapacityMessage);
    }
    --cap->second;
  }
  pod.id = Base36(next_id_++, 14);
  pod.cost_per_hr = (call.spot ? pod.bid_per_gpu : type->price_per_gpu) * pod.gpu_count;

  LedgerEntry entry;
  entry.provider_instance_id = pod.id;
  auto env_value = [&](const char* key) {
    auto it = pod.env.find(key);
    return it == pod.env.end() ? std::string() : it->second;
  };
  entry.our_instance_id = env_value("GPUORCH_INSTANCE_ID");
  entry.deployment_id = env_value("GPUORCH_DEPLOYMENT_ID");
  entry.offer_id = pod.gpu_type_id + "|" + std::to_string(pod.gpu_count);
  entry.gpu_type = type->gpu_type;
  entry.gpu_count = pod.gpu_count;
  entry.spot = pod.spot;
  entry.price_per_hour = pod.cost_per_hr;
  entry.created_at = clock_.Now();
  if (start_agents_) {
    AgentLaunch launch;
    launch.agent_binary = options_.agent_binary;
    launch.server_url = env_value("GPUORCH_SERVER");
    launch.join_token = env_value("GPUORCH_JOIN_TOKEN");
    launch.local_gpus = type->gpu_type + ":" + std::to_string(pod.gpu_count) + ":" +
                        std::to_string(type->memory_gb);
    launch.data_dir = options_.work_dir + "/" + pod.id;
    launch.node_name = pod.id;
    for (const auto& [key, value] : pod.env) {
      if (key != "GPUORCH_SERVER" && key != "GPUORCH_JOIN_TOKEN" && key != "GPUORCH_LOCAL_GPUS" &&
          key != "GPUORCH_DATA_DIR" && key != "GPUORCH_NODE_NAME") {
        launch.extra_env[key] = value;
      }
    }
    const pid_t pid = LaunchAgent(launch);
    entry.agent_pid = pid > 0 ? pid : 0;
  }
  ledger_.push_back(entry);
  pods_[pod.id] = pod;
  return JsonResponse(200, {{"data", {{call.field, RenderPod(pod, type, false)}}}});
}

api::HttpResponse FakeRunPod::DescribePod(const Call& call) {
  std::lock_guard lock(mu_);
  auto it = pods_.find(call.pod_id);
  if (it == pods_.end()) {
    return JsonResponse(200, {{"data", {{"pod", nullptr}}}});
  }
  FakeRunPodPod& pod = it->second;
  const bool runtime = pod.desired_status == "RUNNING" && pod.looks > 0;
  ++pod.looks;
  return JsonResponse(200,
                      {{"data", {{"pod", RenderPod(pod, FindType(pod.gpu_type_id), runtime)}}}});
}

api::HttpResponse FakeRunPod::ListPods() {
  std::lock_guard lock(mu_);
  json pods = json::array();
  for (auto& [id, pod] : pods_) {
    const bool runtime = pod.desired_status == "RUNNING" && pod.looks > 0;
    ++pod.looks;
    pods.push_back(RenderPod(pod, FindType(pod.gpu_type_id), runtime));
  }
  return JsonResponse(200, {{"data", {{"myself", {{"id", "fake-user"}, {"pods", pods}}}}}});
}

api::HttpResponse FakeRunPod::TerminatePod(const Call& call) {
  std::lock_guard lock(mu_);
  auto it = pods_.find(call.pod_id);
  if (it == pods_.end()) {
    return GraphQlError(call.field, kNotFoundToTerminate);
  }
  for (auto& entry : ledger_) {
    if (entry.provider_instance_id != call.pod_id) {
      continue;
    }
    if (entry.agent_pid > 0) {
      KillAgent(entry.agent_pid, options_.work_dir + "/" + call.pod_id);
      entry.agent_pid = 0;
    }
    if (entry.live()) {
      entry.ended_at = clock_.Now();
    }
  }
  pods_.erase(it);
  return JsonResponse(200, {{"data", {{"podTerminate", nullptr}}}});
}

}  // namespace gpuorch::fakes
