#include "security/secret_vault.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "testing/temp_dir.h"

namespace gpuorch::security {
namespace {

constexpr char kName[] = "runpod/RUNPOD_API_KEY";
constexpr char kSecret[] = "rpa_0123456789ABCDEFGHIJ";

std::unique_ptr<SecretVault> VaultWith(const std::string& key) {
  auto vault = SecretVault::Create(key);
  EXPECT_TRUE(vault) << vault.error().message;
  return vault ? std::move(*vault) : nullptr;
}

void WriteFile(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream(path) << text;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0);
  return st.st_mode & 07777;
}

TEST(SecretVaultTest, SealThenOpenRoundTrips) {
  auto vault = VaultWith(NewMasterKey());
  for (const std::string& plaintext :
       {std::string(kSecret), std::string(), std::string("\0\x01\xff binary", 10)}) {
    const std::string sealed = vault->Seal(plaintext, kName);
    EXPECT_EQ(sealed.size(), 24 + plaintext.size() + 16);
    auto opened = vault->Open(sealed, kName);
    ASSERT_TRUE(opened) << opened.error().message;
    EXPECT_EQ(*opened, plaintext);
  }
}

TEST(SecretVaultTest, SealedValueDoesNotContainThePlaintext) {
  auto vault = VaultWith(NewMasterKey());
  EXPECT_EQ(vault->Seal(kSecret, kName).find(kSecret), std::string::npos);
}

TEST(SecretVaultTest, OpenUnderAnotherKeyIsPermissionDenied) {
  auto vault = VaultWith(NewMasterKey());
  auto other = VaultWith(NewMasterKey());
  auto opened = other->Open(vault->Seal(kSecret, kName), kName);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, core::Code::kPermissionDenied);
  EXPECT_EQ(opened.error().message, "sealed value does not open under this key");
}

TEST(SecretVaultTest, OpenUnderAnotherNameIsPermissionDenied) {
  auto vault = VaultWith(NewMasterKey());
  const std::string sealed = vault->Seal(kSecret, kName);
  auto opened = vault->Open(sealed, "vastai/VASTAI_API_KEY");
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, core::Code::kPermissionDenied);
  EXPECT_FALSE(vault->Open(sealed, ""));
}

TEST(SecretVaultTest, AnyFlippedByteIsPermissionDenied) {
  auto vault = VaultWith(NewMasterKey());
  const std::string sealed = vault->Seal(kSecret, kName);
  for (size_t i = 0; i < sealed.size(); ++i) {
    std::string tampered = sealed;
    tampered[i] = static_cast<char>(tampered[i] ^ 0x01);
    auto opened = vault->Open(tampered, kName);
    ASSERT_FALSE(opened) << "byte " << i;
    EXPECT_EQ(opened.error().code, core::Code::kPermissionDenied);
  }
}

TEST(SecretVaultTest, TruncatedValueIsRefused) {
  auto vault = VaultWith(NewMasterKey());
  const std::string sealed = vault->Seal(kSecret, kName);
  auto too_short = vault->Open(sealed.substr(0, 39), kName);
  ASSERT_FALSE(too_short);
  EXPECT_EQ(too_short.error().code, core::Code::kInvalidArgument);
  auto cut = vault->Open(sealed.substr(0, sealed.size() - 1), kName);
  ASSERT_FALSE(cut);
  EXPECT_EQ(cut.error().code, core::Code::kPermissionDenied);
}

TEST(SecretVaultTest, TwoSealsOfTheSamePlaintextDiffer) {
  auto vault = VaultWith(NewMasterKey());
  EXPECT_NE(vault->Seal(kSecret, kName), vault->Seal(kSecret, kName));
}

TEST(SecretVaultTest, KeyIdIsStablePerKeyAndDiffersBetweenKeys) {
  const std::string key = NewMasterKey();
  const std::string id = VaultWith(key)->key_id();
  EXPECT_EQ(id.size(), 16u);
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
  EXPECT_EQ(VaultWith(key)->key_id(), id);
  EXPECT_NE(VaultWith(NewMasterKey())->key_id(), id);
}

TEST(SecretVaultTest, KeyOfWrongSizeIsRefused) {
  for (size_t size : {0, 16, 31, 33, 64}) {
    auto vault = SecretVault::Create(std::string(size, 'k'));
    ASSERT_FALSE(vault) << size;
    EXPECT_EQ(vault.error().code, core::Code::kInvalidArgument);
  }
}

TEST(MasterKeyTest, CreatesPrivateKeyFileAndReadsTheSameKeyBack) {
  testing::TempDir dir;
  const MasterKeySource source{.data_dir = dir.path().string()};
  auto created = LoadMasterKey(source);
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_EQ(created->size(), kMasterKeyBytes);
  EXPECT_EQ(ModeOf(dir.File("master.key")), 0600);
  auto again = LoadMasterKey(source);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(*again, *created);
  // Only the key file is left behind: no temporary files.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                          std::filesystem::directory_iterator()),
            1);
}

TEST(MasterKeyTest, MissingKeyIsNotCreatedWhenNotAllowed) {
  testing::TempDir dir;
  auto key = LoadMasterKey({.data_dir = dir.path().string(), .create_if_missing = false});
  ASSERT_FALSE(key);
  EXPECT_EQ(key.error().code, core::Code::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(dir.File("master.key")));
}

TEST(MasterKeyTest, ExplicitKeyFileMustExist) {
  testing::TempDir dir;
  auto key = LoadMasterKey({.key_file = dir.File("absent.key"), .data_dir = dir.path().string()});
  ASSERT_FALSE(key);
  EXPECT_EQ(key.error().code, core::Code::kNotFound);
}

TEST(MasterKeyTest, RefusesKeyFileReadableByOthers) {
  testing::TempDir dir;
  const std::string path = dir.File("master.key");
  ASSERT_TRUE(WriteKeyFile(path, NewMasterKey()));
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  auto key = LoadMasterKey({.key_file = path});
  ASSERT_FALSE(key);
  EXPECT_EQ(key.error().code, core::Code::kFailedPrecondition);
  EXPECT_NE(key.error().message.find("chmod 600"), std::string::npos) << key.error().message;
  // Also through the data directory, and it is not replaced by a new key.
  auto from_dir = LoadMasterKey({.data_dir = dir.path().string()});
  ASSERT_FALSE(from_dir);
  EXPECT_EQ(from_dir.error().code, core::Code::kFailedPrecondition);
}

TEST(MasterKeyTest, ReadsKeyFileWrittenByWriteKeyFile) {
  testing::TempDir dir;
  const std::string path = dir.File("rotated.key");
  const std::string first = NewMasterKey();
  ASSERT_TRUE(WriteKeyFile(path, first));
  const std::string second = NewMasterKey();
  ASSERT_TRUE(WriteKeyFile(path, second));  // rotation replaces the file
  EXPECT_EQ(ModeOf(path), 0600);
  auto key = LoadMasterKey({.key_file = path});
  ASSERT_TRUE(key) << key.error().message;
  EXPECT_EQ(*key, second);
  EXPECT_FALSE(WriteKeyFile(path, "short"));
}

TEST(MasterKeyTest, EnvValueInBase64AndHex) {
  const std::string key(
      "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"
      "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\xff",
      32);
  const std::string base64 = "base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHv8=";
  const std::string hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1eff";
  for (const std::string& value : {base64, hex,
                                   std::string("00010203040506070809"
                                               "0A0B0C0D0E0F101112131415161718191A1B1C1"
                                               "D1EFF")}) {
    auto loaded = LoadMasterKey({.env_value = value});
    ASSERT_TRUE(loaded) << value << ": " << loaded.error().message;
    EXPECT_EQ(*loaded, key);
  }
}

TEST(MasterKeyTest, EnvValueTakesPrecedenceOverFiles) {
  testing::TempDir dir;
  const std::string path = dir.File("file.key");
  ASSERT_TRUE(WriteKeyFile(path, NewMasterKey()));
  const std::string hex(64, 'a');
  auto key = LoadMasterKey({.env_value = hex, .key_file = path, .data_dir = dir.path().string()});
  ASSERT_TRUE(key);
  EXPECT_EQ(*key, std::string(32, '\xaa'));
  EXPECT_FALSE(std::filesystem::exists(dir.File("master.key")));
}

TEST(MasterKeyTest, BadEnvValuesAreRefusedWithoutEchoingThem) {
  for (const std::string& value :
       {std::string("hunter2hunter2"), std::string(63, 'a'), std::string(62, 'a') + "zz",
        std::string("base64:aGVsbG8="), std::string("base64:!!!notbase64!!!"),
        std::string("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHv8=")}) {
    auto key = LoadMasterKey({.env_value = value});
    ASSERT_FALSE(key) << value;
    EXPECT_EQ(key.error().code, core::Code::kInvalidArgument);
    EXPECT_EQ(key.error().message.find(value), std::string::npos);
  }
}

TEST(MasterKeyTest, KeyFileWithGarbageIsRefused) {
  testing::TempDir dir;
  const std::string path = dir.File("bad.key");
  WriteFile(path, "not a key\n", 0600);
  auto key = LoadMasterKey({.key_file = path});
  ASSERT_FALSE(key);
  EXPECT_EQ(key.error().code, core::Code::kInvalidArgument);
}

TEST(SecretHelpersTest, HintShowsLastFourCharactersOfLongSecretsOnly) {
  EXPECT_EQ(SecretHint("rpa_0123456789ABCD"), "ABCD");
  EXPECT_EQ(SecretHint("123456789012"), "9012");
  EXPECT_EQ(SecretHint("12345678901"), "");
  EXPECT_EQ(SecretHint(""), "");
}

TEST(SecretHelpersTest, FingerprintIsTheSha256Prefix) {
  EXPECT_EQ(SecretFingerprint("abc"), "ba7816bf8f01cfea");
  EXPECT_EQ(SecretFingerprint(kSecret), SecretFingerprint(kSecret));
  EXPECT_NE(SecretFingerprint(kSecret), SecretFingerprint("rpa_0123456789ABCDEFGHIK"));
}

}  // namespace
}  // namespace gpuorch::security
