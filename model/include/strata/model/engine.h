// The inference engine for one device: a contiguous range of a Llama model's layers, with the
// KV cache of those layers for every sequence it serves. `strata generate` runs the whole model
// through one Engine; a pipeline stage of the distributed runtime runs its slice through
// another. Because each kernel's result for a token depends only on that token's inputs (see
// kernels.h), splitting the layers into stages, batching sequences differently, or changing the
// thread count gives bit-identical hidden states and logits.
//
// Thread-safety: an Engine is used by one thread at a time (it owns a thread pool internally).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <span>
#include <vector>

#include "strata/base/status.h"
#include "strata/model/kernels.h"
#include "strata/model/model.h"

namespace strata::model {

// Where an Engine gets each block's weights. The default serves the model's mmap views; a
// streaming source (issue 6: weights larger than RAM) reads them from flash ahead of use.
// Calls come from the engine's thread, in layer order, acquire/release paired.
class LayerWeightSource {
 public:
  virtual ~LayerWeightSource() = default;
  // Returns block `layer`'s weights, valid until release(layer); blocks until they are in
  // memory. Errors (kIo, kCorrupt) name the file and the layer.
  virtual Result<const LayerWeights*> acquire(int64_t layer) = 0;
  virtual void release(int64_t layer) = 0;

  // The up and down matrices for block `layer`, asked between acquire(layer) and
  // release(layer), after the gate product and before the up product. `w` is what acquire
  // returned; `gate` holds the gate product's pre-activations (n_tokens x ffn_dim floats,
  // row-major). The default hands back w's own. A sparse source for ReLU models reads only
  // the neurons with gate > 0 for some token and returns dense-shaped matrices whose other
  // neurons are zero: relu(gate) = 0 multiplies them, so the same kernels give the dense
  // run's bits (docs/STREAMING.md). From this call on the engine uses only the returned views
  // for the layer (so a source may reuse the memory behind w's); they stay valid until
  // release(layer). Errors as acquire's; the engine then calls release(layer) and returns.
  struct FfnUpDown {
    WeightView up;    // ffn_dim x dim
    WeightView down;  // dim x ffn_dim
  };
  virtual Result<FfnUpDown> ffn_up_down(int64_t layer, const LayerWeights& w, const float* gate,
                                        int64_t n_tokens) {
    (void)layer;
    (void)gate;
    (void)n_tokens;
    return FfnUpDown{w.ffn_up, w.ffn_down};
  }

  // Rows [row_begin, row_begin + view.rows) of matrix `m` of block `layer`, for a matrix that
  // acquire() (or ffn_up_down()) returned with data == nullptr: a source that reads a block in
  // pieces smaller than its matrices hands them out one row range at a time. The engine asks
  // row_begin = 0 first, then where the last view ended, until it has every row, and uses each
  // view for one product only: a source may reuse the memory of every earlier piece of the
  // block from the next call on. Views stay valid until the next call or release(layer).
  // Errors as acquire's (the engine then calls release(layer) and returns). The default
  // refuses: sources that never return null matrices are never asked.
  enum class Matrix { kQ, kK, kV, kO, kGate, kUp, kDown };
  virtual Result<WeightView> matrix_rows(int64_t layer, Matrix m, int64_t row_begin) {
    (void)layer;
    (void)m;
    (void)row_begin;
    return unsupported("this weight source returns whole matrices");
  }

  // Whether embed() should ask embed_rows() for the embedding rows instead of reading the
  // model's token_embd through its mapping (a streaming source that does not keep the table
  // resident reads only the rows a forward call needs).
  virtual bool serves_embedding_rows() const { return false; }
  // Writes the embedding row of tokens[t] (ids already checked against the vocabulary) as
  // floats to hidden + t * dim. Asked only when serves_embedding_rows(). Errors: kIo / kCorrupt
  // naming the file.
  virtual Status embed_rows(std::span<const int32_t> tokens, float* hidden) {
    (void)tokens;
    (void)hidden;
    return unsupported("this weight source does not serve embedding rows");
  }
};

struct EngineOptions {
  int n_threads = 1;
  int64_t layer_begin = 0;               // first transformer block this engine runs
  int64_t layer_end = -1;                // one past the last; -1 = n_layers
  int64_t ctx = 2048;                    // KV positions per sequence (0 <= pos < ctx)
  int64_t max_sequences = 1;             // sequence slots (ids 0 .. max_sequences-1)
  int64_t max_batch = 512;               // most tokens in one forward call
  LayerWeightSource* weights = nullptr;  // borrowed; null = the model's own (mmap) weights
};

// One token of a batch: which sequence it belongs to and its position in that sequence.
// Tokens of one sequence inside a batch must be in increasing, consecutive positions; a token
// attends to every cached position <= its own (those written by earlier calls or earlier in
// this batch).
struct TokenSlot {
  int32_t seq = 0;
  int32_t pos = 0;
};

class Engine {
 public:
  // Allocates scratch and KV cache for the range. Errors: kInvalidArgument for a bad range,
  // thread count, ctx or sequence count; kResourceExhausted if the KV cache cannot be allocated.
  // `model` is borrowed and must outlive the engine.
  static Result<std::unique_ptr<Engine>> create(const Model& model, const EngineOptions& options);

  const ModelConfig& config() const { return model_.config(); }
  int64_t layer_begin() const { return layer_begin_; }
  int64_t layer_end() const { return layer_end_; }
  int64_t ctx() const { return options_.ctx; }
  int n_threads() const { return pool_.size(); }
  // Bytes of KV cache this engine holds (all sequence slots).
  int64_t kv_cache_bytes() const;

  // hidden[t * dim ..] = embedding row of tokens[t]. kInvalidArgument for an id >= vocab.
  Status embed(std::span<const int32_t> tokens, float* hidden);

  // Runs this engine's layers over tokens.size() hidden states in place (n x dim floats,
  // row-major), appending each token's K and V to its sequence's cache at its position.
  // Errors (kInvalidArgument): a sequence id outside the slots, a position outside ctx, a
  // batch larger than max_batch, positions of a sequence not consecutive.
  Status forward(std::span<const TokenSlot> tokens, float* hidden);

  // Final RMSNorm and output head for `n_rows` hidden states: logits is n_rows x vocab.
  void head(const float* hidden, int64_t n_rows, float* logits);

  // Forgets a sequence's cached positions (its slot can be reused from position 0).
  void reset_sequence(int32_t seq);

 private:
  Engine(const Model& model, const EngineOptions& options);
  void ensure_scratch(int64_t n_tokens);
  void attention(std::span<const TokenSlot> tokens, int64_t layer_local);
  float* k_cache(int64_t layer_local, int32_t seq);
  float* v_cache(int64_t layer_local, int32_t seq);

  const Model& model_;
  EngineOptions options_;
  int64_t layer_begin_ = 0;
  int64_t layer_end_ = 0;
  ThreadPool pool_;
  MatmulScratch mm_scratch_;
  // KV cache: [layer_local][seq] -> ctx x kv_dim floats each for K and V.
  std::vector<std::vector<float>> k_;
  std::vector<std::vector<float>> v_;
  std::vector<int32_t> seq_len_;  // positions cached per sequence
  // Scratch sized for the largest batch seen so far.
  int64_t scratch_tokens_ = 0;
  std::vector<float> xn_, q_, k_new_, v_new_, attn_, gate_, up_, tmp_;
  std::vector<float> rope_cos_, rope_sin_;  // per token x rope_dims/2
};

// Sampling of one token from a row of logits.
struct SamplerOptions {
  float temperature = 0.0f;  // 0 = greedy
  int top_k = 0;             // 0 = all
  float top_p = 1.0f;        // 1 = all
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerOptions& options);
  // Returns the chosen token id. Greedy picks the largest logit, the lowest id on ties. With a
  // temperature, keeps the top_k largest, then the smallest prefix whose probability reaches
  // top_p, and draws from it with the seeded generator (same seed, same draws on every
  // platform). Not thread-safe.
  int32_t sample(std::span<const float> logits);
  // Continues as if `n_tokens` tokens had already been sampled (a resumed sequence): sampling
  // with a temperature takes one draw per token; greedy takes none.
  void skip(int64_t n_tokens);

 private:
  SamplerOptions options_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;
};

// Single-process generation over an Engine that holds every layer (the reference the
// distributed runtime is compared with). The prompt is run as one batch (chunks of max_batch
// when longer), the last position's logits give the first new token, then each new token is
// one decode step. `n_gen` new tokens cost n_gen - 1 decode steps.
struct GenerateOptions {
  std::vector<int32_t> prompt;
  int64_t n_gen = 16;
  SamplerOptions sampler;
  int logits_top = 0;  // record the top-K logits after the prompt
  bool stop_at_eos = false;
  int32_t seq = 0;  // sequence slot to use (reset first)
};

struct GenerateResult {
  std::vector<int32_t> tokens;                        // the new tokens
  std::vector<std::pair<int32_t, float>> top_logits;  // after the prompt, if asked
  std::vector<float> prompt_logits;                   // the full logits row after the prompt
  std::vector<float> last_logits;                     // the row the last token was sampled from
  double prefill_s = 0;  // time of the prompt's forward pass incl. its logits
  double decode_s = 0;   // time of the decode steps
  int64_t n_decode_steps = 0;
};

// Runs generation. `on_token(id)` (may be empty) is called as each token is chosen. Errors:
// kInvalidArgument for an empty prompt, a token id outside the vocabulary, or a prompt plus
// n_gen longer than the engine's context; the engine must hold all layers (checked).
Result<GenerateResult> generate(Engine& engine, const GenerateOptions& options,
                                const std::function<void(int32_t)>& on_token);

// The `n` largest (id, logit) pairs of a logits row, largest first, ties by lower id.
std::vector<std::pair<int32_t, float>> top_logits(std::span<const float> logits, int n);

// The default prompt shared with ../shared/peer/llamacpp_bench.mjs: id[0] = 1 (BOS),
// id[i] = 259 + ((i * 7919) mod (vocab - 259)).
std::vector<int32_t> default_prompt(int64_t n, int64_t vocab);

}  // namespace strata::model
