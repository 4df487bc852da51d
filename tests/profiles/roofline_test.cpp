#include <gtest/gtest.h>

#include <filesystem>

#include "strata/model/model.h"
#include "strata/profiles/roofline.h"

namespace strata::profiles {
namespace {

TEST(Roofline, MemoryBoundDecode) {
  // 10 GB/s over 0.6 GB per token: 16.7 tok/s; compute would allow 50 / 2.2 = 22.7.
  const RooflineResult r = roofline({6e8, 2.2e9, 10.0, 50.0, 80.0});
  EXPECT_NEAR(r.decode_tok_per_s, 10e9 / 6e8, 1e-9);
  EXPECT_TRUE(r.decode_memory_bound);
  EXPECT_NEAR(r.prefill_tok_per_s, 80e9 / 2.2e9, 1e-9);
}

TEST(Roofline, ComputeBoundDecode) {
  const RooflineResult r = roofline({6e8, 2.2e9, 100.0, 11.0, 80.0});
  EXPECT_NEAR(r.decode_tok_per_s, 5.0, 1e-9);
  EXPECT_FALSE(r.decode_memory_bound);
}

Profile measured_profile() {
  Profile p;
  p.memory.read_gb_per_s.threads_all = read_figure(12.0, "GB/s", "read");
  p.memory.triad_gb_per_s.threads_all = read_figure(9.0, "GB/s", "triad");
  p.compute.gemv_gflops["q4_0"].threads_all = read_figure(30.0, "GFLOP/s", "gemv");
  p.compute.gemm_gflops["q4_0"].threads_all = read_figure(60.0, "GFLOP/s", "gemm");
  p.power.boundary = Boundary::kPackage;
  p.power.load_watts = read_figure(6.0, "W", "rapl");
  return p;
}

TEST(Predict, TakesTheLowerRoofOfTheModelsType) {
  const Prediction pr = predict(measured_profile(), "tiny", "q4_0", 6e8, 2e9);
  ASSERT_TRUE(pr.decode_tok_per_s.available());
  // min(12e9 / 6e8 = 20 (memory), 30e9 / 2e9 = 15 (compute)) = 15, compute-bound.
  EXPECT_NEAR(*pr.decode_tok_per_s.value, 15.0, 1e-9);
  EXPECT_EQ(pr.decode_bound, "compute");
  EXPECT_EQ(pr.decode_tok_per_s.provenance, Provenance::kDerived);
  EXPECT_NEAR(*pr.prefill_tok_per_s.value, 30.0, 1e-9);
  EXPECT_NEAR(*pr.joules_per_token.value, 6.0 / 15.0, 1e-9);
  EXPECT_EQ(pr.joules_per_token.unit, "J/token");
}

TEST(Predict, FallsBackToTriadWithoutRead) {
  Profile p = measured_profile();
  p.memory.read_gb_per_s.threads_all = unavailable_figure("GB/s", Reason::kUnsupported, "x");
  const Prediction pr = predict(p, "tiny", "q4_0", 6e8, 1e9);
  EXPECT_NEAR(*pr.decode_tok_per_s.value, 15.0, 1e-9);  // 9e9 / 6e8, below 30e9 / 1e9
  EXPECT_EQ(pr.decode_bound, "memory");
  EXPECT_NE(pr.decode_tok_per_s.source.find("9 GB/s"), std::string::npos);
}

TEST(Predict, MissingFiguresCarryTheirReason) {
  Profile p = measured_profile();
  p.power.load_watts = unavailable_figure("W", Reason::kPermissionDenied, "energy_uj");
  const Prediction a = predict(p, "tiny", "q8_0", 6e8, 2e9);  // no q8_0 figures at all
  EXPECT_FALSE(a.decode_tok_per_s.available());
  EXPECT_EQ(a.decode_tok_per_s.reason, Reason::kNotPresent);
  EXPECT_FALSE(a.prefill_tok_per_s.available());
  const Prediction b = predict(p, "tiny", "q4_0", 6e8, 2e9);
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
  const Result<Prediction> r = predict_for_model(measured_profile(), path.string());
  std::filesystem::remove(path);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->dtype, "q4_0");
  EXPECT_EQ(r->model, path.filename().string());
  // Two blocks' 7 matrices plus the output head, 2 FLOPs per weight; q4_0 is 18 B per 32.
  const double weights = 2.0 * (4 * 256.0 * 256 + 3 * 256.0 * 512) + 512.0 * 256;
  EXPECT_GE(r->flops_per_token, 2 * weights);
  EXPECT_LT(r->flops_per_token, 2 * weights * 1.05);
  EXPECT_GT(r->weight_bytes_per_token, weights * 18 / 32);
  ASSERT_TRUE(r->decode_tok_per_s.available());
  EXPECT_EQ(r->decode_tok_per_s.provenance, Provenance::kDerived);
}

TEST(Predict, MissingGgufIsAnError) {
  EXPECT_FALSE(predict_for_model(measured_profile(), "/no/such/model.gguf").ok());
}

}  // namespace
}  // namespace strata::profiles
