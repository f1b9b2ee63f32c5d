// The Store contract (store/store.h) for cloud capacity: instances and their state machine, nodes,
// usage records and settings. Written against the interface only; every backend in
// testing::AllBackends() runs it.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "domain/gpu.h"
#include "domain/instance.h"
#include "store/store.h"
#include "unit/store/store_test_util.h"

namespace gpuorch::store {
namespace {

using core::Code;
using domain::Instance;
using domain::InstanceState;
using testing::BackendFactory;
using testing::Describe;
using namespace std::chrono_literals;

class StoreCapacityContractTest : public testing::StoreContractFixture {
 protected:
  // A requested instance with a fresh id, stamped with the fake clock (which then moves on by 1
  // ms).
  Instance NewInstance(const std::string& owner = "alice", const std::string& provider = "runpod") {
    Instance instance;
    instance.id = "inst-" + std::to_string(next_id_++);
    instance.provider = provider;
    instance.owner = owner;
    instance.offer = domain::Offer{.provider = provider, .offer_id = "RTX4090|1", .gpu_count = 1};
    instance.price_per_hour = 0.69;
    instance.created_at = clock_.Now();
    instance.updated_at = instance.created_at;
    clock_.Advance(1ms);
    return instance;
  }

  // Inserts `instance` and returns it as stored (seq assigned); the test fails if the store
  // refuses.
  Instance Insert(Instance instance) {
    auto status = store().InsertInstance(instance);
    EXPECT_TRUE(status.has_value()) << Describe(status);
    auto stored = store().GetInstance(instance.id);
    EXPECT_TRUE(stored.has_value()) << Describe(stored);
    return stored ? *stored : Instance{};
  }

  // Moves `id` from `from` to `to`; the test fails if the store refuses.
  Instance Move(const std::string& id, InstanceState from, InstanceState to) {
    clock_.Advance(1ms);
    auto moved = store().UpdateInstance(
        InstanceUpdate{.instance_id = id, .expected_state = from, .new_state = to}, clock_.Now());
    EXPECT_TRUE(moved.has_value()) << Describe(moved);
    return moved ? *moved : Instance{};
  }

  static std::vector<std::string> Ids(const std::vector<Instance>& instances) {
    std::vector<std::string> ids;
    for (const Instance& instance : instances) {
      ids.push_back(instance.id);
    }
    return ids;
  }

  core::FakeClock clock_;
  int next_id_ = 1;
};

// Every field set, with text that a careless encoder would mangle.
Instance FullInstance(core::SystemTime t) {
  Instance instance;
  instance.id = "inst-full-ü";
  instance.provider = "vastai";
  instance.provider_instance_id = "";  // not answered yet: a requested instance
  instance.state = InstanceState::kRequested;
  instance.status_message = "creating 8 × H100 — \"spot\"\nline 2";
  instance.offer = domain::Offer{.provider = "vastai",
                                 .offer_id = "ask-123456|8",
                                 .instance_type = "8x H100 SXM «EU»",
                                 .gpu_type = "H100",
                                 .gpu_count = 8,
                                 .gpu_memory_gb = 80.5,
                                 .on_demand_price = 17.123456789012345,
                                 .spot_price = 9.87,
                                 .region = "eu-west-ß",
                                 .reliability = 0.987,
                                 .available = 3,
                                 .cpu_count = 128,
                                 .ram_gb = 1024.25};
  instance.spot = true;
  instance.price_per_hour = 9.87;
  instance.owner = "Ünïcødé owner 👩‍🚀";
  instance.for_job_id = "job-7";
  instance.node_id = "node-ä";
  instance.join_token_hash = std::string(64, 'a');
  instance.created_at = t;
  instance.updated_at = t + 1ms;
  instance.billing_started_at = t + 2ms;
  instance.ready_at = t + 3ms;
  instance.billing_ended_at = t + 4ms;
  instance.last_busy_at = t + 5ms;
  instance.idle_timeout_seconds = 1234;
  return instance;
}

// ---- Instances ----

TEST_P(StoreCapacityContractTest, InstanceRoundTripsEveryField) {
  const Instance instance = FullInstance(clock_.Now());
  auto inserted = store().InsertInstance(instance);
  ASSERT_TRUE(inserted.has_value()) << Describe(inserted);
  auto got = store().GetInstance(instance.id);
  ASSERT_TRUE(got.has_value()) << Describe(got);
  EXPECT_GT(got->seq, 0);
  Instance expected = instance;
  expected.seq = got->seq;
  EXPECT_EQ(*got, expected);
}

TEST_P(StoreCapacityContractTest, InstanceRoundTripsUnsetFields) {
  Instance instance;
  instance.id = "inst-bare";
  instance.created_at = clock_.Now();
  instance.updated_at = instance.created_at;
  Instance stored = Insert(instance);
  instance.seq = stored.seq;
  EXPECT_EQ(stored, instance);
  EXPECT_FALSE(stored.offer.spot_price.has_value());
  EXPECT_FALSE(stored.billing_started_at.has_value());
  EXPECT_FALSE(stored.ready_at.has_value());
  EXPECT_FALSE(stored.billing_ended_at.has_value());
  EXPECT_FALSE(stored.last_busy_at.has_value());
}

TEST_P(StoreCapacityContractTest, InsertInstanceAssignsIncreasingSeq) {
  Instance a = Insert(NewInstance());
  Instance b = Insert(NewInstance());
  EXPECT_GT(b.seq, a.seq);
}

TEST_P(StoreCapacityContractTest, InsertInstanceRefusesDuplicateId) {
  Instance first = Insert(NewInstance("alice"));
  Instance again = NewInstance("bob");
  again.id = first.id;
  auto refused = store().InsertInstance(again);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, Code::kAlreadyExists) << refused.error().message;
  EXPECT_EQ(store().GetInstance(first.id)->owner, "alice");
}

TEST_P(StoreCapacityContractTest, InsertInstanceRefusesBadInstances) {
  Instance ready = NewInstance();
  ready.state = InstanceState::kReady;
  Instance no_id = NewInstance();
  no_id.id = "";
  Instance nan_price = NewInstance();
  nan_price.price_per_hour = std::nan("");
  for (const Instance& bad : {ready, no_id, nan_price}) {
    auto refused = store().InsertInstance(bad);
    ASSERT_FALSE(refused.has_value()) << bad.id;
    EXPECT_EQ(refused.error().code, Code::kInvalidArgument) << refused.error().message;
  }
  EXPECT_EQ(store().GetInstance(ready.id).error().code, Code::kNotFound);
  EXPECT_TRUE(store().ListInstances({})->empty());
}

TEST_P(StoreCapacityContractTest, GetMissingInstanceIsNotFound) {
  auto missing = store().GetInstance("inst-nope");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, Code::kNotFound);
}

TEST_P(StoreCapacityContractTest, ListInstancesFiltersByStateOwnerAndProviderOldestFirst) {
  Instance a = Insert(NewInstance("alice", "runpod"));
  Instance b = Insert(NewInstance("bob", "runpod"));
  Instance c = Insert(NewInstance("alice", "aws"));
  Instance d = Insert(NewInstance("", "vastai"));  // warm pool: no owner
  Move(b.id, InstanceState::kRequested, InstanceState::kProvisioning);
  Move(c.id, InstanceState::kRequested, InstanceState::kFailed);
  Move(d.id, InstanceState::kRequested, InstanceState::kProvisioning);

  auto list = [&](InstanceQuery query) {
    auto instances = store().ListInstances(query);
    EXPECT_TRUE(instances.has_value()) << Describe(instances);
    return instances ? Ids(*instances) : std::vector<std::string>{};
  };
  using IdList = std::vector<std::string>;
  EXPECT_EQ(list({}), (IdList{a.id, b.id, c.id, d.id}));
  EXPECT_EQ(list({.states = {InstanceState::kProvisioning}}), (IdList{b.id, d.id}));
  EXPECT_EQ(
      list({.states = {InstanceState::kFailed, InstanceState::kRequested, InstanceState::kFailed}}),
      (IdList{a.id, c.id}));
  EXPECT_EQ(list({.states = {InstanceState::kReady}}), IdList{});
  EXPECT_EQ(list({.owner = "alice"}), (IdList{a.id, c.id}));
  EXPECT_EQ(list({.owner = ""}), IdList{d.id});
  EXPECT_EQ(list({.provider = "runpod"}), (IdList{a.id, b.id}));
  EXPECT_EQ(list({.owner = "alice", .provider = "runpod"}), IdList{a.id});
  EXPECT_EQ(list({.states = {InstanceState::kProvisioning}, .owner = "bob", .provider = "runpod"}),
            IdList{b.id});
  EXPECT_EQ(list({.states = {InstanceState::kProvisioning}, .owner = "alice"}), IdList{});
  auto all = store().ListInstances({});
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ((*all)[0], *store().GetInstance(a.id));  // whole rows, not only ids
}

// ---- Instance updates: a compare-and-set on the state ----

TEST_P(StoreCapacityContractTest, UpdateInstanceAppliesFieldsAndReturnsStoredInstance) {
  Instance instance = Insert(NewInstance());
  const core::SystemTime now = clock_.Now() + 1500us;  // not a whole millisecond
  InstanceUpdate update{.instance_id = instance.id,
                        .expected_state = InstanceState::kRequested,
                        .new_state = InstanceState::kProvisioning};
  update.status_message = "accepted";
  update.provider_instance_id = "pod-abc";
  update.price_per_hour = 0.44;
  update.billing_started_at = now;
  auto updated = store().UpdateInstance(update, now);
  ASSERT_TRUE(updated.has_value()) << Describe(updated);
  EXPECT_EQ(updated->state, InstanceState::kProvisioning);
  EXPECT_EQ(updated->status_message, "accepted");
  EXPECT_EQ(updated->provider_instance_id, "pod-abc");
  EXPECT_EQ(updated->price_per_hour, 0.44);
  EXPECT_EQ(updated->updated_at, core::FromUnixMillis(core::ToUnixMillis(now)));
  EXPECT_EQ(updated->billing_started_at, updated->updated_at);
  auto got = store().GetInstance(instance.id);
  ASSERT_TRUE(got.has_value()) << Describe(got);
  EXPECT_EQ(*got, *updated);  // what the update returns is what a read returns
}

TEST_P(StoreCapacityContractTest, UpdateInstanceKeepsFieldsNotSet) {
  Instance instance = FullInstance(clock_.Now());
  ASSERT_TRUE(store().InsertInstance(instance).has_value());
  Instance before = *store().GetInstance(instance.id);
  clock_.Advance(1s);
  auto updated = store().UpdateInstance(
      InstanceUpdate{.instance_id = instance.id, .expected_state = InstanceState::kRequested},
      clock_.Now());
  ASSERT_TRUE(updated.has_value()) << Describe(updated);
  Instance expected = before;
  expected.updated_at = clock_.Now();
  EXPECT_EQ(*updated, expected);
  EXPECT_EQ(*store().GetInstance(instance.id), expected);
}

TEST_P(StoreCapacityContractTest, UpdateInstanceWithoutNewStateChangesFieldsOnly) {
  Instance instance = Insert(NewInstance());
  Move(instance.id, InstanceState::kRequested, InstanceState::kProvisioning);
  Move(instance.id, InstanceState::kProvisioning, InstanceState::kReady);
  InstanceUpdate update{.instance_id = instance.id, .expected_state = InstanceState::kReady};
  update.node_id = "node-1";
  update.join_token_hash = "";  // used: cleared
  update.last_busy_at = clock_.Now();
  auto updated = store().UpdateInstance(update, clock_.Now());
  ASSERT_TRUE(updated.has_value()) << Describe(updated);
  EXPECT_EQ(updated->state, InstanceState::kReady);
  EXPECT_EQ(updated->node_id, "node-1");
  EXPECT_EQ(updated->last_busy_at, clock_.Now());
  EXPECT_EQ(updated->owner, instance.owner);
  EXPECT_EQ(updated->offer, instance.offer);
}

TEST_P(StoreCapacityContractTest, UpdateInstanceSetsAndClearsOptionalTimes) {
  Instance instance = Insert(NewInstance());
  const core::SystemTime t = clock_.Now();
  InstanceUpdate set{.instance_id = instance.id, .expected_state = InstanceState::kRequested};
  set.billing_started_at = t + 1ms;
  set.ready_at = t + 2ms;
  set.billing_ended_at = t + 3ms;
  set.last_busy_at = t + 4ms;
  auto with_times = store().UpdateInstance(set, t);
  ASSERT_TRUE(with_times.has_value()) << Describe(with_times);
  EXPECT_EQ(with_times->billing_started_at, t + 1ms);
  EXPECT_EQ(with_times->ready_at, t + 2ms);
  EXPECT_EQ(with_times->billing_ended_at, t + 3ms);
  EXPECT_EQ(with_times->last_busy_at, t + 4ms);

  InstanceUpdate clear{.instance_id = instance.id, .expected_state = InstanceState::kRequested};
  clear.ready_at = std::optional<std::optional<core::SystemTime>>(std::in_place, std::nullopt);
  clear.billing_ended_at.emplace(std::nullopt);
  auto cleared = store().UpdateInstance(clear, t);
  ASSERT_TRUE(cleared.has_value()) << Describe(cleared);
  EXPECT_EQ(cleared->billing_started_at, t + 1ms);  // not named: kept
  EXPECT_FALSE(cleared->ready_at.has_value());
  EXPECT_FALSE(cleared->billing_ended_at.has_value());
  EXPECT_EQ(cleared->last_busy_at, t + 4ms);
  EXPECT_EQ(*store().GetInstance(instance.id), *cleared);
}

TEST_P(StoreCapacityContractTest, UpdateOfMissingInstanceIsNotFound) {
  auto missing = store().UpdateInstance(InstanceUpdate{.instance_id = "inst-nope",
                                                       .expected_state = InstanceState::kRequested,
                                                       .new_state = InstanceState::kProvisioning},
                                        clock_.Now());
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, Code::kNotFound);
}

TEST_P(StoreCapacityContractTest, UpdateInstanceWithStaleExpectedStateIsAbortedAndChangesNothing) {
  Instance instance = Insert(NewInstance());
  Instance provisioning =
      Move(instance.id, InstanceState::kRequested, InstanceState::kProvisioning);
  InstanceUpdate stale{.instance_id = instance.id,
                       .expected_state = InstanceState::kRequested,
                       .new_state = InstanceState::kFailed};
  stale.status_message = "should not stick";
  auto refused = store().UpdateInstance(stale, clock_.Now() + 1h);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, Code::kAborted) << refused.error().message;
  EXPECT_EQ(*store().GetInstance(instance.id), provisioning);
}

TEST_P(StoreCapacityContractTest, UpdateInstanceAlongAnIllegalArrowIsFailedPrecondition) {
  Instance instance = Insert(NewInstance());
  for (InstanceState to : {InstanceState::kReady, InstanceState::kTerminated, InstanceState::kLost,
                           InstanceState::kRequested}) {
    auto refused =
        store().UpdateInstance(InstanceUpdate{.instance_id = instance.id,
                                              .expected_state = InstanceState::kRequested,
                                              .new_state = to},
                               clock_.Now() + 1h);
    ASSERT_FALSE(refused.has_value()) << domain::ToString(to);
    EXPECT_EQ(refused.error().code, Code::kFailedPrecondition) << refused.error().message;
  }
  EXPECT_EQ(*store().GetInstance(instance.id), instance);
}

TEST_P(StoreCapacityContractTest, InstanceWalksItsLifeAndTerminalStatesAreFinal) {
  Instance instance = Insert(NewInstance());
  Move(instance.id, InstanceState::kRequested, InstanceState::kProvisioning);
  Move(instance.id, InstanceState::kProvisioning, InstanceState::kReady);
  Move(instance.id, InstanceState::kReady, InstanceState::kTerminating);
  Instance terminated = Move(instance.id, InstanceState::kTerminating, InstanceState::kTerminated);
  EXPECT_EQ(terminated.state, InstanceState::kTerminated);
  for (InstanceState to : {InstanceState::kRequested, InstanceState::kReady,
                           InstanceState::kTerminating, InstanceState::kLost}) {
    auto refused =
        store().UpdateInstance(InstanceUpdate{.instance_id = instance.id,
                                              .expected_state = InstanceState::kTerminated,
                                              .new_state = to},
                               clock_.Now());
    ASSERT_FALSE(refused.has_value());
    EXPECT_EQ(refused.error().code, Code::kFailedPrecondition);
  }
  // A terminal instance still takes field updates (billing confirmed after the fact).
  InstanceUpdate late{.instance_id = instance.id, .expected_state = InstanceState::kTerminated};
  late.billing_ended_at = clock_.Now();
  auto updated = store().UpdateInstance(late, clock_.Now());
  ASSERT_TRUE(updated.has_value()) << Describe(updated);
  EXPECT_EQ(updated->billing_ended_at, clock_.Now());
}

TEST_P(StoreCapacityContractTest, ConcurrentInstanceCompareAndSetHasOneWinner) {
  constexpr int kThreads = 16;
  Instance instance = Insert(NewInstance());
  std::vector<core::Result<Instance>> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      InstanceUpdate update{.instance_id = instance.id,
                            .expected_state = InstanceState::kRequested,
                            .new_state = InstanceState::kProvisioning};
      update.provider_instance_id = "pod-" + std::to_string(i);
      results[i] = store().UpdateInstance(update, clock_.Now());
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  int winners = 0;
  std::string winner;
  for (int i = 0; i < kThreads; ++i) {
    if (results[i]) {
      ++winners;
      winner = "pod-" + std::to_string(i);
    } else {
      EXPECT_EQ(results[i].error().code, Code::kAborted);
    }
  }
  EXPECT_EQ(winners, 1);
  EXPECT_EQ(store().GetInstance(instance.id)->provider_instance_id, winner);
}

// ---- Join tokens ----

TEST_P(StoreCapacityContractTest, JoinTokenLookupFindsOnlyLiveInstances) {
  Instance live = NewInstance();
  live.join_token_hash = "hash-live";
  Insert(live);
  Instance dead = NewInstance();
  dead.join_token_hash = "hash-dead";
  Insert(dead);
  Move(dead.id, InstanceState::kRequested, InstanceState::kFailed);
  Insert(NewInstance());  // no join token at all

  auto found = store().FindInstanceByJoinTokenHash("hash-live");
  ASSERT_TRUE(found.has_value()) << Describe(found);
  EXPECT_EQ(found->id, live.id);
  for (const std::string& hash : {std::string("hash-dead"), std::string(""),
                                  std::string("hash-other"), std::string("HASH-LIVE")}) {
    auto missing = store().FindInstanceByJoinTokenHash(hash);
    ASSERT_FALSE(missing.has_value()) << hash;
    EXPECT_EQ(missing.error().code, Code::kNotFound) << hash;
  }
}

TEST_P(StoreCapacityContractTest, JoinTokenLookupFollowsTheInstanceThroughItsLife) {
  Instance instance = NewInstance();
  instance.join_token_hash = "hash-1";
  Insert(instance);
  Move(instance.id, InstanceState::kRequested, InstanceState::kProvisioning);
  EXPECT_EQ(store().FindInstanceByJoinTokenHash("hash-1")->id, instance.id);
  Move(instance.id, InstanceState::kProvisioning, InstanceState::kTerminating);
  EXPECT_EQ(store().FindInstanceByJoinTokenHash("hash-1")->id, instance.id);
  Move(instance.id, InstanceState::kTerminating, InstanceState::kLost);
  EXPECT_EQ(store().FindInstanceByJoinTokenHash("hash-1").error().code, Code::kNotFound);

  Instance used = NewInstance();
  used.join_token_hash = "hash-2";
  Insert(used);
  InstanceUpdate clear{.instance_id = used.id, .expected_state = InstanceState::kRequested};
  clear.join_token_hash = "";
  ASSERT_TRUE(store().UpdateInstance(clear, clock_.Now()).has_value());
  EXPECT_EQ(store().FindInstanceByJoinTokenHash("hash-2").error().code, Code::kNotFound);
  EXPECT_EQ(store().FindInstanceByJoinTokenHash("").error().code, Code::kNotFound);
}

// ---- Nodes ----

NodeRecord FullNode(core::SystemTime t) {
  return NodeRecord{
      .id = "node-ü1",
      .instance_id = "inst-1",
      .provider = "runpod",
      .hostname = "gpu-box-ß.example",
      .gpus =
          {domain::GpuDevice{.index = 0,
                             .name = "NVIDIA GeForce RTX 4090",
                             .type = "RTX4090",
                             .memory_mb = 24564,
                             .uuid = "GPU-0123-abcd"},
           domain::GpuDevice{
               .index = 3, .name = "NVIDIA H200", .type = "H200", .memory_mb = 143771, .uuid = ""}},
      .labels = {{"zone", "us-east-1a"},
                 {"gpuorch.io/pool", "spot"},
                 {"emoji", "🚀"},
                 {"quote", "a \"b\" \\ c"},
                 {"empty", ""}},
      .container_runtime = true,
      .token_hash = std::string(64, 'f'),
      .state = "active",
      .registered_at = t,
      .updated_at = t + 7ms,
  };
}

TEST_P(StoreCapacityContractTest, NodeRoundTripsEveryField) {
  const NodeRecord node = FullNode(clock_.Now());
  auto upserted = store().UpsertNode(node);
  ASSERT_TRUE(upserted.has_value()) << Describe(upserted);
  auto got = store().GetNode(node.id);
  ASSERT_TRUE(got.has_value()) << Describe(got);
  EXPECT_EQ(*got, node);

  NodeRecord bare{.id = "node-bare", .registered_at = clock_.Now(), .updated_at = clock_.Now()};
  ASSERT_TRUE(store().UpsertNode(bare).has_value());
  EXPECT_EQ(*store().GetNode(bare.id), bare);
  EXPECT_EQ(store().GetNode(bare.id)->provider, "local");
}

TEST_P(StoreCapacityContractTest, UpsertNodeReplacesEveryField) {
  const NodeRecord first = FullNode(clock_.Now());
  ASSERT_TRUE(store().UpsertNode(first).has_value());
  NodeRecord second{.id = first.id,
                    .provider = "local",
                    .hostname = "other-host",
                    .gpus = {domain::GpuDevice{.index = 1, .type = "A100", .memory_mb = 40960}},
                    .labels = {{"zone", "b"}},
                    .state = "lost",
                    .registered_at = clock_.Now() + 1s,
                    .updated_at = clock_.Now() + 2s};
  ASSERT_TRUE(store().UpsertNode(second).has_value());
  EXPECT_EQ(*store().GetNode(first.id), second);
  auto all = store().ListNodes();
  ASSERT_TRUE(all.has_value()) << Describe(all);
  EXPECT_EQ(*all, std::vector<NodeRecord>{second});
}

TEST_P(StoreCapacityContractTest, ListNodesIsOldestRegistrationFirst) {
  const core::SystemTime t = clock_.Now();
  NodeRecord late{.id = "node-a", .registered_at = t + 2s, .updated_at = t + 2s};
  NodeRecord early{.id = "node-b", .registered_at = t, .updated_at = t + 5s};
  NodeRecord tie{.id = "node-c", .registered_at = t + 2s, .updated_at = t + 2s};
  for (const NodeRecord& node : {late, early, tie}) {
    ASSERT_TRUE(store().UpsertNode(node).has_value());
  }
  auto all = store().ListNodes();
  ASSERT_TRUE(all.has_value()) << Describe(all);
  EXPECT_EQ(*all, (std::vector<NodeRecord>{early, late, tie}));
}

TEST_P(StoreCapacityContractTest, MissingNodeIsNotFoundAndNodeNeedsAnId) {
  EXPECT_TRUE(store().ListNodes()->empty());
  auto missing = store().GetNode("node-nope");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  auto refused = store().UpsertNode(NodeRecord{.id = ""});
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, Code::kInvalidArgument);
}

// ---- Usage ----

UsageRecord Usage(const std::string& job_id, int attempt, const std::string& owner,
                  const std::string& instance_id, core::SystemTime started_at) {
  return UsageRecord{.job_id = job_id,
                     .attempt = attempt,
                     .owner = owner,
                     .instance_id = instance_id,
                     .provider = "runpod",
                     .node_id = "node-" + instance_id,
                     .usd_per_hour = 0.345,
                     .started_at = started_at};
}

TEST_P(StoreCapacityContractTest, OpenUsageIsIdempotentPerJobAttempt) {
  const UsageRecord first = Usage("job-1", 1, "alice", "inst-1", clock_.Now());
  ASSERT_TRUE(store().OpenUsage(first).has_value());
  UsageRecord replay = Usage("job-1", 1, "bob", "inst-2", clock_.Now() + 1h);
  replay.usd_per_hour = 99;
  auto again = store().OpenUsage(replay);
  ASSERT_TRUE(again.has_value()) << Describe(again);
  auto records = store().ListUsage({});
  ASSERT_TRUE(records.has_value()) << Describe(records);
  EXPECT_EQ(*records, std::vector<UsageRecord>{first});

  const UsageRecord next_attempt = Usage("job-1", 2, "alice", "inst-2", clock_.Now() + 2h);
  ASSERT_TRUE(store().OpenUsage(next_attempt).has_value());
  EXPECT_EQ(*store().ListUsage({}), (std::vector<UsageRecord>{first, next_attempt}));
}

TEST_P(StoreCapacityContractTest, CloseUsageSetsEndOnlyWhileOpen) {
  const core::SystemTime t = clock_.Now();
  ASSERT_TRUE(store().OpenUsage(Usage("job-1", 0, "alice", "inst-1", t)).has_value());
  auto closed = store().CloseUsage("job-1", 0, t + 10min);
  ASSERT_TRUE(closed.has_value()) << Describe(closed);
  EXPECT_EQ(store().ListUsage({})->at(0).ended_at, t + 10min);
  ASSERT_TRUE(store().CloseUsage("job-1", 0, t + 20min).has_value());  // already closed: no-op
  EXPECT_EQ(store().ListUsage({})->at(0).ended_at, t + 10min);
  ASSERT_TRUE(store().CloseUsage("job-1", 1, t + 20min).has_value());  // absent: no-op
  ASSERT_TRUE(store().CloseUsage("job-none", 0, t + 20min).has_value());
  EXPECT_EQ(store().ListUsage({})->size(), 1u);
  // Reopening after a close changes nothing either.
  ASSERT_TRUE(store().OpenUsage(Usage("job-1", 0, "alice", "inst-1", t + 1h)).has_value());
  EXPECT_EQ(store().ListUsage({})->at(0).ended_at, t + 10min);
  EXPECT_EQ(store().ListUsage({})->at(0).started_at, t);
}

TEST_P(StoreCapacityContractTest, ListUsageFiltersAndSortsByStart) {
  const core::SystemTime t = clock_.Now();
  const UsageRecord a = Usage("job-a", 0, "alice", "inst-1", t + 3h);
  const UsageRecord b = Usage("job-b", 0, "bob", "inst-1", t);
  const UsageRecord c = Usage("job-a", 1, "alice", "inst-2", t + 1h);
  const UsageRecord d = Usage("job-d", 0, "alice", "", t + 2h);  // on a node we do not rent
  for (const UsageRecord& u : {a, b, c, d}) {
    ASSERT_TRUE(store().OpenUsage(u).has_value());
  }
  ASSERT_TRUE(store().CloseUsage(b.job_id, b.attempt, t + 30min).has_value());
  ASSERT_TRUE(store().CloseUsage(c.job_id, c.attempt, t + 90min).has_value());
  UsageRecord b_closed = b;
  b_closed.ended_at = t + 30min;
  UsageRecord c_closed = c;
  c_closed.ended_at = t + 90min;

  auto list = [&](UsageQuery query) {
    auto records = store().ListUsage(query);
    EXPECT_TRUE(records.has_value()) << Describe(records);
    return records.value_or(std::vector<UsageRecord>{});
  };
  using Records = std::vector<UsageRecord>;
  EXPECT_EQ(list({}), (Records{b_closed, c_closed, d, a}));
  EXPECT_EQ(list({.owner = "alice"}), (Records{c_closed, d, a}));
  EXPECT_EQ(list({.job_id = "job-a"}), (Records{c_closed, a}));
  EXPECT_EQ(list({.instance_id = "inst-1"}), (Records{b_closed, a}));
  EXPECT_EQ(list({.instance_id = ""}), Records{d});
  EXPECT_EQ(list({.owner = "bob", .instance_id = "inst-2"}), Records{});
  // active_since: open ones, and closed ones that ended at or after it.
  EXPECT_EQ(list({.active_since = t + 90min}), (Records{c_closed, d, a}));
  EXPECT_EQ(list({.active_since = t + 91min}), (Records{d, a}));
  EXPECT_EQ(list({.owner = "alice", .job_id = "job-a", .active_since = t + 2h}), Records{a});
}

TEST_P(StoreCapacityContractTest, OpenUsageRefusesBadRecords) {
  UsageRecord no_job = Usage("", 0, "alice", "inst-1", clock_.Now());
  UsageRecord nan_price = Usage("job-1", 0, "alice", "inst-1", clock_.Now());
  nan_price.usd_per_hour = std::nan("");
  for (const UsageRecord& bad : {no_job, nan_price}) {
    auto refused = store().OpenUsage(bad);
    ASSERT_FALSE(refused.has_value());
    EXPECT_EQ(refused.error().code, Code::kInvalidArgument);
  }
  EXPECT_TRUE(store().ListUsage({})->empty());
}

// ---- Settings ----

TEST_P(StoreCapacityContractTest, SettingIsInitialisedOnce) {
  auto first = store().GetOrInitSetting("signing_key", "k1");
  ASSERT_TRUE(first.has_value()) << Describe(first);
  EXPECT_EQ(*first, "k1");
  auto second = store().GetOrInitSetting("signing_key", "k2");
  ASSERT_TRUE(second.has_value()) << Describe(second);
  EXPECT_EQ(*second, "k1");
  EXPECT_EQ(*store().GetOrInitSetting("other", ""), "");
  EXPECT_EQ(*store().GetOrInitSetting("other", "x"), "");
  const std::string text = "ключ 🔑 \"q\"\n\t{}";
  EXPECT_EQ(*store().GetOrInitSetting("text", text), text);
}

TEST_P(StoreCapacityContractTest, ConcurrentSettingInitialisersAllSeeOneValue) {
  constexpr int kThreads = 16;
  std::vector<core::Result<std::string>> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      results[i] = store().GetOrInitSetting("cluster_id", "value-" + std::to_string(i));
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  std::set<std::string> seen;
  for (const auto& result : results) {
    ASSERT_TRUE(result.has_value()) << Describe(result);
    seen.insert(*result);
  }
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen.begin()->rfind("value-", 0), 0u);
  EXPECT_EQ(*store().GetOrInitSetting("cluster_id", "late"), *seen.begin());
}

// ---- Durability ----

TEST_P(StoreCapacityContractTest, CapacityRecordsPersistAcrossReopen) {
  Instance full = FullInstance(clock_.Now());
  ASSERT_TRUE(store().InsertInstance(full).has_value());
  Instance instance = Insert(NewInstance());
  Move(instance.id, InstanceState::kRequested, InstanceState::kProvisioning);
  Instance ready = Move(instance.id, InstanceState::kProvisioning, InstanceState::kReady);
  const NodeRecord node = FullNode(clock_.Now());
  ASSERT_TRUE(store().UpsertNode(node).has_value());
  const UsageRecord usage = Usage("job-1", 0, "alice", instance.id, clock_.Now());
  ASSERT_TRUE(store().OpenUsage(usage).has_value());
  ASSERT_TRUE(store().GetOrInitSetting("signing_key", "k1").has_value());
  auto instances_before = store().ListInstances({});
  ASSERT_TRUE(instances_before.has_value());

  Reopen();
  EXPECT_EQ(*store().ListInstances({}), *instances_before);
  EXPECT_EQ(*store().GetInstance(instance.id), ready);
  EXPECT_EQ(store().GetInstance(full.id)->offer, full.offer);
  EXPECT_EQ(store().FindInstanceByJoinTokenHash(full.join_token_hash)->id, full.id);
  EXPECT_EQ(*store().GetNode(node.id), node);
  EXPECT_EQ(*store().ListUsage({}), std::vector<UsageRecord>{usage});
  EXPECT_EQ(*store().GetOrInitSetting("signing_key", "k2"), "k1");
  auto duplicate = store().InsertInstance(full);
  ASSERT_FALSE(duplicate.has_value());
  EXPECT_EQ(duplicate.error().code, Code::kAlreadyExists);
  Instance later = Insert(NewInstance());
  EXPECT_GT(later.seq, ready.seq);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreCapacityContractTest,
                         ::testing::ValuesIn(testing::AllBackends()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace gpuorch::store
