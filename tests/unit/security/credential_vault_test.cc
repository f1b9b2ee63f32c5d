#include "security/credential_vault.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/clock.h"
#include "security/secret_vault.h"
#include "store/sqlite/sqlite_store.h"
#include "testing/must.h"
#include "testing/temp_dir.h"

namespace gpuorch::security {
namespace {

using namespace std::chrono_literals;

constexpr char kRunpodKey[] = "rpa_RUNPOD0123456789abcdefWXYZ";
constexpr char kAwsKeyId[] = "AKIAEXAMPLEKEYID1234";
constexpr char kAwsSecret[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
constexpr char kAwsSession[] = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN";

using testing::Must;

std::unique_ptr<SecretVault> NewVault() { return Must(SecretVault::Create(NewMasterKey())); }

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class CredentialVaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = Must(store::OpenSqliteStore({.path = dir_.File("gpuorch.db")}));
    credentials_ = std::make_unique<CredentialVault>(*store_, *vault_, clock_);
  }

  void PutAll() {
    ASSERT_TRUE(credentials_->Put("runpod", {{"api_key", kRunpodKey}}));
    ASSERT_TRUE(credentials_->Put("aws", {{"access_key_id", kAwsKeyId},
                                          {"secret_access_key", kAwsSecret},
                                          {"session_token", kAwsSession}}));
  }

  void ExpectInvalidAndNothingStored(const core::Status& status, const std::string& field) {
    ASSERT_FALSE(status);
    EXPECT_EQ(status.error().code, core::Code::kInvalidArgument) << status.error().message;
    EXPECT_EQ(status.error().field, field);
    EXPECT_TRUE(Must(store_->ListCredentials()).empty());
  }

  testing::TempDir dir_;
  core::FakeClock clock_;
  std::unique_ptr<SecretVault> vault_ = NewVault();
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<CredentialVault> credentials_;
};

TEST_F(CredentialVaultTest, PutThenOpenAllRoundTrips) {
  PutAll();
  const std::map<std::string, std::string> expected = {{"RUNPOD_API_KEY", kRunpodKey},
                                                       {"AWS_ACCESS_KEY_ID", kAwsKeyId},
                                                       {"AWS_SECRET_ACCESS_KEY", kAwsSecret},
                                                       {"AWS_SESSION_TOKEN", kAwsSession}};
  EXPECT_EQ(Must(credentials_->OpenAll()), expected);
  for (const store::CredentialRecord& record : Must(store_->ListCredentials())) {
    EXPECT_EQ(record.key_id, vault_->key_id()) << record.name;
  }
}

TEST_F(CredentialVaultTest, ListShowsHintAndFingerprintButNeverThePlaintext) {
  PutAll();
  const std::vector<CredentialInfo> listed = Must(credentials_->List());
  ASSERT_EQ(listed.size(), 4u);
  const std::vector<std::string> secrets = {kRunpodKey, kAwsKeyId, kAwsSecret, kAwsSession};
  for (const CredentialInfo& info : listed) {
    SCOPED_TRACE(info.name);
    EXPECT_EQ(info.updated_at, clock_.Now());
    EXPECT_EQ(info.hint.size(), 4u);
    EXPECT_EQ(info.fingerprint.size(), 16u);
    for (const std::string& secret : secrets) {
      for (const std::string& field : {info.provider, info.name, info.hint, info.fingerprint}) {
        EXPECT_EQ(field.find(secret), std::string::npos);
      }
    }
  }
  const auto runpod = std::find_if(listed.begin(), listed.end(),
                                   [](const CredentialInfo& c) { return c.provider == "runpod"; });
  ASSERT_NE(runpod, listed.end());
  EXPECT_EQ(runpod->name, "RUNPOD_API_KEY");
  EXPECT_EQ(runpod->hint, "WXYZ");
  EXPECT_EQ(runpod->fingerprint, SecretFingerprint(kRunpodKey));
  // Nor does the plaintext reach the disk.
  const std::string disk = ReadAll(dir_.File("gpuorch.db")) + ReadAll(dir_.File("gpuorch.db-wal"));
  ASSERT_NE(disk.find("RUNPOD_API_KEY"), std::string::npos);
  for (const std::string& secret : secrets) {
    EXPECT_EQ(disk.find(secret), std::string::npos) << secret;
  }
}

TEST_F(CredentialVaultTest, UnknownProviderIsNotFound) {
  auto status = credentials_->Put("gcp", {{"api_key", kRunpodKey}});
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().code, core::Code::kNotFound);
  EXPECT_EQ(status.error().field, "provider");
  EXPECT_TRUE(Must(store_->ListCredentials()).empty());
}

TEST_F(CredentialVaultTest, UnknownFieldIsInvalidAndNothingIsStored) {
  ExpectInvalidAndNothingStored(
      credentials_->Put("runpod", {{"api_key", kRunpodKey}, {"region", "eu"}}), "region");
  ExpectInvalidAndNothingStored(credentials_->Put("vastai", {{"access_key_id", kAwsKeyId}}),
                                "access_key_id");
}

TEST_F(CredentialVaultTest, MissingRequiredFieldIsInvalidAndNothingIsStored) {
  ExpectInvalidAndNothingStored(credentials_->Put("aws", {{"access_key_id", kAwsKeyId}}),
                                "secret_access_key");
  ExpectInvalidAndNothingStored(
      credentials_->Put("aws", {{"secret_access_key", kAwsSecret}, {"session_token", kAwsSession}}),
      "access_key_id");
  ExpectInvalidAndNothingStored(credentials_->Put("runpod", {}), "api_key");
}

TEST_F(CredentialVaultTest, ControlCharactersEmptyAndOverlongValuesAreInvalid) {
  for (const std::string& value :
       {std::string("rpa_abc\ndef"), std::string("rpa_abc\tdef"), std::string("rpa_\x7f"),
        std::string("rpa_\0abc", 8), std::string(""), std::string(4097, 'k')}) {
    SCOPED_TRACE(value.size());
    ExpectInvalidAndNothingStored(credentials_->Put("runpod", {{"api_key", value}}), "api_key");
  }
  // The error does not echo the value.
  auto status = credentials_->Put("runpod", {{"api_key", "rpa_secret\n"}});
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().message.find("rpa_secret"), std::string::npos);
  EXPECT_TRUE(credentials_->Put("runpod", {{"api_key", std::string(4096, 'k')}}));
}

TEST_F(CredentialVaultTest, PutReplacesOnlyThatProvidersEntries) {
  PutAll();
  clock_.Advance(1h);
  ASSERT_TRUE(credentials_->Put("aws", {{"access_key_id", "AKIANEWKEYID00000000"},
                                        {"secret_access_key", "new-secret-access-key-value"}}));
  const std::map<std::string, std::string> expected = {
      {"RUNPOD_API_KEY", kRunpodKey},
      {"AWS_ACCESS_KEY_ID", "AKIANEWKEYID00000000"},
      {"AWS_SECRET_ACCESS_KEY", "new-secret-access-key-value"}};
  EXPECT_EQ(Must(credentials_->OpenAll()), expected) << "the old session token is gone";
  for (const CredentialInfo& info : Must(credentials_->List())) {
    EXPECT_EQ(info.updated_at == clock_.Now(), info.provider == "aws") << info.name;
  }
}

TEST_F(CredentialVaultTest, DeleteRemovesOneProvider) {
  PutAll();
  ASSERT_TRUE(credentials_->Delete("aws"));
  EXPECT_EQ(Must(credentials_->OpenAll()),
            (std::map<std::string, std::string>{{"RUNPOD_API_KEY", kRunpodKey}}));
  for (const std::string provider : {"aws", "vastai", "gcp"}) {
    auto again = credentials_->Delete(provider);
    ASSERT_FALSE(again) << provider;
    EXPECT_EQ(again.error().code, core::Code::kNotFound);
  }
  EXPECT_EQ(Must(store_->ListCredentials()).size(), 1u);
}

TEST_F(CredentialVaultTest, OpenAllUnderAnotherMasterKeyIsPermissionDenied) {
  PutAll();
  auto other_key = NewVault();
  CredentialVault other(*store_, *other_key, clock_);
  auto opened = other.OpenAll();
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, core::Code::kPermissionDenied);
  EXPECT_NE(opened.error().message.find(vault_->key_id()), std::string::npos)
      << "names the key the values were sealed under: " << opened.error().message;
  for (const std::string secret : {kRunpodKey, kAwsKeyId, kAwsSecret, kAwsSession}) {
    EXPECT_EQ(opened.error().message.find(secret), std::string::npos);
  }
  EXPECT_EQ(Must(other.List()).size(), 4u) << "listing needs no key";
}

TEST_F(CredentialVaultTest, ResealMovesEveryCredentialToTheNewKey) {
  PutAll();
  const auto plaintext = Must(credentials_->OpenAll());
  const auto listed = Must(credentials_->List());
  auto next = NewVault();
  EXPECT_EQ(Must(ResealCredentials(*store_, *vault_, *next)), 4);

  EXPECT_EQ(Must(CredentialVault(*store_, *next, clock_).OpenAll()), plaintext);
  auto under_old = credentials_->OpenAll();
  ASSERT_FALSE(under_old);
  EXPECT_EQ(under_old.error().code, core::Code::kPermissionDenied);
  for (const store::CredentialRecord& record : Must(store_->ListCredentials())) {
    EXPECT_EQ(record.key_id, next->key_id()) << record.name;
  }
  const auto relisted = Must(credentials_->List());
  ASSERT_EQ(relisted.size(), listed.size());
  for (size_t i = 0; i < listed.size(); ++i) {
    EXPECT_EQ(relisted[i].hint, listed[i].hint);
    EXPECT_EQ(relisted[i].fingerprint, listed[i].fingerprint);
  }
}

TEST_F(CredentialVaultTest, ResealWithTheWrongOldKeyChangesNothing) {
  PutAll();
  const auto before = Must(store_->ListCredentials());
  auto wrong = NewVault();
  auto next = NewVault();
  auto resealed = ResealCredentials(*store_, *wrong, *next);
  ASSERT_FALSE(resealed);
  EXPECT_EQ(resealed.error().code, core::Code::kPermissionDenied);
  EXPECT_EQ(Must(store_->ListCredentials()), before);
  EXPECT_TRUE(credentials_->OpenAll()) << "still opens under the key it was sealed with";
}

TEST_F(CredentialVaultTest, ResealOfAnEmptyStoreIsZero) {
  auto next = NewVault();
  EXPECT_EQ(Must(ResealCredentials(*store_, *vault_, *next)), 0);
}

TEST(CredentialFieldsTest, RequiredFieldsAreKnownFields) {
  for (const auto& [provider, fields] : CredentialFields()) {
    for (const std::string& required : RequiredCredentialFields(provider)) {
      EXPECT_EQ(fields.count(required), 1u) << provider << "." << required;
    }
  }
  EXPECT_EQ(RequiredCredentialFields("aws"),
            (std::vector<std::string>{"access_key_id", "secret_access_key"}));
  EXPECT_TRUE(RequiredCredentialFields("gcp").empty());
}

}  // namespace
}  // namespace gpuorch::security
