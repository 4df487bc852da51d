// AArch64 Advanced SIMD (NEON) kernels, compiled only when building on aarch64. Deliberately
// simple: one (row, token) dot at a time, baseline ARMv8.0 instructions only (no dotprod, no
// fp16 arithmetic), so it runs on every 64-bit ARM board.
//
// Reduction order (the determinism contract), a function of k only:
//  * float weights: element i goes to lane i % 4 of one 4-lane f32 accumulator, chunks of 4
//    in increasing order, fused multiply-add; the tail chunk reads zeros.
//  * Q4_0/Q8_0 weights: per block an exact int32x4 of partial sums (vmull + pairwise adds),
//    then acc = fma(f32(lanes), d_w * d_x, acc), blocks in order.
//  * the 4 lanes are summed as (l0 + l2) + (l1 + l3).
#include <arm_neon.h>

#include <cstdint>
#include <cstring>

#include "kernels/kernels_internal.h"

namespace strata::model::kernels {
namespace {

int64_t round_up_64(int64_t n) { return (n + 63) / 64 * 64; }
bool is_q8_dot(DType t) { return t == DType::kQ4_0 || t == DType::kQ8_0; }

// Layout for Q8_0 dot types: types.h's block_q8_0 array (quantize_row: exact by definition),
// then the blocks' d as f32 from offset dx_offset(). Float dot types: f32 values rounded
// through f16/bf16.
int64_t dx_offset(int64_t k) { return round_up_64(row_bytes(DType::kQ8_0, k)); }

int64_t act_stride_bytes(DType type, int64_t k) {
  if (is_q8_dot(type)) return round_up_64(dx_offset(k) + k / kQK * 4);
  return round_up_64(k * 4);
}

void convert(DType type, const float* x, int64_t k, int64_t t0, int64_t t1, uint8_t* act,
             int64_t act_stride) {
  for (int64_t t = t0; t < t1; ++t) {
    const float* xt = x + t * k;
    uint8_t* dst = act + t * act_stride;
    if (is_q8_dot(type)) {
      quantize_row(DType::kQ8_0, xt, dst, k);
      const auto* blocks = reinterpret_cast<const BlockQ8_0*>(dst);
      auto* dx = reinterpret_cast<float*>(dst + dx_offset(k));
      for (int64_t b = 0; b < k / kQK; ++b) dx[b] = fp16_to_fp32(blocks[b].d);
      continue;
    }
    auto* out = reinterpret_cast<float*>(dst);
    for (int64_t i = 0; i < k; ++i) {
      out[i] = type == DType::kF16 ? fp16_to_fp32(fp32_to_fp16(xt[i]))
                                   : bf16_to_fp32(fp32_to_bf16(xt[i]));
    }
  }
}

float hsum(float32x4_t v) {
  const float32x2_t s = vadd_f32(vget_low_f32(v), vget_high_f32(v));  // (l0+l2, l1+l3)
  return vget_lane_f32(s, 0) + vget_lane_f32(s, 1);
}

float32x4_t load_w4(DType type, const uint8_t* row, int64_t i) {
  if (type == DType::kF32) return vld1q_f32(reinterpret_cast<const float*>(row) + i);
  const uint16x4_t h = vld1_u16(reinterpret_cast<const uint16_t*>(row) + i);
  if (type == DType::kF16) return vcvt_f32_f16(vreinterpret_f16_u16(h));
  return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
}

float dot_float(DType type, const uint8_t* row, const float* x, int64_t k) {
  float32x4_t acc = vdupq_n_f32(0.0f);
  int64_t i = 0;
  for (; i + 4 <= k; i += 4) acc = vfmaq_f32(acc, load_w4(type, row, i), vld1q_f32(x + i));
  if (i < k) {
    // The tail as a zero-padded chunk, so element i still lands in lane i % 4.
    alignas(16) uint8_t wbuf[16] = {};
    alignas(16) float xbuf[4] = {};
    const int64_t n = k - i;
    const int64_t elem = type == DType::kF32 ? 4 : 2;
    std::memcpy(wbuf, row + i * elem, static_cast<size_t>(n * elem));
    std::memcpy(xbuf, x + i, static_cast<size_t>(n) * sizeof(float));
    acc = vfmaq_f32(acc, load_w4(type, wbuf, 0), vld1q_f32(xbuf));
  }
  return hsum(acc);
}

// Exact int32x4 partial sums of 32 int8 x int8 products (each |product| <= 128 * 128 fits
// int16; vpaddlq widens before anything can overflow).
int32x4_t dot32(int8x16_t w0, int8x16_t w1, int8x16_t x0, int8x16_t x1) {
  int32x4_t s = vpaddlq_s16(vmull_s8(vget_low_s8(w0), vget_low_s8(x0)));
  s = vaddq_s32(s, vpaddlq_s16(vmull_high_s8(w0, x0)));
  s = vaddq_s32(s, vpaddlq_s16(vmull_s8(vget_low_s8(w1), vget_low_s8(x1))));
  return vaddq_s32(s, vpaddlq_s16(vmull_high_s8(w1, x1)));
}

float dot_quant(DType type, const uint8_t* row, const uint8_t* a, int64_t k) {
  const int64_t nb = k / kQK;
  const auto* xb = reinterpret_cast<const BlockQ8_0*>(a);
  const auto* dx = reinterpret_cast<const float*>(a + dx_offset(k));
  float32x4_t acc = vdupq_n_f32(0.0f);
  for (int64_t b = 0; b < nb; ++b) {
    int8x16_t w0;
    int8x16_t w1;
    uint16_t dh = 0;
    if (type == DType::kQ4_0) {
      const auto& wb = reinterpret_cast<const BlockQ4_0*>(row)[b];
      const uint8x16_t q = vld1q_u8(wb.qs);
      w0 = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0f))), vdupq_n_s8(8));
      w1 = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), vdupq_n_s8(8));
      dh = wb.d;
    } else {
      const auto& wb = reinterpret_cast<const BlockQ8_0*>(row)[b];
      w0 = vld1q_s8(wb.qs);
      w1 = vld1q_s8(wb.qs + 16);
      dh = wb.d;
    }
    const int32x4_t s = dot32(w0, w1, vld1q_s8(xb[b].qs), vld1q_s8(xb[b].qs + 16));
    const float scale = fp16_to_fp32(dh) * dx[b];
    acc = vfmaq_f32(acc, vcvtq_f32_s32(s), vdupq_n_f32(scale));
  }
  return hsum(acc);
}

void rows(const WeightView& w, const uint8_t* act, int64_t act_stride, int64_t n_tokens, float* y,
          int64_t ldy, int64_t r0, int64_t r1) {
  const int64_t rb = row_bytes(w.type, w.cols);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + r * rb;
    for (int64_t t = 0; t < n_tokens; ++t) {
      const uint8_t* a = act + t * act_stride;
      y[t * ldy + r] = is_q8_dot(w.type)
                           ? dot_quant(w.type, row, a, w.cols)
                           : dot_float(w.type, row, reinterpret_cast<const float*>(a), w.cols);
    }
  }
}

}  // namespace

const IsaOps* neon_ops() {
  static const IsaOps ops{Isa::kNeon, "neon", act_stride_bytes, convert, rows};
  return &ops;
}

}  // namespace strata::model::kernels
