// Helpers shared by the store tests: a temporary directory, result printing, and the harness
// through which the contract suite opens a backend without knowing which one it is.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <system_error>
#include <vector>

#include <gtest/gtest.h>

#include "testing/temp_dir.h"
#include "core/error.h"
#include "store/store.h"

namespace gpuorch::store::testing {

using ::gpuorch::testing::TempDir;

// "ok", or the error's code and message, for assertion messages.
template <typename T>
std::string Describe(const core::Result<T>& result) {
  if (result) {
    return "ok";
  }
  return std::string(core::CodeName(result.error().code)) + ": " + result.error().message;
}

// One backend's database for one test. Open() may be called again after the previous store was
// destroyed and must then see the same data.
class StoreHarness {
 public:
  virtual ~StoreHarness() = default;
  [[nodiscard]] virtual core::Result<std::unique_ptr<Store>> Open() = 0;
};

// The parameter of the contract suite: a name for test names and a way to make a fresh harness.
struct BackendFactory {
  std::string name;
  std::function<std::unique_ptr<StoreHarness>()> make;
};

inline void PrintTo(const BackendFactory& factory, std::ostream* os) { *os << factory.name; }

// The SQLite backend in a temp dir of its own.
std::unique_ptr<StoreHarness> MakeSqliteHarness();

// Every backend the contract suites run against.
std::vector<BackendFactory> AllBackends();

// The fixture of the contract suites: a fresh store of the parameter's backend per test.
class StoreContractFixture : public ::testing::TestWithParam<BackendFactory> {
 protected:
  void SetUp() override {
    harness_ = GetParam().make();
    auto store = harness_->Open();
    ASSERT_TRUE(store.has_value()) << Describe(store);
    store_ = std::move(*store);
  }

  Store& store() { return *store_; }

  // Destroys the store and opens the same database again.
  void Reopen() {
    store_.reset();
    auto store = harness_->Open();
    ASSERT_TRUE(store.has_value()) << Describe(store);
    store_ = std::move(*store);
  }

  std::unique_ptr<StoreHarness> harness_;
  std::unique_ptr<Store> store_;
};

}  // namespace gpuorch::store::testing
