#include "core/ids.h"

#include <mutex>
#include <random>

#include "core/clock.h"

namespace gpuorch::core {
namespace {

constexpr std::string_view kBase32 = "0123456789abcdefghjkmnpqrstvwxyz";  // Crockford, lowercase

class RandomIdGenerator final : public IdGenerator {
 public:
  explicit RandomIdGenerator(const Clock& clock) : clock_(clock), rng_(std::random_device{}()) {}

  std::string NewId(std::string_view prefix) override {
    uint64_t ms = static_cast<uint64_t>(ToUnixMillis(clock_.Now()));
    uint64_t hi;
    uint64_t lo;
    {
      std::lock_guard lock(mu_);
      hi = rng_();
      lo = rng_();
    }
    std::string out(prefix);
    out.push_back('-');
    // 10 chars of timestamp (50 bits), then 16 chars of randomness (80 bits).
    for (int i = 9; i >= 0; --i) {
      out.push_back(kBase32[(ms >> (i * 5)) & 31]);
    }
    for (int i = 0; i < 16; ++i) {
      uint64_t& src = i < 8 ? hi : lo;
      out.push_back(kBase32[src & 31]);
      src >>= 5;
    }
    return out;
  }

 private:
  const Clock& clock_;
  std::mutex mu_;
  std::mt19937_64 rng_;
};

}  // namespace

std::unique_ptr<IdGenerator> MakeRandomIdGenerator(const Clock& clock) {
  return std::make_unique<RandomIdGenerator>(clock);
}

std::string RandomHexToken(size_t bytes) {
  std::random_device device;  // reads the OS CSPRNG on Linux
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes * 2);
  for (size_t i = 0; i < bytes; ++i) {
    unsigned v = device() & 0xff;
    out.push_back(kHex[v >> 4]);
    out.push_back(kHex[v & 15]);
  }
  return out;
}

}  // namespace gpuorch::core
