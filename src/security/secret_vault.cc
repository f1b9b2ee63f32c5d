#include "security/secret_vault.h"

#include <sodium.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <optional>
#include <utility>

#include "security/internal/sodium_init.h"
#include "security/secret_file.h"

namespace gpuorch::security {
namespace {

constexpr size_t kNonceBytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTagBytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
constexpr std::string_view kKeyIdLabel = "gpuorch secret vault key id v1";
constexpr std::string_view kBase64Prefix = "base64:";
constexpr size_t kMaxKeyFileBytes = 4096;
constexpr char kKeyFileName[] = "master.key";

static_assert(kMasterKeyBytes == crypto_aead_xchacha20poly1305_ietf_KEYBYTES);

std::string Hex(const unsigned char* bytes, size_t size) {
  std::string out(2 * size + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), bytes, size);
  out.pop_back();
  return out;
}

std::string_view Trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n";
  const size_t begin = text.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) {
    return {};
  }
  return text.substr(begin, text.find_last_not_of(kSpace) - begin + 1);
}

// Exactly kMasterKeyBytes decoded from standard base64 (padded or not), or nullopt.
std::optional<std::string> DecodeBase64Key(std::string_view text) {
  std::array<unsigned char, 2 * kMasterKeyBytes> bin{};
  for (int variant : {sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING}) {
    size_t bin_len = 0;
    const char* end = nullptr;
    if (sodium_base642bin(bin.data(), bin.size(), text.data(), text.size(), nullptr, &bin_len, &end,
                          variant) == 0 &&
        end == text.data() + text.size() && bin_len == kMasterKeyBytes) {
      std::string key(reinterpret_cast<const char*>(bin.data()), bin_len);
      sodium_memzero(bin.data(), bin.size());
      return key;
    }
  }
  sodium_memzero(bin.data(), bin.size());
  return std::nullopt;
}

std::optional<std::string> DecodeHexKey(std::string_view text) {
  if (text.size() != 2 * kMasterKeyBytes) {
    return std::nullopt;
  }
  std::array<unsigned char, kMasterKeyBytes> bin{};
  size_t bin_len = 0;
  const char* end = nullptr;
  if (sodium_hex2bin(bin.data(), bin.size(), text.data(), text.size(), nullptr, &bin_len, &end) !=
          0 ||
      end != text.data() + text.size() || bin_len != kMasterKeyBytes) {
    return std::nullopt;
  }
  std::string key(reinterpret_cast<const char*>(bin.data()), bin_len);
  sodium_memzero(bin.data(), bin.size());
  return key;
}

// The key `text` encodes: "base64:..." or 64 hex characters, and plain base64 when
// `allow_plain_base64` (the key file's own format). `source` names where it came from for the
// error.
core::Result<std::string> ParseKeyText(std::string_view text, bool allow_plain_base64,
                                       const std::string& source) {
  text = Trim(text);
  std::optional<std::string> key;
  if (text.starts_with(kBase64Prefix)) {
    key = DecodeBase64Key(text.substr(kBase64Prefix.size()));
  } else if (text.size() == 2 * kMasterKeyBytes) {
    key = DecodeHexKey(text);
  } else if (allow_plain_base64) {
    key = DecodeBase64Key(text);
  }
  if (!key) {
    return core::Fail(
        core::Code::kInvalidArgument,
        source + " must hold a 32-byte key as \"base64:<base64>\" or 64 hex characters", source,
        "invalid_master_key");
  }
  return *std::move(key);
}

// A secret-file error in this file's terms (secret_vault.h): I/O failures other than an
// inaccessible path are kInternal, an oversized file does not hold a key (kInvalidArgument), and
// loose permissions keep their own reason.
core::Error KeyFileError(core::Error error) {
  if (error.code == core::Code::kUnavailable) {
    error.code = core::Code::kInternal;
  } else if (error.reason == kSecretFileTooLargeReason) {
    error.code = core::Code::kInvalidArgument;
  } else if (error.reason == kInsecureSecretFileReason) {
    error.reason = "insecure_key_file";
  }
  return error.WithContext("master key file");
}

core::Result<std::string> ReadKeyFile(const std::string& path) {
  auto text = ReadSecretFile(path, kMaxKeyFileBytes);
  if (!text) {
    return core::Fail(KeyFileError(std::move(text).error()));
  }
  auto key = ParseKeyText(*text, /*allow_plain_base64=*/true, "master key file " + path);
  sodium_memzero(text->data(), text->size());
  return key;
}

// Installs `key` at `path` as base64 text. `replace`: over an existing file; otherwise an existing
// file wins and kAlreadyExists is returned.
core::Status InstallKeyFile(const std::string& path, std::string_view key, bool replace) {
  if (key.size() != kMasterKeyBytes) {
    return core::Fail(core::Code::kInvalidArgument, "master key must be 32 bytes", "key");
  }
  internal::EnsureSodium();
  const size_t text_len =
      sodium_base64_ENCODED_LEN(kMasterKeyBytes, sodium_base64_VARIANT_ORIGINAL);
  std::string text(text_len, '\0');
  sodium_bin2base64(text.data(), text.size(), reinterpret_cast<const unsigned char*>(key.data()),
                    key.size(), sodium_base64_VARIANT_ORIGINAL);
  text.back() = '\n';  // replaces the terminating NUL
  core::Status installed =
      replace ? WriteSecretFile(path, text) : CreateSecretFileIfAbsent(path, text);
  sodium_memzero(text.data(), text.size());
  if (!installed) {
    return core::Fail(KeyFileError(std::move(installed).error()));
  }
  return core::Ok();
}

}  // namespace

core::Result<std::unique_ptr<SecretVault>> SecretVault::Create(std::string master_key) {
  internal::EnsureSodium();
  if (master_key.size() != kMasterKeyBytes) {
    sodium_memzero(master_key.data(), master_key.size());
    return core::Fail(core::Code::kInvalidArgument, "master key must be exactly 32 bytes",
                      "master_key", "invalid_master_key");
  }
  auto* key = static_cast<unsigned char*>(sodium_malloc(kMasterKeyBytes));
  if (key == nullptr) {
    sodium_memzero(master_key.data(), master_key.size());
    return core::Fail(core::Code::kResourceExhausted, "cannot allocate guarded memory for the key");
  }
  std::memcpy(key, master_key.data(), kMasterKeyBytes);
  sodium_memzero(master_key.data(), master_key.size());
  std::array<unsigned char, crypto_generichash_BYTES_MIN> digest{};
  crypto_generichash(digest.data(), digest.size(),
                     reinterpret_cast<const unsigned char*>(kKeyIdLabel.data()), kKeyIdLabel.size(),
                     key, kMasterKeyBytes);
  sodium_mprotect_readonly(key);
  return std::unique_ptr<SecretVault>(new SecretVault(key, Hex(digest.data(), 8)));
}

SecretVault::SecretVault(unsigned char* key, std::string key_id)
    : key_(key), key_id_(std::move(key_id)) {}

SecretVault::~SecretVault() {
  sodium_mprotect_readwrite(key_);
  sodium_memzero(key_, kMasterKeyBytes);
  sodium_free(key_);
}

std::string SecretVault::key_id() const { return key_id_; }

std::string SecretVault::Seal(std::string_view plaintext, std::string_view associated) const {
  std::string sealed(kNonceBytes + plaintext.size() + kTagBytes, '\0');
  auto* out = reinterpret_cast<unsigned char*>(sealed.data());
  randombytes_buf(out, kNonceBytes);
  unsigned long long cipher_len = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(
      out + kNonceBytes, &cipher_len, reinterpret_cast<const unsigned char*>(plaintext.data()),
      plaintext.size(), reinterpret_cast<const unsigned char*>(associated.data()),
      associated.size(), nullptr, out, key_);
  return sealed;
}

core::Result<std::string> SecretVault::Open(std::string_view sealed,
                                            std::string_view associated) const {
  if (sealed.size() < kNonceBytes + kTagBytes) {
    return core::Fail(core::Code::kInvalidArgument, "sealed value is too short", "",
                      "invalid_sealed_value");
  }
  const auto* in = reinterpret_cast<const unsigned char*>(sealed.data());
  std::string plaintext(sealed.size() - kNonceBytes - kTagBytes, '\0');
  unsigned long long plain_len = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          reinterpret_cast<unsigned char*>(plaintext.data()), &plain_len, nullptr, in + kNonceBytes,
          sealed.size() - kNonceBytes, reinterpret_cast<const unsigned char*>(associated.data()),
          associated.size(), in, key_) != 0) {
    sodium_memzero(plaintext.data(), plaintext.size());
    return core::Fail(core::Code::kPermissionDenied, "sealed value does not open under this key",
                      "", "secret_not_opened");
  }
  return plaintext;
}

core::Result<std::string> LoadMasterKey(const MasterKeySource& source) {
  internal::EnsureSodium();
  if (!source.env_value.empty()) {
    return ParseKeyText(source.env_value, /*allow_plain_base64=*/false, "GPUORCH_MASTER_KEY");
  }
  if (!source.key_file.empty()) {
    return ReadKeyFile(source.key_file);
  }
  if (source.data_dir.empty()) {
    return core::Fail(core::Code::kFailedPrecondition,
                      "no master key: set GPUORCH_MASTER_KEY, GPUORCH_MASTER_KEY_FILE or a data "
                      "directory");
  }
  const std::string path = (std::filesystem::path(source.data_dir) / kKeyFileName).string();
  auto existing = ReadKeyFile(path);
  if (existing || existing.error().code != core::Code::kNotFound || !source.create_if_missing) {
    return existing;
  }
  std::string key = NewMasterKey();
  auto installed = InstallKeyFile(path, key, /*replace=*/false);
  if (!installed && installed.error().code == core::Code::kAlreadyExists) {
    sodium_memzero(key.data(), key.size());
    return ReadKeyFile(path);  // another process created it first: use theirs
  }
  if (!installed) {
    sodium_memzero(key.data(), key.size());
    return core::Fail(installed.error());
  }
  return key;
}

core::Status WriteKeyFile(const std::string& path, std::string_view key) {
  return InstallKeyFile(path, key, /*replace=*/true);
}

std::string NewMasterKey() {
  internal::EnsureSodium();
  std::string key(kMasterKeyBytes, '\0');
  randombytes_buf(key.data(), key.size());
  return key;
}

std::string SecretHint(std::string_view secret) {
  if (secret.size() < 12) {
    return "";
  }
  return std::string(secret.substr(secret.size() - 4));
}

std::string SecretFingerprint(std::string_view secret) {
  internal::EnsureSodium();
  std::array<unsigned char, crypto_hash_sha256_BYTES> digest{};
  crypto_hash_sha256(digest.data(), reinterpret_cast<const unsigned char*>(secret.data()),
                     secret.size());
  return Hex(digest.data(), 8);
}

}  // namespace gpuorch::security
