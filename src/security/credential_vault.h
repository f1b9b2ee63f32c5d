// Provider credentials stored through the API, sealed at rest with the SecretVault
// (XChaCha20-Poly1305 under the master key). Plaintext leaves this class only through
// OpenAll(), for building the provider adapters; listings show a hint (last 4 characters) and a
// fingerprint, never the value.
//
// Thread-safe (the store and the vault are); every method blocks on the store.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/error.h"
#include "security/secret_vault.h"
#include "store/store.h"

namespace gpuorch::security {

// The credential fields each provider accepts through the API, as (JSON field → provider variable):
// runpod {api_key → RUNPOD_API_KEY}, vastai {api_key → VAST_API_KEY}, aws {access_key_id →
// AWS_ACCESS_KEY_ID, secret_access_key → AWS_SECRET_ACCESS_KEY, session_token → AWS_SESSION_TOKEN}.
const std::map<std::string, std::map<std::string, std::string>>& CredentialFields();
// The fields a provider needs at least (runpod/vastai: api_key; aws: the key id and secret).
const std::vector<std::string>& RequiredCredentialFields(const std::string& provider);

struct CredentialInfo {
  std::string provider;
  std::string name;         // the provider variable
  std::string hint;         // last 4 characters
  std::string fingerprint;  // short SHA-256 hex
  core::SystemTime updated_at{};
};

class CredentialVault {
 public:
  // Borrowed; they must outlive this object.
  CredentialVault(store::Store& store, const SecretVault& vault, const core::Clock& clock);

  // Replaces the stored credentials of `provider` by `fields` (JSON field → value), sealed.
  // kNotFound for an unknown provider; kInvalidArgument (field named) for an unknown field, a
  // missing required one, or a value that is empty, over 4 KiB or has control characters.
  [[nodiscard]] core::Status Put(const std::string& provider,
                                 const std::map<std::string, std::string>& fields);
  // kNotFound when the provider has none stored.
  [[nodiscard]] core::Status Delete(const std::string& provider);
  [[nodiscard]] core::Result<std::vector<CredentialInfo>> List();
  // Every stored credential opened: provider variable → plaintext. kPermissionDenied when one was
  // sealed under another master key.
  [[nodiscard]] core::Result<std::map<std::string, std::string>> OpenAll();

 private:
  store::Store& store_;
  const SecretVault& vault_;
  const core::Clock& clock_;
};

// Re-seals every stored credential from `old_vault` to `new_vault` in one store transaction: all or
// nothing. Returns how many were re-sealed. kPermissionDenied when one does not open under
// `old_vault` (then nothing changes).
[[nodiscard]] core::Result<int> ResealCredentials(store::Store& store, const SecretVault& old_vault,
                                                  const SecretVault& new_vault);

}  // namespace gpuorch::security
