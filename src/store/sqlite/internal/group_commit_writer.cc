#include "store/sqlite/internal/group_commit_writer.h"

#include <spdlog/spdlog.h>

#include <exception>
#include <string>
#include <utility>

namespace gpuorch::store::sqlite_internal {

// DESIGN. Callers append ops to `queue_`; the writer thread sleeps until the queue is non-empty,
// then takes everything waiting (up to max_batch writes) and runs
//
//   BEGIN IMMEDIATE; { SAVEPOINT op; <op>; RELEASE op | ROLLBACK TO op } x n; COMMIT
//
// COMMIT is the batch's single fsync (WAL, synchronous=FULL). While it runs, new ops pile up in the
// queue and form the next batch, so the batch size adapts to the load without any timer: one writer
// alone gets a transaction to itself, sixty-four share one. Each op's result is held back until
// COMMIT returned; if COMMIT (or BEGIN) fails, every op of the batch reports kUnavailable, because
// none of it is on disk. SQLite may roll a transaction back by itself after some errors (disk full,
// I/O error); the writer notices (autocommit is back on) and fails the batch rather than let later
// ops run, and commit, one by one outside the transaction.

GroupCommitWriter::GroupCommitWriter(std::unique_ptr<Connection> db, size_t max_batch)
    : db_(std::move(db)), max_batch_(max_batch < 1 ? 1 : max_batch), thread_([this] { Run(); }) {}

GroupCommitWriter::~GroupCommitWriter() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void GroupCommitWriter::Submit(std::unique_ptr<WriteOp> op) {
  if (std::this_thread::get_id() == thread_.get_id()) {
    // A Finish() submitting more work: queueing it and waiting would wait for ourselves.
    std::vector<std::unique_ptr<WriteOp>> batch;
    batch.push_back(std::move(op));
    CommitBatch(batch);
    return;
  }
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      queue_.push_back(std::move(op));
      wake_.notify_one();
      return;
    }
  }
  op->Finish(core::Fail(core::Code::kUnavailable, "the store is closing"));
}

GroupCommitStats GroupCommitWriter::Stats() const {
  return GroupCommitStats{.transactions = transactions_.load(std::memory_order_relaxed),
                          .writes = writes_.load(std::memory_order_relaxed)};
}

void GroupCommitWriter::Run() {
  std::vector<std::unique_ptr<WriteOp>> batch;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) {
        return;  // stopping, and everything submitted before has been committed
      }
      size_t writes = 0;
      while (!queue_.empty() &&
             (batch.empty() || writes + queue_.front()->Writes() <= max_batch_)) {
        writes += queue_.front()->Writes();
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    CommitBatch(batch);
    batch.clear();
  }
}

core::Status GroupCommitWriter::RunSql(const char* sql) {
  GPUORCH_ASSIGN_OR_RETURN(Statement stmt, db_->Prepare(sql));
  return stmt.Run();
}

core::Status GroupCommitWriter::ApplyInSavepoint(WriteOp& op, core::Status& transaction) {
  if (core::Status begin = RunSql("SAVEPOINT op"); !begin) {
    transaction = begin;
    return begin;
  }
  core::Status status;
  try {
    status = op.Apply(*db_);
  } catch (const std::exception& e) {
    status = core::Fail(core::Code::kInternal, std::string("write failed: ") + e.what());
  }
  core::Status end = status ? RunSql("RELEASE op") : RunSql("ROLLBACK TO op");
  if (end && !status) {
    end = RunSql("RELEASE op");
  }
  if (!end) {
    transaction = end;
  } else if (!db_->InTransaction()) {
    transaction = core::Fail(core::Code::kUnavailable, "the transaction was rolled back");
  }
  return status;
}

void GroupCommitWriter::CommitBatch(std::vector<std::unique_ptr<WriteOp>>& batch) {
  std::vector<core::Status> results(batch.size());
  core::Status transaction = RunSql("BEGIN IMMEDIATE");
  for (size_t i = 0; i < batch.size() && transaction; ++i) {
    results[i] = ApplyInSavepoint(*batch[i], transaction);
  }
  if (transaction) {
    transaction = RunSql("COMMIT");
  }
  if (transaction) {
    transactions_.fetch_add(1, std::memory_order_relaxed);
    size_t writes = 0;
    for (const auto& op : batch) {
      writes += op->Writes();
    }
    writes_.fetch_add(writes, std::memory_order_relaxed);
  } else {
    spdlog::error("store: write batch of {} failed: {}", batch.size(), transaction.error().message);
    if (db_->InTransaction() && !RunSql("ROLLBACK")) {
      spdlog::error("store: rollback after a failed batch failed");
    }
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    core::Status outcome = transaction
                               ? std::move(results[i])
                               : core::Fail(core::Code::kUnavailable,
                                            "write not committed: " + transaction.error().message);
    try {
      batch[i]->Finish(std::move(outcome));
    } catch (const std::exception& e) {
      spdlog::error("store: a write callback threw: {}", e.what());
    } catch (...) {
      spdlog::error("store: a write callback threw a non-standard exception");
    }
  }
}

}  // namespace gpuorch::store::sqlite_internal
