#include "core/periodic_loop.h"

#include <exception>

#include <spdlog/spdlog.h>

namespace gpuorch::core {

PeriodicLoop::PeriodicLoop(std::string name, std::chrono::milliseconds interval,
                           std::function<void()> fn)
    : name_(std::move(name)), interval_(interval), fn_(std::move(fn)) {}

PeriodicLoop::~PeriodicLoop() { Stop(); }

void PeriodicLoop::Start() {
  std::lock_guard lock(mu_);
  if (!thread_.joinable() && !stop_) {
    thread_ = std::thread([this] { Run(); });
  }
}

void PeriodicLoop::Notify() {
  // Many notifications before the next run collapse into one wake-up.
  if (pending_.exchange(true)) {
    return;
  }
  {
    std::lock_guard lock(mu_);
    notified_ = true;
  }
  cv_.notify_one();
}

void PeriodicLoop::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) {
    thread_.join();
  }
}

void PeriodicLoop::Run() {
  while (true) {
    {
      std::unique_lock lock(mu_);
      if (stop_) {
        return;
      }
      notified_ = false;
    }
    pending_ = false;
    try {
      fn_();
    } catch (const std::exception& e) {
      spdlog::error("{}: iteration failed: {}", name_, e.what());
    } catch (...) {
      spdlog::error("{}: iteration failed with a non-standard exception", name_);
    }
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, interval_, [this] { return stop_ || notified_; });
  }
}

}  // namespace gpuorch::core
