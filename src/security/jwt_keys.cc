// LoadJwtKeys: the JWT codec's keys from configuration. Key files are small and read whole; an HS256
// secret may also be created once under the data dir.
#include "security/jwt.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <sodium.h>

#include "security/internal/jwt_key_util.h"
#include "security/secret_file.h"

namespace gpuorch::security {
namespace {

using internal::BadJwtKey;
using internal::kMinHmacSecretBytes;
using internal::PkeyPtr;
using internal::ReadPem;
using internal::Wipe;
using internal::WritePem;

constexpr size_t kMaxKeyFileBytes = 1024 * 1024;
const char* const kKeyFileName = "jwt.key";

core::Result<std::string> ReadKeyFile(const std::string& path, const std::string& field) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return BadJwtKey(field, "cannot be opened (" + path + "): " + std::strerror(errno));
  }
  struct stat st {};
  std::string data;
  bool ok = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
            static_cast<size_t>(st.st_size) <= kMaxKeyFileBytes;
  if (ok) {
    data.resize(kMaxKeyFileBytes + 1);
    size_t got = 0;
    while (got < data.size()) {
      ssize_t n = ::read(fd, data.data() + got, data.size() - got);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        ok = n == 0;
        break;
      }
      got += static_cast<size_t>(n);
    }
    data.resize(got);
    ok = ok && got <= kMaxKeyFileBytes;
  }
  ::close(fd);
  if (!ok) {
    Wipe(data);
    return BadJwtKey(field, "must name a readable regular file of at most 1 MiB (" + path + ")");
  }
  return data;
}

core::Result<std::string> DecodeBase64(std::string_view text, const std::string& field) {
  std::string out(text.size() / 4 * 3 + 3, '\0');
  size_t len = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                        text.size(), nullptr, &len, nullptr, sodium_base64_VARIANT_ORIGINAL) != 0) {
    Wipe(out);
    return BadJwtKey(field, "is not valid base64");
  }
  out.resize(len);
  return out;
}

// A configured secret: "base64:<standard base64>" or raw bytes.
core::Result<std::string> DecodeSecret(std::string text, const std::string& field) {
  constexpr std::string_view kPrefix = "base64:";
  core::Result<std::string> secret =
      text.starts_with(kPrefix) ? DecodeBase64(std::string_view(text).substr(kPrefix.size()), field)
                                : core::Result<std::string>(text);
  Wipe(text);
  if (secret && secret->size() < kMinHmacSecretBytes) {
    Wipe(*secret);
    return BadJwtKey(field, "must hold at least 32 bytes (256 bits) for HS256");
  }
  return secret;
}

void StripTrailingNewlines(std::string& s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) {
    s.pop_back();
  }
}

// <data_dir>/jwt.key: base64 text of 32 random bytes, created on first start. It is created only
// when absent (an existing file wins) and then read back, so that two processes racing on one data
// dir both end up with the key the disk holds.
core::Result<std::string> LoadOrCreateKeyFile(const std::string& path) {
  core::Result<std::string> text = ReadSecretFile(path);
  if (!text && text.error().code == core::Code::kNotFound) {
    if (sodium_init() < 0) {
      return core::Fail(core::Code::kInternal, "jwt: libsodium failed to initialise");
    }
    std::string secret(kMinHmacSecretBytes, '\0');
    randombytes_buf(secret.data(), secret.size());
    std::string encoded(
        sodium_base64_ENCODED_LEN(kMinHmacSecretBytes, sodium_base64_VARIANT_ORIGINAL), '\0');
    sodium_bin2base64(encoded.data(), encoded.size(),
                      reinterpret_cast<const unsigned char*>(secret.data()), secret.size(),
                      sodium_base64_VARIANT_ORIGINAL);
    encoded.resize(std::strlen(encoded.c_str()));
    encoded += '\n';
    core::Status written = CreateSecretFileIfAbsent(path, encoded);
    Wipe(secret);
    Wipe(encoded);
    text = written || written.error().code == core::Code::kAlreadyExists
               ? ReadSecretFile(path)
               : tl::unexpected(written.error());
  }
  if (!text) {
    core::Error error = text.error().WithContext("jwt");
    error.field = "data_dir";
    return core::Fail(std::move(error));
  }
  StripTrailingNewlines(*text);
  core::Result<std::string> secret = DecodeBase64(*text, "data_dir");
  Wipe(*text);
  if (secret && secret->size() < kMinHmacSecretBytes) {
    Wipe(*secret);
    return BadJwtKey("data_dir", "holds a jwt.key shorter than 32 bytes (" + path + ")");
  }
  return secret;
}

core::Result<std::string> LoadHmacSecret(const JwtKeySource& source) {
  if (!source.private_key_file.empty() || !source.public_key_file.empty()) {
    return BadJwtKey(source.private_key_file.empty() ? "public_key_file" : "private_key_file",
                  "is for RS256/ES256/EdDSA, not HS256");
  }
  if (!source.secret.empty()) {
    return DecodeSecret(source.secret, "secret");
  }
  if (!source.secret_file.empty()) {
    GPUORCH_ASSIGN_OR_RETURN(std::string text, ReadKeyFile(source.secret_file, "secret_file"));
    StripTrailingNewlines(text);
    return DecodeSecret(std::move(text), "secret_file");
  }
  if (source.data_dir.empty()) {
    return BadJwtKey("data_dir", "is required when HS256 has no secret or secret_file");
  }
  struct stat st {};
  if (::stat(source.data_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return core::Fail(core::Code::kFailedPrecondition,
                      "jwt: data_dir " + source.data_dir + " is not a directory", "data_dir");
  }
  return LoadOrCreateKeyFile(source.data_dir + "/" + kKeyFileName);
}

core::Status LoadPemFiles(const JwtKeySource& source, JwtKeys& keys) {
  const std::string name(JwtAlgorithmName(keys.algorithm));
  if (!source.secret.empty() || !source.secret_file.empty()) {
    return BadJwtKey(source.secret.empty() ? "secret_file" : "secret", "is for HS256, not " + name);
  }
  if (source.private_key_file.empty() && source.public_key_file.empty()) {
    return BadJwtKey("private_key_file", "or public_key_file is required for " + name);
  }
  if (!source.private_key_file.empty()) {
    GPUORCH_ASSIGN_OR_RETURN(keys.private_key_pem,
                             ReadKeyFile(source.private_key_file, "private_key_file"));
  }
  if (!source.public_key_file.empty()) {
    GPUORCH_ASSIGN_OR_RETURN(keys.public_key_pem,
                             ReadKeyFile(source.public_key_file, "public_key_file"));
    return core::Ok();
  }
  PkeyPtr key = ReadPem(keys.private_key_pem, /*private_key=*/true);
  keys.public_key_pem = key ? WritePem(key.get(), /*private_key=*/false) : "";
  if (keys.public_key_pem.empty()) {
    return BadJwtKey("private_key_file", "does not hold an unencrypted PEM private key");
  }
  return core::Ok();
}

}  // namespace

core::Result<JwtKeys> LoadJwtKeys(const JwtKeySource& source) {
  std::optional<JwtAlgorithm> algorithm = ParseJwtAlgorithm(source.algorithm);
  if (!algorithm) {
    return BadJwtKey("algorithm", "must be HS256, RS256, ES256 or EdDSA");
  }
  JwtKeys keys{.algorithm = *algorithm};
  if (*algorithm == JwtAlgorithm::kHs256) {
    GPUORCH_ASSIGN_OR_RETURN(keys.hmac_secret, LoadHmacSecret(source));
  } else {
    GPUORCH_TRY(LoadPemFiles(source, keys));
  }
  // The codec's checks, reported under the source's names.
  auto codec = JwtCodec::Create(keys, JwtProfile{});
  if (!codec) {
    core::Error error = codec.error();
    if (error.field == "private_key_pem") {
      error.field = "private_key_file";
    } else if (error.field == "public_key_pem") {
      error.field = source.public_key_file.empty() ? "private_key_file" : "public_key_file";
    }
    return core::Fail(std::move(error));
  }
  return keys;
}

}  // namespace gpuorch::security
