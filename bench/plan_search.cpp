// bench_plan_search: how long the exact Pareto search of `strata plan` takes and how large
// the front gets, from 32 layers on 4 devices to 126 layers on 12. Prints a table to paste.
//
// Models: Llama shapes in q4_0 (8B: 32 layers, 70B: 80, 405B: 126; other layer counts use
// the nearest shape's block), N = 4 sequences in flight, prompt 128, context 2048, the
// coordinator on the first device. Devices: copies of four kinds with the figures of
// tests/fixtures/plan (a Pi 5, an Orin Nano, an N100 mini-PC, a laptop), in two clusters:
//   kinds     copies of a kind are identical and every link is 1000 Mbit/s, 0.5 ms: what a
//             home cluster of bought-in-pairs boards looks like (the search uses the symmetry);
//   distinct  the k-th copy of a kind is 6% faster (and draws 6% more power) and links are
//             100, 300 or 1000 Mbit/s by pair: no two devices are alike, the hardest case.
//
// Usage: bench_plan_search [--quick] [--threads N] [--epsilon E]
//                          [--only LAYERS DEVICES kinds|distinct [streaming] [8b|70b|405b]]
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "strata/base/io.h"
#include "strata/partitioner/cost_model.h"
#include "strata/partitioner/search.h"

namespace sp = strata::partitioner;

namespace {

struct Kind {
  const char* name;
  double mem_budget_gb, read_gb_per_s, gemv_q4, gemm_q4, gemv_f32, gemm_f32, ssd_mb_per_s;
  double idle_watts, load_watts;
};

// The figures of tests/fixtures/plan/*.json (plausible, not measured).
constexpr Kind kKinds[] = {
    {"pi5", 7.6, 11.0, 22, 55, 9, 40, 430, 2.7, 7.8},
    {"orin", 6.4, 24.0, 30, 75, 12, 55, 1700, 4.2, 11.5},
    {"n100", 14.8, 26.0, 40, 100, 16, 90, 1800, 6.5, 22.0},
    {"laptop", 24.0, 62.0, 130, 450, 45, 400, 5600, 4.0, 32.0},
};

struct Row {
  int n_layers = 0;
  int n_devices = 0;
  bool distinct = false;
  bool streaming = false;
  const char* shape = nullptr;  // "8b", "70b", "405b": the block; default by layer count
};

std::vector<sp::DeviceCaps> make_devices(const Row& row) {
  std::vector<sp::DeviceCaps> out;
  for (int i = 0; i < row.n_devices; ++i) {
    const Kind& k = kKinds[i % 4];
    const double f = row.distinct ? 1.0 + 0.06 * (i / 4) : 1.0;
    sp::DeviceCaps d;
    d.name = std::string(k.name) + "-" + std::to_string(i / 4);
    d.source = "bench";
    d.mem_budget_bytes = static_cast<int64_t>(k.mem_budget_gb * 1e9);
    d.mem_total_bytes = d.mem_budget_bytes;
    d.mem_read_gb_per_s = k.read_gb_per_s * f;
    d.gemv_gflops = {{"q4_0", k.gemv_q4 * f}, {"f32", k.gemv_f32 * f}};
    d.gemm_gflops = {{"q4_0", k.gemm_q4 * f}, {"f32", k.gemm_f32 * f}};
    d.storage_read_mb_per_s = k.ssd_mb_per_s;
    d.storage_chunk_bytes = 4194304;
    d.idle_watts = k.idle_watts;
    d.load_watts = k.load_watts * f;
    out.push_back(d);
  }
  return out;
}

sp::LlamaShape shape_for(int n_layers, const char* name) {
  const std::string s = name != nullptr   ? name
                        : n_layers <= 40  ? "8b"
                        : n_layers <= 100 ? "70b"
                                          : "405b";
  if (s == "8b") return {"8b", n_layers, 4096, 32, 8, 14336, 128256};
  if (s == "70b") return {"70b", n_layers, 8192, 64, 8, 28672, 128256};
  return {"405b", n_layers, 16384, 128, 8, 53248, 128256};
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

void run_row(const Row& row, int threads, double epsilon) {
  const sp::LlamaShape shape = shape_for(row.n_layers, row.shape);
  auto table = sp::llama_layer_table(shape, "q4_0");
  if (!table.ok()) {
    std::fprintf(stderr, "%s\n", table.status().to_string().c_str());
    std::exit(1);
  }
  const auto devices = make_devices(row);
  std::vector<std::string> names;
  for (const auto& d : devices) names.push_back(d.name);
  sp::LinkTable links(names, sp::Link{0.5, 1000.0, true});
  if (row.distinct) {
    const double mbit[3] = {100, 300, 1000};
    for (int a = 0; a < row.n_devices; ++a) {
      for (int b = a + 1; b < row.n_devices; ++b) links.set(a, b, {1.0, mbit[(a + b) % 3], false});
    }
  }
  sp::PlanSettings settings;
  settings.sequences = 4;
  settings.prompt_len = 128;
  settings.context = 2048;
  settings.allow_streaming = row.streaming;
  settings.coordinator = sp::PlanSettings::Coordinator::kDevice;
  settings.coordinator_device = 0;
  auto model = sp::CostModel::build(*table, devices, links, settings);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().to_string().c_str());
    std::exit(1);
  }
  sp::SearchOptions options;
  options.epsilon = epsilon;
  options.threads = threads;
  const double cpu0 = cpu_seconds();
  auto front = sp::search_front(*model, options);
  const double cpu = cpu_seconds() - cpu0;
  std::printf("%-7d %-8d %-9s %-6s %-6s", row.n_layers, row.n_devices,
              row.distinct ? "distinct" : "kinds", shape.name.c_str(),
              row.streaming ? "yes" : "no");
  if (!front.ok()) {
    std::printf("  %s\n", front.status().message().c_str());
  } else {
    std::printf(
        " %9lld %11lld %12lld %7zu %9.3f %7.3f %9.3f %8.0f\n",
        static_cast<long long>(front->stats.states), static_cast<long long>(front->stats.labels),
        static_cast<long long>(front->stats.candidates), front->plans.size(), front->stats.seconds,
        front->stats.beam_seconds, cpu, static_cast<double>(strata::peak_rss_bytes()) / 1048576.0);
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<Row> rows = {
      {32, 4, false, false},   {48, 6, false, false},  {64, 6, false, false},
      {80, 8, false, false},   {80, 8, true, false},   {100, 10, false, false},
      {126, 12, false, false}, {126, 12, false, true}, {126, 12, false, false, "70b"},
  };
  int threads = 0;
  double epsilon = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      rows = {{32, 4, false, false}, {80, 8, false, false}};
    } else if (std::strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--epsilon") == 0 && i + 1 < argc) {
      epsilon = std::atof(argv[++i]);
    } else if (std::strcmp(argv[i], "--only") == 0 && i + 3 < argc) {
      Row r;
      r.n_layers = std::atoi(argv[++i]);
      r.n_devices = std::atoi(argv[++i]);
      r.distinct = std::strcmp(argv[++i], "distinct") == 0;
      for (; i + 1 < argc && argv[i + 1][0] != '-'; ++i) {
        if (std::strcmp(argv[i + 1], "streaming") == 0) {
          r.streaming = true;
        } else {
          r.shape = argv[i + 1];
        }
      }
      rows = {r};
    } else {
      std::fprintf(stderr,
                   "usage: bench_plan_search [--quick] [--threads N] [--epsilon E]\n"
                   "                         [--only LAYERS DEVICES kinds|distinct [streaming] "
                   "[8b|70b|405b]]\n");
      return 2;
    }
  }
  std::printf(
      "Pareto search of strata plan: q4_0 Llama shapes, 4 sequences in flight, context "
      "2048, prompt 128; %s, %s threads\n",
      epsilon > 0 ? ("epsilon " + std::to_string(epsilon)).c_str() : "exact",
      threads > 0 ? std::to_string(threads).c_str() : "all hardware");
  std::printf("%-7s %-8s %-9s %-6s %-6s %9s %11s %12s %7s %9s %7s %9s %8s\n", "layers", "devices",
              "cluster", "shape", "stream", "states", "partials", "candidates", "front", "wall_s",
              "beam_s", "cpu_s", "peak_MiB");
  for (const Row& row : rows) run_row(row, threads, epsilon);
  return 0;
}
