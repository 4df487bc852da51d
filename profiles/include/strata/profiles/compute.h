// Compute: GEMV (n_tokens 1, decode-like) and GEMM (n_tokens 128, prefill-like) GFLOP/s for
// every weight type the engine supports, with 1 thread and with all threads, measured with
// the engine's own kernels (strata::model::matmul on a strata::model::ThreadPool), so that
// the planner's roofline is the engine's and not a textbook's.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "strata/model/types.h"
#include "strata/profiles/probes.h"

namespace strata::profiles {

struct ComputeOptions {
  // Weight shapes (rows x cols). The planner's figures come from the first; every shape's
  // runs are listed in Compute::runs.
  std::vector<std::pair<int64_t, int64_t>> gemv_shapes = {{2048, 2048}};
  std::vector<std::pair<int64_t, int64_t>> gemm_shapes = {{2048, 2048}};
  int64_t gemm_tokens = 128;
  // GEMV weights are cycled through copies filling this many bytes (use at least 4x the
  // last-level cache) so that every call reads them from memory, as decode does; 0 keeps one
  // copy, which a cache can hold. GEMM reuses each weight for every token and keeps one copy.
  int64_t gemv_pool_bytes = 0;
  // Where the pool lives: null allocates it for each shape and type; else gemv_pool_bytes at
  // this address, owned by the caller and already faulted in (the profiler's cold region, the
  // same pages the bandwidth probe sweeps), which the GEMV runs overwrite.
  uint8_t* gemv_pool = nullptr;
  int reps = 5;               // GEMV: timed repetitions after a warm-up, each >= rep_seconds
  int gemm_reps = 5;          // GEMM: the same (one GEMM call alone can last 50 ms)
  double rep_seconds = 0.02;  // calls are batched until one repetition lasts this long
  int threads_all = 1;
  std::vector<model::DType> dtypes = {model::DType::kF32, model::DType::kF16, model::DType::kBF16,
                                      model::DType::kQ8_0, model::DType::kQ4_0};
};

// Fills out.gemv_gflops / gemm_gflops (by dtype name), threads_all, kernel_isa and runs.
// GFLOP/s count 2 FLOPs per multiply-add; each figure is the p90 of its repetitions
// (measured_rate_figure). Allocates the weights (and GEMV copies) of one shape
// and type at a time. Never fails.
void probe_compute(const ComputeOptions& opt, Compute& out, const Progress& progress);

// Fills out.attention_gflops (1 thread and all threads): the engine's attention for one
// decode token, timed as the GEMVs are (opt.reps, opt.rep_seconds). Never fails.
void probe_attention(const ComputeOptions& opt, Compute& out, const Progress& progress);

struct GemvShape {
  model::DType type = model::DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
};

// Appends to out.runs one all-thread (opt.threads_all) GEMV run per shape, timed as
// probe_compute times its GEMVs (opt.reps, opt.rep_seconds, weights cycled through
// opt.gemv_pool_bytes). For a model's own matrix shapes, so that its decode prediction uses
// the rate of each matrix it multiplies by. Never fails.
void probe_gemv_shapes(const std::vector<GemvShape>& shapes, const ComputeOptions& opt,
                       Compute& out, const Progress& progress);

// A matrix product to run back to back (the compute probe's and the sustained-load probe's
// work): owns its weights, activations and thread pool. With `pool_bytes` > 0 it holds enough
// copies of the weights to fill that many bytes and each call uses the next copy, so that the
// weights come from memory, not from a cache, as they do in decode (every layer's weights are
// read once per token). Not thread-safe.
class MatmulLoad {
 public:
  // `pool_memory`: when not null, the copies are written there (pool_bytes at that address,
  // the caller's, outliving this object) instead of into memory of the load's own.
  MatmulLoad(model::DType type, int64_t rows, int64_t cols, int64_t n_tokens, int threads,
             int64_t pool_bytes = 0, uint8_t* pool_memory = nullptr);
  ~MatmulLoad();
  MatmulLoad(const MatmulLoad&) = delete;
  MatmulLoad& operator=(const MatmulLoad&) = delete;

  // One product; returns the GFLOP it computed.
  double run_once();
  // Replaces the thread pool by one of `threads` threads (>= 1), keeping the weights.
  void set_threads(int threads);
  // "gemm q8_0 2048x2048 x 128 tokens, 2 threads, ..." (and the copies, if any)
  std::string describe() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::profiles
