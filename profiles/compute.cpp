#include "strata/profiles/compute.h"

#include <algorithm>
#include <cstring>
#include <memory>

#include "strata/base/aligned_buffer.h"
#include "strata/base/io.h"
#include "strata/model/kernels.h"

namespace strata::profiles {

namespace {

// `bytes` of the caller's `lent` memory (of `lent_bytes`) when it is given and large enough,
// else of a new buffer kept in `*owned`, in default pages as the engine's weights are.
uint8_t* lent_or_own(uint8_t* lent, int64_t lent_bytes, int64_t bytes, AlignedBuffer* owned) {
  if (lent != nullptr && bytes <= lent_bytes) return lent;
  Result<AlignedBuffer> buf = AlignedBuffer::allocate(bytes, /*huge_pages=*/false);
  STRATA_CHECK_MSG(buf.ok(), buf.status().message());  // at most 1/8 of available memory
  *owned = std::move(buf).value();
  return owned->data();
}

}  // namespace

struct MatmulLoad::Impl {
  model::DType type;
  int64_t rows;
  int64_t cols;
  int64_t n_tokens;
  int64_t n_copies = 1;
  int64_t next_copy = 0;
  // n_copies back to back, in default (4 KiB) pages as the engine's weights have in the model
  // file's mapping (see fault_in_cold_region).
  AlignedBuffer owned;  // empty when the caller lent the pool
  uint8_t* weights = nullptr;
  int64_t weights_bytes = 0;
  std::vector<float> x;
  std::vector<float> y;
  std::unique_ptr<model::ThreadPool> pool;
  model::MatmulScratch scratch;

  Impl(model::DType t, int64_t r, int64_t c, int64_t n, int threads, int64_t pool_bytes,
       uint8_t* pool_memory)
      : type(t), rows(r), cols(c), n_tokens(n), pool(std::make_unique<model::ThreadPool>(threads)) {
    // Deterministic values of the magnitude real weights have; a quantized type gets the bytes
    // its quantizer makes, so the kernels see realistic scales and nibbles.
    // xorshift32 to uniform values in [-0.04, 0.04): the kernels' speed does not depend on the
    // distribution, and a normal generator would dominate the probe's setup time.
    uint32_t state = 0x9e3779b9u;
    const auto dist = [&state] {
      state ^= state << 13;
      state ^= state >> 17;
      state ^= state << 5;
      return (static_cast<float>(state >> 8) * (1.0f / 16777216.0f) - 0.5f) * 0.08f;
    };
    const int64_t rb = model::row_bytes(t, c);
    const int64_t matrix_bytes = rb * r;
    // A lent pool holds whole copies only; an own one rounds up to fill at least pool_bytes.
    n_copies = std::max<int64_t>(1, pool_memory != nullptr
                                        ? pool_bytes / matrix_bytes
                                        : (pool_bytes + matrix_bytes - 1) / matrix_bytes);
    weights_bytes = matrix_bytes * n_copies;
    weights = lent_or_own(pool_memory, pool_bytes, weights_bytes, &owned);
    std::vector<float> row(static_cast<size_t>(c));
    for (int64_t i = 0; i < r; ++i) {
      for (float& v : row) v = dist();
      model::quantize_row(t, row.data(), weights + i * rb, c);
    }
    // Copies, not fresh values: the kernels' speed does not depend on the values, and copying
    // is far cheaper than quantizing.
    for (int64_t k = 1; k < n_copies; ++k) {
      std::memcpy(weights + k * matrix_bytes, weights, static_cast<size_t>(matrix_bytes));
    }
    x.resize(static_cast<size_t>(n * c));
    for (float& v : x) v = dist() * 25.0f;
    y.resize(static_cast<size_t>(n * r));
  }

  double gflop() const { return 2.0 * static_cast<double>(rows * cols * n_tokens) / 1e9; }

  void run() {
    const int64_t matrix_bytes = model::row_bytes(type, cols) * rows;
    const model::WeightView w{type, rows, cols, weights + next_copy * matrix_bytes};
    next_copy = (next_copy + 1) % n_copies;
    model::matmul(w, x.data(), n_tokens, y.data(), rows, *pool, scratch);
  }
};

MatmulLoad::MatmulLoad(model::DType type, int64_t rows, int64_t cols, int64_t n_tokens, int threads,
                       int64_t pool_bytes, uint8_t* pool_memory)
    : impl_(std::make_unique<Impl>(type, rows, cols, n_tokens, threads, pool_bytes, pool_memory)) {}

MatmulLoad::~MatmulLoad() = default;

void MatmulLoad::set_threads(int threads) {
  STRATA_CHECK(threads >= 1);
  if (impl_->pool->size() != threads) impl_->pool = std::make_unique<model::ThreadPool>(threads);
}

double MatmulLoad::run_once() {
  impl_->run();
  return impl_->gflop();
}

std::string MatmulLoad::describe() const {
  const Impl& m = *impl_;
  return std::string(m.n_tokens == 1 ? "gemv " : "gemm ") +
         std::string(*model::dtype_name(static_cast<uint32_t>(m.type))) + " " +
         std::to_string(m.rows) + "x" + std::to_string(m.cols) +
         (m.n_tokens == 1 ? "" : " x " + std::to_string(m.n_tokens) + " tokens") + ", " +
         std::to_string(m.pool->size()) + (m.pool->size() == 1 ? " thread" : " threads") +
         ", strata::model::matmul (" + model::isa_name(model::active_isa()) + ")" +
         (m.n_copies > 1 ? ", weights cycled through " + std::to_string(m.n_copies) + " copies (" +
                               format_bytes(static_cast<double>(m.weights_bytes)) +
                               ") so each call reads them from memory"
                         : "");
}

namespace {

// Times `load` (run_once() returning the GFLOP of a call, describe()): a warm-up of
// back-to-back calls lasting half a repetition (so that cycled GEMV copies come from memory, as
// in the timed calls, and the first call's page faults are paid) sets how many calls one
// repetition batches; then `reps` timed repetitions.
template <class Load>
Figure time_load(Load& load, int reps, double rep_seconds) {
  double t0 = now_s();
  double gflop_per_call = 0;
  int warm_calls = 0;
  do {
    gflop_per_call = load.run_once();
    ++warm_calls;
  } while (now_s() - t0 < rep_seconds / 2);
  const double per_call = (now_s() - t0) / warm_calls;
  const int calls = std::max(1, static_cast<int>(rep_seconds / per_call + 0.5));
  std::vector<double> samples;
  for (int r = 0; r < reps; ++r) {
    t0 = now_s();
    for (int c = 0; c < calls; ++c) load.run_once();
    samples.push_back(gflop_per_call * calls / (now_s() - t0));
  }
  return measured_rate_figure(samples, "GFLOP/s",
                              load.describe() + ", p90 of " + std::to_string(reps) + " reps of " +
                                  std::to_string(calls) + (calls == 1 ? " call" : " calls"));
}

// One decode token's attention in one layer, as Engine::attention runs it: model::attend for
// every query head, heads interleaved over the pool's threads. Each call takes the next layer's
// KV cache from a pool (the lent cold region when given), so that keys and values come from
// memory as in decode, where a token streams every layer's weights between two visits to a
// layer's cache: cycled through 16 MiB of caches, which a large L3 kept, the engine's attention
// timed 2.3x faster than it ran inside `strata generate`.
class AttentionLoad {
 public:
  static constexpr int64_t kHeads = 32, kKvHeads = 8, kHeadDim = 64, kPositions = 256;
  static constexpr int64_t kKvDim = kKvHeads * kHeadDim;
  static constexpr int64_t kLayerFloats = 2 * kPositions * kKvDim;  // K then V

  AttentionLoad(int threads, int64_t pool_bytes, uint8_t* pool_memory)
      : pool_(std::make_unique<model::ThreadPool>(threads)) {
    const auto layer_bytes = static_cast<int64_t>(kLayerFloats * sizeof(float));
    n_layers_ = std::max<int64_t>(1, pool_bytes / layer_bytes);
    kv_ = reinterpret_cast<float*>(
        lent_or_own(pool_memory, pool_bytes, n_layers_ * layer_bytes, &owned_));
    uint32_t state = 0x2545f491u;
    const auto next = [&state] {
      state ^= state << 13;
      state ^= state >> 17;
      state ^= state << 5;
      return static_cast<float>(state >> 8) * (1.0f / 16777216.0f) - 0.5f;
    };
    // One layer of values, copied to the others: the speed does not depend on the values.
    for (int64_t i = 0; i < kLayerFloats; ++i) kv_[i] = next();
    for (int64_t l = 1; l < n_layers_; ++l) {
      std::memcpy(kv_ + l * kLayerFloats, kv_, static_cast<size_t>(layer_bytes));
    }
    for (float& x : q_) x = next();
  }
  void set_threads(int threads) {
    if (pool_->size() != threads) pool_ = std::make_unique<model::ThreadPool>(threads);
  }
  double run_once() {
    const float* k = kv_ + layer_ * kLayerFloats;
    const float* v = k + kPositions * kKvDim;
    layer_ = (layer_ + 1) % n_layers_;
    const float scale = 1.0f / 8.0f;  // 1 / sqrt(head_dim)
    pool_->run([&](int ith) {
      std::vector<float> scores(static_cast<size_t>(kPositions));
      for (int64_t h = ith; h < kHeads; h += pool_->size()) {
        const int64_t kvh = h / (kHeads / kKvHeads);
        model::attend(q_.data() + h * kHeadDim, k + kvh * kHeadDim, v + kvh * kHeadDim, kKvDim,
                      kHeadDim, kPositions, scale, scores.data(), out_.data() + h * kHeadDim);
      }
    });
    return 4.0 * static_cast<double>(kHeads * kHeadDim * kPositions) / 1e9;
  }
  std::string describe() const {
    return "strata::model::attend, 1 token over " + std::to_string(kPositions) + " positions, " +
           std::to_string(kHeads) + " heads on " + std::to_string(kKvHeads) + " KV heads of " +
           std::to_string(kHeadDim) + ", f32 KV cycled through " + std::to_string(n_layers_) +
           " layers (" +
           format_bytes(static_cast<double>(n_layers_ * kLayerFloats) * sizeof(float)) + "), " +
           std::to_string(pool_->size()) + (pool_->size() == 1 ? " thread" : " threads");
  }

 private:
  AlignedBuffer owned_;  // empty when the caller lent the pool
  float* kv_ = nullptr;
  int64_t n_layers_ = 1;
  std::vector<float> q_ = std::vector<float>(static_cast<size_t>(kHeads * kHeadDim));
  std::vector<float> out_ = std::vector<float>(static_cast<size_t>(kHeads * kHeadDim));
  std::unique_ptr<model::ThreadPool> pool_;
  int64_t layer_ = 0;
};

}  // namespace

void probe_attention(const ComputeOptions& opt, Compute& out, const Progress& progress) {
  const std::vector<int> thread_counts =
      opt.threads_all == 1 ? std::vector<int>{1} : std::vector<int>{1, opt.threads_all};
  AttentionLoad load(1, opt.gemv_pool_bytes, opt.gemv_pool);
  for (const int threads : thread_counts) {
    if (progress) {
      progress("compute attention, " + std::to_string(threads) +
               (threads == 1 ? " thread" : " threads"));
    }
    load.set_threads(threads);
    const Figure f = time_load(load, opt.reps, opt.rep_seconds);
    if (threads == 1) out.attention_gflops.threads_1 = f;
    if (threads == opt.threads_all) out.attention_gflops.threads_all = f;
  }
}

void probe_compute(const ComputeOptions& opt, Compute& out, const Progress& progress) {
  out.threads_all = opt.threads_all;
  out.kernel_isa = model::isa_name(model::active_isa());
  out.runs.clear();
  for (const bool gemm : {false, true}) {
    const auto& shapes = gemm ? opt.gemm_shapes : opt.gemv_shapes;
    const int64_t n_tokens = gemm ? opt.gemm_tokens : 1;
    for (size_t si = 0; si < shapes.size(); ++si) {
      const auto [rows, cols] = shapes[si];
      for (const model::DType t : opt.dtypes) {
        const std::string dtype(*model::dtype_name(static_cast<uint32_t>(t)));
        const std::vector<int> thread_counts =
            opt.threads_all == 1 ? std::vector<int>{1} : std::vector<int>{1, opt.threads_all};
        MatmulLoad load(t, rows, cols, n_tokens, 1, gemm ? 0 : opt.gemv_pool_bytes,
                        gemm ? nullptr : opt.gemv_pool);
        for (const int threads : thread_counts) {
          if (progress) {
            progress(std::string(gemm ? "compute gemm " : "compute gemv ") + dtype + " " +
                     std::to_string(rows) + "x" + std::to_string(cols) + ", " +
                     std::to_string(threads) + (threads == 1 ? " thread" : " threads"));
          }
          load.set_threads(threads);
          out.runs.push_back({gemm ? "gemm" : "gemv", dtype, rows, cols, n_tokens, threads,
                              time_load(load, gemm ? opt.gemm_reps : opt.reps, opt.rep_seconds)});
          if (si != 0) continue;
          ThreadFigures& tf = (gemm ? out.gemm_gflops : out.gemv_gflops)[dtype];
          if (threads == 1) tf.threads_1 = out.runs.back().gflops;
          if (threads == opt.threads_all) tf.threads_all = out.runs.back().gflops;
        }
      }
    }
  }
}

void probe_gemv_shapes(const std::vector<GemvShape>& shapes, const ComputeOptions& opt,
                       Compute& out, const Progress& progress) {
  for (const GemvShape& shape : shapes) {
    const std::string dtype(*model::dtype_name(static_cast<uint32_t>(shape.type)));
    if (progress) {
      progress("compute gemv " + dtype + " " + std::to_string(shape.rows) + "x" +
               std::to_string(shape.cols) + " (the model's), " + std::to_string(opt.threads_all) +
               (opt.threads_all == 1 ? " thread" : " threads"));
    }
    MatmulLoad load(shape.type, shape.rows, shape.cols, 1, opt.threads_all, opt.gemv_pool_bytes,
                    opt.gemv_pool);
    out.runs.push_back({"gemv", dtype, shape.rows, shape.cols, 1, opt.threads_all,
                        time_load(load, opt.reps, opt.rep_seconds)});
  }
}

}  // namespace strata::profiles
