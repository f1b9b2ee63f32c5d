#include "lifecycle/instance_manager.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include <spdlog/spdlog.h>

#include "domain/gpu.h"

namespace gpuorch::lifecycle {
namespace {

using domain::Instance;
using domain::InstanceState;

const std::vector<InstanceState> kLiveStates = {InstanceState::kRequested,
                                                InstanceState::kProvisioning,
                                                InstanceState::kReady, InstanceState::kTerminating};

std::string Money(double usd) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "$%.2f/h", usd);
  return buf;
}

std::string Describe(const domain::Offer& offer) {
  return offer.provider + " " + offer.instance_type + " (" + std::to_string(offer.gpu_count) +
         " x " + offer.gpu_type + (offer.region.empty() ? "" : ", " + offer.region) + ")";
}

template <typename Duration>
std::string Seconds(Duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(d).count()) + " s";
}

}  // namespace

InstanceManager::InstanceManager(InstanceManagerDeps deps, InstanceManagerOptions options)
    : store_(deps.store),
      clock_(deps.clock),
      ids_(deps.ids),
      catalog_(deps.catalog),
      providers_(std::move(deps.providers)),
      registry_(deps.registry),
      controller_(deps.controller),
      options_(std::move(options)),
      public_url_(options_.public_url) {}

void InstanceManager::SetPublicUrl(std::string url) {
  std::lock_guard lock(info_mu_);
  public_url_ = std::move(url);
}

InstanceManager::~InstanceManager() { Stop(); }

void InstanceManager::Start() {
  if (!tick_loop_) {
    tick_loop_ = std::make_unique<core::PeriodicLoop>("instances", options_.loop_interval,
                                                      [this] { Tick(); });
    reconcile_loop_ = std::make_unique<core::PeriodicLoop>(
        "reconciler", options_.reconcile_interval, [this] { Reconcile(); });
    tick_loop_->Start();
    reconcile_loop_->Start();
  }
}

void InstanceManager::Stop() {
  if (tick_loop_) {
    tick_loop_->Stop();
  }
  if (reconcile_loop_) {
    reconcile_loop_->Stop();
  }
}

bool InstanceManager::AnyProviderConfigured() const {
  return std::any_of(providers_.begin(), providers_.end(),
                     [](const providers::Provider* p) { return p->Configured(); });
}

providers::Provider* InstanceManager::ProviderNamed(const std::string& name) const {
  for (providers::Provider* p : providers_) {
    if (p->Name() == name) {
      return p;
    }
  }
  return nullptr;
}

core::Result<Instance> InstanceManager::Update(const store::InstanceUpdate& update) {
  auto result = store_.UpdateInstance(update, clock_.Now());
  if (!result && result.error().code != core::Code::kAborted) {
    spdlog::error("instance {}: store update failed: {}", update.instance_id,
                  result.error().message);
  }
  return result;
}

void InstanceManager::CrashPoint(const char* point) {
  if (!options_.crash_point.empty() && options_.crash_point == point && crash_armed_.exchange(false)) {
    std::fprintf(stderr, "gpuorch: crash point %s reached; exiting abruptly\n", point);
    std::fflush(stderr);
    ::_exit(137);
  }
}

// ---- nodes -----------------------------------------------------------------------------------

void InstanceManager::OnNodeReady(const RemoteNode& node) {
  NodeSpec spec{.node_id = node.record.id,
                .gpus = node.record.gpus,
                .provider = node.record.provider,
                .labels = node.record.labels,
                .container_runtime = node.record.container_runtime ? "docker" : "",
                .runner = node.runner,
                .instance_id = node.record.instance_id};
  if (!node.record.instance_id.empty()) {
    if (auto instance = store_.GetInstance(node.record.instance_id)) {
      spec.price_per_hour = instance->price_per_hour;
    }
  }
  controller_.AddNode(std::move(spec));
}

void InstanceManager::OnNodeLost(const std::string& node_id, const std::string& reason) {
  controller_.NodeLost(node_id, reason);
}

// ---- provisioning ----------------------------------------------------------------------------

void InstanceManager::Tick() {
  std::lock_guard lock(loop_mu_);
  if (!AnyProviderConfigured()) {
    return;
  }
  ReapIdleAndStuck();
  Provision(controller_.Queue(256));
}

void InstanceManager::Provision(const std::vector<scheduler::QueueEntry>& queue) {
  const core::SystemTime now = clock_.Now();
  auto live = store_.ListInstances({.states = kLiveStates});
  if (!live) {
    spdlog::warn("provisioner: cannot read instances: {}", live.error().message);
    return;
  }
  int live_count = static_cast<int>(live->size());
  std::set<std::string> covered;
  for (const Instance& instance : *live) {
    if (!instance.for_job_id.empty() && instance.state != InstanceState::kTerminating) {
      covered.insert(instance.for_job_id);
    }
  }
  std::set<std::string> still_waiting;
  for (const scheduler::QueueEntry& entry : queue) {
    if (!entry.wait.needs_capacity) {
      continue;
    }
    still_waiting.insert(entry.job_id);
    auto [seen, fresh] = first_seen_waiting_.try_emplace(entry.job_id, now);
    if (covered.count(entry.job_id) || now - seen->second < options_.provision_after) {
      continue;
    }
    if (auto retry = retry_at_.find(entry.job_id); retry != retry_at_.end() && now < retry->second) {
      continue;
    }
    auto job = store_.GetJob(entry.job_id);
    if (!job || job->state != domain::JobState::kQueued) {
      continue;
    }
    const auto& allowed = job->spec.allowed_providers;
    if (allowed.size() == 1 && allowed.front() == "local") {
      continue;
    }
    if (live_count >= options_.max_instances) {
      std::lock_guard info_lock(info_mu_);
      info_[job->id] = ProvisionInfo{
          .explanation = "no instance rented: " + std::to_string(live_count) +
                         " instances are live, the limit is " +
                         std::to_string(options_.max_instances)};
      break;
    }
    auto requirements = optimizer::RequirementsFor(job->spec);
    if (!requirements) {
      continue;  // validated at submit; a job from an older version may lack nothing we need
    }
    const optimizer::Decision decision = catalog_.Decide(*requirements, 5);
    std::string explanation;
    if (Rent(decision, &*job, explanation)) {
      ++live_count;
      retry_at_.erase(job->id);
    } else {
      retry_at_[job->id] = now + options_.retry_after_failure;
    }
  }
  for (auto it = first_seen_waiting_.begin(); it != first_seen_waiting_.end();) {
    it = still_waiting.count(it->first) ? std::next(it) : first_seen_waiting_.erase(it);
  }
  KeepWarmPool(live_count);
}

bool InstanceManager::Rent(const optimizer::Decision& decision, const domain::Job* job,
                           std::string& explanation) {
  explanation = decision.explanation;
  const std::string job_id = job ? job->id : "";
  auto remember = [&](const std::string& instance_id, const std::string& text) {
    if (!job_id.empty()) {
      std::lock_guard info_lock(info_mu_);
      info_[job_id] = ProvisionInfo{.instance_id = instance_id, .explanation = text};
    }
  };
  if (decision.ranked.empty()) {
    remember("", "no instance rented: " + decision.explanation);
    return false;
  }
  std::set<std::string> refused_providers;
  std::string failures;
  for (const optimizer::RankedOffer& ranked : decision.ranked) {
    const domain::Offer& offer = ranked.offer;
    providers::Provider* provider = ProviderNamed(offer.provider);
    if (provider == nullptr || !provider->Configured() || refused_providers.count(offer.provider)) {
      continue;
    }
    const core::SystemTime now = clock_.Now();
    const std::string token = core::RandomHexToken(32);
    Instance instance{.id = ids_.NewId("inst"),
                      .provider = offer.provider,
                      .state = InstanceState::kRequested,
                      .status_message = "creating at " + offer.provider + ": " + explanation,
                      .offer = offer,
                      .spot = ranked.spot,
                      .price_per_hour = ranked.price_per_hour,
                      .owner = job ? job->owner : "",
                      .for_job_id = job_id,
                      .join_token_hash = TokenHash(token),
                      .created_at = now,
                      .updated_at = now,
                      .idle_timeout_seconds = options_.idle_timeout_seconds};
    if (auto inserted = store_.InsertInstance(instance); !inserted) {
      spdlog::error("provisioner: cannot record instance: {}", inserted.error().message);
      return false;
    }
    CrashPoint("before_provider_call");
    providers::CreateInstanceRequest request{
        .tags = {.deployment_id = options_.deployment_id, .instance_id = instance.id},
        .offer = offer,
        .spot = ranked.spot,
        .max_price_per_hour = ranked.spot ? ranked.price_per_hour : 0,
        .env = {{"GPUORCH_SERVER", [this] {
                   std::lock_guard info_lock(info_mu_);
                   return public_url_;
                 }()},
                {"GPUORCH_JOIN_TOKEN", token},
                {"GPUORCH_INSTANCE_ID", instance.id}}};
    if (auto image = options_.images.find(offer.provider); image != options_.images.end()) {
      request.image = image->second;
    }
    spdlog::info("provisioner: renting {} at {} as instance {}{}", Describe(offer),
                 Money(ranked.price_per_hour), instance.id, job ? " for job " + job_id : "");
    auto created = provider->Create(request);
    CrashPoint("after_provider_call");
    if (created) {
      RecordCreated(instance, *created);
      remember(instance.id, "renting " + Describe(offer) + " at " + Money(ranked.price_per_hour) +
                                (ranked.spot ? " (spot)" : "") + " as instance " + instance.id +
                                "; " + explanation + failures);
      return true;
    }
    const providers::ProviderCause cause = providers::CauseOf(created.error());
    const std::string why = std::string(providers::ToString(cause)) + ": " + created.error().message;
    spdlog::warn("provisioner: {} refused {}: {}", offer.provider, offer.offer_id, why);
    failures += "; " + offer.provider + " " + offer.instance_type + " failed (" + why + ")";
    const bool definitive = cause == providers::ProviderCause::kNoCapacity ||
                            cause == providers::ProviderCause::kQuota ||
                            cause == providers::ProviderCause::kAuth ||
                            cause == providers::ProviderCause::kBadRequest;
    // When the outcome is unknown the instance may exist: terminating makes the reconciler find it
    // by its tag and end it (or close the row when it never appears).
    (void)Update({.instance_id = instance.id,
                  .expected_state = InstanceState::kRequested,
                  .new_state = definitive ? InstanceState::kFailed : InstanceState::kTerminating,
                  .status_message = "create failed: " + why,
                  .billing_ended_at = definitive ? std::optional(std::optional(clock_.Now()))
                                                 : std::nullopt});
    if (cause == providers::ProviderCause::kNoCapacity) {
      catalog_.MarkUnavailable(offer.provider, offer.offer_id,
                               std::chrono::duration_cast<std::chrono::milliseconds>(
                                   options_.no_capacity_hide));
    } else if (cause == providers::ProviderCause::kQuota ||
               cause == providers::ProviderCause::kAuth) {
      refused_providers.insert(offer.provider);
    }
  }
  remember("", "no instance rented: every offer failed" + failures + " (" + explanation + ")");
  return false;
}

void InstanceManager::RecordCreated(const Instance& instance,
                                    const providers::ProviderInstance& created) {
  const core::SystemTime now = clock_.Now();
  auto moved = Update({.instance_id = instance.id,
                       .expected_state = InstanceState::kRequested,
                       .new_state = InstanceState::kProvisioning,
                       .status_message = "booting: waiting for its agent to register",
                       .provider_instance_id = created.provider_instance_id,
                       .billing_started_at = std::optional(std::optional(now))});
  if (moved || moved.error().code != core::Code::kAborted) {
    return;
  }
  // The agent registered before the create returned (or a user ended it meanwhile).
  auto current = store_.GetInstance(instance.id);
  if (!current) {
    return;
  }
  (void)Update({.instance_id = instance.id,
                .expected_state = current->state,
                .provider_instance_id = created.provider_instance_id,
                .billing_started_at = std::optional(std::optional(now))});
  if (current->state == InstanceState::kTerminating) {
    if (providers::Provider* provider = ProviderNamed(instance.provider)) {
      (void)provider->Terminate(created.provider_instance_id);
    }
  }
}

void InstanceManager::KeepWarmPool(int& live_count) {
  if (options_.warm_pool.empty()) {
    return;
  }
  auto live = store_.ListInstances({.states = kLiveStates});
  if (!live) {
    return;
  }
  for (const auto& [gpu_type, wanted] : options_.warm_pool) {
    int have = 0;
    for (const Instance& instance : *live) {
      if (instance.offer.gpu_type == gpu_type && instance.state != InstanceState::kTerminating) {
        ++have;
      }
    }
    const std::string key = "warm:" + gpu_type;
    if (auto retry = retry_at_.find(key); retry != retry_at_.end() && clock_.Now() < retry->second) {
      continue;
    }
    for (; have < wanted && live_count < options_.max_instances; ++have) {
      std::string explanation;
      const optimizer::Decision decision =
          catalog_.Decide(optimizer::OfferRequirements{.gpu_type = gpu_type, .gpu_count = 1}, 5);
      if (!Rent(decision, nullptr, explanation)) {
        retry_at_[key] = clock_.Now() + options_.retry_after_failure;
        break;
      }
      ++live_count;
    }
  }
}

void InstanceManager::ReapIdleAndStuck() {
  const core::SystemTime now = clock_.Now();
  auto live = store_.ListInstances(
      {.states = {InstanceState::kProvisioning, InstanceState::kReady}});
  if (!live) {
    return;
  }
  const std::map<std::string, int> busy = controller_.LiveAttemptsByNode();
  std::map<std::string, int> ready_by_type;
  for (const Instance& instance : *live) {
    if (instance.state == InstanceState::kReady) {
      ++ready_by_type[instance.offer.gpu_type];
    }
  }
  for (const Instance& instance : *live) {
    if (instance.state == InstanceState::kProvisioning) {
      const core::SystemTime since = instance.billing_started_at.value_or(instance.created_at);
      if (now - since >= options_.boot_timeout) {
        EndInstance(instance, "its agent did not register within " + Seconds(options_.boot_timeout));
      }
      continue;
    }
    if (!instance.node_id.empty() && busy.count(instance.node_id)) {
      last_busy_[instance.id] = now;
      continue;
    }
    core::SystemTime idle_since = std::max(instance.ready_at.value_or(instance.created_at),
                                           instance.last_busy_at.value_or(core::SystemTime{}));
    if (auto busy_at = last_busy_.find(instance.id); busy_at != last_busy_.end()) {
      // It just went idle: record when, once, so that a restart does not reap it early.
      idle_since = std::max(idle_since, busy_at->second);
      (void)Update({.instance_id = instance.id,
                    .expected_state = InstanceState::kReady,
                    .last_busy_at = std::optional(std::optional(busy_at->second))});
      last_busy_.erase(busy_at);
    }
    if (now - idle_since < std::chrono::seconds(instance.idle_timeout_seconds)) {
      continue;
    }
    auto warm = options_.warm_pool.find(instance.offer.gpu_type);
    if (warm != options_.warm_pool.end() && ready_by_type[instance.offer.gpu_type] <= warm->second) {
      continue;
    }
    --ready_by_type[instance.offer.gpu_type];
    EndInstance(instance, "idle for " + std::to_string(instance.idle_timeout_seconds) + " s");
  }
}

void InstanceManager::EndInstance(const Instance& instance, const std::string& reason) {
  Instance current = instance;
  if (current.state != InstanceState::kTerminating) {
    auto moved = Update({.instance_id = instance.id,
                         .expected_state = instance.state,
                         .new_state = InstanceState::kTerminating,
                         .status_message = "terminating: " + reason});
    if (!moved) {
      return;
    }
    current = *moved;
    spdlog::info("instance {}: terminating ({})", instance.id, reason);
  }
  if (!current.node_id.empty()) {
    registry_.Deregister(current.node_id, "instance " + current.id + " terminated: " + reason);
  }
  if (current.provider_instance_id.empty()) {
    return;  // the reconciler finds it by its tag, or closes the row when it never appears
  }
  providers::Provider* provider = ProviderNamed(current.provider);
  if (provider == nullptr || !provider->Configured()) {
    return;
  }
  auto done = provider->Terminate(current.provider_instance_id);
  if (!done) {
    spdlog::warn("instance {}: terminate failed ({}); the reconciler retries", current.id,
                 done.error().message);
    return;
  }
  (void)Update({.instance_id = current.id,
                .expected_state = InstanceState::kTerminating,
                .new_state = InstanceState::kTerminated,
                .status_message = "terminated: " + reason,
                .billing_ended_at = std::optional(std::optional(clock_.Now()))});
}

void InstanceManager::MarkLost(const Instance& instance, const std::string& reason) {
  auto moved = Update({.instance_id = instance.id,
                       .expected_state = instance.state,
                       .new_state = InstanceState::kLost,
                       .status_message = "lost: " + reason,
                       .billing_ended_at = std::optional(std::optional(clock_.Now()))});
  if (!moved) {
    return;
  }
  spdlog::warn("instance {}: lost ({})", instance.id, reason);
  if (!instance.node_id.empty()) {
    registry_.MarkLost(instance.node_id, "instance " + instance.id + " " + reason);
  }
}

core::Result<Instance> InstanceManager::Terminate(const std::string& instance_id,
                                                  const std::string& reason) {
  std::lock_guard lock(loop_mu_);
  GPUORCH_ASSIGN_OR_RETURN(Instance instance, store_.GetInstance(instance_id));
  if (domain::IsTerminal(instance.state)) {
    return core::Fail(core::Code::kFailedPrecondition,
                      "instance " + instance_id + " already ended (" +
                          std::string(domain::ToString(instance.state)) + ")",
                      "", "conflict");
  }
  EndInstance(instance, reason);
  return store_.GetInstance(instance_id);
}

// ---- reconciler ------------------------------------------------------------------------------

void InstanceManager::Reconcile() {
  std::lock_guard lock(loop_mu_);
  for (providers::Provider* provider : providers_) {
    if (provider->Configured()) {
      ReconcileProvider(*provider);
    }
  }
}

void InstanceManager::ReconcileProvider(providers::Provider& provider) {
  const std::string name(provider.Name());
  auto ours = provider.ListOurs();
  if (!ours) {
    spdlog::warn("reconciler: cannot list {} instances: {}", name, ours.error().message);
    return;
  }
  auto rows = store_.ListInstances({.states = kLiveStates, .provider = name});
  if (!rows) {
    spdlog::warn("reconciler: cannot read instances: {}", rows.error().message);
    return;
  }
  const core::SystemTime now = clock_.Now();
  std::map<std::string, const Instance*> by_id;
  for (const Instance& row : *rows) {
    by_id[row.id] = &row;
  }
  std::set<std::string> seen;
  for (const providers::ProviderInstance& found : *ours) {
    if (found.tags.deployment_id != options_.deployment_id) {
      continue;
    }
    auto it = by_id.find(found.tags.instance_id);
    if (it == by_id.end()) {
      // Tagged as ours, and not wanted (no row, or it already ended): end it now.
      spdlog::warn("reconciler: terminating {} instance {} (ours: {}), which no live record wants",
                   name, found.provider_instance_id, found.tags.instance_id);
      (void)provider.Terminate(found.provider_instance_id);
      continue;
    }
    const Instance& row = *it->second;
    seen.insert(row.id);
    const bool gone = found.status == providers::ProviderInstanceStatus::kInterrupted ||
                      found.status == providers::ProviderInstanceStatus::kTerminated ||
                      found.status == providers::ProviderInstanceStatus::kStopped;
    switch (row.state) {
      case InstanceState::kRequested:
        // Created, but the service stopped before recording it: adopt it, billed from the request.
        (void)Update({.instance_id = row.id,
                      .expected_state = InstanceState::kRequested,
                      .new_state = InstanceState::kProvisioning,
                      .status_message = std::string("booting (found at the provider after a restart)"),
                      .provider_instance_id = found.provider_instance_id,
                      .billing_started_at = std::optional(std::optional(row.created_at))});
        break;
      case InstanceState::kProvisioning:
      case InstanceState::kReady:
        if (gone) {
          MarkLost(row, found.status == providers::ProviderInstanceStatus::kInterrupted
                            ? "interrupted by " + name + " (spot)"
                            : "ended at " + name + " (" + found.status_detail + ")");
          (void)provider.Terminate(found.provider_instance_id);
        } else if (row.provider_instance_id.empty()) {
          (void)Update({.instance_id = row.id,
                        .expected_state = row.state,
                        .provider_instance_id = found.provider_instance_id,
                        .billing_started_at = std::optional(std::optional(
                            row.billing_started_at.value_or(row.created_at)))});
        }
        break;
      case InstanceState::kTerminating: {
        if (gone && found.status != providers::ProviderInstanceStatus::kStopped) {
          (void)Update({.instance_id = row.id,
                        .expected_state = InstanceState::kTerminating,
                        .new_state = InstanceState::kTerminated,
                        .provider_instance_id = found.provider_instance_id,
                        .billing_ended_at = std::optional(std::optional(now))});
          break;
        }
        if (auto done = provider.Terminate(found.provider_instance_id); done) {
          (void)Update({.instance_id = row.id,
                        .expected_state = InstanceState::kTerminating,
                        .new_state = InstanceState::kTerminated,
                        .provider_instance_id = found.provider_instance_id,
                        .billing_ended_at = std::optional(std::optional(clock_.Now()))});
        }
        break;
      }
      default:
        break;
    }
  }
  for (const Instance& row : *rows) {
    if (seen.count(row.id)) {
      continue;
    }
    switch (row.state) {
      case InstanceState::kRequested:
        if (now - row.created_at >= options_.create_grace) {
          (void)Update({.instance_id = row.id,
                        .expected_state = InstanceState::kRequested,
                        .new_state = InstanceState::kFailed,
                        .status_message = "failed: never created at " + name,
                        .billing_ended_at = std::optional(std::optional(now))});
        }
        break;
      case InstanceState::kProvisioning:
      case InstanceState::kReady: {
        // Not listed: confirm with a direct look before declaring it lost.
        if (row.provider_instance_id.empty()) {
          if (now - row.created_at >= options_.create_grace) {
            MarkLost(row, "not found at " + name);
          }
          break;
        }
        auto described = provider.Describe(row.provider_instance_id);
        if (!described && described.error().code == core::Code::kNotFound) {
          MarkLost(row, "vanished at " + name);
        } else if (described &&
                   (described->status == providers::ProviderInstanceStatus::kTerminated ||
                    described->status == providers::ProviderInstanceStatus::kInterrupted)) {
          MarkLost(row, described->status == providers::ProviderInstanceStatus::kInterrupted
                            ? "interrupted by " + name + " (spot)"
                            : "ended at " + name);
        }
        break;
      }
      case InstanceState::kTerminating:
        if (!row.provider_instance_id.empty() || now - row.created_at >= options_.create_grace) {
          (void)Update({.instance_id = row.id,
                        .expected_state = InstanceState::kTerminating,
                        .new_state = InstanceState::kTerminated,
                        .status_message = "terminated: " + row.status_message,
                        .billing_ended_at = std::optional(std::optional(now))});
        }
        break;
      default:
        break;
    }
  }
}

// ---- views -----------------------------------------------------------------------------------

std::optional<ProvisionInfo> InstanceManager::ForJob(const std::string& job_id) const {
  std::lock_guard lock(info_mu_);
  auto it = info_.find(job_id);
  if (it == info_.end()) {
    return std::nullopt;
  }
  return it->second;
}

core::Result<optimizer::Decision> InstanceManager::DryRun(const domain::JobSpec& spec) const {
  GPUORCH_ASSIGN_OR_RETURN(optimizer::OfferRequirements requirements,
                           optimizer::RequirementsFor(spec));
  return catalog_.Decide(requirements, 10);
}

CostSummary InstanceManager::Costs() const {
  CostSummary out;
  const core::SystemTime now = clock_.Now();
  if (auto instances = store_.ListInstances({})) {
    for (const Instance& instance : *instances) {
      const double cost = domain::InstanceCostUsd(instance, now);
      out.by_provider[instance.provider] += cost;
      out.total_usd += cost;
    }
  }
  double attributed = 0;
  if (auto usage = store_.ListUsage({})) {
    for (const store::UsageRecord& record : *usage) {
      const double cost = store::UsageCostUsd(record, now);
      out.by_user[record.owner] += cost;
      attributed += cost;
    }
  }
  out.idle_usd = std::max(0.0, out.total_usd - attributed);
  return out;
}

}  // namespace gpuorch::lifecycle
