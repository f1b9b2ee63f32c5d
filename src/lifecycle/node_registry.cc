#include "lifecycle/node_registry.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <system_error>
#include <utility>

#include <spdlog/spdlog.h>

#include "core/ids.h"
#include "core/log.h"
#include "domain/gpu.h"
#include "domain/instance.h"
#include "lifecycle/internal/remote_node.h"

namespace gpuorch::lifecycle {
namespace {

constexpr size_t kMaxNodeNameBytes = 48;

// Equal tokens, in time independent of where they differ (and of their lengths): their digests
// are compared, in constant time.
bool SameToken(std::string_view a, std::string_view b) {
  return security::ConstantTimeEquals(TokenHash(a), TokenHash(b));
}

// Lowercase letters, digits and single dashes, at most kMaxNodeNameBytes; "node" when nothing is left.
std::string Sanitize(std::string_view name) {
  std::string out;
  for (char c : name) {
    char lower = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    bool ok = (lower >= 'a' && lower <= 'z') || (lower >= '0' && lower <= '9');
    if (ok) {
      out.push_back(lower);
    } else if (!out.empty() && out.back() != '-') {
      out.push_back('-');
    }
    if (out.size() >= kMaxNodeNameBytes) {
      break;
    }
  }
  while (!out.empty() && out.back() == '-') {
    out.pop_back();
  }
  return out.empty() ? "node" : out;
}

tl::unexpected<core::Error> Unauthenticated(std::string message) {
  return core::Fail(core::Code::kUnauthenticated, std::move(message), "", "unauthenticated");
}

tl::unexpected<core::Error> NodeGone(const std::string& node_id, const std::string& state) {
  return core::Fail(core::Code::kFailedPrecondition,
                    "node " + node_id + " is " + state + "; stop every attempt and re-register",
                    "", "node_gone");
}

core::Status ValidateGpus(const std::vector<domain::GpuDevice>& gpus) {
  std::set<int> seen;
  for (size_t i = 0; i < gpus.size(); ++i) {
    if (!seen.insert(gpus[i].index).second) {
      return core::Fail(core::Code::kInvalidArgument,
                        "gpus: index " + std::to_string(gpus[i].index) + " appears twice",
                        "gpus[" + std::to_string(i) + "].index", "validation_error");
    }
  }
  return core::Ok();
}

std::vector<domain::GpuDevice> CanonicalGpus(std::vector<domain::GpuDevice> gpus) {
  for (auto& gpu : gpus) {
    std::string canonical = domain::CanonicalGpuType(gpu.type.empty() ? gpu.name : gpu.type);
    if (!canonical.empty()) {
      gpu.type = canonical;
    }
  }
  std::sort(gpus.begin(), gpus.end(),
            [](const auto& a, const auto& b) { return a.index < b.index; });
  return gpus;
}

// Writes all of `data` to `fd`.
bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

struct NodeRegistry::Node {
  store::NodeRecord record;
  std::shared_ptr<internal::RemoteNodeState> state;
  std::shared_ptr<agent::ProcessRunner> runner;
  core::MonotonicTime last_contact{};  // registration, recovery or the latest heartbeat
  std::optional<core::SystemTime> last_heartbeat;
  std::vector<agent::GpuMetric> metrics;
  std::mutex log_mu;  // serializes appends to this node's attempt logs
  // True once a heartbeat proved the agent holds its node token: its instance's join token is
  // then spent for good (until then a lost registration reply may be replayed with it).
  bool join_token_spent = false;
};

NodeRegistry::NodeRegistry(store::Store& store, const core::Clock& clock,
                           NodeRegistryOptions options)
    : store_(store), clock_(clock), options_(std::move(options)) {}

NodeRegistry::~NodeRegistry() = default;

void NodeRegistry::SetListener(NodeListener* listener) { listener_ = listener; }

std::shared_ptr<NodeRegistry::Node> NodeRegistry::MakeNode(store::NodeRecord record) {
  auto node = std::make_shared<Node>();
  node->state = std::make_shared<internal::RemoteNodeState>(record.id, options_.data_dir, clock_);
  node->runner = internal::MakeRemoteNodeRunner(node->state);
  node->record = std::move(record);
  node->last_contact = clock_.MonotonicNow();
  return node;
}

core::Status NodeRegistry::Recover() {
  auto records = store_.ListNodes();
  if (!records) {
    return core::Fail(records.error().WithContext("node registry: recover"));
  }
  std::vector<RemoteNode> ready;
  {
    std::lock_guard lock(mu_);
    for (auto& record : *records) {
      auto node = MakeNode(record);
      if (record.state == "active") {
        node->state->BeginRecovery();
        ready.push_back(RemoteNode{.record = record, .runner = node->runner});
      } else {
        node->state->MarkDown("node is " + record.state);
      }
      if (!record.token_hash.empty()) {
        node_of_token_[record.token_hash] = record.id;
      }
      nodes_[record.id] = std::move(node);
    }
  }
  if (!ready.empty()) {
    spdlog::info("node registry: recovered {} active node(s)", ready.size());
  }
  for (const auto& node : ready) {
    if (listener_ != nullptr) {
      listener_->OnNodeReady(node);
    }
  }
  return core::Ok();
}

std::string NodeRegistry::UniqueNodeId(const std::string& wanted) {
  auto taken = [this](const std::string& id) {
    {
      std::lock_guard lock(mu_);
      if (nodes_.count(id) != 0) {
        return true;
      }
    }
    return store_.GetNode(id).has_value();
  };
  if (!taken(wanted)) {
    return wanted;
  }
  for (int n = 2;; ++n) {
    std::string candidate = wanted + "-" + std::to_string(n);
    if (!taken(candidate)) {
      return candidate;
    }
  }
}

core::Result<std::optional<domain::Instance>> NodeRegistry::InstanceOfJoinToken(
    const std::string& join_token) {
  if (!options_.static_join_token.empty() && SameToken(join_token, options_.static_join_token)) {
    return std::optional<domain::Instance>();
  }
  auto found = store_.FindInstanceByJoinTokenHash(TokenHash(join_token));
  if (!found) {
    if (found.error().code == core::Code::kNotFound) {
      return Unauthenticated("invalid join token");
    }
    return core::Fail(found.error().WithContext("node registry: register"));
  }
  const bool replay = found->state == domain::InstanceState::kReady && !found->node_id.empty();
  if (found->state != domain::InstanceState::kRequested &&
      found->state != domain::InstanceState::kProvisioning && !replay) {
    return Unauthenticated("invalid join token");
  }
  return std::optional<domain::Instance>(std::move(*found));
}

store::NodeRecord NodeRegistry::NewRecord(const agent::RegisterRequest& request,
                                          const std::optional<domain::Instance>& instance) {
  const auto now = clock_.Now();
  store::NodeRecord record{.hostname = request.hostname,
                           .gpus = CanonicalGpus(request.gpus),
                           .container_runtime = request.container_runtime,
                           .registered_at = now,
                           .updated_at = now};
  if (instance) {
    record.id = UniqueNodeId(request.node_name.empty()
                                 ? instance->id
                                 : Sanitize(instance->provider + "-" + request.node_name));
    record.instance_id = instance->id;
    record.provider = instance->provider;
    record.labels["instance_id"] = instance->id;
    if (!instance->offer.region.empty()) {
      record.labels["region"] = instance->offer.region;
    }
    record.labels["spot"] = instance->spot ? "true" : "false";
  } else {
    record.id = UniqueNodeId(
        "node-" + Sanitize(request.node_name.empty() ? request.hostname : request.node_name));
  }
  record.labels["provider"] = record.provider;
  return record;
}

core::Status NodeRegistry::MoveInstance(const domain::Instance& instance,
                                        domain::InstanceState from, domain::InstanceState to,
                                        const std::string& node_id) {
  const auto now = clock_.Now();
  store::InstanceUpdate update{.instance_id = instance.id,
                               .expected_state = from,
                               .new_state = to,
                               .status_message = std::string("agent registering")};
  if (to == domain::InstanceState::kReady) {
    update.status_message = "ready: agent registered as node " + node_id;
    update.node_id = node_id;
    // The join token stays valid for this node until its first heartbeat (Heartbeat spends it),
    // so that an agent whose registration reply was lost can register again.
    update.ready_at = std::optional(now);
  }
  auto moved = store_.UpdateInstance(update, now);
  if (!moved) {
    if (moved.error().code == core::Code::kAborted) {
      // The instance moved on (boot timeout, terminated, another registration) meanwhile.
      return Unauthenticated("invalid join token");
    }
    return core::Fail(moved.error().WithContext("node registry: register"));
  }
  return core::Ok();
}

// An instance's token is spent in three durable steps: requested → provisioning, the node record,
// provisioning → ready (which clears the token's hash). register_mu_ keeps two registrations from
// interleaving; the compare-and-set of each step keeps a concurrent change of the instance (boot
// timeout, termination) from being overwritten. A failure after the node record exists marks that
// record gone, so no half-registered node is ever active.
core::Result<agent::RegisterReply> NodeRegistry::Register(const agent::RegisterRequest& request) {
  if (request.node_name.empty() && request.hostname.empty()) {
    return core::Fail(core::Code::kInvalidArgument, "node_name (or hostname) is required",
                      "node_name", "validation_error");
  }
  GPUORCH_TRY(ValidateGpus(request.gpus));
  if (request.join_token.empty()) {
    return Unauthenticated("a join token is required");
  }
  std::lock_guard register_lock(register_mu_);
  GPUORCH_ASSIGN_OR_RETURN(std::optional<domain::Instance> instance,
                           InstanceOfJoinToken(request.join_token));
  if (instance && instance->state == domain::InstanceState::kReady) {
    return RegisterAgain(*instance);
  }
  store::NodeRecord record = NewRecord(request, instance);
  if (instance && instance->state == domain::InstanceState::kRequested) {
    GPUORCH_TRY(MoveInstance(*instance, domain::InstanceState::kRequested,
                             domain::InstanceState::kProvisioning, record.id));
  }
  const std::string token = core::RandomHexToken(32);
  record.token_hash = TokenHash(token);
  if (auto stored = store_.UpsertNode(record); !stored) {
    return core::Fail(stored.error().WithContext("node registry: register"));
  }
  if (instance) {
    if (auto ready = MoveInstance(*instance, domain::InstanceState::kProvisioning,
                                  domain::InstanceState::kReady, record.id);
        !ready) {
      record.state = "gone";
      (void)store_.UpsertNode(record);
      return core::Fail(ready.error());
    }
  }
  RemoteNode announced;
  {
    std::lock_guard lock(mu_);
    auto node = MakeNode(record);
    announced = RemoteNode{.record = record, .runner = node->runner};
    nodes_[record.id] = std::move(node);
    node_of_token_[record.token_hash] = record.id;
  }
  spdlog::info("node {} registered ({} GPU(s), host {}{})", record.id, record.gpus.size(),
               core::SanitizeForLog(record.hostname),
               instance ? ", instance " + instance->id : std::string());
  if (listener_ != nullptr) {
    listener_->OnNodeReady(announced);
  }
  return agent::RegisterReply{
      .node_id = record.id,
      .node_token = token,
      .heartbeat_interval = options_.heartbeat_interval,
      .lost_after = std::chrono::duration_cast<std::chrono::milliseconds>(options_.lost_after)};
}

core::Result<agent::RegisterReply> NodeRegistry::RegisterAgain(const domain::Instance& instance) {
  store::NodeRecord record;
  std::string old_hash;
  {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(instance.node_id);
    if (it == nodes_.end() || it->second->record.state != "active" ||
        it->second->join_token_spent) {
      return Unauthenticated("invalid join token");
    }
    record = it->second->record;
    old_hash = record.token_hash;
  }
  const std::string token = core::RandomHexToken(32);
  record.token_hash = TokenHash(token);
  record.updated_at = clock_.Now();
  if (auto stored = store_.UpsertNode(record); !stored) {
    return core::Fail(stored.error().WithContext("node registry: register again"));
  }
  {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(record.id);
    if (it != nodes_.end()) {
      it->second->record.token_hash = record.token_hash;
      it->second->last_contact = clock_.MonotonicNow();
    }
    node_of_token_.erase(old_hash);
    node_of_token_[record.token_hash] = record.id;
  }
  spdlog::info("node {} registered again with its join token (the first reply was lost)",
               record.id);
  return agent::RegisterReply{
      .node_id = record.id,
      .node_token = token,
      .heartbeat_interval = options_.heartbeat_interval,
      .lost_after = std::chrono::duration_cast<std::chrono::milliseconds>(options_.lost_after)};
}

core::Result<std::shared_ptr<NodeRegistry::Node>> NodeRegistry::Authenticate(
    const std::string& node_token) const {
  if (node_token.empty()) {
    return Unauthenticated("a node token is required");
  }
  const std::string hash = TokenHash(node_token);
  std::lock_guard lock(mu_);
  auto id = node_of_token_.find(hash);
  if (id == node_of_token_.end()) {
    return Unauthenticated("unknown node token");
  }
  auto node = nodes_.find(id->second);
  if (node == nodes_.end()) {
    return Unauthenticated("unknown node token");
  }
  if (node->second->record.state != "active") {
    return NodeGone(node->second->record.id, node->second->record.state);
  }
  return node->second;
}

core::Result<agent::HeartbeatReply> NodeRegistry::Heartbeat(
    const std::string& node_token, const agent::HeartbeatRequest& request) {
  GPUORCH_ASSIGN_OR_RETURN(std::shared_ptr<Node> node, Authenticate(node_token));
  {
    std::lock_guard lock(mu_);
    if (node->record.state != "active") {
      return NodeGone(node->record.id, node->record.state);
    }
    node->last_contact = clock_.MonotonicNow();
    node->last_heartbeat = clock_.Now();
    node->metrics = request.gpu_metrics;
  }
  SpendJoinToken(*node);
  return node->state->ApplyHeartbeat(request);
}

void NodeRegistry::SpendJoinToken(Node& node) {
  std::string instance_id;
  {
    std::lock_guard lock(mu_);
    if (node.join_token_spent || node.record.instance_id.empty()) {
      node.join_token_spent = true;
      return;
    }
    instance_id = node.record.instance_id;
  }
  auto spent = store_.UpdateInstance(
      store::InstanceUpdate{.instance_id = instance_id,
                            .expected_state = domain::InstanceState::kReady,
                            .join_token_hash = std::string()},
      clock_.Now());
  // kAborted / kNotFound: the instance moved on (terminating, gone), its token no longer works.
  if (spent || spent.error().code == core::Code::kAborted ||
      spent.error().code == core::Code::kNotFound) {
    std::lock_guard lock(mu_);
    node.join_token_spent = true;
  }
}

core::Result<agent::LogAppendReply> NodeRegistry::AppendLog(const std::string& node_token,
                                                            const agent::LogAppend& append) {
  if (!agent::IsValidJobId(append.job_id)) {
    return core::Fail(core::Code::kInvalidArgument, "job_id is not a valid job id", "job_id",
                      "validation_error");
  }
  if (append.attempt < 1 || append.offset < 0) {
    return core::Fail(core::Code::kInvalidArgument,
                      append.attempt < 1 ? "attempt must be >= 1" : "offset must be >= 0",
                      append.attempt < 1 ? "attempt" : "offset", "validation_error");
  }
  if (append.data.size() > agent::kMaxLogChunkBytes) {
    return core::Fail(core::Code::kInvalidArgument,
                      "a log chunk holds at most " + std::to_string(agent::kMaxLogChunkBytes) +
                          " bytes",
                      "body", "validation_error");
  }
  GPUORCH_ASSIGN_OR_RETURN(std::shared_ptr<Node> node, Authenticate(node_token));
  auto path = node->state->LogPathOf(append.job_id, append.attempt);
  if (!path) {
    return core::Fail(core::Code::kNotFound,
                      "attempt " + std::to_string(append.attempt) + " of job " + append.job_id +
                          " is not assigned to node " + node->record.id,
                      "", "not_found");
  }
  std::lock_guard log_lock(node->log_mu);
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(*path).parent_path(), ec);
  int fd = ::open(path->c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    return core::Fail(core::Code::kUnavailable,
                      "node registry: open log: " + std::string(std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return core::Fail(core::Code::kUnavailable,
                      "node registry: stat log: " + std::string(std::strerror(err)));
  }
  const int64_t size = st.st_size;
  if (append.offset > size) {
    ::close(fd);
    return agent::LogAppendReply{.size = size, .gap = true};
  }
  const int64_t overlap = size - append.offset;
  if (overlap >= static_cast<int64_t>(append.data.size())) {
    ::close(fd);
    return agent::LogAppendReply{.size = size};
  }
  std::string_view fresh = std::string_view(append.data).substr(static_cast<size_t>(overlap));
  const bool written = WriteAll(fd, fresh);
  const int err = errno;
  ::close(fd);
  if (!written) {
    return core::Fail(core::Code::kUnavailable,
                      "node registry: write log: " + std::string(std::strerror(err)));
  }
  return agent::LogAppendReply{.size = size + static_cast<int64_t>(fresh.size())};
}

void NodeRegistry::Tick() {
  const auto mono = clock_.MonotonicNow();
  const auto now = clock_.Now();
  struct Loss {
    store::NodeRecord record;
    std::shared_ptr<internal::RemoteNodeState> state;
    std::string reason;
  };
  std::vector<Loss> lost;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, node] : nodes_) {
      node->state->Prune(mono - options_.ended_retention);
      if (node->record.state != "active" || mono - node->last_contact <= options_.lost_after) {
        continue;
      }
      const auto silent = std::chrono::duration_cast<std::chrono::seconds>(mono - node->last_contact);
      node->record.state = "lost";
      node->record.updated_at = now;
      lost.push_back(Loss{.record = node->record,
                          .state = node->state,
                          .reason = "no heartbeat for " + std::to_string(silent.count()) + " s"});
    }
  }
  for (const auto& loss : lost) {
    spdlog::warn("node {} lost: {}", loss.record.id, loss.reason);
    if (auto stored = store_.UpsertNode(loss.record); !stored) {
      spdlog::error("node {}: cannot store its loss: {}", loss.record.id, stored.error().message);
    }
    // The listener hears of the loss before the runner answers kLost, so that the controller
    // reads those answers as the node's loss rather than the attempts' failures.
    if (listener_ != nullptr) {
      listener_->OnNodeLost(loss.record.id, loss.reason);
    }
    loss.state->MarkDown(loss.reason);
  }
}

void NodeRegistry::MarkLost(const std::string& node_id, const std::string& reason) {
  SetDown(node_id, "lost", reason);
}

void NodeRegistry::Deregister(const std::string& node_id, const std::string& reason) {
  SetDown(node_id, "gone", reason);
}

void NodeRegistry::SetDown(const std::string& node_id, const std::string& state,
                           const std::string& reason) {
  std::optional<store::NodeRecord> changed;
  std::shared_ptr<internal::RemoteNodeState> runner_state;
  bool was_active = false;
  {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(node_id);
    if (it != nodes_.end()) {
      store::NodeRecord& record = it->second->record;
      const bool applies = state == "lost" ? record.state == "active" : record.state != "gone";
      if (!applies) {
        return;
      }
      was_active = record.state == "active";
      record.state = state;
      record.updated_at = clock_.Now();
      runner_state = it->second->state;
      changed = record;
    }
  }
  if (!changed) {
    // Not known in memory (the service restarted since): settle the stored record alone.
    auto stored = store_.GetNode(node_id);
    if (!stored || stored->state == state || stored->state == "gone" ||
        (state == "lost" && stored->state != "active")) {
      return;
    }
    changed = *stored;
    changed->state = state;
    changed->updated_at = clock_.Now();
  }
  spdlog::warn("node {} is {}: {}", node_id, state, core::SanitizeForLog(reason));
  if (auto stored = store_.UpsertNode(*changed); !stored) {
    spdlog::error("node {}: cannot store state {}: {}", node_id, state, stored.error().message);
  }
  if (was_active && listener_ != nullptr) {
    listener_->OnNodeLost(node_id, reason);  // before the runner answers kLost (see Tick)
  }
  if (runner_state) {
    runner_state->MarkDown(reason);
  }
}

std::vector<NodeView> NodeRegistry::Nodes() const {
  std::vector<NodeView> out;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, node] : nodes_) {
      out.push_back(NodeView{.record = node->record,
                             .last_heartbeat = node->last_heartbeat,
                             .gpu_metrics = node->metrics,
                             .attempts = node->state->LiveAttempts()});
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const NodeView& a, const NodeView& b) {
    return a.record.registered_at < b.record.registered_at;
  });
  return out;
}

}  // namespace gpuorch::lifecycle
