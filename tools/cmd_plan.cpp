// `strata plan`: every Pareto-optimal way to cut a model's layers into pipeline stages on the
// given devices, the plan to use and why, as a table, PLAN.json and an SVG of the front.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <sstream>

#include "commands.h"
#include "strata/base/io.h"
#include "strata/partitioner/cost_model.h"
#include "strata/partitioner/device_caps.h"
#include "strata/partitioner/layer_table.h"
#include "strata/partitioner/links.h"
#include "strata/partitioner/plan.h"
#include "strata/partitioner/report.h"
#include "strata/partitioner/search.h"

namespace strata::tools {
namespace {

namespace sp = strata::partitioner;

struct PlanOptions {
  std::string layers, model;
  std::vector<std::string> devices;
  std::string links_file;
  std::vector<std::string> links;
  std::string default_link;
  std::string coordinator;
  std::string coordinator_link;
  int64_t sequences = 4, prompt_len = 256, context = 2048, micro_batch = 0;
  std::string objective = "knee";
  std::optional<double> max_energy, max_latency_ms, min_throughput, max_mem_pressure;
  bool allow_streaming = false;
  std::string scenarios;
  double epsilon = 0;
  int threads = 0;
  std::string svg, out;
  bool json = false;
  size_t max_rows = 30;
};

Result<std::vector<double>> parse_factors(const std::string& text) {
  std::vector<double> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    if (item.empty() || *end != '\0' || !(v > 0)) {
      return invalid_argument("--bandwidth-scenarios '" + text +
                              "': each entry is a factor > 0 on every link's bandwidth, e.g. "
                              "1,0.5,0.1");
    }
    out.push_back(v);
  }
  if (out.empty()) return invalid_argument("--bandwidth-scenarios needs at least one factor");
  return out;
}

// Prints "searching: placed 40 of 82 units" to stderr once the search has run a second.
class Progress {
 public:
  void operator()(int done, int total) {
    const double t = now_s() - start_;
    if (t < 1.0 || (done < total && t - last_ < 0.25)) return;
    last_ = t;
    std::fprintf(stderr, "\rsearching: placed %d of %d units (%.1f s)", done, total, t);
    shown_ = true;
    if (done == total) std::fprintf(stderr, "\n");
  }
  ~Progress() {
    if (shown_) std::fflush(stderr);
  }

 private:
  double start_ = now_s();
  double last_ = 0;
  bool shown_ = false;
};

Result<sp::LayerTable> load_model(const PlanOptions& o) {
  if (o.layers.empty() == o.model.empty()) {
    return invalid_argument(
        "give the model's costs with exactly one of --layers TABLE.json and "
        "--model FILE.gguf");
  }
  if (!o.layers.empty()) return sp::load_layer_table(o.layers);
  return sp::layer_table_from_gguf(o.model);
}

Result<sp::LinkTable> load_links(const PlanOptions& o, const std::vector<sp::DeviceCaps>& devices) {
  std::vector<std::string> names;
  for (const auto& d : devices) names.push_back(d.name);
  sp::LinkTable table(names, sp::Link{sp::kDefaultLinkRttMs, sp::kDefaultLinkMbitPerS, true});
  if (!o.links_file.empty()) {
    STRATA_ASSIGN_OR_RETURN(const std::string text, read_file(o.links_file));
    STRATA_RETURN_IF_ERROR(sp::apply_links_json(text, o.links_file, &table));
  }
  if (!o.default_link.empty()) {
    STRATA_ASSIGN_OR_RETURN(const sp::Link l,
                            sp::parse_link_value(o.default_link, "--default-link"));
    table.set_default(l);
  }
  for (const auto& spec : o.links) STRATA_RETURN_IF_ERROR(sp::apply_link_flag(spec, &table));
  return table;
}

Status set_coordinator(const PlanOptions& o, const std::vector<sp::DeviceCaps>& devices,
                       sp::PlanSettings* s) {
  using C = sp::PlanSettings::Coordinator;
  if (!o.coordinator_link.empty()) {
    if (!o.coordinator.empty() && o.coordinator != "external") {
      return invalid_argument(
          "--coordinator-link is for a coordinator on another host; it "
          "conflicts with --coordinator " +
          o.coordinator);
    }
    STRATA_ASSIGN_OR_RETURN(s->coordinator_link,
                            sp::parse_link_value(o.coordinator_link, "--coordinator-link"));
    s->coordinator = C::kExternal;
    return {};
  }
  if (o.coordinator.empty() || o.coordinator == "none") return {};
  std::string names;
  for (size_t i = 0; i < devices.size(); ++i) {
    if (devices[i].name == o.coordinator) {
      s->coordinator = C::kDevice;
      s->coordinator_device = static_cast<int>(i);
      return {};
    }
    names += (names.empty() ? "" : ", ") + devices[i].name;
  }
  return invalid_argument("--coordinator '" + o.coordinator + "' is not a device (devices: " +
                          names + "), 'none', or give --coordinator-link RTT_MS,MBIT_PER_S");
}

std::vector<std::string> notes_for(const sp::CostModel& m) {
  std::vector<std::string> notes;
  for (auto& line : sp::devices_too_small(m)) notes.push_back(line + "; no plan uses it");
  std::string no_power;
  for (const auto& d : m.devices()) {
    if (!d.has_power())
      no_power += (no_power.empty() ? "'" : ", '") + d.name + "' (" + d.source + ")";
  }
  if (!no_power.empty()) {
    notes.push_back("energy is left out of the Pareto test and shown as n/a where unknown: " +
                    no_power + " lack power.idle_watts / power.load_watts");
  }
  if (m.settings().coordinator == sp::PlanSettings::Coordinator::kNone) {
    notes.push_back(
        "the coordinator's hops (token in, sampled token out) are not modelled; "
        "give --coordinator NAME or --coordinator-link RTT_MS,MBIT_PER_S");
  }
  int defaults = 0;
  for (int a = 0; a < m.n_devices(); ++a) {
    for (int b = a + 1; b < m.n_devices(); ++b) defaults += m.links().get(a, b).is_default;
  }
  if (defaults > 0) {
    const sp::Link& l = m.links().default_link();
    char buf[160];
    std::snprintf(buf, sizeof buf, "%d device pair%s use%s the default link (%g ms, %g Mbit/s)",
                  defaults, defaults == 1 ? "" : "s", defaults == 1 ? "s" : "", l.rtt_ms,
                  l.mbit_per_s);
    notes.push_back(buf);
  }
  return notes;
}

Status run_plan(const PlanOptions& o) {
  STRATA_ASSIGN_OR_RETURN(sp::LayerTable table, load_model(o));
  if (o.devices.empty()) return invalid_argument("give at least one --device NAME=PROFILE.json");
  std::vector<sp::DeviceCaps> devices;
  for (const auto& spec : o.devices) {
    STRATA_ASSIGN_OR_RETURN(sp::DeviceCaps d, sp::load_device(spec));
    devices.push_back(std::move(d));
  }
  STRATA_ASSIGN_OR_RETURN(sp::LinkTable links, load_links(o, devices));
  sp::PlanSettings settings;
  settings.sequences = o.sequences;
  settings.micro_batch = o.micro_batch;
  settings.prompt_len = o.prompt_len;
  settings.context = o.context;
  settings.allow_streaming = o.allow_streaming;
  STRATA_RETURN_IF_ERROR(set_coordinator(o, devices, &settings));
  STRATA_ASSIGN_OR_RETURN(const sp::Objective objective, sp::parse_objective(o.objective));
  sp::Constraints constraints;
  constraints.max_energy_j_per_token = o.max_energy;
  constraints.max_latency_ms = o.max_latency_ms;
  constraints.min_throughput_tok_per_s = o.min_throughput;
  constraints.max_mem_pressure = o.max_mem_pressure;
  std::vector<double> factors;
  if (!o.scenarios.empty()) {
    STRATA_ASSIGN_OR_RETURN(factors, parse_factors(o.scenarios));
  }
  STRATA_ASSIGN_OR_RETURN(
      const sp::CostModel model,
      sp::CostModel::build(std::move(table), std::move(devices), std::move(links), settings));
  std::vector<std::string> notes = notes_for(model);
  if (!o.json) {
    for (const auto& n : notes) {
      if (n.find("too small") != std::string::npos)
        std::fprintf(stderr, "strata: warning: %s\n", n.c_str());
    }
  }

  sp::SearchOptions options;
  options.epsilon = o.epsilon;
  options.threads = o.threads;
  Progress progress;
  options.progress = [&progress](int done, int total) { progress(done, total); };
  auto front = sp::search_front(model, options);
  if (!front.ok() && front.status().code() == StatusCode::kResourceExhausted && o.epsilon <= 0) {
    notes.push_back("the exact search outgrew its budget (" + front.status().message() +
                    "); this front is approximate, epsilon 0.01");
    options.epsilon = 0.01;
    front = sp::search_front(model, options);
  }
  if (!front.ok()) return front.status();
  if (front->plans.empty()) return sp::diagnose_infeasible(model);
  if (!front->exact) {
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "approximate front: partial plans within a factor %g of a kept one in every "
                  "objective were dropped",
                  1 + options.epsilon);
    notes.push_back(buf);
  }
  STRATA_ASSIGN_OR_RETURN(sp::Choice choice, sp::choose_plan(*front, objective, constraints,
                                                             model.energy_in_dominance()));
  std::unique_ptr<sp::ScenarioReport> scenarios;
  if (!factors.empty()) {
    STRATA_ASSIGN_OR_RETURN(
        sp::ScenarioReport r,
        sp::bandwidth_scenarios(model, *front, factors, objective, constraints, options));
    scenarios = std::make_unique<sp::ScenarioReport>(std::move(r));
  }
  sp::PlanRun run;
  run.model = &model;
  run.front = &*front;
  run.objective = objective;
  run.constraints = constraints;
  run.choice = choice;
  run.scenarios = scenarios.get();
  run.notes = notes;

  const std::string json = sp::plan_json(run);
  if (!o.out.empty()) STRATA_RETURN_IF_ERROR(write_file_atomic(o.out, json));
  if (!o.svg.empty()) STRATA_RETURN_IF_ERROR(write_file_atomic(o.svg, sp::front_svg(run)));
  if (o.json) {
    std::fputs(json.c_str(), stdout);
  } else {
    std::fputs(sp::plan_text(run, o.max_rows).c_str(), stdout);
    if (!o.out.empty()) std::printf("\nwrote %s\n", o.out.c_str());
    if (!o.svg.empty()) std::printf("wrote %s\n", o.svg.c_str());
  }
  return {};
}

}  // namespace

void add_plan_command(CLI::App& root, Action& action) {
  auto o = std::make_shared<PlanOptions>();
  CLI::App* cmd = root.add_subcommand(
      "plan",
      "Find every Pareto-optimal way to cut a model's layers into pipeline stages on an ordered\n"
      "subset of the devices (per-token latency, throughput with N sequences in flight, energy\n"
      "per token, peak memory pressure), pick one and say why. The cost model and the file\n"
      "formats are in docs/COST_MODEL.md.");
  cmd->add_option("--layers", o->layers,
                  "the model as a layer table (strata.layers/1 JSON); works for any DNN");
  cmd->add_option("--model", o->model, "the model as a GGUF file (its layer costs are read)");
  cmd->add_option("--device", o->devices,
                  "NAME=PROFILE.json[,mem=BYTES] or PROFILE.json[,mem=BYTES], once per device; "
                  "mem= overrides memory.available_bytes as the budget")
      ->required();
  cmd->add_option("--links", o->links_file,
                  "links file (strata.links/1): a default and per-pair rtt_ms, mbit_per_s");
  cmd->add_option("--link", o->links,
                  "A-B=RTT_MS,MBIT_PER_S for one pair (both directions), repeatable");
  cmd->add_option("--default-link", o->default_link,
                  "RTT_MS,MBIT_PER_S for pairs nobody named (built-in: 1 ms, 1000 Mbit/s)");
  cmd->add_option("--coordinator", o->coordinator,
                  "the device the coordinator runs on (its token hops are costed), or 'none' "
                  "(default: not modelled)");
  cmd->add_option("--coordinator-link", o->coordinator_link,
                  "RTT_MS,MBIT_PER_S to a coordinator on another host");
  cmd->add_option("--sequences", o->sequences, "sequences in flight (default 4)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--micro-batch", o->micro_batch,
                  "sequences batched into one pipeline step; must divide --sequences (default: "
                  "the largest divisor of N not above N / devices, so groups keep stages busy)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--prompt-len", o->prompt_len, "prompt tokens prefilled at once (default 256)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cmd->add_option("--context", o->context,
                  "KV cache positions reserved per sequence (default 2048)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cmd->add_option("--objective", o->objective,
                  "which point to choose: latency, throughput, energy or knee (default knee)");
  cmd->add_option("--max-energy-j-per-token", o->max_energy,
                  "only plans using at most this energy per token (J)");
  cmd->add_option("--max-latency-ms", o->max_latency_ms, "only plans at most this slow per token");
  cmd->add_option("--min-throughput", o->min_throughput,
                  "only plans with at least this many tokens/s");
  cmd->add_option("--max-mem-pressure", o->max_mem_pressure,
                  "only plans whose fullest device is at most this fraction of its budget (0..1)");
  cmd->add_flag("--allow-streaming", o->allow_streaming,
                "let a stage exceed its memory budget by streaming weights from storage");
  cmd->add_option("--bandwidth-scenarios", o->scenarios,
                  "factors on every link's bandwidth (e.g. 1,0.5,0.1): re-plan under each and "
                  "report the plan that stays best");
  cmd->add_option("--epsilon", o->epsilon,
                  "0 for the exact front (default); E > 0 keeps only partial plans more than a "
                  "factor 1+E apart, for very large searches")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--threads", o->threads,
                  "threads for the search (default 0: every hardware thread); the front does "
                  "not depend on it")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--svg", o->svg, "write an SVG of the front here");
  cmd->add_option("-o,--output", o->out, "write PLAN.json (strata.plan/1) here");
  cmd->add_flag("--json", o->json, "print PLAN.json to stdout instead of the tables");
  cmd->add_option("--max-rows", o->max_rows, "front rows in the table (default 30)")
      ->check(CLI::PositiveNumber);
  cmd->callback([o, &action] { action = [o] { return run_plan(*o); }; });
}

}  // namespace strata::tools
