#include "strata/partitioner/cost_model.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "strata/model/model.h"
#include "strata/model/weight_store.h"

namespace strata::partitioner {
namespace {

// Two units and two devices whose costs are easy to work out by hand.
//   a: 2 GFLOP/token over 1 GB of f32 weights;  b: 0.1 GFLOP/token over 0.5 GB of q8_0,
//   1000 B of KV per token.  X: 10 GB/s, 4 / 10 GFLOP/s gemv (f32 / q8_0), 2 GB budget.
//   Y: 20 GB/s, 8 / 20 GFLOP/s, 1 GB budget.  X-Y: 2 ms round trip, 8 Mbit/s.
struct Tiny {
  LayerTable table;
  std::vector<DeviceCaps> devices;
  PlanSettings settings;

  Tiny() {
    table.input_bytes_per_token = 4;
    table.units.push_back({"a",
                           UnitKind::kBlock,
                           2e9,
                           0,
                           1'000'000'000,
                           {{"f32", 1'000'000'000}},
                           1'000'000'000,
                           1000,
                           0});
    table.units.push_back({"b",
                           UnitKind::kBlock,
                           1e8,
                           0,
                           500'000'000,
                           {{"q8_0", 500'000'000}},
                           500'000'000,
                           500,
                           1000});
    DeviceCaps x;
    x.name = "X";
    x.mem_budget_bytes = 2'000'000'000;
    x.mem_read_gb_per_s = 10;
    x.gemv_gflops = {{"f32", 4}, {"q8_0", 10}};
    x.gemm_gflops = {{"f32", 20}, {"q8_0", 50}};
    x.idle_watts = 2;
    x.load_watts = 10;
    DeviceCaps y = x;
    y.name = "Y";
    y.mem_budget_bytes = 1'000'000'000;
    y.mem_read_gb_per_s = 20;
    y.gemv_gflops = {{"f32", 8}, {"q8_0", 20}};
    y.idle_watts = 1;
    y.load_watts = 5;
    devices = {x, y};
    settings.sequences = 2;
    settings.prompt_len = 10;
    settings.context = 100;  // decode position (10 + 100) / 2 = 55
  }
  CostModel build() const {
    LinkTable links({"X", "Y"}, Link{});
    links.set(0, 1, {2.0, 8.0, false});
    auto m = CostModel::build(table, devices, links, settings);
    STRATA_CHECK_MSG(m.ok(), m.status().to_string());
    return std::move(m).value();
  }
};

TEST(CostModel, StageTimesAreRooflinesSummedOverUnits) {
  const CostModel m = Tiny().build();
  EXPECT_EQ(m.decode_position(), 55);
  // a on X: compute 2e9 / 4e9 = 0.5 s beats reading 1e9 B at 10 GB/s = 0.1 s.
  EXPECT_DOUBLE_EQ(m.unit_decode_s(0, 0), 0.5);
  // b on X: reading 5e8 + 55 x 1000 B of KV at 10 GB/s beats 1e8 / 10e9.
  EXPECT_DOUBLE_EQ(m.unit_decode_s(0, 1), 500'055'000 / 10e9);
  const StageCost& both = m.stage(0, 0, 2);
  ASSERT_TRUE(both.feasible);
  EXPECT_DOUBLE_EQ(both.decode_s, 0.5 + 500'055'000 / 10e9);
  // Prefill of 10 tokens: a at 20 GFLOP/s gemm (1 s); b is bound by reading its weights once
  // and the chunk's 10 KV rows.
  EXPECT_DOUBLE_EQ(both.prefill_s, 1.0 + (500'000'000 + 10 * 1000) / 10e9);
  // Memory: weights, KV for 100 positions x 2 sequences, 4 x 10 tokens x the largest
  // activation (1000 B).
  EXPECT_EQ(both.kv_bytes, 1000 * 100 * 2);
  EXPECT_EQ(both.buffer_bytes, 4 * 10 * 1000);
  EXPECT_EQ(both.used_bytes, 1'500'000'000 + 200'000 + 40'000);
  EXPECT_DOUBLE_EQ(both.mem_pressure, 1'500'240'000 / 2e9);
  // Y cannot hold a: short by what is over its budget.
  const StageCost& a_on_y = m.stage(1, 0, 1);
  EXPECT_FALSE(a_on_y.feasible);
  EXPECT_EQ(a_on_y.short_bytes, 1'000'000'000 + 40'000 - 1'000'000'000);
}

TEST(CostModel, DecodeAttentionAtTheMeasuredRatePrefillAtTheGemmRate) {
  LayerUnit u;
  u.flops_per_token = 1e9;
  u.attn_flops_per_token_per_ctx = 1e6;
  u.weight_bytes = 1000;
  u.weight_bytes_by_type["q4_0"] = 1000;
  u.weight_bytes_read_per_token = 1000;
  DeviceCaps d;
  d.mem_read_gb_per_s = 10;
  d.gemv_gflops["q4_0"] = 10;
  d.gemm_gflops["q4_0"] = 100;
  // Without an attention figure: attention at the GEMV rate.
  EXPECT_DOUBLE_EQ(unit_step_s(u, d, 1, 100, 100), (1e9 + 1e8) / 10e9);
  d.attention_gflops = 2;
  EXPECT_DOUBLE_EQ(unit_step_s(u, d, 1, 100, 100), 1e9 / 10e9 + 1e8 / 2e9);
  // A 16-token prompt chunk (GEMM rates) ignores it.
  EXPECT_DOUBLE_EQ(unit_step_s(u, d, 16, 120, 16), (16e9 + 1.2e8) / 100e9);
}

TEST(CostModel, PlanObjectivesByHand) {
  const CostModel m = Tiny().build();
  auto o = m.evaluate({{0, 0, 1}, {1, 1, 2}});
  ASSERT_TRUE(o.ok()) << o.status().to_string();
  const double t_x = 0.5;
  const double t_y = 500'055'000 / 20e9;  // b on Y is bound by memory too
  const double link = 1e-3 + 1000 * 8 / 8e6;
  EXPECT_DOUBLE_EQ(o->latency_s, t_x + link + t_y);
  // Two sequences in flight: the bottleneck stage (0.5 s) limits more than latency / 2.
  EXPECT_DOUBLE_EQ(o->period_s, 0.5);
  EXPECT_DOUBLE_EQ(o->throughput_tok_per_s(), 2.0);
  // (load - idle) x stage time, plus every device's idle power over the period.
  EXPECT_DOUBLE_EQ(o->energy_j, 8 * t_x + 4 * t_y + (2 + 1) * 0.5);
  EXPECT_DOUBLE_EQ(o->mem_pressure, 500'240'000 / 1e9);
  // One device: latency-bound with two in flight? No: one stage is always the bottleneck.
  auto single = m.evaluate({{0, 0, 2}});
  ASSERT_TRUE(single.ok());
  EXPECT_DOUBLE_EQ(single->period_s, single->latency_s);
  EXPECT_DOUBLE_EQ(single->energy_j, 8 * single->latency_s + 2 * single->latency_s);
}

TEST(CostModel, MicroBatchesShareTheWeightReadsOfAStep) {
  Tiny t;
  t.settings.sequences = 4;
  t.settings.micro_batch = 2;
  const CostModel m = t.build();
  EXPECT_EQ(m.micro_batch(), 2);
  EXPECT_EQ(m.n_groups(), 2);
  // b on Y, two tokens at position 55: weights read once, KV for both tokens; memory-bound.
  const double t_y = (500'000'000 + 2 * 55 * 1000) / 20e9;
  EXPECT_DOUBLE_EQ(m.unit_decode_s(1, 1), t_y);
  // a on X: two tokens of compute at 4 GFLOP/s (1 s) beat one read of its weights (0.1 s).
  const double t_x = 1.0;
  EXPECT_DOUBLE_EQ(m.unit_decode_s(0, 0), t_x);
  auto o = m.evaluate({{0, 0, 1}, {1, 1, 2}});
  ASSERT_TRUE(o.ok());
  const double link = 1e-3 + 2 * 1000 * 8 / 8e6;  // both tokens' activations
  EXPECT_DOUBLE_EQ(o->latency_s, t_x + link + t_y);
  // Two groups of two: a step's latency over two groups vs the slowest stage, per token.
  EXPECT_DOUBLE_EQ(o->period_s, std::max(o->latency_s / 2, t_x) / 2);
  EXPECT_DOUBLE_EQ(o->energy_j, (8 * t_x + 4 * t_y) / 2 + (2 + 1) * o->period_s);
  // The default: 4 sequences over 2 devices also batch 2.
  t.settings.micro_batch = 0;
  EXPECT_EQ(t.build().micro_batch(), 2);
  // A micro-batch that does not divide the sequences is refused.
  t.settings.micro_batch = 3;
  EXPECT_EQ(CostModel::build(t.table, t.devices, LinkTable({"X", "Y"}, Link{}), t.settings)
                .status()
                .code(),
            StatusCode::kInvalidArgument);
}

TEST(CostModel, PeriodCountsGroupsBunchingAtTheSlowestStage) {
  Tiny t;
  t.settings.sequences = 2;
  t.settings.micro_batch = 1;
  const CostModel m = t.build();
  ASSERT_EQ(m.n_groups(), 2);
  // By hand, two groups: the first finds the station idle (1 step of 0.25 in a 1.0 cycle, so
  // it is busy a quarter of the time); the second waits out half a step that often:
  // R = 0.25 + 0.25 x 0.25 / 2, a cycle of R + 0.75 = 1.03125 for two groups.
  EXPECT_DOUBLE_EQ(m.period_s(1.0, 0.25), 1.03125 / 2);
  // Capped at one step per slowest stage, which the half-step residual would beat at high
  // utilisation: 0.9 of a 1.0 cycle in one stage gives 2 / (0.9 + 0.405 + 0.1) > 1 / 0.9.
  EXPECT_DOUBLE_EQ(m.period_s(1.0, 0.9), 0.9);
  t.settings.sequences = 1;
  EXPECT_DOUBLE_EQ(t.build().period_s(1.0, 0.25), 1.0);  // one group never waits
  // For G = 1..12: between the regular-timing bound max(L / G, S) and one group at a time (L),
  // and non-decreasing in L and in S, which the search's exactness rests on.
  for (int64_t g = 1; g <= 12; ++g) {
    t.settings.sequences = g;
    const CostModel mg = t.build();
    ASSERT_EQ(mg.n_groups(), g);
    for (double l = 0.1; l <= 3.0; l += 0.1) {
      double last = 0;
      for (double s = 0.01; s <= l; s += 0.01) {
        const double p = mg.period_s(l, s);
        EXPECT_GE(p, std::max(l / static_cast<double>(g), s) * (1 - 1e-12)) << g << " " << l;
        EXPECT_LE(p, l * (1 + 1e-12)) << g << " " << l << " " << s;
        EXPECT_GE(p, last) << "falls with S at G " << g << ", L " << l << ", S " << s;
        EXPECT_GE(mg.period_s(l + 0.05, s), p) << "falls with L at G " << g;
        last = p;
      }
    }
  }
}

TEST(CostModel, ResolvedMicroBatchDividesTheSequences) {
  PlanSettings s;
  s.sequences = 4;
  EXPECT_EQ(resolved_micro_batch(s, 3), 2);  // ceil(4 / 3) = 2 divides 4
  EXPECT_EQ(resolved_micro_batch(s, 8), 1);
  s.sequences = 9;
  EXPECT_EQ(resolved_micro_batch(s, 2), 3);  // ceil(9 / 2) = 5 -> 3, the divisor below
  s.sequences = 1;
  EXPECT_EQ(resolved_micro_batch(s, 4), 1);
  s.micro_batch = 1;
  s.sequences = 8;
  EXPECT_EQ(resolved_micro_batch(s, 2), 1);
}

TEST(CostModel, ThroughputIsLatencyBoundWithFewSequences) {
  Tiny t;
  t.settings.sequences = 1;
  const CostModel m = t.build();
  auto o = m.evaluate({{0, 0, 1}, {1, 1, 2}});
  ASSERT_TRUE(o.ok());
  EXPECT_DOUBLE_EQ(o->period_s, o->latency_s);
}

TEST(CostModel, CoordinatorHopsAddToLatency) {
  Tiny t;
  t.settings.coordinator = PlanSettings::Coordinator::kDevice;
  t.settings.coordinator_device = 0;
  const CostModel m = t.build();
  auto o = m.evaluate({{0, 0, 1}, {1, 1, 2}});
  ASSERT_TRUE(o.ok());
  // The token comes in on X itself; the sampled token (b's 500 B out) goes back over X-Y.
  const double back = 1e-3 + 500 * 8 / 8e6;
  EXPECT_DOUBLE_EQ(o->latency_s, 0.5 + (1e-3 + 1000 * 8 / 8e6) + 500'055'000 / 20e9 + back);
  EXPECT_EQ(m.coord_in_s(0), 0.0);
  EXPECT_DOUBLE_EQ(m.coord_out_s(1), back);
}

// Units that are not Llama blocks (no KV cache here) are read whole: each is one 4 KiB-rounded
// read, so the ring holds two of them.
TEST(CostModel, StreamingFillsTheBudgetAndReadsTheRestFromStorage) {
  LayerTable table;
  for (int i = 0; i < 4; ++i) {
    table.units.push_back({"u" + std::to_string(i),
                           UnitKind::kBlock,
                           1e6,
                           0,
                           100'000'000,
                           {{"q4_0", 100'000'000}},
                           100'000'000,
                           1000,
                           0});
  }
  DeviceCaps d;
  d.name = "pi";
  d.mem_budget_bytes = 250'000'000;
  d.mem_read_gb_per_s = 10;
  d.gemv_gflops = {{"q4_0", 20}};
  d.gemm_gflops = {{"q4_0", 50}};
  d.storage_read_mb_per_s = 400;
  PlanSettings s;
  s.prompt_len = 1;
  s.context = 1;
  s.sequences = 1;
  auto without = CostModel::build(table, {d}, LinkTable({"pi"}, Link{}), s);
  ASSERT_TRUE(without.ok());
  EXPECT_FALSE(without->stage(0, 0, 4).feasible);
  s.allow_streaming = true;
  auto with = CostModel::build(table, {d}, LinkTable({"pi"}, Link{}), s);
  ASSERT_TRUE(with.ok());
  const StageCost& st = with->stage(0, 0, 4);
  ASSERT_TRUE(st.feasible);
  const int64_t buffers = 4 * 1 * 1000;
  const int64_t unit = 24'415 * 4096;   // 100 MB in 4 KiB pages
  const int64_t ring = 96 * (2 << 20);  // two units, one region rounded up to 2 MiB
  // 250 MB - buffers holds the two-unit ring and no whole unit besides: all four stream.
  EXPECT_EQ(st.resident_bytes, 0);
  EXPECT_EQ(st.streamed_bytes, 4 * unit);
  EXPECT_EQ(st.buffer_bytes, buffers + ring);
  EXPECT_DOUBLE_EQ(st.mem_pressure, 1.0);  // the budget binds
  EXPECT_LT(st.used_bytes, d.mem_budget_bytes);
  EXPECT_DOUBLE_EQ(st.stream_s, 4.0 * unit / 400e6);
  EXPECT_DOUBLE_EQ(st.decode_s, std::max(st.compute_s, st.stream_s / 0.8));
  EXPECT_GT(st.stream_s, st.compute_s);  // storage, not memory, limits this stage
  // Without storage figures a device cannot stream.
  d.storage_read_mb_per_s = 0;
  auto nostore = CostModel::build(table, {d}, LinkTable({"pi"}, Link{}), s);
  ASSERT_TRUE(nostore.ok());
  EXPECT_FALSE(nostore->stage(0, 0, 4).feasible);
}

// The planner's stream time against a hand computation of docs/STREAMING.md's figures for a
// small Llama shape in q4_0: dim 256, kv_dim 64, ffn 512, 6 blocks, vocab 1000.
//   Units: 32 KiB (half the smallest profiled read within 10% of the best, 64 KiB at 950 MB/s).
//   A block's matrices, each starting on a 4 KiB page: q, o 256 rows x 144 B = 36864; k, v 64
//   rows = 9216 -> 12288; gate, up 512 rows x 144 B = 73728; down 256 rows x 288 B = 73728.
//   Cut at rows whose bytes are whole pages (256 rows of 144 B, 128 of 288 B: 36864 bytes, more
//   than a unit, so a unit holds one such step): [q] 36864, [k v] 24576, [o] 36864, then gate,
//   up and down in halves of 36864: 9 units, 319488 bytes; the norms (1 KiB -> 4096 each,
//   kept) make the block 327680. slot = 36864; the read size: the largest within 10% of the
//   best no larger than a buffer, none, so the smallest of them, 64 KiB; lookahead
//   ceil(1.5 x 4 x 36864 / 36864) - 1 = 5, a ring of 6 x 36864 = 221184.
//   Fixed: the head (output_norm 1024 -> 4096, output 1000 x 256 x 18/32 = 144000 -> 147456)
//   151552 + the embedding row buffer (144 B -> 4096, + 4096) 8192 + norms 6 x 8192 = 49152:
//   208896.
//   Memory outside the weights: KV 6 x 2 x 64 x 4 B x 1 position = 3072, buffers 4 x 1024.
TEST(CostModel, StreamTimeMatchesTheHandComputation) {
  LlamaShape shape;
  shape.n_layers = 6;
  shape.dim = 256;
  shape.n_heads = 4;
  shape.n_kv_heads = 1;
  shape.ffn_dim = 512;
  shape.vocab = 1000;
  auto table = llama_layer_table(shape, "q4_0");
  ASSERT_TRUE(table.ok()) << table.status().to_string();
  const int64_t fixed = 208'896, slot = 36'864, ring = 221'184, units = 6 * 319'488;
  const int64_t outside = 3072 + 4096;
  DeviceCaps d;
  d.name = "pi";
  d.mem_read_gb_per_s = 10;
  d.gemv_gflops = {{"q4_0", 20}, {"f32", 20}};
  d.gemm_gflops = {{"q4_0", 50}, {"f32", 50}};
  d.storage_seq_read_mb_per_s = {{16'384, 700}, {65'536, 950}, {1'048'576, 1000}, {4'194'304, 990}};
  d.storage_read_mb_per_s = 990;
  PlanSettings s;
  s.prompt_len = 1;
  s.context = 1;
  s.sequences = 1;
  s.allow_streaming = true;
  const auto stage = [&](int64_t weight_budget) {
    d.mem_budget_bytes = weight_budget + outside;
    auto m = CostModel::build(*table, {d}, LinkTable({"pi"}, Link{}), s);
    EXPECT_TRUE(m.ok()) << m.status().to_string();
    return m->stage(0, 0, 8);
  };

  // 100000 bytes beside the ring: of the 54 units, any 2 fit (2 x 36864); at k = 3 the spread
  // positions 9, 27 and 45 (three [q] units: 110592) do not, so k = 2 at positions 13 and 40
  // (halves of gate: 73728); then the first unit that still fits in the 26272 left, block 0's
  // [k v] (24576). 98304 kept, the rest streams, overlapped.
  const int64_t kept = 73'728 + 24'576;
  const StageCost two = stage(fixed + ring + 100'000);
  ASSERT_TRUE(two.feasible);
  EXPECT_EQ(two.resident_bytes, fixed + kept);
  EXPECT_EQ(two.streamed_bytes, units - kept);
  EXPECT_EQ(two.buffer_bytes, 4096 + ring);
  const double t_io = (units - kept) / 950e6;
  EXPECT_DOUBLE_EQ(two.stream_s, t_io);
  ASSERT_LT(two.compute_s, t_io / 0.8);  // storage-bound: eta = 0.8 of the storage bound
  EXPECT_DOUBLE_EQ(two.decode_s, t_io / 0.8);
  EXPECT_DOUBLE_EQ(two.prefill_s, t_io / 0.8);  // a 1-token prompt: one forward call

  // One buffer only: every unit streams and reads do not overlap compute.
  const StageCost one = stage(fixed + slot + 10);
  ASSERT_TRUE(one.feasible);
  EXPECT_EQ(one.resident_bytes, fixed);
  EXPECT_EQ(one.buffer_bytes, 4096 + slot);
  EXPECT_EQ(one.streamed_bytes, units);
  EXPECT_DOUBLE_EQ(one.stream_s, units / 950e6);
  EXPECT_DOUBLE_EQ(one.decode_s, one.compute_s + one.stream_s);

  // Below the fixed set + one buffer the stage cannot run; the shortfall is named.
  const StageCost none = stage(fixed + slot - 100);
  EXPECT_FALSE(none.feasible);
  EXPECT_EQ(none.short_bytes, 100);

  // Reads are per forward call: a 1200-token prompt is three prefill chunks of up to 512.
  s.prompt_len = 1200;
  s.context = 1200;
  const int64_t kv = 6 * 2 * 64 * 4 * 1200;
  const int64_t buffers = 4 * 1200 * 1024;
  d.gemm_gflops = {{"q4_0", 1e6}, {"f32", 1e6}};  // prefill compute far below the reads
  d.mem_budget_bytes = fixed + ring + 100'000 + kv + buffers;
  auto m = CostModel::build(*table, {d}, LinkTable({"pi"}, Link{}), s);
  ASSERT_TRUE(m.ok());
  const StageCost& p = m->stage(0, 0, 8);
  ASSERT_TRUE(p.feasible);
  EXPECT_EQ(p.streamed_bytes, units - kept);
  EXPECT_DOUBLE_EQ(p.prefill_s, 3 * t_io / 0.8);
}

// The planner's streaming figures are the weight store's: for a repacked q4_0 Llama file and
// several weight budgets, a whole-model stage, a first stage and a middle stage stream and keep
// the same bytes in both, with the same ring.
TEST(CostModel, StreamedBytesAreTheWeightStores) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("strata_cm_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  model::SynthSpec spec;
  spec.dim = 256;
  spec.n_layers = 6;
  spec.n_heads = 4;
  spec.n_kv_heads = 1;
  spec.ffn_dim = 512;
  spec.vocab = 1000;
  spec.ctx = 64;
  spec.type = model::DType::kQ4_0;
  ASSERT_TRUE(model::synth_model(spec, (dir / "m.gguf").string(), {}).ok());
  auto repacked = model::repack_for_streaming((dir / "m.gguf").string(),
                                              (dir / "m.stream.gguf").string(), {}, {});
  ASSERT_TRUE(repacked.ok()) << repacked.status().to_string();
  auto m = model::Model::load((dir / "m.stream.gguf").string());
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  auto table = layer_table_from_model(**m, "m.stream.gguf");
  ASSERT_TRUE(table.ok()) << table.status().to_string();
  ASSERT_EQ(table->units.size(), 8u);  // token_embd, blk.0 .. blk.5, output

  DeviceCaps d;
  d.name = "pi";
  d.mem_read_gb_per_s = 10;
  d.gemv_gflops = {{"q4_0", 20}, {"f32", 20}};
  d.gemm_gflops = {{"q4_0", 50}, {"f32", 50}};
  // 64 KiB reads are as fast as any: units of 64 KiB, several per block.
  d.storage_seq_read_mb_per_s = {{16'384, 500}, {65'536, 1000}, {4'194'304, 1000}};
  d.storage_read_mb_per_s = 1000;
  PlanSettings s;
  s.prompt_len = 1;
  s.context = 1;
  s.sequences = 1;
  s.allow_streaming = true;
  struct Range {
    int unit_begin, unit_end;
    int64_t layer_begin, layer_end;
  };
  int compared = 0;
  for (const Range r : {Range{0, 8, 0, 6}, Range{0, 4, 0, 3}, Range{2, 6, 1, 5}}) {
    SCOPED_TRACE("units [" + std::to_string(r.unit_begin) + ", " + std::to_string(r.unit_end) +
                 ")");
    // KV cache and activation buffers outside the weights: from an unconstrained stage.
    d.mem_budget_bytes = int64_t{1} << 40;
    auto free = CostModel::build(*table, {d}, LinkTable({"pi"}, Link{}), s);
    ASSERT_TRUE(free.ok());
    const StageCost base = free->stage(0, r.unit_begin, r.unit_end);
    const int64_t outside = base.kv_bytes + base.buffer_bytes;
    model::StreamOptions o;
    o.layer_begin = r.layer_begin;
    o.layer_end = r.layer_end;
    o.storage_seq_read_mb_per_s = d.storage_seq_read_mb_per_s;
    o.mem_budget_bytes = int64_t{1} << 40;
    auto all = model::plan_streaming(**m, o);
    ASSERT_TRUE(all.ok()) << all.status().to_string();
    // Budgets from the store's minimum to one byte short of the stage's weights (above that
    // the planner, which counts weights unrounded, finds that the stage fits).
    const int64_t min = all->min_budget_bytes;
    const int64_t top = std::min(all->resident_bytes, base.weight_bytes) - 1;
    for (int i = 0; i <= 6; ++i) {
      const int64_t w = min + (top - min) * i / 6;
      SCOPED_TRACE("weight budget " + std::to_string(w));
      o.mem_budget_bytes = w;
      auto p = model::plan_streaming(**m, o);
      ASSERT_TRUE(p.ok()) << p.status().to_string();
      d.mem_budget_bytes = w + outside;
      auto cm = CostModel::build(*table, {d}, LinkTable({"pi"}, Link{}), s);
      ASSERT_TRUE(cm.ok());
      const StageCost st = cm->stage(0, r.unit_begin, r.unit_end);
      ASSERT_TRUE(st.feasible);
      EXPECT_EQ(st.streamed_bytes, p->streamed_bytes_per_token);
      EXPECT_EQ(st.resident_bytes, p->resident_bytes - p->ring_bytes);
      EXPECT_EQ(st.buffer_bytes - base.buffer_bytes, p->ring_bytes);
      compared += p->streamed_bytes_per_token > 0 ? 1 : 0;
    }
    // One byte below the store's minimum the planner finds the stage infeasible too.
    d.mem_budget_bytes = min - 1 + outside;
    auto cm = CostModel::build(*table, {d}, LinkTable({"pi"}, Link{}), s);
    ASSERT_TRUE(cm.ok());
    EXPECT_FALSE(cm->stage(0, r.unit_begin, r.unit_end).feasible);
  }
  EXPECT_GE(compared, 15);
  fs::remove_all(dir);
}

TEST(CostModel, EnergyIsUnknownWithoutPowerFigures) {
  Tiny t;
  t.devices[1].idle_watts.reset();
  const CostModel m = t.build();
  EXPECT_FALSE(m.energy_in_dominance());
  auto split = m.evaluate({{0, 0, 1}, {1, 1, 2}});
  ASSERT_TRUE(split.ok());
  EXPECT_TRUE(std::isnan(split->energy_j));
  auto alone = m.evaluate({{0, 0, 2}});
  ASSERT_TRUE(alone.ok());
  EXPECT_FALSE(std::isnan(alone->energy_j));  // X alone has power figures
}

TEST(CostModel, BadPlansAndSettings) {
  const CostModel m = Tiny().build();
  EXPECT_FALSE(m.evaluate({}).ok());
  EXPECT_FALSE(m.evaluate({{0, 0, 1}}).ok());             // does not cover b
  EXPECT_FALSE(m.evaluate({{0, 0, 1}, {0, 1, 2}}).ok());  // X twice
  EXPECT_FALSE(m.evaluate({{1, 0, 1}, {0, 1, 2}}).ok());  // a does not fit on Y
  EXPECT_FALSE(m.evaluate({{0, 1, 2}}).ok());             // starts past unit 0
  Tiny t;
  t.settings.prompt_len = 200;
  LinkTable links({"X", "Y"}, Link{});
  auto bad = CostModel::build(t.table, t.devices, links, t.settings);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--prompt-len 200 exceeds --context 100"),
            std::string::npos);
  Tiny g;
  g.devices[0].gemv_gflops.erase("q8_0");
  auto gap = CostModel::build(g.table, g.devices, links, g.settings);
  ASSERT_FALSE(gap.ok());
  EXPECT_NE(gap.status().message().find("device 'X'"), std::string::npos);
  EXPECT_NE(gap.status().message().find("compute.gemv_gflops.q8_0.threads_all"), std::string::npos);
  Tiny dup;
  dup.devices[1].name = "X";
  EXPECT_FALSE(
      CostModel::build(dup.table, dup.devices, LinkTable({"X", "X"}, Link{}), dup.settings).ok());
}

TEST(CostModel, InterchangeableDevices) {
  Tiny t;
  t.devices.push_back(t.devices[1]);
  t.devices[2].name = "Y2";
  LinkTable links({"X", "Y", "Y2"}, Link{});
  auto m = CostModel::build(t.table, t.devices, links, t.settings);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->interchangeable_below(2), 1U << 1);
  EXPECT_EQ(m->interchangeable_below(1), 0U);
  links.set(0, 2, {5, 100, false});  // Y2 now sits behind a different link
  auto n = CostModel::build(t.table, t.devices, links, t.settings);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->interchangeable_below(2), 0U);
}

}  // namespace
}  // namespace strata::partitioner
