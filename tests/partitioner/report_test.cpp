#include "strata/partitioner/report.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "strata/base/io.h"
#include "test_util.h"

namespace strata::partitioner {
namespace {

// The 1.1B shape over the Pi 5, Orin Nano and laptop fixtures on 100 Mbit/s links.
struct Fixture {
  CostModel model;
  Front front;
  Choice choice;

  static Fixture make(bool power = true) {
    auto table = load_layer_table(testing::fixture("llama-1.1b-q4_0.json"));
    STRATA_CHECK(table.ok());
    std::vector<DeviceCaps> devices;
    for (const char* f : {"pi5.json", "orin-nano.json", "laptop.json"}) {
      auto d = load_device(testing::fixture(f));
      STRATA_CHECK(d.ok());
      devices.push_back(*d);
    }
    if (!power) devices[0].idle_watts.reset();
    LinkTable links({"pi5", "orin-nano", "laptop"}, Link{});
    auto text = read_file(testing::fixture("links-100mbit.json"));
    STRATA_CHECK(text.ok() && apply_links_json(*text, "links", &links).ok());
    PlanSettings s;
    s.coordinator = PlanSettings::Coordinator::kDevice;
    s.coordinator_device = 2;
    auto m = CostModel::build(*table, devices, links, s);
    STRATA_CHECK(m.ok());
    auto f = search_front(*m);
    STRATA_CHECK(f.ok());
    auto c = choose_plan(*f, Objective::kThroughput, {}, m->energy_in_dominance());
    STRATA_CHECK(c.ok());
    return {std::move(m).value(), std::move(f).value(), std::move(c).value()};
  }
  PlanRun run() const {
    PlanRun r;
    r.model = &model;
    r.front = &front;
    r.objective = Objective::kThroughput;
    r.choice = choice;
    r.notes = {"a note"};
    return r;
  }
};

TEST(Report, PlanJsonCarriesTheChosenStagesAndTheFront) {
  const Fixture fx = Fixture::make();
  const auto j = nlohmann::json::parse(plan_json(fx.run()));
  EXPECT_EQ(j["schema"], "strata.plan/1");
  EXPECT_EQ(j["model"]["n_units"], 18);
  EXPECT_EQ(j["model"]["n_blocks"], 16);
  EXPECT_EQ(j["model"]["units"][0], "token_embd");
  EXPECT_EQ(j["front"].size(), fx.front.plans.size());
  EXPECT_EQ(j["chosen"]["front_index"], fx.choice.index);
  const PlanPoint& chosen = fx.front.plans[fx.choice.index];
  const auto& stages = j["chosen"]["stages"];
  ASSERT_EQ(stages.size(), chosen.stages.size());
  int next_unit = 0;
  for (size_t k = 0; k < stages.size(); ++k) {
    EXPECT_EQ(stages[k]["units"][0], next_unit);
    next_unit = stages[k]["units"][1];
    EXPECT_EQ(stages[k]["device"],
              fx.model.devices()[static_cast<size_t>(chosen.stages[k].device)].name);
    EXPECT_GT(stages[k]["decode_ms"].get<double>(), 0);
    EXPECT_LE(stages[k]["used_bytes"].get<int64_t>(), stages[k]["mem_budget_bytes"].get<int64_t>());
  }
  EXPECT_EQ(next_unit, 18);
  EXPECT_EQ(stages.back()["link_out_to"], "coordinator");
  EXPECT_DOUBLE_EQ(j["chosen"]["predicted"]["latency_ms"].get<double>(),
                   chosen.objectives.latency_s * 1e3);
  // Each sequence's turn with all N in flight: N x the period, never shorter than a step alone.
  const auto& pr = j["chosen"]["predicted"];
  EXPECT_DOUBLE_EQ(pr["round_trip_ms"].get<double>(),
                   chosen.objectives.period_s * pr["sequences"].get<double>() * 1e3);
  EXPECT_GE(pr["round_trip_ms"].get<double>(), pr["latency_ms"].get<double>() * (1 - 1e-12));
  EXPECT_EQ(j["settings"]["coordinator"]["device"], "laptop");
  EXPECT_EQ(j["links"].size(), 3u);
  EXPECT_EQ(j["search"]["exact"], true);
  EXPECT_EQ(j["notes"][0], "a note");
  EXPECT_TRUE(j["scenarios"].is_null());
}

TEST(Report, UnknownEnergyIsNullInJson) {
  const Fixture fx = Fixture::make(false);
  const auto j = nlohmann::json::parse(plan_json(fx.run()));
  bool some_null = false, some_known = false;
  for (const auto& p : j["front"]) {
    some_null = some_null || p["predicted"]["energy_j_per_token"].is_null();
    some_known = some_known || !p["predicted"]["energy_j_per_token"].is_null();
  }
  EXPECT_TRUE(some_null);   // plans that use the Pi
  EXPECT_TRUE(some_known);  // plans that do not
  EXPECT_EQ(j["search"]["energy_in_dominance"], false);
}

TEST(Report, TextShowsTheChoiceAndBoundedRows) {
  const Fixture fx = Fixture::make();
  const PlanRun run = fx.run();
  const std::string text = plan_text(run, 8);
  EXPECT_NE(text.find("chosen plan: front #" + std::to_string(fx.choice.index)), std::string::npos);
  EXPECT_NE(text.find("the highest throughput"), std::string::npos);
  EXPECT_NE(text.find("Pareto front: " + std::to_string(fx.front.plans.size()) + " plans (exact"),
            std::string::npos);
  EXPECT_NE(text.find("  - a note"), std::string::npos);
  const auto rows = rows_to_show(run, 8);
  ASSERT_LE(rows.size(), 8u);
  EXPECT_TRUE(std::find(rows.begin(), rows.end(), fx.choice.index) != rows.end());
  EXPECT_TRUE(std::find(rows.begin(), rows.end(), size_t{0}) != rows.end());  // lowest latency
  EXPECT_TRUE(std::is_sorted(rows.begin(), rows.end()));
  EXPECT_EQ(rows_to_show(run, 1000).size(), fx.front.plans.size());
}

TEST(Report, SvgHasAPointPerPlanAxesAndTheChoice) {
  const Fixture fx = Fixture::make();
  const std::string svg = front_svg(fx.run());
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  size_t points = 0;
  for (size_t at = svg.find("r=\"4.5\""); at != std::string::npos;
       at = svg.find("r=\"4.5\"", at + 1)) {
    ++points;
  }
  EXPECT_EQ(points, fx.front.plans.size());
  EXPECT_NE(svg.find("per-token decode latency (ms)"), std::string::npos);
  EXPECT_NE(svg.find("throughput with 4 sequences in flight (tokens/s)"), std::string::npos);
  EXPECT_NE(svg.find("energy per token"), std::string::npos);
  EXPECT_NE(svg.find("chosen #" + std::to_string(fx.choice.index)), std::string::npos);
  EXPECT_NE(svg.find("stroke=\"#d62728\""), std::string::npos);
}

}  // namespace
}  // namespace strata::partitioner
