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

}  // namespace gpuorch::store
