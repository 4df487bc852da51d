// The weight store: runs a model whose weights do not fit in a memory budget. A pinned
// resident set (the output head, the norms, then units of layers spread evenly over the range)
// stays in memory; every other unit (a few MiB of rows of a layer's matrices) is read from
// flash with O_DIRECT into a ring of aligned buffers, several units ahead of the engine, by I/O
// threads overlapping the reads with compute. The embedding's rows are read as tokens need them.
// For ReLU models repacked with row-column bundles, the FFN's up rows and down columns are read
// only for the neurons the gate turns on, and the bundles used in the last few tokens are kept
// (windowing). Results are bit-identical to the fully resident run. docs/STREAMING.md gives the
// layout, the budget rules and the figures the planner's cost model uses.
//
// Thread-safety: StreamingWeights is driven by one engine thread (as any LayerWeightSource);
// stats() may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "strata/base/status.h"
#include "strata/model/engine.h"
#include "strata/model/model.h"

namespace strata::model {

// How reads are issued. Both keep `io_depth` reads of `chunk_bytes` in flight.
enum class ReaderKind { kPread, kUring };
const char* reader_kind_name(ReaderKind kind);  // "pread", "uring"
std::optional<ReaderKind> parse_reader_kind(std::string_view name);

enum class SparseMode { kAuto, kOn, kOff };

struct StreamOptions {
  // Bytes of weights held in memory: the resident set, the read ring and, in sparse mode, the
  // FFN buffers and the window. KV cache and activations are not part of it.
  int64_t mem_budget_bytes = 0;
  int64_t layer_begin = 0;  // the engine's layer range; -1 = n_layers
  int64_t layer_end = -1;
  // pread measured faster than io_uring on this project's reference machine while the engine's
  // threads share the cores (docs/STREAMING.md); both are kept.
  ReaderKind reader = ReaderKind::kPread;
  // One read; 0 = from storage_seq_read_mb_per_s (the largest size within 10% of the best
  // figure that still splits a ring buffer into io_depth reads), else 4 MiB (same cap).
  int64_t chunk_bytes = 0;
  int io_depth = 0;  // reads in flight; 0 = 4
  // Dense streaming reads (and keeps) a layer in units of at most this many bytes, row ranges
  // of its matrices; one ring buffer holds one unit. 0 = default_unit_bytes(storage figures).
  int64_t unit_bytes = 0;
  // Ring buffers read ahead of the one in use; -1 = default_lookahead (io_depth reads in
  // flight), fewer when the budget cannot hold them.
  int lookahead = -1;
  // Sequential O_DIRECT read bandwidth by chunk size (a device profile's
  // storage.seq_read_mb_per_s): picks the chunk and predicts the read time.
  std::map<int64_t, double> storage_seq_read_mb_per_s;
  // kAuto: sparse FFN loading when the model's FFN uses ReLU and the file holds row-column
  // bundles (strata model repack --for-streaming); kOn: required (error otherwise).
  SparseMode sparse = SparseMode::kAuto;
  int window_tokens = 4;      // sparse: bundles used in the last N forward calls stay cached
  bool lock_resident = true;  // mlock the resident set
  // false: buffered reads, each range dropped from the page cache after use, as where the
  // filesystem refuses O_DIRECT (for filesystems that accept O_DIRECT but serve it badly).
  bool direct_io = true;
};

// How dense streaming cuts a block (shared with the planner's cost model, so that both count
// the same bytes): its matrices in the engine's order (q, k, v, o, gate, up, down), each `rows`
// rows of `row_bytes`, each starting on a 4 KiB page in the streaming layout.
struct StreamMatrix {
  int64_t rows = 0;
  int64_t row_bytes = 0;
};
// Rows [row_begin, row_end) of matrix `matrix` (an index into the block's matrices).
struct StreamPiece {
  int matrix = 0;
  int64_t row_begin = 0;
  int64_t row_end = 0;
};
struct StreamUnit {
  std::vector<StreamPiece> pieces;
  // Sum over the pieces of their bytes rounded up to 4 KiB: what the unit's buffer holds and
  // what keeping it costs in the streaming layout.
  int64_t bytes = 0;
};
// Cuts a block into units of at most `unit_bytes`: n = ceil(block / unit_bytes) units of about
// block / n each (no small remainder: it would be a small read and leave budget unused), taking
// the matrices in order and cutting them at rows whose offset from the matrix's start is a
// multiple of 4 KiB (so every piece of a page-aligned matrix is page-aligned). A unit holds at
// least one such step of rows, so a unit_bytes below one step gives units of one step. Units
// never span blocks.
std::vector<StreamUnit> cut_block(const std::vector<StreamMatrix>& matrices, int64_t unit_bytes);

// Which units stay resident, given what keeping each costs: k units at evenly spread
// positions (the j-th of n at floor((2j + 1) n / 2k)), k as large as fits in `room_bytes`,
// then, in order, any other unit that still fits (so less than one unit of the room goes
// unused). While the engine computes a kept unit the reader reads the next streamed ones, so
// spreading them keeps the storage busy. Returns one flag per unit.
std::vector<bool> choose_resident(const std::vector<int64_t>& cost_bytes, int64_t room_bytes);

// How a dense stage's units share a budget, as the weight store plans it and the planner costs
// it: every unit kept when they all fit beside `fixed_bytes` (then no ring); otherwise a ring
// of lookahead + 1 buffers of `slot_bytes` (lookahead < 0: default_lookahead, fewer while the
// budget cannot hold them; 0 means no overlap) and choose_resident over what is left. Needs
// budget >= fixed + one buffer, and an explicit lookahead's ring to fit (the caller checks).
struct UnitKeep {
  bool keep_all = false;
  int lookahead = 0;
  int64_t ring_bytes = 0;
  std::vector<bool> keep;  // one flag per unit
};
UnitKeep keep_units(const std::vector<int64_t>& cost_bytes, int64_t slot_bytes, int64_t fixed_bytes,
                    int64_t budget_bytes, int64_t chunk_bytes, int io_depth, int lookahead);

// Bytes the read ring takes for `buffers` buffers of `slot_bytes`: one region, rounded up to
// 2 MiB when it is that large (it starts on a huge page, and the kernel backs its tail with a
// whole one).
int64_t ring_buffer_bytes(int64_t slot_bytes, int buffers);

// Ring buffers read ahead of the one in use by default: enough for io_depth reads of chunk_bytes
// in flight and half as many again queued (while the engine waits for a buffer, that buffer is
// being read too): ceil(1.5 * io_depth * min(chunk, unit) / unit) - 1, 1 to 8. With only
// io_depth buffers the queue runs dry whenever the engine or an I/O thread runs late on busy
// cores, and the storage idles (measured: 7% of the decode on the 1.1B shape).
int default_lookahead(int64_t unit_bytes, int64_t chunk_bytes, int io_depth);

// The unit size for storage figures (MB/s by read size): half the smallest profiled size
// within 10% of the best (the ring is paid for in budget: more buffers of half the size keep
// as many bytes in flight for the same memory, and reads of that size still run near the
// bound), 2 MiB without figures. At least 32 KiB.
int64_t default_unit_bytes(const std::map<int64_t, double>& seq_read_mb_per_s);

// Bytes a streaming source holds to read embedding rows on demand (one row, which may straddle
// a page boundary): row_bytes rounded up to 4 KiB, plus one page.
int64_t embedding_row_buffer_bytes(int64_t row_bytes);

// What stays, what streams, and the memory it takes. All byte counts are what is held in
// memory (page-rounded), except streamed_bytes_per_token, which is read per forward call.
struct StreamPlan {
  int64_t n_layers = 0;                  // in the engine's range
  std::vector<int64_t> resident_layers;  // layers kept whole
  std::vector<int64_t> streamed_layers;  // layers with anything read per forward call
  // Of streamed_layers, those with some units kept (dense streaming keeps units, not layers).
  std::vector<int64_t> partly_resident_layers;
  // output_norm and output (token_embd when tied) when the range ends at the last layer;
  // token_embd when it starts at layer 0 and nothing streams (when something streams, the
  // rows a forward call needs are read on demand: embedding_rows).
  int64_t pinned_bytes = 0;
  std::vector<std::string> pinned_tensors;
  bool embedding_rows = false;           // token_embd rows read per forward call
  int64_t embedding_buffer_bytes = 0;    // the row buffer for them
  int64_t norm_bytes = 0;                // dense: the norms of the layers not kept whole
  int64_t resident_layer_bytes = 0;      // layer weights kept: whole layers and kept units
  int64_t ring_bytes = 0;                // the read-ahead buffers
  int64_t unit_bytes = 0;                // dense: the size layers are cut into (at most)
  int64_t n_units = 0;                   // dense: units of the range
  int64_t n_resident_units = 0;          // dense: of them, kept
  int64_t sparse_gate_bytes = 0;         // sparse: ffn_gate of streamed layers (kept)
  int64_t sparse_buffer_bytes = 0;       // sparse: dense-shaped up/down buffers and read staging
  int64_t window_bytes = 0;              // sparse: cache of recently used bundles
  int64_t resident_bytes = 0;            // sum of the above: what the budget holds
  int64_t min_budget_bytes = 0;          // the smallest budget that runs (everything streamed)
  int64_t streamed_bytes_per_token = 0;  // dense: read each forward call; sparse: at most
  int64_t file_weight_bytes = 0;         // every tensor of the file
  int64_t chunk_bytes = 0;
  int io_depth = 0;
  int lookahead = 0;                   // 0 = no overlap (the budget holds one buffer only)
  std::string chunk_source;            // "profile: 1,500 MB/s at 4 MiB" or "default"
  double predicted_read_mb_per_s = 0;  // from the profile at chunk_bytes; 0 = unknown
  bool repacked = false;            // the file carries strata.stream.* (aligned per-layer extents)
  int64_t reads_per_layer = 0;      // most extents read for one layer
  int64_t read_overhead_bytes = 0;  // alignment padding read per token beyond the weights
  bool sparse = false;
  int64_t bundle_neurons = 0;      // sparse: neurons per bundle
  int64_t bundle_bytes = 0;        // sparse: bytes read per bundle (aligned)
  std::vector<std::string> notes;  // why a mode was or was not chosen
};

// Plans streaming for `model` under `options` without any I/O. Errors: kResourceExhausted when
// the budget is below min_budget_bytes (the message names what the minimum holds);
// kInvalidArgument for a bad range or option; kUnsupported when sparse mode is required but the
// model is not ReLU or the file has no bundles.
Result<StreamPlan> plan_streaming(const Model& model, const StreamOptions& options);

// Counters since open() or the last reset_stats().
struct StreamStats {
  int64_t bytes_read = 0;  // from the file, padding included
  int64_t bytes_used = 0;  // of streamed weights the engine consumed (read ahead or not)
  int64_t reads = 0;       // extents and bundle runs
  double read_busy_s = 0;  // time with reads in flight (reader thread and sparse reads)
  double wait_s = 0;       // time the engine waited for weights
  int64_t forward_calls = 0;
  int64_t embedding_bytes_read = 0;  // embedding_rows: the rows' pages (not in bytes_read)
  double embedding_wait_s = 0;       // embedding_rows: time reading them (in wait_s too)
  int64_t bundles_needed = 0;        // sparse: active bundles over all layers and calls
  int64_t bundles_cached = 0;        // sparse: of those, served from the window
  int64_t bundles_total = 0;         // sparse: bundles of the streamed layers over all calls
};

class StreamingWeights final : public LayerWeightSource {
 public:
  // Plans, pins the resident set (mlock when allowed, else its pages are only touched), opens
  // the file for O_DIRECT reads (buffered reads with POSIX_FADV_DONTNEED where refused) and
  // starts the reader thread. `model` must outlive the object. Errors: plan_streaming's, and
  // I/O errors naming the file.
  static Result<std::unique_ptr<StreamingWeights>> open(const Model& model,
                                                        const StreamOptions& options);
  ~StreamingWeights() override;

  const StreamPlan& plan() const;
  bool direct_io() const;
  ReaderKind reader() const;
  // Empty, or why the reads are buffered / the resident set is not locked.
  const std::vector<std::string>& notes() const;
  bool resident_locked() const;
  StreamStats stats() const;
  void reset_stats();

  Result<const LayerWeights*> acquire(int64_t layer) override;
  void release(int64_t layer) override;
  Result<FfnUpDown> ffn_up_down(int64_t layer, const LayerWeights& w, const float* gate,
                                int64_t n_tokens) override;
  Result<WeightView> matrix_rows(int64_t layer, Matrix m, int64_t row_begin) override;
  bool serves_embedding_rows() const override;
  Status embed_rows(std::span<const int32_t> tokens, float* hidden) override;

  class Impl;

 private:
  explicit StreamingWeights(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// `strata model repack --for-streaming`.
struct RepackOptions {
  uint32_t alignment = 4096;  // of every tensor and layer extent (a power of two >= 4096)
  SparseMode bundles = SparseMode::kAuto;  // kAuto: write bundles for ReLU models
  int64_t bundle_neurons = 32;  // a multiple of the down matrix's block (32 for q4_0/q8_0)
};

struct RepackResult {
  int64_t in_bytes = 0;
  int64_t out_bytes = 0;
  int64_t bundle_bytes = 0;  // the bundle region (0 without bundles)
  bool bundles = false;
};

// Writes `out`: the same tensors and metadata, tensors ordered token_embd, output_norm,
// output, then each layer's (norms, attention, ffn_gate, ffn_up, ffn_down), every tensor at a
// multiple of `alignment`, plus strata.stream.* metadata (layer extents) and, for ReLU models,
// the row-column bundles after the last tensor. The result is valid GGUF (llama.cpp loads it)
// and gives bit-identical results. Errors: Model::load's for `in`, kInvalidArgument for bad
// options, kIo naming `out`. `progress(done_bytes, total_bytes)` may be empty.
Result<RepackResult> repack_for_streaming(
    const std::string& in, const std::string& out, const RepackOptions& options,
    const std::function<void(int64_t done_bytes, int64_t total_bytes)>& progress);

}  // namespace strata::model
