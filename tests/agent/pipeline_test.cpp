// strata run == strata generate, bit for bit: agents in separate processes on loopback, 1, 2
// and 3 stages, F32 and Q4_0, different thread counts per agent, several sequences.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "process.h"
#include "strata/agent/coordinator.h"
#include "strata/model/engine.h"
#include "strata/model/model.h"
#include "strata/model/weight_store.h"

namespace strata::agent {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("strata_pipeline_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(reinterpret_cast<uintptr_t>(this)));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string synth(const fs::path& dir, model::DType type) {
  model::SynthSpec s;
  s.dim = 128;
  s.n_layers = 5;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.ffn_dim = 256;
  s.vocab = 400;
  s.type = type;
  s.seed = 11;
  const std::string p =
      (dir / ("m_" + std::string(*model::dtype_name(static_cast<uint32_t>(type))) + ".gguf"))
          .string();
  EXPECT_TRUE(model::synth_model(s, p, {}).ok());
  return p;
}

model::GenerateResult reference(const std::string& path, const std::vector<int32_t>& prompt,
                                int64_t n, const model::SamplerOptions& so) {
  auto m = model::Model::load(path);
  EXPECT_TRUE(m.ok());
  model::EngineOptions eo;
  eo.n_threads = 2;
  eo.ctx = static_cast<int64_t>(prompt.size()) + n;
  auto e = model::Engine::create(**m, eo);
  EXPECT_TRUE(e.ok());
  model::GenerateOptions go;
  go.prompt = prompt;
  go.n_gen = n;
  go.sampler = so;
  auto r = model::generate(**e, go, {});
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return std::move(r).value();
}

// Starts agents dev0, dev1, ... (dev i with threads(i) threads), each with its own cache in
// `dir`, and names them in `o->agents` and `names`. Returns the processes; fewer than `n` when
// one did not start.
std::vector<std::unique_ptr<testing::ChildProcess>> start_agents(const fs::path& dir, int n,
                                                                 int (*threads)(int), RunOptions* o,
                                                                 std::vector<std::string>* names) {
  std::vector<std::unique_ptr<testing::ChildProcess>> agents;
  for (int i = 0; i < n; ++i) {
    std::string ep;
    const std::string name = "dev" + std::to_string(i);
    auto a = testing::start_agent(STRATA_BIN, name, threads(i),
                                  (dir / ("cache" + std::to_string(i))).string(), &ep);
    if (a == nullptr) break;
    agents.push_back(std::move(a));
    o->agents[name] = ep;
    names->push_back(name);
  }
  return agents;
}

class Pipeline : public ::testing::TestWithParam<std::tuple<model::DType, int>> {};

TEST_P(Pipeline, RunIsBitIdenticalToGenerate) {
  const model::DType type = std::get<0>(GetParam());
  const int n_stages = std::get<1>(GetParam());
  TempDir dir;
  const std::string path = synth(dir.path, type);
  const std::vector<int32_t> prompt = model::default_prompt(19, 400);
  const int64_t n_gen = 9;
  const model::GenerateResult want = reference(path, prompt, n_gen, {});

  RunOptions o;
  std::vector<std::string> names;
  const auto agents = start_agents(
      dir.path, n_stages, [](int i) { return 1 + i % 3; }, &o, &names);
  ASSERT_EQ(agents.size(), static_cast<size_t>(n_stages)) << "an agent did not start";
  o.model_path = path;
  o.plan = even_plan(names, 5);
  o.prompts.assign(3, prompt);
  o.n_gen = n_gen;
  o.step_token_budget = 7;  // forces chunked prefill mixed with decodes
  o.want_logits = true;
  o.slice_dir = (dir.path / "slices").string();
  o.agent_timeout_ms = 20000;
  auto r = run_plan(o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->tokens.size(), 3u);
  for (size_t s = 0; s < 3; ++s) {
    EXPECT_EQ(r->tokens[s], want.tokens) << "sequence " << s;
    EXPECT_EQ(r->first_logits[s], want.prompt_logits)
        << "sequence " << s << " logits after the prompt";
    EXPECT_EQ(r->last_logits[s], want.last_logits) << "sequence " << s << " final logits";
  }
  ASSERT_EQ(r->stages.size(), static_cast<size_t>(n_stages));
  for (const StageReport& st : r->stages) {
    EXPECT_GT(st.steps, 0);
    EXPECT_GT(st.shipped_bytes, 0u);  // fresh caches: every slice was shipped
  }

  // A second run finds every slice cached on the agents: nothing is shipped.
  auto again = run_plan(o);
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  for (const StageReport& st : again->stages) EXPECT_EQ(st.shipped_bytes, 0u);
  EXPECT_EQ(again->tokens[0], want.tokens);
}

INSTANTIATE_TEST_SUITE_P(
    TypesAndStages, Pipeline,
    ::testing::Combine(::testing::Values(model::DType::kF32, model::DType::kQ4_0),
                       ::testing::Values(1, 2, 3)),
    [](const auto& p) {
      return std::string(*model::dtype_name(static_cast<uint32_t>(std::get<0>(p.param)))) + "_" +
             std::to_string(std::get<1>(p.param)) + "stages";
    });

TEST(PipelineSampling, SeededTemperatureSamplingMatchesGenerate) {
  TempDir dir;
  const std::string path = synth(dir.path, model::DType::kQ8_0);
  const std::vector<int32_t> prompt = model::default_prompt(11, 400);
  const model::SamplerOptions so{0.9f, 40, 0.95f, 1234};
  const model::GenerateResult want = reference(path, prompt, 10, so);
  std::string e0, e1;
  auto a0 = testing::start_agent(STRATA_BIN, "x", 2, (dir.path / "c0").string(), &e0);
  auto a1 = testing::start_agent(STRATA_BIN, "y", 1, (dir.path / "c1").string(), &e1);
  ASSERT_TRUE(a0 && a1);
  RunOptions o;
  o.agents = {{"x", e0}, {"y", e1}};
  o.model_path = path;
  o.plan = even_plan({"x", "y"}, 5);
  o.prompts = {prompt};
  o.n_gen = 10;
  o.sampler = so;
  o.slice_dir = (dir.path / "slices").string();
  auto r = run_plan(o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->tokens[0], want.tokens);  // sequence 0 samples with seed + 0, as generate does
}

// A device dies mid-run: the coordinator notices the silence, re-plans over the two agents left
// and resumes both sequences from their tokens; the result is what one process generates,
// seeded sampling included (the new last stage skips the draws already made).
TEST(PipelineFailover, ALostAgentIsReplannedAroundAndTheRunFinishesIdentically) {
  TempDir dir;
  const std::string path = synth(dir.path, model::DType::kQ4_0);
  const std::vector<int32_t> prompt = model::default_prompt(13, 400);
  const int64_t n_gen = 14;
  const model::SamplerOptions so{0.9f, 40, 0.95f, 77};
  RunOptions o;
  std::vector<std::string> names;
  const auto agents = start_agents(
      dir.path, 3, [](int) { return 1; }, &o, &names);
  ASSERT_EQ(agents.size(), 3u);
  o.model_path = path;
  o.plan = even_plan(names, 5);
  o.prompts.assign(2, prompt);
  o.n_gen = n_gen;
  o.sampler = so;
  o.want_logits = true;
  o.slice_dir = (dir.path / "slices").string();
  o.agent_timeout_ms = 3000;
  int received = 0;
  o.on_token = [&](int32_t, int64_t, int32_t) {
    if (++received == 6) agents[1]->kill_now();
  };
  auto r = run_plan(o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->replans.size(), 1u);
  EXPECT_EQ(r->replans[0].lost_device, "dev1");
  EXPECT_GE(r->replans[0].tokens_before, 6);
  ASSERT_EQ(r->plan_used.stages.size(), 2u);
  EXPECT_EQ(r->plan_used.stages[0].device, "dev0");
  EXPECT_EQ(r->plan_used.stages[1].device, "dev2");
  for (size_t s = 0; s < 2; ++s) {
    model::SamplerOptions mine = so;
    mine.seed = so.seed + s;
    const model::GenerateResult want = reference(path, prompt, n_gen, mine);
    EXPECT_EQ(r->tokens[s], want.tokens) << "sequence " << s;
    EXPECT_EQ(r->last_logits[s], want.last_logits) << "sequence " << s;
  }
}

TEST(PipelineFailover, WithoutReplansALostAgentFailsTheRunByName) {
  TempDir dir;
  const std::string path = synth(dir.path, model::DType::kF32);
  std::string e0, e1;
  auto a0 = testing::start_agent(STRATA_BIN, "x", 1, (dir.path / "c0").string(), &e0);
  auto a1 = testing::start_agent(STRATA_BIN, "y", 1, (dir.path / "c1").string(), &e1);
  ASSERT_TRUE(a0 && a1);
  RunOptions o;
  o.agents = {{"x", e0}, {"y", e1}};
  o.model_path = path;
  o.plan = even_plan({"x", "y"}, 5);
  o.prompts = {model::default_prompt(9, 400)};
  o.n_gen = 40;
  o.max_replans = 0;
  o.slice_dir = (dir.path / "slices").string();
  o.agent_timeout_ms = 2000;
  o.on_token = [&](int32_t, int64_t index, int32_t) {
    if (index == 2) a1->kill_now();
  };
  auto r = run_plan(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'y'"), std::string::npos) << r.status().to_string();
}

TEST(SpeedWeightedPlan, GivesFasterDevicesMoreBlocks) {
  // a is twice as fast per unit as b; c was not measured (counts as the median of a and b).
  const PlanSpec p = speed_weighted_plan({"a", "b", "c"}, {1.0, 2.0, 0.0}, 22);
  ASSERT_EQ(p.stages.size(), 3u);
  const int64_t ba = p.stages[0].unit_end - p.stages[0].unit_begin - 1;  // minus the embedding
  const int64_t bb = p.stages[1].unit_end - p.stages[1].unit_begin;
  const int64_t bc = p.stages[2].unit_end - p.stages[2].unit_begin - 1;  // minus the head
  EXPECT_EQ(ba + bb + bc, 22);
  EXPECT_GT(ba, bc);
  EXPECT_GT(bc, bb);
  EXPECT_EQ(p.stages.back().unit_end, 24);
  // More devices than blocks: the slowest sit out.
  const PlanSpec q = speed_weighted_plan({"a", "b", "c"}, {3.0, 1.0, 2.0}, 2);
  ASSERT_EQ(q.stages.size(), 2u);
  EXPECT_EQ(q.stages[0].device, "b");
  EXPECT_EQ(q.stages[1].device, "c");
}

TEST(PipelineErrors, UnreachableAgentFailsWithinTheDeadline) {
  TempDir dir;
  const std::string path = synth(dir.path, model::DType::kQ4_0);
  RunOptions o;
  o.agents = {{"ghost", "tcp://127.0.0.1:1"}};  // nothing listens on port 1
  o.model_path = path;
  o.plan = even_plan({"ghost"}, 5);
  o.prompts = {{1, 2, 3}};
  o.agent_timeout_ms = 800;
  o.slice_dir = (dir.path / "slices").string();
  const auto t0 = std::chrono::steady_clock::now();
  auto r = run_plan(o);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().code() == StatusCode::kUnavailable ||
              r.status().code() == StatusCode::kDeadlineExceeded)
      << r.status().to_string();
  EXPECT_NE(r.status().message().find("ghost"), std::string::npos) << r.status().message();
  EXPECT_LT(s, 30.0);  // a generous bound: the point is that it returns
}

TEST(PipelineErrors, PlanNamingAMissingAgentIsRefused) {
  TempDir dir;
  const std::string path = synth(dir.path, model::DType::kQ4_0);
  RunOptions o;
  o.model_path = path;
  o.plan = even_plan({"a", "b"}, 5);
  o.agents = {{"a", "tcp://127.0.0.1:1"}};
  o.prompts = {{1, 2}};
  auto r = run_plan(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("'b'"), std::string::npos) << r.status().message();
}

// An agent whose budget is below its stage's weights keeps a resident set and streams the
// other layers from its cached slice (docs/STREAMING.md): the run still gives generate's bits.
TEST(PipelineStreaming, AgentWithABudgetBelowItsStageStreamsAndMatchesGenerate) {
  TempDir dir;
  model::SynthSpec spec;
  spec.dim = 128;
  spec.n_layers = 8;
  spec.n_heads = 4;
  spec.n_kv_heads = 2;
  spec.ffn_dim = 256;
  spec.vocab = 400;
  spec.type = model::DType::kQ8_0;
  spec.seed = 5;
  const std::string path = (dir.path / "m8.gguf").string();
  ASSERT_TRUE(model::synth_model(spec, path, {}).ok());
  const std::vector<int32_t> prompt = model::default_prompt(13, 400);
  const int64_t n_gen = 8;
  const model::GenerateResult want = reference(path, prompt, n_gen, {});

  // even_plan gives dev1 blocks [4, 8) and the head. Its budget: the KV cache, the streaming
  // minimum (the pinned head, the norms, one unit buffer) and two and a half layers more: a
  // ring of a few unit buffers, and the blocks stream.
  const int64_t n_seq = 2;
  const int64_t ctx = static_cast<int64_t>(prompt.size()) + n_gen;
  // The slices are in the streaming layout: plan on the model in that layout, so that the
  // figures (4 KiB-aligned tensors) are the slice's.
  const std::string stream_path = (dir.path / "m8.stream.gguf").string();
  ASSERT_TRUE(model::repack_for_streaming(path, stream_path, {}, {}).ok());
  auto m = model::Model::load(stream_path);
  ASSERT_TRUE(m.ok());
  model::StreamOptions so;
  so.layer_begin = 4;
  so.mem_budget_bytes = int64_t{1} << 40;
  auto all = model::plan_streaming(**m, so);
  ASSERT_TRUE(all.ok()) << all.status().to_string();
  const int64_t layer = all->resident_layer_bytes / 4;
  const int64_t kv = 4 * 2 * (*m)->config().kv_dim() * 4 * ctx * n_seq;
  const int64_t stage_bytes = all->resident_bytes + kv;
  const int64_t budget = kv + all->min_budget_bytes + 2 * layer + layer / 2;
  ASSERT_LT(budget, stage_bytes);

  std::string e0, e1;
  auto a0 = testing::start_agent(STRATA_BIN, "dev0", 2, (dir.path / "c0").string(), &e0);
  auto a1 = testing::start_agent(STRATA_BIN, "dev1", 1, (dir.path / "c1").string(), &e1,
                                 {"--mem-budget", std::to_string(budget)});
  ASSERT_TRUE(a0 && a1);
  RunOptions o;
  o.agents = {{"dev0", e0}, {"dev1", e1}};
  o.model_path = path;
  o.plan = even_plan({"dev0", "dev1"}, 8);
  ASSERT_EQ(o.plan.stages[1].unit_begin, 5);  // blocks [4, 8) + head
  o.prompts.assign(static_cast<size_t>(n_seq), prompt);
  o.n_gen = n_gen;
  o.ctx = ctx;
  o.step_token_budget = 5;  // chunked prefill mixed with decodes: several reads per token
  o.want_logits = true;
  o.slice_dir = (dir.path / "slices").string();
  o.agent_timeout_ms = 20000;
  auto r = run_plan(o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  for (size_t s = 0; s < r->tokens.size(); ++s) {
    EXPECT_EQ(r->tokens[s], want.tokens) << "sequence " << s;
    EXPECT_EQ(r->first_logits[s], want.prompt_logits) << "sequence " << s;
    EXPECT_EQ(r->last_logits[s], want.last_logits) << "sequence " << s;
  }
  ASSERT_EQ(r->stages.size(), 2u);
  // dev1 reported the resident set it kept, within its budget and below the whole stage.
  EXPECT_GT(r->stages[1].resident_bytes, static_cast<uint64_t>(kv));
  EXPECT_LE(r->stages[1].resident_bytes, static_cast<uint64_t>(budget));
  EXPECT_LT(r->stages[1].resident_bytes, static_cast<uint64_t>(stage_bytes));
}

// An agent emulating a Raspberry Pi 4 reports, per step, its compute here and the time it was
// paced to; the report folds them into the stage's headroom. The other agent does not emulate
// and has none. Timings vary with the host: only their consistency is checked.
TEST(PipelineEmulation, EmulatingStagesReportTheirHeadroomAndOthersNone) {
  TempDir dir;
  const std::string path = synth(dir.path, model::DType::kQ4_0);
  const std::vector<int32_t> prompt = model::default_prompt(9, 400);
  const int64_t n_gen = 8;
  const model::GenerateResult want = reference(path, prompt, n_gen, {});
  std::string e0, e1;
  auto a0 =
      testing::start_agent(STRATA_BIN, "pi4", 1, (dir.path / "c0").string(), &e0,
                           {"--emulate", STRATA_SOURCE_DIR "/profiles/devices/rpi4b-4gb.json"});
  auto a1 = testing::start_agent(STRATA_BIN, "host", 1, (dir.path / "c1").string(), &e1);
  ASSERT_TRUE(a0 && a1);
  RunOptions o;
  o.agents = {{"pi4", e0}, {"host", e1}};
  o.model_path = path;
  o.plan = even_plan({"pi4", "host"}, 5);
  o.prompts.assign(2, prompt);
  o.n_gen = n_gen;
  o.slice_dir = (dir.path / "slices").string();
  o.agent_timeout_ms = 20000;
  auto r = run_plan(o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  for (const auto& tokens : r->tokens) EXPECT_EQ(tokens, want.tokens);  // pacing changes no bits
  ASSERT_EQ(r->stages.size(), 2u);

  const EmulationHeadroom& pi4 = r->stages[0].emulation;
  EXPECT_TRUE(pi4.emulating());
  EXPECT_GT(pi4.paced_steps, 0);
  EXPECT_LE(pi4.paced_steps, r->stages[0].steps);
  EXPECT_GT(pi4.decode_steps, 0);
  EXPECT_LE(pi4.decode_steps, pi4.paced_steps);
  EXPECT_GT(pi4.decode_paced_ms_median, 0.0);
  EXPECT_GT(pi4.decode_local_ms_median, 0.0);
  EXPECT_LE(pi4.overrun_steps, pi4.paced_steps);
  EXPECT_GE(pi4.overrun_ms, 0.0);
  EXPECT_EQ(pi4.overrun_steps == 0, pi4.overrun_ms == 0.0);
  EXPECT_DOUBLE_EQ(pi4.local_to_paced(), pi4.decode_local_ms_median / pi4.decode_paced_ms_median);
  // A paced step takes at least the paced time: the decode step column is never below it.
  EXPECT_GE(r->stages[0].decode_compute_ms_median, pi4.decode_paced_ms_median);

  const EmulationHeadroom& host = r->stages[1].emulation;
  EXPECT_FALSE(host.emulating());
  EXPECT_EQ(host.paced_steps, 0);
  EXPECT_EQ(host.overrun_steps, 0);
  EXPECT_EQ(host.decode_paced_ms_median, 0.0);

  const std::string text = format_report(*r);
  EXPECT_NE(text.find("emulation: pi4 computed a decode step in "), std::string::npos) << text;
  EXPECT_EQ(text.find("emulation: host"), std::string::npos) << text;
  const nlohmann::json j = nlohmann::json::parse(report_json(*r));
  const nlohmann::json& em = j["stages"][0]["emulation"];
  ASSERT_TRUE(em.is_object()) << j.dump();
  EXPECT_EQ(em["paced_steps"].get<int64_t>(), pi4.paced_steps);
  EXPECT_EQ(em["overrun_steps"].get<int64_t>(), pi4.overrun_steps);
  EXPECT_DOUBLE_EQ(em["decode_paced_ms_median"].get<double>(), pi4.decode_paced_ms_median);
  EXPECT_DOUBLE_EQ(em["local_to_paced"].get<double>(), pi4.local_to_paced());
  EXPECT_TRUE(j["stages"][1]["emulation"].is_null()) << j.dump();
}

TEST(PipelineErrors, StageTooBigForTheAgentsBudgetIsRefusedWithTheShortfall) {
  TempDir dir;
  const std::string path = synth(dir.path, model::DType::kF32);
  std::string ep;
  auto a = testing::start_agent(STRATA_BIN, "tiny", 1, (dir.path / "c").string(), &ep,
                                {"--mem-budget", "64K"});
  ASSERT_TRUE(a);
  RunOptions o;
  o.model_path = path;
  o.plan = even_plan({"tiny"}, 5);
  o.agents = {{"tiny", ep}};
  o.prompts = {{1, 2}};
  o.slice_dir = (dir.path / "slices").string();
  auto r = run_plan(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(r.status().message().find("short by"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace strata::agent
