#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <tuple>

#include "strata/model/model.h"
#include "strata/profiles/roofline.h"

namespace strata::profiles {
namespace {

Profile measured_profile() {
  Profile p;
  p.memory.read_gb_per_s.threads_all = read_figure(12.0, "GB/s", "read");
  p.memory.triad_gb_per_s.threads_all = read_figure(9.0, "GB/s", "triad");
  p.compute.gemv_gflops["q4_0"].threads_all = read_figure(30.0, "GFLOP/s", "gemv");
  p.compute.gemm_gflops["q4_0"].threads_all = read_figure(60.0, "GFLOP/s", "gemm");
  p.compute.gemv_gflops["f32"].threads_all = read_figure(5.0, "GFLOP/s", "gemv");
  p.power.boundary = Boundary::kPackage;
  p.power.load_watts = read_figure(6.0, "W", "rapl");
  return p;
}

// One q4_0 unit of 6e8 weight bytes (1.0667e9 elements, 2.1333e9 FLOPs per token).
UnitCost q4_unit(double bytes) {
  UnitCost u;
  u.weight_bytes_by_type["q4_0"] = bytes;
  u.weight_bytes_read_per_token = bytes;
  u.flops_per_token = 2 * bytes * 32 / 18;
  return u;
}

TEST(Predict, SumsEachUnitsLowerRoof) {
  // q4_0 at 30 GFLOP/s streams 30e9 * 18 / 64 = 8.44 GB/s, below the 12 GB/s read figure:
  // the GEMV term wins and the block is compute-bound.
  const UnitCost block = q4_unit(6e8);
  const double gemv_s = block.flops_per_token / 30e9;
  const Prediction pr = predict(measured_profile(), "tiny", "q4_0", {block}, 0);
  ASSERT_TRUE(pr.decode_tok_per_s.available());
  EXPECT_NEAR(*pr.decode_tok_per_s.value, 1 / gemv_s, 1e-9);
  EXPECT_EQ(pr.decode_bound, "compute");
  EXPECT_EQ(pr.decode_tok_per_s.provenance, Provenance::kDerived);
  EXPECT_NEAR(pr.flops_per_token, block.flops_per_token, 1e-6);
  EXPECT_NEAR(*pr.prefill_tok_per_s.value, 60e9 / block.flops_per_token, 1e-9);
  EXPECT_NEAR(*pr.joules_per_token.value, 6.0 * gemv_s, 1e-9);
  EXPECT_EQ(pr.joules_per_token.unit, "J/token");
}

TEST(Predict, AddsAttentionAndKvAtTheContext) {
  UnitCost block = q4_unit(6e8);
  block.attn_flops_per_token_per_ctx = 1e6;
  block.kv_bytes_per_token = 1e5;
  UnitCost embd;  // one row looked up: no FLOPs, bytes at the read bandwidth
  embd.weight_bytes_by_type["q4_0"] = 1e8;
  embd.weight_bytes_read_per_token = 1.2e6;
  const Prediction pr = predict(measured_profile(), "tiny", "q4_0", {embd, block}, 100);
  const double block_s = (block.flops_per_token + 1e8) / 30e9;  // vs (6e8 + 1e7) B / 12 GB/s
  const double embd_s = 1.2e6 / 12e9;
  EXPECT_NEAR(*pr.decode_tok_per_s.value, 1 / (block_s + embd_s), 1e-9);
  EXPECT_EQ(pr.ctx, 100);
  EXPECT_EQ(pr.weight_bytes_per_token, 6e8 + 1.2e6);
}

TEST(Predict, BandwidthBoundWhenTheGemvOutrunsMemory) {
  Profile p = measured_profile();
  p.compute.gemv_gflops["q4_0"].threads_all = read_figure(100.0, "GFLOP/s", "gemv");
  const Prediction pr = predict(p, "tiny", "q4_0", {q4_unit(6e8)}, 0);
  EXPECT_NEAR(*pr.decode_tok_per_s.value, 12e9 / 6e8, 1e-9);
  EXPECT_EQ(pr.decode_bound, "memory");
}

TEST(Predict, SplitsAUnitsFlopsOverItsTypes) {
  Profile p = measured_profile();        // f32 gemv 5 GFLOP/s
  UnitCost u = q4_unit(18e6);            // 32e6 q4_0 elements
  u.weight_bytes_by_type["f32"] = 32e6;  // 8e6 f32 elements: a fifth of the elements
  u.weight_bytes_read_per_token = 50e6;
  u.flops_per_token = 80e6;
  const Prediction pr = predict(p, "tiny", "q4_0", {u}, 0);
  const double s = 0.8 * 80e6 / 30e9 + 0.2 * 80e6 / 5e9;
  EXPECT_NEAR(*pr.decode_tok_per_s.value, 1 / s, 1e-6);
}

TEST(Predict, TimesEachMatrixAtTheRateOfItsShape) {
  Profile p = measured_profile();  // q4_0 gemv 30 GFLOP/s
  p.compute.threads_all = 2;
  p.compute.runs.push_back({"gemv", "q4_0", 4096, 1024, 1, 2, read_figure(10.0, "GFLOP/s", "")});
  // One thread, not the machine's all: not the figure decode runs at.
  p.compute.runs.push_back({"gemv", "q4_0", 1024, 1024, 1, 1, read_figure(1.0, "GFLOP/s", "")});
  UnitCost u;
  u.matrices = {{"q4_0", 4096, 1024}, {"q4_0", 1024, 1024}};
  u.weight_bytes_by_type["q4_0"] = 5120.0 * 1024 * 18 / 32;
  u.weight_bytes_read_per_token = u.weight_bytes_by_type["q4_0"];
  u.flops_per_token = 2.0 * 5120 * 1024;
  u.attn_flops_per_token_per_ctx = 1e5;
  const Prediction pr = predict(p, "tiny", "q4_0", {u}, 10);
  const double s = 2.0 * 4096 * 1024 / 10e9 + 2.0 * 1024 * 1024 / 30e9 + 1e6 / 30e9;
  ASSERT_TRUE(pr.decode_tok_per_s.available());
  EXPECT_NEAR(*pr.decode_tok_per_s.value, 1 / s, 1e-6);
  EXPECT_EQ(pr.decode_bound, "compute");
  EXPECT_NE(pr.decode_tok_per_s.source.find("1 matrices at the GEMV rate of their own shape"),
            std::string::npos)
      << pr.decode_tok_per_s.source;
}

TEST(Predict, AttentionRunsAtTheEnginesMeasuredRate) {
  Profile p = measured_profile();  // q4_0 gemv 30 GFLOP/s
  UnitCost u;
  u.matrices = {{"q4_0", 1024, 1024}};
  u.weight_bytes_by_type["q4_0"] = 1024.0 * 1024 * 18 / 32;
  u.weight_bytes_read_per_token = u.weight_bytes_by_type["q4_0"];
  u.flops_per_token = 2.0 * 1024 * 1024;
  u.attn_flops_per_token_per_ctx = 1e5;
  const Prediction without = predict(p, "tiny", "q4_0", {u}, 10);
  ASSERT_TRUE(without.decode_tok_per_s.available());
  EXPECT_NEAR(*without.decode_tok_per_s.value, 1 / (2.0 * 1024 * 1024 / 30e9 + 1e6 / 30e9), 1e-6);
  p.compute.attention_gflops.threads_all = read_figure(2.0, "GFLOP/s", "attend");
  const Prediction with = predict(p, "tiny", "q4_0", {u}, 10);
  ASSERT_TRUE(with.decode_tok_per_s.available());
  EXPECT_NEAR(*with.decode_tok_per_s.value, 1 / (2.0 * 1024 * 1024 / 30e9 + 1e6 / 2e9), 1e-6);
  EXPECT_NE(with.decode_tok_per_s.source.find("attention at 2 GFLOP/s (measured)"),
            std::string::npos)
      << with.decode_tok_per_s.source;
}

TEST(Predict, MeasuredRatesCountAtTheirMedian) {
  Profile p = measured_profile();
  // The GEMV figure's value is the p90 of its repetitions; a run sees the median.
  p.compute.gemv_gflops["q4_0"].threads_all.stats = Stats{24.0, 20.0, 30.0, 41};
  const Prediction pr = predict(p, "m", "q4_0", {q4_unit(6e8)}, 0);
  ASSERT_TRUE(pr.decode_tok_per_s.available());
  EXPECT_NEAR(*pr.decode_tok_per_s.value, 24e9 / (2 * 6e8 * 32 / 18), 1e-9);
}

TEST(Predict, FallsBackToTriadWithoutRead) {
  Profile p = measured_profile();
  p.memory.read_gb_per_s.threads_all = unavailable_figure("GB/s", Reason::kUnsupported, "x");
  p.compute.gemv_gflops["q4_0"].threads_all = read_figure(100.0, "GFLOP/s", "gemv");
  const Prediction pr = predict(p, "tiny", "q4_0", {q4_unit(6e8)}, 0);
  EXPECT_NEAR(*pr.decode_tok_per_s.value, 15.0, 1e-9);  // 9e9 / 6e8
  EXPECT_EQ(pr.decode_bound, "memory");
  EXPECT_NE(pr.decode_tok_per_s.source.find("9 GB/s"), std::string::npos);
}

TEST(Predict, MissingFiguresCarryTheirReason) {
  Profile p = measured_profile();
  p.power.load_watts = unavailable_figure("W", Reason::kPermissionDenied, "energy_uj");
  UnitCost q8;
  q8.weight_bytes_by_type["q8_0"] = 6e8;
  q8.weight_bytes_read_per_token = 6e8;
  q8.flops_per_token = 2e9;
  const Prediction a = predict(p, "tiny", "q8_0", {q8}, 0);  // no q8_0 figures at all
  EXPECT_FALSE(a.decode_tok_per_s.available());
  EXPECT_EQ(a.decode_tok_per_s.reason, Reason::kNotPresent);
  EXPECT_NE(a.decode_tok_per_s.source.find("q8_0 gemv"), std::string::npos);
  EXPECT_FALSE(a.prefill_tok_per_s.available());
  const Prediction b = predict(p, "tiny", "q4_0", {q4_unit(6e8)}, 0);
  EXPECT_TRUE(b.decode_tok_per_s.available());
  EXPECT_FALSE(b.joules_per_token.available());
  EXPECT_EQ(b.joules_per_token.reason, Reason::kPermissionDenied);
}

TEST(Predict, ForAGgufUsesTheEnginesCostTable) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("strata-predict-test-" + std::to_string(::getpid()) + ".gguf");
  model::SynthSpec spec;  // 2 layers of dim 256, ffn 512, vocab 512
  spec.type = model::DType::kQ4_0;
  ASSERT_TRUE(model::synth_model(spec, path.string(), nullptr).ok());
  const Result<Prediction> r = predict_for_model(measured_profile(), path.string(), 64);
  std::filesystem::remove(path);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->dtype, "q4_0");
  EXPECT_EQ(r->model, path.filename().string());
  // Two blocks' 7 matrices plus the output head, 2 FLOPs per weight; q4_0 is 18 B per 32.
  const double weights = 2.0 * (4 * 256.0 * 256 + 3 * 256.0 * 512) + 512.0 * 256;
  EXPECT_GE(r->flops_per_token, 2 * weights);
  EXPECT_LT(r->flops_per_token, 2 * weights * 1.05);
  EXPECT_GT(r->weight_bytes_per_token, weights * 18 / 32);
  EXPECT_EQ(r->ctx, 64);
  EXPECT_NE(r->decode_tok_per_s.source.find("0 matrices at the GEMV rate"), std::string::npos);
  ASSERT_TRUE(r->decode_tok_per_s.available());
  EXPECT_EQ(r->decode_tok_per_s.provenance, Provenance::kDerived);
}

TEST(Predict, ForAGgufTimesTheMatricesNotTheNorms) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("strata-predict-f32-" + std::to_string(::getpid()) + ".gguf");
  model::SynthSpec spec;
  spec.type = model::DType::kQ4_0;
  ASSERT_TRUE(model::synth_model(spec, path.string(), nullptr).ok());
  // The units list their q4_0 matrices, so the f32 norms need no f32 GEMV figure; without
  // the q4_0 one there is no prediction.
  Profile p = measured_profile();
  p.compute.gemv_gflops.erase("f32");
  const Result<Prediction> with_q4 = predict_for_model(p, path.string(), 0);
  p.compute.gemv_gflops.erase("q4_0");
  const Result<Prediction> without = predict_for_model(p, path.string(), 0);
  std::filesystem::remove(path);
  ASSERT_TRUE(with_q4.ok() && without.ok());
  EXPECT_TRUE(with_q4->decode_tok_per_s.available());
  EXPECT_FALSE(without->decode_tok_per_s.available());
  EXPECT_NE(without->decode_tok_per_s.source.find("q4_0 gemv"), std::string::npos);
}

TEST(Predict, ModelMatrixShapesAreDistinct) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("strata-predict-shapes-" + std::to_string(::getpid()) + ".gguf");
  model::SynthSpec spec;  // dim 256, 8 heads, 8 kv heads, ffn 512
  spec.type = model::DType::kQ8_0;
  spec.vocab = 1024;
  ASSERT_TRUE(model::synth_model(spec, path.string(), nullptr).ok());
  const Result<std::vector<MatrixCost>> shapes = model_matrix_shapes(path.string());
  std::filesystem::remove(path);
  ASSERT_TRUE(shapes.ok()) << shapes.status().to_string();
  std::set<std::tuple<std::string, int64_t, int64_t>> got;
  for (const MatrixCost& m : *shapes) got.insert({m.type, m.rows, m.cols});
  EXPECT_EQ(got.size(), shapes->size());        // no shape twice
  EXPECT_TRUE(got.count({"q8_0", 256, 256}));   // q, k, v, o
  EXPECT_TRUE(got.count({"q8_0", 512, 256}));   // gate, up
  EXPECT_TRUE(got.count({"q8_0", 256, 512}));   // down
  EXPECT_TRUE(got.count({"q8_0", 1024, 256}));  // the head: vocab x dim
  EXPECT_EQ(got.size(), 4u);
}

TEST(Predict, MissingGgufIsAnError) {
  EXPECT_FALSE(predict_for_model(measured_profile(), "/no/such/model.gguf", 0).ok());
}

}  // namespace
}  // namespace strata::profiles
