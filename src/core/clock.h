// Time for the whole service. Nothing outside core/ reads a std::chrono clock directly: code takes a
// `Clock&` so that tests can drive time with `FakeClock` and replay hours in milliseconds.
//
// `Now()` is wall time, for timestamps users see and deadlines that must survive a restart.
// `MonotonicNow()` is for measuring intervals within one process (backoff, grace periods).
// Both are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace gpuorch::core {

using SystemTime = std::chrono::system_clock::time_point;
using MonotonicTime = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual SystemTime Now() const = 0;
  virtual MonotonicTime MonotonicNow() const = 0;
  // Blocks the calling thread for `d` (a FakeClock advances itself instead, so retry loops with
  // backoff run instantly and deterministically in tests).
  virtual void SleepFor(std::chrono::nanoseconds d) const = 0;
};

// The process's real clocks.
class RealClock final : public Clock {
 public:
  SystemTime Now() const override;
  MonotonicTime MonotonicNow() const override;
  void SleepFor(std::chrono::nanoseconds d) const override;
  // A process-wide instance for main(); libraries take a Clock& instead of calling this.
  static RealClock& Instance();
};

// A clock that moves only when told. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(SystemTime start = SystemTime(std::chrono::seconds(1'800'000'000)));
  SystemTime Now() const override;
  MonotonicTime MonotonicNow() const override;
  void SleepFor(std::chrono::nanoseconds d) const override;  // advances this clock by d
  void Advance(std::chrono::nanoseconds by);

 private:
  mutable std::mutex mu_;
  SystemTime now_;
  MonotonicTime mono_;
};

// Milliseconds since the Unix epoch, the store's and the wire's representation of wall time.
int64_t ToUnixMillis(SystemTime t);
SystemTime FromUnixMillis(int64_t ms);
// RFC 3339 in UTC with milliseconds, e.g. "2026-11-28T19:43:01.123Z".
std::string FormatRfc3339(SystemTime t);

}  // namespace gpuorch::core
