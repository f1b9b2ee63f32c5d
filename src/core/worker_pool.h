// A fixed pool of threads running posted closures in FIFO order: where blocking work (store reads,
// file I/O) runs so that I/O threads never block. Thread-safe.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace gpuorch::core {

class WorkerPool {
 public:
  WorkerPool(std::string name, int threads);
  ~WorkerPool();  // runs what is queued, then joins
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task`. Exceptions it throws are logged, never propagated.
  void Post(std::function<void()> task);

 private:
  void Run();

  const std::string name_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // GUARDED_BY(mu_)
  bool stop_ = false;                        // GUARDED_BY(mu_)
  std::vector<std::thread> threads_;
};

}  // namespace gpuorch::core
