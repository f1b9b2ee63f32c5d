// One-time libsodium initialisation for the security module. Internal to security/; no other module
// includes it. Thread-safe.
#pragma once

namespace gpuorch::security::internal {

// Initialises libsodium once per process (sodium_init is idempotent; this also makes concurrent
// first calls safe). Every function of security/ that uses libsodium calls it first. Aborts the
// process when libsodium cannot initialise (no usable random source): nothing secure can run
// without it.
void EnsureSodium();

}  // namespace gpuorch::security::internal
