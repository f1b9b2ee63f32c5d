// Human-readable renderings of API objects for gpuctl's table output. Inputs are the JSON the
// server answered (docs/api.md); missing or null fields print as "-", so an older or newer server
// never makes a rendering fail. `now` comes from the caller's clock for the AGE column.
// Thread-safe: pure functions.
#pragma once

#include <chrono>
#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"

namespace gpuorch::gpuctl {

inline constexpr size_t kDefaultMessageWidth = 60;

// A JSON value as one table cell: "-" for null or missing, strings as they are, numbers and
// booleans as JSON writes them, arrays of scalars joined with ",", objects as compact JSON.
std::string CellText(const nlohmann::json& value);

// `object[key]` as CellText, "-" when `object` is not an object or lacks `key`.
std::string Field(const nlohmann::json& object, std::string_view key);

// Parses RFC 3339 timestamps such as "2026-11-28T19:43:01.123Z" or "...+02:00"; nullopt if bad.
std::optional<core::SystemTime> ParseRfc3339(std::string_view text);

// A short age: "42s", "17m", "5h", "3d" (negative ages, from clock skew, show as "0s").
std::string FormatAge(std::chrono::seconds age);

// argv words joined for display, each quoted for sh when it needs it: sh -c 'echo $X'.
std::string ShellJoin(const nlohmann::json& argv);

// The `gpuctl list` table: JOB ID, NAME, TYPE, STATUS, GPUS, PRIORITY, AGE, MESSAGE, with
// messages cut to `message_width` code points. `jobs` is the answer's "jobs" array.
std::string FormatJobTable(const nlohmann::json& jobs, core::SystemTime now,
                           size_t message_width = kDefaultMessageWidth);

// The `gpuctl get` view: one "Key:  value" line per field, then the transitions table when the
// job has any.
std::string FormatJobDetail(const nlohmann::json& job, core::SystemTime now);

// The `gpuctl templates` table: NAME, JOB TYPE, GPUS, TITLE.
std::string FormatTemplateTable(const nlohmann::json& templates);

// The `gpuctl instances` table: ID, PROVIDER, STATUS, GPU TYPE, GPUS, FREE.
std::string FormatInstanceTable(const nlohmann::json& instances);

}  // namespace gpuorch::gpuctl
