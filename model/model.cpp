// Model::load for the llama architecture as GGUF names it, and the per-unit cost table.
//
// Loading never touches tensor data: it checks hyper-parameters and every tensor's shape and
// type against them and records borrowed views into the mapping. Every tensor of the file must
// be used: a tensor strata does not know (biases, rope_freqs, experts) means a variant it
// would run wrongly, so it is refused rather than ignored.
#include <cmath>
#include <set>

#include "gguf_internal.h"
#include "strata/model/model.h"

namespace strata::model {
namespace {

// Hyper-parameters above this are refused: no real model comes near, and it keeps every
// product of two of them far from overflowing int64.
constexpr uint64_t kMaxHparam = uint64_t{1} << 31;

class LlamaLoader {
 public:
  explicit LlamaLoader(const GgufFile& f) : f_(f) {}

  Status load(ModelConfig* c) {
    STRATA_RETURN_IF_ERROR(read_config(c));
    return {};
  }

  Status fail(const std::string& what) const { return corrupt(f_.path() + ": " + what); }
  Status refuse(const std::string& what) const {
    return {StatusCode::kUnsupported, f_.path() + ": " + what};
  }

  // The integer at `key`, or `def` when absent (a required key when def < 0); in [1, 2^31].
  Result<int64_t> hparam(const std::string& key, int64_t def) const {
    Result<uint64_t> v = f_.get_u64(key);
    if (!v.ok()) {
      if (v.status().code() != StatusCode::kNotFound) return v.status();
      if (def < 0) return fail("required key '" + key + "' is missing");
      return def;
    }
    if (*v < 1 || *v > kMaxHparam) {
      return fail(key + " is " + std::to_string(*v) + " (expected 1 to 2^31)");
    }
    return static_cast<int64_t>(*v);
  }

  Result<double> positive_real(const std::string& key, double def) const {
    Result<double> v = f_.get_f64(key);
    if (!v.ok()) {
      if (v.status().code() != StatusCode::kNotFound) return v.status();
      return def;
    }
    if (!std::isfinite(*v) || *v <= 0) {
      return fail(key + " is " + std::to_string(*v) + " (expected a positive number)");
    }
    return *v;
  }

  // The tensor `name` with exactly `dims`; `norm` requires f32. `why` explains the expected
  // shape in the error ("dim 256, kv_dim 64").
  Result<const GgufTensorInfo*> tensor(const std::string& name, const std::vector<int64_t>& dims,
                                       bool norm, const std::string& why) {
    const GgufTensorInfo* t = f_.find_tensor(name);
    if (t == nullptr) {
      return fail("tensor '" + name + "' is missing (expected " + gguf_dims_string(dims) + ", " +
                  why + ")");
    }
    if (t->dims != dims) {
      return fail("tensor '" + name + "' has shape " + gguf_dims_string(t->dims) + ", expected " +
                  gguf_dims_string(dims) + " (" + why + ")");
    }
    const std::string type_name(*dtype_name(static_cast<uint32_t>(t->type)));
    if (norm && t->type != DType::kF32) {
      return refuse("norm tensor '" + name + "' has type " + type_name +
                    "; strata needs norm weights in f32");
    }
    // Kernels read f32 values and the f16 scales of blocks in place.
    const uintptr_t need = t->type == DType::kF32 ? 4 : 2;
    if (reinterpret_cast<uintptr_t>(t->data) % need != 0) {
      return refuse("tensor '" + name + "' data at byte " +
                    std::to_string(f_.data_offset() + t->offset) + " is not " +
                    std::to_string(need) + "-byte aligned (general.alignment " +
                    std::to_string(f_.alignment()) + ")");
    }
    used_.insert(name);
    return t;
  }

  Result<WeightView> matrix(const std::string& name, int64_t cols, int64_t rows,
                            const std::string& why) {
    STRATA_ASSIGN_OR_RETURN(const GgufTensorInfo* t, tensor(name, {cols, rows}, false, why));
    return WeightView{t->type, rows, cols, t->data};
  }

  Result<const float*> norm(const std::string& name, int64_t dim) {
    STRATA_ASSIGN_OR_RETURN(const GgufTensorInfo* t,
                            tensor(name, {dim}, true, "dim " + std::to_string(dim)));
    return reinterpret_cast<const float*>(t->data);
  }

  Status check_all_used() const {
    for (const GgufTensorInfo& t : f_.tensors()) {
      if (used_.count(t.name) == 0) {
        return refuse("tensor '" + t.name +
                      "' is not part of the llama layout strata runs (no biases, rope_freqs, "
                      "experts or extra layers)");
      }
    }
    return {};
  }

 private:
  Status read_config(ModelConfig* c) {
    Result<std::string> arch = f_.get_string("general.architecture");
    if (!arch.ok()) {
      if (arch.status().code() == StatusCode::kNotFound) {
        return fail("key 'general.architecture' is missing");
      }
      return arch.status();
    }
    if (*arch != "llama") {
      return refuse("architecture '" + *arch + "' is not supported (strata runs llama)");
    }
    c->arch = *arch;
    if (Result<std::string> name = f_.get_string("general.name"); name.ok()) c->name = *name;
    STRATA_ASSIGN_OR_RETURN(c->n_layers, hparam("llama.block_count", -1));
    STRATA_ASSIGN_OR_RETURN(c->dim, hparam("llama.embedding_length", -1));
    STRATA_ASSIGN_OR_RETURN(c->ffn_dim, hparam("llama.feed_forward_length", -1));
    STRATA_ASSIGN_OR_RETURN(c->n_heads, hparam("llama.attention.head_count", -1));
    STRATA_ASSIGN_OR_RETURN(c->n_kv_heads, hparam("llama.attention.head_count_kv", c->n_heads));
    STRATA_ASSIGN_OR_RETURN(c->ctx_train, hparam("llama.context_length", -1));
    STRATA_ASSIGN_OR_RETURN(c->rope_freq_base, positive_real("llama.rope.freq_base", 10000.0));
    STRATA_ASSIGN_OR_RETURN(c->rms_eps,
                            positive_real("llama.attention.layer_norm_rms_epsilon", 1e-5));
    if (c->dim % c->n_heads != 0) {
      return fail("llama.embedding_length " + std::to_string(c->dim) +
                  " is not divisible by llama.attention.head_count " + std::to_string(c->n_heads));
    }
    if (c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads != 0) {
      return fail("llama.attention.head_count " + std::to_string(c->n_heads) +
                  " is not a multiple of llama.attention.head_count_kv " +
                  std::to_string(c->n_kv_heads));
    }
    c->head_dim = c->dim / c->n_heads;
    STRATA_ASSIGN_OR_RETURN(const int64_t key_length,
                            hparam("llama.attention.key_length", c->head_dim));
    STRATA_ASSIGN_OR_RETURN(const int64_t value_length,
                            hparam("llama.attention.value_length", c->head_dim));
    if (key_length != c->head_dim || value_length != c->head_dim) {
      return refuse("llama.attention.key_length/value_length " + std::to_string(key_length) + "/" +
                    std::to_string(value_length) + " differ from dim / heads = " +
                    std::to_string(c->head_dim) + ", which strata does not support");
    }
    STRATA_ASSIGN_OR_RETURN(c->rope_dims, hparam("llama.rope.dimension_count", c->head_dim));
    if (c->rope_dims > c->head_dim || c->rope_dims % 2 != 0) {
      return fail("llama.rope.dimension_count " + std::to_string(c->rope_dims) +
                  " must be even and at most the head size " + std::to_string(c->head_dim));
    }
    if (Result<uint64_t> experts = f_.get_u64("llama.expert_count"); experts.ok() && *experts > 0) {
      return refuse("mixture-of-experts llama (llama.expert_count " + std::to_string(*experts) +
                    ") is not supported");
    }
    if (Result<std::string> scaling = f_.get_string("llama.rope.scaling.type");
        scaling.ok() && *scaling != "none") {
      return refuse("rope scaling '" + *scaling + "' is not supported");
    }
    if (f_.has("strata.ffn_act")) {
      STRATA_ASSIGN_OR_RETURN(const std::string act, f_.get_string("strata.ffn_act"));
      if (act == "silu") {
        c->ffn_act = FfnAct::kSilu;
      } else if (act == "relu") {
        c->ffn_act = FfnAct::kRelu;
      } else {
        return refuse("strata.ffn_act '" + act + "' is not supported (silu or relu)");
      }
    }
    // The layer count must be backed by tensors before anything is sized by it (a slice
    // holds only its own blocks).
    if (!f_.has("strata.slice.block_begin") &&
        static_cast<uint64_t>(c->n_layers) > f_.tensors().size() / 9) {
      return fail("llama.block_count " + std::to_string(c->n_layers) + " needs at least " +
                  std::to_string(c->n_layers * 9) + " tensors but the file has " +
                  std::to_string(f_.tensors().size()));
    }
    return read_vocab(c);
  }

  Status read_vocab(ModelConfig* c) {
    int64_t n_tokens = 0;
    if (f_.has("tokenizer.ggml.tokens")) {
      STRATA_ASSIGN_OR_RETURN(const uint64_t n, f_.get_array_length("tokenizer.ggml.tokens"));
      n_tokens = static_cast<int64_t>(n);
    }
    if (f_.has("llama.vocab_size")) {
      STRATA_ASSIGN_OR_RETURN(c->vocab, hparam("llama.vocab_size", -1));
      if (n_tokens != 0 && n_tokens != c->vocab) {
        return fail("llama.vocab_size " + std::to_string(c->vocab) +
                    " differs from the length of tokenizer.ggml.tokens " +
                    std::to_string(n_tokens));
      }
    } else if (n_tokens != 0) {
      c->vocab = n_tokens;
    } else if (const GgufTensorInfo* e = f_.find_tensor("token_embd.weight");
               e != nullptr && e->dims.size() == 2) {
      c->vocab = e->dims[1];
    } else {
      return fail(
          "no vocabulary size: neither llama.vocab_size, tokenizer.ggml.tokens nor a "
          "2-D token_embd.weight");
    }
    for (auto [key, id] : {std::pair{"tokenizer.ggml.bos_token_id", &c->bos_id},
                           std::pair{"tokenizer.ggml.eos_token_id", &c->eos_id}}) {
      if (!f_.has(key)) continue;
      STRATA_ASSIGN_OR_RETURN(const uint64_t v, f_.get_u64(key));
      if (v >= static_cast<uint64_t>(c->vocab)) {
        return fail(std::string(key) + " " + std::to_string(v) + " is outside the vocabulary (" +
                    std::to_string(c->vocab) + " tokens)");
      }
      *id = static_cast<uint32_t>(v);
    }
    return {};
  }

  const GgufFile& f_;
  std::set<std::string> used_;
};

// What part of a model a file holds: everything, or a slice written by write_model_slice.
struct SliceInfo {
  bool is_slice = false;
  int64_t block_begin = 0;
  int64_t block_end = 0;
  bool with_embedding = true;
  bool with_head = true;
  bool tied = false;
};

Status read_slice_info(const GgufFile& f, int64_t n_layers, SliceInfo* s) {
  s->block_end = n_layers;
  if (!f.has("strata.slice.block_begin")) return {};
  const auto fail = [&](const std::string& what) { return corrupt(f.path() + ": " + what); };
  s->is_slice = true;
  STRATA_ASSIGN_OR_RETURN(const uint64_t b, f.get_u64("strata.slice.block_begin"));
  STRATA_ASSIGN_OR_RETURN(const uint64_t e, f.get_u64("strata.slice.block_end"));
  if (b > e || e > static_cast<uint64_t>(n_layers)) {
    return fail("strata.slice blocks [" + std::to_string(b) + ", " + std::to_string(e) +
                ") are outside the model's " + std::to_string(n_layers) + " blocks");
  }
  if (static_cast<uint64_t>(e - b) > f.tensors().size() / 9) {
    return fail("strata.slice holds " + std::to_string(e - b) + " blocks but the file has only " +
                std::to_string(f.tensors().size()) + " tensors");
  }
  s->block_begin = static_cast<int64_t>(b);
  s->block_end = static_cast<int64_t>(e);
  STRATA_ASSIGN_OR_RETURN(s->with_embedding, f.get_bool("strata.slice.has_embedding"));
  STRATA_ASSIGN_OR_RETURN(s->with_head, f.get_bool("strata.slice.has_head"));
  STRATA_ASSIGN_OR_RETURN(s->tied, f.get_bool("strata.slice.tied_embeddings"));
  return {};
}

int64_t view_bytes(const WeightView& w) { return w.rows * row_bytes(w.type, w.cols); }

void add_weight(LayerCost* unit, const WeightView& w) {
  const int64_t n = view_bytes(w);
  unit->weight_bytes += n;
  unit->weight_bytes_by_type[std::string(*dtype_name(static_cast<uint32_t>(w.type)))] += n;
  unit->flops_per_token += 2.0 * static_cast<double>(w.rows) * static_cast<double>(w.cols);
}

void add_norm(LayerCost* unit, int64_t dim) {
  unit->weight_bytes += dim * 4;
  unit->weight_bytes_by_type["f32"] += dim * 4;
}

}  // namespace

Result<std::unique_ptr<Model>> Model::load(const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> file, GgufFile::open(path));
  return from_gguf(std::move(file));
}

Result<std::unique_ptr<Model>> Model::from_gguf(std::unique_ptr<GgufFile> file) {
  STRATA_CHECK(file != nullptr);
  std::unique_ptr<Model> m(new Model());
  LlamaLoader ld(*file);
  ModelConfig& c = m->config_;
  STRATA_RETURN_IF_ERROR(ld.load(&c));
  const int64_t kv_dim = c.kv_dim();
  const std::string d = "dim " + std::to_string(c.dim);
  const std::string dv = d + ", vocab " + std::to_string(c.vocab);
  const std::string dk = d + ", kv_dim " + std::to_string(kv_dim);
  const std::string df = d + ", ffn " + std::to_string(c.ffn_dim);
  const std::string dfr = "ffn " + std::to_string(c.ffn_dim) + ", " + d;

  SliceInfo slice;
  STRATA_RETURN_IF_ERROR(read_slice_info(*file, c.n_layers, &slice));
  m->is_slice_ = slice.is_slice;
  m->block_begin_ = slice.block_begin;
  m->block_end_ = slice.block_end;
  c.tied_embeddings = slice.is_slice ? slice.tied : file->find_tensor("output.weight") == nullptr;
  // With tied embeddings the head reads token_embd, so a head slice carries it too.
  if (slice.with_embedding || (slice.with_head && c.tied_embeddings)) {
    STRATA_ASSIGN_OR_RETURN(const WeightView embd,
                            ld.matrix("token_embd.weight", c.dim, c.vocab, dv));
    if (slice.with_embedding) m->token_embd_ = embd;
    if (c.tied_embeddings) m->output_ = embd;
  }
  if (slice.with_head) {
    STRATA_ASSIGN_OR_RETURN(m->output_norm_, ld.norm("output_norm.weight", c.dim));
    if (!c.tied_embeddings) {
      STRATA_ASSIGN_OR_RETURN(m->output_, ld.matrix("output.weight", c.dim, c.vocab, dv));
    }
  }
  m->layers_.resize(static_cast<size_t>(c.n_layers));
  for (int64_t i = slice.block_begin; i < slice.block_end; ++i) {
    LayerWeights& l = m->layers_[static_cast<size_t>(i)];
    const std::string p = "blk." + std::to_string(i) + ".";
    STRATA_ASSIGN_OR_RETURN(l.attn_norm, ld.norm(p + "attn_norm.weight", c.dim));
    STRATA_ASSIGN_OR_RETURN(l.attn_q, ld.matrix(p + "attn_q.weight", c.dim, c.dim, d));
    STRATA_ASSIGN_OR_RETURN(l.attn_k, ld.matrix(p + "attn_k.weight", c.dim, kv_dim, dk));
    STRATA_ASSIGN_OR_RETURN(l.attn_v, ld.matrix(p + "attn_v.weight", c.dim, kv_dim, dk));
    STRATA_ASSIGN_OR_RETURN(l.attn_o, ld.matrix(p + "attn_output.weight", c.dim, c.dim, d));
    STRATA_ASSIGN_OR_RETURN(l.ffn_norm, ld.norm(p + "ffn_norm.weight", c.dim));
    STRATA_ASSIGN_OR_RETURN(l.ffn_gate, ld.matrix(p + "ffn_gate.weight", c.dim, c.ffn_dim, df));
    STRATA_ASSIGN_OR_RETURN(l.ffn_up, ld.matrix(p + "ffn_up.weight", c.dim, c.ffn_dim, df));
    STRATA_ASSIGN_OR_RETURN(l.ffn_down, ld.matrix(p + "ffn_down.weight", c.ffn_dim, c.dim, dfr));
  }
  STRATA_RETURN_IF_ERROR(ld.check_all_used());

  std::map<DType, int64_t> bytes_by_type;
  for (const GgufTensorInfo& t : file->tensors()) bytes_by_type[t.type] += t.n_bytes;
  int64_t most = -1;
  for (const auto& [type, bytes] : bytes_by_type) {
    if (bytes > most) {
      most = bytes;
      c.main_type = type;
    }
  }
  m->file_ = std::move(file);
  return m;
}

ModelCost model_cost(const Model& model, DType kv_type) {
  const ModelConfig& c = model.config();
  ModelCost cost;

  // A slice's parts it does not hold weigh nothing (the units keep their place).
  LayerCost embd;
  embd.name = "token_embd";
  if (model.has_embedding()) {
    add_weight(&embd, model.token_embd());
    embd.weight_bytes_read_per_token = row_bytes(model.token_embd().type, c.dim);
  }
  embd.flops_per_token = 0;  // a row lookup, no arithmetic
  embd.activation_bytes_out = c.dim * 4;
  cost.units.push_back(embd);

  const int64_t kv_block = dtype_block_elems(kv_type);
  const int64_t kv_row_bytes = (c.kv_dim() + kv_block - 1) / kv_block * dtype_block_bytes(kv_type);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    LayerCost u;
    u.name = "blk." + std::to_string(i);
    if (i >= model.block_begin() && i < model.block_end()) {
      const LayerWeights& l = model.layer(i);
      add_norm(&u, c.dim);
      for (const WeightView* w : {&l.attn_q, &l.attn_k, &l.attn_v, &l.attn_o}) add_weight(&u, *w);
      add_norm(&u, c.dim);
      for (const WeightView* w : {&l.ffn_gate, &l.ffn_up, &l.ffn_down}) add_weight(&u, *w);
    }
    // QKᵀ and A·V: one multiply-add per head dimension each, per head, per cached position.
    u.attn_flops_per_token_per_ctx = 4.0 * static_cast<double>(c.n_heads * c.head_dim);
    u.kv_bytes_per_token = 2 * kv_row_bytes;
    u.activation_bytes_out = c.dim * 4;
    u.weight_bytes_read_per_token = u.weight_bytes;
    cost.units.push_back(u);
  }

  // With tied embeddings the head still multiplies by the whole embedding matrix every token,
  // so its weight bytes are the embedding's: a stage holding the head needs them resident.
  LayerCost out;
  out.name = "output";
  if (model.has_head()) {
    add_norm(&out, c.dim);
    add_weight(&out, model.output());
  }
  out.activation_bytes_out = c.vocab * 4;
  out.weight_bytes_read_per_token = out.weight_bytes;
  cost.units.push_back(out);

  for (const GgufTensorInfo& t : model.file().tensors()) cost.total_weight_bytes += t.n_bytes;
  return cost;
}

}  // namespace strata::model
