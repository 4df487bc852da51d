#include <gtest/gtest.h>

#include <filesystem>

#include "strata/profiles/probes.h"

namespace strata::profiles {
namespace {

// A fresh empty folder under the build's temp dir, removed afterwards.
class StorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("strata-storage-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  StorageOptions small() const {
    StorageOptions o;
    o.path = dir_.string();
    o.file_bytes = 4 << 20;
    o.chunks = {4096, 65536, 1 << 20};
    o.seconds_per_size = 0.02;
    o.batches = 5;
    return o;
  }
  bool dir_is_empty() const { return std::filesystem::is_empty(dir_); }

  std::filesystem::path dir_;
};

TEST_F(StorageTest, EveryChunkHasMeasuredFiguresAndNoFileIsLeft) {
  const Result<Storage> s = probe_storage(small(), nullptr);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_EQ(s->file_bytes, 4 << 20);
  EXPECT_FALSE(s->filesystem.empty());
  EXPECT_FALSE(s->cache_policy.empty());
  for (const auto* table : {&s->seq_read_mb_per_s, &s->rand_read_mb_per_s}) {
    ASSERT_EQ(table->size(), 3u);
    for (const char* chunk : {"4096", "65536", "1048576"}) {
      const Figure& f = table->at(chunk);
      ASSERT_TRUE(f.available()) << chunk;
      EXPECT_GT(*f.value, 0);
      EXPECT_EQ(f.unit, "MB/s");
      EXPECT_EQ(f.provenance, Provenance::kMeasured);
      EXPECT_EQ(f.stats->n, 5);
    }
  }
  EXPECT_TRUE(dir_is_empty());
}

TEST_F(StorageTest, RefusedDirectIoFallsBackAndSaysSo) {
  StorageOptions o = small();
  o.allow_direct = false;
  const Result<Storage> s = probe_storage(o, nullptr);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_FALSE(s->direct_io);
  EXPECT_NE(s->cache_policy.find("O_DIRECT refused"), std::string::npos);
  EXPECT_NE(s->cache_policy.find("posix_fadvise(DONTNEED)"), std::string::npos);
  EXPECT_NE(s->seq_read_mb_per_s.at("4096").source.find("buffered pread"), std::string::npos);
  EXPECT_TRUE(dir_is_empty());
}

TEST_F(StorageTest, MissingFolderIsNotFound) {
  StorageOptions o = small();
  o.path = (dir_ / "nope").string();
  const Result<Storage> s = probe_storage(o, nullptr);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kNotFound);
  EXPECT_NE(s.status().message().find("nope"), std::string::npos);
}

TEST_F(StorageTest, TmpfsIsNamedAsMemoryBacked) {
  if (!std::filesystem::is_directory("/dev/shm")) GTEST_SKIP() << "no /dev/shm on this machine";
  StorageOptions o = small();
  o.path = "/dev/shm";
  const Result<Storage> s = probe_storage(o, nullptr);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_EQ(s->filesystem, "tmpfs");
  EXPECT_NE(s->cache_policy.find("keeps files in RAM"), std::string::npos);
}

TEST(StorageChunks, FourKibToFourMib) {
  const auto c = storage_chunk_sizes();
  ASSERT_EQ(c.size(), 11u);
  EXPECT_EQ(c.front(), 4096);
  EXPECT_EQ(c.back(), 4 << 20);
}

}  // namespace
}  // namespace strata::profiles
