#include "strata/base/io.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

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

}  // namespace
}  // namespace strata
