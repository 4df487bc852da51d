#include "strata/partitioner/plan.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <limits>

#include "strata/base/io.h"

namespace strata::partitioner {
namespace {

std::string fmt(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* format, ...) {
  char buf[64];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buf, sizeof buf, format, args);
  va_end(args);
  return buf;
}

// The best value of each objective over a set of plans, for the knee: a plan's distance to
// the ideal point adds, per objective, its excess over the best relative to the best
// (latency, period, energy), or in budget fractions for memory pressure, which already is
// one. Scaling by the best rather than by the front's range keeps an objective whose values
// barely differ (memory pressure 3.3% .. 4.9%) from weighing as much as one that doubles.
struct Scale {
  std::array<double, 4> best{INFINITY, INFINITY, INFINITY, INFINITY};
  bool energy = false;

  static std::array<double, 4> values(const Objectives& o) {
    return {o.latency_s, o.period_s, o.energy_j, o.mem_pressure};
  }
  void add(const Objectives& o) {
    const auto v = values(o);
    for (size_t k = 0; k < 4; ++k) best[k] = std::min(best[k], v[k]);
  }
  double distance(const Objectives& o) const {
    const auto v = values(o);
    double sum = 0;
    for (size_t k = 0; k < 4; ++k) {
      if (k == 2 && !energy) continue;
      const double x = k == 3 ? v[k] - best[k] : best[k] > 0 ? v[k] / best[k] - 1.0 : 0.0;
      sum += x * x;
    }
    return std::sqrt(sum);
  }
};

// Lexicographic keys per objective (all minimised): the objective first, then the others.
std::array<double, 4> key(const Objectives& o, Objective objective) {
  const double e = std::isnan(o.energy_j) ? INFINITY : o.energy_j;
  switch (objective) {
    case Objective::kThroughput: return {o.period_s, o.latency_s, e, o.mem_pressure};
    case Objective::kEnergy: return {e, o.latency_s, o.period_s, o.mem_pressure};
    default: return {o.latency_s, o.period_s, e, o.mem_pressure};
  }
}

std::string describe_constraints(const Constraints& c) {
  std::string s;
  auto add = [&s](const std::string& part) { s += (s.empty() ? "" : ", ") + part; };
  if (c.max_energy_j_per_token)
    add("--max-energy-j-per-token " + fmt("%g", *c.max_energy_j_per_token));
  if (c.max_latency_ms) add("--max-latency-ms " + fmt("%g", *c.max_latency_ms));
  if (c.min_throughput_tok_per_s) add("--min-throughput " + fmt("%g", *c.min_throughput_tok_per_s));
  if (c.max_mem_pressure) add("--max-mem-pressure " + fmt("%g", *c.max_mem_pressure));
  return s;
}

// Why no plan meets `c`: the bound no plan reaches alone, with the best value on the front.
std::string unmet(const Front& front, const Constraints& c) {
  double least_energy = INFINITY, least_latency = INFINITY, most_tps = 0, least_pressure = INFINITY;
  for (const auto& p : front.plans) {
    const Objectives& o = p.objectives;
    if (!std::isnan(o.energy_j)) least_energy = std::min(least_energy, o.energy_j);
    least_latency = std::min(least_latency, o.latency_s * 1e3);
    most_tps = std::max(most_tps, o.throughput_tok_per_s());
    least_pressure = std::min(least_pressure, o.mem_pressure);
  }
  if (c.max_energy_j_per_token && !(least_energy <= *c.max_energy_j_per_token)) {
    return "no plan meets --max-energy-j-per-token " + fmt("%g", *c.max_energy_j_per_token) +
           (std::isfinite(least_energy)
                ? ": the least energy of any plan is " + fmt("%.4g", least_energy) + " J/token"
                : ": energy is unknown (no power figures)");
  }
  if (c.max_latency_ms && least_latency > *c.max_latency_ms) {
    return "no plan meets --max-latency-ms " + fmt("%g", *c.max_latency_ms) +
           ": the lowest latency of any plan is " + fmt("%.4g", least_latency) + " ms";
  }
  if (c.min_throughput_tok_per_s && most_tps < *c.min_throughput_tok_per_s) {
    return "no plan meets --min-throughput " + fmt("%g", *c.min_throughput_tok_per_s) +
           ": the highest throughput of any plan is " + fmt("%.4g", most_tps) + " tok/s";
  }
  if (c.max_mem_pressure && least_pressure > *c.max_mem_pressure) {
    return "no plan meets --max-mem-pressure " + fmt("%g", *c.max_mem_pressure) +
           ": the lowest memory pressure of any plan is " + fmt("%.3g", least_pressure);
  }
  return "no plan meets " + describe_constraints(c) + " together (each bound alone is met)";
}

}  // namespace

Result<Objective> parse_objective(const std::string& text) {
  if (text == "latency") return Objective::kLatency;
  if (text == "throughput") return Objective::kThroughput;
  if (text == "energy") return Objective::kEnergy;
  if (text == "knee") return Objective::kKnee;
  return invalid_argument("--objective '" + text +
                          "' is not one of latency, throughput, energy, knee");
}

const char* objective_name(Objective objective) {
  switch (objective) {
    case Objective::kLatency: return "latency";
    case Objective::kThroughput: return "throughput";
    case Objective::kEnergy: return "energy";
    case Objective::kKnee: return "knee";
  }
  return "knee";
}

bool meets(const Objectives& o, const Constraints& c) {
  if (c.max_energy_j_per_token && !(o.energy_j <= *c.max_energy_j_per_token)) return false;
  if (c.max_latency_ms && o.latency_s * 1e3 > *c.max_latency_ms) return false;
  if (c.min_throughput_tok_per_s && o.throughput_tok_per_s() < *c.min_throughput_tok_per_s) {
    return false;
  }
  if (c.max_mem_pressure && o.mem_pressure > *c.max_mem_pressure) return false;
  return true;
}

Result<Choice> choose_plan(const Front& front, Objective objective, const Constraints& constraints,
                           bool energy_known) {
  if (front.plans.empty())
    return invalid_argument("the front is empty: there is no plan to choose");
  if (objective == Objective::kEnergy && !energy_known) {
    return invalid_argument(
        "--objective energy needs power figures (power.idle_watts, power.load_watts) on every "
        "device");
  }
  Choice choice;
  for (size_t i = 0; i < front.plans.size(); ++i) {
    if (meets(front.plans[i].objectives, constraints)) choice.eligible.push_back(i);
  }
  if (choice.eligible.empty()) return invalid_argument(unmet(front, constraints));
  const std::string among = std::to_string(choice.eligible.size()) + " eligible plan" +
                            (choice.eligible.size() == 1 ? "" : "s");
  if (objective == Objective::kKnee) {
    Scale scale;
    scale.energy = energy_known;
    for (const size_t i : choice.eligible) scale.add(front.plans[i].objectives);
    double best = INFINITY;
    for (const size_t i : choice.eligible) {
      const double dist = scale.distance(front.plans[i].objectives);
      if (dist < best) {
        best = dist;
        choice.index = i;
      }
    }
    choice.reason = "the knee: closest to the ideal point of the " + among +
                    ", each objective (latency, 1/throughput, " + (energy_known ? "energy, " : "") +
                    "memory pressure) measured by its excess over the best (distance " +
                    fmt("%.3f", best) + ")";
  } else {
    choice.index = choice.eligible.front();
    for (const size_t i : choice.eligible) {
      if (key(front.plans[i].objectives, objective) <
          key(front.plans[choice.index].objectives, objective)) {
        choice.index = i;
      }
    }
    const char* what = objective == Objective::kLatency      ? "the lowest per-token latency"
                       : objective == Objective::kThroughput ? "the highest throughput"
                                                             : "the least energy per token";
    choice.reason = std::string(what) + " of the " + among;
  }
  if (!constraints.empty()) choice.reason += " under " + describe_constraints(constraints);
  return choice;
}

PlanDetail describe_plan(const CostModel& model, const PlanPoint& plan) {
  PlanDetail out;
  out.objectives = plan.objectives;
  const double p = static_cast<double>(model.settings().prompt_len);
  double ttft_s = 0, bottleneck_s = 0;
  if (!plan.stages.empty()) {
    const int first = plan.stages.front().device;
    if (const Link* l = model.coordinator_link(first)) {
      ttft_s += l->transfer_s(p * model.boundary_bytes(0));
      bottleneck_s = l->serialization_s(model.step_boundary_bytes(0));
    }
  }
  for (size_t k = 0; k < plan.stages.size(); ++k) {
    const Stage& s = plan.stages[k];
    StageDetail d;
    d.device = s.device;
    d.device_name = model.devices()[static_cast<size_t>(s.device)].name;
    d.unit_begin = s.unit_begin;
    d.unit_end = s.unit_end;
    d.block_begin = static_cast<int>(model.table().block_index(s.unit_begin));
    d.block_end = static_cast<int>(model.table().block_index(s.unit_end));
    d.first_unit = model.table().units[static_cast<size_t>(s.unit_begin)].name;
    d.last_unit = model.table().units[static_cast<size_t>(s.unit_end - 1)].name;
    d.cost = model.stage(s.device, s.unit_begin, s.unit_end);
    d.mem_budget_bytes = model.devices()[static_cast<size_t>(s.device)].mem_budget_bytes;
    ttft_s += d.cost.prefill_s;
    bottleneck_s = std::max(bottleneck_s, d.cost.decode_s);
    if (k + 1 < plan.stages.size()) {
      const int next = plan.stages[k + 1].device;
      const Link& l = model.links().get(s.device, next);
      const double bytes = model.boundary_bytes(s.unit_end);
      d.link_out_ms = model.link_s(s.device, next, s.unit_end) * 1e3;
      d.prefill_link_out_ms = l.transfer_s(p * bytes) * 1e3;
      d.link_out_to = model.devices()[static_cast<size_t>(next)].name;
      bottleneck_s = std::max(bottleneck_s, model.link_serialization_s(s.device, next, s.unit_end));
    } else if (model.settings().coordinator != PlanSettings::Coordinator::kNone) {
      d.link_out_to = "coordinator";
      if (const Link* l = model.coordinator_link(s.device)) {
        const double bytes = model.step_boundary_bytes(model.n_units());
        d.link_out_ms = l->transfer_s(bytes) * 1e3;
        d.prefill_link_out_ms = d.link_out_ms;  // only the sampled tokens go back
        bottleneck_s = std::max(bottleneck_s, l->serialization_s(bytes));
      }
    }
    ttft_s += d.prefill_link_out_ms * 1e-3;
    out.stages.push_back(std::move(d));
  }
  out.time_to_first_token_ms = ttft_s * 1e3;
  out.bottleneck_ms = bottleneck_s * 1e3;
  return out;
}

Result<ScenarioReport> bandwidth_scenarios(const CostModel& model, const Front& nominal,
                                           const std::vector<double>& factors, Objective objective,
                                           const Constraints& constraints,
                                           const SearchOptions& options) {
  ScenarioReport report;
  report.factors = factors;
  report.candidates = nominal.plans;
  std::vector<CostModel> models;
  std::vector<Scale> scales;
  std::vector<double> best_score;
  auto score = [&](size_t s, const Objectives& o) {
    switch (objective) {
      case Objective::kLatency: return o.latency_s;
      case Objective::kThroughput: return o.period_s;
      case Objective::kEnergy: return o.energy_j;
      case Objective::kKnee: return scales[s].distance(o);
    }
    return o.latency_s;
  };
  for (size_t s = 0; s < factors.size(); ++s) {
    const double f = factors[s];
    if (!(f > 0))
      return invalid_argument("--bandwidth-scenarios: factor " + fmt("%g", f) + " must be > 0");
    PlanSettings settings = model.settings();
    settings.coordinator_link.mbit_per_s *= f;
    STRATA_ASSIGN_OR_RETURN(CostModel m,
                            CostModel::build(model.table(), model.devices(),
                                             model.links().scaled_bandwidth(f), settings));
    const std::string where = "bandwidth scenario x" + fmt("%g", f);
    auto front = search_front(m, options);
    if (!front.ok()) return front.status().with_context(where);
    auto choice = choose_plan(*front, objective, constraints, m.energy_in_dominance());
    if (!choice.ok()) return choice.status().with_context(where);
    Scale scale;
    scale.energy = m.energy_in_dominance();
    for (const size_t i : choice->eligible) scale.add(front->plans[i].objectives);
    scales.push_back(scale);
    const PlanPoint& best = front->plans[choice->index];
    size_t at = report.candidates.size();
    for (size_t c = 0; c < report.candidates.size(); ++c) {
      const auto& st = report.candidates[c].stages;
      if (st.size() == best.stages.size() &&
          std::equal(st.begin(), st.end(), best.stages.begin(), [](const Stage& a, const Stage& b) {
            return a.device == b.device && a.unit_begin == b.unit_begin && a.unit_end == b.unit_end;
          })) {
        at = c;
        break;
      }
    }
    if (at == report.candidates.size()) report.candidates.push_back(best);
    report.best.push_back(at);
    models.push_back(std::move(m));
  }
  report.values.assign(report.candidates.size(), {});
  report.max_regret.assign(report.candidates.size(), 0.0);
  for (size_t c = 0; c < report.candidates.size(); ++c) {
    for (size_t s = 0; s < models.size(); ++s) {
      auto o = models[s].evaluate(report.candidates[c].stages);
      STRATA_CHECK_MSG(o.ok(), o.status().to_string());  // links never change feasibility
      report.values[c].push_back(*o);
    }
  }
  for (size_t s = 0; s < models.size(); ++s) {
    best_score.push_back(score(s, report.values[report.best[s]][s]));
  }
  for (size_t c = 0; c < report.candidates.size(); ++c) {
    double worst = 0;
    for (size_t s = 0; s < models.size(); ++s) {
      const Objectives& o = report.values[c][s];
      double regret = std::numeric_limits<double>::infinity();
      if (meets(o, constraints)) {
        regret = objective == Objective::kKnee ? score(s, o) - best_score[s]
                                               : score(s, o) / best_score[s] - 1.0;
      }
      worst = std::max(worst, regret);
    }
    report.max_regret[c] = worst;
    if (worst < report.max_regret[report.robust]) report.robust = c;
  }
  return report;
}

std::vector<std::string> devices_too_small(const CostModel& model) {
  std::vector<std::string> out;
  for (int j = 0; j < model.n_devices(); ++j) {
    bool any = false;
    int smallest = 0;
    for (int u = 0; u < model.n_units(); ++u) {
      any = any || model.stage(j, u, u + 1).feasible;
      if (model.stage(j, u, u + 1).short_bytes <
          model.stage(j, smallest, smallest + 1).short_bytes) {
        smallest = u;
      }
    }
    if (any) continue;
    const DeviceCaps& d = model.devices()[static_cast<size_t>(j)];
    const StageCost& s = model.stage(j, smallest, smallest + 1);
    out.push_back("device '" + d.name + "' (" + d.source + ") is too small for any unit: the " +
                  "smallest, '" + model.table().units[static_cast<size_t>(smallest)].name +
                  "', needs " +
                  format_bytes(static_cast<double>(s.weight_bytes + s.kv_bytes + s.buffer_bytes)) +
                  " (weights " + format_bytes(static_cast<double>(s.weight_bytes)) +
                  " + KV cache " + format_bytes(static_cast<double>(s.kv_bytes)) + " + buffers " +
                  format_bytes(static_cast<double>(s.buffer_bytes)) + ") against a budget of " +
                  format_bytes(static_cast<double>(d.mem_budget_bytes)) + ", short by " +
                  format_bytes(static_cast<double>(s.short_bytes)));
  }
  return out;
}

Status diagnose_infeasible(const CostModel& model) {
  const PlanSettings& st = model.settings();
  const double positions = static_cast<double>(st.context) * static_cast<double>(st.sequences);
  double weights = 0, kv = 0;
  for (const auto& u : model.table().units) {
    weights += static_cast<double>(u.weight_bytes);
    kv += static_cast<double>(u.kv_bytes_per_token) * positions;
  }
  double total = 0, largest = 0;
  std::string largest_name;
  for (const auto& d : model.devices()) {
    total += static_cast<double>(d.mem_budget_bytes);
    if (static_cast<double>(d.mem_budget_bytes) > largest) {
      largest = static_cast<double>(d.mem_budget_bytes);
      largest_name = d.name;
    }
  }
  const std::string hint = std::string("; try ") +
                           (st.allow_streaming ? "" : "--allow-streaming, ") +
                           "fewer --sequences, a smaller --context or more devices";
  const std::string kv_what = "KV cache " + format_bytes(kv) + " for " +
                              std::to_string(st.context) + " tokens x " +
                              std::to_string(st.sequences) + " sequences";
  const std::string budgets =
      model.n_devices() == 1
          ? "the budget of '" + largest_name + "' is " + format_bytes(largest)
          : "the " + std::to_string(model.n_devices()) + " devices' budgets total " +
                format_bytes(total) + " and the largest, '" + largest_name + "', is " +
                format_bytes(largest);
  const double need = st.allow_streaming ? kv : weights + kv;
  if (need > total) {
    return resource_exhausted(
        "the model fits nowhere: it needs " + format_bytes(need) + " (" +
        (st.allow_streaming ? "" : "weights " + format_bytes(weights) + " + ") + kv_what + "); " +
        budgets + ", short by " + format_bytes(need - total) + hint);
  }
  // Some unit that no device can hold on its own.
  for (int u = 0; u < model.n_units(); ++u) {
    int64_t least_short = std::numeric_limits<int64_t>::max();
    for (int j = 0; j < model.n_devices(); ++j) {
      const StageCost& s = model.stage(j, u, u + 1);
      least_short = s.feasible ? 0 : std::min(least_short, s.short_bytes);
    }
    if (least_short > 0) {
      return resource_exhausted(
          "the model fits nowhere: unit '" + model.table().units[static_cast<size_t>(u)].name +
          "' alone fits on no device (" + budgets + "); the closest device is short by " +
          format_bytes(static_cast<double>(least_short)) + hint);
    }
  }
  return resource_exhausted("no split fits: the devices hold " + format_bytes(total) +
                            " in all against " + format_bytes(need) +
                            " needed, but the units do not pack into contiguous stages on "
                            "distinct devices (" +
                            budgets + ")" + hint);
}

}  // namespace strata::partitioner
