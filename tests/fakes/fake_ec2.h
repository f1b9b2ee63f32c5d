// A fake AWS EC2 endpoint speaking the Query API (version 2016-11-15) over real HTTP on loopback.
// It verifies each request's SigV4 signature against its key pair (a wrong key or signature gets
// EC2's 401 AuthFailure), and implements RunInstances (ClientToken idempotency, tags, user data,
// spot market options, per-GPU-type stock), DescribeInstances (instance ids, tag/state/type/id
// filters, MaxResults/NextToken), TerminateInstances, DescribeInstanceTypeOfferings,
// DescribeSpotPriceHistory and DescribeRegions. A created instance is "pending" in the
// RunInstances answer and "running" afterwards; with start_agents it runs a real `gpuorch agent`
// whose env comes from the user-data script's `export NAME='value'` lines.
//
// Fault operations: "offers" (the two catalog calls), "create", "describe" (DescribeInstances with
// instance ids), "list" (DescribeInstances without), "terminate", "health" (DescribeRegions).
//
// Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/error.h"
#include "fakes/fake_common.h"

namespace gpuorch::fakes {

struct FakeEc2InstanceType {
  std::string instance_type;  // "g5.xlarge"
  std::string gpu_type;       // canonical, "A10G"
  int gpu_count = 1;
  int gpu_memory_gb = 24;  // per GPU
  double on_demand_price = 1.0;
  std::optional<double> spot_price;  // nullopt: no spot market for it
};

struct FakeEc2Options {
  FakeProviderOptions base;  // base.api_key: the access key id; base.secret: the secret key
  std::string region = "us-east-1";
  // Empty: the adapter's built-in table (providers::Ec2GpuInstanceTypes) with spot at 40% of
  // the on-demand price.
  std::vector<FakeEc2InstanceType> catalog;
  int page_size = 1000;                // the most items of one DescribeInstances page
  const core::Clock* clock = nullptr;  // ledger times; null: the real clock
};

// What the fake knows about one instance, for tests to inspect.
struct FakeEc2Instance {
  std::string instance_id;
  std::string instance_type;
  std::string state;         // pending, running, terminated
  std::string state_reason;  // e.g. "Server.SpotInstanceTermination"; "" when none
  std::string client_token;
  std::string image_id;
  std::string user_data;  // decoded from base64
  std::map<std::string, std::string> tags;
  std::map<std::string, std::string> params;  // the RunInstances parameters as received
  bool spot = false;
};

class FakeEc2 final : public FakeProviderServer {
 public:
  // Listens on 127.0.0.1 (any free port). kUnavailable when it cannot bind.
  [[nodiscard]] static core::Result<std::unique_ptr<FakeEc2>> Start(FakeEc2Options options);
  ~FakeEc2() override;

  std::string name() const override { return "aws"; }
  std::string url() const override;
  FaultInjector& faults() override;
  std::vector<LedgerEntry> Ledger() const override;
  bool Interrupt(const std::string& provider_instance_id) override;
  void SetCapacity(const std::string& gpu_type, int available) override;
  void SetStartAgents(bool start) override;
  void Stop() override;

  // The instance as the fake holds it; nullopt when unknown.
  std::optional<FakeEc2Instance> Instance(const std::string& instance_id) const;
  // How many requests named `action` ("" for all) reached the fake, whatever the answer (auth
  // failures and injected faults included).
  int RequestCount(const std::string& action = "") const;

  class Impl;

 private:
  explicit FakeEc2(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gpuorch::fakes
