// The codec pieces every table of the SQLite store shares: times as Unix milliseconds (NULL when
// unset), lists and maps as JSON text, and the SQL text of parameter lists. Internal to
// store/sqlite. Pure functions; thread-safe.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/error.h"

namespace gpuorch::store::sqlite_internal {

std::optional<int64_t> ToMillis(const std::optional<core::SystemTime>& t);
std::optional<core::SystemTime> FromMillis(const std::optional<int64_t>& ms);

// `t` as a read of a column returns it: whole milliseconds.
core::SystemTime TruncateToMillis(core::SystemTime t);

// `value` as JSON text. kInvalidArgument (naming `field`) when it holds a string that is not valid
// UTF-8, which nlohmann::json refuses to dump: bad input, not a store failure.
[[nodiscard]] core::Result<std::string> EncodeJson(const nlohmann::json& value,
                                                   const std::string& field);

// kInvalidArgument (naming `field`) unless `value` is finite: SQLite stores NaN as NULL and JSON
// has no infinity, so neither would read back.
[[nodiscard]] core::Status CheckFinite(double value, const std::string& field);

// Parses `text` (the JSON of `column`) and converts it with `decode`; kInternal when the column
// does not hold what `decode` expects.
template <typename T, typename Decode>
core::Result<T> DecodeJsonWith(const std::string& text, std::string_view column, Decode decode) {
  try {
    return decode(nlohmann::json::parse(text));
  } catch (const nlohmann::json::exception& e) {
    return core::Fail(core::Code::kInternal,
                      "corrupt column " + std::string(column) + ": " + e.what());
  }
}

template <typename T>
core::Result<T> DecodeJson(const std::string& text, std::string_view column) {
  return DecodeJsonWith<T>(text, column, [](const nlohmann::json& j) { return j.get<T>(); });
}

// "?, ?, ?" for `n` parameters.
std::string Placeholders(size_t n);

// `values` without repeats, in first-seen order, so that SQL built from them (and the statement
// cache) stays bounded.
template <typename T>
std::vector<T> Distinct(const std::vector<T>& values) {
  std::vector<T> out;
  for (const T& value : values) {
    if (std::find(out.begin(), out.end(), value) == out.end()) {
      out.push_back(value);
    }
  }
  return out;
}

}  // namespace gpuorch::store::sqlite_internal
