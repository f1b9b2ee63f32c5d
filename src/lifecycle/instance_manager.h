// Cloud capacity: rents instances when jobs wait for room, keeps the store and the providers in
// agreement, and gives instances back when they are idle. The one place that calls a provider's
// Create or Terminate.
//
// Provisioner (every loop_interval): a queued job that waits only for room (WaitInfo::needs_capacity)
// for longer than provision_after, and has no instance on the way, gets the best offer of the
// optimizer. The instance row (state requested, our id as tag and idempotency token, the SHA-256 of
// a one-time join token) is committed BEFORE the provider is called; on "no capacity" the offer is
// hidden for a while and the next offer is tried (failover across providers); a provider refusing
// for quota or auth is skipped for the rest of the decision. The instance boots `gpuorch agent`,
// which registers with the join token (NodeRegistry), and the scheduler places jobs on its node.
//
// Reconciler (every reconcile_interval, level-triggered): lists each provider's instances tagged
// with our deployment id. A tagged instance the store does not want (no row, or a terminal or
// terminating row) is terminated; one whose create we never recorded (crash after the call) is
// adopted; rows whose instance vanished or was interrupted become lost and their node's jobs are
// requeued; requested rows that never reached the provider fail after create_grace.
//
// Idle reaper: a ready instance that ran no job for its idle timeout is terminated, unless the warm
// pool needs it. Boot timeout: an instance whose agent did not register in time is terminated.
//
// Promise: every instance we may pay for is in the store before the provider hears of it, and a
// tagged instance the store does not want is terminated within one reconcile interval.
//
// Thread-safe. Tick() and Reconcile() run on the manager's loop; Terminate() and the views may be
// called from any thread. It is the NodeListener of the NodeRegistry and forwards nodes to the
// JobController.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/error.h"
#include "core/ids.h"
#include "core/periodic_loop.h"
#include "domain/instance.h"
#include "domain/job.h"
#include "lifecycle/job_controller.h"
#include "lifecycle/node_registry.h"
#include "optimizer/offer_catalog.h"
#include "optimizer/ranking.h"
#include "providers/provider.h"
#include "store/store.h"

namespace gpuorch::lifecycle {

struct InstanceManagerOptions {
  std::string deployment_id;                     // our tag at the providers
  std::string public_url;                        // GPUORCH_SERVER given to instances
  std::chrono::milliseconds loop_interval{2000};
  std::chrono::milliseconds reconcile_interval{10000};
  std::chrono::milliseconds provision_after{5000};  // a job waits this long before we rent for it
  std::chrono::milliseconds boot_timeout{600000};   // create accepted → agent registered
  std::chrono::milliseconds create_grace{60000};    // a requested row unseen at its provider fails
  std::chrono::milliseconds retry_after_failure{30000};  // a job whose provisioning failed waits
  std::chrono::milliseconds no_capacity_hide{300000};    // an offer that had no capacity is hidden
  int64_t idle_timeout_seconds = 300;
  int max_instances = 10;                        // live instances at most
  std::map<std::string, int> warm_pool;          // canonical GPU type → instances kept ready
  std::map<std::string, std::string> images;     // provider → image/AMI the agent boots from
  // Fault injection for crash tests: "before_provider_call" or "after_provider_call" makes the
  // process exit abruptly (_exit) at that step of the first provisioning. Empty: off.
  std::string crash_point;
};

struct InstanceManagerDeps {
  store::Store& store;
  const core::Clock& clock;
  core::IdGenerator& ids;
  optimizer::OfferCatalog& catalog;
  std::vector<providers::Provider*> providers;   // configured or not; unconfigured are never called
  NodeRegistry& registry;
  JobController& controller;
};

// Why a queued job has (or has no) instance on the way.
struct ProvisionInfo {
  std::string instance_id;   // empty: none (see explanation)
  std::string explanation;   // chosen offer, runner-up and price, or why nothing was rented
};

struct CostSummary {
  double total_usd = 0;                       // all instances, billed per second
  std::map<std::string, double> by_provider;  // instance cost per provider
  std::map<std::string, double> by_user;      // usage cost of users' jobs
  double idle_usd = 0;                        // instance cost not attributed to any job
};

class InstanceManager final : public NodeListener {
 public:
  InstanceManager(InstanceManagerDeps deps, InstanceManagerOptions options);
  ~InstanceManager() override;
  InstanceManager(const InstanceManager&) = delete;
  InstanceManager& operator=(const InstanceManager&) = delete;

  // The URL instances' agents dial (GPUORCH_SERVER), when only known once the server listens.
  void SetPublicUrl(std::string url);

  // Provisioning, boot timeouts, idle reaping and the warm pool: one pass.
  void Tick();
  // Provider truth against the store: one pass over every configured provider.
  void Reconcile();
  // Runs Tick() every loop_interval and Reconcile() every reconcile_interval in the background.
  void Start();
  void Stop();

  // Terminates the instance on behalf of a user (DELETE /instances/{id}); jobs running there are
  // requeued. kNotFound; kFailedPrecondition (reason "conflict") when it already ended.
  [[nodiscard]] core::Result<domain::Instance> Terminate(const std::string& instance_id,
                                                         const std::string& reason);
  std::optional<ProvisionInfo> ForJob(const std::string& job_id) const;
  // The ranked offers for `spec` without renting anything.
  [[nodiscard]] core::Result<optimizer::Decision> DryRun(const domain::JobSpec& spec) const;
  CostSummary Costs() const;
  bool AnyProviderConfigured() const;

  // NodeListener: nodes of the registry become (or stop being) nodes of the controller.
  void OnNodeReady(const RemoteNode& node) override;
  void OnNodeLost(const std::string& node_id, const std::string& reason) override;

 private:
  providers::Provider* ProviderNamed(const std::string& name) const;
  void Provision(const std::vector<scheduler::QueueEntry>& queue);
  // Rents the best offer of `decision` that a provider accepts; false when none did.
  bool Rent(const optimizer::Decision& decision, const domain::Job* job, std::string& explanation);
  void RecordCreated(const domain::Instance& instance, const providers::ProviderInstance& created);
  void KeepWarmPool(int& live_count);
  void ReapIdleAndStuck();
  // Moves the instance to terminating, takes its node away and asks the provider to end it.
  void EndInstance(const domain::Instance& instance, const std::string& reason);
  void MarkLost(const domain::Instance& instance, const std::string& reason);
  void ReconcileProvider(providers::Provider& provider);
  void CrashPoint(const char* point);
  core::Result<domain::Instance> Update(const store::InstanceUpdate& update);

  store::Store& store_;
  const core::Clock& clock_;
  core::IdGenerator& ids_;
  optimizer::OfferCatalog& catalog_;
  std::vector<providers::Provider*> providers_;
  NodeRegistry& registry_;
  JobController& controller_;
  const InstanceManagerOptions options_;
  std::string public_url_;  // GUARDED_BY(info_mu_)

  std::mutex loop_mu_;  // serializes Tick, Reconcile and Terminate
  std::map<std::string, core::SystemTime> first_seen_waiting_;  // GUARDED_BY(loop_mu_)
  std::map<std::string, core::SystemTime> retry_at_;            // GUARDED_BY(loop_mu_)
  // Ready instances seen running a job, not yet recorded as idle. GUARDED_BY(loop_mu_)
  std::map<std::string, core::SystemTime> last_busy_;
  std::atomic<bool> crash_armed_{true};

  mutable std::mutex info_mu_;
  std::map<std::string, ProvisionInfo> info_;  // GUARDED_BY(info_mu_), by job id

  std::unique_ptr<core::PeriodicLoop> tick_loop_;
  std::unique_ptr<core::PeriodicLoop> reconcile_loop_;
};

}  // namespace gpuorch::lifecycle
