#include "security/secret_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "testing/temp_dir.h"

namespace gpuorch::security {
namespace {

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

size_t EntriesIn(const std::filesystem::path& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) {
    ++n;
  }
  return n;
}

void WritePlain(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream(path, std::ios::binary) << text;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

// Sets the process umask for one scope.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(::umask(mask)) {}
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;
  ~ScopedUmask() { ::umask(old_); }

 private:
  mode_t old_;
};

void ExpectRefused(const core::Result<std::string>& read, core::Code code,
                   std::string_view reason = {}) {
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().code, code) << read.error().message;
  if (!reason.empty()) {
    EXPECT_EQ(read.error().reason, reason);
  }
}

TEST(SecretFileTest, WriteThenReadRoundTripsWithMode0600WhateverTheUmask) {
  testing::TempDir dir;
  const std::string path = dir.File("jwt.key");
  const std::string binary("k\0e\ny\xff", 6);
  for (mode_t mask : {mode_t{0}, mode_t{022}, mode_t{0377}}) {
    SCOPED_TRACE(mask);
    {
      ScopedUmask umask(mask);
      ASSERT_TRUE(WriteSecretFile(path, binary));
    }
    EXPECT_EQ(ModeOf(path), 0600u);
    auto read = ReadSecretFile(path);
    ASSERT_TRUE(read) << read.error().message;
    EXPECT_EQ(*read, binary);
  }
  EXPECT_EQ(EntriesIn(dir.path()), 1u) << "no temporary file is left behind";
}

TEST(SecretFileTest, WriteReplacesAnExistingFileWholesale) {
  testing::TempDir dir;
  const std::string path = dir.File("admin.token");
  ASSERT_TRUE(WriteSecretFile(path, std::string(10'000, 'a')));
  ASSERT_TRUE(WriteSecretFile(path, "short\n"));
  EXPECT_EQ(ReadSecretFile(path).value(), "short\n");
  ASSERT_TRUE(WriteSecretFile(path, ""));
  EXPECT_EQ(ReadSecretFile(path).value(), "");
  EXPECT_EQ(EntriesIn(dir.path()), 1u);
}

TEST(SecretFileTest, CreateIfAbsentLetsAnExistingFileWin) {
  testing::TempDir dir;
  const std::string path = dir.File("master.key");
  ASSERT_TRUE(CreateSecretFileIfAbsent(path, "first\n"));
  EXPECT_EQ(ModeOf(path), 0600u);
  auto second = CreateSecretFileIfAbsent(path, "second\n");
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, core::Code::kAlreadyExists);
  EXPECT_EQ(second.error().message.find("second"), std::string::npos) << "never quotes contents";
  EXPECT_EQ(ReadSecretFile(path).value(), "first\n");
  EXPECT_EQ(EntriesIn(dir.path()), 1u) << "the loser's temporary file is gone too";
}

TEST(SecretFileTest, CreateIfAbsentDoesNotFollowOrReplaceADanglingSymlink) {
  testing::TempDir dir;
  const std::string path = dir.File("master.key");
  const std::string target = dir.File("elsewhere");
  ASSERT_EQ(::symlink(target.c_str(), path.c_str()), 0);
  auto created = CreateSecretFileIfAbsent(path, "key\n");
  ASSERT_FALSE(created);
  EXPECT_EQ(created.error().code, core::Code::kAlreadyExists);
  EXPECT_FALSE(std::filesystem::exists(target));
}

TEST(SecretFileTest, WriteIntoAMissingDirectoryIsFailedPrecondition) {
  testing::TempDir dir;
  for (auto* write : {&WriteSecretFile, &CreateSecretFileIfAbsent}) {
    auto written = write(dir.File("missing/jwt.key"), "x");
    ASSERT_FALSE(written);
    EXPECT_EQ(written.error().code, core::Code::kFailedPrecondition) << written.error().message;
  }
  EXPECT_EQ(EntriesIn(dir.path()), 0u);
}

TEST(SecretFileTest, ReadOfAMissingFileIsNotFound) {
  testing::TempDir dir;
  ExpectRefused(ReadSecretFile(dir.File("absent")), core::Code::kNotFound);
}

TEST(SecretFileTest, ReadRefusesFilesGroupOrOthersMayAccess) {
  testing::TempDir dir;
  const std::string path = dir.File("jwt.key");
  for (mode_t mode : {0640, 0604, 0620, 0602, 0610, 0601, 0666}) {
    SCOPED_TRACE(mode);
    WritePlain(path, "secret", mode);
    auto read = ReadSecretFile(path);
    ExpectRefused(read, core::Code::kFailedPrecondition, kInsecureSecretFileReason);
    EXPECT_NE(read.error().message.find("chmod 600 " + path), std::string::npos)
        << read.error().message;
    EXPECT_EQ(read.error().message.find("secret\n"), std::string::npos);
  }
  for (mode_t mode : {0600, 0400, 0700}) {
    WritePlain(path, "secret", mode);
    EXPECT_EQ(ReadSecretFile(path).value(), "secret") << mode;
  }
}

TEST(SecretFileTest, ReadRefusesWhatIsNotARegularFileWithoutBlocking) {
  testing::TempDir dir;
  const std::string fifo = dir.File("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  ExpectRefused(ReadSecretFile(fifo), core::Code::kFailedPrecondition);  // no writer: must not wait
  const std::string subdir = dir.File("subdir");
  ASSERT_TRUE(std::filesystem::create_directory(subdir));
  ASSERT_EQ(::chmod(subdir.c_str(), 0700), 0);
  ExpectRefused(ReadSecretFile(subdir), core::Code::kFailedPrecondition);
}

TEST(SecretFileTest, ReadFollowsASymlinkToAPrivateFile) {
  testing::TempDir dir;
  const std::string target = dir.File("real.key");
  const std::string link = dir.File("link.key");
  ASSERT_TRUE(WriteSecretFile(target, "secret"));
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  EXPECT_EQ(ReadSecretFile(link).value(), "secret");
}

TEST(SecretFileTest, ReadHonoursTheSizeCap) {
  testing::TempDir dir;
  const std::string path = dir.File("big");
  ASSERT_TRUE(WriteSecretFile(path, std::string(4096, 'x')));
  EXPECT_EQ(ReadSecretFile(path, 4096).value().size(), 4096u);
  ExpectRefused(ReadSecretFile(path, 4095), core::Code::kFailedPrecondition,
                kSecretFileTooLargeReason);
  ExpectRefused(ReadSecretFile(path, 0), core::Code::kFailedPrecondition,
                kSecretFileTooLargeReason);
  ASSERT_TRUE(WriteSecretFile(path, std::string(kDefaultMaxSecretFileBytes, 'y')));
  EXPECT_EQ(ReadSecretFile(path).value().size(), kDefaultMaxSecretFileBytes);
  ASSERT_TRUE(WriteSecretFile(path, std::string(kDefaultMaxSecretFileBytes + 1, 'y')));
  ExpectRefused(ReadSecretFile(path), core::Code::kFailedPrecondition, kSecretFileTooLargeReason);
}

}  // namespace
}  // namespace gpuorch::security
