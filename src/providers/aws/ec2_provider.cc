#include "providers/aws/ec2_provider.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <set>

#include "providers/aws/internal/ec2_query.h"
#include "providers/aws/internal/xml.h"
#include "providers/aws/sigv4.h"

namespace gpuorch::providers {
namespace {

using aws::internal::QueryParams;
using aws::internal::XmlNode;

constexpr char kApiVersion[] = "2016-11-15";
constexpr char kDeploymentTag[] = "gpuorch:deployment";
constexpr char kInstanceIdTag[] = "gpuorch:instance-id";
constexpr int kMaxPages = 50;
constexpr size_t kMaxUserDataBytes = 16 * 1024;  // EC2's limit before base64

bool IsShellName(std::string_view name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name.front()))) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

std::string ShellSingleQuote(std::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  return out + "'";
}

const Ec2InstanceType* FindType(std::string_view instance_type) {
  for (const Ec2InstanceType& type : Ec2GpuInstanceTypes()) {
    if (type.instance_type == instance_type) {
      return &type;
    }
  }
  return nullptr;
}

double ParsePrice(const std::string& text) {
  double value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || !(value >= 0)) {
    return -1;
  }
  return value;
}

// "https://host:port/x" → ("https://host:port", "host:port"); the port is dropped from the Host
// value when it is the scheme's default, as HTTP clients send it.
std::pair<std::string, std::string> SplitEndpoint(std::string endpoint) {
  while (!endpoint.empty() && endpoint.back() == '/') {
    endpoint.pop_back();
  }
  size_t scheme_end = endpoint.find("://");
  size_t host_start = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  size_t host_end = endpoint.find_first_of("/?#", host_start);
  std::string base = endpoint.substr(0, host_end);
  std::string host = base.substr(host_start);
  const std::string scheme = scheme_end == std::string::npos ? "" : endpoint.substr(0, scheme_end);
  if ((scheme == "https" && host.ends_with(":443")) ||
      (scheme == "http" && host.ends_with(":80"))) {
    host = host.substr(0, host.rfind(':'));
  }
  return {base, host};
}

ProviderInstanceStatus MapState(const std::string& state, const std::string& reason_code) {
  const bool spot_reclaimed = reason_code == "Server.SpotInstanceTermination" ||
                              reason_code == "Server.SpotInstanceShutdown";
  if (state == "pending") {
    return ProviderInstanceStatus::kPending;
  }
  if (state == "running") {
    return ProviderInstanceStatus::kRunning;
  }
  if (state == "stopping" || state == "stopped") {
    return spot_reclaimed ? ProviderInstanceStatus::kInterrupted : ProviderInstanceStatus::kStopped;
  }
  if (state == "shutting-down" || state == "terminated") {
    return spot_reclaimed ? ProviderInstanceStatus::kInterrupted
                          : ProviderInstanceStatus::kTerminated;
  }
  return ProviderInstanceStatus::kUnknown;
}

class Ec2Provider final : public Provider {
 public:
  Ec2Provider(AwsOptions options, std::shared_ptr<HttpClient> http, const core::Clock& clock)
      : options_(std::move(options)), http_(std::move(http)), clock_(clock) {
    if (options_.endpoint.empty()) {
      options_.endpoint = "https://ec2." + options_.region + ".amazonaws.com";
    }
    std::tie(base_url_, host_) = SplitEndpoint(options_.endpoint);
  }

  std::string_view Name() const override { return "aws"; }

  bool Configured() const override {
    return !options_.access_key_id.empty() && !options_.secret_access_key.empty() && http_;
  }

  core::Result<std::vector<domain::Offer>> ListOffers() override {
    GPUORCH_ASSIGN_OR_RETURN(std::set<std::string> offered, OfferedTypes());
    GPUORCH_ASSIGN_OR_RETURN(auto spot, SpotPrices(offered));
    std::vector<domain::Offer> offers;
    for (const Ec2InstanceType& type : Ec2GpuInstanceTypes()) {
      if (!offered.count(type.instance_type)) {
        continue;
      }
      domain::Offer offer{.provider = "aws",
                          .offer_id = type.instance_type,
                          .instance_type = type.instance_type,
                          .gpu_type = type.gpu_type,
                          .gpu_count = type.gpu_count,
                          .gpu_memory_gb = type.gpu_memory_gb,
                          .on_demand_price = type.on_demand_price,
                          .region = options_.region,
                          .available = 1,
                          .cpu_count = type.vcpus,
                          .ram_gb = type.ram_gb};
      if (auto it = spot.find(type.instance_type); it != spot.end()) {
        offer.spot_price = it->second;
      }
      offers.push_back(std::move(offer));
    }
    return offers;
  }

  core::Result<ProviderInstance> Create(const CreateInstanceRequest& request) override {
    GPUORCH_ASSIGN_OR_RETURN(QueryParams params, RunInstancesParams(request));
    GPUORCH_ASSIGN_OR_RETURN(XmlNode reply, Call("RunInstances", std::move(params)));
    auto items = reply.Items("instancesSet");
    if (items.empty()) {
      return core::Fail(ProviderError(ProviderCause::kTransient,
                                      "aws: RunInstances: answer without an instance"));
    }
    ProviderInstance instance = ToInstance(*items.front());
    if (instance.tags.instance_id.empty()) {
      instance.tags = TagsFor(request);
    }
    instance.spot = instance.spot || request.spot;
    if (request.spot) {
      instance.price_per_hour = request.max_price_per_hour > 0
                                    ? request.max_price_per_hour
                                    : request.offer.spot_price.value_or(instance.price_per_hour);
    }
    return instance;
  }

  core::Result<ProviderInstance> Describe(const std::string& provider_instance_id) override {
    std::string ec2_code;
    auto reply = Call("DescribeInstances", {{"InstanceId.1", provider_instance_id}}, &ec2_code);
    if (!reply) {
      if (ec2_code == "InvalidInstanceID.NotFound" || ec2_code == "InvalidInstanceID.Malformed") {
        return core::Fail(core::Code::kNotFound,
                          "aws: instance " + provider_instance_id + " not found", "", "not_found");
      }
      return core::Fail(reply.error());
    }
    for (const XmlNode* reservation : reply->Items("reservationSet")) {
      for (const XmlNode* item : reservation->Items("instancesSet")) {
        if (item->ChildText("instanceId") == provider_instance_id) {
          return ToInstance(*item);
        }
      }
    }
    return core::Fail(core::Code::kNotFound, "aws: instance " + provider_instance_id + " not found",
                      "", "not_found");
  }

  core::Result<std::vector<ProviderInstance>> ListOurs() override {
    const std::string deployment = options_.deployment_id;
    if (deployment.empty()) {
      return core::Fail(ProviderError(ProviderCause::kBadRequest,
                                      "aws: no deployment id configured to list our instances"));
    }
    std::vector<ProviderInstance> out;
    std::string next_token;
    for (int page = 0; page < kMaxPages; ++page) {
      QueryParams params = {{"Filter.1.Name", std::string("tag:") + kDeploymentTag},
                            {"Filter.1.Value.1", deployment},
                            {"Filter.2.Name", "instance-state-name"},
                            {"Filter.2.Value.1", "pending"},
                            {"Filter.2.Value.2", "running"},
                            {"Filter.2.Value.3", "shutting-down"},
                            {"Filter.2.Value.4", "stopping"},
                            {"Filter.2.Value.5", "stopped"},
                            {"MaxResults", "1000"}};
      if (!next_token.empty()) {
        params.emplace_back("NextToken", next_token);
      }
      GPUORCH_ASSIGN_OR_RETURN(XmlNode reply, Call("DescribeInstances", std::move(params)));
      for (const XmlNode* reservation : reply.Items("reservationSet")) {
        for (const XmlNode* item : reservation->Items("instancesSet")) {
          ProviderInstance instance = ToInstance(*item);
          // The filters already hold; checked again so another deployment's instance never shows.
          const XmlNode* state = item->Child("instanceState");
          const std::string state_name = state == nullptr ? "" : state->ChildText("name");
          if (instance.tags.deployment_id == deployment && !state_name.empty() &&
              state_name != "terminated") {
            out.push_back(std::move(instance));
          }
        }
      }
      next_token = reply.ChildText("nextToken");
      if (next_token.empty()) {
        return out;
      }
    }
    return out;
  }

  core::Status Terminate(const std::string& provider_instance_id) override {
    std::string ec2_code;
    auto reply = Call("TerminateInstances", {{"InstanceId.1", provider_instance_id}}, &ec2_code);
    if (!reply) {
      if (ec2_code == "InvalidInstanceID.NotFound") {
        return core::Ok();
      }
      return core::Fail(reply.error());
    }
    return core::Ok();
  }

  core::Status Health() override {
    GPUORCH_TRY(Call("DescribeRegions", {{"RegionName.1", options_.region}}));
    return core::Ok();
  }

 private:
  OwnerTags TagsFor(const CreateInstanceRequest& request) const {
    OwnerTags tags = request.tags;
    if (tags.deployment_id.empty()) {
      tags.deployment_id = options_.deployment_id;
    }
    return tags;
  }

  // One signed Query API call: the answer's root element. Errors are ProviderErrors; `ec2_code`,
  // when given, receives the EC2 error code of an error answer (e.g. InvalidInstanceID.NotFound).
  core::Result<XmlNode> Call(const std::string& action, QueryParams params,
                             std::string* ec2_code = nullptr) {
    if (!Configured()) {
      return core::Fail(ProviderError(ProviderCause::kAuth, "aws: no access key configured"));
    }
    params.insert(params.begin(), {{"Action", action}, {"Version", kApiVersion}});
    aws::SigningRequest signing{
        .method = "POST",
        .path = "/",
        .headers = {{"Host", host_},
                    {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}},
        .body = aws::internal::FormEncode(params)};
    aws::SignRequest(signing,
                     aws::Credentials{.access_key_id = options_.access_key_id,
                                      .secret_access_key = options_.secret_access_key,
                                      .session_token = options_.session_token},
                     aws::SigningScope{.region = options_.region, .service = "ec2"}, clock_.Now());
    // Every call is safe to repeat: reads, TerminateInstances, and RunInstances with a ClientToken.
    auto reply = http_->Send(HttpCall{.method = "POST",
                                      .url = base_url_ + "/",
                                      .headers = std::move(signing.headers),
                                      .body = std::move(signing.body),
                                      .idempotent = true,
                                      .timeout = options_.request_timeout});
    const std::string where = "aws: " + action + ": ";
    if (!reply) {
      const ProviderCause cause = reply.error().code == core::Code::kInvalidArgument
                                      ? ProviderCause::kBadRequest
                                      : ProviderCause::kTransient;
      return core::Fail(ProviderError(cause, where + reply.error().message));
    }
    if (reply->status != 200) {
      auto ec2_error = aws::internal::ParseEc2Error(reply->body);
      const std::string code = ec2_error ? ec2_error->code : "";
      const core::Error error =
          ProviderError(aws::internal::Ec2ErrorCause(code, reply->status),
                        where + "HTTP " + std::to_string(reply->status) +
                            (ec2_error ? ": " + ec2_error->code + ": " + ec2_error->message : ""));
      if (ec2_code != nullptr) {
        *ec2_code = code;
      }
      return core::Fail(error);
    }
    auto root = aws::internal::ParseXml(reply->body);
    if (!root || root->name != action + "Response") {
      return core::Fail(ProviderError(
          ProviderCause::kTransient, where + "malformed answer (" +
                                         (root ? "unexpected root element" : root.error().message) +
                                         ")"));
    }
    return std::move(*root);
  }

  core::Result<std::set<std::string>> OfferedTypes() {
    QueryParams base = {{"LocationType", "region"},
                        {"Filter.1.Name", "location"},
                        {"Filter.1.Value.1", options_.region},
                        {"Filter.2.Name", "instance-type"}};
    int n = 0;
    for (const Ec2InstanceType& type : Ec2GpuInstanceTypes()) {
      base.emplace_back("Filter.2.Value." + std::to_string(++n), type.instance_type);
    }
    std::set<std::string> offered;
    std::string next_token;
    for (int page = 0; page < kMaxPages; ++page) {
      QueryParams params = base;
      if (!next_token.empty()) {
        params.emplace_back("NextToken", next_token);
      }
      GPUORCH_ASSIGN_OR_RETURN(XmlNode reply,
                               Call("DescribeInstanceTypeOfferings", std::move(params)));
      for (const XmlNode* item : reply.Items("instanceTypeOfferingSet")) {
        offered.insert(item->ChildText("instanceType"));
      }
      next_token = reply.ChildText("nextToken");
      if (next_token.empty()) {
        break;
      }
    }
    return offered;
  }

  // The lowest current spot price per type across the region's zones. StartTime = now asks EC2
  // for the price in effect now in each zone.
  core::Result<std::map<std::string, double>> SpotPrices(const std::set<std::string>& types) {
    std::map<std::string, double> prices;
    if (types.empty()) {
      return prices;
    }
    QueryParams base;
    int n = 0;
    for (const std::string& type : types) {
      base.emplace_back("InstanceType." + std::to_string(++n), type);
    }
    base.emplace_back("ProductDescription.1", "Linux/UNIX");
    base.emplace_back("StartTime", core::FormatRfc3339(clock_.Now()));
    std::string next_token;
    for (int page = 0; page < kMaxPages; ++page) {
      QueryParams params = base;
      if (!next_token.empty()) {
        params.emplace_back("NextToken", next_token);
      }
      GPUORCH_ASSIGN_OR_RETURN(XmlNode reply, Call("DescribeSpotPriceHistory", std::move(params)));
      for (const XmlNode* item : reply.Items("spotPriceHistorySet")) {
        const std::string type = item->ChildText("instanceType");
        const double price = ParsePrice(item->ChildText("spotPrice"));
        if (!types.count(type) || price <= 0) {
          continue;
        }
        auto [it, inserted] = prices.emplace(type, price);
        if (!inserted) {
          it->second = std::min(it->second, price);
        }
      }
      next_token = reply.ChildText("nextToken");
      if (next_token.empty()) {
        break;
      }
    }
    return prices;
  }

  core::Result<QueryParams> RunInstancesParams(const CreateInstanceRequest& request) const {
    const Ec2InstanceType* type = FindType(request.offer.offer_id);
    if (type == nullptr) {
      return core::Fail(
          ProviderError(ProviderCause::kBadRequest,
                        "aws: unknown instance type '" + request.offer.offer_id + "'"));
    }
    const std::string image = request.image.empty() ? options_.ami_id : request.image;
    if (image.empty()) {
      return core::Fail(ProviderError(ProviderCause::kBadRequest, "aws: no AMI configured"));
    }
    const OwnerTags tags = TagsFor(request);
    if (tags.deployment_id.empty()) {
      return core::Fail(ProviderError(ProviderCause::kBadRequest,
                                      "aws: a deployment id is required to tag the instance"));
    }
    if (tags.instance_id.empty() || tags.instance_id.size() > 64) {
      return core::Fail(ProviderError(ProviderCause::kBadRequest,
                                      "aws: an instance id of 1 to 64 characters is required"));
    }
    auto script = Ec2UserDataScript(request.env);
    if (!script) {
      return core::Fail(
          ProviderError(ProviderCause::kBadRequest, "aws: " + script.error().message));
    }
    if (script->size() > kMaxUserDataBytes) {
      return core::Fail(ProviderError(ProviderCause::kBadRequest, "aws: user data over 16 KiB"));
    }
    QueryParams params = {
        {"ImageId", image},
        {"InstanceType", type->instance_type},
        {"MinCount", "1"},
        {"MaxCount", "1"},
        {"ClientToken", tags.instance_id},
        {"UserData", aws::internal::Base64Encode(*script)},
        {"InstanceInitiatedShutdownBehavior", "terminate"},
        // The root device of Ubuntu-based (Deep Learning) AMIs.
        {"BlockDeviceMapping.1.DeviceName", "/dev/sda1"},
        {"BlockDeviceMapping.1.Ebs.VolumeSize", std::to_string(std::max(8, request.disk_gb))},
        {"BlockDeviceMapping.1.Ebs.VolumeType", "gp3"},
        {"BlockDeviceMapping.1.Ebs.DeleteOnTermination", "true"},
        {"TagSpecification.1.ResourceType", "instance"},
        {"TagSpecification.1.Tag.1.Key", kDeploymentTag},
        {"TagSpecification.1.Tag.1.Value", tags.deployment_id},
        {"TagSpecification.1.Tag.2.Key", kInstanceIdTag},
        {"TagSpecification.1.Tag.2.Value", tags.instance_id},
        {"TagSpecification.1.Tag.3.Key", "Name"},
        {"TagSpecification.1.Tag.3.Value", tags.instance_id}};
    if (request.spot) {
      params.insert(
          params.end(),
          {{"InstanceMarketOptions.MarketType", "spot"},
           {"InstanceMarketOptions.SpotOptions.SpotInstanceType", "one-time"},
           {"InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior", "terminate"}});
      if (request.max_price_per_hour > 0) {
        char price[32];
        std::snprintf(price, sizeof(price), "%.4f", request.max_price_per_hour);
        params.emplace_back("InstanceMarketOptions.SpotOptions.MaxPrice", price);
      }
    }
    if (!options_.key_name.empty()) {
      params.emplace_back("KeyName", options_.key_name);
    }
    if (!options_.subnet_id.empty()) {
      params.emplace_back("SubnetId", options_.subnet_id);
    }
    if (!options_.security_group_id.empty()) {
      params.emplace_back("SecurityGroupId.1", options_.security_group_id);
    }
    return params;
  }

  ProviderInstance ToInstance(const XmlNode& item) const {
    ProviderInstance out;
    out.provider_instance_id = item.ChildText("instanceId");
    for (const XmlNode* tag : item.Items("tagSet")) {
      const std::string key = tag->ChildText("key");
      if (key == kDeploymentTag) {
        out.tags.deployment_id = tag->ChildText("value");
      } else if (key == kInstanceIdTag) {
        out.tags.instance_id = tag->ChildText("value");
      }
    }
    const XmlNode* state_node = item.Child("instanceState");
    const std::string state = state_node == nullptr ? "" : state_node->ChildText("name");
    const XmlNode* reason = item.Child("stateReason");
    const std::string reason_code = reason == nullptr ? "" : reason->ChildText("code");
    out.status = MapState(state, reason_code);
    out.status_detail = state;
    if (!reason_code.empty() && reason_code != state) {
      out.status_detail += " (" + reason_code + ")";
    }
    out.offer_id = item.ChildText("instanceType");
    out.spot = item.ChildText("instanceLifecycle") == "spot";
    if (const Ec2InstanceType* type = FindType(out.offer_id)) {
      out.gpu_type = type->gpu_type;
      out.gpu_count = type->gpu_count;
      // A spot instance's billed rate is not part of the answer; 0 means unknown.
      out.price_per_hour = out.spot ? 0 : type->on_demand_price;
    }
    out.region = options_.region;
    out.public_ip = item.ChildText("ipAddress");
    return out;
  }

  AwsOptions options_;
  std::shared_ptr<HttpClient> http_;
  const core::Clock& clock_;
  std::string base_url_;
  std::string host_;
};

}  // namespace

const std::vector<Ec2InstanceType>& Ec2GpuInstanceTypes() {
  static const std::vector<Ec2InstanceType> types = {
      {"g5.xlarge", "A10G", 1, 24, 4, 16, 1.006},
      {"g6.xlarge", "L4", 1, 24, 4, 16, 0.8048},
      {"g6.8xlarge", "L4", 1, 24, 32, 128, 2.0144},
      {"g6e.xlarge", "L40S", 1, 48, 4, 32, 1.861},
      {"g6e.8xlarge", "L40S", 1, 48, 32, 256, 4.52856},
      {"g6e.12xlarge", "L40S", 4, 48, 48, 384, 10.49264},
      {"p4d.24xlarge", "A100", 8, 40, 96, 1152, 21.957642},
      {"p4de.24xlarge", "A100", 8, 80, 96, 1152, 27.44705},
      {"p5.4xlarge", "H100", 1, 80, 16, 256, 6.88},
      {"p5.48xlarge", "H100", 8, 80, 192, 2048, 55.04},
      {"p5en.48xlarge", "H200", 8, 141, 192, 2048, 63.296},
      {"p6-b200.48xlarge", "B200", 8, 179, 192, 2048, 113.9328},
  };
  return types;
}

core::Result<std::string> Ec2UserDataScript(const std::map<std::string, std::string>& env) {
  std::string script = "#!/bin/bash\n";
  for (const auto& [name, value] : env) {
    if (!IsShellName(name)) {
      return core::Fail(core::Code::kInvalidArgument,
                        "env name '" + name + "' is not a shell variable name", "env");
    }
    script += "export " + name + "=" + ShellSingleQuote(value) + "\n";
  }
  script += "exec gpuorch agent\n";
  return script;
}

std::unique_ptr<Provider> MakeEc2Provider(AwsOptions options, std::shared_ptr<HttpClient> http,
                                          const core::Clock& clock) {
  return std::make_unique<Ec2Provider>(std::move(options), std::move(http), clock);
}

}  // namespace gpuorch::providers
