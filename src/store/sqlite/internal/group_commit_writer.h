// The group-commit writer of the SQLite store: one thread owns the write connection and commits
// whatever writes are waiting as one transaction, so concurrent writers share one fsync.
// Internal to store/sqlite. Thread-safe: Submit() may be called from any thread, including from an
// op's Finish() on the writer thread itself.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/error.h"
#include "store/sqlite/internal/connection.h"
#include "store/sqlite/sqlite_store.h"

namespace gpuorch::store::sqlite_internal {

// One write of a batch.
class WriteOp {
 public:
  virtual ~WriteOp() = default;
  // Runs on the writer thread inside the batch's transaction, in a savepoint of its own: an error
  // rolls back this op's changes only. The op keeps whatever result it wants to report.
  virtual core::Status Apply(Connection& db) = 0;
  // Runs on the writer thread once the batch is over, never before its COMMIT returned. `outcome`
  // is Apply's status when the batch committed, kUnavailable when it did not (nothing of it is
  // stored). Called exactly once per submitted op.
  virtual void Finish(core::Status outcome) = 0;
  // How many writes the op makes (stored rows it updates or inserts, at most): what the writer's
  // `max_batch` and its Stats() count. An op larger than max_batch commits in a batch of its own.
  virtual size_t Writes() const { return 1; }
};

// A write whose caller waits for its result: Apply runs `fn`, and the future returned by Done()
// gets its result once the batch committed, or the batch's failure; an error carries `context`.
template <typename T>
class FunctionOp final : public WriteOp {
 public:
  FunctionOp(std::string context, std::function<core::Result<T>(Connection&)> fn)
      : context_(std::move(context)), fn_(std::move(fn)) {}

  core::Status Apply(Connection& db) override {
    result_ = fn_(db);
    return result_ ? core::Ok() : core::Fail(result_.error());
  }

  void Finish(core::Status outcome) override {
    if (!outcome) {
      done_.set_value(core::Fail(outcome.error().WithContext(context_)));
      return;
    }
    done_.set_value(std::move(result_));
  }

  std::future<core::Result<T>> Done() { return done_.get_future(); }

 private:
  const std::string context_;
  const std::function<core::Result<T>(Connection&)> fn_;
  core::Result<T> result_ = core::Fail(core::Code::kInternal, "write not applied");
  std::promise<core::Result<T>> done_;
};

class GroupCommitWriter {
 public:
  // Takes the connection (already configured: WAL, synchronous=FULL) and starts the thread. A batch
  // holds ops worth at most `max_batch` writes (WriteOp::Writes()), or one op when it is larger.
  GroupCommitWriter(std::unique_ptr<Connection> db, size_t max_batch);
  GroupCommitWriter(const GroupCommitWriter&) = delete;
  GroupCommitWriter& operator=(const GroupCommitWriter&) = delete;
  // Commits every op submitted before, runs their Finish(), stops the thread, closes the
  // connection.
  ~GroupCommitWriter();

  // Queues `op` for the next batch. Does not block, except when called on the writer thread (from a
  // Finish()), where the op runs and commits at once as a batch of its own.
  void Submit(std::unique_ptr<WriteOp> op);

  GroupCommitStats Stats() const;

 private:
  void Run();
  void CommitBatch(std::vector<std::unique_ptr<WriteOp>>& batch);
  core::Status ApplyInSavepoint(WriteOp& op, core::Status& transaction);
  core::Status RunSql(const char* sql);

  std::unique_ptr<Connection> db_;  // used by the writer thread only
  const size_t max_batch_;

  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<WriteOp>> queue_;  // GPUORCH_GUARDED_BY(mu_)
  bool stopping_ = false;                       // GPUORCH_GUARDED_BY(mu_)

  std::atomic<uint64_t> transactions_{0};
  std::atomic<uint64_t> writes_{0};
  std::thread thread_;  // last: starts once everything above is initialised
};

}  // namespace gpuorch::store::sqlite_internal
