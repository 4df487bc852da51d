// GGUF reader and writer: round trips of every value and tensor type, and one clear error for
// each way a file can be malformed (hand-built bytes, so nothing depends on the writer being
// right about what is wrong).
#include "strata/model/gguf.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>

namespace strata::model {
namespace {

// Little-endian byte builder for hand-made GGUF images.
struct Raw {
  std::vector<uint8_t> b;
  Raw& u8(uint8_t x) { return put(&x, 1); }
  Raw& u32(uint32_t x) { return put(&x, 4); }
  Raw& u64(uint64_t x) { return put(&x, 8); }
  Raw& f32(float x) { return put(&x, 4); }
  Raw& str(const std::string& s) {
    u64(s.size());
    return put(s.data(), s.size());
  }
  Raw& put(const void* p, size_t n) {
    const auto* c = static_cast<const uint8_t*>(p);
    b.insert(b.end(), c, c + n);
    return *this;
  }
  Raw& pad(size_t alignment) {
    while (b.size() % alignment != 0) b.push_back(0);
    return *this;
  }
  Raw& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    put("GGUF", 4);
    u32(version);
    u64(n_tensors);
    return u64(n_kv);
  }
  Raw& kv_u32(const std::string& key, uint32_t v) {
    str(key);
    u32(4);
    return u32(v);
  }
  Raw& tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type, uint64_t offset) {
    str(name);
    u32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) u64(d);
    u32(type);
    return u64(offset);
  }
};

Result<std::unique_ptr<GgufFile>> parse(const std::vector<uint8_t>& b) {
  return GgufFile::parse(b.data(), b.size(), "m.gguf");
}

// Parses `b`, expects `code` and a message starting with the name and containing `needle`.
void expect_error(const std::vector<uint8_t>& b, StatusCode code, const std::string& needle) {
  auto r = parse(b);
  ASSERT_FALSE(r.ok()) << "parsed; wanted an error containing: " << needle;
  EXPECT_EQ(r.status().code(), code) << r.status().message();
  EXPECT_EQ(r.status().message().rfind("m.gguf: ", 0), 0u) << r.status().message();
  EXPECT_NE(r.status().message().find(needle), std::string::npos)
      << "message: " << r.status().message() << "\nwanted: " << needle;
}

// One f32 tensor [8, 2] (64 bytes, a multiple of the alignment so that any cut short of the
// end truncates real data) after one u32 key.
std::vector<uint8_t> small_valid() {
  Raw r;
  r.header(1, 1).kv_u32("a.b", 7).tensor("w", {8, 2}, 0, 0).pad(32);
  for (int i = 0; i < 16; ++i) r.f32(static_cast<float>(i));
  return r.b;
}

TEST(GgufRead, SmallValidFile) {
  const std::vector<uint8_t> bytes = small_valid();  // the file borrows it
  auto f = parse(bytes);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ((*f)->version(), 3u);
  EXPECT_EQ(*(*f)->get_u64("a.b"), 7u);
  const GgufTensorInfo* t = (*f)->find_tensor("w");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->n_bytes, 64);
  EXPECT_EQ(t->n_elements, 16);
  float x = 0;
  std::memcpy(&x, t->data + 4 * 5, 4);
  EXPECT_EQ(x, 5.0f);
  EXPECT_EQ((*f)->data_offset() % 32, 0u);
  EXPECT_EQ((*f)->find_tensor("nope"), nullptr);
}

TEST(GgufRead, AcceptsVersion2) {
  Raw r;
  r.header(0, 1, 2).kv_u32("a", 1);
  auto f = parse(r.b);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ((*f)->version(), 2u);
}

TEST(GgufBad, TruncatedAtEveryByte) {
  const std::vector<uint8_t> full = small_valid();
  for (size_t cut = 0; cut < full.size(); ++cut) {
    std::vector<uint8_t> b(full.begin(), full.begin() + static_cast<ptrdiff_t>(cut));
    auto r = parse(b);
    ASSERT_FALSE(r.ok()) << "cut at " << cut;
    EXPECT_EQ(r.status().code(), StatusCode::kCorrupt) << "cut at " << cut;
    EXPECT_EQ(r.status().message().rfind("m.gguf: ", 0), 0u) << r.status().message();
  }
}

TEST(GgufBad, TruncatedHeaderAndData) {
  std::vector<uint8_t> b = small_valid();
  expect_error({b.begin(), b.begin() + 10}, StatusCode::kCorrupt,
               "file is 10 bytes, too small for a GGUF header (24 bytes)");
  b.pop_back();  // (resize(size() - 1) trips a GCC 12 -Wstringop-overflow false positive)
  expect_error(b, StatusCode::kCorrupt,
               "tensor 'w' data [96, 160) runs past the end of the file (159 bytes)");
}

TEST(GgufBad, WrongMagic) {
  std::vector<uint8_t> b = small_valid();
  std::memcpy(b.data(), "GGML", 4);
  expect_error(b, StatusCode::kCorrupt, "not a GGUF file (magic 'GGML', expected 'GGUF')");
  b[0] = 0x00;
  expect_error(b, StatusCode::kCorrupt, "magic '\\x00GML'");
}

TEST(GgufBad, UnsupportedVersions) {
  for (uint32_t v : {0u, 1u, 4u, 1000u}) {
    Raw r;
    r.header(0, 0, v);
    expect_error(r.b, StatusCode::kUnsupported,
                 "GGUF version " + std::to_string(v) + " is not supported");
  }
  Raw be;
  be.header(0, 0, 0x03000000u);
  expect_error(be.b, StatusCode::kUnsupported, "big-endian");
}

TEST(GgufBad, AbsurdCounts) {
  Raw r;
  r.header(0, uint64_t{1} << 60);
  expect_error(r.b, StatusCode::kCorrupt, "metadata count 1152921504606846976 cannot fit");
  Raw t;
  t.header(uint64_t{1} << 60, 0);
  expect_error(t.b, StatusCode::kCorrupt, "tensor count 1152921504606846976 cannot fit");
  Raw a;
  a.header(0, 1).str("arr").u32(9).u32(4).u64(uint64_t{1} << 62).u32(0);
  expect_error(a.b, StatusCode::kCorrupt, "key 'arr': array of 4611686018427387904 u32");
  Raw s;
  s.header(0, 1).str("strs").u32(9).u32(8).u64(std::numeric_limits<uint64_t>::max());
  expect_error(s.b, StatusCode::kCorrupt, "past the end of the file");
}

TEST(GgufBad, TooManyArrayElements) {
  // An array that fits the file but passes the cap: a 2^27-byte file (held as 8 bytes per
  // element it would take 1 GiB of memory).
  const uint64_t n = (uint64_t{1} << 27) + 1;
  Raw r;
  r.header(0, 1).str("a").u32(9).u32(0).u64(n);
  r.b.resize(r.b.size() + n, 0);
  expect_error(r.b, StatusCode::kUnsupported,
               "key 'a': array of 134217729 elements takes the metadata past the 2^27");
}

TEST(GgufBad, OverlongStrings) {
  Raw k;
  k.header(0, 1).u64(uint64_t{1} << 40).put("abcdefgh", 8);
  expect_error(k.b, StatusCode::kCorrupt,
               "metadata entry 0 key: string length 1099511627776 at byte 24 runs past the end");
  Raw v;
  v.header(0, 1).str("name").u32(8).u64(100).put("short", 5);
  expect_error(v.b, StatusCode::kCorrupt, "key 'name': string length 100");
  Raw n;
  n.header(1, 0).u64(std::numeric_limits<uint64_t>::max());
  for (int i = 0; i < 40; ++i) n.u8(0);
  expect_error(n.b, StatusCode::kCorrupt, "tensor info 0 name: string length");
}

TEST(GgufBad, BadValues) {
  Raw t;
  t.header(0, 1).str("k").u32(13).u32(0);
  expect_error(t.b, StatusCode::kCorrupt, "key 'k': value type 13 is not a GGUF value type");
  Raw nested;
  nested.header(0, 1).str("k").u32(9).u32(9).u64(1).u32(4).u64(1).u32(5);
  expect_error(nested.b, StatusCode::kUnsupported, "key 'k': nested arrays are not supported");
  Raw bad_elem;
  bad_elem.header(0, 1).str("k").u32(9).u32(77).u64(1).u32(5);
  expect_error(bad_elem.b, StatusCode::kCorrupt, "array element type 77 is not a GGUF value type");
  Raw boolean;
  boolean.header(0, 1).str("k").u32(7).u8(2).u32(0).u32(0);
  expect_error(boolean.b, StatusCode::kCorrupt, "bool byte 2 at byte");
  Raw dup;
  dup.header(0, 2).kv_u32("k", 1).kv_u32("k", 2);
  expect_error(dup.b, StatusCode::kCorrupt, "key 'k' appears twice");
  Raw empty;
  empty.header(0, 1).kv_u32("", 1);
  expect_error(empty.b, StatusCode::kCorrupt, "metadata entry 0 has an empty key");
}

TEST(GgufBad, Alignment) {
  for (uint32_t a : {0u, 24u, 3u}) {
    Raw r;
    r.header(0, 1).kv_u32("general.alignment", a);
    expect_error(r.b, StatusCode::kCorrupt,
                 "general.alignment is " + std::to_string(a) + ", expected a power of two");
  }
  Raw s;
  s.header(0, 1).str("general.alignment").u32(8).str("32");
  expect_error(s.b, StatusCode::kCorrupt, "general.alignment is a string");
}

// A file with one tensor described by the given fields and `data_bytes` bytes of data.
std::vector<uint8_t> one_tensor(std::vector<uint64_t> dims, uint32_t type, uint64_t offset,
                                size_t data_bytes,
                                const std::string& name = "blk.0.attn_q.weight") {
  Raw r;
  r.header(1, 0).tensor(name, std::move(dims), type, offset).pad(32);
  r.b.resize(r.b.size() + data_bytes, 0);
  return r.b;
}

TEST(GgufBad, TensorDims) {
  expect_error(one_tensor({}, 0, 0, 64), StatusCode::kCorrupt,
               "tensor 'blk.0.attn_q.weight' has 0 dimensions (expected 1 to 4)");
  expect_error(one_tensor({1, 1, 1, 1, 1}, 0, 0, 64), StatusCode::kCorrupt,
               "has 5 dimensions (expected 1 to 4)");
  expect_error(one_tensor({8, 0}, 0, 0, 64), StatusCode::kCorrupt,
               "tensor 'blk.0.attn_q.weight': dimension 1 is 0 (expected 1 to 2^40)");
  expect_error(one_tensor({uint64_t{1} << 41}, 0, 0, 64), StatusCode::kCorrupt,
               "dimension 0 is 2199023255552 (expected 1 to 2^40)");
  expect_error(one_tensor({uint64_t{1} << 40, uint64_t{1} << 40}, 0, 0, 64), StatusCode::kCorrupt,
               "[1099511627776, 1099511627776] has more elements than strata accepts");
  expect_error(one_tensor({std::numeric_limits<uint64_t>::max()}, 0, 0, 64), StatusCode::kCorrupt,
               "dimension 0 is 18446744073709551615");
}

TEST(GgufBad, TensorTypes) {
  expect_error(one_tensor({256, 1}, 12, 0, 256), StatusCode::kUnsupported,
               "tensor 'blk.0.attn_q.weight' has type 12 (q4_K), which strata does not support");
  expect_error(one_tensor({32}, 99, 0, 64), StatusCode::kUnsupported,
               "has type 99 (unknown ggml type)");
  expect_error(
      one_tensor({33, 2}, 8, 0, 128), StatusCode::kCorrupt,
      "tensor 'blk.0.attn_q.weight': row length 33 is not a multiple of q8_0's block of 32");
}

TEST(GgufBad, TensorOffsets) {
  expect_error(one_tensor({8}, 0, 16, 64), StatusCode::kCorrupt,
               "tensor 'blk.0.attn_q.weight': offset 16 is not a multiple of the alignment 32");
  // Header 24 + name 8+19 + n_dims 4 + dims 16 + type 4 + offset 8 = 83, padded to 96.
  expect_error(one_tensor({2048, 2}, 0, 8192, 64), StatusCode::kCorrupt,
               "tensor 'blk.0.attn_q.weight' data [8288, 24672) runs past the end of the file "
               "(160 bytes)");
  expect_error(one_tensor({8}, 0, uint64_t{1} << 63, 64), StatusCode::kCorrupt,
               "runs past the end of the file (160 bytes)");
  expect_error(one_tensor({8}, 0, std::numeric_limits<uint64_t>::max() - 31, 64),
               StatusCode::kCorrupt, "runs past the end of the file");
}

TEST(GgufBad, TensorNamesAndOverlap) {
  Raw dup;
  dup.header(2, 0).tensor("w", {8}, 0, 0).tensor("w", {8}, 0, 32).pad(32);
  dup.b.resize(dup.b.size() + 64, 0);
  expect_error(dup.b, StatusCode::kCorrupt, "tensor name 'w' appears twice");
  Raw overlap;
  overlap.header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).pad(32);
  overlap.b.resize(overlap.b.size() + 64, 0);
  expect_error(overlap.b, StatusCode::kCorrupt, "tensor 'b' data [");
  expect_error(overlap.b, StatusCode::kCorrupt, ") overlaps tensor 'a' [");
  Raw empty;
  empty.header(1, 0).tensor("", {8}, 0, 0).pad(32);
  empty.b.resize(empty.b.size() + 32, 0);
  expect_error(empty.b, StatusCode::kCorrupt, "tensor info 0 has an empty name");
}

TEST(GgufOpen, OsErrors) {
  auto missing = GgufFile::open("/nonexistent/dir/m.gguf");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("/nonexistent/dir/m.gguf: cannot open"),
            std::string::npos);
  auto dir = GgufFile::open("/tmp");
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.status().message().find("not a regular file"), std::string::npos);

  const std::string empty = ::testing::TempDir() + "gguf_empty_" + std::to_string(::getpid());
  std::ofstream(empty).close();
  auto e = GgufFile::open(empty);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(e.status().message().find("file is 0 bytes"), std::string::npos);
  std::remove(empty.c_str());
}

// ---- writer round trips ----

GgufValue scalar(GgufType t, decltype(GgufValue::v) v) { return GgufValue{t, GgufType::kU32, v}; }
GgufValue array(GgufType e, decltype(GgufValue::v) v) { return GgufValue{GgufType::kArray, e, v}; }

std::vector<std::pair<std::string, GgufValue>> every_value() {
  using U = std::vector<uint64_t>;
  using I = std::vector<int64_t>;
  using D = std::vector<double>;
  return {
      {"u8", scalar(GgufType::kU8, uint64_t{255})},
      {"i8", scalar(GgufType::kI8, int64_t{-128})},
      {"u16", scalar(GgufType::kU16, uint64_t{65535})},
      {"i16", scalar(GgufType::kI16, int64_t{-32768})},
      {"u32", scalar(GgufType::kU32, uint64_t{4000000000u})},
      {"i32", scalar(GgufType::kI32, int64_t{-2000000000})},
      {"u64", scalar(GgufType::kU64, std::numeric_limits<uint64_t>::max())},
      {"i64", scalar(GgufType::kI64, std::numeric_limits<int64_t>::min())},
      {"f32", scalar(GgufType::kF32, double{0.1f})},
      {"f64", scalar(GgufType::kF64, 0.1)},
      {"bool", scalar(GgufType::kBool, true)},
      {"string", scalar(GgufType::kString, std::string("h\xc3\xa9llo\0x", 8))},
      {"empty", scalar(GgufType::kString, std::string())},
      {"a.u8", array(GgufType::kU8, U{0, 1, 255})},
      {"a.i8", array(GgufType::kI8, I{-128, 0, 127})},
      {"a.u16", array(GgufType::kU16, U{65535})},
      {"a.i16", array(GgufType::kI16, I{-5, 5})},
      {"a.u32", array(GgufType::kU32, U{})},
      {"a.i32", array(GgufType::kI32, I{-1, 2, -3})},
      {"a.u64", array(GgufType::kU64, U{uint64_t{1} << 63})},
      {"a.i64", array(GgufType::kI64, I{-(int64_t{1} << 62)})},
      {"a.f32", array(GgufType::kF32, D{1.5, -0.25, double{3.3f}})},
      {"a.f64", array(GgufType::kF64, D{1e300, -1e-300})},
      {"a.bool", array(GgufType::kBool, std::vector<bool>{true, false, true})},
      {"a.string", array(GgufType::kString, std::vector<std::string>{"a", "", "<0x0A>"})},
  };
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 31 + seed);
  return v;
}

GgufWriter every_type_writer(uint32_t alignment) {
  GgufWriter w;
  w.set_alignment(alignment);
  for (auto& [k, v] : every_value()) w.set(k, v);
  w.add_tensor("f32", DType::kF32, {3, 5}, pattern(60, 1));
  w.add_tensor("f16", DType::kF16, {7}, pattern(14, 2));
  w.add_tensor("bf16", DType::kBF16, {2, 3, 4}, pattern(48, 3));
  w.add_tensor("q8_0", DType::kQ8_0, {64, 3}, pattern(34 * 6, 4));
  w.add_tensor_fn("q4_0", DType::kQ4_0, {32, 2, 1, 3}, [](uint8_t* dst) {
    const std::vector<uint8_t> p = pattern(18 * 6, 5);
    std::memcpy(dst, p.data(), p.size());
  });
  return w;
}

void expect_round_trip(const GgufFile& f, uint32_t alignment) {
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), alignment);
  for (const auto& [k, v] : every_value()) {
    auto it = f.metadata().find(k);
    ASSERT_NE(it, f.metadata().end()) << k;
    EXPECT_EQ(it->second.type, v.type) << k;
    if (v.type == GgufType::kArray) {
      EXPECT_EQ(it->second.array_type, v.array_type) << k;
    }
    EXPECT_TRUE(it->second.v == v.v) << k;
  }
  const std::vector<std::tuple<std::string, DType, std::vector<int64_t>, size_t, uint8_t>> want = {
      {"f32", DType::kF32, {3, 5}, 60, 1},
      {"f16", DType::kF16, {7}, 14, 2},
      {"bf16", DType::kBF16, {2, 3, 4}, 48, 3},
      {"q8_0", DType::kQ8_0, {64, 3}, 34 * 6, 4},
      {"q4_0", DType::kQ4_0, {32, 2, 1, 3}, 18 * 6, 5},
  };
  ASSERT_EQ(f.tensors().size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    const auto& [name, type, dims, bytes, seed] = want[i];
    const GgufTensorInfo& t = f.tensors()[i];
    EXPECT_EQ(t.name, name);
    EXPECT_EQ(t.type, type) << name;
    EXPECT_EQ(t.dims, dims) << name;
    EXPECT_EQ(t.n_bytes, static_cast<int64_t>(bytes)) << name;
    EXPECT_EQ(t.offset % alignment, 0u) << name;
    const std::vector<uint8_t> p = pattern(bytes, seed);
    EXPECT_EQ(std::memcmp(t.data, p.data(), bytes), 0) << name;
  }
}

TEST(GgufWrite, RoundTripsEveryValueAndTensorType) {
  for (uint32_t alignment : {32u, 64u, 1u}) {
    const GgufWriter w = every_type_writer(alignment);
    const std::vector<uint8_t> bytes = w.serialize();
    EXPECT_EQ(static_cast<int64_t>(bytes.size()), w.file_bytes());
    auto f = parse(bytes);
    ASSERT_TRUE(f.ok()) << f.status().message();
    expect_round_trip(**f, alignment);
    EXPECT_EQ((*f)->has("general.alignment"), alignment != 32);
  }
}

TEST(GgufWrite, FileMatchesSerializeAndReportsProgress) {
  const GgufWriter w = every_type_writer(32);
  const std::string path = ::testing::TempDir() + "gguf_rt_" + std::to_string(::getpid()) + ".gguf";
  int64_t last_done = -1;
  int calls = 0;
  ASSERT_TRUE(w.write(path, [&](int64_t done, int64_t total) {
                 EXPECT_GE(done, last_done);
                 EXPECT_EQ(total, w.file_bytes());
                 last_done = done;
                 ++calls;
               }).ok());
  EXPECT_EQ(last_done, w.file_bytes());
  EXPECT_GE(calls, 5);
  auto f = GgufFile::open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  expect_round_trip(**f, 32);
  const std::vector<uint8_t> bytes = w.serialize();
  ASSERT_EQ((*f)->file_bytes(), bytes.size());
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> disk(bytes.size());
  in.read(reinterpret_cast<char*>(disk.data()), static_cast<std::streamsize>(disk.size()));
  EXPECT_EQ(disk, bytes);
  std::remove(path.c_str());
}

TEST(GgufWrite, ReplacesKeysInPlaceAndLaysOutLikeGgml) {
  GgufWriter w;
  w.set_u32("x", 1);
  w.set_string("y", "a");
  w.set_u32("x", 2);
  w.add_tensor("a", DType::kF32, {3}, pattern(12, 0));
  w.add_tensor("b", DType::kF32, {3}, pattern(12, 0));
  const std::vector<uint8_t> bytes = w.serialize();
  auto f = parse(bytes);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ((*f)->metadata().size(), 2u);
  EXPECT_EQ(*(*f)->get_u64("x"), 2u);
  // llama.cpp requires each tensor at the previous one's end rounded up to the alignment.
  EXPECT_EQ((*f)->tensors()[0].offset, 0u);
  EXPECT_EQ((*f)->tensors()[1].offset, 32u);
}

TEST(GgufWrite, UnwritablePathIsAnError) {
  GgufWriter w;
  w.set_u32("x", 1);
  const Status s = w.write("/nonexistent/dir/out.gguf");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("/nonexistent/dir/out.gguf"), std::string::npos);
}

TEST(GgufGetters, TypesAndErrors) {
  GgufWriter w;
  w.set_i32("neg", -1);
  w.set_i32("pos", 5);
  w.set_f32("f", 0.5f);
  w.set_string("s", "hi");
  w.set_bool("b", true);
  w.set_string_array("sa", {"x", "y"});
  w.set_i32_array("ia", {1, 2, 3});
  const std::vector<uint8_t> bytes = w.serialize();
  auto r = parse(bytes);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const GgufFile& f = **r;
  EXPECT_EQ(*f.get_u64("pos"), 5u);
  EXPECT_EQ(f.get_u64("neg").status().code(), StatusCode::kCorrupt);
  EXPECT_NE(f.get_u64("neg").status().message().find("m.gguf: key 'neg' is i32"),
            std::string::npos);
  EXPECT_EQ(*f.get_f64("pos"), 5.0);
  EXPECT_EQ(*f.get_f64("f"), 0.5);
  EXPECT_EQ(f.get_f64("s").status().code(), StatusCode::kCorrupt);
  EXPECT_EQ(*f.get_string("s"), "hi");
  EXPECT_EQ(*f.get_bool("b"), true);
  EXPECT_EQ(f.get_string("missing").status().code(), StatusCode::kNotFound);
  EXPECT_EQ((*f.get_string_array("sa")).size(), 2u);
  EXPECT_EQ(*f.get_array_length("ia"), 3u);
  EXPECT_EQ(f.get_string_array("ia").status().code(), StatusCode::kCorrupt);
  EXPECT_NE(f.get_string_array("ia").status().message().find("array of i32"), std::string::npos);
  EXPECT_EQ(f.get_array_length("s").status().code(), StatusCode::kCorrupt);
}

}  // namespace
}  // namespace strata::model
