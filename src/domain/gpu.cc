#include "domain/gpu.h"

#include <cctype>
#include <map>

namespace gpuorch::domain {
namespace {

void EraseWord(std::string& s, std::string_view word) {
  for (size_t pos = s.find(word); pos != std::string::npos; pos = s.find(word)) {
    s.erase(pos, word.size());
  }
}

}  // namespace

std::string CanonicalGpuType(std::string_view text) {
  std::string upper;
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (std::isalnum(u)) {
      upper.push_back(static_cast<char>(std::toupper(u)));
    }
  }
  if (upper == "ANY") {
    return "";
  }
  EraseWord(upper, "NVIDIA");
  EraseWord(upper, "GEFORCE");
  EraseWord(upper, "TESLA");
  return upper;
}

namespace {

const std::map<std::string, double, std::less<>>& KnownMemoryTable() {
  static const std::map<std::string, double, std::less<>> known = {
      {"RTX4090", 24}, {"RTX3090", 24}, {"RTXA6000", 48}, {"A6000", 48}, {"L4", 24},
      {"L40S", 48},    {"A10G", 24},    {"A100", 80},     {"A10080GB", 80}, {"A10040GB", 40},
      {"H100", 80},    {"H200", 141},   {"B200", 192},    {"T4", 16},       {"V100", 16}};
  return known;
}

}  // namespace

double KnownGpuMemoryGb(std::string_view canonical_type) {
  auto it = KnownMemoryTable().find(canonical_type);
  return it == KnownMemoryTable().end() ? 0 : it->second;
}

const std::set<std::string>& KnownGpuTypes() {
  static const std::set<std::string> types = [] {
    std::set<std::string> out;
    for (const auto& [type, memory] : KnownMemoryTable()) {
      out.insert(type);
    }
    return out;
  }();
  return types;
}

}  // namespace gpuorch::domain
