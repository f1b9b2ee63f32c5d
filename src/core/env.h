// Process environment access. The only place outside main() that reads environment variables, so that
// configuration stays explicit and testable. Thread-safe for reads.
#pragma once

#include <optional>
#include <string>

namespace gpuorch::core {

// The value of environment variable `name`, or nullopt when unset. An empty value counts as set.
std::optional<std::string> GetEnv(const std::string& name);

}  // namespace gpuorch::core
