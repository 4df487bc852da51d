// bench_plan_search: how long the exact Pareto search of `strata plan` takes and how large
// the front gets, from 32 layers on 4 devices to 126 layers on 12. Prints a table to paste.
//
// The instances are Llama shapes in q4_0 (8B: 32 layers, 70B: 80, 405B: 126) over copies of
// four device kinds (a Pi 5, an Orin Nano, an N100 mini-PC, a laptop; the k-th copy of a kind
// 6% faster than the one before so that no two devices are equal) joined by links of 100,
// 300 or 1000 Mbit/s, coordinator on the first device.
//
// Usage: bench_plan_search [--quick] [--epsilon E]
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

std::vector<sp::DeviceCaps> make_devices(int n) {
  std::vector<sp::DeviceCaps> out;
  for (int i = 0; i < n; ++i) {
    const Kind& k = kKinds[i % 4];
    const double f = std::getenv("IDENT") ? 1.0 : 1.0 + 0.06 * (i / 4);
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
    if (!std::getenv("NOPOWER")) d.idle_watts = k.idle_watts;
    d.load_watts = k.load_watts * f;
    out.push_back(d);
  }
  return out;
}

sp::LlamaShape shape_for(int n_layers) {
  if (n_layers <= 40) return {"llama-8b-shape", n_layers, 4096, 32, 8, 14336, 128256};
  if (n_layers <= 100) return {"llama-70b-shape", n_layers, 8192, 64, 8, 28672, 128256};
  return {"llama-405b-shape", n_layers, 16384, 128, 8, 53248, 128256};
}

struct Row {
  int n_layers, n_devices;
  bool streaming;
};

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  double epsilon = 0;
  int only_layers = 0, only_devices = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strcmp(argv[i], "--only") == 0 && i + 2 < argc) {
      only_layers = std::atoi(argv[++i]);
      only_devices = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--epsilon") == 0 && i + 1 < argc) {
      epsilon = std::atof(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: bench_plan_search [--quick] [--epsilon E]\n");
      return 2;
    }
  }
  std::vector<Row> rows = {{32, 4, false},   {32, 4, true},    {48, 6, false},
                           {64, 6, false},   {80, 8, false},   {80, 8, true},
                           {100, 10, false}, {126, 12, false}, {126, 12, true}};
  if (quick) rows = {{32, 4, false}, {80, 8, false}};
  if (only_layers > 0) rows = {{only_layers, only_devices, false}};

  std::printf("exact Pareto search, q4_0 Llama shapes, N=4 sequences, context 2048, prompt 128%s\n",
              epsilon > 0 ? (" , epsilon " + std::to_string(epsilon)).c_str() : "");
  std::printf("%-7s %-8s %-9s %-16s %10s %12s %12s %8s %10s %8s\n", "layers", "devices",
              "streaming", "model", "states", "labels", "candidates", "front", "search_s",
              "rss_MiB");
  for (const Row& row : rows) {
    auto table = sp::llama_layer_table(shape_for(row.n_layers), "q4_0");
    if (!table.ok()) {
      std::fprintf(stderr, "%s\n", table.status().to_string().c_str());
      return 1;
    }
    auto devices = make_devices(row.n_devices);
    std::vector<std::string> names;
    for (const auto& d : devices) names.push_back(d.name);
    sp::LinkTable links(names, sp::Link{1.0, 1000.0, true});
    const double mbit[3] = {100, 300, 1000};
    for (int a = 0; a < row.n_devices; ++a) {
      for (int b = a + 1; b < row.n_devices; ++b)
        links.set(a, b, {1.0, std::getenv("IDENT") ? 1000.0 : mbit[(a + b) % 3], false});
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
      return 1;
    }
    sp::SearchOptions options;
    options.epsilon = epsilon;
    auto front = sp::search_front(*model, options);
    if (!front.ok()) {
      std::printf("%-7d %-8d %-9s %-16s  %s\n", row.n_layers, row.n_devices,
                  row.streaming ? "yes" : "no", table->name.c_str(),
                  front.status().message().c_str());
      continue;
    }
    std::printf("%-7d %-8d %-9s %-16s %10lld %12lld %12lld %8zu %10.3f %8.0f\n", row.n_layers,
                row.n_devices, row.streaming ? "yes" : "no", shape_for(row.n_layers).name.c_str(),
                static_cast<long long>(front->stats.states),
                static_cast<long long>(front->stats.labels),
                static_cast<long long>(front->stats.candidates), front->plans.size(),
                front->stats.seconds, static_cast<double>(strata::peak_rss_bytes()) / 1048576.0);
    std::fflush(stdout);
  }
  return 0;
}
