// Internal interface between the ISA-neutral dispatch (kernels.cpp) and the per-ISA kernel
// files. Each ISA file is compiled with its own -m flags and exposes one IsaOps table; nothing
// else may call its intrinsics, so a CPU without that ISA never executes them.
//
// A matmul is two steps: convert the f32 activations once into the ISA's layout for the
// weight's "dot type" (Q8_0 for Q4_0/Q8_0 weights, values rounded through f16/bf16 for those
// weights, f32 untouched), then compute rows [r0, r1) of y from that layout. The layout is
// private to each ISA: only its own convert writes it and only its own rows reads it.
#pragma once

#include <cstdint>

#include "strata/model/kernels.h"

namespace strata::model::kernels {

struct IsaOps {
  Isa isa = Isa::kScalar;
  // "avx512-vnni", "avx2", ...: names the variant in benchmark tables and test failures.
  const char* variant = "";
  // Bytes one token's converted activations take for a weight of `type` with `k` columns; a
  // multiple of 64 so every token starts cache-line aligned.
  int64_t (*act_stride_bytes)(DType type, int64_t k) = nullptr;
  // Converts tokens [t0, t1) of x (k floats each, row-major) into act (token t at
  // act + t * act_stride). Never called for F32 weights: rows() then reads x directly.
  void (*convert)(DType type, const float* x, int64_t k, int64_t t0, int64_t t1, uint8_t* act,
                  int64_t act_stride) = nullptr;
  // y[t * ldy + r] for r in [r0, r1) and t < n_tokens. `act` holds n_tokens converted tokens
  // act_stride bytes apart (for F32 weights: x itself, act_stride = 4 * w.cols).
  void (*rows)(const WeightView& w, const uint8_t* act, int64_t act_stride, int64_t n_tokens,
               float* y, int64_t ldy, int64_t r0, int64_t r1) = nullptr;
};

// The tables; null when the ISA is not compiled into this build. The avx512 table with
// vnni = true uses vpdpbusd, which only CPUs with AVX512_VNNI have; both variants give the
// same bits (their integer block sums are exact).
const IsaOps* scalar_ops();
const IsaOps* avx2_ops();
const IsaOps* avx512_ops(bool vnni);
const IsaOps* neon_ops();
// The VNNI build of the avx512 table (avx512_vnni.cpp); avx512_ops(true) returns it.
const IsaOps* avx512_vnni_ops();

// The table active_isa() selected (the VNNI variant of avx512 when the CPU has it).
const IsaOps& active_ops();

// matmul() with an explicit table; pool may be null (runs on the calling thread). Used by
// matmul(), matmul_scalar(), the tests and the micro benchmark.
void matmul_with(const IsaOps& ops, const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 int64_t ldy, ThreadPool* pool, MatmulScratch& scratch);

}  // namespace strata::model::kernels
