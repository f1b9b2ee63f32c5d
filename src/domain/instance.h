// Cloud capacity as the service sees it: offers (what a provider would rent us, at what price) and
// instances (what we rented), with the one state machine every instance moves along. Pure values and
// functions, no I/O; thread-safe as values are.
//
// Instance state machine (each arrow a stored, timestamped change):
//
//   requested ──► provisioning ──► ready ──► terminating ──► terminated
//       │              │             │            ▲
//       │              │             └► lost ─────┘ (vanished at the provider; jobs requeued)
//       │              ├► failed (provider refused, or the agent never registered: boot timeout)
//       └► failed      └► terminating (boot timeout, idle, deleted by a user, not wanted)
//       └► terminating (we do not know whether the provider call happened: find it and end it)
//
// requested: the row is committed, the provider has not (knowingly) been called yet.
// provisioning: the provider accepted the create; the agent has not registered yet.
// ready: the instance's agent registered; it takes jobs.
// terminating: we asked (or will ask) the provider to terminate it; billing runs until confirmed.
// terminated, failed: final. lost: the provider no longer knows it; final for billing, terminal.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"

namespace gpuorch::domain {

enum class InstanceState { kRequested, kProvisioning, kReady, kTerminating, kTerminated, kFailed, kLost };

std::string_view ToString(InstanceState state);
std::optional<InstanceState> ParseInstanceState(std::string_view text);
bool IsTerminal(InstanceState state);  // terminated, failed, lost
bool CanTransition(InstanceState from, InstanceState to);
// True while the provider may be billing us for it (requested, provisioning, ready, terminating).
bool MayBeBilled(InstanceState state);

// Something a provider would rent us now. Prices are USD per hour for the whole offer.
struct Offer {
  std::string provider;        // "runpod", "vastai", "aws"
  std::string offer_id;        // what Create needs: RunPod "gpuTypeId|count", Vast ask id, EC2 type
  std::string instance_type;   // human label, e.g. "p4d.24xlarge", "1x RTX 4090"
  std::string gpu_type;        // canonical (CanonicalGpuType)
  int gpu_count = 0;
  double gpu_memory_gb = 0;    // per GPU
  double on_demand_price = 0;  // 0: not offered on demand
  std::optional<double> spot_price;  // nullopt: no spot; the current spot/bid price otherwise
  std::string region;
  double reliability = 1.0;    // 0..1, the provider's own figure where it has one
  int available = 1;           // how many can be created now; 0: out of stock
  int cpu_count = 0;
  double ram_gb = 0;

  bool operator==(const Offer&) const = default;
};

struct Instance {
  std::string id;                    // ours, "inst-..."; the provider's tag/label/name carries it
  std::string provider;
  std::string provider_instance_id;  // empty until the provider answered the create
  InstanceState state = InstanceState::kRequested;
  std::string status_message;
  Offer offer;                       // what was rented
  bool spot = false;
  double price_per_hour = 0;         // billed rate (spot or on-demand), USD/h
  std::string owner;                 // user whose job caused it; empty for warm-pool instances
  std::string for_job_id;            // the job it was created for; empty for warm-pool instances
  std::string node_id;               // the node its agent registered as; empty before
  std::string join_token_hash;       // SHA-256 hex of the one-time join token; cleared once used
  core::SystemTime created_at{};
  core::SystemTime updated_at{};
  std::optional<core::SystemTime> billing_started_at;  // the provider accepted the create
  std::optional<core::SystemTime> ready_at;
  std::optional<core::SystemTime> billing_ended_at;    // terminated/lost/failed confirmed
  std::optional<core::SystemTime> last_busy_at;        // last time it ran a job (idle reaper)
  int64_t idle_timeout_seconds = 300;
  int64_t seq = 0;

  bool operator==(const Instance&) const = default;
};

// Cost so far of an instance at `now`: price × billed seconds (per second, from billing_started_at
// to billing_ended_at or now).
double InstanceCostUsd(const Instance& instance, core::SystemTime now);

}  // namespace gpuorch::domain
