#include "core/clock.h"

#include <gtest/gtest.h>

namespace gpuorch::core {
namespace {

TEST(FakeClockTest, AdvanceMovesBothClocks) {
  FakeClock clock;
  SystemTime wall = clock.Now();
  MonotonicTime mono = clock.MonotonicNow();
  clock.Advance(std::chrono::seconds(5));
  EXPECT_EQ(clock.Now() - wall, std::chrono::seconds(5));
  EXPECT_EQ(clock.MonotonicNow() - mono, std::chrono::seconds(5));
}

TEST(ClockFormatTest, Rfc3339WithMillis) {
  EXPECT_EQ(FormatRfc3339(FromUnixMillis(1'800'000'000'123)), "2027-01-15T08:00:00.123Z");
  EXPECT_EQ(ToUnixMillis(FromUnixMillis(-1)), -1);
}

}  // namespace
}  // namespace gpuorch::core
