// VastAiProvider against the wire-level fake Vast.ai (REST over HTTP on loopback), through the real
// curl HttpClient. Time is a FakeClock, so the client's retry backoff costs nothing.
#include "providers/vastai/vastai_provider.h"

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
#include "fakes/fake_vastai.h"
#include "testing/temp_dir.h"

namespace gpuorch::providers {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

constexpr const char* kKey = "vast-test-key-123";
constexpr const char* kDeployment = "dep1";

class VastAiProviderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto fake = fakes::FakeVastAi::Start(
        {.work_dir = dir_.path().string(), .api_key = kKey, .start_agents = false},
        fakes::FakeVastAi::DefaultCatalog(), clock_);
    ASSERT_TRUE(fake) << fake.error().message;
    fake_ = std::move(*fake);
    http_ = MakeCurlHttpClient(clock_, HttpClientOptions{}, [] { return 0.5; });
    provider_ = Make(kDeployment);
  }

  std::unique_ptr<Provider> Make(const std::string& deployment, const std::string& key = kKey,
                                 std::chrono::milliseconds timeout = 5000ms) {
    return MakeVastAiProvider({.api_key = key,
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

  // An instance rented at Vast by someone else, without our label.
  std::string CreateForeignInstance(const std::string& label) {
    HttpCall call;
    call.method = "PUT";
    call.url = fake_->url() + "/asks/7001001/";
    call.headers = {{"Content-Type", "application/json"},
                    {"Authorization", std::string("Bearer ") + kKey}};
    call.body = json{{"client_id", "me"}, {"image", "ubuntu"}, {"label", label}}.dump();
    auto reply = http_->Send(call);
    EXPECT_TRUE(reply && reply->status == 200);
    return reply ? std::to_string(json::parse(reply->body)["new_contract"].get<int64_t>()) : "";
  }

  static ProviderCause Cause(const core::Error& error) { return CauseOf(error); }

  core::FakeClock clock_;
  testing::TempDir dir_;
  std::unique_ptr<fakes::FakeVastAi> fake_;
  std::shared_ptr<HttpClient> http_;
  std::unique_ptr<Provider> provider_;
};

TEST_F(VastAiProviderTest, OffersCarryPricesBidsAndHardware) {
  auto offers = provider_->ListOffers();
  ASSERT_TRUE(offers) << offers.error().message;
  ASSERT_EQ(offers->size(), fakes::FakeVastAi::DefaultCatalog().size());
  for (size_t i = 1; i < offers->size(); ++i) {
    EXPECT_LE((*offers)[i - 1].on_demand_price, (*offers)[i].on_demand_price);
  }
  const domain::Offer rtx = OfferOf("7001002");
  EXPECT_EQ(rtx.provider, "vastai");
  EXPECT_EQ(rtx.gpu_type, "RTX4090");
  EXPECT_EQ(rtx.gpu_count, 4);
  EXPECT_DOUBLE_EQ(rtx.gpu_memory_gb, 24);
  EXPECT_DOUBLE_EQ(rtx.on_demand_price, 1.62);
  ASSERT_TRUE(rtx.spot_price.has_value());
  EXPECT_DOUBLE_EQ(*rtx.spot_price, 0.80);
  EXPECT_EQ(rtx.region, "Texas, US");
  EXPECT_DOUBLE_EQ(rtx.reliability, 0.99);
  EXPECT_EQ(rtx.available, 1);
  EXPECT_EQ(rtx.cpu_count, 48);
  EXPECT_FALSE(OfferOf("7001008").spot_price.has_value());
  EXPECT_DOUBLE_EQ(OfferOf("7001009").gpu_memory_gb, 140);
  for (const auto& ask : fakes::FakeVastAi::DefaultCatalog()) {
    EXPECT_EQ(OfferOf(std::to_string(ask.id)).gpu_type, ask.gpu_type) << ask.gpu_name;
  }
}

TEST_F(VastAiProviderTest, SoldOutTypesDisappearFromTheSearch) {
  fake_->SetCapacity("A100", 0);
  auto offers = provider_->ListOffers();
  ASSERT_TRUE(offers);
  for (const auto& offer : *offers) {
    EXPECT_NE(offer.gpu_type, "A100");
  }
  EXPECT_EQ(offers->size(), fakes::FakeVastAi::DefaultCatalog().size() - 2);
}

TEST_F(VastAiProviderTest, CreateOnDemandSendsOurLabelEnvAndImage) {
  const domain::Offer offer = OfferOf("7001004");
  auto created = provider_->Create(Request(offer, "inst-1"));
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_FALSE(created->provider_instance_id.empty());
  EXPECT_EQ(created->tags.instance_id, "inst-1");
  EXPECT_EQ(created->tags.deployment_id, kDeployment);
  EXPECT_EQ(created->status, ProviderInstanceStatus::kPending);
  EXPECT_EQ(created->offer_id, "7001004");
  EXPECT_EQ(created->gpu_type, "RTXA6000");
  EXPECT_FALSE(created->spot);
  EXPECT_DOUBLE_EQ(created->price_per_hour, 0.55);

  auto instance = fake_->Instance(created->provider_instance_id);
  ASSERT_TRUE(instance.has_value());
  EXPECT_EQ(instance->label, "gpuorch:dep1:inst-1");
  EXPECT_EQ(instance->image, VastAiOptions{}.default_image);
  EXPECT_EQ(instance->runtype, "ssh");
  EXPECT_FALSE(instance->onstart.empty());
  EXPECT_FALSE(instance->is_bid);
  EXPECT_DOUBLE_EQ(instance->disk_gb, 50);
  EXPECT_EQ(instance->env["GPUORCH_INSTANCE_ID"], "inst-1");
  EXPECT_EQ(instance->env["GPUORCH_DEPLOYMENT_ID"], kDeployment);
  EXPECT_EQ(instance->env["GPUORCH_SERVER"], "http://10.0.0.1:8000");
  EXPECT_EQ(instance->env["GPUORCH_JOIN_TOKEN"], "jt-secret");

  auto ledger = fake_->Ledger();
  ASSERT_EQ(ledger.size(), 1u);
  EXPECT_EQ(ledger[0].our_instance_id, "inst-1");
  EXPECT_EQ(ledger[0].offer_id, "7001004");
  EXPECT_EQ(ledger[0].gpu_type, "RTXA6000");
  EXPECT_TRUE(ledger[0].live());
  EXPECT_FALSE(ledger[0].spot);
}

TEST_F(VastAiProviderTest, CreateSpotBidsTheCeilingOrTheMinimumBid) {
  const domain::Offer offer = OfferOf("7001001");
  CreateInstanceRequest request = Request(offer, "inst-bid", true);
  request.max_price_per_hour = 0.3;
  auto created = provider_->Create(request);
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_TRUE(created->spot);
  EXPECT_DOUBLE_EQ(created->price_per_hour, 0.3);
  auto instance = fake_->Instance(created->provider_instance_id);
  ASSERT_TRUE(instance.has_value());
  EXPECT_TRUE(instance->is_bid);
  EXPECT_DOUBLE_EQ(instance->price, 0.3);

  auto at_min = provider_->Create(Request(offer, "inst-min", true));
  ASSERT_TRUE(at_min) << at_min.error().message;
  EXPECT_DOUBLE_EQ(fake_->Instance(at_min->provider_instance_id)->price, 0.21);
  EXPECT_TRUE(fake_->Ledger().at(1).spot);

  auto no_bids = provider_->Create(Request(OfferOf("7001008"), "inst-x", true));
  ASSERT_FALSE(no_bids);
  EXPECT_EQ(Cause(no_bids.error()), ProviderCause::kBadRequest);
  EXPECT_EQ(fake_->Requests("create"), 2);
}

TEST_F(VastAiProviderTest, ListOursSkipsOtherDeploymentsAndForeignInstances) {
  const domain::Offer offer = OfferOf("7001001");
  auto mine = provider_->Create(Request(offer, "inst-a"));
  ASSERT_TRUE(mine);
  auto other = Make("dep2");
  CreateInstanceRequest other_request = Request(offer, "inst-b");
  other_request.tags.deployment_id = "dep2";
  ASSERT_TRUE(other->Create(other_request));
  // "dep1:x" extends our label prefix "gpuorch:dep1:".
  auto longer = Make("dep1:x");
  CreateInstanceRequest longer_request = Request(offer, "inst-c");
  longer_request.tags.deployment_id = "dep1:x";
  ASSERT_TRUE(longer->Create(longer_request));
  const std::string foreign = CreateForeignInstance("my-box");

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
  EXPECT_EQ((*dep2)[0].tags.deployment_id, "dep2");
}

TEST_F(VastAiProviderTest, DescribeWalksFromLoadingToRunningAndKnowsMissingInstances) {
  auto created = provider_->Create(Request(OfferOf("7001005"), "inst-1"));
  ASSERT_TRUE(created);
  auto first = provider_->Describe(created->provider_instance_id);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->status, ProviderInstanceStatus::kPending);
  EXPECT_TRUE(first->status_detail.starts_with("loading")) << first->status_detail;
  auto second = provider_->Describe(created->provider_instance_id);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, ProviderInstanceStatus::kRunning);
  EXPECT_EQ(second->public_ip, "127.0.0.1");
  EXPECT_EQ(second->tags.instance_id, "inst-1");
  EXPECT_EQ(second->gpu_type, "L40S");
  EXPECT_EQ(second->gpu_count, 2);
  EXPECT_DOUBLE_EQ(second->price_per_hour, 1.30);

  auto missing = provider_->Describe("999");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, core::Code::kNotFound);
  auto not_an_id = provider_->Describe("../users");
  ASSERT_FALSE(not_an_id);
  EXPECT_EQ(not_an_id.error().code, core::Code::kNotFound);
}

TEST_F(VastAiProviderTest, TerminateDestroysAndIsIdempotent) {
  auto created = provider_->Create(Request(OfferOf("7001003"), "inst-1"));
  ASSERT_TRUE(created);
  ASSERT_TRUE(provider_->Terminate(created->provider_instance_id));
  EXPECT_FALSE(fake_->Instance(created->provider_instance_id).has_value());
  EXPECT_FALSE(fake_->Ledger().at(0).live());
  auto gone = provider_->Describe(created->provider_instance_id);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, core::Code::kNotFound);
  auto ours = provider_->ListOurs();
  ASSERT_TRUE(ours);
  EXPECT_TRUE(ours->empty());
  EXPECT_TRUE(provider_->Terminate(created->provider_instance_id));
  EXPECT_EQ(fake_->Requests("terminate"), 2);
}

TEST_F(VastAiProviderTest, OutbidInstanceReadsAsInterrupted) {
  auto created = provider_->Create(Request(OfferOf("7001006"), "inst-s", true));
  ASSERT_TRUE(created) << created.error().message;
  ASSERT_TRUE(fake_->Interrupt(created->provider_instance_id));
  EXPECT_FALSE(fake_->Interrupt(created->provider_instance_id));
  auto described = provider_->Describe(created->provider_instance_id);
  ASSERT_TRUE(described);
  EXPECT_EQ(described->status, ProviderInstanceStatus::kInterrupted);
  EXPECT_TRUE(described->spot);
  auto ours = provider_->ListOurs();
  ASSERT_TRUE(ours);
  ASSERT_EQ(ours->size(), 1u);
  EXPECT_EQ((*ours)[0].status, ProviderInstanceStatus::kInterrupted);
  EXPECT_TRUE(fake_->Ledger().at(0).interrupted);
  EXPECT_FALSE(fake_->Ledger().at(0).live());
  EXPECT_TRUE(provider_->Terminate(created->provider_instance_id));
}

TEST_F(VastAiProviderTest, RateLimitedAfterTheClientsRetries) {
  fake_->faults().Add(
      {.kind = fakes::FaultKind::kHttpStatus, .operation = "offers", .status = 429, .times = -1});
  auto offers = provider_->ListOffers();
  ASSERT_FALSE(offers);
  EXPECT_EQ(Cause(offers.error()), ProviderCause::kRateLimited);
  EXPECT_EQ(fake_->Requests("offers"), HttpClientOptions{}.max_attempts);
  fake_->faults().Clear();
  fake_->faults().Add({.kind = fakes::FaultKind::kHttpStatus, .operation = "list", .status = 429});
  EXPECT_TRUE(provider_->ListOurs());
  EXPECT_EQ(fake_->Requests("list"), 2);
}

TEST_F(VastAiProviderTest, ServerErrorOnCreateIsTransientAndNotRetried) {
  const domain::Offer offer = OfferOf("7001001");
  fake_->faults().Add(
      {.kind = fakes::FaultKind::kHttpStatus, .operation = "create", .status = 502});
  auto created = provider_->Create(Request(offer, "inst-1"));
  ASSERT_FALSE(created);
  EXPECT_EQ(Cause(created.error()), ProviderCause::kTransient);
  EXPECT_EQ(fake_->Requests("create"), 1);
  EXPECT_TRUE(fake_->Ledger().empty());

  fake_->faults().Add(
      {.kind = fakes::FaultKind::kHttpStatus, .operation = "terminate", .status = 500});
  auto again = provider_->Create(Request(offer, "inst-2"));
  ASSERT_TRUE(again);
  EXPECT_TRUE(provider_->Terminate(again->provider_instance_id));
  EXPECT_EQ(fake_->Requests("terminate"), 2);
}

TEST_F(VastAiProviderTest, MalformedAnswersAreTransient) {
  fake_->faults().Add({.kind = fakes::FaultKind::kMalformed, .operation = "offers"});
  auto offers = provider_->ListOffers();
  ASSERT_FALSE(offers);
  EXPECT_EQ(Cause(offers.error()), ProviderCause::kTransient);
  const domain::Offer offer = OfferOf("7001001");
  fake_->faults().Add({.kind = fakes::FaultKind::kMalformed, .operation = "create"});
  auto created = provider_->Create(Request(offer, "inst-1"));
  ASSERT_FALSE(created);
  EXPECT_EQ(Cause(created.error()), ProviderCause::kTransient);
}

TEST_F(VastAiProviderTest, NoSuchAskIsNoCapacity) {
  const domain::Offer offer = OfferOf("7001001");
  fake_->faults().Add({.kind = fakes::FaultKind::kNoCapacity, .operation = "create"});
  auto faulted = provider_->Create(Request(offer, "inst-1"));
  ASSERT_FALSE(faulted);
  EXPECT_EQ(Cause(faulted.error()), ProviderCause::kNoCapacity);

  fake_->SetCapacity("RTX4090", 1);
  ASSERT_TRUE(provider_->Create(Request(offer, "inst-2")));
  auto sold_out = provider_->Create(Request(offer, "inst-3"));
  ASSERT_FALSE(sold_out);
  EXPECT_EQ(Cause(sold_out.error()), ProviderCause::kNoCapacity);
  EXPECT_NE(sold_out.error().message.find("no_such_ask"), std::string::npos);
  EXPECT_EQ(fake_->Ledger().size(), 1u);
}

TEST_F(VastAiProviderTest, InsufficientCreditIsQuota) {
  const domain::Offer offer = OfferOf("7001001");
  fake_->faults().Add({.kind = fakes::FaultKind::kQuota, .operation = "create"});
  auto created = provider_->Create(Request(offer, "inst-1"));
  ASSERT_FALSE(created);
  EXPECT_EQ(Cause(created.error()), ProviderCause::kQuota);
}

TEST_F(VastAiProviderTest, WrongKeyIsAuthAndNeverShowsTheKey) {
  EXPECT_TRUE(provider_->Health());
  auto wrong = Make(kDeployment, "vast-wrong-key-456");
  auto health = wrong->Health();
  ASSERT_FALSE(health);
  EXPECT_EQ(Cause(health.error()), ProviderCause::kAuth);
  EXPECT_EQ(health.error().message.find("vast-wrong-key-456"), std::string::npos);
  auto offers = wrong->ListOffers();
  ASSERT_FALSE(offers);
  EXPECT_EQ(Cause(offers.error()), ProviderCause::kAuth);

  fake_->faults().Add({.kind = fakes::FaultKind::kAuth, .operation = "list"});
  auto ours = provider_->ListOurs();
  ASSERT_FALSE(ours);
  EXPECT_EQ(Cause(ours.error()), ProviderCause::kAuth);
  EXPECT_FALSE(MakeVastAiProvider({}, http_, clock_)->Configured());
}

TEST_F(VastAiProviderTest, LateAnswersAreRetriedOrTransient) {
  auto created = provider_->Create(Request(OfferOf("7001001"), "inst-1"));
  ASSERT_TRUE(created);
  fake_->faults().Add({.kind = fakes::FaultKind::kTimeout, .operation = "describe", .delay = 50ms});
  EXPECT_TRUE(provider_->Describe(created->provider_instance_id));
  EXPECT_EQ(fake_->Requests("describe"), 2);

  auto impatient = Make(kDeployment, kKey, 200ms);
  fake_->faults().Add({.kind = fakes::FaultKind::kTimeout, .operation = "create", .delay = 10s});
  auto timed_out = impatient->Create(Request(OfferOf("7001001"), "inst-2"));
  ASSERT_FALSE(timed_out);
  EXPECT_EQ(Cause(timed_out.error()), ProviderCause::kTransient);
  EXPECT_EQ(fake_->Requests("create"), 2);
}

TEST_F(VastAiProviderTest, CreateStartsAnAgentWithTheInstanceEnvAndTerminateKillsIt) {
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
  auto fake = fakes::FakeVastAi::Start({.agent_binary = script,
                                        .work_dir = dir_.File("agents"),
                                        .api_key = kKey,
                                        .start_agents = true},
                                       fakes::FakeVastAi::DefaultCatalog(), clock_);
  ASSERT_TRUE(fake);
  fake_ = std::move(*fake);
  provider_ = Make(kDeployment);

  auto created = provider_->Create(Request(OfferOf("7001002"), "inst-9"));
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
  EXPECT_NE(text.find("GPUORCH_LOCAL_GPUS=RTX4090:4:24\n"), std::string::npos) << text;
  EXPECT_NE(text.find("GPUORCH_NODE_NAME=" + id + "\n"), std::string::npos);
  EXPECT_NE(text.find("GPUORCH_SERVER=http://10.0.0.1:8000\n"), std::string::npos);
  EXPECT_NE(text.find("GPUORCH_JOIN_TOKEN=jt-secret\n"), std::string::npos);
  EXPECT_NE(text.find("GPUORCH_INSTANCE_ID=inst-9\n"), std::string::npos);

  const pid_t pid = fake_->Ledger().at(0).agent_pid;
  ASSERT_GT(pid, 0);
  EXPECT_EQ(kill(pid, 0), 0);
  ASSERT_TRUE(provider_->Terminate(id));
  EXPECT_EQ(kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH);
}

}  // namespace
}  // namespace gpuorch::providers
