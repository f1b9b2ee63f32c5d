// fake_cloud: the three wire-level fake providers (RunPod, Vast.ai, EC2) in one process, for the
// integration tests that drive the real `gpuorch serve` against them, plus a small control API:
//
//   GET  /ledger                      {"runpod":[entry...],"vastai":[...],"aws":[...]}
//   POST /faults    {"provider","kind","operation","status","retry_after_seconds","delay_ms","times"}
//   POST /clear     {"provider"}      drops queued faults
//   POST /interrupt {"provider","provider_instance_id"}   spot interruption
//   POST /capacity  {"provider","gpu_type","available"}
//   POST /agents    {"provider","start":bool}             whether creates boot real agents
//
// Prints one line "fake_cloud: runpod=URL vastai=URL aws=URL control=URL" once serving; stops (and
// kills every agent it started) on SIGTERM or SIGINT.
//
// --catalog test: a small catalog where one A100 costs $1.10/h at Vast.ai (spot bid $0.60),
// $1.64/h at RunPod and only 8-GPU machines exist at AWS, so the cheapest choice is known.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <map>
#include <memory>

#include "api/http_server.h"
#include "fakes/fake_ec2.h"
#include "fakes/fake_runpod.h"
#include "fakes/fake_vastai.h"

namespace {

using gpuorch::fakes::Fault;
using gpuorch::fakes::FaultKind;
using gpuorch::fakes::FakeProviderServer;
using nlohmann::json;

json LedgerJson(const FakeProviderServer& fake) {
  json list = json::array();
  const auto now = gpuorch::core::RealClock::Instance().Now();
  for (const auto& e : fake.Ledger()) {
    list.push_back({{"provider_instance_id", e.provider_instance_id},
                    {"instance_id", e.our_instance_id},
                    {"deployment_id", e.deployment_id},
                    {"offer_id", e.offer_id},
                    {"gpu_type", e.gpu_type},
                    {"gpu_count", e.gpu_count},
                    {"spot", e.spot},
                    {"price_per_hour", e.price_per_hour},
                    {"created_at_ms", gpuorch::core::ToUnixMillis(e.created_at)},
                    {"ended_at_ms", e.ended_at ? json(gpuorch::core::ToUnixMillis(*e.ended_at))
                                               : json(nullptr)},
                    {"live", e.live()},
                    {"interrupted", e.interrupted},
                    {"cost_usd", e.CostUsd(now)}});
  }
  return list;
}

std::optional<FaultKind> ParseKind(const std::string& kind) {
  static const std::map<std::string, FaultKind> kinds = {
      {"status", FaultKind::kHttpStatus},   {"timeout", FaultKind::kTimeout},
      {"malformed", FaultKind::kMalformed}, {"no_capacity", FaultKind::kNoCapacity},
      {"quota", FaultKind::kQuota},         {"auth", FaultKind::kAuth}};
  auto it = kinds.find(kind);
  return it == kinds.end() ? std::nullopt : std::optional(it->second);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fake_cloud: fake RunPod, Vast.ai and EC2 endpoints for tests"};
  std::string agent_binary;
  std::string work_dir = "/tmp/fake_cloud";
  std::string catalog = "default";
  std::string runpod_key = "runpod-test-key";
  std::string vast_key = "vast-test-key";
  std::string aws_key_id = "AKIDFAKECLOUD";
  std::string aws_secret = "fake-cloud-secret";
  app.add_option("--agent-binary", agent_binary, "path of gpuorch (the agent)")->required();
  app.add_option("--work-dir", work_dir, "where agents keep their data");
  app.add_option("--catalog", catalog, "default | test");
  app.add_option("--runpod-key", runpod_key);
  app.add_option("--vast-key", vast_key);
  app.add_option("--aws-key-id", aws_key_id);
  app.add_option("--aws-secret", aws_secret);
  CLI11_PARSE(app, argc, argv);

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  using namespace gpuorch::fakes;
  auto base = [&](const std::string& key, const std::string& secret, const std::string& sub) {
    return FakeProviderOptions{.agent_binary = agent_binary,
                               .work_dir = work_dir + "/" + sub,
                               .api_key = key,
                               .secret = secret};
  };
  std::vector<FakeRunPodGpuType> runpod_catalog = FakeRunPod::DefaultCatalog();
  std::vector<FakeVastAsk> vast_catalog = FakeVastAi::DefaultCatalog();
  std::vector<FakeEc2InstanceType> ec2_catalog;
  if (catalog == "test") {
    runpod_catalog = {{"NVIDIA A100 80GB PCIe", "A100 80GB", "A100", 80, 8, 1.64, std::nullopt, 8, 117}};
    vast_catalog = {FakeVastAsk{.id = 4242,
                                .gpu_name = "A100 PCIE",
                                .gpu_type = "A100",
                                .num_gpus = 1,
                                .gpu_ram_mb = 81920,
                                .dph_total = 1.10,
                                .min_bid = 0.60,
                                .reliability = 0.99}};
    ec2_catalog = {FakeEc2InstanceType{.instance_type = "p4de.24xlarge",
                                       .gpu_type = "A100",
                                       .gpu_count = 8,
                                       .gpu_memory_gb = 80,
                                       .on_demand_price = 40.97}};
  }
  auto runpod = FakeRunPod::Start(base(runpod_key, "", "runpod"), runpod_catalog);
  auto vast = FakeVastAi::Start(base(vast_key, "", "vastai"), vast_catalog);
  auto ec2 = FakeEc2::Start(
      FakeEc2Options{.base = base(aws_key_id, aws_secret, "aws"), .catalog = ec2_catalog});
  if (!runpod || !vast || !ec2) {
    std::fprintf(stderr, "fake_cloud: cannot start the fakes\n");
    return 1;
  }
  std::map<std::string, FakeProviderServer*> fakes = {
      {"runpod", runpod->get()}, {"vastai", vast->get()}, {"aws", ec2->get()}};

  auto control = gpuorch::api::StartHttpServer(
      gpuorch::api::HttpServerOptions{.host = "127.0.0.1", .port = 0, .threads = 1},
      [&fakes](gpuorch::api::HttpRequest request, gpuorch::api::Responder respond) {
        auto answer = [&respond](int status, const json& body) {
          respond(gpuorch::api::HttpResponse{.status = status, .body = body.dump()});
        };
        if (request.method == "GET" && request.path == "/ledger") {
          json out = json::object();
          for (const auto& [name, fake] : fakes) {
            out[name] = LedgerJson(*fake);
          }
          return answer(200, out);
        }
        json body = json::parse(request.body, nullptr, false);
        if (request.method != "POST" || !body.is_object() || !body.contains("provider") ||
            !fakes.count(body.value("provider", ""))) {
          return answer(400, {{"error", "bad control request"}});
        }
        FakeProviderServer& fake = *fakes.at(body["provider"].get<std::string>());
        if (request.path == "/faults") {
          auto kind = ParseKind(body.value("kind", "status"));
          if (!kind) {
            return answer(400, {{"error", "unknown fault kind"}});
          }
          fake.faults().Add(Fault{.kind = *kind,
                                  .operation = body.value("operation", ""),
                                  .status = body.value("status", 500),
                                  .retry_after_seconds = body.value("retry_after_seconds", 0),
                                  .delay = std::chrono::milliseconds(body.value("delay_ms", 0)),
                                  .times = body.value("times", 1)});
        } else if (request.path == "/clear") {
          fake.faults().Clear();
        } else if (request.path == "/interrupt") {
          if (!fake.Interrupt(body.value("provider_instance_id", ""))) {
            return answer(404, {{"error", "no such live instance"}});
          }
        } else if (request.path == "/capacity") {
          fake.SetCapacity(body.value("gpu_type", ""), body.value("available", 0));
        } else if (request.path == "/agents") {
          fake.SetStartAgents(body.value("start", true));
        } else {
          return answer(404, {{"error", "no such control route"}});
        }
        answer(200, {{"ok", true}});
      });
  if (!control) {
    std::fprintf(stderr, "fake_cloud: cannot start the control server\n");
    return 1;
  }
  std::printf("fake_cloud: runpod=%s vastai=%s aws=%s control=http://127.0.0.1:%u\n",
              (*runpod)->url().c_str(), (*vast)->url().c_str(), (*ec2)->url().c_str(),
              static_cast<unsigned>((*control)->port()));
  std::fflush(stdout);
  int received = 0;
  sigwait(&stop_signals, &received);
  (*control)->Stop();
  for (auto& [name, fake] : fakes) {
    fake->Stop();
  }
  return 0;
}
