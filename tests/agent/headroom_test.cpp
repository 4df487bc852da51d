// The emulation headroom in `strata run`'s report: how an emulating stage's step statistics
// (local compute before pacing, the paced time) fold into its medians and overruns, and how the
// report writes them. Steps are made up here, so the arithmetic is checked exactly; the
// pipeline test checks the figures of a real emulated run for consistency.
#include "headroom.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace strata::agent {
namespace {

transport::StepStats step(uint64_t id, double local_ms, double paced_ms) {
  transport::StepStats s;
  s.step_id = id;
  s.n_tokens = 1;
  s.local_ms = local_ms;
  s.paced_ms = paced_ms;
  s.compute_ms = std::max(local_ms, paced_ms);
  return s;
}

bool odd_is_decode(uint64_t id) { return id % 2 == 1; }

TEST(Headroom, MediansOverDecodeStepsOverrunsOverEveryPacedStep) {
  // Decode steps 1, 3, 5 (local 1, 2, 9 against paced 4, 4, 5): medians 2 and 4. Step 2 is a
  // prompt step that overran by 3; step 5 overran by 4; step 6 failed and was never paced.
  const std::vector<transport::StepStats> steps = {step(1, 1.0, 4.0), step(2, 8.0, 5.0),
                                                   step(3, 2.0, 4.0), step(4, 1.0, 6.0),
                                                   step(5, 9.0, 5.0), step(6, 0.0, 0.0)};
  const EmulationHeadroom h = measure_headroom(steps, odd_is_decode);
  EXPECT_TRUE(h.emulating());
  EXPECT_EQ(h.paced_steps, 5);
  EXPECT_EQ(h.overrun_steps, 2);
  EXPECT_DOUBLE_EQ(h.overrun_ms, 7.0);
  EXPECT_EQ(h.decode_steps, 3);
  EXPECT_DOUBLE_EQ(h.decode_local_ms_median, 2.0);
  EXPECT_DOUBLE_EQ(h.decode_paced_ms_median, 4.0);
  EXPECT_DOUBLE_EQ(h.local_to_paced(), 0.5);
}

TEST(Headroom, AStageThatDoesNotEmulateHasNone) {
  const EmulationHeadroom h =
      measure_headroom({step(1, 2.0, 0.0), step(3, 3.0, 0.0)}, odd_is_decode);
  EXPECT_FALSE(h.emulating());
  EXPECT_EQ(h.overrun_steps, 0);
  EXPECT_EQ(h.decode_steps, 0);
  EXPECT_EQ(h.local_to_paced(), 0.0);
  EXPECT_TRUE(headroom_json(h).is_null());
  StageReport s;
  s.device = "laptop";
  s.emulation = h;
  EXPECT_EQ(format_headroom({s}), "");
}

TEST(Headroom, ReportLinesNameEachEmulatingStageAndWarnOfContention) {
  StageReport pi5, laptop, calm;
  pi5.device = "pi5";
  pi5.emulation = measure_headroom({step(1, 2.7, 4.45), step(2, 14.0, 4.2)}, odd_is_decode);
  laptop.device = "laptop";  // not emulating: no line
  calm.device = "pi4";
  calm.emulation = measure_headroom({step(1, 1.0, 4.0), step(3, 1.0, 4.0)}, odd_is_decode);
  const std::string out = format_headroom({pi5, laptop, calm});
  EXPECT_NE(out.find("emulation: pi5 computed a decode step in 2.70 ms here against 4.45 ms "
                     "paced (61%); 1 of 2 paced steps overran by 9.8 ms in all\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("emulation: pi4 computed a decode step in 1.00 ms here against 4.00 ms "
                     "paced (25%); none of 2 paced steps overran\n"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("laptop"), std::string::npos) << out;
  EXPECT_NE(out.find("contention"), std::string::npos) << out;
  // Without an overrun, no note.
  EXPECT_EQ(format_headroom({calm}).find("contention"), std::string::npos);

  const nlohmann::json j = headroom_json(pi5.emulation);
  EXPECT_EQ(j["paced_steps"], 2);
  EXPECT_EQ(j["overrun_steps"], 1);
  EXPECT_NEAR(j["overrun_ms"].get<double>(), 9.8, 1e-12);
  EXPECT_NEAR(j["local_to_paced"].get<double>(), 2.7 / 4.45, 1e-12);
}

TEST(Headroom, AStageWithoutDecodeStepsSaysSo) {
  StageReport s;
  s.device = "pi5";
  s.emulation = measure_headroom({step(2, 1.0, 3.0)}, odd_is_decode);
  EXPECT_NE(format_headroom({s}).find("pi5 ran no decode-only step; none of 1 paced steps"),
            std::string::npos)
      << format_headroom({s});
  EXPECT_TRUE(headroom_json(s.emulation)["local_to_paced"].is_null());
}

}  // namespace
}  // namespace strata::agent
