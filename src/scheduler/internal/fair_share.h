// Fair-share arithmetic: a user's GPU-seconds decay exponentially with a half-life, computed lazily
// from the time of the last charge, so nothing loops over users as time passes. Pure functions.
//
// Queue order compares usage/weight between users at the same instant. As every user's usage decays
// by the same factor over the same interval, that comparison never changes while no one is charged:
// ShareKey() is a time-invariant key for it (log2 of the usage brought back to the epoch), so a
// user's place in the order moves only when that user is charged.
#pragma once

#include <chrono>

#include "core/clock.h"

namespace gpuorch::scheduler::internal {

// `usage` GPU-seconds as of `at`, decayed to `now` (no decay for a half-life <= 0, or now <= at).
double DecayedUsage(double usage, core::SystemTime at, core::SystemTime now,
                    std::chrono::seconds half_life);

// Orders users like usage/weight at any common instant: lower key, lighter user. -infinity for no
// usage. REQUIRES: weight > 0.
double ShareKey(double usage, core::SystemTime at, double weight, std::chrono::seconds half_life);

}  // namespace gpuorch::scheduler::internal
