// Who is calling: the user an access token or API token stands for, as the API layer sees them.
// A plain value; thread-safe to copy.
#pragma once

#include <string>

namespace gpuorch::security {

inline constexpr const char* kAdminRole = "admin";
inline constexpr const char* kUserRole = "user";

struct Principal {
  std::string user_id;
  std::string name;  // owner of the jobs and instances this caller creates
  std::string role = kUserRole;

  bool IsAdmin() const { return role == kAdminRole; }
  bool operator==(const Principal&) const = default;
};

}  // namespace gpuorch::security
