#include "core/clock.h"

#include <ctime>
#include <string>
#include <thread>

namespace gpuorch::core {

SystemTime RealClock::Now() const { return std::chrono::system_clock::now(); }
MonotonicTime RealClock::MonotonicNow() const { return std::chrono::steady_clock::now(); }
void RealClock::SleepFor(std::chrono::nanoseconds d) const {
  if (d.count() > 0) {
    std::this_thread::sleep_for(d);
  }
}
RealClock& RealClock::Instance() {
  static RealClock clock;
  return clock;
}

FakeClock::FakeClock(SystemTime start) : now_(start), mono_(std::chrono::hours(1)) {}
SystemTime FakeClock::Now() const {
  std::lock_guard lock(mu_);
  return now_;
}
MonotonicTime FakeClock::MonotonicNow() const {
  std::lock_guard lock(mu_);
  return mono_;
}
void FakeClock::SleepFor(std::chrono::nanoseconds d) const {
  if (d.count() > 0) {
    const_cast<FakeClock*>(this)->Advance(d);
  }
}
void FakeClock::Advance(std::chrono::nanoseconds by) {
  std::lock_guard lock(mu_);
  now_ += std::chrono::duration_cast<SystemTime::duration>(by);
  mono_ += by;
}

int64_t ToUnixMillis(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
SystemTime FromUnixMillis(int64_t ms) { return SystemTime(std::chrono::milliseconds(ms)); }

std::string FormatRfc3339(SystemTime t) {
  const int64_t ms = ToUnixMillis(t);
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  int millis = static_cast<int>(ms % 1000);
  if (millis < 0) {
    millis += 1000;
    secs -= 1;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buf;
}

}  // namespace gpuorch::core
