#include "security/password.h"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <utility>

#include "security/internal/sodium_init.h"

namespace gpuorch::security {
namespace {

constexpr std::string_view kArgon2idPrefix = "$argon2id$";

bool CostInRange(const PasswordCost& cost) {
  return cost.ops_limit >= crypto_pwhash_opslimit_min() &&
         cost.ops_limit <= crypto_pwhash_opslimit_max() &&
         cost.mem_limit_bytes >= crypto_pwhash_memlimit_min() &&
         cost.mem_limit_bytes <= crypto_pwhash_memlimit_max();
}

// `encoded` copied into the fixed-size, NUL-terminated buffer libsodium's API is declared with, or
// false when it cannot be a libsodium hash string (too long, or an embedded NUL).
bool ToHashBuffer(const std::string& encoded, std::array<char, crypto_pwhash_STRBYTES>& out) {
  if (encoded.empty() || encoded.size() >= out.size() || encoded.find('\0') != std::string::npos) {
    return false;
  }
  out.fill('\0');
  std::copy(encoded.begin(), encoded.end(), out.begin());
  return true;
}

// Releases a verifier slot on every path out of Verify.
class SlotRelease {
 public:
  explicit SlotRelease(std::function<void()> release) : release_(std::move(release)) {}
  SlotRelease(const SlotRelease&) = delete;
  SlotRelease& operator=(const SlotRelease&) = delete;
  ~SlotRelease() { release_(); }

 private:
  std::function<void()> release_;
};

}  // namespace

PasswordCost InteractiveCost() {
  return PasswordCost{.ops_limit = crypto_pwhash_OPSLIMIT_INTERACTIVE,
                      .mem_limit_bytes = crypto_pwhash_MEMLIMIT_INTERACTIVE};
}

PasswordCost MinimalCost() {
  return PasswordCost{.ops_limit = crypto_pwhash_OPSLIMIT_MIN,
                      .mem_limit_bytes = crypto_pwhash_MEMLIMIT_MIN};
}

core::Result<std::string> HashPassword(std::string_view password, const PasswordCost& cost) {
  internal::EnsureSodium();
  if (password.empty()) {
    return core::Fail(core::Code::kInvalidArgument, "password must not be empty", "password");
  }
  if (password.size() > kMaxPasswordBytes) {
    return core::Fail(core::Code::kInvalidArgument,
                      "password must be at most " + std::to_string(kMaxPasswordBytes) + " bytes",
                      "password");
  }
  if (!CostInRange(cost)) {
    return core::Fail(core::Code::kInvalidArgument,
                      "password hash cost outside libsodium's limits");
  }
  std::array<char, crypto_pwhash_STRBYTES> out{};
  if (crypto_pwhash_str(out.data(), password.data(), password.size(), cost.ops_limit,
                        cost.mem_limit_bytes) != 0) {
    return core::Fail(core::Code::kResourceExhausted,
                      "password hashing failed (out of memory for Argon2)");
  }
  return std::string(out.data());
}

bool VerifyPassword(std::string_view password, const std::string& encoded_hash) {
  internal::EnsureSodium();
  if (password.empty() || password.size() > kMaxPasswordBytes) {
    return false;
  }
  std::array<char, crypto_pwhash_STRBYTES> buffer{};
  if (!ToHashBuffer(encoded_hash, buffer)) {
    return false;
  }
  return crypto_pwhash_str_verify(buffer.data(), password.data(), password.size()) == 0;
}

bool PasswordNeedsRehash(const std::string& encoded_hash, const PasswordCost& cost) {
  internal::EnsureSodium();
  std::array<char, crypto_pwhash_STRBYTES> buffer{};
  if (!ToHashBuffer(encoded_hash, buffer) || !encoded_hash.starts_with(kArgon2idPrefix)) {
    return true;
  }
  return crypto_pwhash_str_needs_rehash(buffer.data(), cost.ops_limit, cost.mem_limit_bytes) != 0;
}

PasswordVerifier::PasswordVerifier(PasswordCost cost, int max_concurrent, int max_waiting,
                                   VerifyFn verify)
    : cost_(cost),
      max_concurrent_(std::max(1, max_concurrent)),
      max_waiting_(std::max(0, max_waiting)),
      verify_(verify ? std::move(verify) : VerifyFn(VerifyPassword)) {
  DummyHash();
}

std::string PasswordVerifier::DummyHash() {
  std::lock_guard lock(dummy_mu_);
  if (dummy_hash_.empty()) {
    // A random password nobody knows: the dummy must never verify, whatever is typed.
    internal::EnsureSodium();
    std::array<unsigned char, 32> secret{};
    randombytes_buf(secret.data(), secret.size());
    std::array<char, 2 * 32 + 1> hex{};
    sodium_bin2hex(hex.data(), hex.size(), secret.data(), secret.size());
    auto hash = HashPassword(std::string_view(hex.data(), 2 * 32), cost_);
    sodium_memzero(hex.data(), hex.size());
    sodium_memzero(secret.data(), secret.size());
    if (hash) {
      dummy_hash_ = std::move(*hash);
    }
  }
  // Empty when Argon2 could not get its memory; VerifyPassword then answers false at once, as a
  // real check would under the same shortage.
  return dummy_hash_;
}

core::Result<bool> PasswordVerifier::Verify(std::string_view password,
                                            const std::optional<std::string>& encoded_hash) {
  {
    std::unique_lock lock(mu_);
    if (running_ >= max_concurrent_) {
      if (waiting_ >= max_waiting_) {
        return core::Fail(core::Code::kResourceExhausted,
                          "too many password checks in progress; retry later", "",
                          "too_many_password_checks");
      }
      ++waiting_;
      slot_freed_.wait(lock, [this] { return running_ < max_concurrent_; });
      --waiting_;
    }
    ++running_;
  }
  SlotRelease release([this] {
    {
      std::lock_guard lock(mu_);
      --running_;
    }
    slot_freed_.notify_one();
  });
  if (!encoded_hash.has_value()) {
    // Same work as a real check; the answer is false whatever the dummy check says.
    (void)verify_(password, DummyHash());
    return false;
  }
  return verify_(password, *encoded_hash);
}

int PasswordVerifier::running() const {
  std::lock_guard lock(mu_);
  return running_;
}

int PasswordVerifier::waiting() const {
  std::lock_guard lock(mu_);
  return waiting_;
}

}  // namespace gpuorch::security
