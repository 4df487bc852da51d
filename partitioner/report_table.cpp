// The terminal report of `strata plan`.
#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <set>

#include "strata/base/io.h"
#include "strata/partitioner/report.h"

namespace strata::partitioner {
namespace {

std::string printf_string(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string printf_string(const char* format, ...) {
  char buf[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buf, sizeof buf, format, args);
  va_end(args);
  return buf;
}

std::string energy_text(double j) { return std::isnan(j) ? "n/a" : printf_string("%.3f", j); }

std::string stages_text(const CostModel& m, const PlanPoint& p) {
  std::string s;
  for (const Stage& st : p.stages) {
    if (!s.empty()) s += " > ";
    s += m.devices()[static_cast<size_t>(st.device)].name +
         printf_string("[%d,%d)", st.unit_begin, st.unit_end);
  }
  return s;
}

std::string main_type(const CostModel& m) {
  std::map<std::string, int64_t> bytes;
  for (const auto& u : m.table().units) {
    for (const auto& [t, b] : u.weight_bytes_by_type) bytes[t] += b;
  }
  std::string best = "f32";
  int64_t most = -1;
  for (const auto& [t, b] : bytes) {
    if (b > most) {
      most = b;
      best = t;
    }
  }
  return best;
}

void devices_section(const CostModel& m, std::string* out) {
  const std::string type = main_type(m);
  *out += printf_string("devices\n  %-14s %11s %9s %11s %11s %7s %7s %12s\n", "name", "budget",
                        "read GB/s", ("gemv " + type).c_str(), ("gemm " + type).c_str(), "idle W",
                        "load W", "storage MB/s");
  for (const auto& d : m.devices()) {
    const auto gemv = d.gemv_gflops.find(type);
    const auto gemm = d.gemm_gflops.find(type);
    *out += printf_string("  %-14s %11s %9.1f %11.1f %11.1f %7s %7s %12s\n", d.name.c_str(),
                          format_bytes(static_cast<double>(d.mem_budget_bytes)).c_str(),
                          d.mem_read_gb_per_s, gemv == d.gemv_gflops.end() ? 0.0 : gemv->second,
                          gemm == d.gemm_gflops.end() ? 0.0 : gemm->second,
                          d.idle_watts ? printf_string("%.1f", *d.idle_watts).c_str() : "n/a",
                          d.load_watts ? printf_string("%.1f", *d.load_watts).c_str() : "n/a",
                          d.storage_read_mb_per_s > 0
                              ? printf_string("%.0f", d.storage_read_mb_per_s).c_str()
                              : "n/a");
  }
}

void chosen_section(const PlanRun& run, std::string* out) {
  const CostModel& m = *run.model;
  const PlanPoint& plan = run.front->plans[run.choice.index];
  const PlanDetail d = describe_plan(m, plan);
  const Objectives& o = plan.objectives;
  *out +=
      printf_string("\nchosen plan: front #%zu, %s\n", run.choice.index, run.choice.reason.c_str());
  *out += printf_string(
      "  latency %.2f ms/token, throughput %.2f tok/s with %lld in flight, energy %s J/token, "
      "peak memory pressure %.1f%%\n  time to first token %.1f ms (prompt %lld), bottleneck "
      "%.2f ms\n",
      o.latency_s * 1e3, o.throughput_tok_per_s(), static_cast<long long>(m.settings().sequences),
      energy_text(o.energy_j).c_str(), o.mem_pressure * 100, d.time_to_first_token_ms,
      static_cast<long long>(m.settings().prompt_len), d.bottleneck_ms);
  *out += printf_string("  %-5s %-14s %-9s %-9s %10s %10s %10s %6s %10s %9s %11s\n", "stage",
                        "device", "units", "blocks", "resident", "streamed", "KV cache", "mem%",
                        "prefill ms", "decode ms", "link out ms");
  for (size_t k = 0; k < d.stages.size(); ++k) {
    const StageDetail& s = d.stages[k];
    *out += printf_string(
        "  %-5zu %-14s %-9s %-9s %10s %10s %10s %6.1f %10.2f %9.3f %11s\n", k,
        s.device_name.c_str(), printf_string("[%d,%d)", s.unit_begin, s.unit_end).c_str(),
        printf_string("[%d,%d)", s.block_begin, s.block_end).c_str(),
        format_bytes(static_cast<double>(s.cost.resident_bytes)).c_str(),
        format_bytes(static_cast<double>(s.cost.streamed_bytes)).c_str(),
        format_bytes(static_cast<double>(s.cost.kv_bytes)).c_str(), s.cost.mem_pressure * 100,
        s.cost.prefill_s * 1e3, s.cost.decode_s * 1e3,
        s.link_out_to.empty()
            ? "-"
            : printf_string("%.3f > %s", s.link_out_ms, s.link_out_to.c_str()).c_str());
  }
}

void front_section(const PlanRun& run, size_t max_rows, std::string* out) {
  const CostModel& m = *run.model;
  const Front& f = *run.front;
  *out += printf_string(
      "\nPareto front: %zu plan%s (%s, searched in %.1f ms, %lld partial plans kept)\n",
      f.plans.size(), f.plans.size() == 1 ? "" : "s", f.exact ? "exact" : "approximate (epsilon)",
      f.stats.seconds * 1e3, static_cast<long long>(f.stats.labels));
  const std::string tps =
      printf_string("tok/s@%lld", static_cast<long long>(m.settings().sequences));
  *out += printf_string("  %1s %5s %11s %10s %8s %6s  %s\n", "", "#", "latency ms", tps.c_str(),
                        "J/token", "mem%", "stages (device[units))");
  const std::vector<size_t> rows = rows_to_show(run, max_rows);
  for (const size_t i : rows) {
    const Objectives& o = f.plans[i].objectives;
    *out += printf_string("  %1s %5zu %11.2f %10.2f %8s %6.1f  %s\n",
                          i == run.choice.index ? "*" : "", i, o.latency_s * 1e3,
                          o.throughput_tok_per_s(), energy_text(o.energy_j).c_str(),
                          o.mem_pressure * 100, stages_text(m, f.plans[i]).c_str());
  }
  if (rows.size() < f.plans.size()) {
    *out += printf_string(
        "  (%zu of %zu plans shown: the chosen one, each objective's best and a "
        "spread over latency; all are in -o PLAN.json / --json)\n",
        rows.size(), f.plans.size());
  }
}

void scenario_section(const PlanRun& run, std::string* out) {
  const ScenarioReport& s = *run.scenarios;
  const CostModel& m = *run.model;
  *out += printf_string("\nbandwidth scenarios: every link's bandwidth x");
  for (size_t k = 0; k < s.factors.size(); ++k) {
    *out += printf_string("%s%g", k == 0 ? " " : ", ", s.factors[k]);
  }
  *out += printf_string(" (objective %s)\n", objective_name(run.objective));
  std::set<size_t> shown(s.best.begin(), s.best.end());
  shown.insert(s.robust);
  shown.insert(run.choice.index);
  *out += printf_string("  %-10s", "plan");
  for (const double f : s.factors) {
    *out += printf_string(" %24s", printf_string("x%g: ms, tok/s, J", f).c_str());
  }
  *out += printf_string(" %12s  %s\n", "worst regret", "stages");
  for (const size_t c : shown) {
    const bool nominal = c < run.front->plans.size();
    *out += printf_string("  %-10s", nominal ? printf_string("#%zu", c).c_str()
                                             : printf_string("extra %zu", c).c_str());
    for (const auto& o : s.values[c]) {
      *out += printf_string(
          " %24s", printf_string("%.1f, %.2f, %s", o.latency_s * 1e3, o.throughput_tok_per_s(),
                                 energy_text(o.energy_j).c_str())
                       .c_str());
    }
    *out += printf_string(" %11.1f%%  %s\n", s.max_regret[c] * 100,
                          stages_text(m, s.candidates[c]).c_str());
  }
  for (size_t k = 0; k < s.factors.size(); ++k) {
    *out += printf_string("  best at x%g: %s\n", s.factors[k],
                          stages_text(m, s.candidates[s.best[k]]).c_str());
  }
  *out +=
      printf_string("  stays best: %s (worst regret %.1f%% over the scenarios)\n",
                    stages_text(m, s.candidates[s.robust]).c_str(), s.max_regret[s.robust] * 100);
}

}  // namespace

std::vector<size_t> rows_to_show(const PlanRun& run, size_t max_rows) {
  const Front& f = *run.front;
  const size_t n = f.plans.size();
  std::vector<size_t> all(n);
  for (size_t i = 0; i < n; ++i) all[i] = i;
  if (n <= max_rows) return all;
  std::set<size_t> rows{run.choice.index};
  size_t best[4] = {0, 0, 0, 0};
  for (size_t i = 0; i < n; ++i) {
    const Objectives& o = f.plans[i].objectives;
    if (o.latency_s < f.plans[best[0]].objectives.latency_s) best[0] = i;
    if (o.period_s < f.plans[best[1]].objectives.period_s) best[1] = i;
    if (o.energy_j < f.plans[best[2]].objectives.energy_j) best[2] = i;
    if (o.mem_pressure < f.plans[best[3]].objectives.mem_pressure) best[3] = i;
  }
  for (const size_t b : best) rows.insert(b);
  // Then plans spread evenly over the front's (latency-sorted) order.
  for (size_t k = 0; rows.size() < max_rows && k < max_rows; ++k) {
    rows.insert(k * (n - 1) / std::max<size_t>(1, max_rows - 1));
  }
  return {rows.begin(), rows.end()};
}

std::string plan_text(const PlanRun& run, size_t max_rows) {
  const CostModel& m = *run.model;
  std::string out;
  out += printf_string(
      "strata plan: %s (%d units, %lld blocks, %s of weights) on %d device%s\n"
      "  %lld sequences in flight (%lld groups of %lld), prompt %lld tokens, context %lld tokens, "
      "objective %s%s\n\n",
      m.table().name.c_str(), m.n_units(),
      static_cast<long long>(m.table().block_index(m.n_units())),
      format_bytes(static_cast<double>(m.table().total_weight_bytes())).c_str(), m.n_devices(),
      m.n_devices() == 1 ? "" : "s", static_cast<long long>(m.settings().sequences),
      static_cast<long long>(m.n_groups()), static_cast<long long>(m.micro_batch()),
      static_cast<long long>(m.settings().prompt_len), static_cast<long long>(m.settings().context),
      objective_name(run.objective), m.settings().allow_streaming ? ", streaming allowed" : "");
  devices_section(m, &out);
  chosen_section(run, &out);
  front_section(run, max_rows, &out);
  if (run.scenarios != nullptr) scenario_section(run, &out);
  if (!run.notes.empty()) {
    out += "\nnotes\n";
    for (const auto& n : run.notes) out += "  - " + n + "\n";
  }
  return out;
}

}  // namespace strata::partitioner
