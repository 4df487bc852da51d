// A Llama-family model loaded from GGUF: its hyper-parameters, borrowed views of its weights,
// and the per-layer cost table the partitioner and `strata model info` use.
//
// Thread-safety: a loaded Model is immutable and may be shared by any number of threads.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "strata/base/status.h"
#include "strata/model/gguf.h"
#include "strata/model/kernels.h"
#include "strata/model/types.h"

namespace strata::model {

enum class FfnAct { kSilu, kRelu };  // SwiGLU gate activation; ReLU for sparse-FFN models

struct ModelConfig {
  std::string arch;  // "llama"
  std::string name;  // general.name, may be empty
  int64_t n_layers = 0;
  int64_t dim = 0;  // embedding length
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;  // dim / n_heads
  int64_t ffn_dim = 0;
  int64_t vocab = 0;
  int64_t ctx_train = 0;  // context length the model was made for
  int64_t rope_dims = 0;  // rotated dims per head (rope.dimension_count, default head_dim)
  double rope_freq_base = 10000.0;
  double rms_eps = 1e-5;
  bool tied_embeddings = false;  // no output.weight: the head reuses token_embd
  FfnAct ffn_act = FfnAct::kSilu;
  DType main_type = DType::kF32;  // the type of most weight bytes (general.file_type-like)
  uint32_t bos_id = 1;
  uint32_t eos_id = 2;

  int64_t kv_dim() const { return n_kv_heads * head_dim; }
};

struct LayerWeights {
  const float* attn_norm = nullptr;  // dim floats
  WeightView attn_q;                 // dim x dim        (rows x cols)
  WeightView attn_k;                 // kv_dim x dim
  WeightView attn_v;                 // kv_dim x dim
  WeightView attn_o;                 // dim x dim
  const float* ffn_norm = nullptr;
  WeightView ffn_gate;  // ffn x dim
  WeightView ffn_up;    // ffn x dim
  WeightView ffn_down;  // dim x ffn
};

class Model {
 public:
  // Opens, validates and maps `path`. Errors name the file and the problem: kUnsupported for
  // an architecture other than llama, a tensor type strata lacks, a norm weight not in f32, a
  // llama variant strata does not run (rope scaling, experts, biases or any other extra
  // tensor); kCorrupt for missing or mis-shaped tensors and absurd hyper-parameters. Every
  // WeightView's data is aligned to its element (4 bytes for f32, 2 otherwise).
  static Result<std::unique_ptr<Model>> load(const std::string& path);
  // The same over an already opened file (the Model takes ownership).
  static Result<std::unique_ptr<Model>> from_gguf(std::unique_ptr<GgufFile> file);

  const ModelConfig& config() const { return config_; }
  const GgufFile& file() const { return *file_; }

  // A slice (see write_model_slice) holds blocks [block_begin, block_end) and the embedding
  // and/or head only when has_embedding()/has_head(); a whole model holds everything.
  // Asking for a part the file lacks is a bug (aborts).
  bool is_slice() const { return is_slice_; }
  int64_t block_begin() const { return block_begin_; }
  int64_t block_end() const { return block_end_; }
  bool has_embedding() const { return token_embd_.data != nullptr; }
  bool has_head() const { return output_norm_ != nullptr; }

  const WeightView& token_embd() const {
    STRATA_CHECK_MSG(has_embedding(), "this model slice has no token embedding");
    return token_embd_;
  }  // vocab x dim
  const WeightView& output() const {
    STRATA_CHECK_MSG(has_head(), "this model slice has no output head");
    return output_;
  }  // vocab x dim (token_embd if tied)
  const float* output_norm() const {
    STRATA_CHECK_MSG(has_head(), "this model slice has no output head");
    return output_norm_;
  }
  const LayerWeights& layer(int64_t i) const {
    STRATA_CHECK_MSG(i >= block_begin_ && i < block_end_,
                     "block " + std::to_string(i) + " is not in this model (slice)");
    return layers_[static_cast<size_t>(i)];
  }

 private:
  Model() = default;
  std::unique_ptr<GgufFile> file_;
  ModelConfig config_;
  WeightView token_embd_;
  WeightView output_;
  const float* output_norm_ = nullptr;
  std::vector<LayerWeights> layers_;
  bool is_slice_ = false;
  int64_t block_begin_ = 0;
  int64_t block_end_ = 0;
};

// Writes a GGUF holding part of `model`: all its metadata, blocks [block_begin, block_end),
// and the token embedding and/or output head when asked (with tied embeddings the head
// includes token_embd). The slice records what it holds (strata.slice.*) and the hash of the
// whole model it came from; Model::load reads it back as a slice. This is what a coordinator
// ships to an agent that lacks the model. Errors: kInvalidArgument for a bad range, kIo.
Status write_model_slice(const Model& model, int64_t block_begin, int64_t block_end,
                         bool with_embedding, bool with_head, const std::string& path);

// A 64-bit content hash of a file's bytes as 16 hex digits (not cryptographic: it detects a
// corrupt or different file, not a malicious one). kNotFound / kIo naming the path.
Result<std::string> hash_file(const std::string& path);
// The same over bytes in memory (so a receiver can hash what it got before writing it).
std::string hash_bytes(const uint8_t* data, size_t size);

// Cost of one schedulable unit: the embedding, one transformer block, or the head.
struct LayerCost {
  std::string name;                                     // "token_embd", "blk.0", ..., "output"
  int64_t weight_bytes = 0;                             // bytes read from the file for this unit
  std::map<std::string, int64_t> weight_bytes_by_type;  // "q4_0" -> bytes
  double flops_per_token = 0;               // matmul FLOPs per token (2 per multiply-add)
  double attn_flops_per_token_per_ctx = 0;  // extra FLOPs per token per cached position
  int64_t kv_bytes_per_token = 0;           // KV cache bytes per token (at the engine's KV type)
  int64_t activation_bytes_out = 0;         // bytes per token handed to the next unit (f32 hidden)
  int64_t weight_bytes_read_per_token = 0;  // decode: bytes touched per token (embd: 1 row)
};

struct ModelCost {
  std::vector<LayerCost> units;  // token_embd, blk.0 .. blk.{L-1}, output (in order)
  // Every tensor of the file counted once. With tied embeddings the units' weight_bytes add up
  // to more than this: both token_embd and output carry the embedding matrix, since a stage
  // holding either needs it resident.
  int64_t total_weight_bytes = 0;
};

// Per-unit costs from the config and the actual tensor sizes; `kv_type` is the KV cache type
// (a block type rounds kv_dim up to whole blocks). Units: token_embd has 0 FLOPs and reads one
// row per token; blk.i counts both norms, the 7 matrices, QKᵀ and A·V as
// attn_flops_per_token_per_ctx = 4 * n_heads * head_dim, and K and V in kv_bytes_per_token;
// output counts output_norm and the head (the embedding matrix when tied), and hands on vocab
// f32 logits. For a slice, the embedding, blocks and head it does not hold weigh nothing (no
// bytes, no matmul FLOPs); every unit keeps its place. Pure; thread-safe.
ModelCost model_cost(const Model& model, DType kv_type);

// Parameters of `strata model synth`: a GGUF with deterministic random weights of a real shape.
struct SynthSpec {
  std::string arch = "llama";
  std::string name = "strata-synth";
  int64_t dim = 256;
  int64_t n_layers = 2;
  int64_t n_heads = 8;
  int64_t n_kv_heads = 8;
  int64_t ffn_dim = 512;
  int64_t vocab = 512;
  int64_t ctx = 2048;
  DType type = DType::kF32;  // every 2-D weight; norms stay f32
  bool tied_embeddings = false;
  FfnAct ffn_act = FfnAct::kSilu;
  uint64_t seed = 1;
  double rope_freq_base = 10000.0;
  double rms_eps = 1e-5;
};

// Checks the shape (dims divisible, vocab >= 259 + 1, block-size multiples) and returns
// kInvalidArgument naming the bad parameter, or ok.
Status validate_synth_spec(const SynthSpec& spec);
// Writes the model to `path`: full llama metadata (general.*, llama.*, strata.ffn_act,
// strata.seed) and a llama (SPM) tokenizer vocabulary (<unk>, <s>, </s>, 256 byte tokens
// <0x00>..<0xFF>, "▁", then unique word pieces) so that llama.cpp loads the file unchanged.
// Every element is a pure function of (seed, tensor name, index): the same spec gives the same
// bytes. Matrices have std 1/sqrt(fan_in); the head (output, or token_embd when tied) gives
// logits of std ~2; norms are 1 +- 0.05. Uses up to 8 threads; holds at most two tensors in
// memory. `progress(done_bytes, total_bytes)` is called as tensors are written (may be empty).
// Returns kInvalidArgument for a bad spec, an I/O status naming the path otherwise.
Status synth_model(const SynthSpec& spec, const std::string& path,
                   const std::function<void(int64_t done_bytes, int64_t total_bytes)>& progress);

}  // namespace strata::model
