// Side-by-side decode/prefill benchmark: strata vs llama.cpp on the same synthesized GGUF, the
// same prompt ids and thread count, engines alternated, medians reported.
//
//   bench_engine_vs_llamacpp [--strata build/release/bin/strata] [--peer
//   ../shared/peer/llamacpp_bench.mjs]
//       [--models-dir build/bench-models] [--types q4_0,q8_0] [--rounds 5] [--threads 2]
//       [--prompt 128] [--gen 64] [--bandwidth-gb-per-s X] [--json out.json]
//
// Needs node and NODE_LLAMA_CPP_PATH set as ../shared/peer/README.md says. Prints a table a
// person can paste; the memory bandwidth for the roofline is measured here (2-thread read of a
// 2 GiB buffer) unless given.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "strata/base/io.h"
#include "strata/base/status.h"

namespace {

struct Options {
  std::string strata = "build/release/bin/strata";
  std::string peer = "../shared/peer/llamacpp_bench.mjs";
  std::string models_dir = "build/bench-models";
  std::vector<std::string> types = {"q4_0", "q8_0"};
  int rounds = 5;
  int threads = 2;
  int prompt = 128;
  int gen = 64;
  double bandwidth_gb_per_s = 0;
  std::string json_out;
};

strata::Result<std::string> run_capture(const std::string& cmd) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return strata::io_error("cannot run: " + cmd);
  std::string out;
  char buf[65536];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int rc = ::pclose(p);
  if (rc != 0)
    return strata::internal_error("command failed (status " + std::to_string(rc) + "): " + cmd);
  return out;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Read bandwidth with `threads` threads summing disjoint halves of a buffer far larger than the
// caches; best of 5 passes after a warm-up (GB/s, 10^9 bytes).
double measure_read_gb_per_s(int threads) {
  const size_t bytes = size_t{2} << 30;
  const size_t n = bytes / sizeof(uint64_t);
  std::vector<uint64_t> buf(n);
  for (size_t i = 0; i < n; ++i) buf[i] = i;
  double best = 0;
  for (int pass = 0; pass < 6; ++pass) {
    std::vector<std::thread> ts;
    std::vector<uint64_t> sums(static_cast<size_t>(threads));
    const double t0 = strata::now_s();
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&, t] {
        const size_t b = n / static_cast<size_t>(threads) * static_cast<size_t>(t);
        const size_t e = t + 1 == threads ? n : b + n / static_cast<size_t>(threads);
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = b; i + 4 <= e; i += 4) {
          s0 += buf[i];
          s1 += buf[i + 1];
          s2 += buf[i + 2];
          s3 += buf[i + 3];
        }
        sums[static_cast<size_t>(t)] = s0 + s1 + s2 + s3;
      });
    }
    for (auto& t : ts) t.join();
    const double dt = strata::now_s() - t0;
    if (sums[0] == 42) std::printf(" ");  // keep the loop
    if (pass > 0) best = std::max(best, static_cast<double>(bytes) / dt / 1e9);
  }
  return best;
}

int usage() {
  std::fprintf(stderr,
               "usage: bench_engine_vs_llamacpp [--strata BIN] [--peer llamacpp_bench.mjs] "
               "[--models-dir DIR]\n"
               "       [--types q4_0,q8_0] [--rounds N] [--threads T] [--prompt P] [--gen G]\n"
               "       [--bandwidth-gb-per-s X] [--json FILE]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto need = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--strata")
      o.strata = need();
    else if (a == "--peer")
      o.peer = need();
    else if (a == "--models-dir")
      o.models_dir = need();
    else if (a == "--types") {
      o.types.clear();
      std::string s = need();
      size_t p = 0;
      while (p != std::string::npos) {
        const size_t q = s.find(',', p);
        o.types.push_back(s.substr(p, q == std::string::npos ? q : q - p));
        p = q == std::string::npos ? q : q + 1;
      }
    } else if (a == "--rounds")
      o.rounds = std::atoi(need().c_str());
    else if (a == "--threads")
      o.threads = std::atoi(need().c_str());
    else if (a == "--prompt")
      o.prompt = std::atoi(need().c_str());
    else if (a == "--gen")
      o.gen = std::atoi(need().c_str());
    else if (a == "--bandwidth-gb-per-s")
      o.bandwidth_gb_per_s = std::atof(need().c_str());
    else if (a == "--json")
      o.json_out = need();
    else
      return usage();
  }
  if (std::getenv("NODE_LLAMA_CPP_PATH") == nullptr) {
    std::fprintf(
        stderr,
        "NODE_LLAMA_CPP_PATH is not set: install the peer as ../shared/peer/README.md says\n");
    return 1;
  }
  if (o.bandwidth_gb_per_s <= 0) {
    std::fprintf(stderr, "measuring memory read bandwidth (%d threads)...\n", o.threads);
    o.bandwidth_gb_per_s = measure_read_gb_per_s(o.threads);
  }
  std::filesystem::create_directories(o.models_dir);
  nlohmann::json report;
  report["bandwidth_gb_per_s"] = o.bandwidth_gb_per_s;
  report["threads"] = o.threads;
  report["prompt"] = o.prompt;
  report["gen"] = o.gen;
  report["rounds"] = o.rounds;

  std::printf(
      "\nstrata vs llama.cpp: 1.1B Llama shape (dim 2048, 16 layers, 32/8 heads, ffn 8192, vocab "
      "32000)\n");
  std::printf(
      "%d threads, %d-token prompt, %d decode steps, %d alternated rounds, medians; read bandwidth "
      "%.1f GB/s\n\n",
      o.threads, o.prompt, o.gen, o.rounds, o.bandwidth_gb_per_s);
  std::printf(
      "| type | engine | prefill tok/s | decode tok/s | decode / roofline | peak RSS | RSS budget "
      "|\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (const std::string& type : o.types) {
    const std::string model = o.models_dir + "/llama1.1b-" + type + ".gguf";
    if (!std::filesystem::exists(model)) {
      std::fprintf(stderr, "synthesizing %s...\n", model.c_str());
      auto r =
          run_capture(o.strata +
                      " model synth --arch llama --dim 2048 --layers 16 --heads 32 --kv-heads 8 "
                      "--ffn 8192 --vocab 32000 --type " +
                      type + " --seed 1 -o " + model + " 2>&1");
      if (!r.ok()) {
        std::fprintf(stderr, "%s\n", r.status().message().c_str());
        return 1;
      }
    }
    auto info = run_capture(o.strata + " model info --json " + model);
    if (!info.ok()) {
      std::fprintf(stderr, "%s\n", info.status().message().c_str());
      return 1;
    }
    const auto ij = nlohmann::json::parse(*info);
    double read_per_token = 0;
    for (const auto& u : ij["units"])
      read_per_token += u["weight_bytes_read_per_token"].get<double>();
    const double roofline_tps = o.bandwidth_gb_per_s * 1e9 / read_per_token;
    const double weight_bytes = ij["total_weight_bytes"].get<double>();

    std::vector<double> s_pf, s_dc, l_pf, l_dc, s_rss;
    double kv_bytes = 0;
    for (int round = 0; round < o.rounds; ++round) {
      std::fprintf(stderr, "%s round %d/%d: strata...\n", type.c_str(), round + 1, o.rounds);
      auto s = run_capture(o.strata + " generate --json --warmup --model " + model +
                           " --prompt-len " + std::to_string(o.prompt) + " -n " +
                           std::to_string(o.gen + 1) + " --threads " + std::to_string(o.threads));
      if (!s.ok()) {
        std::fprintf(stderr, "%s\n", s.status().message().c_str());
        return 1;
      }
      const auto sj = nlohmann::json::parse(*s);
      s_pf.push_back(sj["prefill_tps"].get<double>());
      s_dc.push_back(sj["decode_tps"].get<double>());
      s_rss.push_back(sj["peak_rss_bytes"].get<double>());
      kv_bytes = sj["kv_cache_bytes"].get<double>();
      std::fprintf(stderr, "%s round %d/%d: llama.cpp...\n", type.c_str(), round + 1, o.rounds);
      auto l = run_capture("node " + o.peer + " --model " + model + " --threads " +
                           std::to_string(o.threads) + " --prompt " + std::to_string(o.prompt) +
                           " --gen " + std::to_string(o.gen) + " --reps 1 --top 5 2>/dev/null");
      if (!l.ok()) {
        std::fprintf(stderr, "%s\n", l.status().message().c_str());
        return 1;
      }
      const auto lj = nlohmann::json::parse(*l);
      l_pf.push_back(lj["prefill"]["tok_s_llama_median"].get<double>());
      l_dc.push_back(lj["decode"]["tok_s_llama_median"].get<double>());
    }
    const double budget = weight_bytes + kv_bytes + 64.0 * 1024 * 1024;
    const double spf = median(s_pf), sdc = median(s_dc), lpf = median(l_pf), ldc = median(l_dc);
    std::printf("| %s | strata | %.1f | %.2f | %.0f%% | %s | %s |\n", type.c_str(), spf, sdc,
                100 * sdc / roofline_tps, strata::format_bytes(median(s_rss)).c_str(),
                strata::format_bytes(budget).c_str());
    std::printf("| %s | llama.cpp | %.1f | %.2f | %.0f%% | | |\n", type.c_str(), lpf, ldc,
                100 * ldc / roofline_tps);
    std::printf("| %s | **ratio** | **%.2fx** | **%.2fx** | | | |\n", type.c_str(), spf / lpf,
                sdc / ldc);
    std::fflush(stdout);
    report[type] = {
        {"strata", {{"prefill_tps", s_pf}, {"decode_tps", s_dc}, {"peak_rss_bytes", s_rss}}},
        {"llamacpp", {{"prefill_tps", l_pf}, {"decode_tps", l_dc}}},
        {"median",
         {{"strata_prefill_tps", spf},
          {"strata_decode_tps", sdc},
          {"llamacpp_prefill_tps", lpf},
          {"llamacpp_decode_tps", ldc},
          {"prefill_ratio", spf / lpf},
          {"decode_ratio", sdc / ldc},
          {"roofline_tps", roofline_tps},
          {"weight_bytes_read_per_token", read_per_token},
          {"rss_budget_bytes", budget}}}};
  }
  if (!o.json_out.empty()) {
    const strata::Status st = strata::write_file_atomic(o.json_out, report.dump(2) + "\n");
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.message().c_str());
      return 1;
    }
  }
  return 0;
}
