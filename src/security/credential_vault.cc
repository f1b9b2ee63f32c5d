#include "security/credential_vault.h"

#include <algorithm>

namespace gpuorch::security {
namespace {

std::string AssociatedData(const std::string& provider, const std::string& name) {
  return provider + "/" + name;
}

}  // namespace

const std::map<std::string, std::map<std::string, std::string>>& CredentialFields() {
  static const std::map<std::string, std::map<std::string, std::string>> fields = {
      {"runpod", {{"api_key", "RUNPOD_API_KEY"}}},
      {"vastai", {{"api_key", "VAST_API_KEY"}}},
      {"aws",
       {{"access_key_id", "AWS_ACCESS_KEY_ID"},
        {"secret_access_key", "AWS_SECRET_ACCESS_KEY"},
        {"session_token", "AWS_SESSION_TOKEN"}}},
  };
  return fields;
}

const std::vector<std::string>& RequiredCredentialFields(const std::string& provider) {
  static const std::vector<std::string> api_key = {"api_key"};
  static const std::vector<std::string> aws = {"access_key_id", "secret_access_key"};
  static const std::vector<std::string> none;
  if (provider == "aws") {
    return aws;
  }
  return CredentialFields().count(provider) ? api_key : none;
}

CredentialVault::CredentialVault(store::Store& store, const SecretVault& vault,
                                 const core::Clock& clock)
    : store_(store), vault_(vault), clock_(clock) {}

core::Status CredentialVault::Put(const std::string& provider,
                                  const std::map<std::string, std::string>& fields) {
  auto known = CredentialFields().find(provider);
  if (known == CredentialFields().end()) {
    return core::Fail(core::Code::kNotFound, "no provider '" + provider + "'", "provider");
  }
  for (const auto& [field, value] : fields) {
    if (!known->second.count(field)) {
      return core::Fail(core::Code::kInvalidArgument,
                        "unknown credential field for " + provider, field);
    }
    if (value.empty() || value.size() > 4096 ||
        std::any_of(value.begin(), value.end(),
                    [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
      return core::Fail(core::Code::kInvalidArgument,
                        "must be 1-4096 characters without control characters", field);
    }
  }
  for (const std::string& required : RequiredCredentialFields(provider)) {
    if (!fields.count(required)) {
      return core::Fail(core::Code::kInvalidArgument, "required for " + provider, required);
    }
  }
  // Keep the other providers' credentials; replace this provider's as a whole, atomically.
  GPUORCH_ASSIGN_OR_RETURN(auto all, store_.ListCredentials());
  std::erase_if(all, [&](const store::CredentialRecord& c) { return c.provider == provider; });
  const core::SystemTime now = clock_.Now();
  for (const auto& [field, value] : fields) {
    const std::string& name = known->second.at(field);
    all.push_back(store::CredentialRecord{.provider = provider,
                                          .name = name,
                                          .sealed = vault_.Seal(value, AssociatedData(provider, name)),
                                          .key_id = vault_.key_id(),
                                          .hint = SecretHint(value),
                                          .fingerprint = SecretFingerprint(value),
                                          .updated_at = now});
  }
  return store_.ReplaceCredentials(all);
}

core::Status CredentialVault::Delete(const std::string& provider) {
  GPUORCH_ASSIGN_OR_RETURN(auto all, store_.ListCredentials());
  const size_t before = all.size();
  std::erase_if(all, [&](const store::CredentialRecord& c) { return c.provider == provider; });
  if (all.size() == before) {
    return core::Fail(core::Code::kNotFound, "no stored credentials for '" + provider + "'",
                      "provider");
  }
  return store_.ReplaceCredentials(all);
}

core::Result<std::vector<CredentialInfo>> CredentialVault::List() {
  GPUORCH_ASSIGN_OR_RETURN(auto all, store_.ListCredentials());
  std::vector<CredentialInfo> out;
  for (const auto& c : all) {
    out.push_back(CredentialInfo{.provider = c.provider,
                                 .name = c.name,
                                 .hint = c.hint,
                                 .fingerprint = c.fingerprint,
                                 .updated_at = c.updated_at});
  }
  return out;
}

core::Result<std::map<std::string, std::string>> CredentialVault::OpenAll() {
  GPUORCH_ASSIGN_OR_RETURN(auto all, store_.ListCredentials());
  std::map<std::string, std::string> out;
  for (const auto& c : all) {
    auto plain = vault_.Open(c.sealed, AssociatedData(c.provider, c.name));
    if (!plain) {
      return core::Fail(core::Code::kPermissionDenied,
                        "stored credential " + c.provider + "/" + c.name +
                            " does not open under the master key (key id " + vault_.key_id() +
                            ", sealed under " + c.key_id + ")");
    }
    out[c.name] = std::move(*plain);
  }
  return out;
}

core::Result<int> ResealCredentials(store::Store& store, const SecretVault& old_vault,
                                    const SecretVault& new_vault) {
  GPUORCH_ASSIGN_OR_RETURN(auto all, store.ListCredentials());
  for (auto& c : all) {
    const std::string associated = AssociatedData(c.provider, c.name);
    auto plain = old_vault.Open(c.sealed, associated);
    if (!plain) {
      return core::Fail(core::Code::kPermissionDenied,
                        "stored credential " + c.provider + "/" + c.name +
                            " does not open under the current master key");
    }
    c.sealed = new_vault.Seal(*plain, associated);
    c.key_id = new_vault.key_id();
  }
  GPUORCH_TRY(store.ReplaceCredentials(all));
  return static_cast<int>(all.size());
}

}  // namespace gpuorch::security
