// PLAN.json: the "strata.plan/1" document (docs/COST_MODEL.md, "PLAN.json").
#include <cmath>

#include <nlohmann/json.hpp>

#include "strata/partitioner/report.h"

namespace strata::partitioner {
namespace {

using Json = nlohmann::json;

Json number_or_null(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

Json predicted(const CostModel& model, const Objectives& o) {
  Json j = Json::object();
  j["latency_ms"] = o.latency_s * 1e3;
  j["throughput_tok_per_s"] = o.throughput_tok_per_s();
  // What each sequence waits between its tokens with all N in flight: every group takes a
  // turn of N x period, queueing at the slowest stage included (latency_ms is a step alone).
  j["round_trip_ms"] = o.period_s * static_cast<double>(model.settings().sequences) * 1e3;
  j["sequences"] = model.settings().sequences;
  j["micro_batch"] = model.micro_batch();
  j["groups"] = model.n_groups();
  j["energy_j_per_token"] = number_or_null(o.energy_j);
  j["mem_pressure"] = o.mem_pressure;
  return j;
}

Json compact_plan(const CostModel& model, const PlanPoint& plan, size_t index) {
  Json j = Json::object();
  j["front_index"] = index;
  j["predicted"] = predicted(model, plan.objectives);
  Json stages = Json::array();
  for (const Stage& s : plan.stages) {
    stages.push_back(
        {{"device", model.devices()[static_cast<size_t>(s.device)].name},
         {"units", {s.unit_begin, s.unit_end}},
         {"blocks",
          {model.table().block_index(s.unit_begin), model.table().block_index(s.unit_end)}}});
  }
  j["stages"] = std::move(stages);
  return j;
}

Json full_plan(const CostModel& model, const PlanPoint& plan, size_t index) {
  const PlanDetail detail = describe_plan(model, plan);
  Json j = Json::object();
  j["front_index"] = index;
  j["predicted"] = predicted(model, plan.objectives);
  j["predicted"]["time_to_first_token_ms"] = detail.time_to_first_token_ms;
  j["predicted"]["bottleneck_ms"] = detail.bottleneck_ms;
  Json stages = Json::array();
  Json peak = Json::array();
  for (const StageDetail& d : detail.stages) {
    Json s = Json::object();
    s["device"] = d.device_name;
    s["units"] = {d.unit_begin, d.unit_end};
    s["blocks"] = {d.block_begin, d.block_end};
    s["first_unit"] = d.first_unit;
    s["last_unit"] = d.last_unit;
    s["weight_bytes"] = d.cost.weight_bytes;
    s["resident_bytes"] = d.cost.resident_bytes;
    s["streamed_bytes"] = d.cost.streamed_bytes;
    s["kv_bytes"] = d.cost.kv_bytes;
    s["buffer_bytes"] = d.cost.buffer_bytes;
    s["used_bytes"] = d.cost.used_bytes;
    s["mem_budget_bytes"] = d.mem_budget_bytes;
    s["mem_pressure"] = d.cost.mem_pressure;
    s["prefill_ms"] = d.cost.prefill_s * 1e3;
    s["decode_ms"] = d.cost.decode_s * 1e3;
    s["compute_ms"] = d.cost.compute_s * 1e3;
    s["stream_ms"] = d.cost.stream_s * 1e3;
    s["link_out_to"] = d.link_out_to.empty() ? Json(nullptr) : Json(d.link_out_to);
    s["link_out_ms"] = d.link_out_ms;
    s["prefill_link_out_ms"] = d.prefill_link_out_ms;
    stages.push_back(std::move(s));
    peak.push_back({{"device", d.device_name},
                    {"used_bytes", d.cost.used_bytes},
                    {"budget_bytes", d.mem_budget_bytes}});
  }
  j["stages"] = std::move(stages);
  j["peak_memory"] = std::move(peak);
  return j;
}

}  // namespace

std::string plan_json(const PlanRun& run) {
  const CostModel& m = *run.model;
  const Front& front = *run.front;
  Json root = Json::object();
  root["schema"] = "strata.plan/1";

  Json model = Json::object();
  model["name"] = m.table().name;
  model["source"] = m.table().source;
  model["n_units"] = m.n_units();
  model["n_blocks"] = m.table().block_index(m.n_units());
  model["weight_bytes"] = m.table().total_weight_bytes();
  Json units = Json::array();
  for (const auto& u : m.table().units) units.push_back(u.name);
  model["units"] = std::move(units);
  root["model"] = std::move(model);

  const PlanSettings& st = m.settings();
  Json settings = Json::object();
  settings["sequences"] = st.sequences;
  settings["micro_batch"] = m.micro_batch();
  settings["groups"] = m.n_groups();
  settings["prompt_len"] = st.prompt_len;
  settings["context"] = st.context;
  settings["decode_position"] = m.decode_position();
  settings["allow_streaming"] = st.allow_streaming;
  settings["objective"] = objective_name(run.objective);
  Json constraints = Json::object();
  const Constraints& c = run.constraints;
  if (c.max_energy_j_per_token) constraints["max_energy_j_per_token"] = *c.max_energy_j_per_token;
  if (c.max_latency_ms) constraints["max_latency_ms"] = *c.max_latency_ms;
  if (c.min_throughput_tok_per_s)
    constraints["min_throughput_tok_per_s"] = *c.min_throughput_tok_per_s;
  if (c.max_mem_pressure) constraints["max_mem_pressure"] = *c.max_mem_pressure;
  settings["constraints"] = std::move(constraints);
  Json coord = Json::object();
  using Co = PlanSettings::Coordinator;
  coord["kind"] = st.coordinator == Co::kNone     ? "none"
                  : st.coordinator == Co::kDevice ? "device"
                                                  : "external";
  if (st.coordinator == Co::kDevice) {
    coord["device"] = m.devices()[static_cast<size_t>(st.coordinator_device)].name;
  }
  if (st.coordinator == Co::kExternal) {
    coord["rtt_ms"] = st.coordinator_link.rtt_ms;
    coord["mbit_per_s"] = st.coordinator_link.mbit_per_s;
  }
  settings["coordinator"] = std::move(coord);
  root["settings"] = std::move(settings);

  Json devices = Json::array();
  for (const auto& d : m.devices()) {
    Json j = Json::object();
    j["name"] = d.name;
    j["profile"] = d.source;
    j["mem_budget_bytes"] = d.mem_budget_bytes;
    j["mem_read_gb_per_s"] = d.mem_read_gb_per_s;
    j["idle_watts"] = d.idle_watts ? Json(*d.idle_watts) : Json(nullptr);
    j["load_watts"] = d.load_watts ? Json(*d.load_watts) : Json(nullptr);
    devices.push_back(std::move(j));
  }
  root["devices"] = std::move(devices);
  Json links = Json::array();
  for (int a = 0; a < m.n_devices(); ++a) {
    for (int b = a + 1; b < m.n_devices(); ++b) {
      const Link& l = m.links().get(a, b);
      links.push_back({{"a", m.devices()[static_cast<size_t>(a)].name},
                       {"b", m.devices()[static_cast<size_t>(b)].name},
                       {"rtt_ms", l.rtt_ms},
                       {"mbit_per_s", l.mbit_per_s},
                       {"default", l.is_default}});
    }
  }
  root["links"] = std::move(links);

  root["search"] = {{"exact", front.exact},
                    {"seconds", front.stats.seconds},
                    {"states", front.stats.states},
                    {"partial_plans", front.stats.labels},
                    {"front_size", front.plans.size()},
                    {"energy_in_dominance", m.energy_in_dominance()}};

  Json chosen = full_plan(m, front.plans[run.choice.index], run.choice.index);
  chosen["reason"] = run.choice.reason;
  root["chosen"] = std::move(chosen);
  Json plans = Json::array();
  for (size_t i = 0; i < front.plans.size(); ++i)
    plans.push_back(compact_plan(m, front.plans[i], i));
  root["front"] = std::move(plans);

  if (run.scenarios != nullptr) {
    const ScenarioReport& s = *run.scenarios;
    Json sc = Json::object();
    sc["bandwidth_factors"] = s.factors;
    Json cands = Json::array();
    for (size_t i = 0; i < s.candidates.size(); ++i) {
      Json cj = compact_plan(m, s.candidates[i], i);
      cj.erase("front_index");
      cj.erase("predicted");
      Json per = Json::array();
      for (const auto& o : s.values[i]) per.push_back(predicted(m, o));
      cj["per_scenario"] = std::move(per);
      cj["max_regret"] = number_or_null(s.max_regret[i]);
      cands.push_back(std::move(cj));
    }
    sc["candidates"] = std::move(cands);
    sc["best_per_scenario"] = s.best;
    sc["robust"] = s.robust;
    root["scenarios"] = std::move(sc);
  } else {
    root["scenarios"] = nullptr;
  }
  root["notes"] = run.notes;
  return root.dump(2) + "\n";
}

}  // namespace strata::partitioner
