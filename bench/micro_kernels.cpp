// Micro benchmarks of the compute kernels: matmul throughput per weight type, shape, batch
// size, thread count and ISA; the machine's memory bandwidth (the roofline a GEMV should
// approach); and the thread pool's dispatch overhead.
//
//   build/release/bench/bench_micro_kernels --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true --benchmark_filter='q4_0|bandwidth'
//
// Counters: GB/s = weight bytes streamed per second, GFLOP/s = 2 * rows * cols * n_tokens per
// second. Times are wall-clock (UseRealTime): the work runs on the pool's threads.
//
// Each matmul benchmark cycles through enough copies of its weight matrix to fill 256 MiB, so
// a GEMV reads its weights from DRAM as the engine does, not from the 32 MiB L3.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/kernels_internal.h"
#include "strata/model/kernels.h"

namespace strata::model {
namespace {

constexpr int64_t kRotationBytes = int64_t{256} << 20;

uint64_t next_random(uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

// Random weight bytes that are valid for `type`: finite f32/f16/bf16 values around +-1, and
// quantized blocks with small positive f16 scales.
void fill_random(DType type, uint8_t* dst, int64_t n_bytes, uint64_t seed) {
  uint64_t s = seed | 1;
  for (int64_t i = 0; i + 8 <= n_bytes; i += 8) {
    const uint64_t v = next_random(s);
    std::memcpy(dst + i, &v, 8);
  }
  const auto fix_u16 = [&](int64_t at, uint16_t value) { std::memcpy(dst + at, &value, 2); };
  switch (type) {
    case DType::kF32:
      for (int64_t i = 0; i + 4 <= n_bytes; i += 4) {
        const float f = static_cast<float>(static_cast<int32_t>(next_random(s))) / 2147483648.0f;
        std::memcpy(dst + i, &f, 4);
      }
      break;
    case DType::kF16:
      for (int64_t i = 0; i + 2 <= n_bytes; i += 2) {
        fix_u16(i, static_cast<uint16_t>(0x3800 + next_random(s) % 0x400));  // [0.5, 1)
      }
      break;
    case DType::kBF16:
      for (int64_t i = 0; i + 2 <= n_bytes; i += 2) {
        fix_u16(i, static_cast<uint16_t>(0x3f00 + next_random(s) % 0x80));  // [0.5, 1)
      }
      break;
    case DType::kQ4_0:
    case DType::kQ8_0: {
      const int64_t bb = dtype_block_bytes(type);
      for (int64_t i = 0; i + bb <= n_bytes; i += bb) fix_u16(i, fp32_to_fp16(0.01f));
      break;
    }
  }
}

// The weight copies of the benchmark that is running; replaced when the next benchmark needs
// another type or shape, so only one set (<= 256 MiB + one matrix) is alive at a time.
struct Weights {
  DType type = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t matrix_bytes = 0;
  int64_t stride = 0;  // bytes between copies
  std::vector<uint8_t> bytes;
  int64_t n_copies = 0;
};

Weights& weights_for(DType type, int64_t rows, int64_t cols) {
  static Weights w;
  if (w.type == type && w.rows == rows && w.cols == cols && !w.bytes.empty()) return w;
  w.type = type;
  w.rows = rows;
  w.cols = cols;
  w.matrix_bytes = rows * row_bytes(type, cols);
  // Copies padded to 4 KiB apart, as the tensors of an mmap'd GGUF are aligned.
  w.stride = (w.matrix_bytes + 4095) / 4096 * 4096;
  w.n_copies = std::max<int64_t>(1, kRotationBytes / w.stride);
  w.bytes.assign(static_cast<size_t>(w.stride * w.n_copies), 0);
  fill_random(type, w.bytes.data(), w.matrix_bytes, 42);
  for (int64_t c = 1; c < w.n_copies; ++c) {
    std::memcpy(w.bytes.data() + c * w.stride, w.bytes.data(), static_cast<size_t>(w.matrix_bytes));
  }
  return w;
}

void bm_matmul(benchmark::State& state, const kernels::IsaOps* ops, DType type, int64_t rows,
               int64_t cols, int64_t n_tokens, int threads) {
  Weights& w = weights_for(type, rows, cols);
  std::vector<float> x(static_cast<size_t>(n_tokens * cols));
  uint64_t s = 7;
  for (float& f : x) f = static_cast<float>(static_cast<int32_t>(next_random(s))) / 2147483648.0f;
  std::vector<float> y(static_cast<size_t>(n_tokens * rows));
  ThreadPool pool(threads);
  MatmulScratch scratch;
  int64_t copy = 0;
  for (auto _ : state) {
    const WeightView view{type, rows, cols, w.bytes.data() + copy * w.stride};
    kernels::matmul_with(*ops, view, x.data(), n_tokens, y.data(), rows, &pool, scratch);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    copy = copy + 1 == w.n_copies ? 0 : copy + 1;
  }
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(w.matrix_bytes) / 1e9,
                                              benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * static_cast<double>(rows * cols * n_tokens) / 1e9,
                         benchmark::Counter::kIsIterationInvariantRate);
}

// Sums `n` 64-bit words with 8 independent chains so the loads, not the adds, bound it.
uint64_t sum_words(const uint64_t* p, int64_t n) {
  uint64_t a[8] = {};
  for (int64_t i = 0; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) a[j] += p[i + j];
  }
  return a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
}

// Read bandwidth: each thread sums its contiguous slice of a 1 GiB buffer.
void bm_read_bandwidth(benchmark::State& state, int threads) {
  const int64_t n_words = (int64_t{1} << 30) / 8;
  static std::vector<uint64_t> buf(static_cast<size_t>(n_words), 1);
  ThreadPool pool(threads);
  std::vector<uint64_t> sums(static_cast<size_t>(threads));
  for (auto _ : state) {
    pool.run([&](int i) {
      const int64_t w0 = n_words * i / threads;
      const int64_t w1 = n_words * (i + 1) / threads;
      sums[static_cast<size_t>(i)] = sum_words(buf.data() + w0, w1 - w0);
    });
    benchmark::DoNotOptimize(sums.data());
  }
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(n_words * 8) / 1e9,
                                              benchmark::Counter::kIsIterationInvariantRate);
}

// STREAM triad a = b + s * c over 3 x 256 MiB; counts 3 arrays of traffic as STREAM does
// (the write-allocate read of `a` makes the real traffic 4/3 of that).
void bm_triad(benchmark::State& state, int threads) {
  const int64_t n = (int64_t{256} << 20) / 8;
  static std::vector<double> a(static_cast<size_t>(n), 0.0);
  static std::vector<double> b(static_cast<size_t>(n), 1.0);
  static std::vector<double> c(static_cast<size_t>(n), 2.0);
  ThreadPool pool(threads);
  for (auto _ : state) {
    pool.run([&](int i) {
      const int64_t i0 = n * i / threads;
      const int64_t i1 = n * (i + 1) / threads;
      for (int64_t j = i0; j < i1; ++j)
        a[static_cast<size_t>(j)] = b[static_cast<size_t>(j)] + 3.0 * c[static_cast<size_t>(j)];
    });
    benchmark::DoNotOptimize(a.data());
  }
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(3 * n * 8) / 1e9,
                                              benchmark::Counter::kIsIterationInvariantRate);
}

// Dispatch overhead: an empty region, back to back (the workers stay in their spin).
void bm_dispatch(benchmark::State& state, int threads) {
  ThreadPool pool(threads);
  for (auto _ : state) pool.run([](int) {});
}

struct Shape {
  int64_t rows;
  int64_t cols;
};

// The Llama 1.1B shapes: q/o, k/v, gate/up, down, output head.
constexpr Shape kShapes[] = {{2048, 2048}, {512, 2048}, {8192, 2048}, {2048, 8192}, {32000, 2048}};
constexpr DType kTypes[] = {DType::kQ4_0, DType::kQ8_0, DType::kF16, DType::kBF16, DType::kF32};

// Every matmul of one forward step of the 1.1B Llama shape (16 layers of q, k, v, o, gate,
// up, down on n_tokens tokens, then the output head on the last token), back to back on
// distinct weights (~0.6 GB in Q4_0): with n_tokens = 1 the weight streaming and dispatch
// cost of decode, with 128 the matmul cost of prefill, without attention and norms. tok/s is
// the rate these matmuls alone would allow; GB/s is weight bytes per second.
void bm_model_matmuls(benchmark::State& state, DType type, int64_t n_tokens, int threads) {
  constexpr int kLayers = 16;
  const Shape layer[] = {{2048, 2048}, {512, 2048},  {512, 2048}, {2048, 2048},
                         {8192, 2048}, {8192, 2048}, {2048, 8192}};
  static std::map<uint32_t, std::vector<uint8_t>> all_bytes;  // one model per type, kept
  std::vector<WeightView> views;
  int64_t total = 0;
  for (int l = 0; l < kLayers; ++l)
    for (const Shape& s : layer) total += s.rows * row_bytes(type, s.cols);
  total += 32000 * row_bytes(type, 2048);
  std::vector<uint8_t>& bytes = all_bytes[static_cast<uint32_t>(type)];
  if (bytes.empty()) {
    bytes.resize(static_cast<size_t>(total));
    fill_random(type, bytes.data(), total, 99);
  }
  int64_t at = 0;
  const auto add = [&](int64_t rows, int64_t cols) {
    views.push_back({type, rows, cols, bytes.data() + at});
    at += rows * row_bytes(type, cols);
  };
  for (int l = 0; l < kLayers; ++l)
    for (const Shape& s : layer) add(s.rows, s.cols);
  add(32000, 2048);
  std::vector<float> x(static_cast<size_t>(8192 * n_tokens), 0.01f);
  std::vector<float> y(static_cast<size_t>(32000 * n_tokens));
  ThreadPool pool(threads);
  MatmulScratch scratch;
  for (auto _ : state) {
    for (size_t i = 0; i < views.size(); ++i) {
      const int64_t n = i + 1 == views.size() ? 1 : n_tokens;
      matmul(views[i], x.data(), n, y.data(), views[i].rows, pool, scratch);
    }
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["tok/s"] = benchmark::Counter(static_cast<double>(n_tokens),
                                               benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(total) / 1e9,
                                              benchmark::Counter::kIsIterationInvariantRate);
}

std::vector<const kernels::IsaOps*> isa_variants() {
  std::vector<const kernels::IsaOps*> out = {kernels::scalar_ops()};
  for (Isa isa : available_isas()) {
    switch (isa) {
      case Isa::kScalar: break;
      case Isa::kAvx2: out.push_back(kernels::avx2_ops()); break;
      case Isa::kAvx512: out.push_back(kernels::avx512_ops(false));
#if defined(__x86_64__)
        if (__builtin_cpu_supports("avx512vnni")) out.push_back(kernels::avx512_ops(true));
#endif
        break;
      case Isa::kNeon: out.push_back(kernels::neon_ops()); break;
    }
  }
  return out;
}

void register_all() {
  for (int threads : {1, 2}) {
    benchmark::RegisterBenchmark(("bandwidth/read/threads:" + std::to_string(threads)).c_str(),
                                 bm_read_bandwidth, threads)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("bandwidth/triad/threads:" + std::to_string(threads)).c_str(),
                                 bm_triad, threads)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("dispatch/threads:" + std::to_string(threads)).c_str(),
                                 bm_dispatch, threads)
        ->UseRealTime();
  }
  for (DType type : {DType::kQ4_0, DType::kQ8_0}) {
    for (int64_t n_tokens : {1, 128}) {
      for (int threads : {1, 2}) {
        const std::string name =
            "model_matmuls/" + std::string(*dtype_name(static_cast<uint32_t>(type))) +
            "/n:" + std::to_string(n_tokens) + "/threads:" + std::to_string(threads);
        benchmark::RegisterBenchmark(name.c_str(), bm_model_matmuls, type, n_tokens, threads)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
    }
  }
  for (DType type : kTypes) {
    for (const Shape& shape : kShapes) {
      for (int64_t n_tokens : {1, 128}) {
        for (int threads : {1, 2}) {
          for (const kernels::IsaOps* ops : isa_variants()) {
            const std::string name = "matmul/" +
                                     std::string(*dtype_name(static_cast<uint32_t>(type))) + "/" +
                                     std::to_string(shape.rows) + "x" + std::to_string(shape.cols) +
                                     "/n:" + std::to_string(n_tokens) +
                                     "/threads:" + std::to_string(threads) + "/" + ops->variant;
            benchmark::RegisterBenchmark(name.c_str(), bm_matmul, ops, type, shape.rows, shape.cols,
                                         n_tokens, threads)
                ->UseRealTime()
                ->Unit(benchmark::kMicrosecond);
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace strata::model

int main(int argc, char** argv) {
  strata::model::register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
