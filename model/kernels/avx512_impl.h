// AVX-512 kernels, included by avx512.cpp (STRATA_AVX512_VNNI 0: F+BW+VL+DQ) and by
// avx512_vnni.cpp (STRATA_AVX512_VNNI 1: the same plus VNNI's vpdpbusd). Everything here has
// internal linkage so the two copies, compiled with different -m flags, never merge.
//
// Reduction order (the determinism contract), a function of k only:
//  * float weights: element i goes to lane i % 16 of one 16-lane f32 accumulator per output,
//    chunks of 16 in increasing order, fused multiply-add; the tail chunk is masked to zero.
//  * Q8_0 weights: blocks go in pairs (2p, 2p+1); int32 lane j < 8 holds the exact sum
//    of products 4j..4j+3 of block 2p, lane 8 + j the same of block 2p+1. Each pair does
//    acc = fma(f32(lanes), d_w * d_x (per lane), acc); an odd last block pairs with zeros.
//  * the 16 lanes are then summed by hsum() in one fixed tree.
//  * Q4_0 weights: the scalar kernel's order (avx512_q4_0.h), so the same bits as scalar.
// A tile of R rows x T tokens keeps one accumulator per (row, token) and issues exactly these
// operations for each, so every tile shape gives the bits a lone row and token would get.
#pragma once

// GCC 12's AVX-512 headers build results from _mm512_undefined_*(), which -Wuninitialized
// reports at the header's line once inlined (GCC bug 105593); the pragma covers those lines.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <array>
#include <cstdint>
#include <utility>

#include "kernels/kernels_internal.h"

#ifndef STRATA_AVX512_VNNI
#error "define STRATA_AVX512_VNNI to 0 or 1 before including avx512_impl.h"
#endif

namespace strata::model::kernels {
namespace {

constexpr bool kVnni = STRATA_AVX512_VNNI != 0;
constexpr int kMaxR = 4;  // rows per tile
constexpr int kMaxT = 4;  // tokens per tile
// Software prefetch of the weights this many row tiles ahead: the hardware prefetchers lose
// track of 4 interleaved row streams that are each only a few KiB long (a 2048-column Q4_0
// row is 18 cache lines); prefetching doubled single-thread GEMV throughput on Zen 5.
constexpr int kPrefetchTiles = 2;

// One token's activations for one pair of Q8_0 blocks, as the Q8_0 dot kernel wants them.
struct alignas(64) ActPair {
  int8_t x[64];      // quants of blocks 2p (bytes 0..31) and 2p+1 (32..63); zeros past the end
  int32_t init[16];  // -offset * (sum of x over each lane's 4 bytes): see dot_pair()
  float dxv[16];     // d of block 2p in lanes 0..7, of block 2p+1 in lanes 8..15
};
static_assert(sizeof(ActPair) == 192);

int64_t div_up(int64_t a, int64_t b) { return (a + b - 1) / b; }
bool is_q8_dot(DType t) { return t == DType::kQ4_0 || t == DType::kQ8_0; }

float hsum(__m512 v) {
  const __m256 a = _mm256_add_ps(_mm512_extractf32x8_ps(v, 0), _mm512_extractf32x8_ps(v, 1));
  __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  b = _mm_add_ps(b, _mm_movehl_ps(b, b));
  b = _mm_add_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}

// Prefetches [p, p + n_bytes) into L1, one line at a time (n_bytes <= 128). Prefetches
// never fault, so running past the matrix end is harmless.
// __builtin_prefetch, not _mm_prefetch, and always_inline: GCC 12 silently drops
// _mm_prefetch calls reached through the always_inline step functions.
__attribute__((always_inline)) inline void prefetch_ahead(const uint8_t* p, int64_t n_bytes) {
  __builtin_prefetch(p, 0, 3);
  if (n_bytes > 64) __builtin_prefetch(p + 64, 0, 3);
}

// ---- activation conversion ------------------------------------------------------------

// roundf(): round half away from zero. v - trunc(v) is exact, so the halfway test is too.
__m512 round_half_away(__m512 v) {
  const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m512 frac = _mm512_abs_ps(_mm512_sub_ps(v, t));
  const __mmask16 up = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
  const __m512 one = _mm512_or_ps(_mm512_set1_ps(1.0f), _mm512_and_ps(v, _mm512_set1_ps(-0.0f)));
  return _mm512_mask_add_ps(t, up, t, one);
}

// One Q8_0 block as types.h's quantize_row computes it: d = amax / 127 (rounded to f16 for
// storage), q = roundf(x * (1 / d)). Returns d as f32 after the f16 round trip.
float quantize_block(const float* xb, int8_t* q) {
  const __m512 v0 = _mm512_loadu_ps(xb);
  const __m512 v1 = _mm512_loadu_ps(xb + 16);
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const __m512 idv = _mm512_set1_ps(id);
  const __m512i q0 = _mm512_cvttps_epi32(round_half_away(_mm512_mul_ps(v0, idv)));
  const __m512i q1 = _mm512_cvttps_epi32(round_half_away(_mm512_mul_ps(v1, idv)));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtepi32_epi8(q0));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16), _mm512_cvtepi32_epi8(q1));
  return fp16_to_fp32(fp32_to_fp16(d));
}

// Q8_0 weights' layout. VNNI multiplies the weights as unsigned bytes, q + 128; init removes
// 128 times the lane's activation sum.
void convert_q8(const float* x, int64_t k, uint8_t* dst) {
  const int64_t nb = k / kQK;
  const int shift = 7;
  auto* pairs = reinterpret_cast<ActPair*>(dst);
  for (int64_t p = 0; p < div_up(nb, 2); ++p) {
    ActPair& a = pairs[p];
    float d[2] = {0.0f, 0.0f};
    for (int h = 0; h < 2; ++h) {
      const int64_t b = 2 * p + h;
      if (b < nb) {
        d[h] = quantize_block(x + b * kQK, a.x + h * kQK);
      } else {
        _mm256_store_si256(reinterpret_cast<__m256i*>(a.x + h * kQK), _mm256_setzero_si256());
      }
    }
    const __m512i xv = _mm512_load_si512(a.x);
    const __m512i lane_sum =
        _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_set1_epi8(1), xv), _mm512_set1_epi16(1));
    _mm512_store_si512(
        a.init, _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(lane_sum, shift)));
    _mm512_store_ps(a.dxv, _mm512_insertf32x8(_mm512_set1_ps(d[0]), _mm256_set1_ps(d[1]), 1));
  }
}

// Values rounded through f16 or bf16, kept as f32 (exact), zero padded to the stride.
void convert_narrow(DType type, const float* x, int64_t k, float* dst, int64_t n_out) {
  for (int64_t c = 0; c < n_out; c += 16) {
    const __mmask16 m = c + 16 <= k ? __mmask16(0xffff)
                        : c < k     ? __mmask16((1u << (k - c)) - 1)
                                    : __mmask16(0);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + c);
    __m512 r;
    if (type == DType::kF16) {
      r = _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    } else {
      // types.h's fp32_to_bf16: round to nearest even; NaN keeps its top bits, made quiet.
      const __m512i u = _mm512_castps_si512(v);
      const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
      const __m512i rounded = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb));
      const __mmask16 nan = _mm512_cmpgt_epu32_mask(
          _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
      __m512i hi = _mm512_srli_epi32(rounded, 16);
      hi = _mm512_mask_or_epi32(hi, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(64));
      r = _mm512_castsi512_ps(_mm512_slli_epi32(hi, 16));
    }
    _mm512_store_ps(dst + c, r);
  }
}

// ---- float weights ----------------------------------------------------------------------

// 16 weights from column c as f32. kTail: only the columns m selects, with a masked load
// (masked loads stay out of the main loop: GCC cannot keep the tile accumulators in registers
// across them, they alias everything to it).
template <DType W, bool kTail>
__m512 load_w(const uint8_t* row, int64_t c, __mmask16 m) {
  if constexpr (W == DType::kF32) {
    const auto* p = reinterpret_cast<const float*>(row) + c;
    return kTail ? _mm512_maskz_loadu_ps(m, p) : _mm512_loadu_ps(p);
  } else {
    const uint8_t* p = row + c * 2;
    const __m256i h = kTail ? _mm256_maskz_loadu_epi16(m, p)
                            : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    if constexpr (W == DType::kF16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

// One 16-column chunk for every (row, token) of the tile; m selects the tail chunk's columns.
template <DType W, int R, int T, bool kTail>
__attribute__((always_inline)) inline void float_step(__m512 (&acc)[R][T], const uint8_t* w0,
                                                      int64_t w_stride, const uint8_t* a0,
                                                      int64_t a_stride, int64_t c, __mmask16 m) {
  constexpr int64_t kElemBytes = W == DType::kF32 ? 4 : 2;
  __m512 wv[R];
  for (int r = 0; r < R; ++r) {
    const uint8_t* wr = w0 + r * w_stride;
    prefetch_ahead(wr + kPrefetchTiles * R * w_stride + c * kElemBytes, 16 * kElemBytes);
    wv[r] = load_w<W, kTail>(wr, c, m);
  }
  for (int t = 0; t < T; ++t) {
    const float* xp = reinterpret_cast<const float*>(a0 + t * a_stride) + c;
    const __m512 xv = kTail ? _mm512_maskz_loadu_ps(m, xp) : _mm512_loadu_ps(xp);
    for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
  }
}

template <DType W, int R, int T>
void float_tile(const uint8_t* w0, int64_t w_stride, const uint8_t* /*w_end*/, const uint8_t* a0,
                int64_t a_stride, int64_t k, float* y, int64_t ldy) {
  __m512 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  // Full chunks, then the masked tail.
  int64_t c = 0;
  for (; c + 16 <= k; c += 16) {
    float_step<W, R, T, false>(acc, w0, w_stride, a0, a_stride, c, 0xffff);
  }
  if (c < k) {
    float_step<W, R, T, true>(acc, w0, w_stride, a0, a_stride, c, __mmask16((1u << (k - c)) - 1));
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) y[t * ldy + r] = hsum(acc[r][t]);
}

// ---- Q8_0 weights ----------------------------------------------------------------

struct WeightPair {
  __m512i u;      // unsigned bytes for the dot: q + 128 (VNNI) or |q| (without)
  __mmask64 neg;  // without VNNI: bytes whose q is negative
  __m512 d;       // d_w of block 2p in lanes 0..7, of 2p+1 in lanes 8..15
};

alignas(64) constexpr int16_t kQ8Words[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                              12, 13, 14, 15, 16, 48, 49, 50, 51, 52, 53,
                                              54, 55, 56, 57, 58, 59, 60, 61, 62, 63};
alignas(64) constexpr int16_t kQ8Scale[32] = {0,  0,  0,  0,  0,  0, 0, 0, 17, 17, 17,
                                              17, 17, 17, 17, 17, 0, 0, 0, 0,  0,  0,
                                              0,  0,  0,  0,  0,  0, 0, 0, 0,  0};

__m512i load_words(const int16_t* w) { return _mm512_load_si512(w); }

__m512 scale_pair(__m512i words, const int16_t* idx) {
  return _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(load_words(idx), words)));
}

// How load_pair reads a pair: kPlain for whole pairs with at least 64 readable bytes (every
// pair but the last of the matrix), kWhole / kHalf for the matrix end, with masked loads that
// never touch bytes past the pair (so a matrix ending at an mmap's last page is safe). Plain
// loads matter: masked loads that cross a cache line are several times slower on Zen 5, and
// GCC spills the tile accumulators around them.
enum class Load { kPlain, kWhole, kHalf };

// Blocks 2p and 2p+1 of a row starting at p (kHalf: only block 2p exists).
template <DType W, Load L>
WeightPair load_pair(const uint8_t* p) {
  static_assert(W == DType::kQ8_0);
  WeightPair wp;
  // Pair bytes: d0 (word 0 of z0), qs0 (words 1..16), d1 (word 17), qs1 (words 16..31 of z1,
  // which starts 4 bytes later so a whole 68-byte pair is read without overrun).
  const bool half = L == Load::kHalf;
  const __m512i z0 = half ? _mm512_maskz_loadu_epi8(0x3ffffffffull, p) : _mm512_loadu_si512(p);
  const __m512i z1 = half ? _mm512_setzero_si512() : _mm512_loadu_si512(p + 4);
  const __m512i q = _mm512_permutex2var_epi16(z0, load_words(kQ8Words), z1);
  if constexpr (kVnni) {
    wp.u = _mm512_xor_si512(q, _mm512_set1_epi8(static_cast<char>(0x80)));
    wp.neg = 0;
  } else {
    wp.u = _mm512_abs_epi8(q);
    wp.neg = _mm512_movepi8_mask(q);
  }
  wp.d = scale_pair(z0, kQ8Scale);
  return wp;
}

// Exact int32 lane sums of weight x activation products (4 per lane). Without VNNI the
// int16 pair sums cannot saturate: |q| * |x| <= 128 * 127.
template <DType W>
__m512i dot_pair(const WeightPair& wp, __m512i xv, const ActPair& a) {
  if constexpr (kVnni) {
    return _mm512_dpbusd_epi32(_mm512_load_si512(a.init), wp.u, xv);
  } else {
    const __m512i sx = _mm512_mask_sub_epi8(xv, wp.neg, _mm512_setzero_si512(), xv);
    return _mm512_madd_epi16(_mm512_maddubs_epi16(wp.u, sx), _mm512_set1_epi16(1));
  }
}

// One pair of blocks for every (row, token) of the tile.
template <DType W, int R, int T, Load L>
__attribute__((always_inline)) inline void quant_step(__m512 (&acc)[R][T], const uint8_t* w0,
                                                      int64_t w_stride, const uint8_t* a0,
                                                      int64_t a_stride, int64_t p) {
  constexpr int64_t kPairBytes = 68;
  WeightPair wp[R];
  for (int r = 0; r < R; ++r) {
    const uint8_t* wr = w0 + r * w_stride + p * kPairBytes;
    prefetch_ahead(wr + kPrefetchTiles * R * w_stride, kPairBytes);
    wp[r] = load_pair<W, L>(wr);
  }
  for (int t = 0; t < T; ++t) {
    const ActPair& a = reinterpret_cast<const ActPair*>(a0 + t * a_stride)[p];
    const __m512i xv = _mm512_load_si512(a.x);
    const __m512 dx = _mm512_load_ps(a.dxv);
    for (int r = 0; r < R; ++r) {
      const __m512 s = _mm512_cvtepi32_ps(dot_pair<W>(wp[r], xv, a));
      acc[r][t] = _mm512_fmadd_ps(s, _mm512_mul_ps(wp[r].d, dx), acc[r][t]);
    }
  }
}

template <DType W, int R, int T>
void quant_tile(const uint8_t* w0, int64_t w_stride, const uint8_t* w_end, const uint8_t* a0,
                int64_t a_stride, int64_t k, float* y, int64_t ldy) {
  constexpr int64_t kPairBytes = 68;
  const int64_t nb = k / kQK;
  const int64_t n_whole = nb / 2;
  // Whole pairs whose 64-byte load stays inside the matrix in every row of the tile; only the
  // tile holding the matrix's last row has fewer than n_whole.
  const int64_t last_row_room = w_end - (w0 + (R - 1) * w_stride) - 64;
  const int64_t n_plain =
      last_row_room < 0
          ? 0
          : (last_row_room / kPairBytes + 1 < n_whole ? last_row_room / kPairBytes + 1 : n_whole);
  __m512 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  // Plain loads first, masked ones only where the matrix ends: with a masked load inside the
  // loop, GCC stores every accumulator to memory on each iteration.
  for (int64_t p = 0; p < n_plain; ++p)
    quant_step<W, R, T, Load::kPlain>(acc, w0, w_stride, a0, a_stride, p);
  for (int64_t p = n_plain; p < n_whole; ++p)
    quant_step<W, R, T, Load::kWhole>(acc, w0, w_stride, a0, a_stride, p);
  if (nb % 2 != 0) quant_step<W, R, T, Load::kHalf>(acc, w0, w_stride, a0, a_stride, n_whole);
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) y[t * ldy + r] = hsum(acc[r][t]);
}

}  // namespace
}  // namespace strata::model::kernels

#include "kernels/avx512_q4_0.h"

namespace strata::model::kernels {
namespace {

int64_t act_stride_bytes(DType type, int64_t k) {
  if (type == DType::kQ4_0) return q4_act_stride(k);
  if (is_q8_dot(type)) return div_up(k / kQK, 2) * static_cast<int64_t>(sizeof(ActPair));
  return div_up(k, 16) * 64;
}

void convert(DType type, const float* x, int64_t k, int64_t t0, int64_t t1, uint8_t* act,
             int64_t act_stride) {
  for (int64_t t = t0; t < t1; ++t) {
    if (type == DType::kQ4_0) {
      convert_q4(x + t * k, k, act + t * act_stride);
    } else if (is_q8_dot(type)) {
      convert_q8(x + t * k, k, act + t * act_stride);
    } else {
      convert_narrow(type, x + t * k, k, reinterpret_cast<float*>(act + t * act_stride),
                     div_up(k, 16) * 16);
    }
  }
}

// ---- tiling -----------------------------------------------------------------------------

using TileFn = void (*)(const uint8_t*, int64_t, const uint8_t*, const uint8_t*, int64_t, int64_t,
                        float*, int64_t);

template <DType W, int R, int T>
constexpr TileFn tile_fn() {
  if constexpr (W == DType::kQ8_0)
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

// Rows [r0, r1) in blocks small enough to stay in L2 while every token tile passes over them;
// within a block each token tile's activations stay in L1 across the row tiles.
template <DType W>
void rows_typed(const WeightView& w, const uint8_t* act, int64_t act_stride, int64_t n_tokens,
                float* y, int64_t ldy, int64_t r0, int64_t r1) {
  static constexpr TileTable<W> kTiles;
  constexpr int64_t kBlockBytes = 256 * 1024;
  const int64_t tile_r = kMaxR;
  const int64_t tile_t = n_tokens < kMaxT ? n_tokens : kMaxT;
  const int64_t rb = row_bytes(W, w.cols);
  const int64_t rows_per_block =
      n_tokens <= tile_t ? r1 - r0 : (kBlockBytes / rb > tile_r ? kBlockBytes / rb : tile_r);
  const auto* base = static_cast<const uint8_t*>(w.data);
  const uint8_t* end = base + w.rows * rb;
  for (int64_t b0 = r0; b0 < r1; b0 += rows_per_block) {
    const int64_t b1 = b0 + rows_per_block < r1 ? b0 + rows_per_block : r1;
    for (int64_t t = 0; t < n_tokens; t += tile_t) {
      const int64_t nt = n_tokens - t < tile_t ? n_tokens - t : tile_t;
      for (int64_t r = b0; r < b1; r += tile_r) {
        const int64_t nr = b1 - r < tile_r ? b1 - r : tile_r;
        kTiles.fn[nr - 1][nt - 1](base + r * rb, rb, end, act + t * act_stride, act_stride, w.cols,
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
    case DType::kQ4_0: rows_q4_0(w, act, act_stride, n_tokens, y, ldy, r0, r1); return;
    case DType::kQ8_0:
      rows_typed<DType::kQ8_0>(w, act, act_stride, n_tokens, y, ldy, r0, r1);
      return;
  }
}

}  // namespace
}  // namespace strata::model::kernels
