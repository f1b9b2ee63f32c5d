// Lenient readers of provider JSON answers: a missing field or one of another type reads as empty
// or zero, so that the adapters decide what is required. Internal to src/providers/.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace gpuorch::providers::internal {

std::string Lower(std::string_view text);
bool ContainsAny(const std::string& haystack, std::initializer_list<std::string_view> needles);
// object[key] when it is a string, else "".
std::string Str(const nlohmann::json& object, const char* key);
// object[key] when it is a number, else 0.
double Num(const nlohmann::json& object, const char* key);

}  // namespace gpuorch::providers::internal
