// Logging setup and log-safe formatting. Logging itself goes through spdlog in .cc files; this header
// only configures it and keeps untrusted text from forging log lines. Thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace gpuorch::core {

// Sets the global log level ("trace".."critical", "off") and pattern. Unknown levels mean "info".
void InitLogging(std::string_view level);

// `text` with control characters (CR, LF, NUL, ESC, ...) escaped as \n, \r, \xNN and cut to `max_len`
// bytes, so user-supplied strings cannot inject or forge log lines.
std::string SanitizeForLog(std::string_view text, size_t max_len = 200);

}  // namespace gpuorch::core
