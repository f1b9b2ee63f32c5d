#include "fakes/fake_common.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace gpuorch::fakes {

double LedgerEntry::CostUsd(core::SystemTime now) const {
  const core::SystemTime end = ended_at.value_or(now);
  if (end <= created_at) {
    return 0;
  }
  return price_per_hour * std::chrono::duration<double>(end - created_at).count() / 3600.0;
}

void FaultInjector::Add(Fault fault) {
  std::lock_guard lock(mu_);
  faults_.push_back(fault);
}

void FaultInjector::Clear() {
  std::lock_guard lock(mu_);
  faults_.clear();
}

std::optional<Fault> FaultInjector::Take(const std::string& operation) {
  std::lock_guard lock(mu_);
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    if (!it->operation.empty() && it->operation != operation) {
      continue;
    }
    Fault taken = *it;
    if (it->times > 0 && --it->times == 0) {
      faults_.erase(it);
    }
    return taken;
  }
  return std::nullopt;
}

LateAnswers::~LateAnswers() { Stop(); }

void LateAnswers::Send(std::chrono::milliseconds delay, api::Responder respond,
                       api::HttpResponse response) {
  std::unique_lock lock(mu_);
  if (stopping_) {
    lock.unlock();
    respond(std::move(response));
    return;
  }
  threads_.emplace_back([this, delay, respond = std::move(respond),
                         response = std::move(response)]() mutable {
    {
      std::unique_lock wait_lock(mu_);
      cv_.wait_for(wait_lock, delay, [this] { return stopping_; });
    }
    respond(std::move(response));
  });
}

void LateAnswers::Stop() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (auto& thread : threads) {
    thread.join();
  }
}

std::vector<AgentProcess> TakeAgents(std::vector<LedgerEntry>& ledger, const std::string& work_dir) {
  std::vector<AgentProcess> agents;
  for (auto& entry : ledger) {
    if (entry.agent_pid > 0) {
      agents.emplace_back(entry.agent_pid, work_dir + "/" + entry.provider_instance_id);
      entry.agent_pid = 0;
    }
  }
  return agents;
}

void KillAgents(const std::vector<AgentProcess>& agents) {
  for (const auto& [pid, dir] : agents) {
    KillAgent(pid, dir);
  }
}

pid_t LaunchAgent(const AgentLaunch& launch) {
  std::error_code ec;
  std::filesystem::create_directories(launch.data_dir, ec);
  const std::string log_path =
      launch.log_path.empty() ? launch.data_dir + "/agent.log" : launch.log_path;
  std::map<std::string, std::string> env = launch.extra_env;
  env["GPUORCH_SERVER"] = launch.server_url;
  env["GPUORCH_JOIN_TOKEN"] = launch.join_token;
  env["GPUORCH_LOCAL_GPUS"] = launch.local_gpus;
  env["GPUORCH_DATA_DIR"] = launch.data_dir;
  env["GPUORCH_NODE_NAME"] = launch.node_name;
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    std::string name = entry.substr(0, entry.find('='));
    if (!env.count(name)) {
      env_strings.push_back(entry);
    }
  }
  for (const auto& [k, v] : env) {
    env_strings.push_back(k + "=" + v);
  }
  std::vector<char*> envp;
  for (auto& s : env_strings) {
    envp.push_back(s.data());
  }
  envp.push_back(nullptr);
  std::string bin = launch.agent_binary;
  std::string sub = "agent";
  char* argv[] = {bin.data(), sub.data(), nullptr};
  pid_t pid = fork();
  if (pid < 0) {
    return -1;
  }
  if (pid == 0) {
    setpgid(0, 0);
    int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    execve(bin.c_str(), argv, envp.data());
    _exit(127);
  }
  setpgid(pid, pid);
  return pid;
}

void KillAgent(pid_t agent_pid, const std::string& agent_data_dir) {
  if (agent_pid > 0) {
    kill(-agent_pid, SIGKILL);
  }
  // Jobs the agent started live in their own process groups: "<shim> <job pid> <ticks>" per attempt.
  std::error_code ec;
  const std::filesystem::path jobs = std::filesystem::path(agent_data_dir) / "jobs";
  if (std::filesystem::exists(jobs, ec)) {
    for (auto it = std::filesystem::recursive_directory_iterator(jobs, ec);
         it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (ec || it->path().filename() != "pid") {
        continue;
      }
      std::ifstream in(it->path());
      long shim = 0, job = 0;
      if (in >> shim >> job) {
        if (job > 1) {
          kill(-static_cast<pid_t>(job), SIGKILL);
        }
        if (shim > 1) {
          kill(static_cast<pid_t>(shim), SIGKILL);
        }
      }
    }
  }
  if (agent_pid > 0) {
    int status = 0;
    waitpid(agent_pid, &status, 0);
  }
}

}  // namespace gpuorch::fakes
