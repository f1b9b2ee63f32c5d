// Vast.ai behind the Provider interface, over Vast's REST API v0 (see shared/providers/vastai.md),
// authenticated with `Authorization: Bearer <key>` (the key never goes into a URL).
//
// Offers: `POST /bundles/` (the search current clients send) for rentable, verified, unrented
// on-demand asks; offer_id is the ask id, on_demand_price its `dph_total`, spot_price its `min_bid`
// (present: the ask can be rented as an interruptible bid). An ask is one machine: available is 1.
//
// Ownership: an instance is ours when its label is "gpuorch:<deployment id>:<instance id>"; its env
// also carries GPUORCH_DEPLOYMENT_ID and GPUORCH_INSTANCE_ID. Create refuses (kBadRequest, before
// any call) a request without tags.instance_id, with a ':' in it, or whose deployment id is not
// options.deployment_id, since ListOurs() could never find what it made.
//
// Create (`PUT /asks/{id}/`) is not idempotent at Vast: it is sent once and never retried after the
// request may have reached Vast; the reconciler finds an instance created by a lost answer by its
// label. Spot = a bid (`price`, USD/h for the machine): max_price_per_hour, else the offer's
// min_bid. When Vast refuses a bid but still reports the contract it made (vastai.md §3), that
// instance is destroyed before the error is returned.
//
// Status: a bid instance that Vast stopped (outbid; we never stop instances ourselves, vastai.md
// §6) reads as kInterrupted; an on-demand one as kStopped.
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

struct VastAiOptions {
  std::string api_key;  // empty: the provider is not configured
  std::string api_url = "https://console.vast.ai/api/v0";
  std::string deployment_id;
  std::string default_image = "pytorch/pytorch:2.4.0-cuda12.4-cudnn9-runtime";
  std::chrono::milliseconds request_timeout{30000};  // per HTTP attempt
};

// `http` is shared with other users; `clock` must outlive the provider.
std::unique_ptr<Provider> MakeVastAiProvider(VastAiOptions options,
                                             std::shared_ptr<HttpClient> http,
                                             const core::Clock& clock);

}  // namespace gpuorch::providers
