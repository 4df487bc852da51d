#include "strata/profiles/compute.h"

#include <random>

#include "strata/base/io.h"
#include "strata/model/kernels.h"

namespace strata::profiles {

struct MatmulLoad::Impl {
  model::DType type;
  int64_t rows;
  int64_t cols;
  int64_t n_tokens;
  std::vector<uint8_t> weights;
  std::vector<float> x;
  std::vector<float> y;
  model::ThreadPool pool;
  model::MatmulScratch scratch;

  Impl(model::DType t, int64_t r, int64_t c, int64_t n, int threads)
      : type(t), rows(r), cols(c), n_tokens(n), pool(threads) {
    // Deterministic values of the size real weights have; a quantized type gets the bytes its
    // quantizer makes, so the kernels see realistic scales and nibbles.
    std::mt19937 rng(1234);
    std::normal_distribution<float> dist(0.0f, 0.02f);
    const int64_t rb = model::row_bytes(t, c);
    weights.resize(static_cast<size_t>(rb * r));
    std::vector<float> row(static_cast<size_t>(c));
    for (int64_t i = 0; i < r; ++i) {
      for (float& v : row) v = dist(rng);
      model::quantize_row(t, row.data(), weights.data() + i * rb, c);
    }
    x.resize(static_cast<size_t>(n * c));
    for (float& v : x) v = dist(rng) * 50.0f;
    y.resize(static_cast<size_t>(n * r));
  }

  double gflop() const { return 2.0 * static_cast<double>(rows * cols * n_tokens) / 1e9; }

  void run() {
    const model::WeightView w{type, rows, cols, weights.data()};
    model::matmul(w, x.data(), n_tokens, y.data(), rows, pool, scratch);
  }
};

MatmulLoad::MatmulLoad(model::DType type, int64_t rows, int64_t cols, int64_t n_tokens, int threads)
    : impl_(std::make_unique<Impl>(type, rows, cols, n_tokens, threads)) {}

MatmulLoad::~MatmulLoad() = default;

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
         std::to_string(m.pool.size()) + (m.pool.size() == 1 ? " thread" : " threads") +
         ", strata::model::matmul (" + model::isa_name(model::active_isa()) + ")";
}

namespace {

// Times `load` after a warm-up call, whose duration also sets how many calls one repetition
// batches (enough to last rep_seconds; the warm-up's page faults only make it fewer).
Figure time_load(MatmulLoad& load, int reps, double rep_seconds) {
  double t0 = now_s();
  const double gflop_per_call = load.run_once();
  const double one = std::max(now_s() - t0, 1e-6);
  const int calls = std::max(1, static_cast<int>(rep_seconds / one));
  std::vector<double> samples;
  for (int r = 0; r < reps; ++r) {
    t0 = now_s();
    for (int c = 0; c < calls; ++c) load.run_once();
    samples.push_back(gflop_per_call * calls / (now_s() - t0));
  }
  return measured_figure(samples, "GFLOP/s",
                         load.describe() + ", " + std::to_string(calls) + " calls per rep");
}

}  // namespace

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
        for (const int threads : thread_counts) {
          if (progress) {
            progress(std::string(gemm ? "compute gemm " : "compute gemv ") + dtype + " " +
                     std::to_string(rows) + "x" + std::to_string(cols) + ", " +
                     std::to_string(threads) + (threads == 1 ? " thread" : " threads"));
          }
          MatmulLoad load(t, rows, cols, n_tokens, threads);
          out.runs.push_back({gemm ? "gemm" : "gemv", dtype, rows, cols, n_tokens, threads,
                              time_load(load, opt.reps, opt.rep_seconds)});
          if (si != 0) continue;
          ThreadFigures& tf = (gemm ? out.gemm_gflops : out.gemv_gflops)[dtype];
          if (threads == 1) tf.threads_1 = out.runs.back().gflops;
          if (threads == opt.threads_all) tf.threads_all = out.runs.back().gflops;
        }
      }
    }
  }
}

}  // namespace strata::profiles
