// Identifier generation behind an interface, so tests can make ids predictable.
// Implementations are thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace gpuorch::core {

class IdGenerator {
 public:
  virtual ~IdGenerator() = default;
  // A new id "<prefix>-<26 lowercase base32 chars>" whose leading chars sort by creation time
  // (millisecond timestamp, then 80 random bits, in the spirit of ULID).
  virtual std::string NewId(std::string_view prefix) = 0;
};

class Clock;
// Random ids timestamped from `clock` (borrowed; must outlive the generator).
std::unique_ptr<IdGenerator> MakeRandomIdGenerator(const Clock& clock);

// A token of `bytes` random bytes from the OS CSPRNG, hex-encoded.
std::string RandomHexToken(size_t bytes);

}  // namespace gpuorch::core
