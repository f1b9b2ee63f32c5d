#include "store/sqlite/internal/credential_table.h"

#include <set>
#include <string_view>
#include <utility>

#include "store/sqlite/internal/row_codec.h"

namespace gpuorch::store::sqlite_internal {
namespace {

// ReadCredential() reads the columns in this order.
constexpr std::string_view kCredentialColumns =
    "provider, name, sealed, key_id, hint, fingerprint, updated_at_ms";
constexpr size_t kCredentialColumnCount = 7;

CredentialRecord ReadCredential(const Statement& row) {
  return CredentialRecord{.provider = row.Text(0),
                          .name = row.Text(1),
                          .sealed = row.Blob(2),
                          .key_id = row.Text(3),
                          .hint = row.Text(4),
                          .fingerprint = row.Text(5),
                          .updated_at = core::FromUnixMillis(row.Int64(6))};
}

core::Status CheckCredential(const CredentialRecord& credential) {
  for (auto [value, field] :
       {std::pair{&credential.provider, "provider"}, std::pair{&credential.name, "name"},
        std::pair{&credential.sealed, "sealed"}, std::pair{&credential.key_id, "key_id"}}) {
    if (value->empty()) {
      return core::Fail(core::Code::kInvalidArgument, "a credential needs a " + std::string(field),
                        field);
    }
  }
  return core::Ok();
}

// Writes the row without checking `credential` first.
core::Status WriteCredentialRow(Connection& db, const CredentialRecord& credential) {
  GPUORCH_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Prepare("INSERT INTO provider_credentials(" + std::string(kCredentialColumns) +
                 ") VALUES(" + Placeholders(kCredentialColumnCount) +
                 ") ON CONFLICT(provider, name) DO UPDATE SET sealed = excluded.sealed, "
                 "key_id = excluded.key_id, hint = excluded.hint, "
                 "fingerprint = excluded.fingerprint, updated_at_ms = excluded.updated_at_ms"));
  stmt.Bind(1, credential.provider).Bind(2, credential.name).BindBlob(3, credential.sealed);
  stmt.Bind(4, credential.key_id).Bind(5, credential.hint).Bind(6, credential.fingerprint);
  stmt.Bind(7, core::ToUnixMillis(credential.updated_at));
  return stmt.Run();
}

}  // namespace

core::Status UpsertCredentialRow(Connection& db, const CredentialRecord& credential) {
  GPUORCH_TRY(CheckCredential(credential));
  return WriteCredentialRow(db, credential);
}

core::Result<std::vector<CredentialRecord>> SelectCredentials(Connection& db) {
  GPUORCH_ASSIGN_OR_RETURN(Statement stmt,
                           db.Prepare("SELECT " + std::string(kCredentialColumns) +
                                      " FROM provider_credentials ORDER BY provider, name"));
  return ReadAllRows<CredentialRecord>(stmt, &ReadCredential);
}

core::Status DeleteCredentialRow(Connection& db, const std::string& provider,
                                 const std::string& name) {
  GPUORCH_ASSIGN_OR_RETURN(
      Statement find,
      db.Prepare("SELECT 1 FROM provider_credentials WHERE provider = ? AND name = ?"));
  find.Bind(1, provider).Bind(2, name);
  GPUORCH_ASSIGN_OR_RETURN(bool found, find.Step());
  GPUORCH_TRY(find.Run());
  if (!found) {
    return core::Fail(core::Code::kNotFound, "credential " + provider + "/" + name + " not found",
                      "name");
  }
  GPUORCH_ASSIGN_OR_RETURN(
      Statement stmt,
      db.Prepare("DELETE FROM provider_credentials WHERE provider = ? AND name = ?"));
  stmt.Bind(1, provider).Bind(2, name);
  return stmt.Run();
}

core::Status ReplaceCredentialRows(Connection& db,
                                   const std::vector<CredentialRecord>& credentials) {
  std::set<std::pair<std::string, std::string>> keys;
  for (const CredentialRecord& credential : credentials) {
    GPUORCH_TRY(CheckCredential(credential));
    if (!keys.emplace(credential.provider, credential.name).second) {
      return core::Fail(
          core::Code::kInvalidArgument,
          "credential " + credential.provider + "/" + credential.name + " appears twice", "name");
    }
  }
  GPUORCH_ASSIGN_OR_RETURN(Statement clear, db.Prepare("DELETE FROM provider_credentials"));
  GPUORCH_TRY(clear.Run());
  for (const CredentialRecord& credential : credentials) {
    GPUORCH_TRY(WriteCredentialRow(db, credential));
  }
  return core::Ok();
}

}  // namespace gpuorch::store::sqlite_internal
