// Job specs for `gpuctl submit`: loading a spec file (JSON or YAML) into the JSON body of
// `POST /api/v1/jobs/submit`, and applying command-line overrides on top of it.
//
// YAML follows the YAML 1.2 core schema, so a YAML spec gives exactly the JSON of its JSON
// equivalent: plain `16` is a number, `true` a boolean, `~`/`null`/empty a null, quoted scalars
// are strings, and `yes`/`no`/`on`/`off` stay strings. Values that JSON cannot hold (`.inf`,
// `.nan`, non-scalar map keys) are usage errors that name the line and column.
// Thread-safe: pure functions.
#pragma once

#include <cstdint>
#include <istream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace gpuorch::gpuctl {

enum class SpecFormat {
  kAuto,  // by file extension (.json, .yaml, .yml), else JSON when the text starts with '{'
  kJson,
  kYaml,
};

// Parses `text` as a job spec. `source` names it in error messages ("spec.yaml", "<stdin>").
// Returns a JSON object. Fails with a usage error (kInvalidArgument, reason "usage_error") that
// says where the text is malformed, or that the top level is not a mapping.
[[nodiscard]] core::Result<nlohmann::json> ParseSpec(std::string_view text, SpecFormat format,
                                                     std::string_view source);

// Reads the spec file at `path` ("-" reads `stdin_stream`) and parses it as ParseSpec does, the
// format chosen by extension. Fails with a usage error when the file cannot be read or parsed.
[[nodiscard]] core::Result<nlohmann::json> LoadSpecFile(const std::string& path,
                                                        std::istream& stdin_stream);

// Parses repeated `--env KEY=VALUE` flags. The value may be empty or contain '='; the key may not
// be empty. Later assignments of a key win. Fails with a usage error naming the bad flag.
[[nodiscard]] core::Result<std::map<std::string, std::string>> ParseEnvAssignments(
    const std::vector<std::string>& assignments);

// Command-line fields of `gpuctl submit`; unset ones leave the spec as it is.
struct SubmitOverrides {
  std::optional<std::string> name;
  std::optional<std::string> job_type;
  std::optional<std::string> template_name;
  std::optional<int64_t> priority;
  std::optional<int64_t> timeout_seconds;
  std::optional<int64_t> max_retries;
  std::optional<std::string> gpu_type;
  std::optional<int64_t> gpu_count;
  std::optional<double> memory_gb;  // sent as an integer when it is whole
  std::optional<std::string> docker_image;
  std::vector<std::string> env;               // raw "KEY=VALUE" flags, merged into config.env
  std::optional<std::string> command_string;  // --command "shell string"
  std::vector<std::string> command_argv;      // the words after "--"
};

// Builds the submit body: `base` (a spec loaded from -f, or null for none) with `overrides`
// applied; top-level fields are replaced, config fields are replaced, config.env is merged key by
// key. Without a base the body always has a `config` object. Fails with a usage error when there
// is nothing to submit (no base, template or command), when both --command and an argv are given,
// for a bad --env flag, or when the base's `config`/`config.env` is not an object.
[[nodiscard]] core::Result<nlohmann::json> BuildSubmitBody(const nlohmann::json& base,
                                                           const SubmitOverrides& overrides);

}  // namespace gpuorch::gpuctl
