#include "integration/service_harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <strings.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace gpuorch::testing {
namespace {

size_t WriteBody(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

size_t WriteHeader(char* data, size_t size, size_t n, void* out) {
  std::string line(data, size * n);
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    for (char& c : name) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    std::string value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ')) {
      value.erase(0, 1);
    }
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n')) {
      value.pop_back();
    }
    (*static_cast<std::map<std::string, std::string>*>(out))[name] = value;
  }
  return size * n;
}

}  // namespace

nlohmann::json HttpResult::Json() const {
  return nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
}

HttpResult HttpCall(const std::string& method, const std::string& url, const std::string& body,
                    const std::vector<std::string>& headers, std::chrono::milliseconds timeout) {
  HttpResult result;
  CURL* curl = curl_easy_init();
  curl_slist* list = nullptr;
  for (const auto& h : headers) {
    list = curl_slist_append(list, h.c_str());
  }
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (method == "POST" || method == "PUT" || !body.empty()) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, WriteBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &result.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, WriteHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &result.headers);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  if (curl_easy_perform(curl) == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &result.status);
  }
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  return result;
}

std::string BinPath(const std::string& name) { return std::string(GPUORCH_BIN_DIR) + "/" + name; }

std::pair<int, std::string> RunCommand(const std::string& command_line) {
  std::string out;
  FILE* pipe = popen((command_line + " 2>&1").c_str(), "r");
  if (pipe == nullptr) {
    return {-1, ""};
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) {
    out.append(buf, n);
  }
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}

bool ProcessAlive(pid_t pid) {
  if (pid <= 0 || kill(pid, 0) != 0) {
    return false;
  }
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string content((std::istreambuf_iterator<char>(stat)), {});
  auto paren = content.rfind(')');
  return paren == std::string::npos || content.size() < paren + 3 || content[paren + 2] != 'Z';
}

ServiceProcess::ServiceProcess(std::map<std::string, std::string> env) : env_(std::move(env)) {
  char tmpl[] = "/tmp/gpuorch-it-XXXXXX";
  data_dir_ = mkdtemp(tmpl);
  log_path_ = data_dir_ + "/service.out";
}

ServiceProcess::~ServiceProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  // Kill job processes left running by the tests (they outlive the service by design).
  std::error_code ec;
  for (auto& entry : std::filesystem::recursive_directory_iterator(data_dir_ + "/data", ec)) {
    if (entry.path().filename() == "pid") {
      std::ifstream in(entry.path());
      long shim = 0, job = 0;
      if (in >> shim >> job) {
        kill(static_cast<pid_t>(-job), SIGKILL);
        kill(static_cast<pid_t>(shim), SIGKILL);
      }
    }
  }
  std::filesystem::remove_all(data_dir_, ec);
}

bool ServiceProcess::Start() {
  std::filesystem::remove(log_path_);
  pid_t pid = fork();
  if (pid == 0) {
    for (const auto& [k, v] : env_) {
      if (v.empty()) {
        unsetenv(k.c_str());
      } else {
        setenv(k.c_str(), v.c_str(), 1);
      }
    }
    if (!env_.count("GPUORCH_LOCAL_GPUS")) {
      setenv("GPUORCH_LOCAL_GPUS", "RTX4090:6", 1);
    }
    if (!env_.count("GPUORCH_LOG_LEVEL")) {
      setenv("GPUORCH_LOG_LEVEL", "info", 1);
    }
    // Tests of other behaviour are not throttled and hash passwords cheaply; the security tests
    // set these themselves.
    for (const char* key : {"GPUORCH_RATE_LIMIT_USER_RPS", "GPUORCH_RATE_LIMIT_ADDRESS_RPS"}) {
      if (!env_.count(key)) {
        setenv(key, "0", 1);
      }
    }
    if (!env_.count("GPUORCH_PASSWORD_COST")) {
      setenv("GPUORCH_PASSWORD_COST", "minimal", 1);
    }
    FILE* out = std::fopen(log_path_.c_str(), "a");
    dup2(fileno(out), 1);
    dup2(fileno(out), 2);
    std::string bin = BinPath("gpuorch");
    std::string dir = data_dir_ + "/data";
    execl(bin.c_str(), bin.c_str(), "serve", "--listen", listen_.c_str(), "--data-dir", dir.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  pid_ = pid;
  for (int i = 0; i < 3000; ++i) {
    std::string out = last_output();
    auto pos = out.find("listening on http://127.0.0.1:");
    if (pos != std::string::npos) {
      port_ = std::atoi(out.c_str() + pos + std::string("listening on http://127.0.0.1:").size());
      if (port_ > 0) {
        std::ifstream token_file(data_dir_ + "/data/admin.token");
        std::string token;
        if (token_file >> token) {
          token_ = token;
        }
        return true;
      }
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

int ServiceProcess::WaitExit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) {
    return -1;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

void ServiceProcess::Kill9() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
}

int ServiceProcess::Terminate() {
  if (pid_ <= 0) {
    return -1;
  }
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string ServiceProcess::last_output() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

HttpResult ServiceProcess::Call(const std::string& method, const std::string& path,
                                const std::string& body, std::vector<std::string> headers) const {
  const bool has_auth = std::any_of(headers.begin(), headers.end(), [](const std::string& h) {
    return h.size() >= 14 && strncasecmp(h.c_str(), "authorization:", 14) == 0;
  });
  if (!has_auth && !token_.empty()) {
    headers.push_back("Authorization: Bearer " + token_);
  }
  return HttpCall(method, url() + path, body, headers);
}

HttpResult ServiceProcess::Get(const std::string& path) const { return Call("GET", path); }

HttpResult ServiceProcess::Post(const std::string& path, const std::string& body,
                                std::vector<std::string> headers) const {
  return Call("POST", path, body, std::move(headers));
}

HttpResult ServiceProcess::Delete(const std::string& path) const { return Call("DELETE", path); }

std::string ServiceProcess::Submit(const nlohmann::json& body) const {
  HttpResult r = Post("/api/v1/jobs/submit", body.dump());
  if (r.status != 201) {
    return "";
  }
  return r.Json().value("job_id", "");
}

nlohmann::json ServiceProcess::WaitForJob(const std::string& job_id,
                                          const std::function<bool(const nlohmann::json&)>& pred,
                                          std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  nlohmann::json last;
  while (std::chrono::steady_clock::now() < deadline) {
    HttpResult r = Get("/api/v1/jobs/" + job_id);
    if (r.status == 200) {
      last = r.Json();
      if (pred(last)) {
        return last;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return last;
}

nlohmann::json ServiceProcess::WaitForStatus(const std::string& job_id, const std::string& status,
                                             std::chrono::milliseconds timeout) const {
  return WaitForJob(
      job_id, [&](const nlohmann::json& j) { return j.value("status", "") == status; }, timeout);
}

}  // namespace gpuorch::testing
