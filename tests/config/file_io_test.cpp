// config/file_io.h on the real file system: what the bounded reader refuses and
// with which code, and that the writer's no-overwrite option holds when many
// writers race for one name.
#include "config/file_io.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace tranche::config {
namespace {

namespace fs = std::filesystem;
using core::ErrorCode;

// The bytes of `p` ("" when unreadable; the reader's own test is below).
std::string slurp(const fs::path& p) {
  auto bytes = read_file_limited(p.string(), 1 << 20);
  return bytes ? *bytes : std::string();
}

class FileIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tranche-file-io-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The names in dir_ (a temporary file left behind would show here).
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) out.push_back(e.path().filename().string());
    return out;
  }

  fs::path dir_;
};

TEST_F(FileIoTest, ReadIsBoundedAndSaysWhy) {
  const fs::path p = dir_ / "ten";
  ASSERT_TRUE(write_file_atomic(p, "0123456789").ok());
  auto exact = read_file_limited(p.string(), 10);
  ASSERT_TRUE(exact.ok()) << exact.error().message;
  EXPECT_EQ(*exact, "0123456789");

  auto over = read_file_limited(p.string(), 9);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().code, ErrorCode::kTooLarge);
  EXPECT_NE(over.error().message.find(p.string()), std::string::npos) << over.error().message;
  EXPECT_NE(over.error().message.find("longer than 9 bytes"), std::string::npos);

  auto missing = read_file_limited((dir_ / "absent").string(), 10);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message.find("absent"), std::string::npos);
  // Names that cannot exist are not found either (a scenario name from a
  // command line may be anything).
  EXPECT_EQ(read_file_limited((p / "below-a-file").string(), 10).error().code,
            ErrorCode::kNotFound);
  EXPECT_EQ(read_file_limited(std::string(5000, 'a'), 10).error().code, ErrorCode::kNotFound);

  // Present but unreadable as a file: not "not found".
  auto directory = read_file_limited(dir_.string(), 10);
  ASSERT_FALSE(directory.ok());
  EXPECT_EQ(directory.error().code, ErrorCode::kInvalidArgument);
}

TEST_F(FileIoTest, WriteReplacesAndLeavesNoTemporaryFile) {
  const fs::path p = dir_ / "sub" / "f.json";  // the parent is created
  ASSERT_TRUE(write_file_atomic(p, "one").ok());
  ASSERT_TRUE(write_file_atomic(p, "two").ok());
  EXPECT_EQ(slurp(p), "two");
  EXPECT_EQ(names(), std::vector<std::string>{"sub"});
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_ / "sub"), fs::directory_iterator{}), 1);
}

TEST_F(FileIoTest, NoOverwriteRefusesAnExistingFileAndKeepsItsBytes) {
  const fs::path p = dir_ / "key.pem";
  WriteOptions exclusive;
  exclusive.mode = 0600;
  exclusive.no_overwrite = true;
  exclusive.create_parent_dirs = false;
  ASSERT_TRUE(write_file_atomic(p, "first", exclusive).ok());
  struct stat st {};
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto again = write_file_atomic(p, "second", exclusive);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::kConflict);
  EXPECT_EQ(again.error().message, p.string() + ": File exists");
  EXPECT_EQ(slurp(p), "first");
  EXPECT_EQ(names(), std::vector<std::string>{"key.pem"});

  auto no_dir = write_file_atomic(dir_ / "absent" / "k.pem", "x", exclusive);
  ASSERT_FALSE(no_dir.ok());
  EXPECT_FALSE(fs::exists(dir_ / "absent"));
}

TEST_F(FileIoTest, NoOverwriteHasExactlyOneWinnerInARace) {
  const fs::path p = dir_ / "contended";
  WriteOptions exclusive;
  exclusive.no_overwrite = true;
  constexpr int kWriters = 8;
  std::vector<int> won(kWriters, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kWriters; ++i) {
    threads.emplace_back([&, i] {
      // Long enough that a writer sharing a temporary file would show.
      won[static_cast<std::size_t>(i)] =
          write_file_atomic(p, std::string(1 << 16, static_cast<char>('a' + i)), exclusive).ok();
    });
  }
  for (auto& t : threads) t.join();
  int winners = 0;
  for (int i = 0; i < kWriters; ++i) {
    if (won[static_cast<std::size_t>(i)] == 0) continue;
    ++winners;
    EXPECT_EQ(slurp(p), std::string(1 << 16, static_cast<char>('a' + i)));
  }
  EXPECT_EQ(winners, 1);
  EXPECT_EQ(names(), std::vector<std::string>{"contended"});
}

}  // namespace
}  // namespace tranche::config
