// AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c; reached only when the CPU
// reports all three).
//
// Reduction order (the determinism contract), a function of k only:
//  * float weights: element i goes to lane i % 8 of one 8-lane f32 accumulator per output,
//    chunks of 8 in increasing order, fused multiply-add; the tail chunk reads zeros.
//  * Q4_0/Q8_0 weights: one block per step; int32 lane j holds the exact sum of the block's
//    products 4j..4j+3; acc = fma(f32(lanes), broadcast(d_w * d_x), acc), blocks in order.
//  * the 8 lanes are then summed by hsum() in one fixed tree.
// A tile of R rows x T tokens issues exactly these operations for each (row, token), so every
// tile shape gives the bits a lone row and token would get.
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <utility>

#include "kernels/kernels_internal.h"

namespace strata::model::kernels {
namespace {

constexpr int kMaxR = 4;
constexpr int kMaxT = 3;
// Software prefetch of the weights this many row tiles ahead: hardware prefetchers lose track
// of several interleaved row streams that are each only a few KiB long.
constexpr int kPrefetchTiles = 2;

// Prefetches [p, p + n_bytes) into L1, one line at a time (n_bytes <= 128). Prefetches never
// fault, so running past the matrix end is harmless.
// __builtin_prefetch, not _mm_prefetch, and always_inline: GCC 12 silently drops
// _mm_prefetch calls reached through the always_inline step functions.
__attribute__((always_inline)) inline void prefetch_ahead(const uint8_t* p, int64_t n_bytes) {
  __builtin_prefetch(p, 0, 3);
  if (n_bytes > 64) __builtin_prefetch(p + 64, 0, 3);
}

// One token's activations for one Q8_0 block. The block scales follow all blocks.
struct alignas(32) ActBlock {
  int8_t x[32];
  uint8_t ax[32];  // |x|, the unsigned operand of vpmaddubsw for Q4_0 weights
};

int64_t div_up(int64_t a, int64_t b) { return (a + b - 1) / b; }
bool is_q8_dot(DType t) { return t == DType::kQ4_0 || t == DType::kQ8_0; }

float hsum(__m256 v) {
  __m128 a = _mm_add_ps(_mm256_extractf128_ps(v, 0), _mm256_extractf128_ps(v, 1));
  a = _mm_add_ps(a, _mm_movehl_ps(a, a));
  a = _mm_add_ss(a, _mm_movehdup_ps(a));
  return _mm_cvtss_f32(a);
}

__m256i tail_mask(int64_t n) {
  alignas(32) static const int32_t kLanes[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                            _mm256_load_si256(reinterpret_cast<const __m256i*>(kLanes)));
}

// ---- activation conversion ------------------------------------------------------------

// roundf(): round half away from zero. v - trunc(v) is exact, so the halfway test is too.
__m256 round_half_away(__m256 v) {
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 sign = _mm256_and_ps(v, _mm256_set1_ps(-0.0f));
  const __m256 frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(v, t));
  const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  return _mm256_add_ps(t, _mm256_and_ps(up, _mm256_or_ps(_mm256_set1_ps(1.0f), sign)));
}

// One Q8_0 block as types.h's quantize_row computes it; returns d after the f16 round trip.
float quantize_block(const float* xb, ActBlock* out) {
  __m256 v[4];
  __m256 amax = _mm256_setzero_ps();
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm256_loadu_ps(xb + 8 * i);
    amax = _mm256_max_ps(amax, _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v[i]));
  }
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  const float d = _mm_cvtss_f32(m) / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  __m256i q[4];
  for (int i = 0; i < 4; ++i) {
    q[i] = _mm256_cvttps_epi32(round_half_away(_mm256_mul_ps(v[i], _mm256_set1_ps(id))));
  }
  // packs interleave 128-bit halves; the permute restores element order.
  const __m256i packed =
      _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
  const __m256i x = _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_store_si256(reinterpret_cast<__m256i*>(out->x), x);
  _mm256_store_si256(reinterpret_cast<__m256i*>(out->ax), _mm256_abs_epi8(x));
  return fp16_to_fp32(fp32_to_fp16(d));
}

int64_t act_stride_bytes(DType type, int64_t k) {
  const int64_t nb = k / kQK;
  if (is_q8_dot(type)) return div_up(nb * static_cast<int64_t>(sizeof(ActBlock)) + nb * 4, 64) * 64;
  return div_up(k, 16) * 64;
}

void convert(DType type, const float* x, int64_t k, int64_t t0, int64_t t1, uint8_t* act,
             int64_t act_stride) {
  for (int64_t t = t0; t < t1; ++t) {
    const float* xt = x + t * k;
    uint8_t* dst = act + t * act_stride;
    if (is_q8_dot(type)) {
      const int64_t nb = k / kQK;
      auto* blocks = reinterpret_cast<ActBlock*>(dst);
      auto* d = reinterpret_cast<float*>(dst + nb * static_cast<int64_t>(sizeof(ActBlock)));
      for (int64_t b = 0; b < nb; ++b) d[b] = quantize_block(xt + b * kQK, blocks + b);
      continue;
    }
    auto* out = reinterpret_cast<float*>(dst);
    int64_t i = 0;
    if (type == DType::kF16) {
      for (; i + 8 <= k; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(xt + i), _MM_FROUND_TO_NEAREST_INT);
        _mm256_store_ps(out + i, _mm256_cvtph_ps(h));
      }
    }
    for (; i < k; ++i) {
      out[i] = type == DType::kF16 ? fp16_to_fp32(fp32_to_fp16(xt[i]))
                                   : bf16_to_fp32(fp32_to_bf16(xt[i]));
    }
  }
}

// ---- float weights ----------------------------------------------------------------------

template <DType W>
__m256 load_w(const uint8_t* row, int64_t c, int64_t n) {
  if constexpr (W == DType::kF32) {
    const auto* p = reinterpret_cast<const float*>(row) + c;
    return n == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, tail_mask(n));
  } else {
    __m128i h;
    if (n == 8) {
      h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + c * 2));
    } else {
      alignas(16) uint16_t buf[8] = {};
      std::memcpy(buf, row + c * 2, static_cast<size_t>(n) * 2);
      h = _mm_load_si128(reinterpret_cast<const __m128i*>(buf));
    }
    if constexpr (W == DType::kF16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

// One 8-column chunk (n < 8 columns for the tail) for every (row, token) of the tile.
template <DType W, int R, int T, bool kTail>
__attribute__((always_inline)) inline void float_step(__m256 (&acc)[R][T], const uint8_t* w0,
                                                      int64_t w_stride, const uint8_t* a0,
                                                      int64_t a_stride, int64_t c, int64_t n) {
  constexpr int64_t kElemBytes = W == DType::kF32 ? 4 : 2;
  __m256 wv[R];
  for (int r = 0; r < R; ++r) {
    const uint8_t* wr = w0 + r * w_stride;
    if (c * kElemBytes % 64 == 0) {
      prefetch_ahead(wr + kPrefetchTiles * R * w_stride + c * kElemBytes, 64);
    }
    wv[r] = load_w<W>(wr, c, kTail ? n : 8);
  }
  for (int t = 0; t < T; ++t) {
    const auto* xp = reinterpret_cast<const float*>(a0 + t * a_stride) + c;
    const __m256 xv = kTail ? _mm256_maskload_ps(xp, tail_mask(n)) : _mm256_loadu_ps(xp);
    for (int r = 0; r < R; ++r) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
  }
}

template <DType W, int R, int T>
void float_tile(const uint8_t* w0, int64_t w_stride, const uint8_t* a0, int64_t a_stride, int64_t k,
                float* y, int64_t ldy) {
  __m256 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  // A branch-free main loop and the tail after it: with a branch inside, GCC stores every
  // accumulator to memory on each iteration.
  int64_t c = 0;
  for (; c + 8 <= k; c += 8) float_step<W, R, T, false>(acc, w0, w_stride, a0, a_stride, c, 8);
  if (c < k) float_step<W, R, T, true>(acc, w0, w_stride, a0, a_stride, c, k - c);
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) y[t * ldy + r] = hsum(acc[r][t]);
}

// ---- Q4_0 / Q8_0 weights ----------------------------------------------------------------

struct WeightBlock {
  __m256i q;  // Q4_0: nibble - 8; Q8_0: q
  __m256i a;  // Q8_0: |q| (the unsigned operand); unused for Q4_0
  float d;
};

template <DType W>
WeightBlock load_block(const uint8_t* p) {
  WeightBlock wb;
  uint16_t h = 0;
  std::memcpy(&h, p, sizeof h);
  wb.d = _cvtsh_ss(h);
  if constexpr (W == DType::kQ4_0) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2));
    const __m128i lo = _mm_and_si128(raw, _mm_set1_epi8(0x0f));
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0f));
    wb.q = _mm256_sub_epi8(_mm256_set_m128i(hi, lo), _mm256_set1_epi8(8));
    wb.a = wb.q;
  } else {
    wb.q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2));
    wb.a = _mm256_abs_epi8(wb.q);
  }
  return wb;
}

// Exact int32 lane sums. vpmaddubsw needs one unsigned operand: |x| with the sign moved onto
// the Q4_0 value (|nibble - 8| <= 8), or |q| with the sign moved onto x for Q8_0 (|x| <= 127,
// so q = -128 is safe). Pair sums stay below 2 * 128 * 127 < 32768: no saturation.
template <DType W>
__m256i dot_block(const WeightBlock& wb, const ActBlock& a) {
  const __m256i x = _mm256_load_si256(reinterpret_cast<const __m256i*>(a.x));
  __m256i p;
  if constexpr (W == DType::kQ4_0) {
    const __m256i ax = _mm256_load_si256(reinterpret_cast<const __m256i*>(a.ax));
    p = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(wb.q, x));
  } else {
    p = _mm256_maddubs_epi16(wb.a, _mm256_sign_epi8(x, wb.q));
  }
  return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

template <DType W, int R, int T>
void quant_tile(const uint8_t* w0, int64_t w_stride, const uint8_t* a0, int64_t a_stride, int64_t k,
                float* y, int64_t ldy) {
  constexpr int64_t kBlockBytes = W == DType::kQ4_0 ? 18 : 34;
  const int64_t nb = k / kQK;
  __m256 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    WeightBlock wb[R];
    for (int r = 0; r < R; ++r) {
      const uint8_t* wr = w0 + r * w_stride + b * kBlockBytes;
      prefetch_ahead(wr + kPrefetchTiles * R * w_stride, kBlockBytes);
      wb[r] = load_block<W>(wr);
    }
    for (int t = 0; t < T; ++t) {
      const uint8_t* at = a0 + t * a_stride;
      const ActBlock& a = reinterpret_cast<const ActBlock*>(at)[b];
      const float dx =
          reinterpret_cast<const float*>(at + nb * static_cast<int64_t>(sizeof(ActBlock)))[b];
      for (int r = 0; r < R; ++r) {
        const __m256 s = _mm256_cvtepi32_ps(dot_block<W>(wb[r], a));
        acc[r][t] = _mm256_fmadd_ps(s, _mm256_set1_ps(wb[r].d * dx), acc[r][t]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) y[t * ldy + r] = hsum(acc[r][t]);
}

// ---- tiling -----------------------------------------------------------------------------

using TileFn = void (*)(const uint8_t*, int64_t, const uint8_t*, int64_t, int64_t, float*, int64_t);

template <DType W, int R, int T>
constexpr TileFn tile_fn() {
  if constexpr (W == DType::kQ4_0 || W == DType::kQ8_0)
    return quant_tile<W, R, T>;
  else
    return float_tile<W, R, T>;
}

template <DType W, int R, int... Ts>
constexpr void fill_row(TileFn* out, std::integer_sequence<int, Ts...>) {
  ((out[Ts] = tile_fn<W, R, Ts + 1>()), ...);
}

template <DType W>
struct TileTable {
  TileFn fn[kMaxR][kMaxT];
  constexpr TileTable() : fn{} {
    fill_row<W, 1>(fn[0], std::make_integer_sequence<int, kMaxT>());
    fill_row<W, 2>(fn[1], std::make_integer_sequence<int, kMaxT>());
    fill_row<W, 3>(fn[2], std::make_integer_sequence<int, kMaxT>());
    fill_row<W, 4>(fn[3], std::make_integer_sequence<int, kMaxT>());
  }
};

// Tile shapes that fit AVX2's 16 registers: one token streams 4 rows; batches use 2 rows x 3
// tokens for the quantized types (a Q8_0 row holds q, |q| and d) and 4 x 2 for floats.
template <DType W>
void rows_typed(const WeightView& w, const uint8_t* act, int64_t act_stride, int64_t n_tokens,
                float* y, int64_t ldy, int64_t r0, int64_t r1) {
  static constexpr TileTable<W> kTiles;
  constexpr bool kQuant = W == DType::kQ4_0 || W == DType::kQ8_0;
  constexpr int64_t kBlockBytes = 256 * 1024;
  const int64_t tile_r = n_tokens == 1 || !kQuant ? 4 : 2;
  const int64_t tile_t = n_tokens == 1 ? 1 : kQuant ? 3 : 2;
  const int64_t rb = row_bytes(W, w.cols);
  const int64_t rows_per_block =
      n_tokens <= tile_t ? r1 - r0 : (kBlockBytes / rb > tile_r ? kBlockBytes / rb : tile_r);
  const auto* base = static_cast<const uint8_t*>(w.data);
  for (int64_t b0 = r0; b0 < r1; b0 += rows_per_block) {
    const int64_t b1 = b0 + rows_per_block < r1 ? b0 + rows_per_block : r1;
    for (int64_t t = 0; t < n_tokens; t += tile_t) {
      const int64_t nt = n_tokens - t < tile_t ? n_tokens - t : tile_t;
      for (int64_t r = b0; r < b1; r += tile_r) {
        const int64_t nr = b1 - r < tile_r ? b1 - r : tile_r;
        kTiles.fn[nr - 1][nt - 1](base + r * rb, rb, act + t * act_stride, act_stride, w.cols,
                                  y + t * ldy + r, ldy);
      }
    }
  }
}

void rows(const WeightView& w, const uint8_t* act, int64_t act_stride, int64_t n_tokens, float* y,
          int64_t ldy, int64_t r0, int64_t r1) {
  switch (w.type) {
    case DType::kF32: rows_typed<DType::kF32>(w, act, act_stride, n_tokens, y, ldy, r0, r1); return;
    case DType::kF16: rows_typed<DType::kF16>(w, act, act_stride, n_tokens, y, ldy, r0, r1); return;
    case DType::kBF16:
      rows_typed<DType::kBF16>(w, act, act_stride, n_tokens, y, ldy, r0, r1);
      return;
    case DType::kQ4_0:
      rows_typed<DType::kQ4_0>(w, act, act_stride, n_tokens, y, ldy, r0, r1);
      return;
    case DType::kQ8_0:
      rows_typed<DType::kQ8_0>(w, act, act_stride, n_tokens, y, ldy, r0, r1);
      return;
  }
}

}  // namespace

const IsaOps* avx2_ops() {
  static const IsaOps ops{Isa::kAvx2, "avx2", act_stride_bytes, convert, rows};
  return &ops;
}

}  // namespace strata::model::kernels
