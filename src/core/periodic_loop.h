// A background thread that runs one function every `interval`, or sooner when woken by Notify().
// The function runs on the loop's own thread only, never twice at once; an exception it throws is
// logged and the loop goes on. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace gpuorch::core {

class PeriodicLoop {
 public:
  PeriodicLoop(std::string name, std::chrono::milliseconds interval, std::function<void()> fn);
  ~PeriodicLoop();  // Stop()s
  PeriodicLoop(const PeriodicLoop&) = delete;
  PeriodicLoop& operator=(const PeriodicLoop&) = delete;

  void Start();
  // Runs the function again as soon as the current run (if any) ends.
  void Notify();
  // Waits for the current run to end and joins the thread. Idempotent.
  void Stop();

 private:
  void Run();

  const std::string name_;
  const std::chrono::milliseconds interval_;
  const std::function<void()> fn_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;      // GUARDED_BY(mu_)
  bool notified_ = false;  // GUARDED_BY(mu_)
  std::atomic<bool> pending_{false};  // a Notify() not yet followed by a run
  std::thread thread_;
};

}  // namespace gpuorch::core
