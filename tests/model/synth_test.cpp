// `model synth`: spec validation, determinism, independence of tensors, the tokenizer
// vocabulary, weight statistics, and the `strata model synth|info` commands end to end (the
// built binary, run as a user would).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "strata/model/model.h"
#include "support/cli.h"

#ifndef STRATA_BIN
#error "STRATA_BIN must name the strata binary"
#endif

namespace strata::model {
namespace {

// Each test's folder, named after the file's tests.
class TempDir : public testing::TempDir {
 public:
  TempDir() : testing::TempDir("strata_synth_") {}
};

using testing::read_all;

SynthSpec small_spec() {
  SynthSpec s;
  s.dim = 128;
  s.n_layers = 2;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.ffn_dim = 256;
  s.vocab = 400;
  s.ctx = 512;
  s.seed = 7;
  return s;
}

std::unique_ptr<Model> synth_and_load(const TempDir& dir, const SynthSpec& spec,
                                      const std::string& name) {
  const std::string path = dir.file(name);
  const Status s = synth_model(spec, path, {});
  EXPECT_TRUE(s.ok()) << s.message();
  auto m = Model::load(path);
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? std::move(m).value() : nullptr;
}

void expect_invalid(SynthSpec s, const std::string& needle) {
  const Status st = validate_synth_spec(s);
  ASSERT_FALSE(st.ok()) << needle;
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find(needle), std::string::npos) << st.message();
}

TEST(SynthSpec, Validation) {
  EXPECT_TRUE(validate_synth_spec(small_spec()).ok());
  SynthSpec s = small_spec();
  s.arch = "gpt2";
  expect_invalid(s, "--arch 'gpt2' is not supported (only llama)");
  s = small_spec();
  s.n_heads = 3;
  s.n_kv_heads = 3;
  expect_invalid(s, "--dim 128 is not a multiple of --heads 3");
  s = small_spec();
  s.n_kv_heads = 3;
  expect_invalid(s, "--heads 4 is not a multiple of --kv-heads 3");
  s = small_spec();
  s.n_kv_heads = 8;
  expect_invalid(s, "--kv-heads 8 is out of range [1, 4]");
  s = small_spec();
  s.vocab = 259;
  expect_invalid(s, "--vocab 259 is out of range [260,");
  s = small_spec();
  s.n_layers = 0;
  expect_invalid(s, "--layers 0 is out of range");
  s = small_spec();
  s.dim = 120;
  s.n_heads = 4;
  s.type = DType::kQ4_0;
  expect_invalid(s, "--type q4_0 needs --dim and --ffn to be multiples of 32 (got 120 and 256)");
  s.type = DType::kF16;
  EXPECT_TRUE(validate_synth_spec(s).ok());
  s = small_spec();
  s.n_heads = 128;
  s.n_kv_heads = 1;
  expect_invalid(s, "head size --dim / --heads = 1 must be even");
  s = small_spec();
  s.ffn_dim = -5;
  expect_invalid(s, "--ffn -5 is out of range");
}

TEST(Synth, MetadataAndTokenizer) {
  TempDir dir;
  SynthSpec spec = small_spec();
  spec.ffn_act = FfnAct::kRelu;
  spec.name = "unit";
  auto m = synth_and_load(dir, spec, "m.gguf");
  ASSERT_NE(m, nullptr);
  const ModelConfig& c = m->config();
  EXPECT_EQ(c.name, "unit");
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.dim, 128);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.ffn_dim, 256);
  EXPECT_EQ(c.vocab, 400);
  EXPECT_EQ(c.ctx_train, 512);
  EXPECT_EQ(c.rope_dims, 32);
  EXPECT_EQ(c.ffn_act, FfnAct::kRelu);
  EXPECT_FALSE(c.tied_embeddings);
  EXPECT_EQ(c.bos_id, 1u);
  EXPECT_EQ(c.eos_id, 2u);

  const GgufFile& f = m->file();
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(*f.get_u64("general.alignment"), 32u);
  EXPECT_EQ(*f.get_u64("general.file_type"), 0u);
  EXPECT_EQ(*f.get_u64("strata.seed"), 7u);
  EXPECT_EQ(*f.get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(*f.get_u64("tokenizer.ggml.unknown_token_id"), 0u);
  EXPECT_TRUE(*f.get_bool("tokenizer.ggml.add_bos_token"));
  const std::vector<std::string> tokens = *f.get_string_array("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 400u);
  EXPECT_EQ(tokens[0], "<unk>");
  EXPECT_EQ(tokens[1], "<s>");
  EXPECT_EQ(tokens[2], "</s>");
  EXPECT_EQ(tokens[3], "<0x00>");
  EXPECT_EQ(tokens[3 + 0x0a], "<0x0A>");  // llama.cpp looks up the newline byte by this name
  EXPECT_EQ(tokens[258], "<0xFF>");
  EXPECT_EQ(tokens[259], "\xe2\x96\x81");  // the space piece
  EXPECT_EQ(tokens[260], "\xe2\x96\x81ka");
  EXPECT_EQ(tokens[260 + 15], "\xe2\x96\x81ju");
  EXPECT_EQ(tokens[260 + 16], "\xe2\x96\x81kaka");
  EXPECT_EQ(std::set<std::string>(tokens.begin(), tokens.end()).size(), tokens.size());
  const auto& types =
      std::get<std::vector<int64_t>>(f.metadata().at("tokenizer.ggml.token_type").v);
  ASSERT_EQ(types.size(), 400u);
  EXPECT_EQ(types[0], 2);
  EXPECT_EQ(types[1], 3);
  EXPECT_EQ(types[2], 3);
  EXPECT_EQ(types[3], 6);
  EXPECT_EQ(types[258], 6);
  EXPECT_EQ(types[259], 1);
  EXPECT_EQ(*f.get_array_length("tokenizer.ggml.scores"), 400u);
}

TEST(Synth, SameSpecSameBytesAndSeedMatters) {
  TempDir dir;
  const SynthSpec spec = small_spec();
  ASSERT_TRUE(synth_model(spec, dir.file("a.gguf"), {}).ok());
  ASSERT_TRUE(synth_model(spec, dir.file("b.gguf"), {}).ok());
  SynthSpec other = spec;
  other.seed = 8;
  ASSERT_TRUE(synth_model(other, dir.file("c.gguf"), {}).ok());
  const std::string a = read_all(dir.file("a.gguf"));
  EXPECT_EQ(a, read_all(dir.file("b.gguf")));
  const std::string c = read_all(dir.file("c.gguf"));
  ASSERT_EQ(a.size(), c.size());
  EXPECT_NE(a, c);
}

// A tensor depends only on (seed, name): adding layers or changing other tensors' types
// leaves the others' bytes alone, so any subset can be generated in any order.
TEST(Synth, TensorsAreIndependent) {
  TempDir dir;
  SynthSpec spec = small_spec();
  auto two = synth_and_load(dir, spec, "two.gguf");
  spec.n_layers = 3;
  spec.tied_embeddings = true;
  auto three = synth_and_load(dir, spec, "three.gguf");
  ASSERT_NE(two, nullptr);
  ASSERT_NE(three, nullptr);
  for (const std::string name : {"blk.0.attn_q.weight", "blk.1.ffn_down.weight",
                                 "blk.1.ffn_norm.weight", "output_norm.weight"}) {
    const GgufTensorInfo* a = two->file().find_tensor(name);
    const GgufTensorInfo* b = three->file().find_tensor(name);
    ASSERT_TRUE(a != nullptr && b != nullptr) << name;
    ASSERT_EQ(a->n_bytes, b->n_bytes);
    EXPECT_EQ(std::memcmp(a->data, b->data, static_cast<size_t>(a->n_bytes)), 0) << name;
  }
}

// Each type's tensors are exactly quantize_row of the f32 model's values.
TEST(Synth, EveryTypeQuantizesTheSameValues) {
  TempDir dir;
  SynthSpec spec = small_spec();
  auto f32 = synth_and_load(dir, spec, "f32.gguf");
  ASSERT_NE(f32, nullptr);
  const std::map<DType, uint64_t> file_types = {
      {DType::kF16, 1}, {DType::kBF16, 32}, {DType::kQ8_0, 7}, {DType::kQ4_0, 2}};
  for (const auto& [type, file_type] : file_types) {
    spec.type = type;
    const std::string name(*dtype_name(static_cast<uint32_t>(type)));
    auto m = synth_and_load(dir, spec, name + ".gguf");
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->config().main_type, type);
    EXPECT_EQ(*m->file().get_u64("general.file_type"), file_type);
    for (const std::string t : {"token_embd.weight", "blk.1.attn_v.weight", "output.weight"}) {
      const GgufTensorInfo* src = f32->file().find_tensor(t);
      const GgufTensorInfo* q = m->file().find_tensor(t);
      ASSERT_EQ(q->type, type);
      std::vector<uint8_t> want(static_cast<size_t>(q->n_bytes));
      const int64_t cols = src->dims[0];
      const int64_t rb = row_bytes(type, cols);
      for (int64_t r = 0; r < src->dims[1]; ++r) {
        quantize_row(type, reinterpret_cast<const float*>(src->data) + r * cols,
                     want.data() + r * rb, cols);
      }
      EXPECT_EQ(std::memcmp(want.data(), q->data, want.size()), 0) << name << " " << t;
    }
    // Norms stay f32 and identical.
    const GgufTensorInfo* n = m->file().find_tensor("blk.0.attn_norm.weight");
    EXPECT_EQ(n->type, DType::kF32);
    EXPECT_EQ(std::memcmp(n->data, f32->file().find_tensor("blk.0.attn_norm.weight")->data, 512),
              0);
  }
}

double stddev(const float* x, int64_t n) {
  double s = 0, s2 = 0;
  for (int64_t i = 0; i < n; ++i) {
    s += x[i];
    s2 += static_cast<double>(x[i]) * x[i];
  }
  const double mean = s / static_cast<double>(n);
  return std::sqrt(s2 / static_cast<double>(n) - mean * mean);
}

// std of the logits output_norm ⊙ x · Wᵀ for an x of unit RMS: what the head gives a
// normalized hidden state.
double logit_std(const Model& m, const WeightView& head) {
  const int64_t dim = m.config().dim;
  std::vector<float> x(static_cast<size_t>(dim));
  for (int64_t i = 0; i < dim; ++i) {
    x[static_cast<size_t>(i)] = (i % 2 == 0 ? 1.0f : -1.0f) * m.output_norm()[i];
  }
  const auto* w = static_cast<const float*>(head.data);
  std::vector<float> logits(static_cast<size_t>(head.rows));
  for (int64_t r = 0; r < head.rows; ++r) {
    double acc = 0;
    for (int64_t c = 0; c < dim; ++c)
      acc += static_cast<double>(w[r * dim + c]) * x[static_cast<size_t>(c)];
    logits[static_cast<size_t>(r)] = static_cast<float>(acc);
  }
  return stddev(logits.data(), head.rows);
}

TEST(Synth, WeightScales) {
  TempDir dir;
  SynthSpec spec = small_spec();
  spec.dim = 256;
  spec.ffn_dim = 1024;
  spec.vocab = 2000;
  auto m = synth_and_load(dir, spec, "m.gguf");
  ASSERT_NE(m, nullptr);
  const LayerWeights& l = m->layer(1);
  const auto std_of = [](const WeightView& w) {
    return stddev(static_cast<const float*>(w.data), w.rows * w.cols);
  };
  EXPECT_NEAR(std_of(l.attn_q), 1.0 / 16, 0.03 / 16);  // 1/sqrt(dim)
  EXPECT_NEAR(std_of(l.attn_k), 1.0 / 16, 0.03 / 16);
  EXPECT_NEAR(std_of(l.ffn_up), 1.0 / 16, 0.03 / 16);
  EXPECT_NEAR(std_of(l.ffn_down), 1.0 / 32, 0.03 / 32);  // 1/sqrt(ffn)
  EXPECT_NEAR(std_of(m->output()), 2.0 / 16, 0.06 / 16);
  for (int64_t i = 0; i < spec.dim; ++i) {
    ASSERT_GE(l.attn_norm[i], 0.95f);
    ASSERT_LE(l.attn_norm[i], 1.05f);
  }
  EXPECT_NE(l.attn_norm[0], l.attn_norm[1]);
  EXPECT_NEAR(logit_std(*m, m->output()), 2.0, 0.3);

  spec.tied_embeddings = true;
  auto tied = synth_and_load(dir, spec, "tied.gguf");
  ASSERT_NE(tied, nullptr);
  EXPECT_TRUE(tied->config().tied_embeddings);
  EXPECT_EQ(tied->file().find_tensor("output.weight"), nullptr);
  EXPECT_NEAR(logit_std(*tied, tied->output()), 2.0, 0.3);
}

TEST(Synth, UnwritableOutputNamesThePath) {
  const Status s = synth_model(small_spec(), "/nonexistent/dir/m.gguf", {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("/nonexistent/dir/m.gguf"), std::string::npos);
}

// ---- the commands, through the built binary ----

using testing::CmdResult;

CmdResult run(const TempDir& dir, const std::string& args) {
  return testing::run_command(dir, STRATA_BIN, args);
}

TEST(ModelCli, SynthThenInfo) {
  TempDir dir;
  const std::string path = dir.file("m.gguf");
  CmdResult s = run(dir,
                    "model synth --dim 64 --layers 3 --heads 4 --kv-heads 1 --ffn 96 --vocab 300 "
                    "--type q8_0 --tie-embeddings --seed 3 -o " +
                        path);
  ASSERT_EQ(s.rc, 0) << s.err;
  EXPECT_NE(s.out.find("wrote " + path), std::string::npos) << s.out;

  CmdResult j = run(dir, "model info --json " + path);
  ASSERT_EQ(j.rc, 0) << j.err;
  const nlohmann::json info = nlohmann::json::parse(j.out);
  EXPECT_EQ(info["arch"], "llama");
  EXPECT_EQ(info["config"]["n_layers"], 3);
  EXPECT_EQ(info["config"]["n_kv_heads"], 1);
  EXPECT_EQ(info["config"]["kv_dim"], 16);
  EXPECT_EQ(info["config"]["tied_embeddings"], true);
  EXPECT_EQ(info["config"]["main_type"], "q8_0");
  EXPECT_EQ(info["file_bytes"], read_all(path).size());
  ASSERT_EQ(info["units"].size(), 5u);
  EXPECT_EQ(info["units"][0]["name"], "token_embd");
  EXPECT_EQ(info["units"][1]["name"], "blk.0");
  EXPECT_EQ(info["units"][1]["kv_bytes_per_token"], 2 * 16 * 4);
  EXPECT_EQ(info["units"][4]["name"], "output");
  EXPECT_EQ(info["units"][4]["activation_bytes_out"], 300 * 4);
  EXPECT_EQ(info["tensor_types"]["q8_0"]["n_tensors"], 1 + 3 * 7);

  CmdResult f16 = run(dir, "model info --json --kv-type f16 " + path);
  ASSERT_EQ(f16.rc, 0) << f16.err;
  EXPECT_EQ(nlohmann::json::parse(f16.out)["units"][1]["kv_bytes_per_token"], 2 * 16 * 2);

  CmdResult table = run(dir, "model info " + path);
  ASSERT_EQ(table.rc, 0) << table.err;
  for (const char* want : {"3 layers, dim 64", "blk.2", "output", "tied embeddings", "q8_0"}) {
    EXPECT_NE(table.out.find(want), std::string::npos) << want << "\n" << table.out;
  }
}

TEST(ModelCli, CorruptFileExitsOneWithTheProblem) {
  TempDir dir;
  const std::string path = dir.file("m.gguf");
  ASSERT_TRUE(synth_model(small_spec(), path, {}).ok());
  std::string bytes = read_all(path);
  bytes.resize(bytes.size() - 100);
  const std::string cut = dir.file("cut.gguf");
  std::ofstream(cut, std::ios::binary) << bytes;
  CmdResult r = run(dir, "model info " + cut);
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.err.rfind("strata: error: " + cut + ": tensor 'output.weight' data [", 0), 0u)
      << r.err;
  EXPECT_NE(
      r.err.find("runs past the end of the file (" + std::to_string(bytes.size()) + " bytes)"),
      std::string::npos)
      << r.err;
  EXPECT_TRUE(r.out.empty());

  CmdResult missing = run(dir, "model info " + dir.file("nope.gguf"));
  EXPECT_EQ(missing.rc, 1);
  EXPECT_NE(missing.err.find("nope.gguf: cannot open"), std::string::npos) << missing.err;
}

TEST(ModelCli, BadUsageExitsTwo) {
  TempDir dir;
  CmdResult heads = run(dir,
                        "model synth --dim 64 --layers 1 --heads 5 --ffn 64 --vocab 300 --type f32 "
                        "-o " +
                            dir.file("x.gguf"));
  EXPECT_EQ(heads.rc, 2);
  EXPECT_NE(heads.err.find("--dim 64 is not a multiple of --heads 5"), std::string::npos)
      << heads.err;
  CmdResult type = run(dir,
                       "model synth --dim 64 --layers 1 --heads 4 --ffn 64 --vocab 300 --type q4_K "
                       "-o " +
                           dir.file("x.gguf"));
  EXPECT_EQ(type.rc, 2);
  EXPECT_NE(type.err.find("--type"), std::string::npos) << type.err;
  CmdResult missing = run(dir, "model synth --dim 64 -o " + dir.file("x.gguf"));
  EXPECT_EQ(missing.rc, 2);
  EXPECT_NE(missing.err.find("required"), std::string::npos) << missing.err;
  EXPECT_NE(access(dir.file("x.gguf").c_str(), F_OK), 0);
}

}  // namespace
}  // namespace strata::model
