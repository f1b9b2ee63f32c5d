#include "apps/gpuorch/admin_commands.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "apps/gpuorch/security_setup.h"
#include "core/clock.h"
#include "core/ids.h"
#include "security/credential_vault.h"
#include "security/secret_file.h"
#include "security/secret_vault.h"
#include "security/user_admin.h"
#include "store/sqlite/sqlite_store.h"

namespace gpuorch::apps {
namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "gpuorch: %s\n", message.c_str());
  return 1;
}

core::Result<std::unique_ptr<store::Store>> OpenStore(const core::Config& config) {
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  return store::OpenSqliteStore(store::SqliteStoreOptions{
      .path = config.data_dir + "/gpuorch.db", .max_batch = config.group_commit_max_batch});
}

// One line from stdin without its newline; a terminal does not echo it.
std::string ReadPassword() {
  const bool tty = ::isatty(STDIN_FILENO);
  if (tty) {
    std::fprintf(stderr, "password (empty: API tokens only): ");
    std::fflush(stderr);
    std::system("stty -echo 2>/dev/null");
  }
  std::string line;
  std::getline(std::cin, line);
  if (tty) {
    std::system("stty echo 2>/dev/null");
    std::fprintf(stderr, "\n");
  }
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) {
    line.pop_back();
  }
  return line;
}

std::string Or(const std::optional<int>& v, const char* otherwise) {
  return v ? std::to_string(*v) : otherwise;
}

}  // namespace

std::string MasterKeyPath(const core::Config& config) {
  return config.security.master_key_file.empty() ? config.data_dir + "/master.key"
                                                 : config.security.master_key_file;
}

int RunUserCommand(const core::Config& config, const UserCommand& command) {
  auto store = OpenStore(config);
  if (!store) {
    return Fail("store: " + store.error().message);
  }
  core::Clock& clock = core::RealClock::Instance();
  auto ids = core::MakeRandomIdGenerator(clock);
  security::UserAdmin users(**store, clock, *ids, PasswordCostOf(config));
  if (command.action == "list") {
    auto list = (*store)->ListUsers();
    if (!list) {
      return Fail(list.error().message);
    }
    std::printf("%-24s %-6s %-9s %-9s %-11s %s\n", "NAME", "ROLE", "STATE", "MAX_GPUS",
                "MAX_QUEUED", "BUDGET_USD");
    for (const auto& u : *list) {
      std::string budget = "-";
      if (u.monthly_budget_usd) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.2f", *u.monthly_budget_usd);
        budget = buf;
      }
      std::printf("%-24s %-6s %-9s %-9s %-11s %s\n", u.name.c_str(), u.role.c_str(),
                  u.disabled ? "disabled" : "active", Or(u.max_gpus, "default").c_str(),
                  Or(u.max_queued_jobs, "default").c_str(), budget.c_str());
    }
    return 0;
  }
  if (command.action == "add") {
    const std::string password = ReadPassword();
    auto user = users.AddUser(command.name, password,
                              command.admin ? security::kAdminRole : security::kUserRole);
    if (!user) {
      return Fail(user.error().message);
    }
    std::printf("created %s %s\n", user->role.c_str(), user->name.c_str());
    return 0;
  }
  if (command.action == "disable" || command.action == "enable") {
    auto user = users.SetDisabled(command.name, command.action == "disable");
    if (!user) {
      return Fail(user.error().message);
    }
    std::printf("%s %s (its access tokens stop working within seconds)\n",
                command.action == "disable" ? "disabled" : "enabled", user->name.c_str());
    return 0;
  }
  if (command.action == "token") {
    std::optional<std::chrono::seconds> ttl;
    if (command.expires_in_days) {
      ttl = std::chrono::hours(24) * *command.expires_in_days;
    }
    auto token = users.CreateToken(command.name, command.token_name, ttl);
    if (!token) {
      return Fail(token.error().message);
    }
    std::fprintf(stderr, "API token %s for %s (shown once):\n", token->record.id.c_str(),
                 command.name.c_str());
    std::printf("%s\n", token->secret.c_str());
    return 0;
  }
  return Fail("unknown user action '" + command.action + "'");
}

core::Result<bool> FinishInterruptedRotation(const core::Config& config) {
  const std::string path = MasterKeyPath(config);
  const std::string next_path = path + ".new";
  if (!config.security.master_key.empty() || !std::filesystem::exists(next_path)) {
    return false;
  }
  GPUORCH_ASSIGN_OR_RETURN(
      std::string decoded,
      security::LoadMasterKey(security::MasterKeySource{.key_file = next_path,
                                                        .create_if_missing = false}));
  GPUORCH_ASSIGN_OR_RETURN(auto next_vault, security::SecretVault::Create(decoded));
  auto store = OpenStore(config);
  if (!store) {
    return core::Fail(store.error());
  }
  GPUORCH_ASSIGN_OR_RETURN(auto credentials, (*store)->ListCredentials());
  const bool resealed = !credentials.empty() &&
                        std::all_of(credentials.begin(), credentials.end(), [&](const auto& c) {
                          return c.key_id == next_vault->key_id();
                        });
  if (!resealed) {
    // The rotation stopped before its transaction: the old key still holds.
    std::filesystem::remove(next_path);
    return false;
  }
  std::error_code ec;
  std::filesystem::rename(next_path, path, ec);
  if (ec) {
    return core::Fail(core::Code::kUnavailable, "cannot finish key rotation: " + ec.message());
  }
  return true;
}

int RunRotateMasterKey(const core::Config& config) {
  // The service seals with the key it loaded: it must not run during a rotation.
  const std::string lock_path = config.data_dir + "/gpuorch.lock";
  const int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0 || ::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    return Fail("gpuorch serve is running on " + config.data_dir + ": stop it first");
  }
  if (auto finished = FinishInterruptedRotation(config); !finished) {
    return Fail(finished.error().message);
  }
  auto store = OpenStore(config);
  if (!store) {
    return Fail("store: " + store.error().message);
  }
  auto old_key = security::LoadMasterKey(
      security::MasterKeySource{.env_value = config.security.master_key,
                                .key_file = config.security.master_key_file,
                                .data_dir = config.data_dir,
                                .create_if_missing = false});
  if (!old_key) {
    return Fail("current master key: " + old_key.error().message);
  }
  const std::string new_key = security::NewMasterKey();
  auto old_vault = security::SecretVault::Create(*old_key);
  auto new_vault = security::SecretVault::Create(new_key);
  if (!old_vault || !new_vault) {
    return Fail("cannot build the vaults");
  }
  const bool from_env = !config.security.master_key.empty();
  const std::string path = MasterKeyPath(config);
  // 1. The new key reaches the disk first; 2. one transaction re-seals every credential; 3. the
  // new key file replaces the old. A crash between 2 and 3 is finished by the next start.
  if (!from_env) {
    if (auto written = security::WriteKeyFile(path + ".new", new_key); !written) {
      return Fail(written.error().message);
    }
  }
  auto count = security::ResealCredentials(**store, **old_vault, **new_vault);
  if (!count) {
    if (!from_env) {
      std::filesystem::remove(path + ".new");
    }
    return Fail("re-sealing failed, nothing changed: " + count.error().message);
  }
  if (from_env) {
    std::fprintf(stderr,
                 "re-sealed %d credential(s). The key came from GPUORCH_MASTER_KEY: set it to the "
                 "new key below before the next start (shown once).\n",
                 *count);
    for (unsigned char c : new_key) {
      std::printf("%02x", c);
    }
    std::printf("\n");
    return 0;
  }
  std::error_code ec;
  std::filesystem::rename(path + ".new", path, ec);
  if (ec) {
    return Fail("re-sealed, but cannot replace " + path + ": " + ec.message() +
                " (the next start finishes it)");
  }
  std::printf("re-sealed %d credential(s) under a new master key (id %s) in %s\n", *count,
              (*new_vault)->key_id().c_str(), path.c_str());
  return 0;
}

}  // namespace gpuorch::apps
