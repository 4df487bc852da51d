// The model side of planning: a layer table lists the model's schedulable units in order
// (for a language model: the token embedding, the transformer blocks, the output head; for a
// CNN: its layers) with what each one costs per token. `strata plan --layers TABLE.json`
// reads one; a GGUF file yields one (layer_table_from_gguf); llama_layer_table() computes
// one from a Llama shape. The JSON format is documented in docs/COST_MODEL.md.
//
// Thread-safety: plain values and pure functions; safe to use from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "strata/base/status.h"

namespace strata::model {
class Model;
}

namespace strata::partitioner {

// Where a unit may go: the embedding must open stage 0 and the head must close the last
// stage. A table accepts an embedding only as its first unit and a head only as its last,
// so every contiguous cut keeps them where they belong.
enum class UnitKind { kEmbedding, kBlock, kHead, kOther };

// Returns "embedding", "block", "head", "other".
const char* unit_kind_name(UnitKind kind);

struct LayerUnit {
  std::string name;  // "token_embd", "blk.0", ..., "output"; "conv1" for a CNN
  UnitKind kind = UnitKind::kBlock;
  // Matrix FLOPs per token (2 per multiply-add), and the extra attention FLOPs per token per
  // cached position (0 for units without attention).
  double flops_per_token = 0;
  double attn_flops_per_token_per_ctx = 0;
  int64_t weight_bytes = 0;  // bytes the unit keeps in memory
  // The same bytes split by weight type ("q4_0", "f32", ...); sums to weight_bytes.
  std::map<std::string, int64_t> weight_bytes_by_type;
  // Bytes of weights read per decoded token: weight_bytes for a matmul layer, one row for a
  // lookup table like the token embedding.
  int64_t weight_bytes_read_per_token = 0;
  int64_t activation_bytes_out = 0;  // bytes per token handed to the next unit
  int64_t kv_bytes_per_token = 0;    // KV cache bytes per token of context
};

struct LayerTable {
  std::string name;    // a label for reports ("llama-1.1b-shape q4_0")
  std::string source;  // the file it came from, for messages; may be empty
  // Bytes per token the coordinator sends into the first unit (a token id: 4).
  int64_t input_bytes_per_token = 4;
  std::vector<LayerUnit> units;

  int64_t total_weight_bytes() const;
  // Number of units of kind kBlock before unit index `unit` (so a unit range [a,b) covers
  // blocks [block_index(a), block_index(b))).
  int64_t block_index(int64_t unit) const;
  // The weight types used by any unit, sorted ("f32", "q4_0").
  std::vector<std::string> weight_types() const;
};

// Parses a "strata.layers/1" document. `source` names the file in messages. Returns the
// table, or kCorrupt for text that is not JSON and kInvalidArgument naming the unit and the
// field for a missing, negative or inconsistent figure.
Result<LayerTable> parse_layer_table(std::string_view json_text, const std::string& source);
// Reads and parses `path`; also kNotFound / kIo from reading the file.
Result<LayerTable> load_layer_table(const std::string& path);
// The table as a "strata.layers/1" document (2-space indented); parse_layer_table reads it
// back unchanged.
std::string layer_table_to_json(const LayerTable& table);

// A Llama-family shape, enough to compute its costs without the weights.
struct LlamaShape {
  std::string name = "llama";
  int64_t n_layers = 0;
  int64_t dim = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t ffn_dim = 0;
  int64_t vocab = 0;
};

// The table for `shape` with every 2-D weight in `weight_type` ("f32", "f16", "bf16",
// "q8_0", "q4_0"), norms in f32 and an f32 KV cache, by the formulas of docs/COST_MODEL.md
// ("Layer table of a Llama shape"). Returns kInvalidArgument for a non-positive dimension,
// dims that do not divide into heads, rows that are not a multiple of the type's block, or
// an unknown type.
Result<LayerTable> llama_layer_table(const LlamaShape& shape, const std::string& weight_type);

// The table of a loaded model, from the model module's per-unit costs (model_cost, f32 KV
// cache); `source` names it in messages. A slice's units outside it weigh nothing. Returns
// kCorrupt for a model without units.
Result<LayerTable> layer_table_from_model(const model::Model& m, const std::string& source);
// The same for the GGUF file at `path`; also the model loader's errors.
Result<LayerTable> layer_table_from_gguf(const std::string& path);

}  // namespace strata::partitioner
