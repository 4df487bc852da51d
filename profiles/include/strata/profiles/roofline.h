// The decode and prefill prediction `strata profile --model` prints, from a profile's measured
// figures and a model's per-unit cost. Decode uses the planner's per-unit roofline
// (docs/COST_MODEL.md, "Decode time"), so checking this prediction against `strata generate`
// checks the planner's decode term for the whole model on one device:
//   flops_u = flops_per_token + attn_flops_per_token_per_ctx * ctx
//   bytes_u = weight_bytes_read_per_token + kv_bytes_per_token * ctx
//   t_u     = max(sum_type share_u(type) * flops_u / gemv[type], bytes_u / bw)
//   decode tok/s = 1 / sum_u t_u
// gemv[type] is the type's all-thread GEMV GFLOP/s measured on weights that do not fit in any
// cache, so it already is the rate at which that GEMV streams its weights from memory (memory
// stalls included); bw is the all-thread read bandwidth (else triad). Every rate is taken at
// its median where the figure has stats (the rate a run sees; the figure's value is the p90 of
// its repetitions), as the planner takes them (partitioner::device_caps_from_profile). share_u
// splits a unit's FLOPs over its weight types by element count; a unit without weights computes at
// the f32 rate. Where a unit lists its matrices (predict_for_model does), its GEMV term is instead
// the sum over them of 2 * rows * cols / the all-thread GEMV rate measured on that very shape
// (compute.runs; `strata profile --model` times the model's shapes), falling back to
// gemv[type], plus the attention FLOPs at the engine's measured attention rate
// (compute.attention_gflops; gemv[type] for a profile without it): GEMV rates differ by shape
// (per-call dispatch, rows per thread), and decode multiplies by the model's shapes, not
// 2048x2048; the engine's attention (softmax and f32 dot products) runs several times slower
// per FLOP than a quantized GEMV, 8% of a 1.1B decode step at 160 positions.
// Prefill tok/s = gemm[main type] GFLOP/s / FLOPs per token.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "strata/base/status.h"
#include "strata/profiles/profile.h"

namespace strata::profiles {

// One weight matrix a unit multiplies by per token (rows x cols of type `type`).
struct MatrixCost {
  std::string type;  // "q4_0"
  int64_t rows = 0;
  int64_t cols = 0;
};

// One unit of the model (embedding, block, head) as decode sees it, per token.
struct UnitCost {
  // The unit's matrices, when known: then its GEMV term is the sum over them of
  // 2 * rows * cols / the all-thread GEMV run of that type and shape in compute.runs (else the
  // type's gemv_gflops figure), plus the attention FLOPs at compute.attention_gflops (else
  // the GEMV rate of the unit's first matrix type); share_u is not used.
  std::vector<MatrixCost> matrices;
  std::map<std::string, double> weight_bytes_by_type;  // "q4_0" -> bytes the unit holds
  double weight_bytes_read_per_token = 0;              // an embedding reads one row
  double flops_per_token = 0;                          // matmul FLOPs, 2 per multiply-add
  double attn_flops_per_token_per_ctx = 0;             // QK^T and A.V per cached position
  double kv_bytes_per_token = 0;                       // KV bytes read per cached position
};

// The prediction for a model named `model_name` whose main weight type is `dtype` ("q4_0"),
// decoding at `ctx` cached positions (>= 0, checked). Needs memory.read_gb_per_s.threads_all
// (else triad) and compute.gemv_gflops.<type>.threads_all of every type the units hold
// (f32 for a unit without weights); prefill needs gemm_gflops.<dtype>.threads_all; joules
// per token needs power.load_watts. A figure the profile lacks makes the predictions that
// need it unavailable with that figure's reason. The decode figure's source spells out the
// terms. Never fails; pure.
Prediction predict(const Profile& profile, const std::string& model_name, const std::string& dtype,
                   const std::vector<UnitCost>& units, int64_t ctx);

// predict() for a GGUF file, its units taken from strata::model::model_cost (f32 KV cache, as
// the engine keeps it). Errors: the model loader's (kNotFound, kCorrupt, kUnsupported naming
// the file).
Result<Prediction> predict_for_model(const Profile& profile, const std::string& gguf_path,
                                     int64_t ctx);

// The distinct (type, rows, cols) of the matrices decode multiplies by in a GGUF file (every
// block's seven and the output head), for probe_gemv_shapes. Errors: the model loader's.
Result<std::vector<MatrixCost>> model_matrix_shapes(const std::string& gguf_path);

}  // namespace strata::profiles
