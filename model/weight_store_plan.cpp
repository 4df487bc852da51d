// plan_streaming: which layers stay, which stream, and how the budget is spent.
//
// Budget rules (docs/STREAMING.md): the pinned set (token_embd, output_norm, output) and, when
// anything streams, a ring of lookahead + 1 buffers of half a layer each come first; whole layers
// are kept with what is left, spread evenly over the range so that the reader keeps reading while
// the engine computes a kept layer (kept layers grouped at one end would leave the reader idle
// through them once the ring is full). In sparse mode the ring holds only norms and attention,
// the gates of streamed layers are kept, the FFN is read as bundles into two dense-shaped
// buffers, and what is left over after whole layers caches bundles (the window).
#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "direct_io.h"
#include "strata/base/io.h"
#include "weight_store_internal.h"

namespace strata::model {

const char* reader_kind_name(ReaderKind kind) {
  return kind == ReaderKind::kUring ? "uring" : "pread";
}

std::optional<ReaderKind> parse_reader_kind(std::string_view name) {
  if (name == "uring" || name == "io_uring") return ReaderKind::kUring;
  if (name == "pread") return ReaderKind::kPread;
  return std::nullopt;
}

namespace stream {
namespace {

constexpr int64_t kDefaultChunkBytes = int64_t{4} << 20;
constexpr int kDefaultIoDepth = 4;

// k layer indices out of n, evenly spread: the j-th at floor((j + 1/2) n / k).
std::vector<int64_t> spread(int64_t n, int64_t k) {
  std::vector<int64_t> out;
  for (int64_t j = 0; j < k; ++j) out.push_back((2 * j + 1) * n / (2 * k));
  return out;
}

std::string mb(int64_t bytes) { return format_bytes(static_cast<double>(bytes)); }

// Chunk: among the profiled sizes within 10% of the best bandwidth, the largest that still
// splits a ring buffer into io_depth reads (so that they are all in flight at once); the
// smallest of them when none is that small. Large chunks mean fewer requests to issue and
// complete, which matters when the reader thread shares busy cores with the engine (it then
// runs late, and a queue of small reads drains while it waits). Without a profile: 4 MiB,
// capped the same way (64 KiB at least).
void choose_chunk(const StreamOptions& o, int64_t slot_bytes, StreamPlan* p) {
  const int64_t cap = std::max(kDirectAlign, align_down(slot_bytes / p->io_depth, kDirectAlign));
  if (o.chunk_bytes > 0) {
    p->chunk_bytes = o.chunk_bytes;
    p->chunk_source = "--chunk";
    auto it = o.storage_seq_read_mb_per_s.find(o.chunk_bytes);
    if (it != o.storage_seq_read_mb_per_s.end()) p->predicted_read_mb_per_s = it->second;
    return;
  }
  double best = 0;
  for (const auto& [chunk, mbps] : o.storage_seq_read_mb_per_s) {
    if (chunk >= kDirectAlign && chunk % kDirectAlign == 0) best = std::max(best, mbps);
  }
  if (best <= 0) {
    p->chunk_bytes = std::clamp(cap, int64_t{64} << 10, kDefaultChunkBytes);
    p->chunk_source = "default (no storage profile)";
    return;
  }
  int64_t pick = 0;
  for (const auto& [chunk, mbps] : o.storage_seq_read_mb_per_s) {  // ascending sizes
    if (chunk < kDirectAlign || chunk % kDirectAlign != 0 || mbps < 0.9 * best) continue;
    if (pick == 0 || chunk <= cap) pick = chunk;
  }
  p->chunk_bytes = pick;
  p->predicted_read_mb_per_s = o.storage_seq_read_mb_per_s.at(pick);
  char buf[160];
  std::snprintf(buf, sizeof buf, "profile: %.0f MB/s at %s (best %.0f MB/s)",
                p->predicted_read_mb_per_s, mb(pick).c_str(), best);
  p->chunk_source = buf;
}

Status check_options(const Model& m, const StreamOptions& o, int64_t* begin, int64_t* end) {
  // A slice (an agent's stage) holds blocks [block_begin, block_end) only.
  const int64_t first = m.block_begin();
  const int64_t n = m.block_end();
  *begin = o.layer_begin;
  *end = o.layer_end < 0 ? n : o.layer_end;
  if (*begin < first || *begin >= *end || *end > n) {
    return invalid_argument("layer range [" + std::to_string(*begin) + ", " + std::to_string(*end) +
                            ") is outside the file's layers [" + std::to_string(first) + ", " +
                            std::to_string(n) + ")");
  }
  if (o.mem_budget_bytes <= 0) return invalid_argument("the memory budget must be positive");
  if (o.chunk_bytes < 0 || o.chunk_bytes % kDirectAlign != 0 ||
      o.chunk_bytes > (int64_t{1} << 30)) {
    return invalid_argument("chunk size " + std::to_string(o.chunk_bytes) +
                            " must be a multiple of 4096 up to 1 GiB");
  }
  if (o.io_depth < 0 || o.io_depth > 256) return invalid_argument("I/O depth must be 1..256");
  if (o.lookahead < -1 || o.lookahead > 8) return invalid_argument("lookahead must be 0..8");
  if (o.window_tokens < 1 || o.window_tokens > 1 << 20) {
    return invalid_argument("the window must be at least 1 token");
  }
  return {};
}

// The most whole layers that fit in `room` bytes at the spread positions, given the cost of
// keeping each (its spans, minus what keeping it saves elsewhere).
int64_t layers_that_fit(const std::vector<int64_t>& keep_cost, int64_t room) {
  const auto n = static_cast<int64_t>(keep_cost.size());
  int64_t best = 0;
  for (int64_t k = 1; k < n; ++k) {
    int64_t need = 0;
    for (int64_t i : spread(n, k)) need += keep_cost[static_cast<size_t>(i)];
    if (need > room) break;
    best = k;
  }
  return best;
}

}  // namespace

Result<InternalPlan> build_plan(const Model& m, const StreamOptions& o) {
  InternalPlan ip;
  STRATA_RETURN_IF_ERROR(check_options(m, o, &ip.layer_begin, &ip.layer_end));
  const GgufFile& f = m.file();
  const ModelConfig& c = m.config();
  StreamPlan& p = ip.plan;
  STRATA_ASSIGN_OR_RETURN(ip.meta, read_stream_meta(m));
  p.n_layers = ip.layer_end - ip.layer_begin;
  p.repacked = ip.meta.present;
  p.io_depth = o.io_depth > 0 ? o.io_depth : kDefaultIoDepth;
  for (const GgufTensorInfo& t : f.tensors()) p.file_weight_bytes += t.n_bytes;

  // The embedding serves the first stage, the head the last: a middle stage of a pipeline
  // keeps neither (with tied embeddings the head is token_embd).
  const bool first = ip.layer_begin == 0;
  const bool last = ip.layer_end == c.n_layers;
  for (const char* name : {"token_embd.weight", "output_norm.weight", "output.weight"}) {
    const std::string n(name);
    const bool embd = n == "token_embd.weight";
    if (!(embd ? first || (last && c.tied_embeddings) : last)) continue;
    if (const GgufTensorInfo* t = f.find_tensor(n)) {
      ip.pinned.push_back(t);
      p.pinned_tensors.push_back(t->name);
    }
  }
  p.pinned_bytes = spans_bytes(mapped_spans(ip.pinned));

  const bool relu = c.ffn_act == FfnAct::kRelu;
  const bool bundles = ip.meta.bundle_neurons > 0;
  if (o.sparse == SparseMode::kOn && !relu) {
    return unsupported(f.path() + ": sparse FFN loading needs a ReLU model (strata.ffn_act = " +
                       "relu); this one uses SiLU, whose neurons are never exactly zero");
  }
  if (o.sparse == SparseMode::kOn && !bundles) {
    return unsupported(f.path() +
                       ": sparse FFN loading needs row-column bundles: run `strata model repack "
                       "--for-streaming` first");
  }
  p.sparse = relu && bundles && o.sparse != SparseMode::kOff;
  if (relu && !bundles && o.sparse == SparseMode::kAuto) {
    p.notes.push_back(
        "ReLU model without bundles: dense streaming (repack --for-streaming "
        "adds bundles for sparse FFN loading)");
  }

  const auto n = static_cast<size_t>(p.n_layers);
  ip.layers.resize(n);
  std::vector<int64_t> whole(n);  // a kept layer's spans
  std::vector<int64_t> gate(n);   // sparse: a streamed layer's kept gate
  int64_t all_layers = 0;
  for (size_t i = 0; i < n; ++i) {
    const int64_t layer = ip.layer_begin + static_cast<int64_t>(i);
    whole[i] = spans_bytes(mapped_spans(layer_tensors(f, layer, Part::kAll)));
    gate[i] = spans_bytes(mapped_spans(layer_tensors(f, layer, Part::kGate)));
    all_layers += whole[i];
    LayerPlan& lp = ip.layers[i];
    if (p.sparse) {
      lp.units.push_back(layout_unit(f, layer_tensors(f, layer, Part::kAttn)));
      lp.bundles = bundle_geometry(m.layer(layer), ip.meta.bundle_neurons, ip.meta.alignment);
      lp.bundles.stride = ip.meta.bundle_stride;
      lp.bundle_offset = static_cast<int64_t>(f.data_offset()) +
                         ip.meta.bundle_offsets[static_cast<size_t>(layer - m.block_begin())];
    } else {
      lp.units.push_back(layout_unit(f, layer_tensors(f, layer, Part::kFront)));
      lp.units.push_back(layout_unit(f, layer_tensors(f, layer, Part::kUpDown)));
    }
    for (const UnitLayout& u : lp.units) ip.slot_bytes = std::max(ip.slot_bytes, u.buffer_bytes);
  }
  choose_chunk(o, ip.slot_bytes, &p);

  // What streaming needs besides the ring, and what keeping a whole layer costs.
  int64_t fixed = p.pinned_bytes;
  std::vector<int64_t> keep_cost = whole;
  if (p.sparse) {
    const BundleGeometry& g = ip.layers[0].bundles;
    for (const LayerPlan& lp : ip.layers) {
      ip.up_bytes =
          std::max(ip.up_bytes, align_up(lp.bundles.count * lp.bundles.up_bytes, kDirectAlign));
      ip.down_bytes = std::max(ip.down_bytes,
                               align_up(lp.bundles.dim * lp.bundles.down_row_bytes, kDirectAlign));
    }
    // Staging holds one batch of bundle reads: enough for io_depth chunks in flight.
    ip.staging_bytes = std::max(g.stride, std::min(g.count * g.stride, p.io_depth * p.chunk_bytes));
    p.sparse_buffer_bytes = ip.up_bytes + ip.down_bytes + ip.staging_bytes;
    for (size_t i = 0; i < n; ++i) {
      p.sparse_gate_bytes += gate[i];
      keep_cost[i] = whole[i] - gate[i];  // a kept layer's gate is no longer kept apart
    }
    fixed += p.sparse_gate_bytes + p.sparse_buffer_bytes;
  }
  p.min_budget_bytes = fixed + ip.slot_bytes;
  const int64_t budget = o.mem_budget_bytes;
  if (p.pinned_bytes + all_layers <= budget) {
    for (size_t i = 0; i < n; ++i) {
      ip.layers[i].resident = true;
      p.resident_layers.push_back(ip.layer_begin + static_cast<int64_t>(i));
    }
    p.sparse = false;
    p.sparse_gate_bytes = 0;
    p.sparse_buffer_bytes = 0;
    p.resident_layer_bytes = all_layers;
    p.resident_bytes = p.pinned_bytes + all_layers;
    ip.slot_bytes = 0;
    return ip;
  }
  if (budget < p.min_budget_bytes) {
    std::string names;
    for (const std::string& t : p.pinned_tensors) names += (names.empty() ? "" : ", ") + t;
    std::string what =
        "pinned " + mb(p.pinned_bytes) + " (" + (names.empty() ? "none" : names) + ")";
    if (p.sparse) {
      what += " + kept gates " + mb(p.sparse_gate_bytes) + " + FFN buffers " +
              mb(p.sparse_buffer_bytes);
    }
    what += " + one layer buffer " + mb(ip.slot_bytes);
    return resource_exhausted("memory budget " + mb(budget) + " (" + std::to_string(budget) +
                              " bytes) is too small for " + f.path() +
                              ": streaming needs at "
                              "least " +
                              mb(p.min_budget_bytes) + " (" + std::to_string(p.min_budget_bytes) +
                              " bytes): " + what + "; " + mb(p.min_budget_bytes + ip.slot_bytes) +
                              " lets reads overlap compute");
  }

  // Lookahead (buffers read ahead of the one in use): as asked, else the most, up to 3, that
  // cost no kept layer against 1; 0 when the budget holds a single buffer.
  auto kept_with = [&](int look) {
    const int64_t room = budget - fixed - (look + 1) * ip.slot_bytes;
    return room < 0 ? int64_t{-1} : layers_that_fit(keep_cost, room);
  };
  int look = o.lookahead;
  if (look < 0) {
    look = kept_with(1) < 0 ? 0 : 1;
    while (look >= 1 && look < 3 && kept_with(look + 1) == kept_with(1)) ++look;
  } else if (kept_with(look) < 0) {
    return resource_exhausted("memory budget " + mb(budget) + " cannot hold a lookahead of " +
                              std::to_string(look) + " buffers (" + mb(fixed) + " fixed + " +
                              std::to_string(look + 1) + " buffers of " + mb(ip.slot_bytes) +
                              "); lower --lookahead or raise the budget");
  }
  p.lookahead = look;
  if (look == 0) p.notes.push_back("budget holds one layer buffer: reads do not overlap compute");
  p.ring_bytes = (look + 1) * ip.slot_bytes;
  const int64_t k = kept_with(look);
  std::vector<bool> keep(n, false);
  for (int64_t i : spread(static_cast<int64_t>(n), k)) keep[static_cast<size_t>(i)] = true;
  for (size_t i = 0; i < n; ++i) {
    const int64_t layer = ip.layer_begin + static_cast<int64_t>(i);
    LayerPlan& lp = ip.layers[i];
    lp.resident = keep[i];
    if (lp.resident) {
      p.resident_layers.push_back(layer);
      p.resident_layer_bytes += whole[i];
      if (p.sparse) p.sparse_gate_bytes -= gate[i];
      continue;
    }
    p.streamed_layers.push_back(layer);
    int64_t reads = 0;
    for (const UnitLayout& u : lp.units) {
      p.streamed_bytes_per_token += u.buffer_bytes;
      p.read_overhead_bytes += u.buffer_bytes - u.weight_bytes;
      reads += static_cast<int64_t>(u.extents.size());
    }
    p.reads_per_layer = std::max(p.reads_per_layer, reads);
    if (p.sparse) p.streamed_bytes_per_token += lp.bundles.count * lp.bundles.stride;
  }
  p.resident_bytes = p.pinned_bytes + p.resident_layer_bytes + p.ring_bytes + p.sparse_gate_bytes +
                     p.sparse_buffer_bytes;
  if (p.sparse) {
    const int64_t stride = ip.meta.bundle_stride;
    ip.window_capacity = (budget - p.resident_bytes) / stride;
    p.window_bytes = ip.window_capacity * stride;
    p.resident_bytes += p.window_bytes;
    p.bundle_neurons = ip.meta.bundle_neurons;
    p.bundle_bytes = stride;
  }
  if (!p.repacked) {
    p.notes.push_back("file not repacked for streaming: " + std::to_string(p.reads_per_layer) +
                      " read(s) per layer, " + mb(p.read_overhead_bytes) +
                      " of alignment padding per token (strata model repack --for-streaming)");
  }
  return ip;
}

}  // namespace stream

Result<StreamPlan> plan_streaming(const Model& model, const StreamOptions& options) {
  STRATA_ASSIGN_OR_RETURN(stream::InternalPlan ip, stream::build_plan(model, options));
  return ip.plan;
}

}  // namespace strata::model
