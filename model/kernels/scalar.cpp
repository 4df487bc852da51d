// The scalar reference kernels every SIMD kernel is tested against. Plain sequential loops:
// one f32 accumulator per output, blocks (or elements) added in increasing order. Compiled
// with -ffp-contract=off so the compiler cannot fuse a multiply and an add on targets that
// have FMA, which would make "the reference" depend on the target.
#include <cstring>

#include "kernels/kernels_internal.h"
#include "strata/base/status.h"

namespace strata::model::kernels {
namespace {

int64_t round_up_64(int64_t n) { return (n + 63) / 64 * 64; }

bool is_q8_dot(DType t) { return t == DType::kQ4_0 || t == DType::kQ8_0; }

// Layout: Q8_0 dot types as ggml's block_q8_0 array (quantize_row itself, so the reference
// quantization is by definition types.h's); F16/BF16 dot types as f32 values that went
// through the narrow type (exact, and products of two such values are exact in f32).
int64_t act_stride_bytes(DType type, int64_t k) {
  if (is_q8_dot(type)) return round_up_64(row_bytes(DType::kQ8_0, k));
  return round_up_64(k * static_cast<int64_t>(sizeof(float)));
}

void convert(DType type, const float* x, int64_t k, int64_t t0, int64_t t1, uint8_t* act,
             int64_t act_stride) {
  for (int64_t t = t0; t < t1; ++t) {
    const float* xt = x + t * k;
    uint8_t* dst = act + t * act_stride;
    if (is_q8_dot(type)) {
      quantize_row(DType::kQ8_0, xt, dst, k);
      continue;
    }
    auto* out = reinterpret_cast<float*>(dst);
    for (int64_t i = 0; i < k; ++i) {
      out[i] = type == DType::kF16 ? fp16_to_fp32(fp32_to_fp16(xt[i]))
                                   : bf16_to_fp32(fp32_to_bf16(xt[i]));
    }
  }
}

float weight_value(DType type, const uint8_t* row, int64_t i) {
  uint16_t h = 0;
  switch (type) {
    case DType::kF32: {
      float f = 0;
      std::memcpy(&f, row + i * 4, sizeof f);
      return f;
    }
    case DType::kF16: std::memcpy(&h, row + i * 2, sizeof h); return fp16_to_fp32(h);
    case DType::kBF16: std::memcpy(&h, row + i * 2, sizeof h); return bf16_to_fp32(h);
    default: break;
  }
  STRATA_CHECK_MSG(false, "weight_value: not a float type");
  return 0;
}

float dot_float(DType type, const uint8_t* row, const float* x, int64_t k) {
  float acc = 0.0f;
  for (int64_t i = 0; i < k; ++i) acc += weight_value(type, row, i) * x[i];
  return acc;
}

// Block sums are exact in int32 (|sum| <= 32 * 128 * 127); the f32 part adds one term per
// block: isum * (d_w * d_x).
float dot_q4_0(const BlockQ4_0* w, const BlockQ8_0* x, int64_t nb) {
  float acc = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    int32_t isum = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      isum += ((w[b].qs[j] & 0x0f) - 8) * x[b].qs[j];
      isum += ((w[b].qs[j] >> 4) - 8) * x[b].qs[j + kQK / 2];
    }
    acc += static_cast<float>(isum) * (fp16_to_fp32(w[b].d) * fp16_to_fp32(x[b].d));
  }
  return acc;
}

float dot_q8_0(const BlockQ8_0* w, const BlockQ8_0* x, int64_t nb) {
  float acc = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    int32_t isum = 0;
    for (int j = 0; j < kQK; ++j) isum += w[b].qs[j] * x[b].qs[j];
    acc += static_cast<float>(isum) * (fp16_to_fp32(w[b].d) * fp16_to_fp32(x[b].d));
  }
  return acc;
}

void rows(const WeightView& w, const uint8_t* act, int64_t act_stride, int64_t n_tokens, float* y,
          int64_t ldy, int64_t r0, int64_t r1) {
  const int64_t rb = row_bytes(w.type, w.cols);
  const int64_t nb = w.cols / kQK;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + r * rb;
    for (int64_t t = 0; t < n_tokens; ++t) {
      const uint8_t* a = act + t * act_stride;
      float v = 0.0f;
      switch (w.type) {
        case DType::kQ4_0:
          v = dot_q4_0(reinterpret_cast<const BlockQ4_0*>(row),
                       reinterpret_cast<const BlockQ8_0*>(a), nb);
          break;
        case DType::kQ8_0:
          v = dot_q8_0(reinterpret_cast<const BlockQ8_0*>(row),
                       reinterpret_cast<const BlockQ8_0*>(a), nb);
          break;
        default: v = dot_float(w.type, row, reinterpret_cast<const float*>(a), w.cols); break;
      }
      y[t * ldy + r] = v;
    }
  }
}

}  // namespace

const IsaOps* scalar_ops() {
  static const IsaOps ops{Isa::kScalar, "scalar", act_stride_bytes, convert, rows};
  return &ops;
}

}  // namespace strata::model::kernels
