#include <gtest/gtest.h>

#include "strata/profiles/compute.h"

namespace strata::profiles {
namespace {

ComputeOptions tiny(int threads_all) {
  ComputeOptions o;
  o.gemv_shapes = {{64, 128}, {256, 128}};
  o.gemm_shapes = {{64, 128}};
  o.gemm_tokens = 8;
  o.reps = 5;
  o.rep_seconds = 0.001;
  o.threads_all = threads_all;
  o.gemv_pool_bytes = 1 << 20;
  return o;
}

TEST(Compute, AttentionIsTheEnginesWithOneAndAllThreadsOnAColdCache) {
  Compute c;
  int steps = 0;
  ComputeOptions o = tiny(2);
  o.gemv_pool_bytes = 8 << 20;  // 8 layers of 1 MiB of keys and values
  probe_attention(o, c, [&](const std::string&) { ++steps; });
  EXPECT_EQ(steps, 2);
  for (const Figure* f : {&c.attention_gflops.threads_1, &c.attention_gflops.threads_all}) {
    ASSERT_TRUE(f->available());
    EXPECT_GT(*f->value, 0);
    EXPECT_EQ(f->unit, "GFLOP/s");
    EXPECT_EQ(f->provenance, Provenance::kMeasured);
    EXPECT_EQ(f->stats->n, 5);
    EXPECT_NE(f->source.find("strata::model::attend"), std::string::npos) << f->source;
    EXPECT_NE(f->source.find("cycled through 8 layers"), std::string::npos) << f->source;
  }
  EXPECT_NE(c.attention_gflops.threads_all.source.find("2 threads"), std::string::npos);
}

TEST(Compute, EveryTypeOpAndThreadCountIsMeasuredWithTheEnginesKernels) {
  Compute c;
  int steps = 0;
  probe_compute(tiny(2), c, [&](const std::string&) { ++steps; });
  EXPECT_EQ(c.threads_all, 2);
  EXPECT_FALSE(c.kernel_isa.empty());
  // gemv: 2 shapes, gemm: 1 shape; 5 types; 1 and 2 threads.
  EXPECT_EQ(c.runs.size(), (2u + 1u) * 5u * 2u);
  EXPECT_EQ(steps, static_cast<int>(c.runs.size()));
  for (const char* dtype : {"f32", "f16", "bf16", "q8_0", "q4_0"}) {
    for (const auto* table : {&c.gemv_gflops, &c.gemm_gflops}) {
      ASSERT_EQ(table->count(dtype), 1u) << dtype;
      for (const Figure* f : {&table->at(dtype).threads_1, &table->at(dtype).threads_all}) {
        ASSERT_TRUE(f->available()) << dtype;
        EXPECT_GT(*f->value, 0);
        EXPECT_EQ(f->unit, "GFLOP/s");
        EXPECT_EQ(f->provenance, Provenance::kMeasured);
        EXPECT_EQ(f->stats->n, 5);
        EXPECT_NE(f->source.find("strata::model::matmul"), std::string::npos) << f->source;
      }
    }
    // The planner's figure is the first shape's.
    EXPECT_NE(c.gemv_gflops.at(dtype).threads_all.source.find("64x128"), std::string::npos);
    EXPECT_NE(c.gemv_gflops.at(dtype).threads_all.source.find("2 threads"), std::string::npos);
    EXPECT_NE(c.gemm_gflops.at(dtype).threads_1.source.find("x 8 tokens"), std::string::npos);
    // GEMV reads cold weights from a pool of copies; GEMM reuses one copy.
    EXPECT_NE(c.gemv_gflops.at(dtype).threads_1.source.find("copies"), std::string::npos);
    EXPECT_EQ(c.gemm_gflops.at(dtype).threads_1.source.find("copies"), std::string::npos);
  }
}

TEST(Compute, ModelShapesAreAppendedAsAllThreadGemvRuns) {
  Compute c;
  ComputeOptions o = tiny(2);
  o.reps = 3;
  int steps = 0;
  probe_gemv_shapes({{model::DType::kQ4_0, 96, 64}, {model::DType::kF16, 32, 128}}, o, c,
                    [&](const std::string&) { ++steps; });
  EXPECT_EQ(steps, 2);
  ASSERT_EQ(c.runs.size(), 2u);
  const ComputeRun& r = c.runs[0];
  EXPECT_EQ(r.op, "gemv");
  EXPECT_EQ(r.dtype, "q4_0");
  EXPECT_EQ(r.rows, 96);
  EXPECT_EQ(r.cols, 64);
  EXPECT_EQ(r.n_tokens, 1);
  EXPECT_EQ(r.threads, 2);
  ASSERT_TRUE(r.gflops.available());
  EXPECT_EQ(r.gflops.stats->n, 3);
  EXPECT_EQ(*r.gflops.value, r.gflops.stats->p90);  // a peak rate
  EXPECT_EQ(c.runs[1].dtype, "f16");
  EXPECT_TRUE(c.gemv_gflops.empty());  // the planner's figures are probe_compute's alone
}

TEST(Compute, OneThreadMachineMeasuresOnce) {
  Compute c;
  probe_compute(tiny(1), c, nullptr);
  EXPECT_EQ(c.runs.size(), 3u * 5u);
  EXPECT_EQ(c.gemv_gflops.at("q4_0").threads_1, c.gemv_gflops.at("q4_0").threads_all);
}

TEST(Compute, MatmulLoadCountsTwoFlopsPerMultiplyAdd) {
  MatmulLoad load(model::DType::kQ8_0, 64, 256, 4, 1);
  EXPECT_DOUBLE_EQ(load.run_once(), 2.0 * 64 * 256 * 4 / 1e9);
  EXPECT_NE(load.describe().find("gemm q8_0 64x256 x 4 tokens, 1 thread"), std::string::npos);
  load.set_threads(2);
  EXPECT_NE(load.describe().find("2 threads"), std::string::npos);
  EXPECT_DOUBLE_EQ(load.run_once(), 2.0 * 64 * 256 * 4 / 1e9);
}

TEST(Compute, PoolHoldsWholeCopiesOfTheWeights) {
  // 64 rows of 256 q8_0 elements: 64 x 8 blocks x 34 B = 17408 B; 100000 B need 6 copies.
  MatmulLoad load(model::DType::kQ8_0, 64, 256, 1, 1, 100000);
  EXPECT_NE(load.describe().find("cycled through 6 copies"), std::string::npos) << load.describe();
  for (int i = 0; i < 13; ++i) EXPECT_GT(load.run_once(), 0);  // wraps around the copies
}

}  // namespace
}  // namespace strata::profiles
