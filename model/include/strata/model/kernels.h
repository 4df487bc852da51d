// Compute kernels: a persistent thread pool and the matrix products the engine spends its time
// in. One scalar reference implementation plus SIMD ones (AVX2, AVX-512, NEON), chosen at run
// time from the CPU's features; STRATA_ISA=scalar|avx2|avx512|neon in the environment forces one
// (an ISA the CPU lacks is refused at startup with a message).
//
// Determinism contract (the distributed runtime relies on it):
//  * every output element is reduced by exactly one thread, in an order that depends only on
//    the ISA and the reduction length k, so results are bit-identical for any thread count;
//  * y[t][r] does not depend on the other rows of x nor on n_tokens: a token computed inside a
//    batch of 128 gets the same bits as the same token computed alone.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "strata/model/types.h"

namespace strata::model {

enum class Isa { kScalar, kAvx2, kAvx512, kNeon };

// The ISA the kernels use in this process (decided once, at first call). Thread-safe.
Isa active_isa();
const char* isa_name(Isa isa);
// ISAs this CPU and build can run (scalar always), for tests that compare each with scalar.
std::vector<Isa> available_isas();

// A fixed set of worker threads reused for every parallel region. The calling thread takes
// part as worker 0, so ThreadPool(1) runs everything inline and ThreadPool(n) starts n-1
// threads. run() is not re-entrant and must be called from one thread at a time.
class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // Calls fn(thread_index) once on each of the size() threads and waits for all of them.
  void run(const std::function<void(int thread_index)>& fn);

 private:
  void worker_loop(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_work_;
  std::condition_variable cv_done_;
  const std::function<void(int)>* job_ = nullptr;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
};

// A weight matrix stored as GGUF stores it: `rows` rows of `cols` elements of `type`, each row
// row_bytes(type, cols) bytes, rows contiguous. The memory is borrowed (usually the mmap).
struct WeightView {
  DType type = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  const void* data = nullptr;
};

// Reusable per-caller scratch (quantized activations). Not thread-safe; one per engine.
struct MatmulScratch {
  std::vector<uint8_t> bytes;
};

// y = x · Wᵀ: for t < n_tokens, r < w.rows: y[t * ldy + r] = Σ_c w[r][c] · x[t * w.cols + c].
// x is n_tokens × w.cols f32, row-major; ldy >= w.rows. As in ggml, activations are first
// converted to the weight's dot type (Q8_0 for Q4_0/Q8_0 weights, F16 for F16, BF16 for BF16,
// F32 for F32); products are summed exactly in int32 within a block and in f32 across blocks.
// The rows of W are split across the pool's threads. w.cols must be a multiple of the block
// size (checked).
void matmul(const WeightView& w, const float* x, int64_t n_tokens, float* y, int64_t ldy,
            ThreadPool& pool, MatmulScratch& scratch);

// Reference used by tests: the same result computed by the scalar kernels on one thread.
void matmul_scalar(const WeightView& w, const float* x, int64_t n_tokens, float* y, int64_t ldy);

// One row of W (row index `row`) dequantized into `out` (w.cols floats): embedding lookup.
void get_row(const WeightView& w, int64_t row, float* out);

// Causal attention of one query head over cached positions [0, n_pos): out = softmax(q . K /
// ... * scale) . V. `k` and `v` point at the head's slice of position 0, consecutive positions
// `kv_stride` floats apart; `scores` is scratch for n_pos floats; `out` gets head_dim floats.
// 4 * head_dim FLOPs per position (q . k and p * v, 2 per multiply-add), as the cost model
// counts attention. The engine runs it for every (token, head); the profiler times it.
// Scalar (same bits on every ISA); pure apart from scores and out.
void attend(const float* q, const float* k, const float* v, int64_t kv_stride, int64_t head_dim,
            int64_t n_pos, float scale, float* scores, float* out);

}  // namespace strata::model
