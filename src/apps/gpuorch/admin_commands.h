// The admin commands of `gpuorch`, run against the store of a data dir (the service may be running,
// except for rotate-master-key):
//
//   gpuorch user add NAME [--admin]          password read from stdin (empty: API tokens only)
//   gpuorch user list
//   gpuorch user disable NAME | enable NAME
//   gpuorch user token NAME [--name LABEL] [--expires-in-days N]   prints a new API token
//   gpuorch rotate-master-key               re-seals stored provider credentials under a new key
//
// Each returns the process exit status and prints errors to stderr, never a secret except the one
// token or key it was asked to make.
#pragma once

#include <optional>
#include <string>

#include "core/config.h"

namespace gpuorch::apps {

struct UserCommand {
  std::string action;  // add, list, disable, enable, token
  std::string name;
  bool admin = false;
  std::string token_name = "cli";
  std::optional<int> expires_in_days;
};

int RunUserCommand(const core::Config& config, const UserCommand& command);
int RunRotateMasterKey(const core::Config& config);

// Completes a rotation that stopped between re-sealing and renaming the new key file: when the
// stored credentials were sealed under the key in `<key path>.new`, that file replaces the key file.
// Called by `serve` before it opens the vault. Returns true when it finished one.
[[nodiscard]] core::Result<bool> FinishInterruptedRotation(const core::Config& config);

// The file the master key lives in: GPUORCH_MASTER_KEY_FILE, else <data-dir>/master.key.
std::string MasterKeyPath(const core::Config& config);

}  // namespace gpuorch::apps
