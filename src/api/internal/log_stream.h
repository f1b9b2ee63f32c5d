// Streaming a job's attempt log as an HTTP body. Internal to api/.
#pragma once

#include <memory>
#include <string>

#include "api/http_server.h"
#include "lifecycle/job_controller.h"
#include "store/store.h"

namespace gpuorch::api::internal {

struct LogStreamDeps {
  store::Store& store;
  lifecycle::JobController& controller;
};

// A stream of attempt `attempt`'s log (empty when the attempt has not started). With `follow`, it
// keeps streaming as the log grows, moves on to the next attempt when the job is retried (with a
// "--- attempt N ---" line between), and ends once the job has ended and the log is drained.
// Without `follow` it ends at the current end of the file. Reads at most 64 KiB per Next().
std::shared_ptr<BodyStream> MakeLogStream(LogStreamDeps deps, std::string job_id, int attempt,
                                          bool follow);

}  // namespace gpuorch::api::internal
