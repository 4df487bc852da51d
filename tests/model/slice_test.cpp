// Model slices: what a coordinator ships to an agent. A model cut into slices and run stage by
// stage gives the same bits as the whole model.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "strata/model/engine.h"
#include "strata/model/model.h"

namespace strata::model {
namespace {

std::string tmp(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("strata_slice_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

std::unique_ptr<Model> synth(bool tied, const std::string& path) {
  SynthSpec s;
  s.dim = 64;
  s.n_layers = 4;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.ffn_dim = 128;
  s.vocab = 300;
  s.type = DType::kQ4_0;
  s.tied_embeddings = tied;
  EXPECT_TRUE(synth_model(s, path, {}).ok());
  auto m = Model::load(path);
  EXPECT_TRUE(m.ok()) << m.status().to_string();
  return std::move(m).value();
}

std::vector<float> run_stages(const std::vector<const Model*>& stages,
                              const std::vector<int32_t>& prompt) {
  const ModelConfig& c = stages.front()->config();
  const auto n = static_cast<int64_t>(prompt.size());
  std::vector<float> h(static_cast<size_t>(n * c.dim));
  std::vector<TokenSlot> slots;
  for (int64_t t = 0; t < n; ++t) slots.push_back({0, static_cast<int32_t>(t)});
  std::vector<float> logits(static_cast<size_t>(c.vocab));
  for (size_t i = 0; i < stages.size(); ++i) {
    EngineOptions o;
    o.n_threads = static_cast<int>(i) + 1;
    o.ctx = 32;
    o.layer_begin = stages[i]->block_begin();
    o.layer_end = stages[i]->block_end();
    auto e = Engine::create(*stages[i], o);
    EXPECT_TRUE(e.ok()) << e.status().to_string();
    if (i == 0) {
      EXPECT_TRUE((*e)->embed(prompt, h.data()).ok());
    }
    EXPECT_TRUE((*e)->forward(slots, h.data()).ok());
    if (i + 1 == stages.size()) (*e)->head(h.data() + (n - 1) * c.dim, 1, logits.data());
  }
  return logits;
}

class SliceTest : public ::testing::TestWithParam<bool> {};

TEST_P(SliceTest, SlicesRunStageByStageGiveTheWholeModelsBits) {
  const bool tied = GetParam();
  const std::string whole_path = tmp(tied ? "tied.gguf" : "untied.gguf");
  auto whole = synth(tied, whole_path);
  const std::vector<int32_t> prompt = {1, 300 - 1, 17, 260, 5};
  const auto want = run_stages({whole.get()}, prompt);

  const std::vector<std::array<int64_t, 2>> cuts = {{0, 1}, {1, 3}, {3, 4}};
  std::vector<std::unique_ptr<Model>> slices;
  for (size_t i = 0; i < cuts.size(); ++i) {
    const std::string p = tmp("s" + std::to_string(i) + (tied ? "t" : "u") + ".gguf");
    ASSERT_TRUE(
        write_model_slice(*whole, cuts[i][0], cuts[i][1], i == 0, i + 1 == cuts.size(), p).ok());
    auto m = Model::load(p);
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    EXPECT_TRUE((*m)->is_slice());
    EXPECT_EQ((*m)->block_begin(), cuts[i][0]);
    EXPECT_EQ((*m)->block_end(), cuts[i][1]);
    EXPECT_EQ((*m)->has_embedding(), i == 0);
    EXPECT_EQ((*m)->has_head(), i + 1 == cuts.size());
    // The streaming layout (an agent streams a stage that exceeds its budget from it).
    EXPECT_EQ((*m)->file().alignment(), 4096u);
    EXPECT_TRUE((*m)->file().has("strata.stream.layer_offsets"));
    // Cutting the same slice again gives the same bytes: the coordinator's hash of what it
    // ships is what the agent checks and caches it under, whichever run cut it.
    const std::string again = p + ".again";
    ASSERT_TRUE(
        write_model_slice(*whole, cuts[i][0], cuts[i][1], i == 0, i + 1 == cuts.size(), again)
            .ok());
    EXPECT_EQ(*hash_file(again), *hash_file(p));
    std::filesystem::remove(again);
    slices.push_back(std::move(m).value());
    std::filesystem::remove(p);
  }
  EXPECT_EQ(run_stages({slices[0].get(), slices[1].get(), slices[2].get()}, prompt), want);

  // An engine asked for blocks the slice lacks is refused with a message, not a crash.
  EngineOptions o;
  o.layer_begin = 0;
  o.layer_end = 4;
  EXPECT_EQ(Engine::create(*slices[1], o).status().code(), StatusCode::kInvalidArgument);
  std::filesystem::remove(whole_path);
}

INSTANTIATE_TEST_SUITE_P(Tied, SliceTest, ::testing::Bool());

// A stage of the embedding alone (a plan may cut one) has no blocks and so no layer extents.
TEST(Slice, AnEmbeddingOnlySliceHasNoLayerExtents) {
  const std::string whole_path = tmp("embd_whole.gguf");
  auto whole = synth(false, whole_path);
  const std::string p = tmp("embd_only.gguf");
  ASSERT_TRUE(write_model_slice(*whole, 0, 0, true, false, p).ok());
  auto m = Model::load(p);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_TRUE((*m)->has_embedding());
  EXPECT_EQ((*m)->block_begin(), (*m)->block_end());
  EXPECT_FALSE((*m)->file().has("strata.stream.layer_offsets"));
  std::filesystem::remove(p);
  std::filesystem::remove(whole_path);
}

TEST(Hash, StableSplitInvariantAndSensitive) {
  std::vector<uint8_t> a(100003);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint8_t>(i * 31 + 7);
  const std::string h = hash_bytes(a.data(), a.size());
  EXPECT_EQ(h.size(), 16u);
  EXPECT_EQ(h, hash_bytes(a.data(), a.size()));
  const std::string p = tmp("hash.bin");
  {
    FILE* f = std::fopen(p.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fwrite(a.data(), 1, a.size(), f);
    std::fclose(f);
  }
  EXPECT_EQ(*hash_file(p), h);
  std::filesystem::remove(p);
  a[50000] ^= 1;
  EXPECT_NE(hash_bytes(a.data(), a.size()), h);
  EXPECT_NE(hash_bytes(a.data(), a.size() - 1), hash_bytes(a.data(), a.size()));
  EXPECT_EQ(hash_file("/nonexistent/x").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace strata::model
