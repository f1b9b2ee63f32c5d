#include "api/api_router.h"


#include <spdlog/spdlog.h>

#include "api/agent_api.h"
#include "api/internal/job_codec.h"
#include "api/internal/log_stream.h"
#include "api/internal/route_util.h"
#include "core/log.h"
#include "domain/gpu.h"
#include "domain/templates.h"

namespace gpuorch::api {
namespace {

using nlohmann::json;

using internal::BadRequest;
using internal::IsJsonContentType;
using internal::JsonResponse;
using internal::NotFound;
using internal::Segments;


}  // namespace

int ErrorStatus(const core::Error& error) {
  const std::string& r = error.reason;
  if (r == "invalid_json" || r == "bad_request") {
    return 400;
  }
  if (r == "body_too_large") {
    return 413;
  }
  if (r == "unsupported_media_type") {
    return 415;
  }
  if (r == "conflict") {
    return 409;
  }
  if (r == "method_not_allowed") {
    return 405;
  }
  if (r == "quota_exceeded" || r == "rate_limited") {
    return 429;
  }
  if (r == "budget_exceeded" || r == "forbidden") {
    return 403;
  }
  switch (error.code) {
    case core::Code::kInvalidArgument: return 422;
    case core::Code::kNotFound: return 404;
    case core::Code::kAlreadyExists: return 409;
    case core::Code::kFailedPrecondition: return 409;
    case core::Code::kAborted: return 409;
    case core::Code::kUnavailable: return 503;
    case core::Code::kResourceExhausted: return 429;
    case core::Code::kDeadlineExceeded: return 504;
    case core::Code::kUnauthenticated: return 401;
    case core::Code::kPermissionDenied: return 403;
    case core::Code::kUnimplemented: return 501;
    case core::Code::kInternal: return 500;
  }
  return 500;
}

HttpResponse ErrorResponse(const core::Error& error) {
  const int status = ErrorStatus(error);
  std::string message = error.message;
  if (status >= 500 && error.code != core::Code::kUnavailable) {
    spdlog::error("internal error: {}", core::SanitizeForLog(error.message, 500));
    message = "internal error";
  }
  return HttpResponse{.status = status,
                      .body = ErrorBody(error.ReasonOrDefault(), message, error.field)};
}

ApiRouter::ApiRouter(ApiDeps deps, ApiOptions options, ApiSecurity security)
    : store_(deps.store),
      controller_(deps.controller),
      clock_(deps.clock),
      ids_(deps.ids),
      options_(std::move(options)),
      workers_(std::make_shared<core::WorkerPool>("api-worker", options_.worker_threads)),
      known_gpu_types_(domain::KnownGpuTypes()),
      instances_(deps.instances),
      catalog_(deps.catalog),
      registry_(deps.registry),
      security_(std::move(security)) {
  if (registry_ != nullptr) {
    agent_api_ = std::make_unique<AgentApi>(*registry_, workers_);
  }
  // The node's GPUs are fixed for the process's life: its types join the known ones once.
  for (const auto& usage : controller_.Node().gpus) {
    known_gpu_types_.insert(usage.gpu.type);
  }
}

ApiRouter::~ApiRouter() = default;

void ApiRouter::Handle(HttpRequest request, Responder respond) {
  const std::string& path = request.path;
  const std::string& method = request.method;
  auto method_not_allowed = [&](const char* allowed) {
    respond(internal::MethodNotAllowed(method, allowed));
  };
  if (path == "/health") {
    return method == "GET" ? Health(std::move(respond)) : method_not_allowed("GET");
  }
  // Node agents authenticate with their own join and node tokens.
  if (agent_api_ && agent_api_->Handle(request, respond)) {
    return;
  }
  if (path == "/metrics" && security_.metrics_open) {
    return respond(ErrorResponse(NotFound("route /metrics (no metrics are exported yet)")));
  }
  std::optional<Principal> caller = Admit(request, respond);
  if (!caller) {
    return;
  }
  Route(std::move(request), *caller, std::move(respond));
}

void ApiRouter::Route(HttpRequest request, const Principal& caller, Responder respond) {
  const std::string& path = request.path;
  const std::string& method = request.method;
  auto method_not_allowed = [&](const char* allowed) {
    respond(internal::MethodNotAllowed(method, allowed));
  };
  if (HandleSecurity(request, caller, respond)) {
    return;
  }
  if (HandleCloud(request, caller, respond)) {
    return;
  }
  if (path == "/api/v1/jobs/submit") {
    return method == "POST" ? Submit(std::move(request), caller, std::move(respond))
                            : method_not_allowed("POST");
  }
  if (path == "/api/v1/jobs/" || path == "/api/v1/jobs") {
    return method == "GET" ? ListJobs(request, caller, std::move(respond))
                           : method_not_allowed("GET");
  }
  if (path.rfind("/api/v1/jobs/", 0) == 0) {
    auto segs = Segments(path, "/api/v1/jobs/");
    if (segs.size() == 1 && !segs[0].empty()) {
      if (method == "GET") {
        return GetJob(segs[0], caller, std::move(respond));
      }
      if (method == "DELETE") {
        return CancelJob(segs[0], caller, std::move(respond));
      }
      return method_not_allowed("GET, DELETE");
    }
    if (segs.size() == 2 && !segs[0].empty() && segs[1] == "logs") {
      return method == "GET" ? Logs(segs[0], request, caller, std::move(respond))
                             : method_not_allowed("GET");
    }
  }
  if (path == "/api/v1/queue" || path == "/api/v1/queue/") {
    return method == "GET" ? Queue(request, caller, std::move(respond))
                           : method_not_allowed("GET");
  }
  if (path == "/api/v1/templates" || path == "/api/v1/templates/") {
    return method == "GET" ? Templates(std::move(respond)) : method_not_allowed("GET");
  }
  respond(ErrorResponse(NotFound("route " + path)));
}

void ApiRouter::Submit(HttpRequest request, const Principal& caller, Responder respond) {
  if (!IsJsonContentType(request.Header("content-type"))) {
    return respond(ErrorResponse(core::Error{core::Code::kInvalidArgument,
                                             "Content-Type must be application/json (UTF-8)",
                                             "Content-Type", "unsupported_media_type"}));
  }
  auto body = internal::ParseJsonBody(request.body);
  if (!body) {
    return respond(ErrorResponse(body.error()));
  }
  auto spec = internal::ParseJobSpec(
      *body, internal::SubmitLimits{.known_gpu_types = known_gpu_types_,
                                    .default_timeout_seconds = options_.default_timeout_seconds});
  if (!spec) {
    return respond(ErrorResponse(spec.error()));
  }
  if (auto requirements = optimizer::RequirementsFor(*spec); !requirements) {
    return respond(ErrorResponse(requirements.error()));
  }
  if (body->contains("dry_run")) {
    const json& dry = (*body)["dry_run"];
    if (!dry.is_boolean()) {
      return respond(ErrorResponse(BadRequest("dry_run must be true or false", "dry_run")));
    }
    if (dry.get<bool>()) {
      return DryRun(*spec, std::move(respond));
    }
  }
  if (options_.admission_check) {
    if (auto refusal = options_.admission_check(caller.name)) {
      return respond(ErrorResponse(*refusal));
    }
  }
  domain::Job job;
  job.owner = caller.name;
  if (auto key = request.Header("idempotency-key")) {
    if (auto valid = internal::ValidateIdempotencyKey(*key); !valid) {
      return respond(ErrorResponse(valid.error()));
    }
    job.idempotency_key = *key;
  }
  const auto now = clock_.Now();
  job.id = ids_.NewId("job");
  job.spec = std::move(*spec);
  job.state = domain::JobState::kQueued;
  job.status_message = "queued";
  job.created_at = now;
  job.updated_at = now;
  // The answer is rendered here, on the I/O thread: the stored job differs from `job` only in fields
  // the JSON does not show (seq) or shows at millisecond precision anyway. The store's writer thread
  // then only hands it over, so a batch's callbacks cost it almost nothing.
  HttpResponse created = JsonResponse(201, internal::JobToJson(job));
  created.headers.emplace_back("Location", "/api/v1/jobs/" + job.id);
  store::InsertOptions insert_options;
  if (options_.max_queued_jobs) {
    insert_options.max_queued_jobs = options_.max_queued_jobs(job.owner);
  }
  store_.InsertJobAsync(
      std::move(job), [this, created = std::move(created), respond = std::move(respond)](
                          core::Result<store::InsertOutcome> outcome) mutable {
        if (!outcome) {
          return respond(ErrorResponse(outcome.error().WithContext("submit")));
        }
        if (outcome->created) {
          controller_.Submitted(outcome->job);
          return respond(std::move(created));
        }
        HttpResponse replay = JsonResponse(200, internal::JobToJson(outcome->job));
        replay.headers.emplace_back("Location", "/api/v1/jobs/" + outcome->job.id);
        respond(std::move(replay));
      },
      insert_options);
}

void ApiRouter::ListJobs(const HttpRequest& request, const Principal& caller,
                         Responder respond) {
  store::JobQuery query;
  if (!caller.IsAdmin()) {
    query.owner = caller.name;
  } else if (auto owner = request.Query("owner")) {
    query.owner = *owner;
  }
  if (auto status = request.Query("status")) {
    size_t start = 0;
    while (start <= status->size()) {
      size_t comma = status->find(',', start);
      std::string name = status->substr(start, comma == std::string::npos ? std::string::npos
                                                                           : comma - start);
      auto state = domain::ParseJobState(name);
      if (!state) {
        return respond(ErrorResponse(BadRequest("unknown status '" + name + "'", "status")));
      }
      query.states.push_back(*state);
      if (comma == std::string::npos) {
        break;
      }
      start = comma + 1;
    }
  }
  if (auto type = request.Query("job_type")) {
    query.job_type = *type;
  }
  auto parse_int = [](const std::string& s, int64_t min, int64_t max) -> std::optional<int64_t> {
    if (s.empty() || s.size() > 18 || !std::all_of(s.begin(), s.end(), ::isdigit)) {
      return std::nullopt;
    }
    int64_t v = std::stoll(s);
    return v < min || v > max ? std::nullopt : std::optional(v);
  };
  if (auto limit = request.Query("limit")) {
    auto v = parse_int(*limit, 1, 1000);
    if (!v) {
      return respond(ErrorResponse(BadRequest("limit must be an integer in [1, 1000]", "limit")));
    }
    query.limit = static_cast<int>(*v);
  }
  if (auto cursor = request.Query("cursor")) {
    auto v = parse_int(*cursor, 1, INT64_MAX / 2);
    if (!v) {
      return respond(ErrorResponse(BadRequest("cursor is not one this service issued", "cursor")));
    }
    query.before_seq = *v;
  }
  workers_->Post([this, query, respond = std::move(respond)] {
    auto page = store_.ListJobs(query);
    if (!page) {
      return respond(ErrorResponse(page.error()));
    }
    json jobs = json::array();
    for (const auto& job : page->jobs) {
      json j = internal::JobToJson(job);
      AddWaitInfo(job, j);
      jobs.push_back(std::move(j));
    }
    json next = page->next_before_seq ? json(std::to_string(*page->next_before_seq)) : json(nullptr);
    respond(JsonResponse(200, json{{"jobs", jobs}, {"next_cursor", next}}));
  });
}

void ApiRouter::GetJob(const std::string& job_id, const Principal& caller, Responder respond) {
  workers_->Post([this, job_id, caller, respond = std::move(respond)] {
    auto job = store_.GetJob(job_id);
    if (job && !caller.IsAdmin() && job->owner != caller.name) {
      job = tl::unexpected(NotFound("job " + job_id));
    }
    if (!job) {
      return respond(ErrorResponse(job.error().code == core::Code::kNotFound
                                       ? NotFound("job " + job_id)
                                       : job.error()));
    }
    json j = internal::JobToJson(*job);
    AddWaitInfo(*job, j);
    AddCloudInfo(*job, j);
    json transitions = json::array();
    if (auto list = store_.ListTransitions(job_id)) {
      for (const auto& t : *list) {
        transitions.push_back(internal::TransitionToJson(t));
      }
    }
    j["transitions"] = std::move(transitions);
    respond(JsonResponse(200, j));
  });
}

void ApiRouter::CancelJob(const std::string& job_id, const Principal& caller,
                          Responder respond) {
  workers_->Post([this, job_id, caller, respond = std::move(respond)] {
    // Another user's job answers exactly as a missing one, and is left untouched.
    if (!caller.IsAdmin()) {
      auto owned = store_.GetJob(job_id);
      if (!owned || owned->owner != caller.name) {
        return respond(ErrorResponse(owned || owned.error().code == core::Code::kNotFound
                                         ? NotFound("job " + job_id)
                                         : owned.error()));
      }
    }
    auto job = controller_.Cancel(job_id);
    if (!job) {
      return respond(ErrorResponse(job.error().code == core::Code::kNotFound
                                       ? NotFound("job " + job_id)
                                       : job.error()));
    }
    respond(JsonResponse(200, internal::JobToJson(*job)));
  });
}

void ApiRouter::Logs(const std::string& job_id, const HttpRequest& request,
                     const Principal& caller, Responder respond) {
  const bool follow = request.Query("follow").value_or("false") == "true";
  std::optional<int> attempt;
  if (auto a = request.Query("attempt")) {
    if (a->empty() || a->size() > 6 || !std::all_of(a->begin(), a->end(), ::isdigit) ||
        std::stoi(*a) < 1) {
      return respond(ErrorResponse(BadRequest("attempt must be a positive integer", "attempt")));
    }
    attempt = std::stoi(*a);
  }
  workers_->Post([this, job_id, follow, attempt, caller, respond = std::move(respond)] {
    auto job = store_.GetJob(job_id);
    if (job && !caller.IsAdmin() && job->owner != caller.name) {
      job = tl::unexpected(NotFound("job " + job_id));
    }
    if (!job) {
      return respond(ErrorResponse(job.error().code == core::Code::kNotFound
                                       ? NotFound("job " + job_id)
                                       : job.error()));
    }
    if (attempt && *attempt > job->attempt) {
      return respond(ErrorResponse(
          NotFound("attempt " + std::to_string(*attempt) + " of job " + job_id)));
    }
    HttpResponse r{.status = 200, .content_type = "text/plain; charset=utf-8"};
    r.stream = internal::MakeLogStream(internal::LogStreamDeps{store_, controller_}, job_id,
                                       attempt.value_or(job->attempt), follow && !attempt);
    respond(std::move(r));
  });
}

void ApiRouter::AddWaitInfo(const domain::Job& job, nlohmann::json& out) const {
  out["queue_position"] = nullptr;
  if (job.state != domain::JobState::kQueued) {
    return;
  }
  if (auto wait = controller_.Explain(job.id)) {
    out["status_message"] = "waiting: " + wait->reason;
    out["queue_position"] = wait->position;
  }
}

void ApiRouter::Queue(const HttpRequest& request, const Principal& caller, Responder respond) {
  size_t limit = 100;
  if (auto text = request.Query("limit")) {
    if (text->empty() || text->size() > 5 || !std::all_of(text->begin(), text->end(), ::isdigit) ||
        std::stoi(*text) < 1 || std::stoi(*text) > 10000) {
      return respond(ErrorResponse(BadRequest("limit must be an integer in [1, 10000]", "limit")));
    }
    limit = static_cast<size_t>(std::stoi(*text));
  }
  workers_->Post([this, limit, caller, respond = std::move(respond)] {
    json entries = json::array();
    // A user sees only their own entries, at their positions in the whole queue.
    const std::string_view owner = caller.IsAdmin() ? std::string_view() : caller.name;
    for (const auto& entry : controller_.Queue(limit, owner)) {
      entries.push_back({{"job_id", entry.job_id},
                         {"owner", entry.owner},
                         {"priority", entry.priority},
                         {"gpu_count", entry.gpu_count},
                         {"position", entry.wait.position},
                         {"reason", entry.wait.reason}});
    }
    respond(JsonResponse(200, json{{"queue", entries}}));
  });
}

void ApiRouter::Templates(Responder respond) {
  json list = json::array();
  for (const auto& t : domain::BuiltinTemplates()) {
    list.push_back({{"name", t.name},
                    {"title", t.title},
                    {"description", t.description},
                    {"job_type", t.defaults.job_type},
                    {"config", internal::SpecConfigToJson(t.defaults)}});
  }
  respond(JsonResponse(200, json{{"templates", list}}));
}

void ApiRouter::Health(Responder respond) {
  workers_->Post([this, respond = std::move(respond)] {
    auto ping = store_.Ping();
    lifecycle::NodeStatus node = controller_.Node();
    int free = 0;
    for (const auto& usage : node.gpus) {
      free += usage.job_id.empty() ? 1 : 0;
    }
    json body{{"status", ping ? "ok" : "unavailable"},
              {"store", ping ? "ok" : "unavailable"},
              {"version", options_.version},
              {"node", {{"id", node.node_id}, {"gpus", node.gpus.size()}, {"gpus_free", free}}}};
    respond(JsonResponse(ping ? 200 : 503, body));
  });
}

}  // namespace gpuorch::api
