// Model::from_gguf on hand-built llama files (every shape and key checked, one broken thing
// per case) and model_cost against costs worked out by hand.
#include "strata/model/model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <set>

namespace strata::model {
namespace {

// A tiny llama: dim 64, 4 heads, 2 kv heads (head_dim 16, kv_dim 32), ffn 96, vocab 300,
// 2 layers. `edit` may change the writer before tensors are added; tensors listed in `drop`
// are left out, `dims`/`types` override a tensor's shape/type.
struct Tweak {
  std::function<void(GgufWriter&)> edit;
  std::set<std::string> drop;
  std::map<std::string, std::vector<int64_t>> dims;
  std::map<std::string, DType> types;
  bool tied = false;
  DType matrix_type = DType::kF32;
  std::vector<std::string> extra;      // extra f32 [64] tensors, after the others
  std::vector<std::string> first_f16;  // extra f16 [1] tensors, before the others
  bool no_tokens = false;              // leave out tokenizer.ggml.tokens
};

constexpr int64_t kDim = 64, kKvDim = 32, kFfn = 96, kVocab = 300, kLayers = 2;

std::vector<uint8_t> tiny_llama(const Tweak& tw = {}) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", "tiny");
  w.set_u32("llama.context_length", 128);
  w.set_u32("llama.embedding_length", kDim);
  w.set_u32("llama.block_count", kLayers);
  w.set_u32("llama.feed_forward_length", kFfn);
  w.set_u32("llama.attention.head_count", 4);
  w.set_u32("llama.attention.head_count_kv", 2);
  w.set_f32("llama.rope.freq_base", 500000.0f);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-6f);
  std::vector<std::string> tokens;
  for (int i = 0; i < kVocab; ++i) tokens.push_back("t" + std::to_string(i));
  if (!tw.no_tokens) w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_u32("tokenizer.ggml.bos_token_id", 5);
  w.set_u32("tokenizer.ggml.eos_token_id", 6);
  if (tw.edit) tw.edit(w);
  auto add = [&](const std::string& name, DType type, std::vector<int64_t> dims) {
    if (tw.drop.count(name) != 0) return;
    if (auto it = tw.dims.find(name); it != tw.dims.end()) dims = it->second;
    if (auto it = tw.types.find(name); it != tw.types.end()) type = it->second;
    int64_t rows = 1;
    for (size_t i = 1; i < dims.size(); ++i) rows *= dims[i];
    w.add_tensor(name, type, dims,
                 std::vector<uint8_t>(static_cast<size_t>(row_bytes(type, dims[0]) * rows), 0));
  };
  for (const std::string& name : tw.first_f16) add(name, DType::kF16, {1});
  const DType m = tw.matrix_type;
  add("token_embd.weight", m, {kDim, kVocab});
  for (int i = 0; i < kLayers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    add(p + "attn_norm.weight", DType::kF32, {kDim});
    add(p + "attn_q.weight", m, {kDim, kDim});
    add(p + "attn_k.weight", m, {kDim, kKvDim});
    add(p + "attn_v.weight", m, {kDim, kKvDim});
    add(p + "attn_output.weight", m, {kDim, kDim});
    add(p + "ffn_norm.weight", DType::kF32, {kDim});
    add(p + "ffn_gate.weight", m, {kDim, kFfn});
    add(p + "ffn_up.weight", m, {kDim, kFfn});
    add(p + "ffn_down.weight", m, {kFfn, kDim});
  }
  add("output_norm.weight", DType::kF32, {kDim});
  if (!tw.tied) add("output.weight", m, {kDim, kVocab});
  for (const std::string& name : tw.extra) add(name, DType::kF32, {kDim});
  return w.serialize();
}

struct Loaded {
  std::vector<uint8_t> bytes;  // must outlive the model
  Result<std::unique_ptr<Model>> model = corrupt("not loaded");
};

std::unique_ptr<Loaded> load(const Tweak& tw = {}) {
  auto l = std::make_unique<Loaded>();
  l->bytes = tiny_llama(tw);
  auto f = GgufFile::parse(l->bytes.data(), l->bytes.size(), "tiny.gguf");
  if (!f.ok()) {
    l->model = f.status();
  } else {
    l->model = Model::from_gguf(std::move(f).value());
  }
  return l;
}

void expect_error(const Tweak& tw, StatusCode code, const std::string& needle) {
  auto l = load(tw);
  ASSERT_FALSE(l->model.ok()) << "loaded; wanted: " << needle;
  EXPECT_EQ(l->model.status().code(), code) << l->model.status().message();
  EXPECT_EQ(l->model.status().message().rfind("tiny.gguf: ", 0), 0u) << l->model.status().message();
  EXPECT_NE(l->model.status().message().find(needle), std::string::npos)
      << "message: " << l->model.status().message() << "\nwanted: " << needle;
}

TEST(ModelLoad, ReadsConfigAndViews) {
  auto l = load();
  ASSERT_TRUE(l->model.ok()) << l->model.status().message();
  const Model& m = **l->model;
  const ModelConfig& c = m.config();
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.name, "tiny");
  EXPECT_EQ(c.n_layers, kLayers);
  EXPECT_EQ(c.dim, kDim);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.kv_dim(), kKvDim);
  EXPECT_EQ(c.ffn_dim, kFfn);
  EXPECT_EQ(c.vocab, kVocab);  // from the token list: no llama.vocab_size
  EXPECT_EQ(c.ctx_train, 128);
  EXPECT_EQ(c.rope_dims, 16);  // default: head_dim
  EXPECT_EQ(c.rope_freq_base, 500000.0);
  EXPECT_FLOAT_EQ(static_cast<float>(c.rms_eps), 1e-6f);
  EXPECT_FALSE(c.tied_embeddings);
  EXPECT_EQ(c.ffn_act, FfnAct::kSilu);
  EXPECT_EQ(c.main_type, DType::kF32);
  EXPECT_EQ(c.bos_id, 5u);
  EXPECT_EQ(c.eos_id, 6u);

  EXPECT_EQ(m.token_embd().rows, kVocab);
  EXPECT_EQ(m.token_embd().cols, kDim);
  EXPECT_EQ(m.output().rows, kVocab);
  EXPECT_NE(m.output().data, m.token_embd().data);
  EXPECT_EQ(m.output_norm(),
            reinterpret_cast<const float*>(m.file().find_tensor("output_norm.weight")->data));
  const LayerWeights& l1 = m.layer(1);
  EXPECT_EQ(l1.attn_k.rows, kKvDim);
  EXPECT_EQ(l1.attn_k.cols, kDim);
  EXPECT_EQ(l1.ffn_down.rows, kDim);
  EXPECT_EQ(l1.ffn_down.cols, kFfn);
  EXPECT_EQ(l1.ffn_gate.rows, kFfn);
  EXPECT_EQ(l1.attn_q.data, m.file().find_tensor("blk.1.attn_q.weight")->data);
  EXPECT_EQ(l1.ffn_norm,
            reinterpret_cast<const float*>(m.file().find_tensor("blk.1.ffn_norm.weight")->data));
}

TEST(ModelLoad, TiedDefaultsAndOverrides) {
  Tweak tw;
  tw.tied = true;
  tw.matrix_type = DType::kQ8_0;
  tw.edit = [](GgufWriter& w) {
    w.set_string("strata.ffn_act", "relu");
    w.set_u32("llama.vocab_size", kVocab);
    w.set_u32("llama.rope.dimension_count", 8);
  };
  auto l = load(tw);
  ASSERT_TRUE(l->model.ok()) << l->model.status().message();
  const Model& m = **l->model;
  EXPECT_TRUE(m.config().tied_embeddings);
  EXPECT_EQ(m.output().data, m.token_embd().data);
  EXPECT_EQ(m.output().type, DType::kQ8_0);
  EXPECT_EQ(m.config().ffn_act, FfnAct::kRelu);
  EXPECT_EQ(m.config().rope_dims, 8);
  EXPECT_EQ(m.config().main_type, DType::kQ8_0);
}

TEST(ModelLoad, VocabFromEmbeddingWhenNoTokenizer) {
  Tweak tw;
  tw.no_tokens = true;
  auto l = load(tw);
  ASSERT_TRUE(l->model.ok()) << l->model.status().message();
  EXPECT_EQ((*l->model)->config().vocab, kVocab);
  tw.drop = {"token_embd.weight"};
  expect_error(tw, StatusCode::kCorrupt,
               "no vocabulary size: neither llama.vocab_size, tokenizer.ggml.tokens nor");
}

TEST(ModelBad, Architecture) {
  Tweak tw;
  tw.edit = [](GgufWriter& w) { w.set_string("general.architecture", "gpt2"); };
  expect_error(tw, StatusCode::kUnsupported, "architecture 'gpt2' is not supported");
  tw.edit = [](GgufWriter& w) { w.set_u32("general.architecture", 1); };
  expect_error(tw, StatusCode::kCorrupt, "key 'general.architecture' is u32, expected a string");
}

TEST(ModelBad, MissingAndAbsurdHparams) {
  Tweak tw;
  tw.edit = [](GgufWriter& w) { w.set_u32("llama.block_count", 0); };
  expect_error(tw, StatusCode::kCorrupt, "llama.block_count is 0 (expected 1 to 2^31)");
  tw.edit = [](GgufWriter& w) { w.set_u32("llama.block_count", 1000000); };
  expect_error(tw, StatusCode::kCorrupt,
               "llama.block_count 1000000 needs at least 9000000 tensors");
  tw.edit = [](GgufWriter& w) { w.set_u32("llama.attention.head_count", 5); };
  expect_error(tw, StatusCode::kCorrupt,
               "llama.embedding_length 64 is not divisible by llama.attention.head_count 5");
  tw.edit = [](GgufWriter& w) { w.set_u32("llama.attention.head_count_kv", 3); };
  expect_error(tw, StatusCode::kCorrupt,
               "llama.attention.head_count 4 is not a multiple of llama.attention.head_count_kv 3");
  tw.edit = [](GgufWriter& w) { w.set_u32("llama.attention.head_count_kv", 8); };
  expect_error(tw, StatusCode::kCorrupt, "is not a multiple of llama.attention.head_count_kv 8");
  tw.edit = [](GgufWriter& w) { w.set_f32("llama.attention.layer_norm_rms_epsilon", -1.0f); };
  expect_error(tw, StatusCode::kCorrupt, "layer_norm_rms_epsilon is -1");
  tw.edit = [](GgufWriter& w) { w.set_u32("llama.rope.dimension_count", 17); };
  expect_error(tw, StatusCode::kCorrupt, "llama.rope.dimension_count 17 must be even");
  tw.edit = [](GgufWriter& w) { w.set_string("llama.embedding_length", "64"); };
  expect_error(tw, StatusCode::kCorrupt,
               "key 'llama.embedding_length' is string, expected a non-negative integer");
  tw.edit = [](GgufWriter& w) { w.set_u32("tokenizer.ggml.eos_token_id", 300); };
  expect_error(tw, StatusCode::kCorrupt,
               "tokenizer.ggml.eos_token_id 300 is outside the vocabulary (300 tokens)");
  tw.edit = [](GgufWriter& w) { w.set_u32("llama.vocab_size", 301); };
  expect_error(tw, StatusCode::kCorrupt,
               "llama.vocab_size 301 differs from the length of tokenizer.ggml.tokens 300");
}

TEST(ModelBad, MissingRequiredKey) {
  // The writer cannot delete a key, so rebuild the header without llama.context_length by
  // renaming it.
  std::vector<uint8_t> b = tiny_llama();
  const std::string key = "llama.context_length";
  auto it = std::search(b.begin(), b.end(), key.begin(), key.end());
  ASSERT_NE(it, b.end());
  *(it + 6) = 'X';  // "llama.Xontext_length"
  auto f = GgufFile::parse(b.data(), b.size(), "tiny.gguf");
  ASSERT_TRUE(f.ok());
  auto m = Model::from_gguf(std::move(f).value());
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kCorrupt);
  EXPECT_EQ(m.status().message(), "tiny.gguf: required key 'llama.context_length' is missing");
}

TEST(ModelBad, UnsupportedVariants) {
  Tweak tw;
  tw.edit = [](GgufWriter& w) { w.set_string("strata.ffn_act", "gelu"); };
  expect_error(tw, StatusCode::kUnsupported, "strata.ffn_act 'gelu' is not supported");
  tw.edit = [](GgufWriter& w) { w.set_u32("llama.expert_count", 8); };
  expect_error(tw, StatusCode::kUnsupported, "mixture-of-experts llama");
  tw.edit = [](GgufWriter& w) { w.set_string("llama.rope.scaling.type", "linear"); };
  expect_error(tw, StatusCode::kUnsupported, "rope scaling 'linear' is not supported");
  tw.edit = [](GgufWriter& w) { w.set_u32("llama.attention.key_length", 32); };
  expect_error(tw, StatusCode::kUnsupported, "key_length/value_length 32/16");
  Tweak extra;
  extra.extra = {"rope_freqs.weight"};
  expect_error(extra, StatusCode::kUnsupported,
               "tensor 'rope_freqs.weight' is not part of the llama layout");
  Tweak norm;
  norm.types["blk.1.ffn_norm.weight"] = DType::kF16;
  expect_error(
      norm, StatusCode::kUnsupported,
      "norm tensor 'blk.1.ffn_norm.weight' has type f16; strata needs norm weights in f32");
}

TEST(ModelBad, MissingTensors) {
  for (const std::string name : {"token_embd.weight", "output_norm.weight", "blk.0.attn_q.weight",
                                 "blk.1.ffn_down.weight", "blk.1.attn_norm.weight"}) {
    Tweak tw;
    tw.drop = {name};
    expect_error(tw, StatusCode::kCorrupt, "tensor '" + name + "' is missing (expected [");
  }
}

TEST(ModelBad, WrongShapes) {
  Tweak tw;
  tw.dims["blk.0.attn_k.weight"] = {kDim, kDim};
  expect_error(tw, StatusCode::kCorrupt,
               "tensor 'blk.0.attn_k.weight' has shape [64, 64], expected [64, 32] (dim 64, "
               "kv_dim 32)");
  tw.dims = {{"blk.1.ffn_down.weight", {kDim, kFfn}}};
  expect_error(tw, StatusCode::kCorrupt,
               "tensor 'blk.1.ffn_down.weight' has shape [64, 96], expected [96, 64]");
  tw.dims = {{"output.weight", {kDim, kVocab - 1}}};
  expect_error(
      tw, StatusCode::kCorrupt,
      "tensor 'output.weight' has shape [64, 299], expected [64, 300] (dim 64, vocab 300)");
  tw.dims = {{"output_norm.weight", {kDim, 1}}};
  expect_error(tw, StatusCode::kCorrupt, "tensor 'output_norm.weight' has shape [64, 1]");
  tw.dims = {{"token_embd.weight", {kDim, kVocab, 1}}};
  expect_error(tw, StatusCode::kCorrupt, "tensor 'token_embd.weight' has shape [64, 300, 1]");
}

TEST(ModelBad, MisalignedTensorData) {
  // general.alignment 1 lets a 2-byte tensor push token_embd (f32) off a 4-byte boundary,
  // where the kernels could not read it in place. The header's length decides where the data
  // starts, so try four lengths of general.name: some must misalign token_embd.
  int misaligned = 0;
  for (int pad = 0; pad < 4; ++pad) {
    Tweak tw;
    tw.first_f16 = {"a"};
    tw.edit = [pad](GgufWriter& w) {
      w.set_alignment(1);
      w.set_string("general.name", std::string(static_cast<size_t>(pad), 'n'));
    };
    auto l = load(tw);
    ASSERT_FALSE(l->model.ok());  // 'a' is never part of a llama
    auto f = GgufFile::parse(l->bytes.data(), l->bytes.size(), "tiny.gguf");
    ASSERT_TRUE(f.ok());
    const auto addr = reinterpret_cast<uintptr_t>((*f)->find_tensor("token_embd.weight")->data);
    if (addr % 4 != 0) {
      ++misaligned;
      EXPECT_EQ(l->model.status().code(), StatusCode::kUnsupported);
      EXPECT_NE(l->model.status().message().find("tensor 'token_embd.weight' data at byte " +
                                                 std::to_string((*f)->data_offset() + 2) +
                                                 " is not 4-byte aligned (general.alignment 1)"),
                std::string::npos)
          << l->model.status().message();
    } else {
      EXPECT_NE(l->model.status().message().find("tensor 'a' is not part of the llama layout"),
                std::string::npos)
          << l->model.status().message();
    }
  }
  EXPECT_GE(misaligned, 2);
}

// ---- model_cost ----

TEST(ModelCost, F32ByHand) {
  auto l = load();
  ASSERT_TRUE(l->model.ok());
  const ModelCost cost = model_cost(**l->model, DType::kF32);
  ASSERT_EQ(cost.units.size(), static_cast<size_t>(kLayers + 2));
  const LayerCost& e = cost.units[0];
  EXPECT_EQ(e.name, "token_embd");
  EXPECT_EQ(e.weight_bytes, kVocab * kDim * 4);
  EXPECT_EQ(e.weight_bytes_by_type.at("f32"), kVocab * kDim * 4);
  EXPECT_EQ(e.flops_per_token, 0.0);
  EXPECT_EQ(e.weight_bytes_read_per_token, kDim * 4);
  EXPECT_EQ(e.activation_bytes_out, kDim * 4);
  EXPECT_EQ(e.kv_bytes_per_token, 0);

  const int64_t macs = kDim * kDim * 2 + kDim * kKvDim * 2 + kDim * kFfn * 3;
  for (int i = 0; i < kLayers; ++i) {
    const LayerCost& b = cost.units[static_cast<size_t>(1 + i)];
    EXPECT_EQ(b.name, "blk." + std::to_string(i));
    EXPECT_EQ(b.weight_bytes, macs * 4 + 2 * kDim * 4);
    EXPECT_EQ(b.flops_per_token, 2.0 * static_cast<double>(macs));
    EXPECT_EQ(b.attn_flops_per_token_per_ctx, 4.0 * 4 * 16);
    EXPECT_EQ(b.kv_bytes_per_token, 2 * kKvDim * 4);
    EXPECT_EQ(b.activation_bytes_out, kDim * 4);
    EXPECT_EQ(b.weight_bytes_read_per_token, b.weight_bytes);
  }
  const LayerCost& o = cost.units.back();
  EXPECT_EQ(o.name, "output");
  EXPECT_EQ(o.weight_bytes, kVocab * kDim * 4 + kDim * 4);
  EXPECT_EQ(o.flops_per_token, 2.0 * kVocab * kDim);
  EXPECT_EQ(o.activation_bytes_out, kVocab * 4);
  EXPECT_EQ(o.kv_bytes_per_token, 0);

  int64_t sum = 0;
  for (const LayerCost& u : cost.units) sum += u.weight_bytes;
  EXPECT_EQ(cost.total_weight_bytes, sum);  // untied: each tensor in exactly one unit
}

TEST(ModelCost, QuantizedTiedAndF16Kv) {
  Tweak tw;
  tw.tied = true;
  tw.matrix_type = DType::kQ8_0;
  auto l = load(tw);
  ASSERT_TRUE(l->model.ok());
  const ModelCost cost = model_cost(**l->model, DType::kF16);
  const int64_t embd = kVocab * row_bytes(DType::kQ8_0, kDim);  // 300 rows of 68 bytes
  EXPECT_EQ(embd, 300 * 68);
  EXPECT_EQ(cost.units[0].weight_bytes, embd);
  EXPECT_EQ(cost.units[0].weight_bytes_read_per_token, 68);
  const LayerCost& b = cost.units[1];
  const int64_t q8 = (kDim * 2 + kKvDim * 2 + kFfn * 2) * 68 + kDim * row_bytes(DType::kQ8_0, kFfn);
  EXPECT_EQ(b.weight_bytes, q8 + 2 * kDim * 4);
  EXPECT_EQ(b.weight_bytes_by_type.at("q8_0"), q8);
  EXPECT_EQ(b.weight_bytes_by_type.at("f32"), 2 * kDim * 4);
  EXPECT_EQ(b.kv_bytes_per_token, 2 * kKvDim * 2);
  // Tied: the head reads the whole embedding matrix; the file holds it once.
  const LayerCost& o = cost.units.back();
  EXPECT_EQ(o.weight_bytes, embd + kDim * 4);
  EXPECT_EQ(o.weight_bytes_by_type.at("q8_0"), embd);
  int64_t sum = 0;
  for (const LayerCost& u : cost.units) sum += u.weight_bytes;
  EXPECT_EQ(cost.total_weight_bytes, sum - embd);
}

}  // namespace
}  // namespace strata::model
