// The EC2 adapter against FakeEc2 over real HTTP on loopback (signed requests verified by the
// fake), fault by fault; plus the adapter's XML reader on well-formed and hostile input.
#include "providers/aws/ec2_provider.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "core/clock.h"
#include "fakes/fake_ec2.h"
#include "providers/aws/internal/ec2_query.h"
#include "providers/aws/internal/xml.h"
#include "testing/temp_dir.h"

namespace gpuorch::providers {
namespace {

using namespace std::chrono_literals;
using fakes::Fault;
using fakes::FaultKind;

constexpr char kKeyId[] = "AKIDTESTKEY";
constexpr char kSecret[] = "test/secret+key";

class Ec2ProviderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto fake =
        fakes::FakeEc2::Start(fakes::FakeEc2Options{.base = {.work_dir = "/nonexistent",
                                                             .api_key = kKeyId,
                                                             .secret = kSecret,
                                                             .start_agents = false},
                                                    .catalog = {{.instance_type = "g5.xlarge",
                                                                 .gpu_type = "A10G",
                                                                 .gpu_count = 1,
                                                                 .gpu_memory_gb = 24,
                                                                 .on_demand_price = 1.006,
                                                                 .spot_price = 0.45},
                                                                {.instance_type = "p5.4xlarge",
                                                                 .gpu_type = "H100",
                                                                 .gpu_count = 1,
                                                                 .gpu_memory_gb = 80,
                                                                 .on_demand_price = 6.88},
                                                                {.instance_type = "x9.huge",
                                                                 .gpu_type = "X9",
                                                                 .gpu_count = 2,
                                                                 .gpu_memory_gb = 8,
                                                                 .on_demand_price = 0.5,
                                                                 .spot_price = 0.1}},
                                                    .page_size = 2,
                                                    .clock = &clock_});
    ASSERT_TRUE(fake.has_value()) << fake.error().message;
    fake_ = std::move(*fake);
    http_ = std::shared_ptr<HttpClient>(MakeCurlHttpClient(
        clock_,
        HttpClientOptions{
            .max_attempts = 2, .base_backoff = 100ms, .max_backoff = 1s, .connect_timeout = 1s},
        [] { return 0.0; }));
    provider_ = Make("dep-a");
  }

  std::unique_ptr<Provider> Make(std::string deployment, std::string secret = kSecret,
                                 std::string key_id = kKeyId) {
    return MakeEc2Provider(AwsOptions{.access_key_id = std::move(key_id),
                                      .secret_access_key = std::move(secret),
                                      .endpoint = fake_->url(),
                                      .deployment_id = std::move(deployment),
                                      .ami_id = "ami-0123456789abcdef0",
                                      .request_timeout = 300ms},
                           http_, clock_);
  }

  static domain::Offer G5() {
    return domain::Offer{.provider = "aws",
                         .offer_id = "g5.xlarge",
                         .instance_type = "g5.xlarge",
                         .gpu_type = "A10G",
                         .gpu_count = 1,
                         .on_demand_price = 1.006,
                         .spot_price = 0.45};
  }

  static CreateInstanceRequest Request(std::string instance_id, bool spot = false) {
    return CreateInstanceRequest{
        .tags = {.deployment_id = "dep-a", .instance_id = std::move(instance_id)},
        .offer = G5(),
        .spot = spot,
        .env = {{"GPUORCH_SERVER", "http://10.0.0.1:8000"}, {"GPUORCH_JOIN_TOKEN", "jt-123"}}};
  }

  ProviderCause CauseOfCreate() {
    auto created = provider_->Create(Request("inst-fault"));
    return created.has_value() ? ProviderCause::kUnknown : CauseOf(created.error());
  }

  core::FakeClock clock_;
  std::unique_ptr<fakes::FakeEc2> fake_;
  std::shared_ptr<HttpClient> http_;
  std::unique_ptr<Provider> provider_;
};

TEST_F(Ec2ProviderTest, WithoutKeysItIsNotConfiguredAndMakesNoCalls) {
  auto provider = MakeEc2Provider(AwsOptions{.endpoint = fake_->url(), .deployment_id = "dep-a"},
                                  http_, clock_);
  EXPECT_FALSE(provider->Configured());
  EXPECT_EQ(provider->Name(), "aws");
  auto offers = provider->ListOffers();
  ASSERT_FALSE(offers.has_value());
  EXPECT_EQ(CauseOf(offers.error()), ProviderCause::kAuth);
  EXPECT_FALSE(provider->Health().has_value());
  EXPECT_EQ(fake_->RequestCount(), 0);
  EXPECT_TRUE(provider_->Configured());
}

TEST_F(Ec2ProviderTest, HealthIsASignedCall) {
  ASSERT_TRUE(provider_->Health().has_value());
  EXPECT_EQ(fake_->RequestCount("DescribeRegions"), 1);
}

TEST_F(Ec2ProviderTest, WrongSecretOrKeyIsAuth) {
  std::vector<std::unique_ptr<Provider>> providers;
  providers.push_back(Make("dep-a", "wrong-secret"));
  providers.push_back(Make("dep-a", kSecret, "AKIDOTHER"));
  for (const auto& provider : providers) {
    auto health = provider->Health();
    ASSERT_FALSE(health.has_value());
    EXPECT_EQ(CauseOf(health.error()), ProviderCause::kAuth);
    EXPECT_EQ(health.error().code, core::Code::kUnauthenticated);
    EXPECT_EQ(health.error().message.find("wrong-secret"), std::string::npos);
  }
}

TEST_F(Ec2ProviderTest, OffersAreTheBuiltInTypesTheRegionOffersWithSpotPrices) {
  auto offers = provider_->ListOffers();
  ASSERT_TRUE(offers.has_value()) << offers.error().message;
  // x9.huge is not a known GPU type; the built-in types the fake does not offer are left out.
  ASSERT_EQ(offers->size(), 2u);
  const domain::Offer& g5 = (*offers)[0];
  EXPECT_EQ(g5.provider, "aws");
  EXPECT_EQ(g5.offer_id, "g5.xlarge");
  EXPECT_EQ(g5.gpu_type, "A10G");
  EXPECT_EQ(g5.gpu_count, 1);
  EXPECT_EQ(g5.gpu_memory_gb, 24);
  EXPECT_DOUBLE_EQ(g5.on_demand_price, 1.006);
  ASSERT_TRUE(g5.spot_price.has_value());
  EXPECT_NEAR(*g5.spot_price, 0.45, 1e-9);  // the cheaper of the two zones
  EXPECT_EQ(g5.region, "us-east-1");
  EXPECT_EQ(g5.cpu_count, 4);
  EXPECT_EQ(g5.ram_gb, 16);
  const domain::Offer& p5 = (*offers)[1];
  EXPECT_EQ(p5.offer_id, "p5.4xlarge");
  EXPECT_EQ(p5.gpu_type, "H100");
  EXPECT_FALSE(p5.spot_price.has_value());
  EXPECT_EQ(fake_->RequestCount("DescribeInstanceTypeOfferings"), 1);
  EXPECT_EQ(fake_->RequestCount("DescribeSpotPriceHistory"), 1);
}

TEST_F(Ec2ProviderTest, CreateTagsTheInstanceAndSendsTheUserDataScript) {
  CreateInstanceRequest request = Request("inst-1");
  request.env["QUOTED"] = "it's a \"test\" $HOME `x`";
  auto created = provider_->Create(request);
  ASSERT_TRUE(created.has_value()) << created.error().message;
  EXPECT_EQ(created->provider_instance_id.rfind("i-", 0), 0u);
  EXPECT_EQ(created->status, ProviderInstanceStatus::kPending);
  EXPECT_EQ(created->tags.deployment_id, "dep-a");
  EXPECT_EQ(created->tags.instance_id, "inst-1");
  EXPECT_EQ(created->gpu_type, "A10G");
  EXPECT_EQ(created->offer_id, "g5.xlarge");
  EXPECT_FALSE(created->spot);

  auto seen = fake_->Instance(created->provider_instance_id);
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->tags["gpuorch:deployment"], "dep-a");
  EXPECT_EQ(seen->tags["gpuorch:instance-id"], "inst-1");
  EXPECT_EQ(seen->tags["Name"], "inst-1");
  EXPECT_EQ(seen->client_token, "inst-1");
  EXPECT_EQ(seen->image_id, "ami-0123456789abcdef0");
  EXPECT_EQ(seen->params["InstanceType"], "g5.xlarge");
  EXPECT_EQ(seen->params["BlockDeviceMapping.1.Ebs.VolumeSize"], "50");
  EXPECT_EQ(seen->params.count("InstanceMarketOptions.MarketType"), 0u);
  auto script = Ec2UserDataScript(request.env);
  ASSERT_TRUE(script.has_value());
  EXPECT_EQ(seen->user_data, *script);
  EXPECT_NE(seen->user_data.find("export GPUORCH_JOIN_TOKEN='jt-123'\n"), std::string::npos);
  EXPECT_NE(seen->user_data.find("export QUOTED='it'\\''s a \"test\" $HOME `x`'\n"),
            std::string::npos)
      << seen->user_data;
  EXPECT_TRUE(seen->user_data.ends_with("exec gpuorch agent\n"));

  auto ledger = fake_->Ledger();
  ASSERT_EQ(ledger.size(), 1u);
  EXPECT_EQ(ledger[0].our_instance_id, "inst-1");
  EXPECT_EQ(ledger[0].deployment_id, "dep-a");
  EXPECT_TRUE(ledger[0].live());
}

TEST_F(Ec2ProviderTest, UserDataScriptQuotingSurvivesAShell) {
  const std::string value = "a'b\"c $HOME `id` \\n\nnext line '' end";
  auto script = Ec2UserDataScript({{"V", value}});
  ASSERT_TRUE(script.has_value());
  std::string shell = *script;
  shell.replace(shell.find("exec gpuorch agent"), 18, "printf '%s' \"$V\"");
  FILE* pipe = popen(("bash -c " + std::string("'") +
                      [&] {
                        std::string quoted;
                        for (char c : shell) {
                          quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
                        }
                        return quoted;
                      }() +
                      "'")
                         .c_str(),
                     "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[256];
  while (size_t n = fread(buf, 1, sizeof(buf), pipe)) {
    out.append(buf, n);
  }
  pclose(pipe);
  EXPECT_EQ(out, value);
  EXPECT_FALSE(Ec2UserDataScript({{"BAD-NAME", "x"}}).has_value());
  EXPECT_FALSE(Ec2UserDataScript({{"1X", "x"}}).has_value());
}

TEST_F(Ec2ProviderTest, CreateIsIdempotentByClientToken) {
  auto first = provider_->Create(Request("inst-same"));
  auto second = provider_->Create(Request("inst-same"));
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(first->provider_instance_id, second->provider_instance_id);
  EXPECT_EQ(fake_->Ledger().size(), 1u);
  EXPECT_EQ(fake_->RequestCount("RunInstances"), 2);
}

TEST_F(Ec2ProviderTest, RetriedCreateAfterA500FindsTheSameInstance) {
  fake_->faults().Add(Fault{.kind = FaultKind::kHttpStatus, .operation = "create", .status = 500});
  auto created = provider_->Create(Request("inst-retry"));
  ASSERT_TRUE(created.has_value()) << created.error().message;
  EXPECT_EQ(fake_->RequestCount("RunInstances"), 2);
  EXPECT_EQ(fake_->Ledger().size(), 1u);
}

TEST_F(Ec2ProviderTest, SpotCreateSendsMarketOptions) {
  CreateInstanceRequest request = Request("inst-spot", /*spot=*/true);
  request.max_price_per_hour = 0.9;
  auto created = provider_->Create(request);
  ASSERT_TRUE(created.has_value()) << created.error().message;
  EXPECT_TRUE(created->spot);
  auto seen = fake_->Instance(created->provider_instance_id);
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->params["InstanceMarketOptions.MarketType"], "spot");
  EXPECT_EQ(seen->params["InstanceMarketOptions.SpotOptions.SpotInstanceType"], "one-time");
  EXPECT_EQ(seen->params["InstanceMarketOptions.SpotOptions.MaxPrice"], "0.9000");
  auto ledger = fake_->Ledger();
  ASSERT_EQ(ledger.size(), 1u);
  EXPECT_TRUE(ledger[0].spot);
  EXPECT_NEAR(ledger[0].price_per_hour, 0.45, 1e-9);

  CreateInstanceRequest low = Request("inst-low", /*spot=*/true);
  low.max_price_per_hour = 0.1;
  auto refused = provider_->Create(low);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(CauseOf(refused.error()), ProviderCause::kNoCapacity);
}

TEST_F(Ec2ProviderTest, CreateRefusesWhatItCannotSendWithoutCallingEc2) {
  CreateInstanceRequest unknown = Request("inst-x");
  unknown.offer.offer_id = "m5.large";
  auto refused = provider_->Create(unknown);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(CauseOf(refused.error()), ProviderCause::kBadRequest);
  CreateInstanceRequest bad_env = Request("inst-y");
  bad_env.env["NOT A NAME"] = "x";
  refused = provider_->Create(bad_env);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(CauseOf(refused.error()), ProviderCause::kBadRequest);
  // Without a deployment id the instance could not be found again: refused, and never listed.
  auto anonymous = Make("");
  CreateInstanceRequest untagged = Request("inst-z");
  untagged.tags.deployment_id = "";
  refused = anonymous->Create(untagged);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(CauseOf(refused.error()), ProviderCause::kBadRequest);
  auto listed = anonymous->ListOurs();
  ASSERT_FALSE(listed.has_value());
  EXPECT_EQ(CauseOf(listed.error()), ProviderCause::kBadRequest);
  EXPECT_EQ(fake_->RequestCount(), 0);
}

TEST_F(Ec2ProviderTest, DescribeMapsStateAndUnknownIsNotFound) {
  auto created = provider_->Create(Request("inst-d"));
  ASSERT_TRUE(created.has_value());
  auto described = provider_->Describe(created->provider_instance_id);
  ASSERT_TRUE(described.has_value()) << described.error().message;
  EXPECT_EQ(described->status, ProviderInstanceStatus::kRunning);
  EXPECT_EQ(described->status_detail, "running");
  EXPECT_EQ(described->tags.instance_id, "inst-d");
  EXPECT_EQ(described->gpu_count, 1);
  EXPECT_DOUBLE_EQ(described->price_per_hour, 1.006);
  EXPECT_EQ(described->public_ip, "127.0.0.1");

  auto missing = provider_->Describe("i-0000000000000dead");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, core::Code::kNotFound);
  missing = provider_->Describe("garbage");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, core::Code::kNotFound);
}

TEST_F(Ec2ProviderTest, ListOursSkipsOtherDeploymentsAndTerminatedInstances) {
  auto other = Make("dep-b");
  CreateInstanceRequest foreign = Request("inst-b1");
  foreign.tags.deployment_id = "dep-b";
  ASSERT_TRUE(other->Create(foreign).has_value());
  std::vector<std::string> ours;
  for (const char* id : {"inst-a1", "inst-a2", "inst-a3", "inst-a4"}) {
    auto created = provider_->Create(Request(id));
    ASSERT_TRUE(created.has_value());
    ours.push_back(created->provider_instance_id);
  }
  ASSERT_TRUE(provider_->Terminate(ours[3]).has_value());

  // Three of ours live, with a page size of two: the adapter follows nextToken.
  auto listed = provider_->ListOurs();
  ASSERT_TRUE(listed.has_value()) << listed.error().message;
  ASSERT_EQ(listed->size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*listed)[i].provider_instance_id, ours[i]);
    EXPECT_EQ((*listed)[i].tags.deployment_id, "dep-a");
  }
  EXPECT_GE(fake_->RequestCount("DescribeInstances"), 2);

  auto theirs = other->ListOurs();
  ASSERT_TRUE(theirs.has_value());
  ASSERT_EQ(theirs->size(), 1u);
  EXPECT_EQ((*theirs)[0].tags.instance_id, "inst-b1");
}

TEST_F(Ec2ProviderTest, TerminateIsIdempotent) {
  auto created = provider_->Create(Request("inst-t"));
  ASSERT_TRUE(created.has_value());
  ASSERT_TRUE(provider_->Terminate(created->provider_instance_id).has_value());
  ASSERT_TRUE(provider_->Terminate(created->provider_instance_id).has_value());
  ASSERT_TRUE(provider_->Terminate("i-00000000000000bad").has_value());
  auto ledger = fake_->Ledger();
  ASSERT_EQ(ledger.size(), 1u);
  EXPECT_FALSE(ledger[0].live());
  EXPECT_FALSE(ledger[0].interrupted);
  auto described = provider_->Describe(created->provider_instance_id);
  ASSERT_TRUE(described.has_value());
  EXPECT_EQ(described->status, ProviderInstanceStatus::kTerminated);
}

TEST_F(Ec2ProviderTest, SpotInterruptionIsSeenAsInterrupted) {
  auto created = provider_->Create(Request("inst-int", /*spot=*/true));
  ASSERT_TRUE(created.has_value());
  ASSERT_TRUE(fake_->Interrupt(created->provider_instance_id));
  EXPECT_FALSE(fake_->Interrupt(created->provider_instance_id));
  auto described = provider_->Describe(created->provider_instance_id);
  ASSERT_TRUE(described.has_value());
  EXPECT_EQ(described->status, ProviderInstanceStatus::kInterrupted);
  EXPECT_NE(described->status_detail.find("Server.SpotInstanceTermination"), std::string::npos);
  EXPECT_TRUE(described->spot);
  auto ledger = fake_->Ledger();
  ASSERT_EQ(ledger.size(), 1u);
  EXPECT_TRUE(ledger[0].interrupted);
  EXPECT_FALSE(ledger[0].live());
  auto listed = provider_->ListOurs();
  ASSERT_TRUE(listed.has_value());
  EXPECT_TRUE(listed->empty());
}

TEST_F(Ec2ProviderTest, CapacityErrorsAreNoCapacity) {
  fake_->SetCapacity("A10G", 1);
  ASSERT_TRUE(provider_->Create(Request("inst-c1")).has_value());
  EXPECT_EQ(CauseOfCreate(), ProviderCause::kNoCapacity);
  fake_->SetCapacity("A10G", 5);
  fake_->faults().Add(Fault{.kind = FaultKind::kNoCapacity, .operation = "create", .times = -1});
  EXPECT_EQ(CauseOfCreate(), ProviderCause::kNoCapacity);
}

TEST_F(Ec2ProviderTest, QuotaAndAuthFaultsMapToTheirCauses) {
  fake_->faults().Add(Fault{.kind = FaultKind::kQuota, .operation = "create"});
  EXPECT_EQ(CauseOfCreate(), ProviderCause::kQuota);
  fake_->faults().Add(Fault{.kind = FaultKind::kAuth, .operation = "create"});
  EXPECT_EQ(CauseOfCreate(), ProviderCause::kAuth);
  fake_->faults().Add(Fault{.kind = FaultKind::kHttpStatus, .operation = "create", .status = 400});
  EXPECT_EQ(CauseOfCreate(), ProviderCause::kBadRequest);
}

TEST_F(Ec2ProviderTest, ThrottlingAfterRetriesIsRateLimited) {
  fake_->faults().Add(
      Fault{.kind = FaultKind::kHttpStatus, .operation = "list", .status = 503, .times = -1});
  const auto before = clock_.MonotonicNow();
  auto listed = provider_->ListOurs();
  ASSERT_FALSE(listed.has_value());
  EXPECT_EQ(CauseOf(listed.error()), ProviderCause::kRateLimited);
  EXPECT_EQ(listed.error().code, core::Code::kUnavailable);
  EXPECT_EQ(clock_.MonotonicNow() - before, 100ms);  // one backoff between the two attempts
}

TEST_F(Ec2ProviderTest, RetryAfterIsHonouredAndTheCallSucceeds) {
  fake_->faults().Add(Fault{.kind = FaultKind::kHttpStatus,
                            .operation = "offers",
                            .status = 503,
                            .retry_after_seconds = 3});
  const auto before = clock_.MonotonicNow();
  auto offers = provider_->ListOffers();
  ASSERT_TRUE(offers.has_value()) << offers.error().message;
  EXPECT_EQ(clock_.MonotonicNow() - before, 3s);
}

TEST_F(Ec2ProviderTest, ServerErrorsAndTimeoutsAreTransient) {
  fake_->faults().Add(
      Fault{.kind = FaultKind::kHttpStatus, .operation = "describe", .status = 500, .times = 2});
  auto described = provider_->Describe("i-00000000000000001");
  ASSERT_FALSE(described.has_value());
  EXPECT_EQ(CauseOf(described.error()), ProviderCause::kTransient);

  fake_->faults().Add(
      Fault{.kind = FaultKind::kTimeout, .operation = "terminate", .delay = 5s, .times = 2});
  auto terminated = provider_->Terminate("i-00000000000000001");
  ASSERT_FALSE(terminated.has_value());
  EXPECT_EQ(CauseOf(terminated.error()), ProviderCause::kTransient);
  EXPECT_NE(terminated.error().message.find("127.0.0.1"), std::string::npos);
}

TEST_F(Ec2ProviderTest, MalformedXmlIsTransient) {
  for (const char* operation : {"offers", "create", "describe", "list", "terminate"}) {
    fake_->faults().Add(Fault{.kind = FaultKind::kMalformed, .operation = operation});
  }
  auto offers = provider_->ListOffers();
  ASSERT_FALSE(offers.has_value());
  EXPECT_EQ(CauseOf(offers.error()), ProviderCause::kTransient);
  EXPECT_EQ(CauseOfCreate(), ProviderCause::kTransient);
  auto described = provider_->Describe("i-00000000000000001");
  ASSERT_FALSE(described.has_value());
  EXPECT_EQ(CauseOf(described.error()), ProviderCause::kTransient);
  auto listed = provider_->ListOurs();
  ASSERT_FALSE(listed.has_value());
  EXPECT_EQ(CauseOf(listed.error()), ProviderCause::kTransient);
  auto terminated = provider_->Terminate("i-00000000000000001");
  ASSERT_FALSE(terminated.has_value());
  EXPECT_EQ(CauseOf(terminated.error()), ProviderCause::kTransient);
}

// The NUL-separated environment of a process, once it holds `marker` (after its exec); "" if never.
std::string EnvironOnceItHas(pid_t pid, const std::string& marker) {
  for (int i = 0; i < 200; ++i) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/environ");
    std::stringstream buffer;
    buffer << in.rdbuf();
    std::string env = buffer.str();
    if (env.find(marker) != std::string::npos) {
      return env;
    }
    std::this_thread::sleep_for(10ms);
  }
  return "";
}

TEST_F(Ec2ProviderTest, CreateStartsAnAgentWithTheUserDataEnvAndTerminateKillsIt) {
  testing::TempDir work;
  auto fake = fakes::FakeEc2::Start(
      fakes::FakeEc2Options{.base = {.agent_binary = std::string(GPUORCH_BIN_DIR) + "/gpuorch",
                                     .work_dir = work.path().string(),
                                     .api_key = kKeyId,
                                     .secret = kSecret},
                            .clock = &clock_});
  ASSERT_TRUE(fake.has_value());
  auto provider = MakeEc2Provider(AwsOptions{.access_key_id = kKeyId,
                                             .secret_access_key = kSecret,
                                             .endpoint = (*fake)->url(),
                                             .deployment_id = "dep-a",
                                             .ami_id = "ami-1"},
                                  http_, clock_);
  CreateInstanceRequest request = Request("inst-agent");
  request.offer.offer_id = "p4de.24xlarge";
  request.env["EXTRA_SETTING"] = "it's here";
  auto created = provider->Create(request);
  ASSERT_TRUE(created.has_value()) << created.error().message;
  auto ledger = (*fake)->Ledger();
  ASSERT_EQ(ledger.size(), 1u);
  const pid_t pid = ledger[0].agent_pid;
  ASSERT_GT(pid, 0);
  const std::string env = EnvironOnceItHas(pid, "GPUORCH_NODE_NAME=");
  ASSERT_FALSE(env.empty());
  const std::string id = created->provider_instance_id;
  for (const std::string& entry :
       {"GPUORCH_NODE_NAME=" + id, std::string("GPUORCH_LOCAL_GPUS=A100:8:80"),
        std::string("GPUORCH_SERVER=http://10.0.0.1:8000"),
        std::string("GPUORCH_JOIN_TOKEN=jt-123"),
        "GPUORCH_DATA_DIR=" + work.path().string() + "/" + id,
        std::string("EXTRA_SETTING=it's here")}) {
    EXPECT_NE(env.find(std::string(1, '\0') + entry + std::string(1, '\0')), std::string::npos)
        << entry;
  }
  ASSERT_TRUE(provider->Terminate(id).has_value());
  EXPECT_EQ(kill(pid, 0), -1);  // killed and reaped
  EXPECT_EQ(errno, ESRCH);
  EXPECT_FALSE((*fake)->Ledger()[0].live());

  // Without start_agents nothing is started.
  (*fake)->SetStartAgents(false);
  auto quiet = provider->Create(Request("inst-quiet"));
  ASSERT_TRUE(quiet.has_value());
  EXPECT_EQ((*fake)->Ledger()[1].agent_pid, 0);
}

TEST(Ec2ErrorCauseTest, CodesAndStatusesMapToCauses) {
  using aws::internal::Ec2ErrorCause;
  EXPECT_EQ(Ec2ErrorCause("InsufficientInstanceCapacity", 500), ProviderCause::kNoCapacity);
  EXPECT_EQ(Ec2ErrorCause("InsufficientHostCapacity", 500), ProviderCause::kNoCapacity);
  EXPECT_EQ(Ec2ErrorCause("Unsupported", 400), ProviderCause::kNoCapacity);
  EXPECT_EQ(Ec2ErrorCause("InstanceLimitExceeded", 400), ProviderCause::kQuota);
  EXPECT_EQ(Ec2ErrorCause("VcpuLimitExceeded", 400), ProviderCause::kQuota);
  EXPECT_EQ(Ec2ErrorCause("MaxSpotInstanceCountExceeded", 400), ProviderCause::kQuota);
  EXPECT_EQ(Ec2ErrorCause("AuthFailure", 401), ProviderCause::kAuth);
  EXPECT_EQ(Ec2ErrorCause("UnauthorizedOperation", 403), ProviderCause::kAuth);
  EXPECT_EQ(Ec2ErrorCause("SignatureDoesNotMatch", 403), ProviderCause::kAuth);
  EXPECT_EQ(Ec2ErrorCause("InvalidClientTokenId", 403), ProviderCause::kAuth);
  EXPECT_EQ(Ec2ErrorCause("RequestLimitExceeded", 503), ProviderCause::kRateLimited);
  EXPECT_EQ(Ec2ErrorCause("Throttling", 400), ProviderCause::kRateLimited);
  EXPECT_EQ(Ec2ErrorCause("", 429), ProviderCause::kRateLimited);
  EXPECT_EQ(Ec2ErrorCause("", 503), ProviderCause::kRateLimited);
  EXPECT_EQ(Ec2ErrorCause("InternalError", 500), ProviderCause::kTransient);
  EXPECT_EQ(Ec2ErrorCause("", 502), ProviderCause::kTransient);
  EXPECT_EQ(Ec2ErrorCause("InvalidParameterValue", 400), ProviderCause::kBadRequest);
  EXPECT_EQ(Ec2ErrorCause("InvalidAMIID.NotFound", 400), ProviderCause::kBadRequest);
  EXPECT_EQ(Ec2ErrorCause("", 403), ProviderCause::kAuth);
}

TEST(Ec2ErrorCauseTest, ParsesTheErrorBody) {
  auto error = aws::internal::ParseEc2Error(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>"
      "InsufficientInstanceCapacity</Code><Message>No g5 &amp; co\nhere</Message></Error></Errors>"
      "<RequestID>x</RequestID></Response>");
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code, "InsufficientInstanceCapacity");
  EXPECT_EQ(error->message, "No g5 & co\\nhere");  // control characters escaped
  EXPECT_FALSE(aws::internal::ParseEc2Error("<html>busy</html>").has_value());
  EXPECT_FALSE(aws::internal::ParseEc2Error("").has_value());
}

TEST(XmlTest, ParsesEc2Shapes) {
  auto root = aws::internal::ParseXml(
      "\xEF\xBB\xBF<?xml version=\"1.0\"?>\n<!-- c -->\n<ec2:DescribeInstancesResponse "
      "xmlns:ec2=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\n"
      "  <reservationSet>\n    <item><instancesSet><item>\n"
      "      <instanceId>i-1</instanceId>\n"
      "      <instanceState><code>16</code><name> running </name></instanceState>\n"
      "      <reason><![CDATA[a <b> & c]]></reason><empty/><x a='1' b=\"2>\"/>\n"
      "      <ent>&lt;&#65;&#x42;&gt;&quot;&apos;&amp;&#x20AC;</ent>\n"
      "    </item></instancesSet></item>\n  </reservationSet>\n"
      "</ec2:DescribeInstancesResponse>\n");
  ASSERT_TRUE(root.has_value()) << root.error().message;
  EXPECT_EQ(root->name, "DescribeInstancesResponse");
  auto reservations = root->Items("reservationSet");
  ASSERT_EQ(reservations.size(), 1u);
  auto instances = reservations[0]->Items("instancesSet");
  ASSERT_EQ(instances.size(), 1u);
  EXPECT_EQ(instances[0]->ChildText("instanceId"), "i-1");
  EXPECT_EQ(instances[0]->Find({"instanceState", "name"})->text, " running ");
  EXPECT_EQ(instances[0]->Child("instanceState")->ChildText("name"), "running");
  EXPECT_EQ(instances[0]->ChildText("reason"), "a <b> & c");
  EXPECT_EQ(instances[0]->ChildText("ent"), "<AB>\"'&\xE2\x82\xAC");
  EXPECT_NE(instances[0]->Child("empty"), nullptr);
  EXPECT_EQ(instances[0]->Child("missing"), nullptr);
  EXPECT_EQ(instances[0]->ChildText("missing"), "");
}

TEST(XmlTest, RejectsMalformedDocuments) {
  for (const char* bad : {"",
                          "   ",
                          "text",
                          "<a>",
                          "<a></b>",
                          "<a><b></a></b>",
                          "<a>&bogus;</a>",
                          "<a>&#0;</a>",
                          "<a>&#xFFFFFFFF;</a>",
                          "<a x=1></a>",
                          "<a x='1></a>",
                          "<a></a><b></b>",
                          "<a></a>junk",
                          "<a><!-- open</a>",
                          "<a><![CDATA[x</a>",
                          "<?xml",
                          "<a/",
                          "<>",
                          "</a>",
                          "<a>&amp</a>"}) {
    EXPECT_FALSE(aws::internal::ParseXml(bad).has_value()) << bad;
  }
  std::string deep;
  for (int i = 0; i < 100; ++i) {
    deep += "<a>";
  }
  for (int i = 0; i < 100; ++i) {
    deep += "</a>";
  }
  auto too_deep = aws::internal::ParseXml(deep);
  ASSERT_FALSE(too_deep.has_value());
  EXPECT_EQ(too_deep.error().reason, "malformed_xml");
}

TEST(XmlTest, GarbageNeverCrashes) {
  const std::string valid =
      "<?xml version=\"1.0\"?><RunInstancesResponse><instancesSet><item><instanceId>i-1"
      "</instanceId><tagSet><item><key>k</key><value>&amp;v</value></item></tagSet></item>"
      "</instancesSet></RunInstancesResponse>";
  ASSERT_TRUE(aws::internal::ParseXml(valid).has_value());
  for (size_t cut = 0; cut < valid.size(); ++cut) {
    EXPECT_FALSE(aws::internal::ParseXml(valid.substr(0, cut)).has_value()) << cut;
  }
  std::mt19937 gen(7);
  const std::string alphabet = "<>/&;#x='\"![]?-CDATA ab\n\0";
  for (int round = 0; round < 3000; ++round) {
    std::string text = valid;
    const int edits = 1 + static_cast<int>(gen() % 6);
    for (int e = 0; e < edits; ++e) {
      text[gen() % text.size()] = alphabet[gen() % alphabet.size()];
    }
    (void)aws::internal::ParseXml(text);  // must return, ok or error
    std::string noise(gen() % 64, ' ');
    for (char& c : noise) {
      c = alphabet[gen() % alphabet.size()];
    }
    (void)aws::internal::ParseXml(noise);
  }
}

}  // namespace
}  // namespace gpuorch::providers
