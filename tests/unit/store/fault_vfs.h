// A SQLite VFS that wraps the default one, counts fsyncs and can make them fail, for testing what
// the store does when the disk refuses a commit. Install() makes it the process's default VFS, so
// every connection opened afterwards goes through it; the destructor restores the previous default.
// Thread-safe (the switches are atomics). One instance at a time.
#pragma once

#include <atomic>
#include <cstdint>

struct sqlite3_vfs;

namespace gpuorch::store::testing {

class FaultVfs {
 public:
  FaultVfs();
  FaultVfs(const FaultVfs&) = delete;
  FaultVfs& operator=(const FaultVfs&) = delete;
  ~FaultVfs();

  // Number of xSync calls that reached this VFS (failed ones included).
  uint64_t syncs() const { return syncs_.load(); }
  // While true, every xSync fails with SQLITE_IOERR_FSYNC.
  void set_fail_syncs(bool fail) { fail_syncs_.store(fail); }

  // For the C callbacks.
  static FaultVfs* Instance() { return instance_; }
  sqlite3_vfs* real() const { return real_; }
  bool OnSync() {
    syncs_.fetch_add(1);
    return !fail_syncs_.load();
  }

 private:
  static FaultVfs* instance_;
  sqlite3_vfs* real_;
  sqlite3_vfs* vfs_;
  std::atomic<uint64_t> syncs_{0};
  std::atomic<bool> fail_syncs_{false};
};

}  // namespace gpuorch::store::testing
