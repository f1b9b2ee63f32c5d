// HttpClient over libcurl easy handles.
//
// Design: one easy handle per request in flight, taken from a small pool so that connections (and
// TLS sessions) are reused between calls; a handle is reset before each use. Every attempt first
// takes a token from the client's bucket (a reservation: the bucket may go negative and the caller
// sleeps off its debt through the Clock, so concurrent callers queue fairly without holding the
// lock while sleeping). Retry decisions follow the contract in http_client.h.
#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "providers/http_client.h"

namespace gpuorch::providers {
namespace {

constexpr size_t kMaxReplyBodyBytes = 64 * 1024 * 1024;
constexpr size_t kMaxIdleHandles = 16;

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// The host (and port) of `url`, for error messages: no scheme, user info, path or query.
std::string HostOf(std::string_view url) {
  size_t start = url.find("://");
  start = start == std::string_view::npos ? 0 : start + 3;
  std::string_view rest = url.substr(start);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  size_t at = rest.rfind('@');
  if (at != std::string_view::npos) {
    rest = rest.substr(at + 1);
  }
  return rest.empty() ? std::string("(no host)") : std::string(rest);
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

struct Collected {
  std::map<std::string, std::string> headers;
  std::string body;
  bool body_too_large = false;
};

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* out = static_cast<Collected*>(user);
  const size_t n = size * count;
  if (out->body.size() + n > kMaxReplyBodyBytes) {
    out->body_too_large = true;
    return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  }
  out->body.append(data, n);
  return n;
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* out = static_cast<Collected*>(user);
  const size_t n = size * count;
  std::string_view line(data, n);
  if (line.starts_with("HTTP/")) {
    out->headers.clear();  // a new response (after 100 Continue): forget the previous one's headers
    return n;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return n;
  }
  std::string name = Lower(Trim(line.substr(0, colon)));
  std::string value(Trim(line.substr(colon + 1)));
  auto [it, inserted] = out->headers.emplace(name, value);
  if (!inserted) {
    it->second += ", " + value;
  }
  return n;
}

// The outcome of one attempt: a reply, or a transport failure with curl's code.
struct Attempt {
  CURLcode code = CURLE_OK;
  int status = 0;
  Collected collected;
};

bool FailedBeforeSending(CURLcode code) {
  return code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST ||
         code == CURLE_COULDNT_RESOLVE_PROXY;
}

// Failures that another attempt cannot fix: a bad URL or setup, an oversized reply, a bad peer
// certificate.
bool IsPermanent(CURLcode code) {
  switch (code) {
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_FAILED_INIT:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_WRITE_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_OUT_OF_MEMORY:
      return true;
    default:
      return false;
  }
}

bool IsRetryableStatus(int status, bool idempotent) {
  if (status == 429) {
    return true;
  }
  return idempotent && status >= 500 && status <= 599 && status != 501 && status != 505;
}

class CurlHttpClient final : public HttpClient {
 public:
  CurlHttpClient(const core::Clock& clock, HttpClientOptions options,
                 std::function<double()> random_unit)
      : clock_(clock), options_(std::move(options)), random_unit_(std::move(random_unit)) {
    if (!random_unit_) {
      random_unit_ = [] {
        static std::mutex mu;
        static std::mt19937_64 gen{std::random_device{}()};
        std::lock_guard lock(mu);
        return std::uniform_real_distribution<double>(0.0, 1.0)(gen);
      };
    }
    options_.max_attempts = std::max(1, options_.max_attempts);
    options_.rate_limit_burst = std::max(1, options_.rate_limit_burst);
    tokens_ = options_.rate_limit_burst;
    last_refill_ = clock_.MonotonicNow();
  }

  ~CurlHttpClient() override {
    for (CURL* h : idle_) {
      curl_easy_cleanup(h);
    }
  }

  core::Result<HttpReply> Send(const HttpCall& call) override {
    for (int attempt = 1;; ++attempt) {
      WaitForToken();
      Attempt result = Perform(call);
      const bool last = attempt >= options_.max_attempts;
      if (result.code != CURLE_OK) {
        const bool retry =
            !IsPermanent(result.code) && (FailedBeforeSending(result.code) || call.idempotent);
        if (!retry || last) {
          return core::Fail(TransportError(call, result, attempt));
        }
        clock_.SleepFor(Backoff(attempt - 1));
        continue;
      }
      if (!last && IsRetryableStatus(result.status, call.idempotent)) {
        clock_.SleepFor(RetryDelay(result.collected.headers, attempt - 1));
        continue;
      }
      return HttpReply{.status = result.status,
                       .headers = std::move(result.collected.headers),
                       .body = std::move(result.collected.body),
                       .attempts = attempt};
    }
  }

 private:
  // min(max_backoff, base × 2^retry) × U(0.5, 1].
  std::chrono::nanoseconds Backoff(int retry) const {
    const double base = static_cast<double>(options_.base_backoff.count());
    const double capped = std::min(static_cast<double>(options_.max_backoff.count()),
                                   base * std::pow(2.0, std::min(retry, 62)));
    double u = random_unit_();
    u = std::clamp(u, 0.0, 1.0);
    const double factor = 1.0 - 0.5 * u;  // u in [0,1) → (0.5, 1]
    return std::chrono::nanoseconds(static_cast<int64_t>(capped * factor * 1e6));
  }

  // Retry-After (delta seconds or an HTTP-date) when present and at most max_retry_after, else the
  // backoff.
  std::chrono::nanoseconds RetryDelay(const std::map<std::string, std::string>& headers,
                                      int retry) {
    auto it = headers.find("retry-after");
    if (it != headers.end()) {
      std::optional<std::chrono::nanoseconds> wait = ParseRetryAfter(it->second);
      if (wait && *wait <= options_.max_retry_after) {
        return *wait;
      }
    }
    return Backoff(retry);
  }

  std::optional<std::chrono::nanoseconds> ParseRetryAfter(const std::string& value) const {
    std::string_view v = Trim(value);
    if (v.empty()) {
      return std::nullopt;
    }
    if (std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      int64_t seconds = 0;
      auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), seconds);
      if (ec != std::errc() || ptr != v.data() + v.size() || seconds > 1'000'000'000) {
        return std::nullopt;
      }
      return std::chrono::seconds(seconds);
    }
    const std::string date(v);
    const time_t at = curl_getdate(date.c_str(), nullptr);
    if (at < 0) {
      return std::nullopt;
    }
    const auto target = std::chrono::system_clock::from_time_t(at);
    const auto now = clock_.Now();
    if (target <= now) {
      return std::chrono::nanoseconds(0);
    }
    return std::chrono::duration_cast<std::chrono::nanoseconds>(target - now);
  }

  void WaitForToken() {
    if (options_.rate_limit_per_second <= 0) {
      return;
    }
    std::chrono::nanoseconds wait{0};
    {
      std::lock_guard lock(mu_);
      const core::MonotonicTime now = clock_.MonotonicNow();
      if (now > last_refill_) {
        const double elapsed = std::chrono::duration<double>(now - last_refill_).count();
        tokens_ = std::min<double>(options_.rate_limit_burst,
                                   tokens_ + elapsed * options_.rate_limit_per_second);
        last_refill_ = now;
      }
      tokens_ -= 1;
      if (tokens_ < 0) {
        wait = std::chrono::nanoseconds(
            static_cast<int64_t>(std::ceil(-tokens_ / options_.rate_limit_per_second * 1e9)));
      }
    }
    if (wait.count() > 0) {
      clock_.SleepFor(wait);
    }
  }

  CURL* TakeHandle() {
    {
      std::lock_guard lock(mu_);
      if (!idle_.empty()) {
        CURL* h = idle_.back();
        idle_.pop_back();
        curl_easy_reset(h);
        return h;
      }
    }
    return curl_easy_init();
  }

  void ReturnHandle(CURL* h) {
    std::lock_guard lock(mu_);
    if (idle_.size() < kMaxIdleHandles) {
      idle_.push_back(h);
      return;
    }
    curl_easy_cleanup(h);
  }

  Attempt Perform(const HttpCall& call) {
    Attempt out;
    CURL* h = TakeHandle();
    if (h == nullptr) {
      out.code = CURLE_FAILED_INIT;
      return out;
    }
    curl_slist* headers = nullptr;
    for (const auto& [name, value] : call.headers) {
      std::string line = name + ": " + value;
      if (value.empty()) {
        line = name + ";";  // curl's spelling of a header with an empty value
      }
      headers = curl_slist_append(headers, line.c_str());
    }
    headers = curl_slist_append(headers, "Expect:");

    curl_easy_setopt(h, CURLOPT_URL, call.url.c_str());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::max<int64_t>(1, options_.connect_timeout.count())));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(std::max<int64_t>(1, call.timeout.count())));
    curl_easy_setopt(h, CURLOPT_USERAGENT, options_.user_agent.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &OnBody);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &out.collected);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &OnHeader);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &out.collected);
    if (call.method == "GET" && call.body.empty()) {
      curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (call.method == "HEAD") {
      curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(call.body.size()));
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, call.body.data());
      if (call.method != "POST") {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, call.method.c_str());
      }
    }

    out.code = curl_easy_perform(h);
    if (out.code == CURLE_OK) {
      long status = 0;
      curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
      out.status = static_cast<int>(status);
    }
    curl_slist_free_all(headers);
    if (out.code == CURLE_OK) {
      ReturnHandle(h);
    } else {
      curl_easy_cleanup(h);  // its connection may be in an unknown state
    }
    return out;
  }

  core::Error TransportError(const HttpCall& call, const Attempt& result, int attempts) const {
    const std::string where = "http: " + call.method + " " + HostOf(call.url) + ": ";
    const std::string tries =
        " (" + std::to_string(attempts) + " attempt" + (attempts == 1 ? "" : "s") + ")";
    if (result.code == CURLE_OPERATION_TIMEDOUT) {
      return core::Error{
          core::Code::kDeadlineExceeded,
          where + "timed out after " + std::to_string(call.timeout.count()) + " ms" + tries, "",
          "transient"};
    }
    if (result.code == CURLE_WRITE_ERROR && result.collected.body_too_large) {
      return core::Error{core::Code::kUnavailable, where + "reply body too large" + tries, "",
                         "transient"};
    }
    if (result.code == CURLE_FAILED_INIT || result.code == CURLE_OUT_OF_MEMORY) {
      return core::Error{core::Code::kInternal, where + "cannot create a curl handle", "", ""};
    }
    if (result.code == CURLE_URL_MALFORMAT || result.code == CURLE_UNSUPPORTED_PROTOCOL) {
      return core::Error{core::Code::kInvalidArgument, where + "unusable URL", "", ""};
    }
    // curl_easy_strerror names the failure class only; it never echoes headers or bodies.
    return core::Error{core::Code::kUnavailable, where + curl_easy_strerror(result.code) + tries,
                       "", "transient"};
  }

  const core::Clock& clock_;
  HttpClientOptions options_;
  std::function<double()> random_unit_;

  std::mutex mu_;
  std::vector<CURL*> idle_;            // GUARDED_BY(mu_)
  double tokens_ = 0;                  // GUARDED_BY(mu_)
  core::MonotonicTime last_refill_{};  // GUARDED_BY(mu_)
};

}  // namespace

std::unique_ptr<HttpClient> MakeCurlHttpClient(const core::Clock& clock, HttpClientOptions options,
                                               std::function<double()> random_unit) {
  GlobalInitOnce();
  return std::make_unique<CurlHttpClient>(clock, std::move(options), std::move(random_unit));
}

}  // namespace gpuorch::providers
