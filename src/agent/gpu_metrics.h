// Live GPU figures of this node (utilization, memory in use) for the agent's heartbeats, read with
// `nvidia-smi --query-gpu=index,utilization.gpu,memory.used,memory.total
// --format=csv,noheader,nounits`. Thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "agent/agent_protocol.h"
#include "core/error.h"

namespace gpuorch::agent {

// Parses that query's output, one GPU per line. Fields nvidia-smi cannot read ("[N/A]",
// "[Not Supported]") count as 0. kInvalidArgument naming the line for anything else unparseable.
[[nodiscard]] core::Result<std::vector<GpuMetric>> ParseGpuMetricsCsv(std::string_view text);

// Runs `nvidia_smi` (a command name or path) with that query and parses its output. Blocks up to
// 5 s. kUnavailable when it cannot be run, fails, times out or prints something unparseable.
[[nodiscard]] core::Result<std::vector<GpuMetric>> QueryGpuMetrics(const std::string& nvidia_smi);

}  // namespace gpuorch::agent
