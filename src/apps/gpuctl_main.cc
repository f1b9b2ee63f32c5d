// gpuctl, the user's command-line client for a gpuorch server. See `gpuctl --help`.
#include <iostream>
#include <string>
#include <vector>

#include "apps/gpuctl/cli.h"
#include "core/clock.h"
#include "core/env.h"

int main(int argc, char** argv) {
  using gpuorch::core::GetEnv;
  gpuorch::gpuctl::CliDeps deps{
      .env_server = GetEnv("GPUORCH_SERVER"),
      .env_token = GetEnv("GPUORCH_TOKEN"),
      .env_token_file = GetEnv("GPUORCH_TOKEN_FILE"),
      .env_data_dir = GetEnv("GPUORCH_DATA_DIR"),
      .in = std::cin,
      .out = std::cout,
      .err = std::cerr,
      .clock = gpuorch::core::RealClock::Instance(),
  };
  return gpuorch::gpuctl::RunGpuctl(std::vector<std::string>(argv, argv + argc), deps);
}
