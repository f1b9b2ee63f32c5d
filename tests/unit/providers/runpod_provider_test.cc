// RunPodProvider against the wire-level fake RunPod (GraphQL over HTTP on loopback), through the
// real curl HttpClient. Time is a FakeClock, so the client's retry backoff costs nothing.
#include "providers/runpod/runpod_provider.h"

#include <signal.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "fakes/fake_runpod.h"
#include "testing/temp_dir.h"

namespace gpuorch::providers {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

constexpr const char* kKey = "rp-test-key-123";
constexpr const char* kDeployment = "dep1";

class RunPodProviderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto fake = fakes::FakeRunPod::Start(
        {.work_dir = dir_.path().string(), .api_key = kKey, .start_agents = false},
        fakes::FakeRunPod::DefaultCatalog(), clock_);
    ASSERT_TRUE(fake) << fake.error().message;
    fake_ = std::move(*fake);
    http_ = MakeCurlHttpClient(clock_, HttpClientOptions{}, [] { return 0.5; });
    provider_ = Make(kDeployment);
  }

  std::unique_ptr<Provider> Make(const std::string& deployment, const std::string& key = kKey,
                                 std::chrono::milliseconds timeout = 5000ms) {
    return MakeRunPodProvider({.api_key = key,
                               .api_url = fake_->url(),
                               .deployment_id = deployment,
                               .request_timeout = timeout},
                              http_, clock_);
  }

  domain::Offer OfferOf(const std::string& offer_id) {
    auto offers = provider_->ListOffers();
    EXPECT_TRUE(offers) << offers.error().message;
    if (offers) {
      for (const auto& offer : *offers) {
        if (offer.offer_id == offer_id) {
          return offer;
        }
      }
    }
    ADD_FAILURE() << "no offer " << offer_id;
    return {};
  }

  static CreateInstanceRequest Request(const domain::Offer& offer, const std::string& instance_id,
                                       bool spot = false) {
    CreateInstanceRequest request;
    request.tags = {kDeployment, instance_id};
    request.offer = offer;
    request.spot = spot;
    request.env = {{"GPUORCH_SERVER", "http://10.0.0.1:8000"}, {"GPUORCH_JOIN_TOKEN", "jt-secret"}};
    return request;
  }

  // A pod made at RunPod by someone else, without our name or env.
  std::string CreateForeignPod(const std::string& name) {
    HttpCall call;
    call.method = "POST";
    call.url = fake_->url();
    call.headers = {{"Content-Type", "application/json"},
                    {"Authorization", std::string("Bearer ") + kKey}};
    call.body = json{{"query",
                      "mutation Deploy($input: PodFindAndDeployOnDemandInput!) { "
                      "podFindAndDeployOnDemand(input: $input) { id } }"},
                     {"variables",
                      {{"input",
                        {{"name", name},
                         {"imageName", "ubuntu"},
                         {"gpuTypeId", "NVIDIA GeForce RTX 4090"},
                         {"gpuCount", 1}}}}}}
                    .dump();
    auto reply = http_->Send(call);
    EXPECT_TRUE(reply && reply->status == 200);
    return reply ? json::parse(reply->body)["data"]["podFindAndDeployOnDemand"]["id"]
                       .get<std::string>()
                 : "";
  }

  static ProviderCause Cause(const core::Error& error) { return CauseOf(error); }

  core::FakeClock clock_;
  testing::TempDir dir_;
  std::unique_ptr<fakes::FakeRunPod> fake_;
  std::shared_ptr<HttpClient> http_;
  std::unique_ptr<Provider> provider_;
};

TEST_F(RunPodProviderTest, OffersExpandGpuCountsWithPricesSpotAndStock) {
  fake_->SetCapacity("H200", 0);
  fake_->SetCapacity("L40S", 2);
  auto offers = provider_->ListOffers();
  ASSERT_TRUE(offers) << offers.error().message;
  // 9 GPU types × counts 1, 2, 4, 8.
  EXPECT_EQ(offers->size(), 36u);
  const domain::Offer rtx = OfferOf("NVIDIA GeForce RTX 4090|4");
  EXPECT_EQ(rtx.provider, "runpod");
  EXPECT_EQ(rtx.gpu_type, "RTX4090");
  EXPECT_EQ(rtx.gpu_count, 4);
  EXPECT_DOUBLE_EQ(rtx.gpu_memory_gb, 24);
  EXPECT_NEAR(rtx.on_demand_price, 0.69 * 4, 1e-9);
  ASSERT_TRUE(rtx.spot_price.has_value());
  EXPECT_NEAR(*rtx.spot_price, 0.35 * 4, 1e-9);
  EXPECT_EQ(rtx.available, 8);
  EXPECT_EQ(rtx.cpu_count, 24);
  EXPECT_FALSE(OfferOf("NVIDIA H100 PCIe|1").spot_price.has_value());
  EXPECT_EQ(OfferOf("NVIDIA H200|1").available, 0);
  EXPECT_EQ(OfferOf("NVIDIA L40S|2").available, 1);
  // Every RunPod id of the catalog maps to the canonical type the fake declares.
  for (const auto& type : fakes::FakeRunPod::DefaultCatalog()) {
    EXPECT_EQ(OfferOf(type.id + "|1").gpu_type, type.gpu_type) << type.id;
  }
}

TEST_F(RunPodProviderTest, OffersStopAtMaxGpuCount) {
  fake_.reset();
  auto fake = fakes::FakeRunPod::Start(
      {.work_dir = dir_.path().string(), .api_key = kKey, .start_agents = false},
      {{.id = "NVIDIA RTX A4000",
        .display_name = "RTX A4000",
        .gpu_type = "RTXA4000",
        .memory_gb = 16,
        .max_gpu_count = 2,
        .price_per_gpu = 0.17}},
      clock_);
  ASSERT_TRUE(fake);
  fake_ = std::move(*fake);
  provider_ = Make(kDeployment);
  auto offers = provider_->ListOffers();
  ASSERT_TRUE(offers) << offers.error().message;
  ASSERT_EQ(offers->size(), 2u);
  EXPECT_EQ((*offers)[1].offer_id, "NVIDIA RTX A4000|2");
  EXPECT_NEAR((*offers)[1].on_demand_price, 0.34, 1e-9);
  EXPECT_FALSE((*offers)[1].spot_price.has_value());
}

TEST_F(RunPodProviderTest, CreateOnDemandSendsOurNameEnvAndImage) {
  auto created = provider_->Create(Request(OfferOf("NVIDIA GeForce RTX 4090|2"), "inst-1"));
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_FALSE(created->provider_instance_id.empty());
  EXPECT_EQ(created->tags.instance_id, "inst-1");
  EXPECT_EQ(created->tags.deployment_id, kDeployment);
  EXPECT_EQ(created->status, ProviderInstanceStatus::kPending);
  EXPECT_EQ(created->gpu_type, "RTX4090");
  EXPECT_EQ(created->gpu_count, 2);
  EXPECT_FALSE(created->spot);
  EXPECT_NEAR(created->price_per_hour, 1.38, 1e-9);

  auto pod = fake_->Pod(created->provider_instance_id);
  ASSERT_TRUE(pod.has_value());
  EXPECT_EQ(pod->name, "gpuorch-dep1-inst-1");
  EXPECT_EQ(pod->image, RunPodOptions{}.default_image);
  EXPECT_EQ(pod->gpu_type_id, "NVIDIA GeForce RTX 4090");
  EXPECT_EQ(pod->gpu_count, 2);
  EXPECT_FALSE(pod->spot);
  EXPECT_EQ(pod->cloud_type, "ALL");
  EXPECT_EQ(pod->container_disk_gb, 50);
  EXPECT_EQ(pod->env["GPUORCH_INSTANCE_ID"], "inst-1");
  EXPECT_EQ(pod->env["GPUORCH_DEPLOYMENT_ID"], kDeployment);
  EXPECT_EQ(pod->env["GPUORCH_SERVER"], "http://10.0.0.1:8000");
  EXPECT_EQ(pod->env["GPUORCH_JOIN_TOKEN"], "jt-secret");

  auto ledger = fake_->Ledger();
  ASSERT_EQ(ledger.size(), 1u);
  EXPECT_EQ(ledger[0].our_instance_id, "inst-1");
  EXPECT_EQ(ledger[0].deployment_id, kDeployment);
  EXPECT_EQ(ledger[0].offer_id, "NVIDIA GeForce RTX 4090|2");
  EXPECT_TRUE(ledger[0].live());
  EXPECT_NEAR(ledger[0].price_per_hour, 1.38, 1e-9);
}

TEST_F(RunPodProviderTest, CreateSpotRentsInterruptableWithBidPerGpu) {
  const domain::Offer offer = OfferOf("NVIDIA GeForce RTX 4090|2");
  CreateInstanceRequest request = Request(offer, "inst-bid", true);
  request.max_price_per_hour = 1.0;
  auto created = provider_->Create(request);
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_TRUE(created->spot);
  auto pod = fake_->Pod(created->provider_instance_id);
  ASSERT_TRUE(pod.has_value());
  EXPECT_TRUE(pod->spot);
  EXPECT_NEAR(pod->bid_per_gpu, 0.5, 1e-9);

  // Without a ceiling the bid is the offer's spot price.
  auto at_min = provider_->Create(Request(offer, "inst-min", true));
  ASSERT_TRUE(at_min) << at_min.error().message;
  EXPECT_NEAR(fake_->Pod(at_min->provider_instance_id)->bid_per_gpu, 0.35, 1e-9);
  EXPECT_NEAR(at_min->price_per_hour, 0.70, 1e-9);
  auto ledger = fake_->Ledger();
  ASSERT_EQ(ledger.size(), 2u);
  EXPECT_TRUE(ledger[0].spot);
  EXPECT_NEAR(ledger[0].price_per_hour, 1.0, 1e-9);
}

TEST_F(RunPodProviderTest, SpotOnAnOfferWithoutSpotIsRefusedBeforeAnyCall) {
  auto created = provider_->Create(Request(OfferOf("NVIDIA H100 PCIe|1"), "inst-x", true));
  ASSERT_FALSE(created);
  EXPECT_EQ(Cause(created.error()), ProviderCause::kBadRequest);
  EXPECT_EQ(fake_->Requests("create"), 0);
}

TEST_F(RunPodProviderTest, ListOursSkipsOtherDeploymentsAndForeignPods) {
  const domain::Offer offer = OfferOf("NVIDIA GeForce RTX 4090|1");
  auto mine = provider_->Create(Request(offer, "inst-a"));
  ASSERT_TRUE(mine);
  auto other = Make("dep2");
  CreateInstanceRequest other_request = Request(offer, "inst-b");
  other_request.tags.deployment_id = "dep2";
  ASSERT_TRUE(other->Create(other_request));
  // "dep1-x" shares the name prefix "gpuorch-dep1-": its env tells it apart.
  auto longer = Make("dep1-x");
  CreateInstanceRequest longer_request = Request(offer, "inst-c");
  longer_request.tags.deployment_id = "dep1-x";
  ASSERT_TRUE(longer->Create(longer_request));
  const std::string foreign = CreateForeignPod("my-notebook");

  auto ours = provider_->ListOurs();
  ASSERT_TRUE(ours) << ours.error().message;
  ASSERT_EQ(ours->size(), 1u);
  EXPECT_EQ((*ours)[0].provider_instance_id, mine->provider_instance_id);
  EXPECT_EQ((*ours)[0].tags.instance_id, "inst-a");
  EXPECT_EQ((*ours)[0].tags.deployment_id, kDeployment);
  EXPECT_EQ((*ours)[0].gpu_type, "RTX4090");

  auto theirs = provider_->Describe(foreign);
  ASSERT_TRUE(theirs) << theirs.error().message;
  EXPECT_TRUE(theirs->tags.instance_id.empty());
  auto dep2 = other->ListOurs();
  ASSERT_TRUE(dep2);
  ASSERT_EQ(dep2->size(), 1u);
  EXPECT_EQ((*dep2)[0].tags.instance_id, "inst-b");
}

TEST_F(RunPodProviderTest, DescribeWalksFromPendingToRunningAndKnowsMissingPods) {
  auto created = provider_->Create(Request(OfferOf("NVIDIA L40S|1"), "inst-1"));
  ASSERT_TRUE(created);
  auto first = provider_->Describe(created->provider_instance_id);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->status, ProviderInstanceStatus::kPending);
  auto second = provider_->Describe(created->provider_instance_id);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, ProviderInstanceStatus::kRunning);
  EXPECT_EQ(second->status_detail, "RUNNING");
  EXPECT_EQ(second->public_ip, "127.0.0.1");
  EXPECT_EQ(second->tags.instance_id, "inst-1");
  EXPECT_EQ(second->gpu_type, "L40S");
  EXPECT_NEAR(second->price_per_hour, 0.86, 1e-9);

  auto missing = provider_->Describe("nosuchpod");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, core::Code::kNotFound);
}

TEST_F(RunPodProviderTest, TerminateEndsThePodAndIsIdempotent) {
  auto created = provider_->Create(Request(OfferOf("NVIDIA GeForce RTX 3090|1"), "inst-1"));
  ASSERT_TRUE(created);
  ASSERT_TRUE(provider_->Terminate(created->provider_instance_id));
  EXPECT_FALSE(fake_->Pod(created->provider_instance_id).has_value());
  ASSERT_EQ(fake_->Ledger().size(), 1u);
  EXPECT_FALSE(fake_->Ledger()[0].live());
  auto gone = provider_->Describe(created->provider_instance_id);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, core::Code::kNotFound);
  auto ours = provider_->ListOurs();
  ASSERT_TRUE(ours);
  EXPECT_TRUE(ours->empty());
  EXPECT_TRUE(provider_->Terminate(created->provider_instance_id));
  EXPECT_EQ(fake_->Requests("terminate"), 2);
}

TEST_F(RunPodProviderTest, SpotInterruptionReadsAsInterrupted) {
  auto created = provider_->Create(Request(OfferOf("NVIDIA A100 80GB PCIe|1"), "inst-s", true));
  ASSERT_TRUE(created) << created.error().message;
  ASSERT_TRUE(fake_->Interrupt(created->provider_instance_id));
  EXPECT_FALSE(fake_->Interrupt(created->provider_instance_id));
  auto described = provider_->Describe(created->provider_instance_id);
  ASSERT_TRUE(described);
  EXPECT_EQ(described->status, ProviderInstanceStatus::kInterrupted);
  EXPECT_EQ(described->status_detail, "EXITED");
  auto ours = provider_->ListOurs();
  ASSERT_TRUE(ours);
  ASSERT_EQ(ours->size(), 1u);
  EXPECT_EQ((*ours)[0].status, ProviderInstanceStatus::kInterrupted);
  ASSERT_EQ(fake_->Ledger().size(), 1u);
  EXPECT_TRUE(fake_->Ledger()[0].interrupted);
  EXPECT_FALSE(fake_->Ledger()[0].live());
  // The reconciler still terminates what is left.
  EXPECT_TRUE(provider_->Terminate(created->provider_instance_id));
}

TEST_F(RunPodProviderTest, RateLimitedAfterTheClientsRetries) {
  fake_->faults().Add({.kind = fakes::FaultKind::kHttpStatus,
                       .operation = "offers",
                       .status = 429,
                       .retry_after_seconds = 2,
                       .times = -1});
  auto offers = provider_->ListOffers();
  ASSERT_FALSE(offers);
  EXPECT_EQ(Cause(offers.error()), ProviderCause::kRateLimited);
  EXPECT_EQ(fake_->Requests("offers"), HttpClientOptions{}.max_attempts);
  fake_->faults().Clear();
  EXPECT_TRUE(provider_->ListOffers());
}

TEST_F(RunPodProviderTest, OneRateLimitIsRetriedAway) {
  fake_->faults().Add({.kind = fakes::FaultKind::kHttpStatus,
                       .operation = "list",
                       .status = 429,
                       .retry_after_seconds = 1});
  auto ours = provider_->ListOurs();
  ASSERT_TRUE(ours) << ours.error().message;
  EXPECT_EQ(fake_->Requests("list"), 2);
}

TEST_F(RunPodProviderTest, ServerErrorOnCreateIsTransientAndNotRetried) {
  const domain::Offer offer = OfferOf("NVIDIA GeForce RTX 4090|1");
  fake_->faults().Add(
      {.kind = fakes::FaultKind::kHttpStatus, .operation = "create", .status = 500});
  auto created = provider_->Create(Request(offer, "inst-1"));
  ASSERT_FALSE(created);
  EXPECT_EQ(Cause(created.error()), ProviderCause::kTransient);
  EXPECT_EQ(fake_->Requests("create"), 1);
  EXPECT_TRUE(fake_->Ledger().empty());
}

TEST_F(RunPodProviderTest, ServerErrorOnDescribeIsRetried) {
  auto created = provider_->Create(Request(OfferOf("NVIDIA GeForce RTX 4090|1"), "inst-1"));
  ASSERT_TRUE(created);
  fake_->faults().Add(
      {.kind = fakes::FaultKind::kHttpStatus, .operation = "describe", .status = 503});
  EXPECT_TRUE(provider_->Describe(created->provider_instance_id));
  EXPECT_EQ(fake_->Requests("describe"), 2);
}

TEST_F(RunPodProviderTest, MalformedAnswersAreTransient) {
  fake_->faults().Add({.kind = fakes::FaultKind::kMalformed, .operation = "offers"});
  auto offers = provider_->ListOffers();
  ASSERT_FALSE(offers);
  EXPECT_EQ(Cause(offers.error()), ProviderCause::kTransient);
  fake_->faults().Add({.kind = fakes::FaultKind::kMalformed, .operation = "list"});
  auto ours = provider_->ListOurs();
  ASSERT_FALSE(ours);
  EXPECT_EQ(Cause(ours.error()), ProviderCause::kTransient);
}

TEST_F(RunPodProviderTest, NoCapacityInRunPodsWords) {
  const domain::Offer offer = OfferOf("NVIDIA GeForce RTX 4090|1");
  fake_->faults().Add({.kind = fakes::FaultKind::kNoCapacity, .operation = "create"});
  auto faulted = provider_->Create(Request(offer, "inst-1"));
  ASSERT_FALSE(faulted);
  EXPECT_EQ(Cause(faulted.error()), ProviderCause::kNoCapacity);
  EXPECT_NE(faulted.error().message.find("no longer any instances"), std::string::npos);

  fake_->SetCapacity("RTX4090", 1);
  ASSERT_TRUE(provider_->Create(Request(offer, "inst-2")));
  auto sold_out = provider_->Create(Request(offer, "inst-3"));
  ASSERT_FALSE(sold_out);
  EXPECT_EQ(Cause(sold_out.error()), ProviderCause::kNoCapacity);
  EXPECT_EQ(fake_->Ledger().size(), 1u);
}

TEST_F(RunPodProviderTest, BalanceErrorIsQuota) {
  const domain::Offer offer = OfferOf("NVIDIA GeForce RTX 4090|1");
  fake_->faults().Add({.kind = fakes::FaultKind::kQuota, .operation = "create"});
  auto created = provider_->Create(Request(offer, "inst-1"));
  ASSERT_FALSE(created);
  EXPECT_EQ(Cause(created.error()), ProviderCause::kQuota);
  EXPECT_EQ(created.error().code, core::Code::kResourceExhausted);
}

TEST_F(RunPodProviderTest, WrongKeyIsAuthAndNeverShowsTheKey) {
  EXPECT_TRUE(provider_->Health());
  auto wrong = Make(kDeployment, "rp-wrong-key-456");
  auto health = wrong->Health();
  ASSERT_FALSE(health);
  EXPECT_EQ(Cause(health.error()), ProviderCause::kAuth);
  EXPECT_EQ(health.error().code, core::Code::kUnauthenticated);
  EXPECT_EQ(health.error().message.find("rp-wrong-key-456"), std::string::npos);
  auto ours = wrong->ListOurs();
  ASSERT_FALSE(ours);
  EXPECT_EQ(Cause(ours.error()), ProviderCause::kAuth);

  fake_->faults().Add({.kind = fakes::FaultKind::kAuth, .operation = "describe"});
  auto described = provider_->Describe("whatever");
  ASSERT_FALSE(described);
  EXPECT_EQ(Cause(described.error()), ProviderCause::kAuth);
  EXPECT_FALSE(MakeRunPodProvider({}, http_, clock_)->Configured());
  EXPECT_TRUE(provider_->Configured());
}

TEST_F(RunPodProviderTest, LateAnswersAreRetriedOrTransient) {
  auto created = provider_->Create(Request(OfferOf("NVIDIA GeForce RTX 4090|1"), "inst-1"));
  ASSERT_TRUE(created);
  // Held, then 504: describe is idempotent and succeeds on the retry.
  fake_->faults().Add({.kind = fakes::FaultKind::kTimeout, .operation = "describe", .delay = 50ms});
  EXPECT_TRUE(provider_->Describe(created->provider_instance_id));
  EXPECT_EQ(fake_->Requests("describe"), 2);

  // Held past the client's timeout: a create is not retried.
  auto impatient = Make(kDeployment, kKey, 200ms);
  fake_->faults().Add({.kind = fakes::FaultKind::kTimeout, .operation = "create", .delay = 10s});
  auto timed_out = impatient->Create(Request(OfferOf("NVIDIA GeForce RTX 4090|1"), "inst-2"));
  ASSERT_FALSE(timed_out);
  EXPECT_EQ(Cause(timed_out.error()), ProviderCause::kTransient);
  EXPECT_EQ(fake_->Requests("create"), 2);
}

TEST_F(RunPodProviderTest, CreateStartsAnAgentWithTheInstanceEnvAndTerminateKillsIt) {
  const std::string script = dir_.File("fake-agent.sh");
  {
    std::ofstream out(script);
    out << "#!/bin/sh\n"
           "env > \"$GPUORCH_DATA_DIR/env.tmp\" && mv \"$GPUORCH_DATA_DIR/env.tmp\" "
           "\"$GPUORCH_DATA_DIR/env.txt\"\n"
           "exec sleep 30\n";
  }
  ASSERT_EQ(chmod(script.c_str(), 0755), 0);
  fake_.reset();
  auto fake = fakes::FakeRunPod::Start({.agent_binary = script,
                                        .work_dir = dir_.File("agents"),
                                        .api_key = kKey,
                                        .start_agents = true},
                                       fakes::FakeRunPod::DefaultCatalog(), clock_);
  ASSERT_TRUE(fake);
  fake_ = std::move(*fake);
  provider_ = Make(kDeployment);

  auto created = provider_->Create(Request(OfferOf("NVIDIA A100-SXM4-80GB|2"), "inst-9"));
  ASSERT_TRUE(created) << created.error().message;
  const std::string id = created->provider_instance_id;
  const std::filesystem::path env_file = dir_.path() / "agents" / id / "env.txt";
  for (int i = 0; i < 500 && !std::filesystem::exists(env_file); ++i) {
    std::this_thread::sleep_for(10ms);
  }
  std::ifstream in(env_file);
  std::stringstream env;
  env << in.rdbuf();
  const std::string text = env.str();
  EXPECT_NE(text.find("GPUORCH_LOCAL_GPUS=A100:2:80\n"), std::string::npos) << text;
  EXPECT_NE(text.find("GPUORCH_NODE_NAME=" + id + "\n"), std::string::npos);
  EXPECT_NE(text.find("GPUORCH_SERVER=http://10.0.0.1:8000\n"), std::string::npos);
  EXPECT_NE(text.find("GPUORCH_JOIN_TOKEN=jt-secret\n"), std::string::npos);
  EXPECT_NE(text.find("GPUORCH_INSTANCE_ID=inst-9\n"), std::string::npos);
  EXPECT_NE(text.find("GPUORCH_DEPLOYMENT_ID=dep1\n"), std::string::npos);

  const pid_t pid = fake_->Ledger().at(0).agent_pid;
  ASSERT_GT(pid, 0);
  EXPECT_EQ(kill(pid, 0), 0);
  ASSERT_TRUE(provider_->Terminate(id));
  EXPECT_EQ(kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH);
  EXPECT_EQ(fake_->Ledger().at(0).agent_pid, 0);
}

}  // namespace
}  // namespace gpuorch::providers
