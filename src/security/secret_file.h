// Files that hold secrets (admin.token, jwt.key, master.key): written atomically with mode 0600 and
// read only when nobody but the owner may read or write them. The one implementation of secret-file
// I/O in the service; callers add their own context to the errors.
//
// Errors, shared by every function here:
// - kNotFound: (read) there is no file at the path.
// - kAlreadyExists: (create if absent) a file is already at the path; it is left as it was.
// - kFailedPrecondition: the file or its directory is not accessible (EACCES, EPERM, EROFS,
// ENOTDIR,
//   a missing directory, a symlink loop); (read) it is not a regular file, group or others may
//   access it (reason kInsecureSecretFileReason; the message says to chmod 600), or it is larger
//   than the caller allows (reason kSecretFileTooLargeReason).
// - kUnavailable: any other I/O error (EIO, ENOSPC, EMFILE, ...).
// A write that fails leaves no temporary file behind. Messages name paths, never contents.
//
// Thread-safe (no shared state). Every function blocks on file I/O, including fsync.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/error.h"

namespace gpuorch::security {

inline constexpr std::string_view kInsecureSecretFileReason = "insecure_secret_file";
inline constexpr std::string_view kSecretFileTooLargeReason = "secret_file_too_large";
// The largest secret file ReadSecretFile accepts unless told otherwise.
inline constexpr size_t kDefaultMaxSecretFileBytes = size_t{1} << 20;

// Writes `contents` to `path` with mode 0600, replacing any file there: a temporary file beside it
// (created exclusively, chmod 0600 whatever the umask), written in full, fsync, rename over `path`,
// fsync of the directory. Readers see the old file or the new one, never a mix.
[[nodiscard]] core::Status WriteSecretFile(const std::string& path, std::string_view contents);

// As WriteSecretFile, but installs the file with link() instead of rename(), so that when a file
// already exists at `path` (say, one another process created a moment earlier) that file wins and
// the result is kAlreadyExists.
[[nodiscard]] core::Status CreateSecretFileIfAbsent(const std::string& path,
                                                    std::string_view contents);

// The contents of the secret file at `path` (a symlink is followed to a regular file), at most
// `max_bytes` of them. Opening never blocks on a FIFO or device: only a regular file is read.
// Intermediate buffers are wiped.
[[nodiscard]] core::Result<std::string> ReadSecretFile(
    const std::string& path, size_t max_bytes = kDefaultMaxSecretFileBytes);

}  // namespace gpuorch::security
