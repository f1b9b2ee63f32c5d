// Password hashing with Argon2id (libsodium crypto_pwhash), and a verifier that bounds how many of
// these memory-hard computations run at once.
//
// Hashes are libsodium's self-describing strings ("$argon2id$v=19$m=...,t=...,p=1$salt$hash"), so a
// stored hash keeps verifying after the cost is raised; PasswordNeedsRehash tells when to re-hash
// on the next successful login. Thread-safe: the free functions are pure (apart from drawing salt),
// and PasswordVerifier may be shared by any number of threads.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"

namespace gpuorch::security {

// The longest password accepted, in bytes. Longer input is refused rather than hashed, so that a
// request body cannot make one hash arbitrarily expensive.
inline constexpr size_t kMaxPasswordBytes = 1024;

// Argon2id work factors: passes over memory, and memory per hash in bytes.
struct PasswordCost {
  uint64_t ops_limit = 0;
  size_t mem_limit_bytes = 0;
};

// crypto_pwhash_OPSLIMIT_INTERACTIVE / MEMLIMIT_INTERACTIVE (2 passes, 64 MiB): the production
// cost.
PasswordCost InteractiveCost();
// crypto_pwhash_OPSLIMIT_MIN / MEMLIMIT_MIN (1 pass, 8 KiB). For tests only: it offers no real
// protection against offline guessing.
PasswordCost MinimalCost();

// An Argon2id hash of `password` with a fresh random salt, as libsodium's encoded string.
// kInvalidArgument: `password` is empty or longer than kMaxPasswordBytes, or `cost` is outside
// libsodium's limits. kResourceExhausted: libsodium failed (it could not allocate the memory).
[[nodiscard]] core::Result<std::string> HashPassword(std::string_view password,
                                                     const PasswordCost& cost);

// True when `password` matches `encoded_hash`. False for a wrong password and for any malformed,
// empty or over-long hash, and for a password HashPassword would refuse. Takes as long as one
// Argon2 computation at the hash's own cost (when the hash is well formed).
bool VerifyPassword(std::string_view password, const std::string& encoded_hash);

// True when `encoded_hash` was not made by Argon2id at exactly `cost` (or is malformed), so the
// caller should store a fresh HashPassword once the user has proved the password.
bool PasswordNeedsRehash(const std::string& encoded_hash, const PasswordCost& cost);

// Verifies passwords with at most `max_concurrent` Argon2 computations in flight. A caller that
// finds them all busy waits if fewer than `max_waiting` callers already wait, and is refused at
// once otherwise, so that a login flood costs bounded memory and queueing rather than taking the
// service down (Argon2 memory makes unbounded concurrency a denial of service).
//
// Thread-safe. Verify blocks the calling thread for one Argon2 computation plus any wait for a
// slot.
class PasswordVerifier {
 public:
  // Checks one password against one hash; VerifyPassword unless a test substitutes its own.
  using VerifyFn = std::function<bool(std::string_view password, const std::string& encoded_hash)>;

  // `max_concurrent` is at least 1 and `max_waiting` at least 0 (smaller values are raised to
  // those). Makes the dummy hash (one Argon2 computation at `cost`), so construction takes as long
  // as a hash. `verify`: empty means VerifyPassword.
  PasswordVerifier(PasswordCost cost, int max_concurrent, int max_waiting, VerifyFn verify = {});
  PasswordVerifier(const PasswordVerifier&) = delete;
  PasswordVerifier& operator=(const PasswordVerifier&) = delete;

  // Whether `password` matches `encoded_hash`. When the user is unknown (`encoded_hash` is
  // nullopt), verifies against a fixed dummy hash made with the same cost and answers false, so an
  // unknown user costs the same time and gets the same answer as a wrong password.
  // kResourceExhausted (reason "too_many_password_checks"): `max_concurrent` checks run and
  // `max_waiting` callers already wait; nothing was computed.
  [[nodiscard]] core::Result<bool> Verify(std::string_view password,
                                          const std::optional<std::string>& encoded_hash);

  // Checks in flight now, and callers waiting for a slot now (for metrics and tests).
  int running() const;
  int waiting() const;

 private:
  std::string DummyHash();

  const PasswordCost cost_;
  const int max_concurrent_;
  const int max_waiting_;
  const VerifyFn verify_;

  mutable std::mutex mu_;
  std::condition_variable slot_freed_;
  int running_ = 0;  // GUARDED_BY(mu_)
  int waiting_ = 0;  // GUARDED_BY(mu_)

  std::mutex dummy_mu_;
  std::string dummy_hash_;  // GUARDED_BY(dummy_mu_); empty until made (retried if making it failed)
};

}  // namespace gpuorch::security
