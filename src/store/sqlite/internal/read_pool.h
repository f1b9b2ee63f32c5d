// A pool of read connections to one SQLite file. In WAL mode a reader sees the last committed
// snapshot and never waits for the writer, so reads do not queue behind a write batch.
// Internal to store/sqlite. Thread-safe: each lease hands one connection to one thread.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "core/error.h"
#include "store/sqlite/internal/connection.h"

namespace gpuorch::store::sqlite_internal {

class ReadPool {
 public:
  // Connections open `options.path` (never creating it) with query_only on. At most `max_idle`
  // connections are kept open between leases; more are opened under load and closed after.
  ReadPool(Connection::Options options, size_t max_idle);
  ReadPool(const ReadPool&) = delete;
  ReadPool& operator=(const ReadPool&) = delete;

  // A connection for the holder's exclusive use, returned to the pool when the lease goes away.
  // The lease must not outlive the pool.
  class Lease {
   public:
    Lease(ReadPool& pool, std::unique_ptr<Connection> db) : pool_(&pool), db_(std::move(db)) {}
    Lease(Lease&&) = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    Connection& operator*() const { return *db_; }

   private:
    ReadPool* pool_;
    std::unique_ptr<Connection> db_;
  };

  // kUnavailable when no connection could be opened.
  [[nodiscard]] core::Result<Lease> Acquire();

 private:
  void Release(std::unique_ptr<Connection> db);

  const Connection::Options options_;
  const size_t max_idle_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_;  // GPUORCH_GUARDED_BY(mu_)
};

}  // namespace gpuorch::store::sqlite_internal
