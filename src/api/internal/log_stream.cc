#include "api/internal/log_stream.h"

#include <fstream>

namespace gpuorch::api::internal {
namespace {

constexpr size_t kChunkBytes = 64 * 1024;

class LogStream final : public BodyStream {
 public:
  LogStream(LogStreamDeps deps, std::string job_id, int attempt, bool follow)
      : deps_(deps), job_id_(std::move(job_id)), attempt_(attempt), follow_(follow) {}

  Chunk Next() override {
    std::string data = ReadMore();
    if (!data.empty()) {
      return Chunk{std::move(data), false};
    }
    if (!follow_) {
      return Chunk{"", true};
    }
    if (attempt_ > 0 && deps_.controller.IsAttemptLive(job_id_, attempt_)) {
      return Chunk{"", false};
    }
    // Not running here now: look at the job to tell "not started yet", "retried" and "ended".
    auto job = deps_.store.GetJob(job_id_);
    if (!job) {
      return Chunk{"", true};
    }
    if (job->attempt > attempt_) {
      const bool had_attempt = attempt_ > 0;
      attempt_ = job->attempt;
      offset_ = 0;
      return Chunk{had_attempt ? "--- attempt " + std::to_string(attempt_) + " ---\n" : "", false};
    }
    if (domain::IsTerminal(job->state) && !deps_.controller.IsAttemptLive(job_id_, attempt_)) {
      std::string rest = ReadMore();
      const bool drained = rest.size() < kChunkBytes;
      return Chunk{std::move(rest), drained};
    }
    return Chunk{"", false};
  }

 private:
  std::string ReadMore() {
    if (attempt_ <= 0) {
      return "";
    }
    std::ifstream in(deps_.controller.AttemptDir(job_id_, attempt_) + "/log", std::ios::binary);
    if (!in) {
      return "";
    }
    in.seekg(static_cast<std::streamoff>(offset_));
    std::string buf(kChunkBytes, '\0');
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    buf.resize(static_cast<size_t>(in.gcount()));
    offset_ += buf.size();
    return buf;
  }

  LogStreamDeps deps_;
  const std::string job_id_;
  int attempt_;
  const bool follow_;
  size_t offset_ = 0;
};

}  // namespace

std::shared_ptr<BodyStream> MakeLogStream(LogStreamDeps deps, std::string job_id, int attempt,
                                          bool follow) {
  return std::make_shared<LogStream>(deps, std::move(job_id), attempt, follow);
}

}  // namespace gpuorch::api::internal
