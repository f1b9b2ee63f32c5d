// Detecting a working container runtime on this node. Thread-safe.
#pragma once

#include <chrono>
#include <string>

namespace gpuorch::agent {

// True when `<runtime> info` exits 0 within `timeout` (a CLI alone, without a reachable engine,
// does not count). Blocks up to `timeout`.
bool ContainerRuntimeWorks(const std::string& runtime, std::chrono::milliseconds timeout);

}  // namespace gpuorch::agent
