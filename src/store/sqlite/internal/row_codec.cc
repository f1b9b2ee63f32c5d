#include "store/sqlite/internal/row_codec.h"

namespace gpuorch::store::sqlite_internal {

std::optional<int64_t> ToMillis(const std::optional<core::SystemTime>& t) {
  if (!t) {
    return std::nullopt;
  }
  return core::ToUnixMillis(*t);
}

std::optional<core::SystemTime> FromMillis(const std::optional<int64_t>& ms) {
  if (!ms) {
    return std::nullopt;
  }
  return core::FromUnixMillis(*ms);
}

core::SystemTime TruncateToMillis(core::SystemTime t) {
  return core::FromUnixMillis(core::ToUnixMillis(t));
}

core::Result<std::string> EncodeJson(const nlohmann::json& value, const std::string& field) {
  try {
    return value.dump();
  } catch (const nlohmann::json::exception&) {
    return core::Fail(core::Code::kInvalidArgument, field + " is not valid UTF-8", field);
  }
}

core::Status CheckFinite(double value, const std::string& field) {
  if (!std::isfinite(value)) {
    return core::Fail(core::Code::kInvalidArgument, field + " is not a finite number", field);
  }
  return core::Ok();
}

std::string Placeholders(size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += i == 0 ? "?" : ", ?";
  }
  return out;
}

}  // namespace gpuorch::store::sqlite_internal
