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

double UsageCostUsd(const UsageRecord& usage, core::SystemTime now) {
  const core::SystemTime end = usage.ended_at.value_or(now);
  if (end <= usage.started_at) {
    return 0;
  }
  return usage.usd_per_hour * std::chrono::duration<double>(end - usage.started_at).count() /
         3600.0;
}

}  // namespace gpuorch::store
