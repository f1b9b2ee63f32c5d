#include "fakes/fake_vastai.h"

#include <algorithm>
#include <cctype>
#include <random>
#include <utility>

#include <nlohmann/json.hpp>

namespace gpuorch::fakes {
namespace {

using json = nlohmann::json;

api::HttpResponse JsonResponse(int status, const json& body) {
  api::HttpResponse response;
  response.status = status;
  response.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return response;
}

// Vast's common error body (vastai.md §7).
api::HttpResponse VastError(int status, const std::string& error, const std::string& msg,
                            std::optional<int64_t> ask_id = std::nullopt) {
  json body = {{"success", false}, {"error", error}, {"msg", msg}};
  if (ask_id) {
    body["ask_id"] = *ask_id;
  }
  return JsonResponse(status, body);
}

api::HttpResponse AuthError() { return VastError(401, "auth_error", "Invalid user key"); }

api::HttpResponse NoSuchAsk(int64_t ask_id) {
  return VastError(404, "invalid_args",
                   "error 404/3603: no_such_ask Instance type by id " + std::to_string(ask_id) +
                       " is not available.",
                   ask_id);
}

// The insufficient-credit text is ours; Vast's exact words are not on record.
api::HttpResponse InsufficientCredit() {
  return VastError(400, "insufficient_credit",
                   "error 400: insufficient credit: add credit to your account to rent this "
                   "instance.");
}

api::HttpResponse TooFrequent(int status) {
  api::HttpResponse response;
  response.status = status;
  response.content_type = "text/plain";
  response.body = "API requests too frequent endpoint threshold=4.5";
  return response;
}

// "/asks/123/" with prefix "/asks/" → 123; nullopt when the rest is not a number (and a slash).
std::optional<int64_t> IdAfter(const std::string& path, const std::string& prefix) {
  if (!path.starts_with(prefix)) {
    return std::nullopt;
  }
  std::string rest = path.substr(prefix.size());
  if (rest.ends_with("/")) {
    rest.pop_back();
  }
  if (rest.empty() || rest.size() > 18 ||
      !std::all_of(rest.begin(), rest.end(), [](unsigned char c) { return std::isdigit(c); })) {
    return std::nullopt;
  }
  return std::stoll(rest);
}

bool Compare(const json& value, const std::string& op, const json& operand) {
  if (op == "eq") {
    return value == operand;
  }
  if (op == "neq") {
    return value != operand;
  }
  if (op == "in" || op == "notin") {
    const bool found =
        operand.is_array() && std::find(operand.begin(), operand.end(), value) != operand.end();
    return op == "in" ? found : !found;
  }
  if (!value.is_number() || !operand.is_number()) {
    return false;
  }
  const double a = value.get<double>();
  const double b = operand.get<double>();
  if (op == "gt") {
    return a > b;
  }
  if (op == "gte") {
    return a >= b;
  }
  if (op == "lt") {
    return a < b;
  }
  if (op == "lte") {
    return a <= b;
  }
  return true;  // an operator we do not know filters nothing
}

bool Matches(const json& ask, const json& query) {
  static const char* kNotFilters[] = {"order", "limit", "type", "allocated_storage",
                                      "disable_bundling"};
  for (const auto& [field, condition] : query.items()) {
    if (std::find(std::begin(kNotFilters), std::end(kNotFilters), field) != std::end(kNotFilters) ||
        !condition.is_object() || !ask.contains(field)) {
      continue;
    }
    for (const auto& [op, operand] : condition.items()) {
      if (!Compare(ask[field], op, operand)) {
        return false;
      }
    }
  }
  return true;
}

json RenderAsk(const FakeVastAsk& ask, bool rentable) {
  json out = {{"id", ask.id},
              {"ask_contract_id", ask.id},
              {"bundle_id", ask.id + 1000},
              {"machine_id", ask.id % 100000},
              {"gpu_name", ask.gpu_name},
              {"num_gpus", ask.num_gpus},
              {"gpu_ram", ask.gpu_ram_mb},
              {"gpu_total_ram", ask.gpu_ram_mb * ask.num_gpus},
              {"gpu_arch", "nvidia"},
              {"dph_base", ask.dph_total * 0.95},
              {"dph_total", ask.dph_total},
              {"reliability", ask.reliability},
              {"reliability2", ask.reliability},
              {"geolocation", ask.geolocation},
              {"cpu_cores", ask.cpu_cores},
              {"cpu_cores_effective", ask.cpu_cores},
              {"cpu_ram", ask.cpu_ram_mb},
              {"disk_space", 500},
              {"rentable", rentable},
              {"rented", false},
              {"verified", ask.verified},
              {"verification", ask.verified ? "verified" : "unverified"},
              {"external", false},
              {"is_bid", false},
              {"cuda_max_good", 12.4}};
  out["min_bid"] = ask.min_bid ? json(*ask.min_bid) : json();
  return out;
}

json RenderInstance(const FakeVastInstance& instance, const FakeVastAsk* ask) {
  json env = json::array();
  for (const auto& [key, value] : instance.env) {
    env.push_back(json::array({key, value}));
  }
  json out = {{"id", instance.id},
              {"label", instance.label},
              {"image_uuid", instance.image},
              {"image_runtype", instance.runtype},
              {"onstart", instance.onstart},
              {"extra_env", env},
              {"actual_status", instance.actual_status},
              {"intended_status", instance.intended_status},
              {"cur_state", instance.cur_state},
              {"next_state", instance.cur_state},
              {"is_bid", instance.is_bid},
              {"dph_total", instance.dph_total},
              {"disk_space", instance.disk_gb},
              {"public_ipaddr", "127.0.0.1\n"},
              {"ssh_host", "127.0.0.1"},
              {"ssh_port", 22022}};
  if (ask != nullptr) {
    out["gpu_name"] = ask->gpu_name;
    out["num_gpus"] = ask->num_gpus;
    out["gpu_ram"] = ask->gpu_ram_mb;
    out["geolocation"] = ask->geolocation;
    out["min_bid"] = ask->min_bid ? json(*ask->min_bid) : json();
    out["machine_id"] = ask->id % 100000;
  }
  return out;
}

}  // namespace

std::vector<FakeVastAsk> FakeVastAi::DefaultCatalog() {
  return {
      {.id = 7001001,
       .gpu_name = "RTX 4090",
       .gpu_type = "RTX4090",
       .num_gpus = 1,
       .gpu_ram_mb = 24564,
       .dph_total = 0.42,
       .min_bid = 0.21},
      {.id = 7001002,
       .gpu_name = "RTX 4090",
       .gpu_type = "RTX4090",
       .num_gpus = 4,
       .gpu_ram_mb = 24564,
       .dph_total = 1.62,
       .min_bid = 0.80,
       .cpu_cores = 48,
       .cpu_ram_mb = 256000},
      {.id = 7001003,
       .gpu_name = "RTX 3090",
       .gpu_type = "RTX3090",
       .num_gpus = 2,
       .gpu_ram_mb = 24576,
       .dph_total = 0.44,
       .min_bid = 0.20},
      {.id = 7001004,
       .gpu_name = "RTX A6000",
       .gpu_type = "RTXA6000",
       .num_gpus = 1,
       .gpu_ram_mb = 49140,
       .dph_total = 0.55,
       .min_bid = 0.30,
       .geolocation = "Quebec, CA"},
      {.id = 7001005,
       .gpu_name = "L40S",
       .gpu_type = "L40S",
       .num_gpus = 2,
       .gpu_ram_mb = 46068,
       .dph_total = 1.30,
       .min_bid = 0.70},
      {.id = 7001006,
       .gpu_name = "A100 PCIE",
       .gpu_type = "A100",
       .num_gpus = 1,
       .gpu_ram_mb = 81920,
       .dph_total = 1.10,
       .min_bid = 0.60},
      {.id = 7001007,
       .gpu_name = "A100 SXM4",
       .gpu_type = "A100",
       .num_gpus = 8,
       .gpu_ram_mb = 81920,
       .dph_total = 9.60,
       .min_bid = 5.00,
       .cpu_cores = 128,
       .cpu_ram_mb = 1024000},
      {.id = 7001008,
       .gpu_name = "H100 SXM",
       .gpu_type = "H100",
       .num_gpus = 1,
       .gpu_ram_mb = 81559,
       .dph_total = 2.40,
       .min_bid = std::nullopt},
      {.id = 7001009,
       .gpu_name = "H200",
       .gpu_type = "H200",
       .num_gpus = 1,
       .gpu_ram_mb = 143771,
       .dph_total = 3.20,
       .min_bid = 1.90,
       .reliability = 0.97,
       .geolocation = "Oslo, NO"},
  };
}

core::Result<std::unique_ptr<FakeVastAi>> FakeVastAi::Start(FakeProviderOptions options,
                                                            std::vector<FakeVastAsk> catalog,
                                                            const core::Clock& clock) {
  std::unique_ptr<FakeVastAi> fake(new FakeVastAi(std::move(options), std::move(catalog), clock));
  api::HttpServerOptions server_options;
  server_options.host = "127.0.0.1";
  server_options.port = 0;
  server_options.threads = 2;
  FakeVastAi* self = fake.get();
  auto server = api::StartHttpServer(server_options,
                                     [self](api::HttpRequest request, api::Responder respond) {
                                       self->Handle(std::move(request), std::move(respond));
                                     });
  if (!server) {
    return core::Fail(server.error().WithContext("fake vastai"));
  }
  fake->server_ = std::move(*server);
  return fake;
}

FakeVastAi::FakeVastAi(FakeProviderOptions options, std::vector<FakeVastAsk> catalog,
                       const core::Clock& clock)
    : options_(std::move(options)), catalog_(std::move(catalog)), clock_(clock) {
  start_agents_ = options_.start_agents;
  next_id_ = 20'000'000 + static_cast<int64_t>(std::random_device{}() % 1'000'000) * 10;
}

FakeVastAi::~FakeVastAi() { Stop(); }

std::string FakeVastAi::url() const {
  return "http://127.0.0.1:" + std::to_string(server_ ? server_->port() : 0) + "/api/v0";
}

std::vector<LedgerEntry> FakeVastAi::Ledger() const {
  std::lock_guard lock(mu_);
  return ledger_;
}

void FakeVastAi::SetCapacity(const std::string& gpu_type, int available) {
  std::lock_guard lock(mu_);
  capacity_[gpu_type] = std::max(0, available);
}

void FakeVastAi::SetStartAgents(bool start) {
  std::lock_guard lock(mu_);
  start_agents_ = start;
}

int FakeVastAi::Requests(const std::string& operation) const {
  std::lock_guard lock(mu_);
  auto it = requests_.find(operation);
  return it == requests_.end() ? 0 : it->second;
}

std::optional<FakeVastInstance> FakeVastAi::Instance(const std::string& instance_id) const {
  std::lock_guard lock(mu_);
  for (const auto& [id, instance] : instances_) {
    if (std::to_string(id) == instance_id) {
      return instance;
    }
  }
  return std::nullopt;
}

bool FakeVastAi::HasCapacity(const std::string& gpu_type) const {
  auto it = capacity_.find(gpu_type);
  return it == capacity_.end() || it->second > 0;
}

bool FakeVastAi::Interrupt(const std::string& provider_instance_id) {
  std::lock_guard lock(mu_);
  auto entry = std::find_if(ledger_.begin(), ledger_.end(), [&](const LedgerEntry& e) {
    return e.provider_instance_id == provider_instance_id;
  });
  if (entry == ledger_.end() || !entry->live()) {
    return false;
  }
  auto instance = instances_.find(std::stoll(provider_instance_id));
  if (instance == instances_.end()) {
    return false;
  }
  if (entry->agent_pid > 0) {
    KillAgent(entry->agent_pid, options_.work_dir + "/" + provider_instance_id);
    entry->agent_pid = 0;
  }
  entry->ended_at = clock_.Now();
  entry->interrupted = true;
  // Outbid: paused, not destroyed (vastai.md §6).
  instance->second.actual_status = "stopped";
  instance->second.intended_status = "stopped";
  instance->second.cur_state = "stopped";
  return true;
}

void FakeVastAi::Stop() {
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

void FakeVastAi::Handle(api::HttpRequest request, api::Responder respond) {
  static const std::string kBase = "/api/v0";
  std::string path = request.path;
  if (!path.starts_with(kBase + "/")) {
    respond(JsonResponse(404, {{"detail", "Not Found"}}));
    return;
  }
  path = path.substr(kBase.size());
  std::string operation;
  std::optional<int64_t> id;
  if ((path == "/bundles/" || path == "/bundles") && request.method == "POST") {
    operation = "offers";
  } else if (request.method == "PUT" && (id = IdAfter(path, "/asks/"))) {
    operation = "create";
  } else if (path == "/instances/" && request.method == "GET") {
    operation = "list";
  } else if (request.method == "GET" && (id = IdAfter(path, "/instances/"))) {
    operation = "describe";
  } else if (request.method == "DELETE" && (id = IdAfter(path, "/instances/"))) {
    operation = "terminate";
  }
  std::string key;
  if (auto auth = request.Header("authorization"); auth && auth->starts_with("Bearer ")) {
    key = auth->substr(7);
  } else if (auto param = request.Query("api_key")) {
    key = *param;
  }
  {
    std::lock_guard lock(mu_);
    ++requests_[operation.empty() ? "unknown" : operation];
  }
  // The offer search is public; everything else needs the account's key.
  if (key.empty() ? operation != "offers" : key != options_.api_key) {
    respond(AuthError());
    return;
  }
  if (operation.empty()) {
    respond(JsonResponse(404, {{"detail", "Not Found"}}));
    return;
  }
  if (auto fault = faults_.Take(operation)) {
    Inject(*fault, operation, std::move(respond));
    return;
  }
  try {
    if (operation == "offers") {
      respond(Search(request.body));
    } else if (operation == "create") {
      respond(CreateInstance(*id, request.body));
    } else if (operation == "list") {
      respond(ListInstances());
    } else if (operation == "describe") {
      respond(ShowInstance(*id));
    } else {
      respond(DestroyInstance(*id));
    }
  } catch (const std::exception& e) {
    respond(VastError(500, "server_error", e.what()));
  }
}

void FakeVastAi::Inject(const Fault& fault, const std::string& operation, api::Responder respond) {
  switch (fault.kind) {
    case FaultKind::kHttpStatus: {
      api::HttpResponse response =
          fault.status == 429 ? TooFrequent(429)
                              : VastError(fault.status, "server_error",
                                          "error " + std::to_string(fault.status) + ": injected");
      if (fault.retry_after_seconds > 0) {
        response.headers.emplace_back("Retry-After", std::to_string(fault.retry_after_seconds));
      }
      respond(std::move(response));
      return;
    }
    case FaultKind::kTimeout:
      late_answers_.Send(fault.delay, std::move(respond),
                         JsonResponse(504, {{"detail", "Gateway Timeout"}}));
      return;
    case FaultKind::kMalformed: {
      api::HttpResponse response;
      response.body = operation == "offers" ? "{\"offers\": [{\"id\": 70010" : "{\"success\": tr";
      respond(std::move(response));
      return;
    }
    case FaultKind::kNoCapacity:
      respond(NoSuchAsk(7000000));
      return;
    case FaultKind::kQuota:
      respond(InsufficientCredit());
      return;
    case FaultKind::kAuth:
      respond(AuthError());
      return;
  }
  respond(JsonResponse(504, {{"detail", "Gateway Timeout"}}));
}

api::HttpResponse FakeVastAi::Search(const std::string& body) {
  json query = body.empty() ? json::object() : json::parse(body, nullptr, false);
  if (query.is_discarded() || !query.is_object()) {
    return VastError(400, "invalid_args", "error 400: invalid search query");
  }
  std::vector<json> offers;
  {
    std::lock_guard lock(mu_);
    for (const auto& ask : catalog_) {
      json rendered = RenderAsk(ask, HasCapacity(ask.gpu_type));
      if (Matches(rendered, query)) {
        offers.push_back(std::move(rendered));
      }
    }
  }
  if (query.contains("order") && query["order"].is_array()) {
    std::vector<std::pair<std::string, bool>> keys;  // field, descending
    for (const auto& entry : query["order"]) {
      if (entry.is_array() && !entry.empty() && entry[0].is_string()) {
        keys.emplace_back(entry[0].get<std::string>(),
                          entry.size() > 1 && entry[1] == json("desc"));
      }
    }
    std::stable_sort(offers.begin(), offers.end(), [&](const json& a, const json& b) {
      for (const auto& [field, descending] : keys) {
        const json& x = a.contains(field) ? a[field] : json();
        const json& y = b.contains(field) ? b[field] : json();
        if (x != y) {
          return descending ? y < x : x < y;
        }
      }
      return false;
    });
  }
  if (query.contains("limit") && query["limit"].is_number_integer()) {
    const auto limit = static_cast<size_t>(std::max<int64_t>(0, query["limit"].get<int64_t>()));
    if (offers.size() > limit) {
      offers.resize(limit);
    }
  }
  return JsonResponse(200, {{"offers", offers}});
}

api::HttpResponse FakeVastAi::CreateInstance(int64_t ask_id, const std::string& body) {
  json in = json::parse(body, nullptr, false);
  if (in.is_discarded() || !in.is_object()) {
    return VastError(400, "invalid_args", "error 400/3467: Invalid args: body is not JSON", ask_id);
  }
  FakeVastInstance instance;
  instance.ask_id = ask_id;
  auto text = [&](const char* key) {
    return in.contains(key) && in[key].is_string() ? in[key].get<std::string>() : std::string();
  };
  instance.image = text("image");
  instance.label = text("label");
  instance.onstart = text("onstart");
  instance.runtype = text("runtype").empty() ? "ssh" : text("runtype");
  instance.disk_gb = in.contains("disk") && in["disk"].is_number() ? in["disk"].get<double>() : 10;
  if (instance.image.empty()) {
    return VastError(400, "invalid_args", "error 400/3467: Invalid args: image is required",
                     ask_id);
  }
  if (in.contains("env")) {
    if (!in["env"].is_object()) {
      return VastError(400, "invalid_args", "error 400/3467: Invalid args: env must be a dict",
                       ask_id);
    }
    for (const auto& [key, value] : in["env"].items()) {
      if (value.is_string()) {
        instance.env[key] = value.get<std::string>();
      }
    }
  }
  std::lock_guard lock(mu_);
  auto ask = std::find_if(catalog_.begin(), catalog_.end(),
                          [&](const FakeVastAsk& a) { return a.id == ask_id; });
  if (ask == catalog_.end() || !HasCapacity(ask->gpu_type)) {
    return NoSuchAsk(ask_id);
  }
  instance.dph_total = ask->dph_total;
  if (in.contains("price") && !in["price"].is_null()) {
    if (!in["price"].is_number() || in["price"].get<double>() < 0.001 ||
        in["price"].get<double>() > 128) {
      return VastError(400, "invalid_price", "Please set a bid price >= 0.001.", ask_id);
    }
    if (!ask->min_bid || in["price"].get<double>() < *ask->min_bid) {
      return VastError(400, "invalid_price",
                       "error 400/3468: bid price is below the minimum bid for this machine",
                       ask_id);
    }
    instance.is_bid = true;
    instance.price = in["price"].get<double>();
    instance.dph_total = instance.price;
  }
  if (auto cap = capacity_.find(ask->gpu_type); cap != capacity_.end()) {
    --cap->second;
  }
  instance.id = next_id_++;
  instance.actual_status = "loading";

  LedgerEntry entry;
  entry.provider_instance_id = std::to_string(instance.id);
  auto env_value = [&](const char* key) {
    auto it = instance.env.find(key);
    return it == instance.env.end() ? std::string() : it->second;
  };
  entry.our_instance_id = env_value("GPUORCH_INSTANCE_ID");
  entry.deployment_id = env_value("GPUORCH_DEPLOYMENT_ID");
  entry.offer_id = std::to_string(ask_id);
  entry.gpu_type = ask->gpu_type;
  entry.gpu_count = ask->num_gpus;
  entry.spot = instance.is_bid;
  entry.price_per_hour = instance.dph_total;
  entry.created_at = clock_.Now();
  if (start_agents_) {
    AgentLaunch launch;
    launch.agent_binary = options_.agent_binary;
    launch.server_url = env_value("GPUORCH_SERVER");
    launch.join_token = env_value("GPUORCH_JOIN_TOKEN");
    launch.local_gpus = ask->gpu_type + ":" + std::to_string(ask->num_gpus) + ":" +
                        std::to_string(static_cast<int>((ask->gpu_ram_mb + 512) / 1024));
    launch.data_dir = options_.work_dir + "/" + entry.provider_instance_id;
    launch.node_name = entry.provider_instance_id;
    for (const auto& [key, value] : instance.env) {
      if (key != "GPUORCH_SERVER" && key != "GPUORCH_JOIN_TOKEN" && key != "GPUORCH_LOCAL_GPUS" &&
          key != "GPUORCH_DATA_DIR" && key != "GPUORCH_NODE_NAME") {
        launch.extra_env[key] = value;
      }
    }
    const pid_t pid = LaunchAgent(launch);
    entry.agent_pid = pid > 0 ? pid : 0;
  }
  ledger_.push_back(entry);
  instances_[instance.id] = instance;
  return JsonResponse(200, {{"success", true},
                            {"new_contract", instance.id},
                            {"instance_api_key", "fake-instance-key"}});
}

api::HttpResponse FakeVastAi::ShowInstance(int64_t id) {
  std::lock_guard lock(mu_);
  auto it = instances_.find(id);
  if (it == instances_.end()) {
    return JsonResponse(200, {{"instances", nullptr}});
  }
  FakeVastInstance& instance = it->second;
  auto ask = std::find_if(catalog_.begin(), catalog_.end(),
                          [&](const FakeVastAsk& a) { return a.id == instance.ask_id; });
  json rendered = RenderInstance(instance, ask == catalog_.end() ? nullptr : &*ask);
  if (instance.actual_status == "loading") {
    instance.actual_status = "running";
  }
  return JsonResponse(200, {{"instances", rendered}});
}

api::HttpResponse FakeVastAi::ListInstances() {
  std::lock_guard lock(mu_);
  json list = json::array();
  for (auto& [id, instance] : instances_) {
    auto ask = std::find_if(catalog_.begin(), catalog_.end(),
                            [&](const FakeVastAsk& a) { return a.id == instance.ask_id; });
    list.push_back(RenderInstance(instance, ask == catalog_.end() ? nullptr : &*ask));
    if (instance.actual_status == "loading") {
      instance.actual_status = "running";
    }
  }
  return JsonResponse(200, {{"instances_found", list.size()}, {"instances", list}});
}

api::HttpResponse FakeVastAi::DestroyInstance(int64_t id) {
  std::lock_guard lock(mu_);
  auto it = instances_.find(id);
  if (it == instances_.end()) {
    return VastError(404, "not_found", "Instance not found");
  }
  const std::string provider_id = std::to_string(id);
  for (auto& entry : ledger_) {
    if (entry.provider_instance_id != provider_id) {
      continue;
    }
    if (entry.agent_pid > 0) {
      KillAgent(entry.agent_pid, options_.work_dir + "/" + provider_id);
      entry.agent_pid = 0;
    }
    if (entry.live()) {
      entry.ended_at = clock_.Now();
    }
  }
  instances_.erase(it);
  return JsonResponse(200, {{"success", true}});
}

}  // namespace gpuorch::fakes
