// Encryption of stored secrets (provider API keys, webhook secrets) under one 32-byte master key,
// with XChaCha20-Poly1305 (libsodium crypto_aead_xchacha20poly1305_ietf), plus loading and writing
// the master key itself.
//
// A sealed value is `nonce (24 bytes) || ciphertext || tag (16 bytes)`, with a fresh random nonce
// per seal, and binds its name as associated data: a value sealed for "runpod/RUNPOD_API_KEY" does
// not open as any other name. Errors never contain key material or plaintext. Thread-safe: a
// SecretVault is immutable after Create; the free functions are independent.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/error.h"

namespace gpuorch::security {

inline constexpr size_t kMasterKeyBytes = 32;

class SecretVault {
 public:
  // A vault over `master_key`, which must be exactly kMasterKeyBytes bytes (kInvalidArgument
  // otherwise). The key is copied into guarded memory (sodium_malloc) and `master_key` is wiped.
  // kResourceExhausted: that memory could not be allocated.
  [[nodiscard]] static core::Result<std::unique_ptr<SecretVault>> Create(std::string master_key);

  SecretVault(const SecretVault&) = delete;
  SecretVault& operator=(const SecretVault&) = delete;
  ~SecretVault();  // wipes and frees the key

  // 16 lowercase hex characters naming the key without revealing it: a keyed BLAKE2b of a fixed
  // label. Stable for a key, different between keys; store it beside sealed values to tell which
  // key they need.
  std::string key_id() const;

  // `plaintext` encrypted and authenticated together with `associated` (the secret's name).
  // Two seals of the same input differ (random nonce). Never fails.
  std::string Seal(std::string_view plaintext, std::string_view associated) const;

  // The plaintext of `sealed`, which Seal made with this key and the same `associated`.
  // kInvalidArgument: `sealed` is shorter than a nonce and a tag. kPermissionDenied ("sealed value
  // does not open under this key"): the key, the associated data or any byte differs.
  [[nodiscard]] core::Result<std::string> Open(std::string_view sealed,
                                               std::string_view associated) const;

 private:
  SecretVault(unsigned char* key, std::string key_id);

  unsigned char* key_;  // kMasterKeyBytes in sodium_malloc'ed memory
  const std::string key_id_;
};

// Where the master key comes from, in order of precedence.
struct MasterKeySource {
  std::string env_value;  // GPUORCH_MASTER_KEY: "base64:<standard base64>" or 64 hex characters
  std::string key_file;   // GPUORCH_MASTER_KEY_FILE: a file holding the key as base64 text
  std::string data_dir;   // fallback: <data_dir>/master.key
  bool create_if_missing = true;  // create <data_dir>/master.key when absent
};

// The 32-byte master key: from `env_value` when set, else from `key_file` when set, else from
// `<data_dir>/master.key`, created with a new random key when absent and `create_if_missing`
// (atomically; if two processes race, both end up with the key that was written first).
// A key file holds base64 text (or "base64:..." or 64 hex characters, like the environment value).
// kInvalidArgument: a value that is not a 32-byte key in those encodings (the message names the
// source, never the value). kFailedPrecondition: a key file readable or writable by group or others
// (fix with chmod 600), not a regular file, or no source configured. kNotFound: the key file does
// not exist (and may not be created). kInternal: other I/O errors. Blocks on file I/O.
[[nodiscard]] core::Result<std::string> LoadMasterKey(const MasterKeySource& source);

// Writes `key` (kMasterKeyBytes bytes) to `path` as base64 text with mode 0600, atomically: a
// temporary file in the same directory, fsync, rename over `path`, fsync of the directory. Replaces
// an existing file (key rotation). kInvalidArgument: wrong key size. kInternal: I/O errors.
[[nodiscard]] core::Status WriteKeyFile(const std::string& path, std::string_view key);

// kMasterKeyBytes fresh random bytes.
std::string NewMasterKey();

// The last 4 characters of `secret`, to show which secret is stored, or "" when `secret` is shorter
// than 12 characters (too short to reveal any of it).
std::string SecretHint(std::string_view secret);

// The first 16 lowercase hex characters of SHA-256(`secret`): tells two secrets apart in logs and
// listings without revealing either.
std::string SecretFingerprint(std::string_view secret);

}  // namespace gpuorch::security
