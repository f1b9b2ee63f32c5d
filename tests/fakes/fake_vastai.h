// A wire-level fake of Vast.ai's REST API v0 (shared/providers/vastai.md), served over HTTP on
// loopback under /api/v0: `POST /bundles/` (offer search with the documented query object:
// field filters eq/neq/gt/gte/lt/lte/in/notin, order, limit), `PUT /asks/{id}/` (create),
// `GET /instances/` (list), `GET /instances/{id}/` (describe, {"instances": object-or-null}) and
// `DELETE /instances/{id}/` (destroy; unknown → 404 "not_found"). Keys come as
// `Authorization: Bearer` or `?api_key=`; a wrong key answers 401 "auth_error"; the search also
// works without a key.
//
// An ask of a GPU type whose capacity is 0 is shown as not rentable and refused on create with
// Vast's 404 "no_such_ask ... is not available". A new instance shows actual_status "loading" on
// the first look (describe or list) and "running" after that. An interrupted (outbid) instance
// shows actual_status, intended_status, cur_state and next_state all "stopped"; a destroyed one is
// gone.
//
// Fault operations: "offers", "create", "describe", "list", "terminate".
// Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
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

// One ask (a machine's offer) the fake rents out.
struct FakeVastAsk {
  int64_t id = 0;
  std::string gpu_name;  // Vast's spelling, e.g. "RTX 4090", "A100 SXM4"
  std::string gpu_type;  // canonical, e.g. "RTX4090": ledger, SetCapacity, GPUORCH_LOCAL_GPUS
  int num_gpus = 1;
  int gpu_ram_mb = 24564;         // per GPU
  double dph_total = 0;           // on-demand USD/h for the machine
  std::optional<double> min_bid;  // interruptible minimum bid USD/h; none: no bids
  double reliability = 0.99;
  std::string geolocation = "Texas, US";
  int cpu_cores = 16;
  int cpu_ram_mb = 64000;
  bool verified = true;
};

// An instance as the fake holds it.
struct FakeVastInstance {
  int64_t id = 0;
  int64_t ask_id = 0;
  std::string label;
  std::string image;
  std::string onstart;
  std::string runtype;
  std::map<std::string, std::string> env;
  bool is_bid = false;
  double price = 0;  // the bid, for is_bid
  double dph_total = 0;
  double disk_gb = 0;
  std::string actual_status = "loading";  // "running" after the first look; "stopped" when outbid
  std::string intended_status = "running";
  std::string cur_state = "running";
};

class FakeVastAi final : public FakeProviderServer {
 public:
  // RTX 4090 (1x, 4x), RTX 3090, RTX A6000, L40S, A100 PCIE, A100 SXM4 (8x), H100 SXM, H200.
  static std::vector<FakeVastAsk> DefaultCatalog();
  // Serves on 127.0.0.1 at an ephemeral port. `clock` stamps the ledger and must outlive the fake.
  [[nodiscard]] static core::Result<std::unique_ptr<FakeVastAi>> Start(
      FakeProviderOptions options, std::vector<FakeVastAsk> catalog = DefaultCatalog(),
      const core::Clock& clock = core::RealClock::Instance());
  ~FakeVastAi() override;

  std::string name() const override { return "vastai"; }
  std::string url() const override;  // the API base, "http://127.0.0.1:PORT/api/v0"
  FaultInjector& faults() override { return faults_; }
  std::vector<LedgerEntry> Ledger() const override;
  bool Interrupt(const std::string& provider_instance_id) override;
  void SetCapacity(const std::string& gpu_type, int available) override;
  void SetStartAgents(bool start) override;
  void Stop() override;

  // The instance as held now; nullopt when unknown or destroyed.
  std::optional<FakeVastInstance> Instance(const std::string& instance_id) const;
  // How many requests of `operation` arrived (faulted and refused ones included).
  int Requests(const std::string& operation) const;

 private:
  FakeVastAi(FakeProviderOptions options, std::vector<FakeVastAsk> catalog,
             const core::Clock& clock);
  void Handle(api::HttpRequest request, api::Responder respond);
  api::HttpResponse Search(const std::string& body);
  api::HttpResponse CreateInstance(int64_t ask_id, const std::string& body);
  api::HttpResponse ShowInstance(int64_t id);
  api::HttpResponse ListInstances();
  api::HttpResponse DestroyInstance(int64_t id);
  void Inject(const Fault& fault, const std::string& operation, api::Responder respond);
  bool HasCapacity(const std::string& gpu_type) const;  // REQUIRES: mu_ held

  const FakeProviderOptions options_;
  const std::vector<FakeVastAsk> catalog_;
  const core::Clock& clock_;
  FaultInjector faults_;
  std::unique_ptr<api::HttpServer> server_;
  LateAnswers late_answers_;

  mutable std::mutex mu_;
  bool start_agents_ = true;                       // GUARDED_BY(mu_)
  std::map<int64_t, FakeVastInstance> instances_;  // GUARDED_BY(mu_)
  std::vector<LedgerEntry> ledger_;                // GUARDED_BY(mu_)
  std::map<std::string, int> capacity_;            // GUARDED_BY(mu_)
  std::map<std::string, int> requests_;            // GUARDED_BY(mu_)
  int64_t next_id_ = 0;                            // GUARDED_BY(mu_)
};

}  // namespace gpuorch::fakes
