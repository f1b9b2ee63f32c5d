#include "store/store.h"

#include <future>

namespace gpuorch::store {

core::Result<InsertOutcome> Store::InsertJob(domain::Job job, const InsertOptions& options) {
  std::promise<core::Result<InsertOutcome>> promise;
  auto future = promise.get_future();
  InsertJobAsync(
      std::move(job),
      [&promise](core::Result<InsertOutcome> result) { promise.set_value(std::move(result)); },
      options);
  return future.get();
}


// Defaults until every backend implements cloud capacity records (kUnimplemented).
namespace {
core::Error NotYet() { return core::Error{core::Code::kUnimplemented, "not implemented by this store"}; }
}  // namespace
core::Status Store::InsertInstance(const domain::Instance&) { return core::Fail(NotYet()); }
core::Result<domain::Instance> Store::GetInstance(const std::string&) { return core::Fail(NotYet()); }
core::Result<std::vector<domain::Instance>> Store::ListInstances(const InstanceQuery&) { return core::Fail(NotYet()); }
core::Result<domain::Instance> Store::UpdateInstance(const InstanceUpdate&, core::SystemTime) { return core::Fail(NotYet()); }
core::Result<domain::Instance> Store::FindInstanceByJoinTokenHash(const std::string&) { return core::Fail(NotYet()); }
core::Status Store::UpsertNode(const NodeRecord&) { return core::Fail(NotYet()); }
core::Result<NodeRecord> Store::GetNode(const std::string&) { return core::Fail(NotYet()); }
core::Result<std::vector<NodeRecord>> Store::ListNodes() { return core::Fail(NotYet()); }
core::Status Store::OpenUsage(const UsageRecord&) { return core::Fail(NotYet()); }
core::Status Store::CloseUsage(const std::string&, int, core::SystemTime) { return core::Fail(NotYet()); }
core::Result<std::vector<UsageRecord>> Store::ListUsage(const UsageQuery&) { return core::Fail(NotYet()); }
core::Result<std::string> Store::GetOrInitSetting(const std::string&, const std::string&) { return core::Fail(NotYet()); }

}  // namespace gpuorch::store
