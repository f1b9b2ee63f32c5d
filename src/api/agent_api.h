// The HTTP routes node agents call (agent/agent_protocol.h), over a lifecycle::NodeRegistry:
//
//   POST /api/v1/agent/register                    → 201 {node_id, node_token, ...}
//   POST /api/v1/agent/heartbeat   (Bearer token)  → 200 {assignments, signals, forget}
//   POST /api/v1/agent/logs?job_id=J&attempt=N&offset=O (Bearer token), raw bytes → 200 {size}
//
// Errors have the service's shape {"error":{"code","message","field"}}: malformed JSON → 400
// invalid_json; wrong shapes or query values → 422 naming the field; bad or unknown token → 401;
// a lost or gone node → 410; an attempt not assigned to the node → 404; a log offset beyond the
// stored size → 409 with the stored "size" beside "error"; another method → 405; another path
// under /api/v1/agent/ → 404. JSON bodies are accepted whatever their Content-Type says.
//
// Thread-safe. Handle() runs on an HTTP I/O thread and never blocks: registry calls (store, disk)
// run on the worker pool.
#pragma once

#include <memory>

#include "api/http_server.h"
#include "core/worker_pool.h"
#include "lifecycle/node_registry.h"

namespace gpuorch::api {

class AgentApi {
 public:
  // `registry` must outlive the API and every request it is answering.
  AgentApi(lifecycle::NodeRegistry& registry, std::shared_ptr<core::WorkerPool> workers);
  AgentApi(const AgentApi&) = delete;
  AgentApi& operator=(const AgentApi&) = delete;

  // False (and `request`, `respond` untouched) when the path is not under /api/v1/agent; otherwise
  // takes both (moved from) and answers exactly once, possibly later from a worker thread.
  bool Handle(HttpRequest& request, Responder& respond);

 private:
  void Register(HttpRequest request, Responder respond);
  void Heartbeat(HttpRequest request, Responder respond);
  void Logs(HttpRequest request, Responder respond);

  lifecycle::NodeRegistry& registry_;
  std::shared_ptr<core::WorkerPool> workers_;
};

}  // namespace gpuorch::api
