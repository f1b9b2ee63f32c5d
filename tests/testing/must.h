// Must(result): the value of a core::Result in a test, or a thrown std::runtime_error carrying its
// message, which gtest reports as a failure of the test. Shared by the unit tests of every module.
#pragma once

#include <stdexcept>
#include <utility>

#include "core/error.h"

namespace gpuorch::testing {

template <typename T>
T Must(core::Result<T> result) {
  if (!result) {
    throw std::runtime_error(result.error().message);
  }
  return std::move(*result);
}

}  // namespace gpuorch::testing
