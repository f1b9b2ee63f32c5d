#include "core/env.h"

#include <cstdlib>

namespace gpuorch::core {

std::optional<std::string> GetEnv(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) {
    return std::nullopt;
  }
  return std::string(value);
}

}  // namespace gpuorch::core
