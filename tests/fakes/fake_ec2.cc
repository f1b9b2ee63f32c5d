#include "fakes/fake_ec2.h"

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "api/http_server.h"
#include "providers/aws/ec2_provider.h"
#include "providers/aws/sigv4.h"

namespace gpuorch::fakes {
namespace {

constexpr char kNamespace[] = "http://ec2.amazonaws.com/doc/2016-11-15/";

using Params = std::multimap<std::string, std::string>;

int HexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

std::string FormDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 &&
               HexValue(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

Params ParseForm(std::string_view body) {
  Params params;
  size_t start = 0;
  while (start < body.size()) {
    size_t end = body.find('&', start);
    if (end == std::string_view::npos) {
      end = body.size();
    }
    std::string_view pair = body.substr(start, end - start);
    size_t eq = pair.find('=');
    if (!pair.empty()) {
      params.emplace(FormDecode(pair.substr(0, eq)),
                     eq == std::string_view::npos ? "" : FormDecode(pair.substr(eq + 1)));
    }
    start = end + 1;
  }
  return params;
}

std::string Get(const Params& params, const std::string& key) {
  auto it = params.find(key);
  return it == params.end() ? "" : it->second;
}

// Values of "<prefix>.1", "<prefix>.2", ... in index order.
std::vector<std::string> List(const Params& params, const std::string& prefix) {
  std::vector<std::string> out;
  for (int i = 1;; ++i) {
    auto it = params.find(prefix + "." + std::to_string(i));
    if (it == params.end()) {
      return out;
    }
    out.push_back(it->second);
  }
}

struct Filter {
  std::string name;
  std::vector<std::string> values;
};

std::vector<Filter> Filters(const Params& params) {
  std::vector<Filter> out;
  for (int i = 1;; ++i) {
    const std::string prefix = "Filter." + std::to_string(i);
    auto name = params.find(prefix + ".Name");
    if (name == params.end()) {
      return out;
    }
    out.push_back(Filter{name->second, List(params, prefix + ".Value")});
  }
}

bool Matches(const Filter& filter, const std::string& value) {
  for (const std::string& v : filter.values) {
    if (v == value) {
      return true;
    }
  }
  return false;
}

template <typename T>
std::optional<T> ParseNumber(const std::string& text) {
  T value{};
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size()) {
    return std::nullopt;
  }
  return value;
}

std::string Base64Decode(std::string_view text) {
  static const std::string kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    if (c == '=') {
      break;
    }
    size_t v = kAlphabet.find(c);
    if (v == std::string::npos) {
      continue;
    }
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xFF));
    }
  }
  return out;
}

// The NAME=value pairs of a script's `export NAME=<shell word>` lines (single quotes, backslash
// escapes and plain characters), and whether it ends up running `exec gpuorch agent`.
std::map<std::string, std::string> ParseExports(const std::string& script, bool* runs_agent) {
  std::map<std::string, std::string> env;
  *runs_agent = false;
  size_t pos = 0;
  while (pos < script.size()) {
    if (script.compare(pos, 7, "export ") == 0) {
      pos += 7;
      size_t eq = script.find('=', pos);
      if (eq == std::string::npos) {
        break;
      }
      std::string name = script.substr(pos, eq - pos);
      pos = eq + 1;
      std::string value;
      while (pos < script.size() && script[pos] != '\n' && script[pos] != ' ') {
        if (script[pos] == '\'') {
          size_t close = script.find('\'', pos + 1);
          if (close == std::string::npos) {
            close = script.size();
          }
          value += script.substr(pos + 1, close - pos - 1);
          pos = close + 1;
        } else if (script[pos] == '\\' && pos + 1 < script.size()) {
          value.push_back(script[pos + 1]);
          pos += 2;
        } else {
          value.push_back(script[pos++]);
        }
      }
      env[name] = value;
    } else if (script.compare(pos, 18, "exec gpuorch agent") == 0) {
      *runs_agent = true;
    }
    size_t nl = script.find('\n', pos);
    pos = nl == std::string::npos ? script.size() : nl + 1;
  }
  return env;
}

std::string Escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string Price(double price) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6f", price);
  return buf;
}

api::HttpResponse Xml(int status, std::string body) {
  return api::HttpResponse{
      .status = status, .content_type = "text/xml;charset=UTF-8", .body = std::move(body)};
}

api::HttpResponse ErrorAnswer(int status, const std::string& code, const std::string& message) {
  return Xml(status, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>" +
                         Escape(code) + "</Code><Message>" + Escape(message) +
                         "</Message></Error></Errors><RequestID>fake-request</RequestID>"
                         "</Response>");
}

api::HttpResponse Success(const std::string& action, const std::string& inner) {
  return Xml(200, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<" + action + "Response xmlns=\"" +
                      kNamespace + "\"><requestId>fake-request</requestId>" + inner + "</" +
                      action + "Response>");
}

std::string StateCode(const std::string& state) {
  if (state == "pending") {
    return "0";
  }
  if (state == "running") {
    return "16";
  }
  if (state == "shutting-down") {
    return "32";
  }
  if (state == "terminated") {
    return "48";
  }
  return "80";
}

std::string StateXml(const std::string& element, const std::string& state) {
  return "<" + element + "><code>" + StateCode(state) + "</code><name>" + state + "</name></" +
         element + ">";
}

std::vector<FakeEc2InstanceType> DefaultCatalog() {
  std::vector<FakeEc2InstanceType> out;
  for (const auto& type : providers::Ec2GpuInstanceTypes()) {
    out.push_back(FakeEc2InstanceType{.instance_type = type.instance_type,
                                      .gpu_type = type.gpu_type,
                                      .gpu_count = type.gpu_count,
                                      .gpu_memory_gb = static_cast<int>(type.gpu_memory_gb),
                                      .on_demand_price = type.on_demand_price,
                                      .spot_price = type.on_demand_price * 0.4});
  }
  return out;
}

// Answers handed to it later from its own thread (held requests of kTimeout faults), so the
// server's I/O threads never wait.
class DelayedAnswers {
 public:
  DelayedAnswers() : thread_([this] { Run(); }) {}
  ~DelayedAnswers() { Flush(); }

  void Add(std::chrono::milliseconds delay, api::Responder respond, api::HttpResponse response) {
    std::lock_guard lock(mu_);
    pending_.push_back(Pending{core::RealClock::Instance().MonotonicNow() + delay,
                               std::move(respond), std::move(response)});
    cv_.notify_all();
  }

  // Answers everything still held now and ends the thread. Idempotent.
  void Flush() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
      cv_.notify_all();
    }
    if (thread_.joinable()) {
      thread_.join();
    }
  }

 private:
  struct Pending {
    core::MonotonicTime due;
    api::Responder respond;
    api::HttpResponse response;
  };

  void Run() {
    std::unique_lock lock(mu_);
    for (;;) {
      auto now = core::RealClock::Instance().MonotonicNow();
      std::vector<Pending> due;
      for (auto it = pending_.begin(); it != pending_.end();) {
        if (stop_ || it->due <= now) {
          due.push_back(std::move(*it));
          it = pending_.erase(it);
        } else {
          ++it;
        }
      }
      if (!due.empty()) {
        lock.unlock();
        for (auto& p : due) {
          p.respond(std::move(p.response));
        }
        lock.lock();
        continue;
      }
      if (stop_) {
        return;
      }
      if (pending_.empty()) {
        cv_.wait(lock);
      } else {
        auto next = pending_.front().due;
        for (const auto& p : pending_) {
          next = std::min(next, p.due);
        }
        cv_.wait_until(lock, next);
      }
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> pending_;  // GUARDED_BY(mu_)
  bool stop_ = false;            // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace

class FakeEc2::Impl {
 public:
  explicit Impl(FakeEc2Options options)
      : options_(std::move(options)),
        clock_(options_.clock != nullptr ? *options_.clock : core::RealClock::Instance()) {
    if (options_.catalog.empty()) {
      options_.catalog = DefaultCatalog();
    }
    start_agents_ = options_.base.start_agents;
  }

  core::Status Listen() {
    api::HttpServerOptions server_options{
        .host = "127.0.0.1", .port = 0, .threads = 2, .max_body_bytes = 1024 * 1024};
    GPUORCH_ASSIGN_OR_RETURN(
        server_, api::StartHttpServer(server_options,
                                      [this](api::HttpRequest request, api::Responder respond) {
                                        Handle(std::move(request), std::move(respond));
                                      }));
    return core::Ok();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }

  FaultInjector& faults() { return faults_; }

  std::vector<LedgerEntry> Ledger() const {
    std::lock_guard lock(mu_);
    std::vector<LedgerEntry> out;
    for (const std::string& id : order_) {
      out.push_back(instances_.at(id).ledger);
    }
    return out;
  }

  bool Interrupt(const std::string& id) {
    return End(id, "Server.SpotInstanceTermination",
               "Server.SpotInstanceTermination: Spot instance termination", /*interrupted=*/true);
  }

  void SetCapacity(const std::string& gpu_type, int available) {
    std::lock_guard lock(mu_);
    capacity_[gpu_type] = available;
  }

  void SetStartAgents(bool start) {
    std::lock_guard lock(mu_);
    start_agents_ = start;
  }

  void Stop() {
    if (server_) {
      server_->Stop();
    }
    delayed_.Flush();
    std::vector<std::pair<pid_t, std::string>> agents;
    {
      std::lock_guard lock(mu_);
      for (auto& [id, instance] : instances_) {
        if (instance.ledger.agent_pid > 0) {
          agents.emplace_back(instance.ledger.agent_pid, instance.data_dir);
          instance.ledger.agent_pid = 0;
        }
      }
    }
    for (const auto& [pid, dir] : agents) {
      KillAgent(pid, dir);
    }
  }

  std::optional<FakeEc2Instance> Instance(const std::string& id) const {
    std::lock_guard lock(mu_);
    auto it = instances_.find(id);
    if (it == instances_.end()) {
      return std::nullopt;
    }
    return it->second.view;
  }

  int RequestCount(const std::string& action) const {
    std::lock_guard lock(mu_);
    if (action.empty()) {
      int total = 0;
      for (const auto& [name, count] : request_counts_) {
        total += count;
      }
      return total;
    }
    auto it = request_counts_.find(action);
    return it == request_counts_.end() ? 0 : it->second;
  }

 private:
  struct Stored {
    FakeEc2Instance view;
    LedgerEntry ledger;
    std::string data_dir;
  };

  void Handle(api::HttpRequest request, api::Responder respond) {
    const Params params = ParseForm(request.method == "POST" ? request.body : "");
    const std::string action = Get(params, "Action");
    {
      std::lock_guard lock(mu_);
      ++request_counts_[action];
    }
    if (auto denied = CheckSignature(request)) {
      respond(std::move(*denied));
      return;
    }
    if (request.method != "POST" || request.path != "/") {
      respond(ErrorAnswer(400, "InvalidAction", "only POST / is served"));
      return;
    }
    if (Get(params, "Version") != "2016-11-15") {
      respond(ErrorAnswer(400, "NoSuchVersion", "unknown API version"));
      return;
    }
    const std::string operation = OperationOf(action, params);
    if (auto fault = faults_.Take(operation)) {
      if (fault->kind == FaultKind::kTimeout) {
        delayed_.Add(fault->delay, std::move(respond),
                     ErrorAnswer(504, "RequestTimeout", "held too long"));
        return;
      }
      respond(FaultAnswer(*fault, action));
      return;
    }
    respond(Dispatch(action, params));
  }

  static std::string OperationOf(const std::string& action, const Params& params) {
    if (action == "DescribeInstanceTypeOfferings" || action == "DescribeSpotPriceHistory") {
      return "offers";
    }
    if (action == "RunInstances") {
      return "create";
    }
    if (action == "DescribeInstances") {
      return params.count("InstanceId.1") ? "describe" : "list";
    }
    if (action == "TerminateInstances") {
      return "terminate";
    }
    if (action == "DescribeRegions") {
      return "health";
    }
    return action;
  }

  static api::HttpResponse FaultAnswer(const Fault& fault, const std::string& action) {
    switch (fault.kind) {
      case FaultKind::kHttpStatus: {
        std::string code = "InternalError";
        if (fault.status == 503 || fault.status == 429) {
          code = "RequestLimitExceeded";
        } else if (fault.status >= 400 && fault.status < 500) {
          code = "InvalidParameterValue";
        }
        api::HttpResponse response = ErrorAnswer(fault.status, code, "injected fault");
        if (fault.retry_after_seconds > 0) {
          response.headers.emplace_back("Retry-After", std::to_string(fault.retry_after_seconds));
        }
        return response;
      }
      case FaultKind::kMalformed:
        return Xml(200, "<?xml version=\"1.0\"?>\n<" + action + "Response xmlns=\"" + kNamespace +
                            "\"><requestId>x</requestId><reservationSet><item><instance");
      case FaultKind::kNoCapacity:
        return ErrorAnswer(500, "InsufficientInstanceCapacity",
                           "We currently do not have sufficient capacity in the Availability Zone "
                           "you requested.");
      case FaultKind::kQuota:
        return ErrorAnswer(400, "InstanceLimitExceeded",
                           "You have requested more instances than your current instance limit "
                           "allows.");
      case FaultKind::kAuth:
        return ErrorAnswer(401, "AuthFailure",
                           "AWS was not able to validate the provided access credentials");
      case FaultKind::kTimeout:
        break;
    }
    return ErrorAnswer(500, "InternalError", "injected fault");
  }

  // nullopt when the request carries a valid SigV4 signature of our key pair.
  std::optional<api::HttpResponse> CheckSignature(const api::HttpRequest& request) const {
    auto auth_failure = [] {
      return ErrorAnswer(401, "AuthFailure",
                         "AWS was not able to validate the provided access credentials");
    };
    auto header = request.Header("authorization");
    auto parsed = header ? providers::aws::ParseAuthorization(*header) : std::nullopt;
    if (!parsed || parsed->access_key_id != options_.base.api_key ||
        parsed->scope.region != options_.region || parsed->scope.service != "ec2") {
      return auth_failure();
    }
    const auto& names = parsed->signed_headers;
    if (std::find(names.begin(), names.end(), "host") == names.end() ||
        std::find(names.begin(), names.end(), "x-amz-date") == names.end()) {
      return auth_failure();
    }
    const std::string amz_date = request.Header("x-amz-date").value_or("");
    if (amz_date.size() != 16 || amz_date.substr(0, 8) != parsed->date) {
      return auth_failure();
    }
    providers::aws::SigningRequest signing{.method = request.method, .body = request.body};
    const size_t q = request.target.find('?');
    signing.path = request.target.substr(0, q);
    signing.query = q == std::string::npos ? "" : request.target.substr(q + 1);
    for (const std::string& name : names) {
      bool found = false;
      for (const auto& [key, value] : request.headers) {
        if (key == name) {
          signing.headers.emplace_back(key, value);
          found = true;
        }
      }
      if (!found) {
        return auth_failure();
      }
    }
    const std::string expected =
        providers::aws::Signature(signing, names, options_.base.secret, amz_date, parsed->scope);
    if (expected != parsed->signature) {
      return auth_failure();
    }
    return std::nullopt;
  }

  api::HttpResponse Dispatch(const std::string& action, const Params& params) {
    if (action == "RunInstances") {
      return RunInstances(params);
    }
    if (action == "DescribeInstances") {
      return DescribeInstances(params);
    }
    if (action == "TerminateInstances") {
      return TerminateInstances(params);
    }
    if (action == "DescribeInstanceTypeOfferings") {
      return DescribeInstanceTypeOfferings(params);
    }
    if (action == "DescribeSpotPriceHistory") {
      return DescribeSpotPriceHistory(params);
    }
    if (action == "DescribeRegions") {
      return Success("DescribeRegions", "<regionInfo><item><regionName>" + options_.region +
                                            "</regionName><regionEndpoint>ec2." + options_.region +
                                            ".amazonaws.com</regionEndpoint></item></regionInfo>");
    }
    return ErrorAnswer(400, "InvalidAction", "The action is not valid for this web service.");
  }

  const FakeEc2InstanceType* FindType(const std::string& instance_type) const {
    for (const auto& type : options_.catalog) {
      if (type.instance_type == instance_type) {
        return &type;
      }
    }
    return nullptr;
  }

  api::HttpResponse RunInstances(const Params& params);
  api::HttpResponse DescribeInstances(const Params& params) const;
  api::HttpResponse TerminateInstances(const Params& params);
  api::HttpResponse DescribeInstanceTypeOfferings(const Params& params) const;
  api::HttpResponse DescribeSpotPriceHistory(const Params& params) const;
  std::string InstanceXml(const Stored& stored, const std::string& state) const;
  void StartAgent(Stored& stored, const FakeEc2InstanceType& type);
  bool End(const std::string& id, const std::string& reason, const std::string& message,
           bool interrupted);

  FakeEc2Options options_;
  const core::Clock& clock_;
  FaultInjector faults_;
  DelayedAnswers delayed_;
  std::unique_ptr<api::HttpServer> server_;

  mutable std::mutex mu_;
  bool start_agents_ = true;                   // GUARDED_BY(mu_)
  std::map<std::string, int> capacity_;        // GUARDED_BY(mu_)
  std::map<std::string, Stored> instances_;    // GUARDED_BY(mu_)
  std::vector<std::string> order_;             // GUARDED_BY(mu_)
  std::map<std::string, std::string> tokens_;  // client token → id; GUARDED_BY(mu_)
  std::map<std::string, int> request_counts_;  // GUARDED_BY(mu_)
  int next_id_ = 1;                            // GUARDED_BY(mu_)
};

api::HttpResponse FakeEc2::Impl::RunInstances(const Params& params) {
  const std::string token = Get(params, "ClientToken");
  const FakeEc2InstanceType* type = FindType(Get(params, "InstanceType"));
  if (type == nullptr) {
    return ErrorAnswer(400, "InvalidParameterValue", "Invalid value for InstanceType");
  }
  if (Get(params, "ImageId").empty()) {
    return ErrorAnswer(400, "MissingParameter", "The request must contain the parameter ImageId");
  }
  if (Get(params, "MinCount") != "1" || Get(params, "MaxCount") != "1") {
    return ErrorAnswer(400, "InvalidParameterValue", "this fake creates one instance per call");
  }
  const bool spot = Get(params, "InstanceMarketOptions.MarketType") == "spot";
  std::unique_lock lock(mu_);
  if (!token.empty()) {
    if (auto it = tokens_.find(token); it != tokens_.end()) {
      const Stored& existing = instances_.at(it->second);
      if (existing.view.instance_type != type->instance_type || existing.view.spot != spot) {
        return ErrorAnswer(400, "IdempotentParameterMismatch",
                           "the client token was used with different parameters");
      }
      return Success("RunInstances", "<reservationId>r-" + existing.view.instance_id.substr(2) +
                                         "</reservationId><ownerId>123456789012</ownerId>"
                                         "<groupSet/><instancesSet>" +
                                         InstanceXml(existing, existing.view.state) +
                                         "</instancesSet>");
    }
  }
  double price = type->on_demand_price;
  if (spot) {
    if (!type->spot_price) {
      return ErrorAnswer(500, "InsufficientInstanceCapacity", "There is no Spot capacity");
    }
    const std::string max_price = Get(params, "InstanceMarketOptions.SpotOptions.MaxPrice");
    const auto max = ParseNumber<double>(max_price);
    if (!max_price.empty() && !max) {
      return ErrorAnswer(400, "InvalidParameterValue", "Invalid MaxPrice");
    }
    if (max && *max < *type->spot_price) {
      return ErrorAnswer(400, "SpotMaxPriceTooLow",
                         "Your Spot request price is lower than the minimum required Spot "
                         "request fulfillment price.");
    }
    price = *type->spot_price;
  }
  if (auto it = capacity_.find(type->gpu_type); it != capacity_.end()) {
    if (it->second <= 0) {
      return ErrorAnswer(500, "InsufficientInstanceCapacity",
                         "We currently do not have sufficient " + type->instance_type +
                             " capacity in the Availability Zone you requested.");
    }
    --it->second;
  }
  char id[32];
  std::snprintf(id, sizeof(id), "i-%017x", next_id_++);
  Stored stored;
  stored.view.instance_id = id;
  stored.view.instance_type = type->instance_type;
  stored.view.state = "running";
  stored.view.client_token = token;
  stored.view.image_id = Get(params, "ImageId");
  stored.view.user_data = Base64Decode(Get(params, "UserData"));
  stored.view.spot = spot;
  for (const auto& [key, value] : params) {
    stored.view.params[key] = value;
  }
  for (int i = 1;; ++i) {
    const std::string prefix = "TagSpecification.1.Tag." + std::to_string(i);
    if (!params.count(prefix + ".Key")) {
      break;
    }
    stored.view.tags[Get(params, prefix + ".Key")] = Get(params, prefix + ".Value");
  }
  stored.ledger = LedgerEntry{.provider_instance_id = id,
                              .our_instance_id = stored.view.tags["gpuorch:instance-id"],
                              .deployment_id = stored.view.tags["gpuorch:deployment"],
                              .offer_id = type->instance_type,
                              .gpu_type = type->gpu_type,
                              .gpu_count = type->gpu_count,
                              .spot = spot,
                              .price_per_hour = price,
                              .created_at = clock_.Now()};
  stored.data_dir = options_.base.work_dir + "/" + id;
  if (start_agents_) {
    StartAgent(stored, *type);
  }
  if (!token.empty()) {
    tokens_[token] = id;
  }
  order_.push_back(id);
  const Stored& placed = instances_.emplace(id, std::move(stored)).first->second;
  return Success("RunInstances", "<reservationId>r-" + std::string(id + 2) +
                                     "</reservationId><ownerId>123456789012</ownerId><groupSet/>"
                                     "<instancesSet>" +
                                     InstanceXml(placed, "pending") + "</instancesSet>");
}

void FakeEc2::Impl::StartAgent(Stored& stored, const FakeEc2InstanceType& type) {
  bool runs_agent = false;
  std::map<std::string, std::string> env = ParseExports(stored.view.user_data, &runs_agent);
  if (!runs_agent) {
    return;
  }
  AgentLaunch launch{.agent_binary = options_.base.agent_binary,
                     .server_url = env["GPUORCH_SERVER"],
                     .join_token = env["GPUORCH_JOIN_TOKEN"],
                     .local_gpus = type.gpu_type + ":" + std::to_string(type.gpu_count) + ":" +
                                   std::to_string(type.gpu_memory_gb),
                     .data_dir = stored.data_dir,
                     .node_name = stored.view.instance_id};
  for (const char* set_by_launch : {"GPUORCH_SERVER", "GPUORCH_JOIN_TOKEN", "GPUORCH_LOCAL_GPUS",
                                    "GPUORCH_DATA_DIR", "GPUORCH_NODE_NAME"}) {
    env.erase(set_by_launch);
  }
  launch.extra_env = std::move(env);
  const pid_t pid = LaunchAgent(launch);
  stored.ledger.agent_pid = pid > 0 ? pid : 0;
}

std::string FakeEc2::Impl::InstanceXml(const Stored& stored, const std::string& state) const {
  const FakeEc2Instance& v = stored.view;
  std::string xml = "<item><instanceId>" + v.instance_id + "</instanceId><imageId>" +
                    Escape(v.image_id) + "</imageId>" + StateXml("instanceState", state) +
                    "<instanceType>" + v.instance_type + "</instanceType><launchTime>" +
                    core::FormatRfc3339(stored.ledger.created_at) +
                    "</launchTime><placement>"
                    "<availabilityZone>" +
                    options_.region +
                    "a</availabilityZone><tenancy>"
                    "default</tenancy></placement>";
  if (state == "running") {
    xml += "<ipAddress>127.0.0.1</ipAddress>";
  }
  if (v.spot) {
    xml += "<instanceLifecycle>spot</instanceLifecycle><spotInstanceRequestId>sir-" +
           v.instance_id.substr(2) + "</spotInstanceRequestId>";
  }
  if (!v.state_reason.empty()) {
    xml += "<stateReason><code>" + v.state_reason + "</code><message>" + v.state_reason +
           "</message></stateReason><reason>" + v.state_reason + "</reason>";
  }
  if (!v.client_token.empty()) {
    xml += "<clientToken>" + Escape(v.client_token) + "</clientToken>";
  }
  xml += "<tagSet>";
  for (const auto& [key, value] : v.tags) {
    xml += "<item><key>" + Escape(key) + "</key><value>" + Escape(value) + "</value></item>";
  }
  return xml + "</tagSet></item>";
}

api::HttpResponse FakeEc2::Impl::DescribeInstances(const Params& params) const {
  const std::vector<std::string> ids = List(params, "InstanceId");
  const std::vector<Filter> filters = Filters(params);
  const std::string max_results = Get(params, "MaxResults");
  if (!ids.empty() && !max_results.empty()) {
    return ErrorAnswer(400, "InvalidParameterCombination",
                       "The parameter instancesSet cannot be used with the parameter maxResults");
  }
  std::lock_guard lock(mu_);
  std::vector<const Stored*> selected;
  if (!ids.empty()) {
    for (const std::string& id : ids) {
      if (id.rfind("i-", 0) != 0) {
        return ErrorAnswer(400, "InvalidInstanceID.Malformed",
                           "Invalid id: \"" + Escape(id) + "\"");
      }
      auto it = instances_.find(id);
      if (it == instances_.end()) {
        return ErrorAnswer(400, "InvalidInstanceID.NotFound",
                           "The instance ID '" + Escape(id) + "' does not exist");
      }
      selected.push_back(&it->second);
    }
  } else {
    for (const std::string& id : order_) {
      selected.push_back(&instances_.at(id));
    }
  }
  std::vector<const Stored*> matched;
  for (const Stored* stored : selected) {
    bool keep = true;
    for (const Filter& filter : filters) {
      std::string value;
      if (filter.name.rfind("tag:", 0) == 0) {
        auto tag = stored->view.tags.find(filter.name.substr(4));
        if (tag == stored->view.tags.end()) {
          keep = false;
          break;
        }
        value = tag->second;
      } else if (filter.name == "instance-state-name") {
        value = stored->view.state;
      } else if (filter.name == "instance-id") {
        value = stored->view.instance_id;
      } else if (filter.name == "instance-type") {
        value = stored->view.instance_type;
      } else if (filter.name == "client-token") {
        value = stored->view.client_token;
      } else {
        return ErrorAnswer(400, "InvalidParameterValue",
                           "The filter '" + Escape(filter.name) + "' is invalid");
      }
      keep = keep && Matches(filter, value);
    }
    if (keep) {
      matched.push_back(stored);
    }
  }
  const std::string token = Get(params, "NextToken");
  const auto offset = token.empty() ? std::optional<size_t>(0) : ParseNumber<size_t>(token);
  const auto max = max_results.empty() ? std::optional<int>(1000) : ParseNumber<int>(max_results);
  if (!offset || !max || *max < 5 || *max > 1000) {
    return ErrorAnswer(400, "InvalidParameterValue", "Invalid NextToken or MaxResults");
  }
  const size_t limit = static_cast<size_t>(std::min(std::max(1, options_.page_size), *max));
  std::string body = "<reservationSet>";
  const size_t end = std::min(matched.size(), *offset + limit);
  for (size_t i = *offset; i < end; ++i) {
    body += "<item><reservationId>r-" + matched[i]->view.instance_id.substr(2) +
            "</reservationId><ownerId>123456789012</ownerId><groupSet/><instancesSet>" +
            InstanceXml(*matched[i], matched[i]->view.state) + "</instancesSet></item>";
  }
  body += "</reservationSet>";
  if (end < matched.size()) {
    body += "<nextToken>" + std::to_string(end) + "</nextToken>";
  }
  return Success("DescribeInstances", body);
}

api::HttpResponse FakeEc2::Impl::TerminateInstances(const Params& params) {
  const std::vector<std::string> ids = List(params, "InstanceId");
  if (ids.empty()) {
    return ErrorAnswer(400, "MissingParameter",
                       "The request must contain the parameter InstanceId");
  }
  std::string body = "<instancesSet>";
  for (const std::string& id : ids) {
    std::string previous;
    {
      std::lock_guard lock(mu_);
      if (id.rfind("i-", 0) != 0) {
        return ErrorAnswer(400, "InvalidInstanceID.Malformed",
                           "Invalid id: \"" + Escape(id) + "\"");
      }
      auto it = instances_.find(id);
      if (it == instances_.end()) {
        return ErrorAnswer(400, "InvalidInstanceID.NotFound",
                           "The instance ID '" + Escape(id) + "' does not exist");
      }
      previous = it->second.view.state;
    }
    End(id, "Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown",
        /*interrupted=*/false);
    body += "<item><instanceId>" + id + "</instanceId>" +
            StateXml("currentState", previous == "terminated" ? "terminated" : "shutting-down") +
            StateXml("previousState", previous) + "</item>";
  }
  return Success("TerminateInstances", body + "</instancesSet>");
}

api::HttpResponse FakeEc2::Impl::DescribeInstanceTypeOfferings(const Params& params) const {
  std::string body = "<instanceTypeOfferingSet>";
  const std::string location_type = Get(params, "LocationType");
  for (const auto& type : options_.catalog) {
    bool keep = true;
    for (const Filter& filter : Filters(params)) {
      if (filter.name == "instance-type") {
        keep = keep && Matches(filter, type.instance_type);
      } else if (filter.name == "location") {
        keep = keep && Matches(filter, options_.region);
      }
    }
    if (keep) {
      body += "<item><instanceType>" + type.instance_type + "</instanceType><locationType>" +
              (location_type.empty() ? "region" : Escape(location_type)) +
              "</locationType><location>" + options_.region + "</location></item>";
    }
  }
  return Success("DescribeInstanceTypeOfferings", body + "</instanceTypeOfferingSet>");
}

api::HttpResponse FakeEc2::Impl::DescribeSpotPriceHistory(const Params& params) const {
  const std::vector<std::string> wanted = List(params, "InstanceType");
  std::string body = "<spotPriceHistorySet>";
  for (const auto& type : options_.catalog) {
    if (!type.spot_price || (!wanted.empty() && std::find(wanted.begin(), wanted.end(),
                                                          type.instance_type) == wanted.end())) {
      continue;
    }
    // Two zones; the second one dearer.
    for (int zone = 0; zone < 2; ++zone) {
      body += "<item><instanceType>" + type.instance_type +
              "</instanceType><productDescription>Linux/UNIX</productDescription><spotPrice>" +
              Price(*type.spot_price * (zone == 0 ? 1.0 : 1.1)) + "</spotPrice><timestamp>" +
              core::FormatRfc3339(clock_.Now()) + "</timestamp><availabilityZone>" +
              options_.region + (zone == 0 ? "a" : "b") + "</availabilityZone></item>";
    }
  }
  return Success("DescribeSpotPriceHistory", body + "</spotPriceHistorySet><nextToken/>");
}

bool FakeEc2::Impl::End(const std::string& id, const std::string& reason,
                        const std::string& message, bool interrupted) {
  pid_t pid = 0;
  std::string data_dir;
  {
    std::lock_guard lock(mu_);
    auto it = instances_.find(id);
    if (it == instances_.end() || it->second.view.state == "terminated") {
      return false;
    }
    Stored& stored = it->second;
    stored.view.state = "terminated";
    stored.view.state_reason = reason;
    stored.ledger.ended_at = clock_.Now();
    stored.ledger.interrupted = interrupted;
    pid = stored.ledger.agent_pid;
    data_dir = stored.data_dir;
  }
  if (pid > 0) {
    KillAgent(pid, data_dir);
  }
  return true;
}

FakeEc2::FakeEc2(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

FakeEc2::~FakeEc2() { Stop(); }

core::Result<std::unique_ptr<FakeEc2>> FakeEc2::Start(FakeEc2Options options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  GPUORCH_TRY(impl->Listen());
  return std::unique_ptr<FakeEc2>(new FakeEc2(std::move(impl)));
}

std::string FakeEc2::url() const { return impl_->url(); }
FaultInjector& FakeEc2::faults() { return impl_->faults(); }
std::vector<LedgerEntry> FakeEc2::Ledger() const { return impl_->Ledger(); }
bool FakeEc2::Interrupt(const std::string& id) { return impl_->Interrupt(id); }
void FakeEc2::SetCapacity(const std::string& gpu_type, int available) {
  impl_->SetCapacity(gpu_type, available);
}
void FakeEc2::SetStartAgents(bool start) { impl_->SetStartAgents(start); }
void FakeEc2::Stop() { impl_->Stop(); }
std::optional<FakeEc2Instance> FakeEc2::Instance(const std::string& id) const {
  return impl_->Instance(id);
}
int FakeEc2::RequestCount(const std::string& action) const { return impl_->RequestCount(action); }

}  // namespace gpuorch::fakes
