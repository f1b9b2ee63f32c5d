// Starts the real `gpuorch serve` binary on a free port with its own data dir, and talks HTTP to it.
// Used by the integration tests; not thread-safe (one test thread drives it).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace gpuorch::testing {

struct HttpResult {
  long status = 0;  // 0: no answer (connection failed)
  std::string body;
  std::map<std::string, std::string> headers;  // lowercased names
  nlohmann::json Json() const;
};

// One HTTP exchange with libcurl. `headers` are "Name: value" lines.
HttpResult HttpCall(const std::string& method, const std::string& url, const std::string& body = "",
                    const std::vector<std::string>& headers = {},
                    std::chrono::milliseconds timeout = std::chrono::seconds(30));

using Env = std::map<std::string, std::string>;

class ServiceProcess {
 public:
  // Creates a fresh temp data dir; `env` is added to the service's environment.
  explicit ServiceProcess(std::map<std::string, std::string> env = {});
  ~ServiceProcess();  // SIGKILLs the service if it runs, kills leftover job processes, removes the dir

  // Starts `gpuorch serve` and waits until it listens (port parsed from its stdout). Reuses the data
  // dir across restarts. Returns false on failure (with the output in last_output()).
  bool Start();
  void Kill9();
  // Changes the environment of the next Start() (an empty value unsets the variable).
  void SetEnv(const std::string& name, const std::string& value) { env_[name] = value; }
  // The address of the next Start() (default "127.0.0.1:0": any free port).
  void SetListen(const std::string& address) { listen_ = address; }
  // Waits up to `timeout` for the service to exit by itself; its exit status, or -1 when it still
  // runs (or was not started).
  int WaitExit(std::chrono::milliseconds timeout);
  // SIGTERM and wait; returns the exit status.
  int Terminate();

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& data_dir() const { return data_dir_; }
  pid_t pid() const { return pid_; }
  std::string last_output() const;

  // The bearer token Get/Post/Delete send: after Start(), the admin token the service wrote to
  // <data dir>/admin.token on its first start (empty when authentication is off). Calls that pass
  // their own Authorization header send that one instead.
  const std::string& token() const { return token_; }
  void set_token(std::string token) { token_ = std::move(token); }
  HttpResult Get(const std::string& path) const;
  HttpResult Post(const std::string& path, const std::string& body,
                  std::vector<std::string> headers = {"Content-Type: application/json"}) const;
  HttpResult Delete(const std::string& path) const;
  // Any method, with the token unless `headers` carry an Authorization header.
  HttpResult Call(const std::string& method, const std::string& path, const std::string& body = "",
                  std::vector<std::string> headers = {}) const;
  // Submits and returns the job id ("" on failure).
  std::string Submit(const nlohmann::json& body) const;
  // Polls GET /api/v1/jobs/{id} until `pred` holds (or `timeout`); returns the last job JSON.
  nlohmann::json WaitForJob(const std::string& job_id,
                            const std::function<bool(const nlohmann::json&)>& pred,
                            std::chrono::milliseconds timeout = std::chrono::seconds(60)) const;
  nlohmann::json WaitForStatus(const std::string& job_id, const std::string& status,
                               std::chrono::milliseconds timeout = std::chrono::seconds(60)) const;

 private:
  std::map<std::string, std::string> env_;
  std::string listen_ = "127.0.0.1:0";
  std::string data_dir_;
  std::string log_path_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string token_;
};

// Path of a binary built beside the tests (gpuorch, gpuctl, gpuorch-shim).
std::string BinPath(const std::string& name);
// Runs a command line with /bin/sh, returns {exit status, stdout+stderr}.
std::pair<int, std::string> RunCommand(const std::string& command_line);
bool ProcessAlive(pid_t pid);
// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort();

}  // namespace gpuorch::testing
