// Kernels: every SIMD variant against the scalar reference for every weight type on awkward
// shapes, the activation conversions bit for bit, the determinism contract (bits independent
// of thread count and of the batch a token is computed in), get_row, and ISA selection.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels_internal.h"
#include "strata/model/kernels.h"

namespace strata::model {
namespace {

using kernels::IsaOps;

constexpr DType kAllTypes[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0};

// Every SIMD table this CPU can run, both avx512 variants included (their bits must agree).
std::vector<const IsaOps*> simd_variants() {
  std::vector<const IsaOps*> out;
  for (Isa isa : available_isas()) {
    switch (isa) {
      case Isa::kScalar: break;
      case Isa::kAvx2: out.push_back(kernels::avx2_ops()); break;
      case Isa::kAvx512: out.push_back(kernels::avx512_ops(false));
#if defined(__x86_64__)
        if (__builtin_cpu_supports("avx512vnni")) out.push_back(kernels::avx512_ops(true));
#endif
        break;
      case Isa::kNeon: out.push_back(kernels::neon_ops()); break;
    }
  }
  return out;
}

std::string type_name(DType t) { return std::string(*dtype_name(static_cast<uint32_t>(t))); }

std::vector<float> random_floats(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& f : v) f = dist(rng);
  return v;
}

// A weight matrix quantized from random values, owning its bytes.
struct Matrix {
  std::vector<uint8_t> bytes;
  WeightView view;
};

Matrix make_matrix(DType type, int64_t rows, int64_t cols, uint32_t seed) {
  Matrix m;
  const int64_t rb = row_bytes(type, cols);
  m.bytes.resize(static_cast<size_t>(rows * rb));
  const std::vector<float> src = random_floats(rows * cols, seed, 0.5f);
  for (int64_t r = 0; r < rows; ++r) {
    quantize_row(type, src.data() + r * cols, m.bytes.data() + r * rb, cols);
  }
  m.view = {type, rows, cols, m.bytes.data()};
  return m;
}

void run_ops(const IsaOps& ops, const WeightView& w, const std::vector<float>& x, int64_t n_tokens,
             std::vector<float>& y, ThreadPool* pool = nullptr) {
  MatmulScratch scratch;
  y.assign(static_cast<size_t>(n_tokens * w.rows), std::nanf(""));
  kernels::matmul_with(ops, w, x.data(), n_tokens, y.data(), w.rows, pool, scratch);
}

// Σ |w_i| |x'_i| in double, x' being x as the dot type sees it (Q8_0-quantized, or rounded
// through f16/bf16), per (token, row).
std::vector<double> abs_dot(const WeightView& w, const std::vector<float>& x, int64_t n_tokens) {
  const int64_t k = w.cols;
  std::vector<float> wrow(static_cast<size_t>(k));
  std::vector<float> xd(static_cast<size_t>(k));
  std::vector<uint8_t> tmp(static_cast<size_t>(row_bytes(DType::kQ8_0, k / 32 * 32 + 32)));
  std::vector<double> out(static_cast<size_t>(n_tokens * w.rows));
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* xt = x.data() + t * k;
    if (w.type == DType::kQ4_0 || w.type == DType::kQ8_0) {
      quantize_row(DType::kQ8_0, xt, tmp.data(), k);
      dequantize_row(DType::kQ8_0, tmp.data(), xd.data(), k);
    } else {
      for (int64_t i = 0; i < k; ++i) {
        xd[static_cast<size_t>(i)] = w.type == DType::kF16    ? fp16_to_fp32(fp32_to_fp16(xt[i]))
                                     : w.type == DType::kBF16 ? bf16_to_fp32(fp32_to_bf16(xt[i]))
                                                              : xt[i];
      }
    }
    for (int64_t r = 0; r < w.rows; ++r) {
      get_row(w, r, wrow.data());
      double s = 0;
      for (int64_t i = 0; i < k; ++i) {
        s += std::fabs(static_cast<double>(wrow[static_cast<size_t>(i)])) *
             std::fabs(static_cast<double>(xd[static_cast<size_t>(i)]));
      }
      out[static_cast<size_t>(t * w.rows + r)] = s;
    }
  }
  return out;
}

// The scalar kernel and a SIMD kernel compute the same exact products (int32 block sums are
// exact; f16/bf16 products are exact in f32; f32 products round once, or not at all under
// FMA) and differ only in how they add them up in f32. A sum of n terms in any order, with
// or without FMA, is within n·u·Σ|terms| of the exact sum (u = 2^-24, first order), and every
// partial term here is bounded by |w_i x'_i| summed over its elements. With n <= k terms (a
// SIMD kernel adds k/L lane terms per lane, or L lanes per block, plus a log2(L)-deep tree),
// two such sums differ by at most 2·(k + 8)·u·Σ|w_i x'_i|.
double tolerance(int64_t k, double abs_sum) {
  return 2.0 * static_cast<double>(k + 8) * std::ldexp(1.0, -24) * abs_sum + 1e-30;
}

TEST(Kernels, EverySimdVariantMatchesScalarOnAwkwardShapes) {
  const std::vector<const IsaOps*> variants = simd_variants();
  RecordProperty("variants", static_cast<int>(variants.size()));
  const int64_t kTokenCounts[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 128};
  const int64_t kRowCounts[] = {1, 7, 37};
  for (DType type : kAllTypes) {
    std::vector<int64_t> ks = {32, 64, 96, 2048 + 32};
    if (dtype_block_elems(type) == 1) ks.insert(ks.end(), {1, 7, 33, 100});
    for (int64_t k : ks) {
      for (int64_t rows : kRowCounts) {
        const Matrix m = make_matrix(type, rows, k, static_cast<uint32_t>(k * 31 + rows));
        const std::vector<float> x = random_floats(128 * k, static_cast<uint32_t>(k + rows));
        std::vector<float> ref;
        run_ops(*kernels::scalar_ops(), m.view, x, 128, ref);
        const std::vector<double> abs_sum = abs_dot(m.view, x, 128);
        for (const IsaOps* ops : variants) {
          for (int64_t n : kTokenCounts) {
            std::vector<float> y;
            run_ops(*ops, m.view, x, n, y);
            for (int64_t i = 0; i < n * rows; ++i) {
              const auto u = static_cast<size_t>(i);
              ASSERT_NEAR(y[u], ref[u], tolerance(k, abs_sum[u]))
                  << ops->variant << " " << type_name(type) << " rows=" << rows << " k=" << k
                  << " n_tokens=" << n << " token " << i / rows << " row " << i % rows;
            }
          }
        }
      }
    }
  }
}

// x values that land exactly on rounding ties: with amax = 127 the Q8_0 scale is 1, so
// x * (1/d) = x and 2.5 must round away from zero to 3; 1 + 2^-8 is a bf16 tie, 1 + 2^-11 an
// f16 tie; plus an all-zero block (d = 0).
std::vector<float> tie_values(int64_t k, uint32_t seed) {
  std::vector<float> x = random_floats(k, seed);
  const float ties[] = {127.0f,
                        2.5f,
                        -2.5f,
                        0.5f,
                        -0.5f,
                        1.5f,
                        -126.5f,
                        3.5f,
                        1.0f + 1.0f / 256,
                        1.0f + 3.0f / 256,
                        1.0f + 1.0f / 2048,
                        -0.0f};
  for (size_t i = 0; i < std::size(ties) && i < x.size(); ++i) x[i] = ties[i];
  if (k >= 96) std::fill(x.begin() + 64, x.begin() + 96, 0.0f);
  return x;
}

// With W the identity (one-hot rows, scale 1), y is exactly the activation as the kernel
// converted it, so this compares each ISA's conversion with types.h bit for bit.
TEST(Kernels, AttendIsSoftmaxAttentionOverTheCachedPositions) {
  const int64_t hd = 64, stride = 3 * 64, n_pos = 37;  // a head's slice in a wider KV row
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> q(hd), k(n_pos * stride), v(n_pos * stride), scores(n_pos), out(hd);
  for (float& x : q) x = dist(rng);
  for (float& x : k) x = dist(rng);
  for (float& x : v) x = dist(rng);
  const float scale = 0.125f;
  attend(q.data(), k.data(), v.data(), stride, hd, n_pos, scale, scores.data(), out.data());
  std::vector<double> p(n_pos);
  double mx = -INFINITY, sum = 0;
  for (int64_t j = 0; j < n_pos; ++j) {
    double dot = 0;
    for (int64_t d = 0; d < hd; ++d) dot += double{q[d]} * k[j * stride + d];
    p[j] = dot * scale;
    mx = std::max(mx, p[j]);
  }
  for (double& x : p) sum += (x = std::exp(x - mx));
  for (int64_t d = 0; d < hd; ++d) {
    double want = 0;
    for (int64_t j = 0; j < n_pos; ++j) want += p[j] / sum * v[j * stride + d];
    EXPECT_NEAR(out[d], want, 1e-5) << d;
  }
  // One position: its value row, exactly.
  attend(q.data(), k.data(), v.data(), stride, hd, 1, scale, scores.data(), out.data());
  for (int64_t d = 0; d < hd; ++d) EXPECT_EQ(out[d], v[d]);
}

TEST(Kernels, ActivationConversionIsBitExact) {
  std::vector<const IsaOps*> variants = simd_variants();
  variants.push_back(kernels::scalar_ops());
  for (DType type : kAllTypes) {
    for (int64_t k : {32, 96, 2048 + 32}) {
      const int64_t rb = row_bytes(type, k);
      std::vector<uint8_t> bytes(static_cast<size_t>(k * rb));
      std::vector<float> row(static_cast<size_t>(k));
      for (int64_t r = 0; r < k; ++r) {
        std::fill(row.begin(), row.end(), 0.0f);
        // Q4_0 maps max to -8: a row of one -8 and zeros quantizes to d = 1, nibbles 0 and 8;
        // negate the result to get +1.
        row[static_cast<size_t>(r)] = type == DType::kQ4_0 ? -8.0f : 1.0f;
        if (type == DType::kQ8_0) row[static_cast<size_t>(r)] = 127.0f;  // d = 1, q = 127
        quantize_row(type, row.data(), bytes.data() + r * rb, k);
      }
      const WeightView w{type, k, k, bytes.data()};
      const int64_t n_tokens = 3;
      std::vector<float> x;
      for (int64_t t = 0; t < n_tokens; ++t) {
        const std::vector<float> xt = tie_values(k, static_cast<uint32_t>(t + 7));
        x.insert(x.end(), xt.begin(), xt.end());
      }
      // Expected: x converted by types.h, times the one-hot weight.
      const float wscale = type == DType::kQ4_0 ? -8.0f : type == DType::kQ8_0 ? 127.0f : 1.0f;
      std::vector<float> expect(static_cast<size_t>(n_tokens * k));
      std::vector<uint8_t> q(static_cast<size_t>(row_bytes(DType::kQ8_0, k)));
      for (int64_t t = 0; t < n_tokens; ++t) {
        float* e = expect.data() + t * k;
        const float* xt = x.data() + t * k;
        if (type == DType::kQ4_0 || type == DType::kQ8_0) {
          quantize_row(DType::kQ8_0, xt, q.data(), k);
          dequantize_row(DType::kQ8_0, q.data(), e, k);
        } else {
          for (int64_t i = 0; i < k; ++i) {
            e[i] = type == DType::kF16    ? fp16_to_fp32(fp32_to_fp16(xt[i]))
                   : type == DType::kBF16 ? bf16_to_fp32(fp32_to_bf16(xt[i]))
                                          : xt[i];
          }
        }
        for (int64_t i = 0; i < k; ++i) e[i] *= wscale;
      }
      for (const IsaOps* ops : variants) {
        std::vector<float> y;
        run_ops(*ops, w, x, n_tokens, y);
        for (size_t i = 0; i < y.size(); ++i) {
          ASSERT_EQ(y[i], expect[i])
              << ops->variant << " " << type_name(type) << " k=" << k << " token "
              << i / static_cast<size_t>(k) << " column " << i % static_cast<size_t>(k);
        }
      }
    }
  }
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(Kernels, BitsDoNotDependOnThreadCount) {
  std::vector<const IsaOps*> variants = simd_variants();
  variants.push_back(kernels::scalar_ops());
  for (DType type : kAllTypes) {
    const Matrix m = make_matrix(type, 333, 2048 + 32, 5);
    for (int64_t n_tokens : {1, 5}) {
      const std::vector<float> x = random_floats(n_tokens * m.view.cols, 6);
      for (const IsaOps* ops : variants) {
        std::vector<float> one;
        run_ops(*ops, m.view, x, n_tokens, one);
        for (int threads = 2; threads <= 8; ++threads) {
          ThreadPool pool(threads);
          std::vector<float> y;
          run_ops(*ops, m.view, x, n_tokens, y, &pool);
          ASSERT_TRUE(same_bits(y, one)) << ops->variant << " " << type_name(type)
                                         << " n_tokens=" << n_tokens << " threads=" << threads;
        }
      }
    }
  }
}

TEST(Kernels, TokenBitsDoNotDependOnTheBatch) {
  std::vector<const IsaOps*> variants = simd_variants();
  variants.push_back(kernels::scalar_ops());
  const int64_t kBatch = 128;
  ThreadPool pool(3);
  for (DType type : kAllTypes) {
    for (int64_t k : {96, 2048 + 32}) {
      const Matrix m = make_matrix(type, 37, k, 8);
      const std::vector<float> x = random_floats(kBatch * k, 9);
      for (const IsaOps* ops : variants) {
        std::vector<float> full;
        run_ops(*ops, m.view, x, kBatch, full, &pool);
        // Sub-batches of 1, 3 and 7 tokens starting at various offsets, so each token lands at
        // every position of the kernels' token tiles.
        for (int64_t size : {1, 3, 7}) {
          for (int64_t start : {0, 1, 2, 5, 64, 121}) {
            const std::vector<float> sub(x.begin() + start * k, x.begin() + (start + size) * k);
            std::vector<float> y;
            run_ops(*ops, m.view, sub, size, y, &pool);
            const std::vector<float> want(full.begin() + start * 37,
                                          full.begin() + (start + size) * 37);
            ASSERT_TRUE(same_bits(y, want)) << ops->variant << " " << type_name(type) << " k=" << k
                                            << " batch of " << size << " at " << start;
          }
        }
      }
    }
  }
}

// The weights usually live in an mmap: a kernel that reads even one byte past the matrix
// faults when the matrix ends at the mapping's last page. Put each matrix right before a
// PROT_NONE page and run every variant on it.
TEST(Kernels, NeverReadsPastTheMatrixEnd) {
  std::vector<const IsaOps*> variants = simd_variants();
  variants.push_back(kernels::scalar_ops());
  const auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  for (DType type : kAllTypes) {
    for (int64_t k : {32, 96, 1056}) {
      for (int64_t rows : {1, 5, 8}) {
        const Matrix m = make_matrix(type, rows, k, 15);
        const size_t bytes = m.bytes.size();
        const size_t span = (bytes + page - 1) / page * page;
        void* map =
            mmap(nullptr, span + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ASSERT_NE(map, MAP_FAILED);
        auto* base = static_cast<uint8_t*>(map);
        ASSERT_EQ(mprotect(base + span, page, PROT_NONE), 0);
        uint8_t* data = base + span - bytes;
        std::memcpy(data, m.bytes.data(), bytes);
        const WeightView w{type, rows, k, data};
        const std::vector<float> x = random_floats(5 * k, 16);
        std::vector<float> want;
        run_ops(*kernels::scalar_ops(), m.view, x, 5, want);
        const std::vector<double> abs_sum = abs_dot(m.view, x, 5);
        for (const IsaOps* ops : variants) {
          for (int64_t n : {1, 5}) {
            std::vector<float> y;
            run_ops(*ops, w, x, n, y);  // a fault here kills the test
            for (int64_t i = 0; i < n * rows; ++i) {
              const auto u = static_cast<size_t>(i);
              ASSERT_NEAR(y[u], want[u], tolerance(k, abs_sum[u]))
                  << ops->variant << " " << type_name(type) << " k=" << k << " rows=" << rows;
            }
          }
        }
        munmap(map, span + page);
      }
    }
  }
}

TEST(Kernels, Avx512VariantsGiveTheSameBits) {
  const IsaOps* plain = kernels::avx512_ops(false);
  const IsaOps* vnni = kernels::avx512_ops(true);
  bool can_run = false;
#if defined(__x86_64__)
  can_run = plain != nullptr && __builtin_cpu_supports("avx512vnni") &&
            __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
            __builtin_cpu_supports("avx512dq");
#endif
  if (!can_run) GTEST_SKIP() << "this CPU lacks AVX-512 VNNI: nothing to compare";
  for (DType type : {DType::kQ4_0, DType::kQ8_0}) {
    Matrix m = make_matrix(type, 61, 2048 + 32, 10);
    // Extreme Q8_0 weights, -128 included, exercise the sign handling of the non-VNNI path.
    if (type == DType::kQ8_0) {
      auto* blocks = reinterpret_cast<BlockQ8_0*>(m.bytes.data());
      for (size_t i = 0; i < 61 * (2048 + 32) / 32; ++i) {
        blocks[i].qs[i % 32] = static_cast<int8_t>(i % 2 ? -128 : 127);
      }
    }
    const std::vector<float> x = random_floats(9 * m.view.cols, 11);
    std::vector<float> a;
    std::vector<float> b;
    run_ops(*plain, m.view, x, 9, a);
    run_ops(*vnni, m.view, x, 9, b);
    EXPECT_TRUE(same_bits(a, b)) << type_name(type);
  }
}

// The AVX-512 Q4_0 kernels add the blocks in the scalar kernel's order (one f32 term per
// block, no FMA), through either path: in place for a few tokens, repacked 16-row groups for
// batches. So they must give the scalar bits exactly, on shapes that leave partial row groups,
// partial token tiles, an odd block count and a row tile at the matrix end.
TEST(Kernels, Avx512Q4_0GivesTheScalarBits) {
  std::vector<const IsaOps*> variants;
  for (const IsaOps* ops : simd_variants()) {
    if (ops->isa == Isa::kAvx512) variants.push_back(ops);
  }
  if (variants.empty()) GTEST_SKIP() << "this CPU lacks AVX-512: nothing to compare";
  for (int64_t k : {32, 96, 2048 + 32, 8192}) {
    for (int64_t rows : {1, 3, 16, 17, 45}) {
      const Matrix m = make_matrix(DType::kQ4_0, rows, k, static_cast<uint32_t>(k + 3 * rows));
      const std::vector<float> x = random_floats(21 * k, static_cast<uint32_t>(k * 7 + rows));
      std::vector<float> want;
      run_ops(*kernels::scalar_ops(), m.view, x, 21, want);
      for (const IsaOps* ops : variants) {
        for (int64_t n : {1, 2, 3, 4, 5, 8, 9, 21}) {
          std::vector<float> y;
          run_ops(*ops, m.view, x, n, y);
          const std::vector<float> head(want.begin(), want.begin() + n * rows);
          ASSERT_TRUE(same_bits(y, head))
              << ops->variant << " rows=" << rows << " k=" << k << " n_tokens=" << n;
        }
      }
    }
  }
}

TEST(Kernels, MatmulScalarAndMatmulAgreeWithTheirTables) {
  const Matrix m = make_matrix(DType::kQ4_0, 50, 256, 12);
  const std::vector<float> x = random_floats(4 * 256, 13);
  std::vector<float> want;
  run_ops(*kernels::scalar_ops(), m.view, x, 4, want);
  std::vector<float> y(4 * 50);
  matmul_scalar(m.view, x.data(), 4, y.data(), 50);
  EXPECT_TRUE(same_bits(y, want));

  run_ops(kernels::active_ops(), m.view, x, 4, want);
  ThreadPool pool(2);
  MatmulScratch scratch;
  // ldy > rows: the columns past rows stay untouched.
  std::vector<float> wide(4 * 64, -7.0f);
  matmul(m.view, x.data(), 4, wide.data(), 64, pool, scratch);
  for (int64_t t = 0; t < 4; ++t) {
    for (int64_t r = 0; r < 64; ++r) {
      const float v = wide[static_cast<size_t>(t * 64 + r)];
      if (r < 50) {
        ASSERT_EQ(v, want[static_cast<size_t>(t * 50 + r)]);
      } else {
        ASSERT_EQ(v, -7.0f);
      }
    }
  }
}

TEST(Kernels, GetRowMatchesDequantizeRow) {
  for (DType type : kAllTypes) {
    const Matrix m = make_matrix(type, 9, 96, 14);
    std::vector<float> got(96);
    std::vector<float> want(96);
    for (int64_t r = 0; r < 9; ++r) {
      get_row(m.view, r, got.data());
      dequantize_row(type, m.bytes.data() + r * row_bytes(type, 96), want.data(), 96);
      ASSERT_TRUE(same_bits(got, want)) << type_name(type) << " row " << r;
    }
  }
}

TEST(Kernels, IsaSelection) {
  const std::vector<Isa> isas = available_isas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.front(), Isa::kScalar);
  EXPECT_NE(std::find(isas.begin(), isas.end(), active_isa()), isas.end());
  EXPECT_STREQ(isa_name(Isa::kAvx512), "avx512");
  EXPECT_STREQ(isa_name(Isa::kNeon), "neon");
}

TEST(KernelsDeathTest, RefusesAnIsaTheCpuLacks) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
#if defined(__x86_64__)
  const char* lacking = "neon";
#else
  const char* lacking = "avx512";
#endif
  EXPECT_EXIT(
      {
        setenv("STRATA_ISA", lacking, 1);
        active_isa();
      },
      testing::ExitedWithCode(1), "cannot run");
  EXPECT_EXIT(
      {
        setenv("STRATA_ISA", "sse9", 1);
        active_isa();
      },
      testing::ExitedWithCode(1), "not an ISA name");
}

TEST(KernelsDeathTest, ForcedScalarIsHonoured) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv("STRATA_ISA", "scalar", 1);
        std::exit(active_isa() == Isa::kScalar ? 3 : 4);
      },
      testing::ExitedWithCode(3), "");
}

TEST(KernelsDeathTest, RejectsColumnsThatAreNotWholeBlocks) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::vector<uint8_t> bytes(1024);
  const WeightView w{DType::kQ4_0, 2, 40, bytes.data()};
  std::vector<float> x(40);
  std::vector<float> y(2);
  EXPECT_DEATH(matmul_scalar(w, x.data(), 1, y.data(), 2), "not a whole number");
}

}  // namespace
}  // namespace strata::model
