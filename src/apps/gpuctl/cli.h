// gpuctl's command line: parses arguments, runs one subcommand against the server, prints the
// result or one error line, and returns the process exit code (see errors.h for the table).
// main() gathers the environment and streams; tests call RunGpuctl with their own.
// Not thread-safe: uses the borrowed streams for the whole call.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "apps/gpuctl/http_client.h"
#include "core/clock.h"

namespace gpuorch::gpuctl {

inline constexpr char kDefaultServer[] = "http://127.0.0.1:8000";

struct CliDeps {
  std::optional<std::string> env_server;  // GPUORCH_SERVER; empty counts as unset
  std::optional<std::string> env_token;   // GPUORCH_TOKEN; empty counts as unset
  // Without GPUORCH_TOKEN, the token is read from GPUORCH_TOKEN_FILE, else from
  // $GPUORCH_DATA_DIR/admin.token, else from ./data/admin.token (what `gpuorch serve` writes on
  // its first start), when that file exists.
  std::optional<std::string> env_token_file;  // GPUORCH_TOKEN_FILE
  std::optional<std::string> env_data_dir;    // GPUORCH_DATA_DIR
  std::istream& in;
  std::ostream& out;
  std::ostream& err;
  const core::Clock& clock;
  HttpClient* http = nullptr;  // borrowed; null: a CurlHttpClient made for the call
};

// Runs `gpuctl` with `args` (args[0] is the program name) and returns the exit code.
int RunGpuctl(const std::vector<std::string>& args, const CliDeps& deps);

}  // namespace gpuorch::gpuctl
