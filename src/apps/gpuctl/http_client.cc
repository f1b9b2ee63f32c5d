#include "apps/gpuctl/http_client.h"

#include <curl/curl.h>

#include <mutex>

#include "apps/gpuctl/errors.h"

namespace gpuorch::gpuctl {
namespace {

// Per-transfer state shared with libcurl's write callback.
struct Transfer {
  CURL* curl = nullptr;
  const BodySink* sink = nullptr;
  std::string body;
  bool sink_aborted = false;
};

size_t OnWrite(char* data, size_t size, size_t nmemb, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  size_t n = size * nmemb;
  long status = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
  // Error answers are buffered so the caller can parse them; only good bytes reach the sink.
  if (t->sink == nullptr || status >= 400) {
    t->body.append(data, n);
    return n;
  }
  if (!(*t->sink)(std::string_view(data, n))) {
    t->sink_aborted = true;
    return 0;  // makes libcurl stop with CURLE_WRITE_ERROR
  }
  return n;
}

core::Error TransportError(CURLcode rc, const HttpRequest& request, const char* detail) {
  std::string what = detail[0] != '\0' ? detail : curl_easy_strerror(rc);
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_SSL_CONNECT_ERROR:
      return core::Error{core::Code::kUnavailable, what, "", std::string(kReasonConnect)};
    case CURLE_OPERATION_TIMEDOUT:
      return core::Error{core::Code::kDeadlineExceeded, what, "", std::string(kReasonTimeout)};
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return UsageError("bad server URL \"" + request.url + "\": " + what, "--server");
    default:
      return core::Error{core::Code::kInternal, what, "", "http_transport"};
  }
}

// RAII for the easy handle and header list of one transfer.
struct CurlHandles {
  CURL* curl = curl_easy_init();
  curl_slist* headers = nullptr;
  ~CurlHandles() {
    curl_slist_free_all(headers);
    if (curl != nullptr) {
      curl_easy_cleanup(curl);
    }
  }
};

}  // namespace

core::Result<std::unique_ptr<CurlHttpClient>> CurlHttpClient::Create() {
  // curl_global_init is not thread-safe on older libcurl; guard it and run it once per process.
  static std::once_flag once;
  static CURLcode init_rc = CURLE_OK;
  std::call_once(once, [] { init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (init_rc != CURLE_OK) {
    return core::Fail(core::Code::kInternal,
                      std::string("cannot initialise libcurl: ") + curl_easy_strerror(init_rc));
  }
  return std::unique_ptr<CurlHttpClient>(new CurlHttpClient());
}

CurlHttpClient::~CurlHttpClient() = default;

core::Result<HttpResponse> CurlHttpClient::Send(const HttpRequest& request) {
  return Perform(request, nullptr);
}

core::Result<HttpResponse> CurlHttpClient::Stream(const HttpRequest& request,
                                                  const BodySink& sink) {
  return Perform(request, &sink);
}

core::Result<HttpResponse> CurlHttpClient::Perform(const HttpRequest& request,
                                                   const BodySink* sink) {
  CurlHandles h;
  if (h.curl == nullptr) {
    return core::Fail(core::Code::kInternal, "cannot create a libcurl handle");
  }
  Transfer transfer{.curl = h.curl, .sink = sink};
  char errbuf[CURL_ERROR_SIZE] = {0};

  for (const auto& [name, value] : request.headers) {
    h.headers = curl_slist_append(h.headers, (name + ": " + value).c_str());
  }
  // An empty "Expect:" stops libcurl from waiting for "100 Continue" before sending bodies.
  h.headers = curl_slist_append(h.headers, "Expect:");

  CURL* c = h.curl;
  curl_easy_setopt(c, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  if (!request.body.empty()) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h.headers);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &OnWrite);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_NOPROXY, "localhost,127.0.0.1,::1");
  curl_easy_setopt(c, CURLOPT_USERAGENT, "gpuctl/0.1");
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(request.connect_timeout.count()));

  CURLcode rc = curl_easy_perform(c);
  if (transfer.sink_aborted) {
    return core::Fail(core::Code::kAborted, "output closed while streaming", "", "aborted");
  }
  if (rc != CURLE_OK) {
    return core::Fail(TransportError(rc, request, errbuf));
  }
  HttpResponse response;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &response.status);
  char* content_type = nullptr;
  if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &content_type) == CURLE_OK &&
      content_type != nullptr) {
    response.content_type = content_type;
  }
  response.body = std::move(transfer.body);
  return response;
}

}  // namespace gpuorch::gpuctl
