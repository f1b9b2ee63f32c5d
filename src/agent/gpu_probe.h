// Finding the GPUs of this machine. Thread-safe.
//
// Order: an explicit declaration (GPUORCH_LOCAL_GPUS, e.g. "RTX4090:6") wins, because an operator who
// writes one means it (to expose a subset, or to model a cluster); otherwise `nvidia-smi` where it
// exists and answers; otherwise no GPUs.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "domain/gpu.h"

namespace gpuorch::agent {

class GpuProbe {
 public:
  virtual ~GpuProbe() = default;
  // The GPUs found, indexed 0..n-1 as CUDA sees them. Blocks (may run nvidia-smi, up to ~10 s).
  // An empty list is a valid answer. kUnavailable when discovery itself broke (nvidia-smi crashed,
  // timed out or printed something unparseable); kInvalidArgument when the declaration is malformed.
  [[nodiscard]] virtual core::Result<std::vector<domain::GpuDevice>> Discover() = 0;
  // Where the last Discover() took its answer from: "declared", "nvidia-smi" or "none".
  virtual std::string Source() const = 0;
};

// Parses "TYPE:COUNT[:MEMORY_GB]" items separated by commas: "RTX4090:6", "A100:2:80,T4:1".
// Memory defaults to the type's known size (domain::KnownGpuMemoryGb), else 0.
// kInvalidArgument naming the bad item. Blank text declares no GPUs.
[[nodiscard]] core::Result<std::vector<domain::GpuDevice>> ParseGpuDeclaration(
    std::string_view text);

// Parses the output of
// `nvidia-smi --query-gpu=index,name,memory.total,uuid --format=csv,noheader,nounits`.
[[nodiscard]] core::Result<std::vector<domain::GpuDevice>> ParseNvidiaSmiCsv(std::string_view text);

// A probe that uses `declaration` when set, else runs `nvidia_smi` (a command name or path).
std::unique_ptr<GpuProbe> MakeSystemGpuProbe(std::optional<std::string> declaration,
                                            std::string nvidia_smi = "nvidia-smi");

}  // namespace gpuorch::agent
