#include "domain/gpu.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <vector>

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


std::string CanonicalGpuModel(std::string_view provider_name) {
  static const std::vector<std::string_view> kDropped = {
      "NVIDIA", "GEFORCE", "TESLA", "AMD", "INSTINCT", "PCIE",       "SXM",       "SXM2",
      "SXM4",   "SXM5",    "HBM3",  "OAM", "FHHL",     "GENERATION", "BLACKWELL", "EDITION"};
  std::string kept;
  std::string token;
  auto flush = [&] {
    std::string upper(token);
    std::transform(upper.begin(), upper.end(), upper.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    const bool memory = upper.size() > 2 && upper.ends_with("GB") &&
                        std::all_of(upper.begin(), upper.end() - 2,
                                    [](unsigned char c) { return std::isdigit(c) != 0; });
    if (!upper.empty() && !memory &&
        std::find(kDropped.begin(), kDropped.end(), upper) == kDropped.end()) {
      kept += upper;
    }
    token.clear();
  };
  for (char c : provider_name) {
    if (c == ' ' || c == '-' || c == '_') {
      flush();
    } else {
      token.push_back(c);
    }
  }
  flush();
  return CanonicalGpuType(kept);
}

}  // namespace gpuorch::domain
