// `strata model synth`: a llama-shaped GGUF with deterministic random weights.
//
// Every element is a pure function of (seed, tensor name, element index) — a counter-based
// generator — so tensors can be generated in any order, by any number of threads, and the same
// spec always gives the same bytes. Scales are chosen so that a forward pass behaves like a
// trained model's in magnitude: matrices have std 1/sqrt(fan_in) (activations stay O(1) through
// the layers) and the head gives logits of std about 2 (so top-1/top-2 gaps are not tiny, which
// keeps comparisons between engines meaningful).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <thread>

#include "strata/model/model.h"

namespace strata::model {
namespace {

constexpr int64_t kFirstNormalToken = 259;  // <unk>, <s>, </s>, then 256 byte tokens

uint64_t mix64(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t tensor_key(uint64_t seed, const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a
  for (unsigned char ch : name) h = (h ^ ch) * 0x100000001b3ULL;
  return mix64(seed ^ mix64(h));
}

// Element i of the stream `key`, uniform in [-1, 1): splitmix64 evaluated at counter i.
inline float uniform(uint64_t key, uint64_t i) {
  const uint64_t u = mix64(key + (i + 1) * 0x9e3779b97f4a7c15ULL);
  return static_cast<float>(static_cast<int32_t>(u >> 32)) * (1.0f / 2147483648.0f);
}

// A tensor of `rows` rows of `cols` values center + half_width * uniform, stored as `type`.
struct FillSpec {
  DType type;
  int64_t rows;
  int64_t cols;
  uint64_t key;
  float center;
  float half_width;
};

void fill_rows(const FillSpec& s, uint8_t* dst, int64_t row_begin, int64_t row_end) {
  std::vector<float> row(static_cast<size_t>(s.cols));
  const int64_t rb = row_bytes(s.type, s.cols);
  for (int64_t r = row_begin; r < row_end; ++r) {
    const auto base = static_cast<uint64_t>(r * s.cols);
    for (int64_t c = 0; c < s.cols; ++c) {
      row[static_cast<size_t>(c)] =
          s.center + s.half_width * uniform(s.key, base + static_cast<uint64_t>(c));
    }
    quantize_row(s.type, row.data(), dst + r * rb, s.cols);
  }
}

void fill_parallel(const FillSpec& s, uint8_t* dst) {
  const int64_t elems = s.rows * s.cols;
  const int64_t hw = std::max<int64_t>(1, std::thread::hardware_concurrency());
  const int64_t n_threads = std::min<int64_t>({hw, 8, std::max<int64_t>(1, elems >> 20), s.rows});
  if (n_threads <= 1) {
    fill_rows(s, dst, 0, s.rows);
    return;
  }
  std::vector<std::thread> threads;
  for (int64_t t = 1; t < n_threads; ++t) {
    threads.emplace_back(fill_rows, std::cref(s), dst, s.rows * t / n_threads,
                         s.rows * (t + 1) / n_threads);
  }
  fill_rows(s, dst, 0, s.rows / n_threads);
  for (std::thread& th : threads) th.join();
}

// ggml's llama_ftype for a model whose matrices are all `t`.
uint32_t ggml_file_type(DType t) {
  switch (t) {
    case DType::kF32: return 0;
    case DType::kF16: return 1;
    case DType::kQ4_0: return 2;
    case DType::kQ8_0: return 7;
    case DType::kBF16: return 32;
  }
  return 0;
}

// The first normal piece is "▁" alone, SentencePiece's space: without it a space would only
// be reachable as three byte tokens, which llama.cpp decodes to "▁" rather than " ", so text
// would not survive tokenize + detokenize. Then word-like, unique pieces ("▁kane", "▁rito")
// so that generated ids read as text: bijective base-16 over 16 syllables is injective.
std::string normal_piece(int64_t index) {
  static const char* const kSyllables[16] = {"ka", "ne", "ri", "to", "mu", "sa", "lo", "vi",
                                             "de", "po", "gu", "ze", "fa", "hi", "bo", "ju"};
  std::string piece = "\xe2\x96\x81";  // U+2581
  std::string word;
  for (int64_t n = index; n > 0; n = (n - 1) / 16) word.insert(0, kSyllables[(n - 1) % 16]);
  return piece + word;
}

void add_tokenizer(GgufWriter& w, int64_t vocab) {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  tokens.reserve(static_cast<size_t>(vocab));
  // Token types as llama.cpp numbers them: 1 normal, 2 unknown, 3 control, 6 byte.
  tokens.push_back("<unk>");
  types.push_back(2);
  tokens.push_back("<s>");
  types.push_back(3);
  tokens.push_back("</s>");
  types.push_back(3);
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    tokens.push_back(buf);
    types.push_back(6);
  }
  scores.assign(tokens.size(), 0.0f);
  for (int64_t id = kFirstNormalToken; id < vocab; ++id) {
    tokens.push_back(normal_piece(id - kFirstNormalToken));
    scores.push_back(-static_cast<float>(id));
    types.push_back(1);
  }
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", std::move(tokens));
  w.set_f32_array("tokenizer.ggml.scores", scores);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  w.set_u32("tokenizer.ggml.unknown_token_id", 0);
  w.set_bool("tokenizer.ggml.add_bos_token", true);
  w.set_bool("tokenizer.ggml.add_eos_token", false);
}

Status bad(const std::string& what) { return invalid_argument("model synth: " + what); }

}  // namespace

Status validate_synth_spec(const SynthSpec& s) {
  auto range = [](const char* opt, int64_t v, int64_t lo, int64_t hi) -> Status {
    if (v < lo || v > hi) {
      return bad(std::string(opt) + " " + std::to_string(v) + " is out of range [" +
                 std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    return {};
  };
  if (s.arch != "llama") return bad("--arch '" + s.arch + "' is not supported (only llama)");
  STRATA_RETURN_IF_ERROR(range("--dim", s.dim, 2, 65536));
  STRATA_RETURN_IF_ERROR(range("--layers", s.n_layers, 1, 1024));
  STRATA_RETURN_IF_ERROR(range("--heads", s.n_heads, 1, s.dim));
  STRATA_RETURN_IF_ERROR(range("--kv-heads", s.n_kv_heads, 1, s.n_heads));
  STRATA_RETURN_IF_ERROR(range("--ffn", s.ffn_dim, 1, 1 << 20));
  STRATA_RETURN_IF_ERROR(range("--vocab", s.vocab, kFirstNormalToken + 1, 1 << 22));
  STRATA_RETURN_IF_ERROR(range("--ctx", s.ctx, 1, 1 << 24));
  if (s.dim % s.n_heads != 0) {
    return bad("--dim " + std::to_string(s.dim) + " is not a multiple of --heads " +
               std::to_string(s.n_heads));
  }
  if (s.n_heads % s.n_kv_heads != 0) {
    return bad("--heads " + std::to_string(s.n_heads) + " is not a multiple of --kv-heads " +
               std::to_string(s.n_kv_heads));
  }
  if ((s.dim / s.n_heads) % 2 != 0) {
    return bad("head size --dim / --heads = " + std::to_string(s.dim / s.n_heads) +
               " must be even (RoPE rotates pairs)");
  }
  const int64_t block = dtype_block_elems(s.type);
  const std::string type_name(*dtype_name(static_cast<uint32_t>(s.type)));
  if (s.dim % block != 0 || s.ffn_dim % block != 0) {
    return bad("--type " + type_name + " needs --dim and --ffn to be multiples of " +
               std::to_string(block) + " (got " + std::to_string(s.dim) + " and " +
               std::to_string(s.ffn_dim) + ")");
  }
  if (!std::isfinite(s.rope_freq_base) || s.rope_freq_base <= 0) {
    return bad("rope frequency base must be positive");
  }
  if (!std::isfinite(s.rms_eps) || s.rms_eps <= 0) return bad("rms epsilon must be positive");
  return {};
}

Status synth_model(const SynthSpec& spec, const std::string& path,
                   const std::function<void(int64_t done_bytes, int64_t total_bytes)>& progress) {
  STRATA_RETURN_IF_ERROR(validate_synth_spec(spec));
  const int64_t dim = spec.dim;
  const int64_t head_dim = dim / spec.n_heads;
  const int64_t kv_dim = spec.n_kv_heads * head_dim;
  const int64_t ffn = spec.ffn_dim;
  const int64_t vocab = spec.vocab;

  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", spec.name);
  w.set_u32("general.file_type", ggml_file_type(spec.type));
  w.set_u32("general.quantization_version", 2);
  w.set_u32("general.alignment", 32);
  w.set_u32("llama.context_length", static_cast<uint32_t>(spec.ctx));
  w.set_u32("llama.embedding_length", static_cast<uint32_t>(dim));
  w.set_u32("llama.block_count", static_cast<uint32_t>(spec.n_layers));
  w.set_u32("llama.feed_forward_length", static_cast<uint32_t>(ffn));
  w.set_u32("llama.attention.head_count", static_cast<uint32_t>(spec.n_heads));
  w.set_u32("llama.attention.head_count_kv", static_cast<uint32_t>(spec.n_kv_heads));
  w.set_f32("llama.rope.freq_base", static_cast<float>(spec.rope_freq_base));
  w.set_f32("llama.attention.layer_norm_rms_epsilon", static_cast<float>(spec.rms_eps));
  w.set_u32("llama.rope.dimension_count", static_cast<uint32_t>(head_dim));
  w.set_u32("llama.vocab_size", static_cast<uint32_t>(vocab));
  w.set_string("strata.ffn_act", spec.ffn_act == FfnAct::kRelu ? "relu" : "silu");
  w.set("strata.seed", GgufValue{GgufType::kU64, GgufType::kU32, spec.seed});
  add_tokenizer(w, vocab);

  const auto isqrt3 = [](double fan_in) { return static_cast<float>(std::sqrt(3.0 / fan_in)); };
  auto add_tensor = [&](const std::string& name, DType type, const std::vector<int64_t>& dims,
                        float center, float half_width) {
    const int64_t rows = dims.size() == 2 ? dims[1] : 1;
    const FillSpec fs{type, rows, dims[0], tensor_key(spec.seed, name), center, half_width};
    w.add_tensor_fn(name, type, dims, [fs](uint8_t* dst) { fill_parallel(fs, dst); });
  };
  // A matrix in ggml order: rows of `cols` elements.
  auto add = [&](const std::string& name, DType type, int64_t cols, int64_t rows, float center,
                 float half_width) {
    add_tensor(name, type, {cols, rows}, center, half_width);
  };
  auto add_norm = [&](const std::string& name) {
    add_tensor(name, DType::kF32, {dim}, 1.0f, 0.05f);
  };
  // Uniform on [-a, a] has std a/sqrt(3): half width sqrt(3) * std.
  const float logit_head = 2.0f * isqrt3(static_cast<double>(dim));  // std 2/sqrt(dim)
  // Tied: the embedding is also the head. Untied: embeddings of std 1, like a residual stream.
  add("token_embd.weight", spec.type, dim, vocab, 0.0f,
      spec.tied_embeddings ? logit_head : std::sqrt(3.0f));
  for (int64_t i = 0; i < spec.n_layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    add_norm(p + "attn_norm.weight");
    add(p + "attn_q.weight", spec.type, dim, dim, 0.0f, isqrt3(static_cast<double>(dim)));
    add(p + "attn_k.weight", spec.type, dim, kv_dim, 0.0f, isqrt3(static_cast<double>(dim)));
    add(p + "attn_v.weight", spec.type, dim, kv_dim, 0.0f, isqrt3(static_cast<double>(dim)));
    add(p + "attn_output.weight", spec.type, dim, dim, 0.0f, isqrt3(static_cast<double>(dim)));
    add_norm(p + "ffn_norm.weight");
    add(p + "ffn_gate.weight", spec.type, dim, ffn, 0.0f, isqrt3(static_cast<double>(dim)));
    add(p + "ffn_up.weight", spec.type, dim, ffn, 0.0f, isqrt3(static_cast<double>(dim)));
    add(p + "ffn_down.weight", spec.type, ffn, dim, 0.0f, isqrt3(static_cast<double>(ffn)));
  }
  add_norm("output_norm.weight");
  if (!spec.tied_embeddings) add("output.weight", spec.type, dim, vocab, 0.0f, logit_head);
  return w.write(path, progress);
}

}  // namespace strata::model
