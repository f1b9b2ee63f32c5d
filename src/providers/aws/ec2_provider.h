// The AWS EC2 adapter: GPU instances through the EC2 Query API (version 2016-11-15, form-encoded
// POST, SigV4-signed), see shared/providers/aws-ec2.md.
//
// Offers are the built-in GPU instance types (Ec2GpuInstanceTypes) that
// DescribeInstanceTypeOfferings says the region offers, each with its on-demand price and the
// lowest current spot price of the region's zones (DescribeSpotPriceHistory); offer_id is the
// instance type. Create is RunInstances with ClientToken = our instance id (so a retried create
// finds the first one), our tags (gpuorch:deployment, gpuorch:instance-id, Name) and a user-data
// script that exports the request's env and starts `gpuorch agent`. ListOurs filters
// DescribeInstances on the deployment tag.
//
// Thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "providers/http_client.h"
#include "providers/provider.h"

namespace gpuorch::providers {

struct AwsOptions {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // temporary credentials only
  std::string region = "us-east-1";
  std::string endpoint;  // empty: https://ec2.<region>.amazonaws.com
  // This installation's id: ListOurs() filters on it (and fails without it); Create() tags with
  // it when the request carries none.
  std::string deployment_id;
  std::string ami_id;             // used when a create request names no image
  std::string subnet_id;          // optional
  std::string security_group_id;  // optional
  std::string key_name;           // optional SSH key pair
  std::chrono::milliseconds request_timeout{15000};  // per attempt of each API call
};

// One GPU instance type of the built-in catalog. Prices are us-east-1 Linux on-demand, USD/h; other
// regions use them as an estimate.
struct Ec2InstanceType {
  std::string instance_type;  // "g5.xlarge"
  std::string gpu_type;       // canonical, "A10G"
  int gpu_count = 0;
  double gpu_memory_gb = 0;  // per GPU
  int vcpus = 0;
  double ram_gb = 0;
  double on_demand_price = 0;
};

// The built-in catalog (aws-ec2.md section 8, the rows with a known price).
const std::vector<Ec2InstanceType>& Ec2GpuInstanceTypes();

// The user-data script Create sends (before base64): `#!/bin/bash`, one `export NAME='value'` line
// per env entry (single quotes escaped as '\''), then `exec gpuorch agent`. kInvalidArgument when
// an env name is not a shell identifier.
[[nodiscard]] core::Result<std::string> Ec2UserDataScript(
    const std::map<std::string, std::string>& env);

// Never fails; an adapter without keys reports Configured() false and makes no calls (each call
// answers kAuth). `http` is shared with other users; `clock` must outlive the provider.
std::unique_ptr<Provider> MakeEc2Provider(AwsOptions options, std::shared_ptr<HttpClient> http,
                                          const core::Clock& clock);

}  // namespace gpuorch::providers
