// Known-answer tests for ggml's element types: values worked out by hand from ggml's
// reference definitions (quantize_row_q8_0_ref, quantize_row_q4_0_ref, fp16/bf16 rounding).
#include "strata/model/types.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace strata::model {
namespace {

TEST(Fp16, KnownAnswers) {
  EXPECT_EQ(fp32_to_fp16(1.0f), 0x3c00);
  EXPECT_EQ(fp32_to_fp16(-2.0f), 0xc000);
  EXPECT_EQ(fp32_to_fp16(0.1f), 0x2e66);
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7bff);
  EXPECT_EQ(fp32_to_fp16(65519.0f), 0x7bff);  // below the halfway point to 65536
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00);  // halfway: ties to even = infinity
  EXPECT_EQ(fp32_to_fp16(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(fp32_to_fp16(5.9604645e-8f), 0x0001);       // smallest subnormal
  EXPECT_EQ(fp32_to_fp16(2.0e-8f), 0x0000);             // under half of it
  EXPECT_EQ(fp32_to_fp16(6.1035156e-5f), 0x0400);       // smallest normal
  EXPECT_EQ(fp32_to_fp16(1.0f + 1.0f / 2048), 0x3c00);  // halfway, even stays
  EXPECT_EQ(fp32_to_fp16(1.0f + 3.0f / 2048), 0x3c02);  // halfway, odd rounds up
  EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
  EXPECT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(std::nanf("")))));
}

TEST(Fp16, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const auto hh = static_cast<uint16_t>(h);
    const float f = fp16_to_fp32(hh);
    if (std::isnan(f)) continue;
    ASSERT_EQ(fp32_to_fp16(f), hh) << "half 0x" << std::hex << h;
  }
}

TEST(Bf16, KnownAnswers) {
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(fp32_to_bf16(1.00390625f), 0x3f80);  // halfway, even stays
  EXPECT_EQ(fp32_to_bf16(1.01171875f), 0x3f82);  // halfway, odd rounds up
  EXPECT_EQ(fp32_to_bf16(-3.0f), 0xc040);
  EXPECT_EQ(bf16_to_fp32(0x3f80), 1.0f);
  EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(std::nanf("")))));
}

TEST(Q8_0, KnownAnswer) {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);
  BlockQ8_0 b{};
  quantize_row(DType::kQ8_0, x.data(), &b, 32);
  EXPECT_EQ(b.d, fp32_to_fp16(16.0f / 127.0f));
  EXPECT_EQ(b.qs[0], -127);
  EXPECT_EQ(b.qs[16], 0);
  EXPECT_EQ(b.qs[31], 119);  // round(15 * 127/16) = round(119.06)
  EXPECT_EQ(b.qs[8], -64);   // round(-8 * 7.9375) = round(-63.5) = -64 (half away from zero)
}

TEST(Q4_0, KnownAnswer) {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);
  BlockQ4_0 b{};
  quantize_row(DType::kQ4_0, x.data(), &b, 32);
  // Largest magnitude is x[0] = -16, so d = -16 / -8 = 2 and id = 0.5.
  EXPECT_EQ(b.d, 0x4000);
  EXPECT_EQ(b.qs[0], 0x80);   // x[0] -> (int)(0.5) = 0; x[16] = 0 -> 8
  EXPECT_EQ(b.qs[15], 0xf8);  // x[15] = -1 -> 8; x[31] = 15 -> min(15, 16)
  std::vector<float> y(32);
  dequantize_row(DType::kQ4_0, &b, y.data(), 32);
  EXPECT_EQ(y[0], -16.0f);
  EXPECT_EQ(y[16], 0.0f);
  EXPECT_EQ(y[31], 14.0f);
}

TEST(Quant, ZeroBlockHasZeroScale) {
  std::vector<float> x(64, 0.0f);
  std::vector<uint8_t> q(static_cast<size_t>(row_bytes(DType::kQ4_0, 64)));
  quantize_row(DType::kQ4_0, x.data(), q.data(), 64);
  std::vector<float> y(64, 1.0f);
  dequantize_row(DType::kQ4_0, q.data(), y.data(), 64);
  for (float v : y) EXPECT_EQ(v, 0.0f);
}

// Dequantize(quantize(x)) stays within half a quantization step of x for every type.
TEST(Quant, RoundTripErrorWithinHalfAStep) {
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
  const int64_t n = 4096;
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng);
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0}) {
    std::vector<uint8_t> q(static_cast<size_t>(row_bytes(t, n)));
    std::vector<float> y(n);
    quantize_row(t, x.data(), q.data(), n);
    dequantize_row(t, q.data(), y.data(), n);
    for (int64_t b = 0; b < n / 32; ++b) {
      float amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
      double step = 0;
      switch (t) {
        case DType::kF32: step = 0; break;
        case DType::kF16: step = amax * std::ldexp(1.0, -10); break;
        case DType::kBF16: step = amax * std::ldexp(1.0, -7); break;
        case DType::kQ8_0: step = amax / 127.0; break;
        case DType::kQ4_0: step = amax / 8.0 * 2; break;  // the top code clamps at +7
      }
      for (int j = 0; j < 32; ++j) {
        const int64_t i = b * 32 + j;
        // The scale itself is stored as f16: up to amax * 2^-11 more for the block types.
        const double scale_err = (t == DType::kQ8_0 || t == DType::kQ4_0) ? amax * 0x1p-10 : 0;
        ASSERT_LE(std::fabs(x[i] - y[i]), step / 2 + scale_err + 1e-6)
            << *dtype_name(static_cast<uint32_t>(t)) << " at " << i;
      }
    }
  }
}

TEST(Types, NamesAndSizes) {
  EXPECT_EQ(parse_dtype("Q4_0"), DType::kQ4_0);
  EXPECT_EQ(parse_dtype("bf16"), DType::kBF16);
  EXPECT_FALSE(parse_dtype("q4_k").has_value());
  EXPECT_FALSE(dtype_supported(12));  // q4_K: valid ggml, unsupported by strata
  EXPECT_EQ(row_bytes(DType::kQ4_0, 4096), 4096 / 32 * 18);
  EXPECT_EQ(row_bytes(DType::kQ8_0, 64), 68);
  EXPECT_EQ(row_bytes(DType::kBF16, 10), 20);
}

}  // namespace
}  // namespace strata::model
