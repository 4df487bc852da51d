// The emulating agent paces each step to the reference device's roofline: the time must be
// the planner's own figure for the same stage, or the demo's prediction error would measure a
// mismatch between two cost models instead of the runtime.
#include "emulation.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "strata/base/io.h"
#include "strata/partitioner/cost_model.h"

namespace strata::agent {
namespace {

class Emulation : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("strata-emulation-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "m.gguf").string();
    model::SynthSpec spec;
    spec.dim = 128;
    spec.n_layers = 4;
    spec.n_heads = 4;
    spec.n_kv_heads = 2;
    spec.ffn_dim = 256;
    spec.vocab = 512;
    spec.type = model::DType::kQ4_0;
    ASSERT_TRUE(model::synth_model(spec, path_, {}).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(Emulation, PacesAStageToThePlannersDecodeAndPrefillTimes) {
  auto pace = load_pace(STRATA_SOURCE_DIR "/profiles/devices/rpi4b-4gb.json");
  ASSERT_TRUE(pace.ok()) << pace.status().to_string();
  EXPECT_GT(pace->mem_cap_bytes, 0);
  auto m = model::Model::load(path_);
  ASSERT_TRUE(m.ok());
  // Stage 0 of a two-stage split: embedding + blocks 0 and 1 = plan units [0, 3).
  auto units = stage_units(**m, true, 0, 2, false);
  ASSERT_TRUE(units.ok()) << units.status().to_string();
  ASSERT_EQ(units->size(), 3u);

  auto table = partitioner::layer_table_from_gguf(path_);
  ASSERT_TRUE(table.ok());
  partitioner::PlanSettings s;
  s.sequences = 2;
  s.micro_batch = 2;
  s.prompt_len = 16;
  s.context = 48;  // decode position (16 + 48) / 2 = 32
  auto cm = partitioner::CostModel::build(*table, {pace->reference},
                                          partitioner::LinkTable({pace->reference.name}, {}), s);
  ASSERT_TRUE(cm.ok()) << cm.status().to_string();
  const partitioner::StageCost& st = cm->stage(0, 0, 3);
  // A decode step of two tokens at position 32; the 16-token prompt from position 0.
  EXPECT_NEAR(reference_step_s(*pace, *units, 2, 2 * 32.0, 2 * 32.0), st.decode_s,
              1e-12 + 1e-9 * st.decode_s);
  EXPECT_NEAR(reference_step_s(*pace, *units, 16, 16 * 15 / 2.0, 16), st.prefill_s,
              1e-12 + 1e-9 * st.prefill_s);
  // The head stage: blocks 2, 3 and the head.
  auto tail = stage_units(**m, false, 2, 4, true);
  ASSERT_TRUE(tail.ok());
  EXPECT_NEAR(reference_step_s(*pace, *tail, 2, 64.0, 64.0), cm->stage(0, 3, 6).decode_s,
              1e-9 * cm->stage(0, 3, 6).decode_s);
}

TEST_F(Emulation, PacesASliceAsThePlanCostsItsStage) {
  // An agent holds only its slice: the costs must come out the same as from the whole model.
  auto pace = load_pace(STRATA_SOURCE_DIR "/profiles/devices/rpi4b-4gb.json");
  ASSERT_TRUE(pace.ok());
  auto whole = model::Model::load(path_);
  ASSERT_TRUE(whole.ok());
  const std::string slice_path = (dir_ / "tail.gguf").string();
  ASSERT_TRUE(model::write_model_slice(**whole, 2, 4, false, true, slice_path).ok());
  auto slice = model::Model::load(slice_path);
  ASSERT_TRUE(slice.ok()) << slice.status().to_string();
  auto from_slice = stage_units(**slice, false, 2, 4, true);
  auto from_whole = stage_units(**whole, false, 2, 4, true);
  ASSERT_TRUE(from_slice.ok() && from_whole.ok());
  EXPECT_EQ(reference_step_s(*pace, *from_slice, 2, 64.0, 64.0),
            reference_step_s(*pace, *from_whole, 2, 64.0, 64.0));
  EXPECT_EQ(reference_step_s(*pace, *from_slice, 16, 120.0, 16.0),
            reference_step_s(*pace, *from_whole, 16, 120.0, 16.0));
}

TEST(EmulationErrors, AProfileWithoutTheFiguresIsRefusedByName) {
  EXPECT_EQ(load_pace("/nonexistent/profile.json").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace strata::agent
