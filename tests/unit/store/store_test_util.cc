#include "unit/store/store_test_util.h"

#include "store/sqlite/sqlite_store.h"

namespace gpuorch::store::testing {
namespace {

class SqliteHarness final : public StoreHarness {
 public:
  core::Result<std::unique_ptr<Store>> Open() override {
    return OpenSqliteStore(SqliteStoreOptions{.path = dir_.File("gpuorch.db")});
  }

 private:
  TempDir dir_;
};

}  // namespace

std::unique_ptr<StoreHarness> MakeSqliteHarness() { return std::make_unique<SqliteHarness>(); }

std::vector<BackendFactory> AllBackends() {
  return {BackendFactory{"Sqlite", &MakeSqliteHarness}};
}

}  // namespace gpuorch::store::testing
