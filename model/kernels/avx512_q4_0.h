// AVX-512 Q4_0 kernels, part of avx512_impl.h (included from it, after its helpers; the same
// STRATA_AVX512_VNNI switch applies).
//
// Batches (prefill): lanes are rows. A group of 16 rows is first repacked into a per-thread
// buffer where block b of all 16 rows is 8 vectors of unsigned nibbles (vector j, lane L:
// row L's weights 4j..4j+3) and a vector of the 16 row scales as f32. Every token then reuses
// that buffer: a block costs 8 vpdpbusd per token against 16 rows, with the token's quants
// broadcast 4 bytes at a time, so the nibbles are decoded once per row group instead of once
// per token tile. Tiles take two groups (32 rows) x 4 tokens, so each broadcast feeds two
// vpdpbusd. Nothing is repacked at load: the buffer (2 x 576 bytes per block) lives only for
// one call, and the weights stay the file's bytes.
//
// A few tokens (decode): repacking would cost more than it saves, so tiles of 4 rows read the
// GGUF rows in place, 2 blocks per vector as the Q8_0 kernel does, and fold the partial lane
// sums into one exact int32 per (row, block) before the float step.
//
// Reduction order, the same in both: per (row, token), blocks in increasing order,
//   acc = acc + f32(isum_b) * (d_w * d_x)     (three roundings, no FMA)
// which is the scalar kernel's order, so the bits equal scalar.cpp's whatever the path. isum_b,
// the block's exact int32 dot, includes -8 * (the token's quants summed) so that unsigned
// nibbles give the products of the signed weights (nibble - 8).
#pragma once

#include <cstring>
#include <vector>

namespace strata::model::kernels {
namespace {

constexpr int kQ4GroupRows = 16;
constexpr int kQ4MaxT = 8;      // tokens per repacked microkernel call on one 16-row group
constexpr int kQ4MaxT2 = 4;     // the same on two groups (5 or 6 measured no faster)
constexpr int kQ4GemvMaxT = 4;  // tokens per in-place tile
// Batches of fewer tokens use the in-place tiles: for 1 token the repacked path measured 2.4x
// slower (2048 x 2048, one thread); the crossover between 1 and 4 was not measured.
constexpr int64_t kQ4RepackMinTokens = 4;
constexpr int64_t kQ4PrefetchBytes = 512;

// One block of a 16-row group, as the repacked microkernel reads it.
struct alignas(64) Q4Group {
  uint8_t w[8][64];  // w[j] lane L: row L's weights 4j..4j+3 as nibbles 0..15
  float d[16];       // row L's block scale
};
static_assert(sizeof(Q4Group) == 576);

// One token's converted activations, np = ceil(nb / 2) block pairs, all arrays zero padded to
// whole pairs:  lane_init[np][16] int32  -8 * (sum of quants 4j..4j+3 of the pair), per lane j
//               qs[np][64]         int8   the Q8_0 quants
//               d[np * 2]          f32    block scales
//               init[np * 2]       int32  -8 * (sum of the block's quants)
struct Q4ActLayout {
  int64_t np;
  int64_t qs() const { return np * 64; }
  int64_t d() const { return np * 128; }
  int64_t init() const { return np * 136; }
  int64_t bytes() const { return div_up(np * 144, 64) * 64; }
};

Q4ActLayout q4_act_layout(int64_t k) { return {div_up(k / kQK, 2)}; }

int64_t q4_act_stride(int64_t k) { return q4_act_layout(k).bytes(); }

void convert_q4(const float* x, int64_t k, uint8_t* dst) {
  const int64_t nb = k / kQK;
  const Q4ActLayout lay = q4_act_layout(k);
  auto* d = reinterpret_cast<float*>(dst + lay.d());
  auto* init = reinterpret_cast<int32_t*>(dst + lay.init());
  for (int64_t p = 0; p < lay.np; ++p) {
    int8_t* q = reinterpret_cast<int8_t*>(dst + lay.qs()) + p * 64;
    for (int h = 0; h < 2; ++h) {
      const int64_t b = 2 * p + h;
      if (b < nb) {
        d[b] = quantize_block(x + b * kQK, q + h * kQK);
      } else {
        d[b] = 0.0f;
        std::memset(q + h * kQK, 0, kQK);
      }
    }
    const __m512i xv = _mm512_loadu_si512(q);
    const __m512i lane_sum =
        _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_set1_epi8(1), xv), _mm512_set1_epi16(1));
    const __m512i li = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(lane_sum, 3));
    _mm512_storeu_si512(dst + p * 64, li);
    init[2 * p] = _mm512_mask_reduce_add_epi32(0x00ff, li);
    init[2 * p + 1] = _mm512_mask_reduce_add_epi32(0xff00, li);
  }
}

// ---- a few tokens: 4-row tiles in place ---------------------------------------------------

alignas(64) constexpr int16_t kQ4Words[32] = {1,  2,  3,  4,  5,  6,  7,  8,  1,  2,  3,
                                              4,  5,  6,  7,  8,  10, 11, 12, 13, 14, 15,
                                              16, 17, 10, 11, 12, 13, 14, 15, 16, 17};
alignas(64) constexpr int16_t kQ4Shift[32] = {0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4,
                                              0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4};
// Scales of 4 rows x 2 blocks, lane h * 4 + r: row r's d of block 2p + h (word 0 or 9).
alignas(64) constexpr int16_t kQ4ScaleA[32] = {0, 32, 0, 0, 9, 41};        // rows 0, 1
alignas(64) constexpr int16_t kQ4ScaleB[32] = {0, 0, 0, 32, 0, 0, 9, 41};  // rows 2, 3
alignas(64) constexpr int32_t kEvenLanes[16] = {0,  2,  4,  6,  8,  10, 12, 14,
                                                16, 18, 20, 22, 24, 26, 28, 30};
alignas(64) constexpr int32_t kOddLanes[16] = {1,  3,  5,  7,  9,  11, 13, 15,
                                               17, 19, 21, 23, 25, 27, 29, 31};
alignas(64) constexpr int32_t kFinalEven[16] = {0, 4, 8, 12, 2, 6, 10, 14};
alignas(64) constexpr int32_t kFinalOdd[16] = {1, 5, 9, 13, 3, 7, 11, 15};
alignas(32) constexpr int32_t kDxLanes[8] = {0, 0, 0, 0, 1, 1, 1, 1};

// Lane i < 8 of the result: a's lanes 2i + 2i+1; lane 8 + i: b's.
__m512i add_lane_pairs(__m512i a, __m512i b) {
  return _mm512_add_epi32(_mm512_permutex2var_epi32(a, _mm512_load_si512(kEvenLanes), b),
                          _mm512_permutex2var_epi32(a, _mm512_load_si512(kOddLanes), b));
}

// One pair of blocks (2p, 2p+1) of 4 rows for T tokens; L as in load_pair (kHalf: block 2p
// only, and the missing block adds nothing).
template <int T, Load L>
__attribute__((always_inline)) inline void q4_gemv_step(__m128 (&acc)[T],
                                                        const uint8_t* const (&wr)[4],
                                                        int64_t prefetch, const uint8_t* a0,
                                                        int64_t a_stride, Q4ActLayout lay,
                                                        int64_t p) {
  __m512i z[4];
  __m512i u[4];
  for (int r = 0; r < 4; ++r) {
    const uint8_t* q = wr[r] + p * 36;
    prefetch_ahead(q + prefetch, 36);
    // Pair bytes: d0 (word 0), qs0 (words 1..8), d1 (word 9), qs1 (words 10..17).
    z[r] = L == Load::kPlain   ? _mm512_loadu_si512(q)
           : L == Load::kWhole ? _mm512_maskz_loadu_epi8(0xfffffffffull, q)
                               : _mm512_maskz_loadu_epi8(0x3ffffull, q);
    const __m512i nib = _mm512_srlv_epi16(_mm512_permutexvar_epi16(load_words(kQ4Words), z[r]),
                                          load_words(kQ4Shift));
    u[r] = _mm512_and_si512(nib, _mm512_set1_epi8(0x0f));
  }
  const __m512i dw_h =
      _mm512_mask_blend_epi16(0xcc, _mm512_permutex2var_epi16(z[0], load_words(kQ4ScaleA), z[1]),
                              _mm512_permutex2var_epi16(z[2], load_words(kQ4ScaleB), z[3]));
  const __m256 dw = _mm512_castps512_ps256(_mm512_cvtph_ps(_mm512_castsi512_si256(dw_h)));
  for (int t = 0; t < T; ++t) {
    const uint8_t* a = a0 + t * a_stride;
    const __m512i li = _mm512_loadu_si512(a + p * 64);
    const __m512i xv = _mm512_loadu_si512(a + lay.qs() + p * 64);
    __m512i v[4];
    for (int r = 0; r < 4; ++r) {
      if constexpr (kVnni) {
        v[r] = _mm512_dpbusd_epi32(li, u[r], xv);
      } else {
        v[r] = _mm512_add_epi32(
            li, _mm512_madd_epi16(_mm512_maddubs_epi16(u[r], xv), _mm512_set1_epi16(1)));
      }
    }
    // Lane h * 4 + r: row r's exact sum over block 2p + h.
    const __m512i s = add_lane_pairs(add_lane_pairs(v[0], v[1]), add_lane_pairs(v[2], v[3]));
    const __m512i isum =
        _mm512_add_epi32(_mm512_permutexvar_epi32(_mm512_load_si512(kFinalEven), s),
                         _mm512_permutexvar_epi32(_mm512_load_si512(kFinalOdd), s));
    const __m256 dx = _mm256_permutexvar_ps(
        _mm256_load_si256(reinterpret_cast<const __m256i*>(kDxLanes)),
        _mm256_castpd_ps(
            _mm256_broadcast_sd(reinterpret_cast<const double*>(a + lay.d() + p * 8))));
    const __m256 term =
        _mm256_mul_ps(_mm256_cvtepi32_ps(_mm512_castsi512_si256(isum)), _mm256_mul_ps(dw, dx));
    acc[t] = _mm_add_ps(acc[t], _mm256_castps256_ps128(term));
    if constexpr (L != Load::kHalf) acc[t] = _mm_add_ps(acc[t], _mm256_extractf128_ps(term, 1));
  }
}

// Rows [r, r + n_rows) (n_rows <= 4) for T tokens; rows past n_rows repeat the last one.
template <int T>
void q4_gemv_tile(const uint8_t* base, int64_t rb, const uint8_t* end, int64_t r, int n_rows,
                  int64_t nb, const uint8_t* a0, int64_t a_stride, float* y, int64_t ldy) {
  const uint8_t* wr[4];
  for (int i = 0; i < 4; ++i) wr[i] = base + (r + (i < n_rows ? i : n_rows - 1)) * rb;
  const Q4ActLayout lay{div_up(nb, 2)};
  const int64_t n_whole = nb / 2;
  // Whole pairs whose 64-byte load stays inside the matrix (see quant_tile).
  const int64_t room = end - wr[3] - 64;
  const int64_t n_plain = room < 0 ? 0 : (room / 36 + 1 < n_whole ? room / 36 + 1 : n_whole);
  const int64_t prefetch = kPrefetchTiles * 4 * rb;
  __m128 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm_setzero_ps();
  for (int64_t p = 0; p < n_plain; ++p)
    q4_gemv_step<T, Load::kPlain>(acc, wr, prefetch, a0, a_stride, lay, p);
  for (int64_t p = n_plain; p < n_whole; ++p)
    q4_gemv_step<T, Load::kWhole>(acc, wr, prefetch, a0, a_stride, lay, p);
  if (nb % 2 != 0) q4_gemv_step<T, Load::kHalf>(acc, wr, prefetch, a0, a_stride, lay, n_whole);
  const auto mask = static_cast<__mmask8>((1u << n_rows) - 1);
  for (int t = 0; t < T; ++t) _mm_mask_storeu_ps(y + t * ldy, mask, acc[t]);
}

// ---- batches: 16-row groups, repacked ------------------------------------------------------

// Repacks rows [row0, row0 + n_rows) (n_rows <= 16) of a Q4_0 matrix with `rb` bytes per row
// into nb groups. Lanes past n_rows repeat row 0: they are computed and never stored. Reads
// only bytes of the given rows.
void repack_q4_group(const uint8_t* row0, int64_t rb, int n_rows, int64_t nb, Q4Group* dst) {
  const uint8_t* rows[kQ4GroupRows];
  for (int l = 0; l < kQ4GroupRows; ++l) {
    const int64_t off = l < n_rows ? l * rb : 0;
    rows[l] = row0 + off;
  }
  const __m512i low = _mm512_set1_epi8(0x0f);
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t at = b * 18 + 2;  // this block's 16 quant bytes
    // 16 short row streams defeat the hardware prefetchers; every 7 blocks (126 bytes) fetch
    // the next 128 bytes of each row, kQ4PrefetchBytes ahead.
    if (b % 7 == 0) {
      for (int l = 0; l < kQ4GroupRows; ++l) {
        __builtin_prefetch(rows[l] + at + kQ4PrefetchBytes, 0, 3);
        __builtin_prefetch(rows[l] + at + kQ4PrefetchBytes + 64, 0, 3);
      }
    }
    // z[i], 128-bit lane L: row i + 4L's quant bytes.
    __m512i z[4];
    for (int i = 0; i < 4; ++i) {
      __m512i v =
          _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[i] + at)));
      v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[i + 4] + at)),
                             1);
      v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[i + 8] + at)),
                             2);
      v = _mm512_inserti32x4(
          v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[i + 12] + at)), 3);
      z[i] = v;
    }
    // 4x4 dword transpose inside each 128-bit lane: o[j] dword 4L + i = row 4L + i's dword j.
    const __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]);
    const __m512i t1 = _mm512_unpackhi_epi32(z[0], z[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]);
    const __m512i t3 = _mm512_unpackhi_epi32(z[2], z[3]);
    const __m512i o[4] = {_mm512_unpacklo_epi64(t0, t2), _mm512_unpackhi_epi64(t0, t2),
                          _mm512_unpacklo_epi64(t1, t3), _mm512_unpackhi_epi64(t1, t3)};
    Q4Group& g = dst[b];
    for (int j = 0; j < 4; ++j) {
      // Byte i of a row holds weight i (low nibble) and weight i + 16 (high nibble).
      _mm512_store_si512(g.w[j], _mm512_and_si512(o[j], low));
      _mm512_store_si512(g.w[j + 4], _mm512_and_si512(_mm512_srli_epi16(o[j], 4), low));
    }
    alignas(32) uint16_t dh[kQ4GroupRows];
    for (int l = 0; l < kQ4GroupRows; ++l) std::memcpy(&dh[l], rows[l] + b * 18, 2);
    _mm512_store_ps(g.d, _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(dh))));
  }
}

// s + the products of 4 weight bytes per lane with 4 quants (x4, broadcast).
__attribute__((always_inline)) inline __m512i dot4(__m512i s, __m512i w, int32_t x4) {
  const __m512i xv = _mm512_set1_epi32(x4);
  if constexpr (kVnni) {
    return _mm512_dpbusd_epi32(s, w, xv);
  } else {
    // nibble * x <= 15 * 128 per byte, so the int16 pair sums cannot saturate.
    return _mm512_add_epi32(s,
                            _mm512_madd_epi16(_mm512_maddubs_epi16(w, xv), _mm512_set1_epi16(1)));
  }
}

// y[t * ldy + 16 g + L] for T tokens and G consecutive 16-row groups (group g's blocks at
// groups + g * nb; its rows in row_mask[g]). Each broadcast quadruple of quants feeds G
// vpdpbusd. The pragmas unroll the loops over g, j and t, which GCC otherwise keeps as loops
// with the accumulators in memory.
template <int G, int T>
void q4_tile(const Q4Group* groups, int64_t nb, const uint8_t* a0, int64_t a_stride, float* y,
             int64_t ldy, const __mmask16* row_mask) {
  const Q4ActLayout lay{div_up(nb, 2)};
  const uint8_t* qs[T];
  const int32_t* init[T];
  const float* dx[T];
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) {
    qs[t] = a0 + t * a_stride + lay.qs();
    init[t] = reinterpret_cast<const int32_t*>(a0 + t * a_stride + lay.init());
    dx[t] = reinterpret_cast<const float*>(a0 + t * a_stride + lay.d());
  }
  __m512 acc[G][T];
#pragma GCC unroll 2
  for (int g = 0; g < G; ++g)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[g][t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m512i s[G][T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m512i i0 = _mm512_set1_epi32(init[t][b]);
#pragma GCC unroll 2
      for (int g = 0; g < G; ++g) s[g][t] = i0;
    }
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      __m512i wv[G];
#pragma GCC unroll 2
      for (int g = 0; g < G; ++g) wv[g] = _mm512_load_si512(groups[g * nb + b].w[j]);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        int32_t x4;
        std::memcpy(&x4, qs[t] + b * kQK + 4 * j, 4);
#pragma GCC unroll 2
        for (int g = 0; g < G; ++g) s[g][t] = dot4(s[g][t], wv[g], x4);
      }
    }
#pragma GCC unroll 2
    for (int g = 0; g < G; ++g) {
      const __m512 dw = _mm512_load_ps(groups[g * nb + b].d);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        const __m512 scale = _mm512_mul_ps(dw, _mm512_set1_ps(dx[t][b]));
        acc[g][t] = _mm512_add_ps(acc[g][t], _mm512_mul_ps(_mm512_cvtepi32_ps(s[g][t]), scale));
      }
    }
  }
#pragma GCC unroll 2
  for (int g = 0; g < G; ++g)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t)
      _mm512_mask_storeu_ps(y + t * ldy + g * kQ4GroupRows, row_mask[g], acc[g][t]);
}

using Q4TileFn = void (*)(const Q4Group*, int64_t, const uint8_t*, int64_t, float*, int64_t,
                          const __mmask16*);

template <int G, int... Ts>
constexpr auto make_q4_tiles(std::integer_sequence<int, Ts...>) {
  return std::array<Q4TileFn, sizeof...(Ts)>{q4_tile<G, Ts + 1>...};
}

using Q4GemvFn = void (*)(const uint8_t*, int64_t, const uint8_t*, int64_t, int, int64_t,
                          const uint8_t*, int64_t, float*, int64_t);

template <int... Ts>
constexpr auto make_q4_gemv_tiles(std::integer_sequence<int, Ts...>) {
  return std::array<Q4GemvFn, sizeof...(Ts)>{q4_gemv_tile<Ts + 1>...};
}

void rows_q4_0(const WeightView& w, const uint8_t* act, int64_t act_stride, int64_t n_tokens,
               float* y, int64_t ldy, int64_t r0, int64_t r1) {
  static constexpr auto kTiles = make_q4_tiles<1>(std::make_integer_sequence<int, kQ4MaxT>());
  static constexpr auto kTiles2 = make_q4_tiles<2>(std::make_integer_sequence<int, kQ4MaxT2>());
  static constexpr auto kGemvTiles =
      make_q4_gemv_tiles(std::make_integer_sequence<int, kQ4GemvMaxT>());
  if (n_tokens < kQ4RepackMinTokens) {
    const int64_t nb = w.cols / kQK;
    const int64_t rb = row_bytes(DType::kQ4_0, w.cols);
    const auto* base = static_cast<const uint8_t*>(w.data);
    const uint8_t* end = base + w.rows * rb;
    for (int64_t r = r0; r < r1; r += 4) {
      const int n_rows = static_cast<int>(r1 - r < 4 ? r1 - r : 4);
      for (int64_t t = 0; t < n_tokens; t += kQ4GemvMaxT) {
        const int64_t nt = n_tokens - t < kQ4GemvMaxT ? n_tokens - t : kQ4GemvMaxT;
        kGemvTiles[static_cast<size_t>(nt - 1)](base, rb, end, r, n_rows, nb, act + t * act_stride,
                                                act_stride, y + t * ldy + r, ldy);
      }
    }
    return;
  }
  // Grown once per thread to the widest matrix seen (k = 8192: 2 x 147 KiB), then reused.
  thread_local std::vector<Q4Group> buffer;
  const int64_t nb = w.cols / kQK;
  if (static_cast<int64_t>(buffer.size()) < 2 * nb) buffer.resize(static_cast<size_t>(2 * nb));
  const int64_t rb = row_bytes(DType::kQ4_0, w.cols);
  const auto* base = static_cast<const uint8_t*>(w.data);
  for (int64_t g0 = r0; g0 < r1; g0 += 2 * kQ4GroupRows) {
    __mmask16 row_mask[2] = {0, 0};
    int n_groups = 0;
    for (int64_t r = g0; r < r1 && n_groups < 2; r += kQ4GroupRows, ++n_groups) {
      const int n_rows = static_cast<int>(r1 - r < kQ4GroupRows ? r1 - r : kQ4GroupRows);
      row_mask[n_groups] = static_cast<__mmask16>((1u << n_rows) - 1);
      repack_q4_group(base + r * rb, rb, n_rows, nb, buffer.data() + n_groups * nb);
    }
    const int max_t = n_groups == 2 ? kQ4MaxT2 : kQ4MaxT;
    for (int64_t t = 0; t < n_tokens; t += max_t) {
      const int64_t nt = n_tokens - t < max_t ? n_tokens - t : max_t;
      const Q4TileFn fn = n_groups == 2 ? kTiles2[static_cast<size_t>(nt - 1)]
                                        : kTiles[static_cast<size_t>(nt - 1)];
      fn(buffer.data(), nb, act + t * act_stride, act_stride, y + t * ldy + g0, ldy, row_mask);
    }
  }
}

}  // namespace
}  // namespace strata::model::kernels
