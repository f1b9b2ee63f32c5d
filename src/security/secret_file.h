// Files that hold secrets (admin.token, jwt.key, master.key): written atomically and readable by the
// owner only. Thread-safe (no shared state).
#pragma once

#include <string>
#include <string_view>

#include "core/error.h"

namespace gpuorch::security {

// Writes `contents` to `path` with mode 0600: a temp file beside it, fsync, rename over `path`, fsync
// of the directory. kUnavailable when any step fails (the temp file is removed).
[[nodiscard]] core::Status WriteSecretFile(const std::string& path, std::string_view contents);

// Reads a secret file. kNotFound when absent; kFailedPrecondition when group or others may read it
// (the message says to chmod 600); kUnavailable on read errors.
[[nodiscard]] core::Result<std::string> ReadSecretFile(const std::string& path);

}  // namespace gpuorch::security
