#include "strata/base/io.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

namespace strata {
namespace {

TEST(Io, WriteAtomicThenRead) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("strata_io_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "a.txt").string();
  ASSERT_TRUE(write_file_atomic(path, std::string("hello\0world", 11)).ok());
  auto r = read_file(path);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, std::string("hello\0world", 11));
  std::filesystem::remove_all(dir);
}

TEST(Io, MissingFileIsNotFoundAndNamesThePath) {
  auto r = read_file("/nonexistent/strata/x.json");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("/nonexistent/strata/x.json"), std::string::npos);
}

TEST(Io, ParseBytes) {
  EXPECT_EQ(*parse_bytes("123"), 123);
  EXPECT_EQ(*parse_bytes("4K"), 4096);
  EXPECT_EQ(*parse_bytes("512M"), 512LL << 20);
  EXPECT_EQ(*parse_bytes("1.5GiB"), 3LL << 29);
  EXPECT_FALSE(parse_bytes("abc").ok());
  EXPECT_FALSE(parse_bytes("-1").ok());
  EXPECT_FALSE(parse_bytes("12Q").ok());
}

TEST(Io, FormatBytes) {
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(1536), "1.50 KiB");
  EXPECT_EQ(format_bytes(3.0 * (1 << 30)), "3.00 GiB");
}

TEST(Io, RssIsReported) {
  EXPECT_GT(peak_rss_bytes(), 0);
  EXPECT_GE(peak_rss_bytes(), current_rss_bytes());
}

// The slice the kernel reports for the calling thread (/proc/thread-self/sched, "se.slice"), or
// -1 where the file or the field is missing (kernels before EEVDF).
int64_t thread_slice_ns() {
  std::ifstream in("/proc/thread-self/sched");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("se.slice", 0) == 0) return std::atoll(line.c_str() + line.find(':') + 1);
  }
  return -1;
}

TEST(Io, PromptWakeupsShortenTheSliceOfThisThreadAndItsChildren) {
  int64_t own = -2;
  int64_t child = -2;
  bool granted = false;
  // In a thread of its own, so that the test process keeps its default slice.
  std::thread t([&] {
    granted = request_prompt_wakeups();
    own = thread_slice_ns();
    std::thread c([&] { child = thread_slice_ns(); });
    c.join();
  });
  t.join();
  if (!granted) {
    GTEST_SKIP() << "this kernel takes no slice request (before Linux 6.12)";
  }
  ASSERT_NE(own, -1) << "granted, but /proc/thread-self/sched shows no se.slice";
  EXPECT_EQ(own, 100'000);
  EXPECT_EQ(child, 100'000);  // ZeroMQ's I/O threads rely on inheriting it
}

}  // namespace
}  // namespace strata
