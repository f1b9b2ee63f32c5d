#include "security/secret_vault.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <utility>

#include "security/internal/sodium_init.h"

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

tl::unexpected<core::Error> ErrnoFailure(int err, const std::string& what) {
  const core::Code code = (err == ENOENT || err == ENOTDIR || err == EACCES || err == EROFS)
                              ? core::Code::kFailedPrecondition
                              : core::Code::kInternal;
  return core::Fail(code, what + ": " + std::strerror(err));
}

// Closes a file descriptor on every path out of a function.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }

 private:
  int fd_;
};

core::Result<std::string> ReadKeyFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      return core::Fail(core::Code::kNotFound, "master key file " + path + " does not exist");
    }
    return ErrnoFailure(err, "open master key file " + path);
  }
  FdCloser closer(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return ErrnoFailure(errno, "stat master key file " + path);
  }
  if (!S_ISREG(st.st_mode)) {
    return core::Fail(core::Code::kFailedPrecondition,
                      "master key file " + path + " is not a regular file");
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return core::Fail(
        core::Code::kFailedPrecondition,
        "master key file " + path + " is accessible by group or others; run: chmod 600 " + path, "",
        "insecure_key_file");
  }
  std::array<char, kMaxKeyFileBytes + 1> buffer{};
  size_t size = 0;
  while (size < buffer.size()) {
    const ssize_t n = ::read(fd, buffer.data() + size, buffer.size() - size);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return ErrnoFailure(errno, "read master key file " + path);
    }
    if (n == 0) {
      break;
    }
    size += static_cast<size_t>(n);
  }
  if (size > kMaxKeyFileBytes) {
    sodium_memzero(buffer.data(), buffer.size());
    return core::Fail(core::Code::kInvalidArgument,
                      "master key file " + path + " is too large to hold a key");
  }
  auto key = ParseKeyText(std::string_view(buffer.data(), size), /*allow_plain_base64=*/true,
                          "master key file " + path);
  sodium_memzero(buffer.data(), buffer.size());
  return key;
}

core::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return ErrnoFailure(errno, "write " + path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return core::Ok();
}

core::Status FsyncDirOf(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) {
    dir = ".";
  }
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return ErrnoFailure(errno, "open directory " + dir);
  }
  FdCloser closer(fd);
  if (::fsync(fd) != 0) {
    return ErrnoFailure(errno, "fsync directory " + dir);
  }
  return core::Ok();
}

// Writes `text` to a fresh 0600 temporary file beside `path` and syncs it; returns its name.
core::Result<std::string> WriteTempFile(const std::string& path, std::string_view text) {
  std::array<unsigned char, 8> suffix{};
  randombytes_buf(suffix.data(), suffix.size());
  const std::string tmp = path + ".tmp-" + Hex(suffix.data(), suffix.size());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return ErrnoFailure(errno, "create " + tmp);
  }
  core::Status written = [&]() -> core::Status {
    FdCloser closer(fd);
    if (::fchmod(fd, 0600) != 0) {
      return ErrnoFailure(errno, "chmod " + tmp);
    }
    GPUORCH_TRY(WriteAll(fd, text, tmp));
    if (::fsync(fd) != 0) {
      return ErrnoFailure(errno, "fsync " + tmp);
    }
    return core::Ok();
  }();
  if (!written) {
    ::unlink(tmp.c_str());
    return core::Fail(written.error());
  }
  return tmp;
}

// Installs `key` at `path`. `replace`: rename over an existing file; otherwise link, so that an
// existing file wins and kAlreadyExists is returned.
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
  auto tmp = WriteTempFile(path, text);
  sodium_memzero(text.data(), text.size());
  if (!tmp) {
    return core::Fail(tmp.error());
  }
  int rc = 0;
  int err = 0;
  if (replace) {
    rc = ::rename(tmp->c_str(), path.c_str());
    err = errno;
  } else {
    rc = ::link(tmp->c_str(), path.c_str());
    err = errno;
    ::unlink(tmp->c_str());
  }
  if (rc != 0) {
    if (replace) {
      ::unlink(tmp->c_str());
    }
    if (err == EEXIST) {
      return core::Fail(core::Code::kAlreadyExists, "master key file " + path + " already exists");
    }
    return ErrnoFailure(err, "install master key file " + path);
  }
  return FsyncDirOf(path);
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
