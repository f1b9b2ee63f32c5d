// RunPod behind the Provider interface, over RunPod's GraphQL API (POST {"query","variables"} with
// `Authorization: Bearer <key>`; see shared/providers/runpod.md). REST v1 is retired and REST v2
// has no spot pods, so GraphQL is the one protocol that covers everything we need.
//
// Offers: one `gpuTypes` query; each GPU type's lowest per-GPU prices (on-demand
// `uninterruptablePrice`, spot `minimumBidPrice`) and `stockStatus` expand into offers for 1, 2, 4
// and 8 GPUs up to the type's `maxGpuCount`: offer_id "<gpuTypeId>|<count>", prices × count.
//
// Ownership: a pod is ours when its name is "gpuorch-<deployment id>-<instance id>"; its env also
// carries GPUORCH_DEPLOYMENT_ID and GPUORCH_INSTANCE_ID, and when present they must agree. Create
// refuses (kBadRequest, before any call) a request without tags.instance_id or whose deployment id
// is not options.deployment_id, since ListOurs() could never find what it made.
//
// Create is not idempotent at RunPod (no client token): it is sent once and never retried after the
// request may have reached RunPod; the reconciler finds a pod created by a lost answer by its name.
//
// Spot is best effort: spot pods are rented with `podRentInterruptable` (bidPerGpu), which RunPod
// removed from its public docs in 2026 while keeping it in the schema. If RunPod refuses it, the
// refusal comes back as a GraphQL error and maps to kBadRequest (next offer). A spot pod that
// RunPod stopped (desiredStatus EXITED, which we never ask for ourselves) reads as kInterrupted.
//
// Thread-safe (no mutable state besides the shared, thread-safe HttpClient).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "core/clock.h"
#include "providers/http_client.h"
#include "providers/provider.h"

namespace gpuorch::providers {

struct RunPodOptions {
  std::string api_key;  // empty: the provider is not configured
  std::string api_url = "https://api.runpod.io/graphql";
  std::string deployment_id;
  std::string default_image = "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04";
  std::string cloud_type = "ALL";                    // "ALL", "SECURE" or "COMMUNITY"
  std::chrono::milliseconds request_timeout{30000};  // per HTTP attempt
};

// `http` is shared with other users; `clock` must outlive the provider.
std::unique_ptr<Provider> MakeRunPodProvider(RunPodOptions options,
                                             std::shared_ptr<HttpClient> http,
                                             const core::Clock& clock);

}  // namespace gpuorch::providers
