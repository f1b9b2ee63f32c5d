// GPUs as the service sees them, and the one spelling of a GPU type. Pure; thread-safe.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace gpuorch::domain {

struct GpuDevice {
  int index = 0;          // the index CUDA_VISIBLE_DEVICES uses on its node
  std::string name;       // as reported, e.g. "NVIDIA GeForce RTX 4090"
  std::string type;       // canonical type, e.g. "RTX4090" (see CanonicalGpuType)
  int64_t memory_mb = 0;  // total memory of this GPU
  std::string uuid;       // empty when unknown (declared GPUs)

  bool operator==(const GpuDevice&) const = default;
};

// The canonical spelling of a GPU type: "RTX4090", "rtx_4090", "NVIDIA GeForce RTX 4090" and
// "GeForce RTX 4090" are all "RTX4090"; "NVIDIA H200" is "H200". Empty and "any" give "".
std::string CanonicalGpuType(std::string_view text);

// The canonical type of a provider's GPU name, which may carry vendor, form factor and memory:
// "NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3", "A100 PCIE" and "Tesla V100" give "A100",
// "H100", "A100" and "V100". The memory is the offer's own figure, not part of the type.
std::string CanonicalGpuModel(std::string_view provider_name);

// GPU memory in GB for well-known types ("RTX4090" → 24), or 0 when unknown.
double KnownGpuMemoryGb(std::string_view canonical_type);

// The canonical types KnownGpuMemoryGb knows, the GPU types a job may name without a node of that
// type being registered yet.
const std::set<std::string>& KnownGpuTypes();

}  // namespace gpuorch::domain
