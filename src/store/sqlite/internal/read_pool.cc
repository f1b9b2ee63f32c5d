#include "store/sqlite/internal/read_pool.h"

#include <utility>

namespace gpuorch::store::sqlite_internal {

namespace {

Connection::Options ForReading(Connection::Options options) {
  options.create = false;  // only the writer's open creates the file
  return options;
}

}  // namespace

ReadPool::ReadPool(Connection::Options options, size_t max_idle)
    : options_(ForReading(std::move(options))), max_idle_(max_idle) {}

ReadPool::Lease::~Lease() {
  if (db_ != nullptr) {
    pool_->Release(std::move(db_));
  }
}

core::Result<ReadPool::Lease> ReadPool::Acquire() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      std::unique_ptr<Connection> db = std::move(idle_.back());
      idle_.pop_back();
      return Lease(*this, std::move(db));
    }
  }
  // Opened outside the lock: opening touches the file and must not serialise other readers.
  GPUORCH_ASSIGN_OR_RETURN(std::unique_ptr<Connection> db, Connection::Open(options_));
  GPUORCH_TRY(db->Exec("PRAGMA query_only = 1"));
  return Lease(*this, std::move(db));
}

void ReadPool::Release(std::unique_ptr<Connection> db) {
  std::lock_guard lock(mu_);
  if (idle_.size() < max_idle_) {
    idle_.push_back(std::move(db));
  }
  // Otherwise `db` closes here; closing is cheap for a reader with no open statement.
}

}  // namespace gpuorch::store::sqlite_internal
