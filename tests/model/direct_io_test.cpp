// The weight store's I/O engines (model/direct_io.h, internal): both readers return the
// file's bytes for many groups queued at once, complete every group exactly once (also when
// destroyed with groups queued), and report a read past the end of the file as truncation
// only when real bytes are missing.
#include "direct_io.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <vector>

namespace strata::model::stream {
namespace {

namespace fs = std::filesystem;

class TestFile {
 public:
  explicit TestFile(int64_t bytes) {
    path_ = (fs::temp_directory_path() /
             ("strata_dio_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++)))
                .string();
    std::mt19937_64 rng(42);
    data_.resize(static_cast<size_t>(bytes));
    for (auto& b : data_) b = static_cast<uint8_t>(rng());
    std::ofstream(path_, std::ios::binary)
        .write(reinterpret_cast<const char*>(data_.data()), static_cast<std::streamsize>(bytes));
  }
  ~TestFile() { fs::remove(path_); }
  const std::string& path() const { return path_; }
  const std::vector<uint8_t>& data() const { return data_; }

 private:
  static inline int counter_ = 0;
  std::string path_;
  std::vector<uint8_t> data_;
};

// Waits for a number of completions.
struct Latch {
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  std::vector<Status> results;
  void finish(Status st) {
    std::lock_guard<std::mutex> lock(mu);
    ++done;
    results.push_back(std::move(st));
    cv.notify_all();
  }
  void wait(int n) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done >= n; });
  }
};

class IoEngines : public ::testing::TestWithParam<ReaderKind> {};

TEST_P(IoEngines, ManyQueuedGroupsReadTheFilesBytes) {
  const int64_t size = (3 << 20) + 1234;  // not a whole number of blocks
  TestFile file(size);
  auto f = StreamFile::open(file.path(), true);
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  auto io = make_io_engine(GetParam(), **f, 3, 64 << 10);
  ASSERT_TRUE(io.ok()) << io.status().to_string();
  std::mt19937_64 rng(7);
  constexpr int kGroups = 24;
  std::vector<AlignedBuffer> bufs;
  std::vector<std::vector<ReadOp>> groups;
  for (int g = 0; g < kGroups; ++g) {
    std::vector<ReadOp> ops;
    const int n_ops = 1 + static_cast<int>(rng() % 3);
    int64_t total = 0;
    std::vector<std::pair<int64_t, int64_t>> ranges;
    for (int i = 0; i < n_ops; ++i) {
      const int64_t off = static_cast<int64_t>(rng() % static_cast<uint64_t>(size)) / 4096 * 4096;
      const int64_t len = align_up(
          std::min<int64_t>(size - off, 1 + static_cast<int64_t>(rng() % (300 << 10))), 4096);
      ranges.emplace_back(off, len);
      total += len;
    }
    auto b = AlignedBuffer::allocate(total);
    ASSERT_TRUE(b.ok());
    int64_t at = 0;
    for (const auto& [off, len] : ranges) {
      ops.push_back(ReadOp{off, len, b->data() + at, std::min(off + len, size)});
      at += len;
    }
    bufs.push_back(std::move(b).value());
    groups.push_back(ops);
  }
  Latch latch;
  for (const auto& ops : groups) {
    (*io)->submit(ops, [&latch](Status st) { latch.finish(std::move(st)); });
  }
  latch.wait(kGroups);
  EXPECT_EQ(latch.done, kGroups);
  for (const Status& st : latch.results) EXPECT_TRUE(st.ok()) << st.to_string();
  for (const auto& ops : groups) {
    for (const ReadOp& op : ops) {
      const int64_t real = std::min(op.bytes, size - op.offset);
      EXPECT_EQ(std::memcmp(op.dst, file.data().data() + op.offset, static_cast<size_t>(real)), 0)
          << "offset " << op.offset;
    }
  }
  EXPECT_GT((*io)->busy_s(), 0.0);
}

TEST_P(IoEngines, MissingBytesAreTruncationPaddingIsNot) {
  const int64_t size = 10000;
  TestFile file(size);
  auto f = StreamFile::open(file.path(), true);
  ASSERT_TRUE(f.ok());
  auto io = make_io_engine(GetParam(), **f, 2, 4096);
  ASSERT_TRUE(io.ok());
  auto b = AlignedBuffer::allocate(16384);
  ASSERT_TRUE(b.ok());
  const ReadOp pad{0, 16384, b->data(), size};  // 6384 bytes of padding past the end
  EXPECT_TRUE((*io)->read(std::span<const ReadOp>(&pad, 1)).ok());
  EXPECT_EQ(std::memcmp(b->data(), file.data().data(), static_cast<size_t>(size)), 0);
  const ReadOp missing{8192, 8192, b->data(), 8192 + 4000};
  const Status st = (*io)->read(std::span<const ReadOp>(&missing, 1));
  EXPECT_EQ(st.code(), StatusCode::kIo);
  EXPECT_NE(st.message().find("file ends at byte 10000"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(file.path()), std::string::npos);
}

TEST_P(IoEngines, DestroyedWithGroupsQueuedCompletesEachOnce) {
  TestFile file(8 << 20);
  auto f = StreamFile::open(file.path(), true);
  ASSERT_TRUE(f.ok());
  auto b = AlignedBuffer::allocate(8 << 20);
  ASSERT_TRUE(b.ok());
  Latch latch;
  constexpr int kGroups = 40;
  {
    auto io = make_io_engine(GetParam(), **f, 2, 4096);
    ASSERT_TRUE(io.ok());
    for (int g = 0; g < kGroups; ++g) {
      (*io)->submit({ReadOp{0, 8 << 20, b->data(), 8 << 20}},
                    [&latch](Status st) { latch.finish(std::move(st)); });
    }
  }
  EXPECT_EQ(latch.done, kGroups);
  for (const Status& st : latch.results) {
    EXPECT_TRUE(st.ok() || st.code() == StatusCode::kUnavailable) << st.to_string();
  }
}

INSTANTIATE_TEST_SUITE_P(Readers, IoEngines,
                         ::testing::Values(ReaderKind::kPread, ReaderKind::kUring),
                         [](const ::testing::TestParamInfo<ReaderKind>& p) {
                           return std::string(reader_kind_name(p.param));
                         });

TEST(StreamFile, BufferedWhenAsked) {
  TestFile file(4096);
  auto f = StreamFile::open(file.path(), false);
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE((*f)->direct());
  EXPECT_NE((*f)->note().find("O_DIRECT not used"), std::string::npos);
  auto missing = StreamFile::open(file.path() + ".absent", true);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace strata::model::stream
