// A wire-level fake of RunPod's GraphQL API (shared/providers/runpod.md), served over HTTP on
// loopback: `gpuTypes` (offers), `podFindAndDeployOnDemand` / `podRentInterruptable` (create, input
// in `variables.input`), `pod(input:{podId})` (describe), `myself { pods }` (list),
// `podTerminate(input:{podId})` and `myself { id }`. Business failures answer HTTP 200 with
// `errors[0].message` in RunPod's words; a wrong key answers 401; an absent key is accepted for
// `gpuTypes` only (RunPod's catalog is public).
//
// A created pod shows desiredStatus RUNNING with runtime null on the create answer and the first
// look (describe or list), and with a runtime after that. An interrupted pod shows EXITED, runtime
// null. A terminated pod is gone: `pod` answers null and `podTerminate` "pod not found to
// terminate".
//
// Fault operations: "offers", "create", "describe", "list", "terminate", "health".
// Thread-safe.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "api/http_server.h"
#include "core/clock.h"
#include "core/error.h"
#include "fakes/fake_common.h"

namespace gpuorch::fakes {

// One GPU type the fake rents out, priced per GPU as RunPod prices it.
struct FakeRunPodGpuType {
  std::string id;            // RunPod's gpuTypeId, e.g. "NVIDIA GeForce RTX 4090"
  std::string display_name;  // e.g. "RTX 4090"
  std::string gpu_type;      // canonical, e.g. "RTX4090": ledger, SetCapacity, GPUORCH_LOCAL_GPUS
  int memory_gb = 24;
  int max_gpu_count = 8;
  double price_per_gpu = 0;               // on-demand USD/h (lowestPrice.uninterruptablePrice)
  std::optional<double> min_bid_per_gpu;  // spot USD/h (lowestPrice.minimumBidPrice); none: no spot
  int vcpus_per_gpu = 8;
  int ram_gb_per_gpu = 32;
};

// A pod as the fake holds it.
struct FakeRunPodPod {
  std::string id;
  std::string name;
  std::string image;
  std::string gpu_type_id;
  int gpu_count = 0;
  bool spot = false;
  double bid_per_gpu = 0;
  double cost_per_hr = 0;
  std::string cloud_type;
  int container_disk_gb = 0;
  std::map<std::string, std::string> env;
  std::string desired_status = "RUNNING";  // RUNNING; EXITED once interrupted
  int looks = 0;                           // describes/lists that showed it; runtime from the 2nd
};

class FakeRunPod final : public FakeProviderServer {
 public:
  // RTX 4090, RTX 3090, RTX A6000, L40S, A100 80GB (PCIe and SXM), H100 (SXM and PCIe), H200.
  static std::vector<FakeRunPodGpuType> DefaultCatalog();
  // Serves on 127.0.0.1 at an ephemeral port. `clock` stamps the ledger and must outlive the fake.
  [[nodiscard]] static core::Result<std::unique_ptr<FakeRunPod>> Start(
      FakeProviderOptions options, std::vector<FakeRunPodGpuType> catalog = DefaultCatalog(),
      const core::Clock& clock = core::RealClock::Instance());
  ~FakeRunPod() override;

  std::string name() const override { return "runpod"; }
  std::string url() const override;  // the GraphQL endpoint, "http://127.0.0.1:PORT/graphql"
  FaultInjector& faults() override { return faults_; }
  std::vector<LedgerEntry> Ledger() const override;
  bool Interrupt(const std::string& provider_instance_id) override;
  void SetCapacity(const std::string& gpu_type, int available) override;
  void SetStartAgents(bool start) override;
  void Stop() override;

  // The pod as held now; nullopt when unknown or terminated.
  std::optional<FakeRunPodPod> Pod(const std::string& pod_id) const;
  // How many requests of `operation` arrived (faulted and refused ones included).
  int Requests(const std::string& operation) const;

 private:
  struct Call;  // one parsed GraphQL request
  FakeRunPod(FakeProviderOptions options, std::vector<FakeRunPodGpuType> catalog,
             const core::Clock& clock);
  void Handle(api::HttpRequest request, api::Responder respond);
  api::HttpResponse Dispatch(const Call& call);
  api::HttpResponse CreatePod(const Call& call);
  api::HttpResponse DescribePod(const Call& call);
  api::HttpResponse ListPods();
  api::HttpResponse TerminatePod(const Call& call);
  api::HttpResponse GpuTypes();
  // Answers `fault`; a timeout answers late from a thread of its own.
  void Inject(const Fault& fault, const std::string& field, api::Responder respond);
  const FakeRunPodGpuType* FindType(const std::string& id) const;  // REQUIRES: mu_ held

  const FakeProviderOptions options_;
  const std::vector<FakeRunPodGpuType> catalog_;
  const core::Clock& clock_;
  FaultInjector faults_;
  std::unique_ptr<api::HttpServer> server_;
  LateAnswers late_answers_;

  mutable std::mutex mu_;
  bool start_agents_ = true;                   // GUARDED_BY(mu_)
  std::map<std::string, FakeRunPodPod> pods_;  // GUARDED_BY(mu_)
  std::vector<LedgerEntry> ledger_;            // GUARDED_BY(mu_)
  std::map<std::string, int> capacity_;        // GUARDED_BY(mu_)
  std::map<std::string, int> requests_;        // GUARDED_BY(mu_)
  uint64_t next_id_ = 0;                       // GUARDED_BY(mu_)
};

}  // namespace gpuorch::fakes
