// The engine against a straightforward double-precision forward pass written here, and the
// determinism properties the distributed runtime relies on: any thread count, any split of
// the layers into stages, any batching of tokens and sequences gives the same bits.
#include "strata/model/engine.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "strata/model/model.h"
#include "strata/model/types.h"

namespace strata::model {
namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("strata_engine_" + std::to_string(::getpid()) + "_" + name + ".gguf"))
      .string();
}

struct Shape {
  const char* name;
  int64_t dim, layers, heads, kv_heads, ffn, vocab;
  bool tied;
  FfnAct act;
};

const Shape kShapes[] = {
    {"mha", 64, 2, 4, 4, 96, 300, false, FfnAct::kSilu},
    {"gqa_tied", 128, 3, 8, 2, 160, 320, true, FfnAct::kSilu},
    {"relu", 64, 2, 2, 1, 128, 280, false, FfnAct::kRelu},
};

std::unique_ptr<Model> synth_load(const Shape& s, DType type, uint64_t seed = 3) {
  SynthSpec spec;
  spec.dim = s.dim;
  spec.n_layers = s.layers;
  spec.n_heads = s.heads;
  spec.n_kv_heads = s.kv_heads;
  spec.ffn_dim = s.ffn;
  spec.vocab = s.vocab;
  spec.ctx = 256;
  spec.type = type;
  spec.tied_embeddings = s.tied;
  spec.ffn_act = s.act;
  spec.seed = seed;
  const std::string path =
      temp_path(std::string(s.name) + "_" + std::string(*dtype_name(static_cast<uint32_t>(type))));
  const Status st = synth_model(spec, path, {});
  EXPECT_TRUE(st.ok()) << st.to_string();
  auto m = Model::load(path);
  EXPECT_TRUE(m.ok()) << m.status().to_string();
  std::filesystem::remove(path);  // the mapping stays valid after unlink
  return std::move(m).value();
}

// ---- The double-precision reference ---------------------------------------------------------

// The type activations are converted to before a dot product with weights of type `w`.
DType dot_type(DType w) {
  switch (w) {
    case DType::kQ4_0:
    case DType::kQ8_0: return DType::kQ8_0;
    default: return w;
  }
}

struct RefMatrix {
  int64_t rows = 0, cols = 0;
  DType type = DType::kF32;
  std::vector<double> w;
};

RefMatrix ref_matrix(const WeightView& v) {
  RefMatrix m{v.rows, v.cols, v.type, std::vector<double>(static_cast<size_t>(v.rows * v.cols))};
  std::vector<float> row(static_cast<size_t>(v.cols));
  const auto* p = static_cast<const uint8_t*>(v.data);
  for (int64_t r = 0; r < v.rows; ++r) {
    dequantize_row(v.type, p + r * row_bytes(v.type, v.cols), row.data(), v.cols);
    for (int64_t c = 0; c < v.cols; ++c)
      m.w[static_cast<size_t>(r * v.cols + c)] = row[static_cast<size_t>(c)];
  }
  return m;
}

// y = W x in double. When `mimic` is set, x is first rounded to the weight's dot type exactly
// as the engine defines it (so only summation order separates the two).
std::vector<double> ref_matvec(const RefMatrix& m, const std::vector<double>& x, bool mimic) {
  std::vector<double> xx = x;
  if (mimic && dot_type(m.type) != DType::kF32) {
    std::vector<float> xf(x.begin(), x.end());
    const DType dt = dot_type(m.type);
    std::vector<uint8_t> q(static_cast<size_t>(row_bytes(dt, m.cols)));
    quantize_row(dt, xf.data(), q.data(), m.cols);
    dequantize_row(dt, q.data(), xf.data(), m.cols);
    xx.assign(xf.begin(), xf.end());
  }
  std::vector<double> y(static_cast<size_t>(m.rows));
  for (int64_t r = 0; r < m.rows; ++r) {
    double s = 0;
    for (int64_t c = 0; c < m.cols; ++c)
      s += m.w[static_cast<size_t>(r * m.cols + c)] * xx[static_cast<size_t>(c)];
    y[static_cast<size_t>(r)] = s;
  }
  return y;
}

std::vector<double> ref_rms_norm(const std::vector<double>& x, const float* w, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double scale = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * scale * w[i];
  return y;
}

void ref_rope(double* x, int64_t pos, const ModelConfig& c) {
  for (int64_t i = 0; i < c.rope_dims / 2; ++i) {
    const double theta = static_cast<double>(pos) *
                         std::pow(c.rope_freq_base,
                                  -2.0 * static_cast<double>(i) / static_cast<double>(c.rope_dims));
    const double x0 = x[2 * i], x1 = x[2 * i + 1];
    x[2 * i] = x0 * std::cos(theta) - x1 * std::sin(theta);
    x[2 * i + 1] = x0 * std::sin(theta) + x1 * std::cos(theta);
  }
}

// Logits at every position of `prompt` (one sequence from position 0).
std::vector<std::vector<double>> ref_forward(const Model& model, const std::vector<int32_t>& prompt,
                                             bool mimic) {
  const ModelConfig& c = model.config();
  const auto n = static_cast<int64_t>(prompt.size());
  std::vector<std::vector<double>> h(static_cast<size_t>(n));
  const RefMatrix embd = ref_matrix(model.token_embd());
  for (int64_t t = 0; t < n; ++t) {
    const auto row = static_cast<size_t>(prompt[static_cast<size_t>(t)]);
    h[static_cast<size_t>(t)].assign(
        embd.w.begin() + static_cast<std::ptrdiff_t>(row * static_cast<size_t>(c.dim)),
        embd.w.begin() + static_cast<std::ptrdiff_t>((row + 1) * static_cast<size_t>(c.dim)));
  }
  const int64_t hd = c.head_dim, kv_dim = c.kv_dim(), group = c.n_heads / c.n_kv_heads;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& w = model.layer(l);
    const RefMatrix wq = ref_matrix(w.attn_q), wk = ref_matrix(w.attn_k), wv = ref_matrix(w.attn_v),
                    wo = ref_matrix(w.attn_o), wg = ref_matrix(w.ffn_gate),
                    wu = ref_matrix(w.ffn_up), wd = ref_matrix(w.ffn_down);
    std::vector<std::vector<double>> q(static_cast<size_t>(n)), k(static_cast<size_t>(n)),
        v(static_cast<size_t>(n));
    for (int64_t t = 0; t < n; ++t) {
      const auto xn = ref_rms_norm(h[static_cast<size_t>(t)], w.attn_norm, c.rms_eps);
      q[static_cast<size_t>(t)] = ref_matvec(wq, xn, mimic);
      k[static_cast<size_t>(t)] = ref_matvec(wk, xn, mimic);
      v[static_cast<size_t>(t)] = ref_matvec(wv, xn, mimic);
      for (int64_t hh = 0; hh < c.n_heads; ++hh)
        ref_rope(q[static_cast<size_t>(t)].data() + hh * hd, t, c);
      for (int64_t hh = 0; hh < c.n_kv_heads; ++hh)
        ref_rope(k[static_cast<size_t>(t)].data() + hh * hd, t, c);
    }
    for (int64_t t = 0; t < n; ++t) {
      std::vector<double> att(static_cast<size_t>(c.dim), 0.0);
      for (int64_t hh = 0; hh < c.n_heads; ++hh) {
        const int64_t kvh = hh / group;
        std::vector<double> s(static_cast<size_t>(t + 1));
        double mx = -1e300;
        for (int64_t j = 0; j <= t; ++j) {
          double d = 0;
          for (int64_t i = 0; i < hd; ++i)
            d += q[static_cast<size_t>(t)][static_cast<size_t>(hh * hd + i)] *
                 k[static_cast<size_t>(j)][static_cast<size_t>(kvh * hd + i)];
          s[static_cast<size_t>(j)] = d / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, s[static_cast<size_t>(j)]);
        }
        double sum = 0;
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (int64_t j = 0; j <= t; ++j) {
          for (int64_t i = 0; i < hd; ++i)
            att[static_cast<size_t>(hh * hd + i)] +=
                s[static_cast<size_t>(j)] / sum *
                v[static_cast<size_t>(j)][static_cast<size_t>(kvh * hd + i)];
        }
      }
      (void)kv_dim;
      const auto o = ref_matvec(wo, att, mimic);
      auto& ht = h[static_cast<size_t>(t)];
      for (int64_t i = 0; i < c.dim; ++i) ht[static_cast<size_t>(i)] += o[static_cast<size_t>(i)];
    }
    for (int64_t t = 0; t < n; ++t) {
      auto& ht = h[static_cast<size_t>(t)];
      const auto xn = ref_rms_norm(ht, w.ffn_norm, c.rms_eps);
      auto g = ref_matvec(wg, xn, mimic);
      const auto u = ref_matvec(wu, xn, mimic);
      for (size_t i = 0; i < g.size(); ++i) {
        const double a =
            c.ffn_act == FfnAct::kRelu ? std::max(0.0, g[i]) : g[i] / (1.0 + std::exp(-g[i]));
        g[i] = a * u[i];
      }
      const auto d = ref_matvec(wd, g, mimic);
      for (int64_t i = 0; i < c.dim; ++i) ht[static_cast<size_t>(i)] += d[static_cast<size_t>(i)];
    }
  }
  const RefMatrix out = ref_matrix(model.output());
  std::vector<std::vector<double>> logits;
  for (int64_t t = 0; t < n; ++t) {
    logits.push_back(ref_matvec(
        out, ref_rms_norm(h[static_cast<size_t>(t)], model.output_norm(), c.rms_eps), mimic));
  }
  return logits;
}

// ---- Engine helpers -------------------------------------------------------------------------

std::unique_ptr<Engine> make_engine(const Model& m, int threads, int64_t begin = 0,
                                    int64_t end = -1, int64_t seqs = 1) {
  EngineOptions o;
  o.n_threads = threads;
  o.layer_begin = begin;
  o.layer_end = end;
  o.ctx = 64;
  o.max_sequences = seqs;
  auto e = Engine::create(m, o);
  EXPECT_TRUE(e.ok()) << e.status().to_string();
  return std::move(e).value();
}

// Logits at every position, the prompt run as one batch.
std::vector<float> engine_logits(Engine& e, const std::vector<int32_t>& prompt) {
  const ModelConfig& c = e.config();
  const auto n = static_cast<int64_t>(prompt.size());
  std::vector<float> h(static_cast<size_t>(n * c.dim));
  std::vector<TokenSlot> slots;
  for (int64_t t = 0; t < n; ++t) slots.push_back({0, static_cast<int32_t>(t)});
  e.reset_sequence(0);
  EXPECT_TRUE(e.embed(prompt, h.data()).ok());
  EXPECT_TRUE(e.forward(slots, h.data()).ok());
  std::vector<float> logits(static_cast<size_t>(n * c.vocab));
  e.head(h.data(), n, logits.data());
  return logits;
}

std::vector<int32_t> prompt_for(const ModelConfig& c, int n) {
  std::vector<int32_t> p = default_prompt(n, c.vocab);
  return p;
}

// ---- Tests ----------------------------------------------------------------------------------

class EngineVsReference : public ::testing::TestWithParam<std::tuple<int, DType>> {};

TEST_P(EngineVsReference, LogitsMatchDoubleReference) {
  const Shape& s = kShapes[std::get<0>(GetParam())];
  const DType type = std::get<1>(GetParam());
  auto m = synth_load(s, type);
  const auto prompt = prompt_for(m->config(), 7);
  auto e = make_engine(*m, 2);
  const auto got = engine_logits(*e, prompt);
  const int64_t V = m->config().vocab;

  // Mimic mode: the reference rounds activations to the dot type exactly as the engine does,
  // so what is left is f32 vs double summation (relative 1e-6 per op, ~1e-5 after a few
  // layers) plus, for quantized activations, an occasional flip of one rounding (one quantum,
  // amax/127 of one input element) when the upstream float error crosses a rounding boundary.
  const auto ref = ref_forward(*m, prompt, /*mimic=*/true);
  double max_abs = 0, max_logit = 0, max_err = 0;
  for (size_t t = 0; t < prompt.size(); ++t) {
    for (int64_t i = 0; i < V; ++i) {
      const double r = ref[t][static_cast<size_t>(i)];
      max_logit = std::max(max_logit, std::fabs(r));
      max_err = std::max(max_err,
                         std::fabs(r - got[t * static_cast<size_t>(V) + static_cast<size_t>(i)]));
    }
  }
  max_abs = max_err;
  const bool quantized_acts = dot_type(type) != DType::kF32;
  const double tol =
      type == DType::kF32 ? 1e-4 : (quantized_acts ? 2e-3 * std::max(1.0, max_logit) : 1e-4);
  std::printf(
      "[ reference ] %s %s: max |logit error| %.3g (tolerance %.3g, largest |logit| %.3g)\n",
      s.name, std::string(*dtype_name(static_cast<uint32_t>(type))).c_str(), max_abs, tol,
      max_logit);
  EXPECT_LE(max_abs, tol) << s.name << " " << *dtype_name(static_cast<uint32_t>(type))
                          << " (largest logit " << max_logit << ")";

  if (type == DType::kF32) {
    // F32 has no activation rounding: the ideal reference is the same one.
    const auto ideal = ref_forward(*m, prompt, /*mimic=*/false);
    for (size_t t = 0; t < prompt.size(); ++t) {
      for (int64_t i = 0; i < V; ++i) {
        ASSERT_NEAR(ideal[t][static_cast<size_t>(i)],
                    got[t * static_cast<size_t>(V) + static_cast<size_t>(i)], 1e-4);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllShapesAndTypes, EngineVsReference,
                         ::testing::Combine(::testing::Values(0, 1, 2),
                                            ::testing::Values(DType::kF32, DType::kF16,
                                                              DType::kBF16, DType::kQ8_0,
                                                              DType::kQ4_0)),
                         [](const auto& p) {
                           return std::string(kShapes[std::get<0>(p.param)].name) + "_" +
                                  std::string(
                                      *dtype_name(static_cast<uint32_t>(std::get<1>(p.param))));
                         });

class EngineDeterminism : public ::testing::TestWithParam<DType> {};

TEST_P(EngineDeterminism, AnyThreadCountGivesTheSameBits) {
  auto m = synth_load(kShapes[1], GetParam());
  const auto prompt = prompt_for(m->config(), 9);
  auto e1 = make_engine(*m, 1);
  const auto base = engine_logits(*e1, prompt);
  for (int threads : {2, 3, 4, 7}) {
    auto e = make_engine(*m, threads);
    EXPECT_EQ(engine_logits(*e, prompt), base) << threads << " threads";
  }
}

TEST_P(EngineDeterminism, SplitIntoStagesGivesTheSameBits) {
  auto m = synth_load(kShapes[1], GetParam());
  const ModelConfig& c = m->config();
  const auto prompt = prompt_for(c, 9);
  auto whole = make_engine(*m, 2);
  const auto base = engine_logits(*whole, prompt);
  // Three stages [0,1) [1,2) [2,3) with different thread counts, hidden states handed on.
  auto s0 = make_engine(*m, 1, 0, 1);
  auto s1 = make_engine(*m, 3, 1, 2);
  auto s2 = make_engine(*m, 2, 2, 3);
  const auto n = static_cast<int64_t>(prompt.size());
  std::vector<float> h(static_cast<size_t>(n * c.dim));
  std::vector<TokenSlot> slots;
  for (int64_t t = 0; t < n; ++t) slots.push_back({0, static_cast<int32_t>(t)});
  ASSERT_TRUE(s0->embed(prompt, h.data()).ok());
  ASSERT_TRUE(s0->forward(slots, h.data()).ok());
  ASSERT_TRUE(s1->forward(slots, h.data()).ok());
  ASSERT_TRUE(s2->forward(slots, h.data()).ok());
  std::vector<float> logits(static_cast<size_t>(n * c.vocab));
  s2->head(h.data(), n, logits.data());
  EXPECT_EQ(logits, base);
}

TEST_P(EngineDeterminism, TokenByTokenEqualsOneBatch) {
  auto m = synth_load(kShapes[0], GetParam());
  const ModelConfig& c = m->config();
  const auto prompt = prompt_for(c, 6);
  auto e = make_engine(*m, 2);
  const auto batch = engine_logits(*e, prompt);
  e->reset_sequence(0);
  std::vector<float> h(static_cast<size_t>(c.dim));
  std::vector<float> logits(static_cast<size_t>(c.vocab));
  for (size_t t = 0; t < prompt.size(); ++t) {
    const TokenSlot slot{0, static_cast<int32_t>(t)};
    ASSERT_TRUE(e->embed(std::span<const int32_t>(&prompt[t], 1), h.data()).ok());
    ASSERT_TRUE(e->forward(std::span<const TokenSlot>(&slot, 1), h.data()).ok());
    e->head(h.data(), 1, logits.data());
    const std::vector<float> want(
        batch.begin() + static_cast<std::ptrdiff_t>(t * static_cast<size_t>(c.vocab)),
        batch.begin() + static_cast<std::ptrdiff_t>((t + 1) * static_cast<size_t>(c.vocab)));
    ASSERT_EQ(logits, want) << "position " << t;
  }
}

TEST_P(EngineDeterminism, InterleavedSequencesEqualSeparateRuns) {
  auto m = synth_load(kShapes[1], GetParam());
  const ModelConfig& c = m->config();
  const auto pa = prompt_for(c, 5);
  std::vector<int32_t> pb = {1, 300, 17, 260};
  auto single = make_engine(*m, 2);
  const auto la = engine_logits(*single, pa);
  const auto lb = engine_logits(*single, pb);
  // One batch holding both sequences' prompts, interleaved, in a 3-slot engine.
  auto multi = make_engine(*m, 3, 0, -1, 3);
  std::vector<int32_t> toks;
  std::vector<TokenSlot> slots;
  std::vector<size_t> where_a, where_b;
  for (size_t i = 0; i < std::max(pa.size(), pb.size()); ++i) {
    if (i < pa.size()) {
      where_a.push_back(toks.size());
      toks.push_back(pa[i]);
      slots.push_back({2, static_cast<int32_t>(i)});
    }
    if (i < pb.size()) {
      where_b.push_back(toks.size());
      toks.push_back(pb[i]);
      slots.push_back({0, static_cast<int32_t>(i)});
    }
  }
  const auto n = static_cast<int64_t>(toks.size());
  std::vector<float> h(static_cast<size_t>(n * c.dim));
  ASSERT_TRUE(multi->embed(toks, h.data()).ok());
  ASSERT_TRUE(multi->forward(slots, h.data()).ok());
  std::vector<float> logits(static_cast<size_t>(n * c.vocab));
  multi->head(h.data(), n, logits.data());
  const auto V = static_cast<size_t>(c.vocab);
  for (size_t i = 0; i < pa.size(); ++i) {
    ASSERT_TRUE(std::equal(la.begin() + static_cast<std::ptrdiff_t>(i * V),
                           la.begin() + static_cast<std::ptrdiff_t>((i + 1) * V),
                           logits.begin() + static_cast<std::ptrdiff_t>(where_a[i] * V)))
        << "seq a pos " << i;
  }
  for (size_t i = 0; i < pb.size(); ++i) {
    ASSERT_TRUE(std::equal(lb.begin() + static_cast<std::ptrdiff_t>(i * V),
                           lb.begin() + static_cast<std::ptrdiff_t>((i + 1) * V),
                           logits.begin() + static_cast<std::ptrdiff_t>(where_b[i] * V)))
        << "seq b pos " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Types, EngineDeterminism,
                         ::testing::Values(DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0,
                                           DType::kQ4_0),
                         [](const auto& p) {
                           return std::string(*dtype_name(static_cast<uint32_t>(p.param)));
                         });

TEST(Engine, RejectsBadInput) {
  auto m = synth_load(kShapes[0], DType::kF32);
  EngineOptions o;
  o.layer_begin = 1;
  o.layer_end = 5;
  EXPECT_EQ(Engine::create(*m, o).status().code(), StatusCode::kInvalidArgument);
  auto e = make_engine(*m, 1);
  std::vector<float> h(static_cast<size_t>(2 * m->config().dim));
  const std::vector<int32_t> bad_tok = {1, 100000};
  EXPECT_EQ(e->embed(bad_tok, h.data()).code(), StatusCode::kInvalidArgument);
  const std::vector<TokenSlot> gap = {{0, 0}, {0, 2}};
  EXPECT_EQ(e->forward(gap, h.data()).code(), StatusCode::kInvalidArgument);
  const std::vector<TokenSlot> bad_seq = {{5, 0}};
  EXPECT_EQ(e->forward(bad_seq, h.data()).code(), StatusCode::kInvalidArgument);
  const std::vector<TokenSlot> past_ctx = {{0, 64}};
  EXPECT_EQ(e->forward(past_ctx, h.data()).code(), StatusCode::kInvalidArgument);
}

TEST(Generate, GreedyMatchesManualLoopAndIsRepeatable) {
  auto m = synth_load(kShapes[0], DType::kQ4_0);
  auto e = make_engine(*m, 2);
  GenerateOptions go;
  go.prompt = prompt_for(m->config(), 8);
  go.n_gen = 10;
  go.logits_top = 5;
  auto r1 = generate(*e, go, {});
  ASSERT_TRUE(r1.ok()) << r1.status().to_string();
  auto r2 = generate(*e, go, {});
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r1->tokens, r2->tokens);
  EXPECT_EQ(r1->tokens.size(), 10u);
  EXPECT_EQ(r1->n_decode_steps, 9);
  ASSERT_EQ(r1->top_logits.size(), 5u);
  EXPECT_EQ(r1->top_logits[0].first, r1->tokens[0]);
  for (size_t i = 1; i < 5; ++i) EXPECT_GE(r1->top_logits[i - 1].second, r1->top_logits[i].second);
  // Each next token is the argmax after feeding the previous ones: rerun the whole sequence.
  std::vector<int32_t> all = go.prompt;
  all.insert(all.end(), r1->tokens.begin(), r1->tokens.end() - 1);
  const auto logits = engine_logits(*e, all);
  const auto V = static_cast<size_t>(m->config().vocab);
  for (size_t i = 0; i < r1->tokens.size(); ++i) {
    const size_t row = go.prompt.size() - 1 + i;
    const std::span<const float> lr(logits.data() + row * V, V);
    EXPECT_EQ(top_logits(lr, 1)[0].first, r1->tokens[i]) << "token " << i;
  }
  go.prompt.clear();
  EXPECT_EQ(generate(*e, go, {}).status().code(), StatusCode::kInvalidArgument);
}

TEST(Sampler, GreedyTopKAndSeededDraws) {
  const std::vector<float> logits = {0.1f, 2.0f, 2.0f, -1.0f, 1.5f};
  Sampler greedy({});
  EXPECT_EQ(greedy.sample(logits), 1);  // tie: lower id
  Sampler k1({1.0f, 1, 1.0f, 7});
  for (int i = 0; i < 20; ++i) EXPECT_EQ(k1.sample(logits), 1);
  Sampler a({0.8f, 0, 0.95f, 42}), b({0.8f, 0, 0.95f, 42});
  std::vector<int> counts(5, 0);
  for (int i = 0; i < 2000; ++i) {
    const int32_t x = a.sample(logits);
    EXPECT_EQ(x, b.sample(logits));
    ++counts[static_cast<size_t>(x)];
  }
  EXPECT_GT(counts[1], 300);
  EXPECT_GT(counts[2], 300);
  EXPECT_GT(counts[4], 50);
  EXPECT_EQ(counts[3], 0);  // outside the top-p mass
  Sampler tiny_p({1.0f, 0, 0.01f, 1});
  EXPECT_EQ(tiny_p.sample(logits), 1);
}

TEST(Sampler, DefaultPromptMatchesThePeer) {
  const auto p = default_prompt(4, 32000);
  ASSERT_EQ(p.size(), 4u);
  EXPECT_EQ(p[0], 1);
  EXPECT_EQ(p[1], 259 + 7919);
  EXPECT_EQ(p[3], 259 + (3 * 7919) % (32000 - 259));
}

}  // namespace
}  // namespace strata::model

namespace strata::model {
namespace {

// A weight source that serves private copies of each block (as a streaming store would, from
// its own buffers) and can be told to fail at one layer, as a dying disk would.
class CopyingSource : public LayerWeightSource {
 public:
  CopyingSource(const Model& m, int64_t fail_at) : m_(m), fail_at_(fail_at) {}
  Result<const LayerWeights*> acquire(int64_t layer) override {
    if (layer == fail_at_)
      return io_error("layer " + std::to_string(layer) + ": simulated read failure");
    const LayerWeights& src = m_.layer(layer);
    bufs_.clear();
    copy_ = src;
    for (WeightView* v : {&copy_.attn_q, &copy_.attn_k, &copy_.attn_v, &copy_.attn_o,
                          &copy_.ffn_gate, &copy_.ffn_up, &copy_.ffn_down}) {
      const auto* p = static_cast<const uint8_t*>(v->data);
      bufs_.emplace_back(p, p + v->rows * row_bytes(v->type, v->cols));
      v->data = bufs_.back().data();
    }
    ++acquired;
    return &copy_;
  }
  void release(int64_t) override { ++released; }
  int acquired = 0, released = 0;

 private:
  const Model& m_;
  int64_t fail_at_;
  LayerWeights copy_;
  std::vector<std::vector<uint8_t>> bufs_;
};

TEST(EngineWeightSource, CopiedWeightsGiveTheSameBitsAndFailuresPropagate) {
  auto m = synth_load(kShapes[1], DType::kQ4_0);
  const auto prompt = prompt_for(m->config(), 5);
  auto plain = make_engine(*m, 2);
  const auto want = engine_logits(*plain, prompt);

  CopyingSource src(*m, /*fail_at=*/-1);
  EngineOptions o;
  o.n_threads = 2;
  o.ctx = 64;
  o.weights = &src;
  auto e = Engine::create(*m, o);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(engine_logits(**e, prompt), want);
  EXPECT_EQ(src.acquired, static_cast<int>(m->config().n_layers));
  EXPECT_EQ(src.released, src.acquired);

  CopyingSource failing(*m, /*fail_at=*/1);
  o.weights = &failing;
  auto f = Engine::create(*m, o);
  ASSERT_TRUE(f.ok());
  std::vector<float> h(prompt.size() * static_cast<size_t>(m->config().dim));
  std::vector<TokenSlot> slots;
  for (size_t t = 0; t < prompt.size(); ++t) slots.push_back({0, static_cast<int32_t>(t)});
  ASSERT_TRUE((*f)->embed(prompt, h.data()).ok());
  const Status st = (*f)->forward(slots, h.data());
  EXPECT_EQ(st.code(), StatusCode::kIo);
  EXPECT_NE(st.message().find("layer 1"), std::string::npos);
}

}  // namespace
}  // namespace strata::model
