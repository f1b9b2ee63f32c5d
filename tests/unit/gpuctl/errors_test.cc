#include "apps/gpuctl/errors.h"

#include <gtest/gtest.h>

namespace gpuorch::gpuctl {
namespace {

TEST(FormatErrorTest, ShowsMessageFieldAndCode) {
  core::Error error = ErrorFromHttpResponse(
      422, R"({"error":{"code":"validation_error","message":)"
           R"("config.gpu_count must be an integer in [1, 64]","field":"config.gpu_count"}})");
  EXPECT_EQ(FormatError(error),
            "error: config.gpu_count must be an integer in [1, 64] (field: config.gpu_count) "
            "[validation_error]");
}

TEST(FormatErrorTest, OmitsEmptyField) {
  core::Error error =
      ErrorFromHttpResponse(404, R"({"error":{"code":"not_found","message":"no job job-1"}})");
  EXPECT_EQ(FormatError(error), "error: no job job-1 [not_found]");
}

TEST(FormatErrorTest, NullFieldCountsAsNone) {
  core::Error error = ErrorFromHttpResponse(
      409, R"({"error":{"code":"conflict","message":"job already ended","field":null}})");
  EXPECT_EQ(FormatError(error), "error: job already ended [conflict]");
  EXPECT_EQ(error.code, core::Code::kFailedPrecondition);
}

TEST(ErrorFromHttpResponseTest, NonJsonBodyKeepsStatusAndStartOfBody) {
  core::Error error = ErrorFromHttpResponse(502, "<html>\n<body>Bad gateway</body></html>");
  EXPECT_EQ(error.reason, "http_502");
  EXPECT_EQ(error.message, "HTTP 502: <html> <body>Bad gateway</body></html>");
  EXPECT_EQ(error.code, core::Code::kInternal);
}

TEST(ErrorFromHttpResponseTest, EmptyBody) {
  core::Error error = ErrorFromHttpResponse(503, "");
  EXPECT_EQ(FormatError(error), "error: HTTP 503 [http_503]");
}

TEST(ErrorFromHttpResponseTest, LongRawBodyIsCut) {
  core::Error error = ErrorFromHttpResponse(500, std::string(1000, 'x'));
  EXPECT_LT(error.message.size(), 250u);
  EXPECT_EQ(error.message.substr(error.message.size() - 3), "...");
}

TEST(ExitCodeTest, MapsEveryKindOfFailure) {
  EXPECT_EQ(ExitCodeFor(ErrorFromHttpResponse(400, "")), kExitServerError);
  EXPECT_EQ(ExitCodeFor(ErrorFromHttpResponse(404, "")), kExitNotFound);
  EXPECT_EQ(ExitCodeFor(ErrorFromHttpResponse(409, "")), kExitServerError);
  EXPECT_EQ(ExitCodeFor(ErrorFromHttpResponse(422, "")), kExitServerError);
  EXPECT_EQ(ExitCodeFor(ErrorFromHttpResponse(500, "")), kExitServerError);
  EXPECT_EQ(ExitCodeFor(ErrorFromHttpResponse(503, "")), kExitServerError);
  EXPECT_EQ(ExitCodeFor(UsageError("bad flag")), kExitUsage);
  EXPECT_EQ(ExitCodeFor(
                core::Error{core::Code::kUnavailable, "refused", "", std::string(kReasonConnect)}),
            kExitUnreachable);
  EXPECT_EQ(ExitCodeFor(core::Error{core::Code::kDeadlineExceeded, "slow", "",
                                    std::string(kReasonTimeout)}),
            kExitUnreachable);
}

TEST(ExitCodeTest, LocalNotFoundIsAUsageError) {
  core::Error error =
      UsageError("cannot read spec file \"x.yaml\": No such file or directory", "-f");
  EXPECT_EQ(ExitCodeFor(error), kExitUsage);
  EXPECT_EQ(FormatError(error),
            "error: cannot read spec file \"x.yaml\": No such file or directory (field: -f) "
            "[usage_error]");
}

TEST(CodeFromHttpStatusTest, CanonicalCodes) {
  EXPECT_EQ(CodeFromHttpStatus(400), core::Code::kInvalidArgument);
  EXPECT_EQ(CodeFromHttpStatus(401), core::Code::kUnauthenticated);
  EXPECT_EQ(CodeFromHttpStatus(403), core::Code::kPermissionDenied);
  EXPECT_EQ(CodeFromHttpStatus(404), core::Code::kNotFound);
  EXPECT_EQ(CodeFromHttpStatus(413), core::Code::kResourceExhausted);
  EXPECT_EQ(CodeFromHttpStatus(422), core::Code::kInvalidArgument);
  EXPECT_EQ(CodeFromHttpStatus(503), core::Code::kUnavailable);
  EXPECT_EQ(CodeFromHttpStatus(500), core::Code::kInternal);
}

}  // namespace
}  // namespace gpuorch::gpuctl
