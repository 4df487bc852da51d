// ISA selection and the ISA-neutral half of matmul: argument checks, activation conversion and
// the split of output rows over the pool. Built without any -m flag: it only reads CPU feature
// bits and calls through the IsaOps tables, so it runs on every CPU the build targets.
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "kernels/kernels_internal.h"
#include "strata/base/status.h"

namespace strata::model {
namespace {

// Below these sizes a parallel region costs more than it saves (waking workers takes ~1 us).
constexpr int64_t kMinParallelMacs = int64_t{1} << 16;
constexpr int64_t kMinParallelConvertElems = int64_t{1} << 14;
// Row chunks handed to threads are multiples of this: every SIMD row tile (up to the 32 rows
// of the AVX-512 Q4_0 batch tile) stays within one thread, and neighbouring threads' y stores
// do not share a cache line.
constexpr int64_t kRowAlign = 32;
// Weight bytes (times tokens, up to 8) per claimed chunk: big enough that claiming (one
// contended atomic, ~0.1 us) costs under 1%, small enough to balance two threads.
constexpr int64_t kChunkBytes = 256 * 1024;

#if defined(__x86_64__)
// F16C from CPUID leaf 1 (ECX bit 29): clang 14's __builtin_cpu_supports does not know "f16c".
bool cpu_has_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return false;
  return (ecx & (1u << 29)) != 0;
}
#endif

bool cpu_runs(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return true;
#if defined(__x86_64__)
    case Isa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
    case Isa::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#endif
#if defined(__aarch64__)
    case Isa::kNeon: return true;  // Advanced SIMD is mandatory on AArch64.
#endif
    default: return false;
  }
}

const kernels::IsaOps* ops_for(Isa isa) {
  if (!cpu_runs(isa)) return nullptr;
  switch (isa) {
    case Isa::kScalar: return kernels::scalar_ops();
    case Isa::kAvx2: return kernels::avx2_ops();
    case Isa::kAvx512: {
#if defined(__x86_64__)
      return kernels::avx512_ops(__builtin_cpu_supports("avx512vnni"));
#else
      return nullptr;
#endif
    }
    case Isa::kNeon: return kernels::neon_ops();
  }
  return nullptr;
}

std::string available_names() {
  std::string names;
  for (Isa isa : available_isas()) names += std::string(names.empty() ? "" : ", ") + isa_name(isa);
  return names;
}

// The STRATA_ISA override or the widest ISA available. A bad override is the user's
// environment, not a bug, but this runs inside kernels that return no Status: it is refused
// with a message and exit code 1 at first use, before any kernel runs.
const kernels::IsaOps& select_ops() {
  const char* forced = std::getenv("STRATA_ISA");
  if (forced == nullptr || *forced == '\0') {
    for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kNeon}) {
      if (const kernels::IsaOps* ops = ops_for(isa)) return *ops;
    }
    return *kernels::scalar_ops();
  }
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kNeon}) {
    if (std::string_view(forced) != isa_name(isa)) continue;
    if (const kernels::IsaOps* ops = ops_for(isa)) return *ops;
    std::fprintf(stderr, "strata: STRATA_ISA=%s: this CPU or build cannot run %s (available: %s)\n",
                 forced, forced, available_names().c_str());
    std::exit(1);
  }
  std::fprintf(stderr,
               "strata: STRATA_ISA=%s is not an ISA name (expected scalar, avx2, avx512 or neon; "
               "available here: %s)\n",
               forced, available_names().c_str());
  std::exit(1);
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
    case Isa::kNeon: return "neon";
  }
  return "unknown";
}

std::vector<Isa> available_isas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kNeon}) {
    if (ops_for(isa) != nullptr) isas.push_back(isa);
  }
  return isas;
}

Isa active_isa() { return kernels::active_ops().isa; }

namespace kernels {

// Tables of ISAs this build does not compile (CMake adds those files per architecture).
#if !defined(__x86_64__)
const IsaOps* avx2_ops() { return nullptr; }
const IsaOps* avx512_ops(bool) { return nullptr; }
const IsaOps* avx512_vnni_ops() { return nullptr; }
#endif
#if !defined(__aarch64__)
const IsaOps* neon_ops() { return nullptr; }
#endif

const IsaOps& active_ops() {
  static const IsaOps& ops = select_ops();
  return ops;
}

void matmul_with(const IsaOps& ops, const WeightView& w, const float* x, int64_t n_tokens, float* y,
                 int64_t ldy, ThreadPool* pool, MatmulScratch& scratch) {
  STRATA_CHECK(w.rows >= 0 && w.cols > 0 && n_tokens >= 0);
  STRATA_CHECK_MSG(w.cols % dtype_block_elems(w.type) == 0,
                   "matmul: " + std::to_string(w.cols) + " columns is not a whole number of " +
                       std::to_string(dtype_block_elems(w.type)) + "-element blocks");
  STRATA_CHECK_MSG(ldy >= w.rows,
                   "matmul: ldy " + std::to_string(ldy) + " < rows " + std::to_string(w.rows));
  if (n_tokens == 0 || w.rows == 0) return;
  STRATA_CHECK(w.data != nullptr && x != nullptr && y != nullptr);
  const int n_threads = pool != nullptr ? pool->size() : 1;

  const uint8_t* act = reinterpret_cast<const uint8_t*>(x);
  int64_t act_stride = w.cols * static_cast<int64_t>(sizeof(float));
  if (w.type != DType::kF32) {
    act_stride = ops.act_stride_bytes(w.type, w.cols);
    scratch.bytes.resize(static_cast<size_t>(n_tokens * act_stride + 64));
    uint8_t* base = scratch.bytes.data();
    uint8_t* aligned = base + ((64 - reinterpret_cast<uintptr_t>(base) % 64) % 64);
    if (n_threads > 1 && n_tokens > 1 && n_tokens * w.cols >= kMinParallelConvertElems) {
      pool->run([&](int i) {
        const int64_t t0 = n_tokens * i / n_threads;
        const int64_t t1 = n_tokens * (i + 1) / n_threads;
        if (t0 < t1) ops.convert(w.type, x, w.cols, t0, t1, aligned, act_stride);
      });
    } else {
      ops.convert(w.type, x, w.cols, 0, n_tokens, aligned, act_stride);
    }
    act = aligned;
  }

  if (n_threads == 1 || w.rows * w.cols * n_tokens < kMinParallelMacs) {
    ops.rows(w, act, act_stride, n_tokens, y, ldy, 0, w.rows);
    return;
  }
  // Fixed-size row chunks claimed from a counter: which thread computes a chunk never changes
  // what is computed for a row, so the bits are the same for any thread count, and a thread
  // slowed down by another process on its core simply claims fewer chunks.
  const int64_t work_per_row = row_bytes(w.type, w.cols) * std::min<int64_t>(n_tokens, 8);
  int64_t chunk = std::max<int64_t>(1, kChunkBytes / work_per_row);
  chunk = std::min(chunk, (w.rows + 4 * n_threads - 1) / (4 * n_threads));
  chunk = std::max(kRowAlign, (chunk + kRowAlign - 1) / kRowAlign * kRowAlign);
  const int64_t n_chunks = (w.rows + chunk - 1) / chunk;
  std::atomic<int64_t> next{0};
  pool->run([&](int) {
    for (int64_t c = next.fetch_add(1, std::memory_order_relaxed); c < n_chunks;
         c = next.fetch_add(1, std::memory_order_relaxed)) {
      ops.rows(w, act, act_stride, n_tokens, y, ldy, c * chunk, std::min(w.rows, (c + 1) * chunk));
    }
  });
}

}  // namespace kernels

void matmul(const WeightView& w, const float* x, int64_t n_tokens, float* y, int64_t ldy,
            ThreadPool& pool, MatmulScratch& scratch) {
  kernels::matmul_with(kernels::active_ops(), w, x, n_tokens, y, ldy, &pool, scratch);
}

void matmul_scalar(const WeightView& w, const float* x, int64_t n_tokens, float* y, int64_t ldy) {
  MatmulScratch scratch;
  kernels::matmul_with(*kernels::scalar_ops(), w, x, n_tokens, y, ldy, nullptr, scratch);
}

void get_row(const WeightView& w, int64_t row, float* out) {
  STRATA_CHECK_MSG(row >= 0 && row < w.rows, "get_row: row " + std::to_string(row) +
                                                 " outside [0, " + std::to_string(w.rows) + ")");
  const int64_t bytes = row_bytes(w.type, w.cols);
  dequantize_row(w.type, static_cast<const uint8_t*>(w.data) + row * bytes, out, w.cols);
}

}  // namespace strata::model
