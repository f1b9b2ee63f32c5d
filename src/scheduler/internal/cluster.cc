#include "scheduler/internal/cluster.h"

#include <algorithm>
#include <climits>

#include "domain/gpu.h"
#include "scheduler/internal/fair_share.h"

namespace gpuorch::scheduler::internal {
namespace {

const std::vector<int> kNoNodes;

std::vector<int> SortedUnique(std::vector<int> values) {
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  return values;
}

}  // namespace

Cluster::Cluster(const SchedulerConfig& config) : config_(config) {}

// ---- nodes ------------------------------------------------------------------------------------

int Cluster::UpsertNode(const NodeInfo& info) {
  ++nodes_version_;
  int index = FindNode(info.id);
  if (index < 0) {
    if (!spare_slots_.empty()) {
      index = spare_slots_.back();
      spare_slots_.pop_back();
    } else {
      index = static_cast<int>(nodes_.size());
      nodes_.emplace_back();
    }
    index_[info.id] = index;
  } else {
    Unbucket(index);
  }
  Node& node = nodes_[index];
  node.info = info;
  node.info.gpu_type = domain::CanonicalGpuType(info.gpu_type);
  node.gpus = SortedUnique(info.gpu_indices);
  node.info.gpu_indices = node.gpus;
  node.holds.assign(node.gpus.size(), 0);
  node.alive = true;
  auto [type_it, new_type] =
      type_index_.try_emplace(node.info.gpu_type, static_cast<int>(type_names_.size()));
  if (new_type) {
    type_names_.push_back(node.info.gpu_type);
    buckets_.emplace_back();
  }
  node.type = type_it->second;
  max_gpus_ = std::max(max_gpus_, static_cast<int>(node.gpus.size()));
  for (Running* running : node.running) {
    SetHolds(node, running->job.gpu_indices, +1);
  }
  Rebucket(index, static_cast<int>(std::count(node.holds.begin(), node.holds.end(), 0)));
  if (auto waiting = waiting_for_node_.find(info.id); waiting != waiting_for_node_.end()) {
    for (const std::string& job_id : waiting->second) {
      Running* running = FindRunning(job_id);
      if (running && running->node < 0 && running->job.node == info.id) {
        Attach(*running, index);
      }
    }
    waiting_for_node_.erase(waiting);
  }
  NoteFreed(index);
  return index;
}

std::vector<std::string> Cluster::RemoveNode(const std::string& id) {
  const int index = FindNode(id);
  if (index < 0) {
    return {};
  }
  ++nodes_version_;
  std::vector<std::string> forgotten;
  Node& node = nodes_[index];
  while (!node.running.empty()) {
    Running* running = node.running.back();
    forgotten.push_back(running->job.job_id);
    End(running->job.job_id, core::SystemTime{}, /*charge=*/false);
  }
  Unbucket(index);
  node = Node{};
  index_.erase(id);
  spare_slots_.push_back(index);
  return forgotten;
}

int Cluster::FindNode(const std::string& id) const {
  auto it = index_.find(id);
  return it == index_.end() ? -1 : it->second;
}

int Cluster::TypeIndex(const std::string& type) const {
  auto it = type_index_.find(type);
  return it == type_index_.end() ? -1 : it->second;
}

const std::vector<int>& Cluster::Bucket(int type, int free) const {
  if (type < 0 || type >= num_types() || free < 0 ||
      free >= static_cast<int>(buckets_[type].size())) {
    return kNoNodes;
  }
  return buckets_[type][free];
}

void Cluster::Unbucket(int index) {
  Node& node = nodes_[index];
  if (node.bucket_slot < 0) {
    return;
  }
  std::vector<int>& bucket = buckets_[node.type][node.free];
  const int moved = bucket.back();
  bucket[node.bucket_slot] = moved;
  nodes_[moved].bucket_slot = node.bucket_slot;
  bucket.pop_back();
  node.bucket_slot = -1;
}

void Cluster::Rebucket(int index, int new_free) {
  Node& node = nodes_[index];
  if (node.bucket_slot >= 0 && node.free == new_free) {
    return;
  }
  Unbucket(index);
  node.free = new_free;
  auto& by_free = buckets_[node.type];
  if (static_cast<int>(by_free.size()) <= new_free) {
    by_free.resize(new_free + 1);
  }
  node.bucket_slot = static_cast<int>(by_free[new_free].size());
  by_free[new_free].push_back(index);
}

// ---- GPUs -------------------------------------------------------------------------------------

std::vector<int> Cluster::LowestFree(int index, int count, const std::vector<int>& exclude) const {
  const Node& node = nodes_[index];
  std::vector<int> out;
  for (size_t i = 0; i < node.gpus.size() && static_cast<int>(out.size()) < count; ++i) {
    if (node.holds[i] == 0 &&
        std::find(exclude.begin(), exclude.end(), node.gpus[i]) == exclude.end()) {
      out.push_back(node.gpus[i]);
    }
  }
  return out;
}

void Cluster::SetHolds(Node& node, const std::vector<int>& gpus, int delta) {
  for (int gpu : gpus) {
    auto it = std::lower_bound(node.gpus.begin(), node.gpus.end(), gpu);
    if (it == node.gpus.end() || *it != gpu) {
      continue;  // not (or no longer) a GPU of this node
    }
    uint16_t& holds = node.holds[it - node.gpus.begin()];
    if (delta < 0 && holds == 0) {
      continue;
    }
    holds = static_cast<uint16_t>(holds + delta);
  }
}

void Cluster::Hold(int index, const std::vector<int>& gpus) {
  Node& node = nodes_[index];
  SetHolds(node, gpus, +1);
  Rebucket(index, static_cast<int>(std::count(node.holds.begin(), node.holds.end(), 0)));
}

void Cluster::Release(int index, const std::vector<int>& gpus) {
  Node& node = nodes_[index];
  SetHolds(node, gpus, -1);
  const int before = node.free;
  Rebucket(index, static_cast<int>(std::count(node.holds.begin(), node.holds.end(), 0)));
  if (node.free > before) {
    NoteFreed(index);
  }
}

void Cluster::NoteFreed(int index) {
  if (!nodes_[index].freed) {
    nodes_[index].freed = true;
    freed_nodes_.push_back(index);
  }
}

// ---- running jobs -----------------------------------------------------------------------------

Running* Cluster::FindRunning(const std::string& job_id) {
  auto it = running_.find(job_id);
  return it == running_.end() ? nullptr : &it->second;
}

const Running* Cluster::FindRunning(const std::string& job_id) const {
  auto it = running_.find(job_id);
  return it == running_.end() ? nullptr : &it->second;
}

Running& Cluster::Start(JobRequest request, int node, std::vector<int> gpus, core::SystemTime now) {
  RunningJob job{.job_id = request.id,
                 .owner = request.owner,
                 .node = nodes_[node].info.id,
                 .gpu_indices = std::move(gpus),
                 .priority = request.priority,
                 .preemptible = request.preemptible,
                 .started_at = now,
                 .expected_end = now + request.runtime_bound};
  Running& running = Record(job);
  running.request = std::move(request);
  return running;
}

Running& Cluster::Record(const RunningJob& job) {
  bool victim = false;
  std::optional<JobRequest> request;
  if (Running* old = FindRunning(job.job_id)) {
    victim = old->victim;
    request = std::move(old->request);
    End(job.job_id, job.started_at, /*charge=*/false);
  }
  Running& running = running_[job.job_id];
  running.job = job;
  running.job.gpu_indices = SortedUnique(job.gpu_indices);
  running.account = AccountOf(job.owner);
  running.victim = victim;
  running.request = std::move(request);
  Account& account = accounts_[running.account];
  account.gpus_in_use += static_cast<int>(running.job.gpu_indices.size());
  TouchAccount(running.account);
  const int node = FindNode(job.node);
  if (node >= 0) {
    Attach(running, node);
  } else {
    waiting_for_node_[job.node].push_back(job.job_id);
  }
  return running;
}

std::optional<Running> Cluster::End(const std::string& job_id, core::SystemTime now, bool charge) {
  auto it = running_.find(job_id);
  if (it == running_.end()) {
    return std::nullopt;
  }
  Running& running = it->second;
  const int node = running.node;
  Detach(running);
  Account& account = accounts_[running.account];
  const int gpus = static_cast<int>(running.job.gpu_indices.size());
  account.gpus_in_use -= gpus;
  if (charge && now > running.job.started_at && gpus > 0) {
    const double seconds = std::chrono::duration<double>(now - running.job.started_at).count();
    const auto half_life = config_.fair_share_half_life;
    account.usage_gpu_s =
        DecayedUsage(account.usage_gpu_s, account.usage_at, now, half_life) + gpus * seconds;
    account.usage_at = std::max(account.usage_at, now);
    account.share_key = ShareKey(account.usage_gpu_s, account.usage_at, account.weight, half_life);
  }
  TouchAccount(running.account);
  std::optional<Running> out(std::move(running));
  out->node = node;  // where it ran, for the caller
  running_.erase(it);
  return out;
}

void Cluster::Attach(Running& running, int index) {
  running.node = index;
  Node& node = nodes_[index];
  node.running.push_back(&running);
  Hold(index, running.job.gpu_indices);
  if (running.job.preemptible) {
    CountPreemptible(running, +1);
  }
}

void Cluster::Detach(Running& running) {
  if (running.node < 0) {
    return;
  }
  Node& node = nodes_[running.node];
  auto& list = node.running;
  list.erase(std::find(list.begin(), list.end(), &running));
  if (running.job.preemptible) {
    CountPreemptible(running, -1);
  }
  Release(running.node, running.job.gpu_indices);
  running.node = -1;
}

void Cluster::CountPreemptible(Running& running, int delta) {
  const int index = running.node;
  Node& node = nodes_[index];
  node.preemptible += delta;
  if (delta > 0 && node.preemptible_slot < 0) {
    node.preemptible_slot = static_cast<int>(preemptible_nodes_.size());
    preemptible_nodes_.push_back(index);
  } else if (node.preemptible == 0 && node.preemptible_slot >= 0) {
    const int moved = preemptible_nodes_.back();
    preemptible_nodes_[node.preemptible_slot] = moved;
    nodes_[moved].preemptible_slot = node.preemptible_slot;
    preemptible_nodes_.pop_back();
    node.preemptible_slot = -1;
  }
  auto [it, inserted] = preemptible_priorities_.try_emplace(running.job.priority, 0);
  it->second += delta;
  if (it->second <= 0) {
    preemptible_priorities_.erase(it);
  }
}

int Cluster::LowestPreemptiblePriority() const {
  return preemptible_priorities_.empty() ? INT_MAX : preemptible_priorities_.begin()->first;
}

// ---- accounts ---------------------------------------------------------------------------------

int Cluster::AccountOf(const std::string& owner) {
  auto [it, inserted] = account_index_.try_emplace(owner, static_cast<int>(accounts_.size()));
  if (inserted) {
    Account account{.owner = owner};
    auto weight = config_.user_weights.find(owner);
    account.weight = weight != config_.user_weights.end() ? weight->second : config_.default_weight;
    if (!(account.weight > 0)) {
      account.weight = 1;
    }
    auto quota = config_.user_quotas.find(owner);
    account.quota = quota != config_.user_quotas.end() ? quota->second : config_.default_quota;
    accounts_.push_back(std::move(account));
  }
  return it->second;
}

int Cluster::FindAccount(const std::string& owner) const {
  auto it = account_index_.find(owner);
  return it == account_index_.end() ? -1 : it->second;
}

double Cluster::ShareAt(int index, core::SystemTime now) const {
  const Account& account = accounts_[index];
  return DecayedUsage(account.usage_gpu_s, account.usage_at, now, config_.fair_share_half_life) /
         account.weight;
}

void Cluster::TouchAccount(int index) {
  if (!accounts_[index].touched) {
    accounts_[index].touched = true;
    touched_accounts_.push_back(index);
  }
}

void Cluster::Claim(int index, int gpus) {
  accounts_[index].gpus_claimed += gpus;
  TouchAccount(index);
}

int Cluster::GpusInUse(const std::string& owner) const {
  const int index = FindAccount(owner);
  return index < 0 ? 0 : accounts_[index].QuotaUse();
}

Quota Cluster::QuotaOf(const std::string& owner) const {
  const int index = FindAccount(owner);
  if (index >= 0) {
    return accounts_[index].quota;
  }
  auto quota = config_.user_quotas.find(owner);
  return quota != config_.user_quotas.end() ? quota->second : config_.default_quota;
}

void Cluster::SetQuota(const std::string& owner, const std::optional<Quota>& quota) {
  if (quota) {
    config_.user_quotas[owner] = *quota;
  } else {
    config_.user_quotas.erase(owner);
  }
  const int index = FindAccount(owner);
  if (index >= 0) {
    accounts_[index].quota = quota.value_or(config_.default_quota);
    TouchAccount(index);
  }
}

// ---- change feeds -----------------------------------------------------------------------------

std::vector<int> Cluster::TakeFreedNodes() {
  std::vector<int> out;
  out.swap(freed_nodes_);
  for (int index : out) {
    nodes_[index].freed = false;
  }
  std::erase_if(out, [&](int index) { return !nodes_[index].alive; });
  return out;
}

std::vector<int> Cluster::TakeTouchedAccounts() {
  std::vector<int> out;
  out.swap(touched_accounts_);
  for (int index : out) {
    accounts_[index].touched = false;
  }
  return out;
}

}  // namespace gpuorch::scheduler::internal
