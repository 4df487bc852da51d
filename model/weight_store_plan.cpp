// plan_streaming: which layers stay, which stream, and how the budget is spent.
//
// Budget rules (docs/STREAMING.md): the pinned set (output_norm and output; token_embd only
// when nothing streams: otherwise its rows are read on demand) and, when anything streams, a
// ring of lookahead + 1 buffers come first. Dense streaming cuts every layer into units of a
// few MiB (row ranges of its matrices) and keeps as many units as fit in what is left, spread
// evenly over the range so that the reader keeps reading while the engine computes a kept unit
// (kept units grouped at one end would leave the reader idle through them once the ring is
// full); so at most one unit of the budget goes unused. Sparse mode keeps whole layers: its
// ring holds norms and attention, the gates of streamed layers are kept, the FFN is read as
// bundles into two dense-shaped buffers, and what is left over caches bundles (the window).
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

// Chunk: among the profiled sizes within 10% of the best bandwidth, the largest no larger than
// a ring buffer (reads in flight come from several buffers: the lookahead is what keeps
// io_depth of them going); the smallest of them when none is that small. Large chunks mean
// fewer requests to issue and complete, which matters when the reader thread shares busy cores
// with the engine (it then runs late, and a queue of small reads drains while it waits).
// Without a profile: 4 MiB, capped the same way (64 KiB at least).
void choose_chunk(const StreamOptions& o, int64_t slot_bytes, StreamPlan* p) {
  const int64_t cap = std::max(kDirectAlign, align_down(slot_bytes, kDirectAlign));
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

// Sparse streaming (ReLU models with bundles): whole layers kept, the ring holds norms and
// attention, the gates of streamed layers are kept, the FFN is read as bundles into two
// dense-shaped buffers, and what is left over after whole layers caches bundles (the window).
Status plan_sparse(const Model& m, const StreamOptions& o, const std::vector<int64_t>& whole,
                   InternalPlan* ipp) {
  InternalPlan& ip = *ipp;
  StreamPlan& p = ip.plan;
  const GgufFile& f = m.file();
  const auto n = static_cast<size_t>(p.n_layers);
  std::vector<int64_t> gate(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t layer = ip.layer_begin + static_cast<int64_t>(i);
    gate[i] = spans_bytes(mapped_spans(layer_tensors(f, layer, Part::kGate)));
    LayerPlan& lp = ip.layers[i];
    UnitPlan u;
    u.layer = layer;
    u.layout = layout_unit(f, layer_tensors(f, layer, Part::kAttn));
    ip.slot_bytes = std::max(ip.slot_bytes, u.layout.buffer_bytes);
    lp.units.push_back(ip.units.size());
    ip.units.push_back(std::move(u));
    lp.bundles = bundle_geometry(m.layer(layer), ip.meta.bundle_neurons, ip.meta.alignment);
    lp.bundles.stride = ip.meta.bundle_stride;
    lp.bundle_offset = static_cast<int64_t>(f.data_offset()) +
                       ip.meta.bundle_offsets[static_cast<size_t>(layer - m.block_begin())];
  }
  choose_chunk(o, ip.slot_bytes, &p);
  std::vector<int64_t> keep_cost(n);
  const BundleGeometry& g = ip.layers[0].bundles;
  for (const LayerPlan& lp : ip.layers) {
    ip.up_bytes =
        std::max(ip.up_bytes, align_up(lp.bundles.count * lp.bundles.up_bytes, kDirectAlign));
    ip.down_bytes =
        std::max(ip.down_bytes, align_up(lp.bundles.dim * lp.bundles.down_row_bytes, kDirectAlign));
  }
  // Staging holds one batch of bundle reads: enough for io_depth chunks in flight.
  ip.staging_bytes = std::max(g.stride, std::min(g.count * g.stride, p.io_depth * p.chunk_bytes));
  p.sparse_buffer_bytes = ip.up_bytes + ip.down_bytes + ip.staging_bytes;
  for (size_t i = 0; i < n; ++i) {
    p.sparse_gate_bytes += gate[i];
    keep_cost[i] = whole[i] - gate[i];  // a kept layer's gate is no longer kept apart
  }
  const int64_t fixed = p.pinned_bytes + p.sparse_gate_bytes + p.sparse_buffer_bytes;
  p.min_budget_bytes = fixed + ring_buffer_bytes(ip.slot_bytes, 1);
  const int64_t budget = o.mem_budget_bytes;
  if (budget < p.min_budget_bytes) return {};  // the caller names what the minimum holds

  // Lookahead: as asked, else the most, up to 3, that cost no kept layer against 1.
  auto kept_with = [&](int look) {
    const int64_t room = budget - fixed - ring_buffer_bytes(ip.slot_bytes, look + 1);
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
  p.ring_bytes = ring_buffer_bytes(ip.slot_bytes, look + 1);
  const int64_t k = kept_with(look);
  std::vector<bool> keep(n, false);
  for (int64_t i : spread(static_cast<int64_t>(n), k)) keep[static_cast<size_t>(i)] = true;
  for (size_t i = 0; i < n; ++i) {
    const int64_t layer = ip.layer_begin + static_cast<int64_t>(i);
    LayerPlan& lp = ip.layers[i];
    lp.resident = keep[i];
    ip.units[lp.units[0]].resident = keep[i];
    if (lp.resident) {
      p.resident_layers.push_back(layer);
      p.resident_layer_bytes += whole[i];
      p.sparse_gate_bytes -= gate[i];
      continue;
    }
    p.streamed_layers.push_back(layer);
    const UnitLayout& u = ip.units[lp.units[0]].layout;
    p.streamed_bytes_per_token += u.buffer_bytes + lp.bundles.count * lp.bundles.stride;
    p.read_overhead_bytes += u.buffer_bytes - u.weight_bytes;
    p.reads_per_layer = std::max(p.reads_per_layer, static_cast<int64_t>(u.extents.size()));
  }
  p.resident_bytes = p.pinned_bytes + p.resident_layer_bytes + p.ring_bytes + p.sparse_gate_bytes +
                     p.sparse_buffer_bytes;
  const int64_t stride = ip.meta.bundle_stride;
  ip.window_capacity = (budget - p.resident_bytes) / stride;
  p.window_bytes = ip.window_capacity * stride;
  p.resident_bytes += p.window_bytes;
  p.bundle_neurons = ip.meta.bundle_neurons;
  p.bundle_bytes = stride;
  return {};
}

// Dense streaming: every layer is cut into units of at most unit_bytes (row ranges of its
// matrices, cut_block); the norms stay in the mapping; as many units as fit beside the ring
// are kept, spread over the range (choose_resident); the rest is read per forward call.
Status plan_dense(const Model& m, const StreamOptions& o, InternalPlan* ipp) {
  InternalPlan& ip = *ipp;
  StreamPlan& p = ip.plan;
  const GgufFile& f = m.file();
  const auto n = static_cast<size_t>(p.n_layers);
  const auto base = static_cast<int64_t>(f.data_offset());
  p.unit_bytes = o.unit_bytes > 0 ? o.unit_bytes : default_unit_bytes(o.storage_seq_read_mb_per_s);
  std::vector<const GgufTensorInfo*> norms;
  std::vector<int64_t> costs;
  for (size_t i = 0; i < n; ++i) {
    const int64_t layer = ip.layer_begin + static_cast<int64_t>(i);
    const LayerWeights& w = m.layer(layer);
    for (const GgufTensorInfo* t : layer_tensors(f, layer, Part::kNorms)) norms.push_back(t);
    std::vector<StreamMatrix> matrices;
    std::vector<const GgufTensorInfo*> tensors = layer_tensors(f, layer, Part::kAll);
    tensors.erase(tensors.begin(), tensors.begin() + 2);  // the norms; kMatrices' order follows
    for (WeightView LayerWeights::*mat : kMatrices) {
      matrices.push_back(StreamMatrix{(w.*mat).rows, row_bytes((w.*mat).type, (w.*mat).cols)});
    }
    LayerPlan& lp = ip.layers[i];
    lp.views = w;
    for (WeightView LayerWeights::*mat : kMatrices) (lp.views.*mat).data = nullptr;
    for (StreamUnit& su : cut_block(matrices, p.unit_bytes)) {
      UnitPlan u;
      u.layer = layer;
      std::vector<ByteRange> ranges;
      std::vector<Span> spans;
      for (const StreamPiece& pc : su.pieces) {
        const auto mi = static_cast<size_t>(pc.matrix);
        const int64_t rb = matrices[mi].row_bytes;
        ranges.push_back(
            ByteRange{base + static_cast<int64_t>(tensors[mi]->offset) + pc.row_begin * rb,
                      (pc.row_end - pc.row_begin) * rb});
        spans.push_back(
            Span{tensors[mi]->data + pc.row_begin * rb, (pc.row_end - pc.row_begin) * rb});
      }
      u.pieces = std::move(su.pieces);
      u.layout = layout_ranges(ranges);
      u.kept_bytes = spans_bytes(mapped_spans(spans));
      ip.slot_bytes = std::max(ip.slot_bytes, u.layout.buffer_bytes);
      costs.push_back(u.kept_bytes);
      lp.units.push_back(ip.units.size());
      ip.units.push_back(std::move(u));
    }
  }
  choose_chunk(o, ip.slot_bytes, &p);
  p.norm_bytes = spans_bytes(mapped_spans(norms));
  const int64_t fixed = p.pinned_bytes + p.norm_bytes + p.embedding_buffer_bytes;
  p.min_budget_bytes = fixed + ring_buffer_bytes(ip.slot_bytes, 1);
  const int64_t budget = o.mem_budget_bytes;
  if (budget < p.min_budget_bytes) return {};  // the caller names what the minimum holds

  // An explicit lookahead whose ring the budget cannot hold is an error, not a silent cut.
  if (o.lookahead >= 0 && fixed + ring_buffer_bytes(ip.slot_bytes, o.lookahead + 1) > budget) {
    int64_t all_units = 0;
    for (int64_t c : costs) all_units += c;
    if (fixed + all_units > budget) {
      return resource_exhausted("memory budget " + mb(budget) + " cannot hold a lookahead of " +
                                std::to_string(o.lookahead) + " buffers (" + mb(fixed) +
                                " fixed + " + std::to_string(o.lookahead + 1) + " buffers of " +
                                mb(ip.slot_bytes) + "); lower --lookahead or raise the budget");
    }
  }
  const UnitKeep k =
      keep_units(costs, ip.slot_bytes, fixed, budget, p.chunk_bytes, p.io_depth, o.lookahead);
  p.lookahead = k.lookahead;
  p.ring_bytes = k.ring_bytes;
  const std::vector<bool>& keep = k.keep;
  p.n_units = static_cast<int64_t>(ip.units.size());
  for (size_t i = 0; i < n; ++i) {
    const int64_t layer = ip.layer_begin + static_cast<int64_t>(i);
    LayerPlan& lp = ip.layers[i];
    int64_t kept = 0;
    int64_t reads = 0;
    for (size_t ui : lp.units) {
      UnitPlan& u = ip.units[ui];
      u.resident = keep[ui];
      if (u.resident) {
        ++kept;
        p.resident_layer_bytes += u.kept_bytes;
        continue;
      }
      p.streamed_bytes_per_token += u.layout.buffer_bytes;
      p.read_overhead_bytes += u.layout.buffer_bytes - u.layout.weight_bytes;
      reads += static_cast<int64_t>(u.layout.extents.size());
    }
    p.n_resident_units += kept;
    p.reads_per_layer = std::max(p.reads_per_layer, reads);
    lp.resident = kept == static_cast<int64_t>(lp.units.size());
    if (lp.resident) {
      p.resident_layers.push_back(layer);
      continue;
    }
    p.streamed_layers.push_back(layer);
    if (kept > 0) p.partly_resident_layers.push_back(layer);
  }
  if (p.lookahead == 0 && !k.keep_all) {
    p.notes.push_back("budget holds one unit buffer: reads do not overlap compute");
  }
  p.resident_bytes = fixed + p.resident_layer_bytes + p.ring_bytes;
  return {};
}

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
  const bool tied_head = last && c.tied_embeddings;
  const GgufTensorInfo* embd = nullptr;
  for (const char* name : {"token_embd.weight", "output_norm.weight", "output.weight"}) {
    const std::string nm(name);
    const bool is_embd = nm == "token_embd.weight";
    if (!(is_embd ? first || tied_head : last)) continue;
    if (const GgufTensorInfo* t = f.find_tensor(nm)) {
      if (is_embd && !tied_head) {
        embd = t;  // pinned only when everything fits (below)
        continue;
      }
      ip.pinned.push_back(t);
      p.pinned_tensors.push_back(t->name);
    }
  }
  p.pinned_bytes = spans_bytes(mapped_spans(ip.pinned));
  const int64_t embd_bytes = embd ? spans_bytes(mapped_spans({embd})) : 0;

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
  int64_t all_layers = 0;
  for (size_t i = 0; i < n; ++i) {
    const int64_t layer = ip.layer_begin + static_cast<int64_t>(i);
    whole[i] = spans_bytes(mapped_spans(layer_tensors(f, layer, Part::kAll)));
    all_layers += whole[i];
  }
  // Something streams: a dense forward call needs one embedding row per token, read on
  // demand; sparse streaming keeps its own accounting of the embedding (pinned).
  const auto plan_streamed = [&](InternalPlan* q, const StreamOptions& qo) -> Status {
    if (embd != nullptr && !q->plan.sparse) {
      q->embedding = embd;
      q->plan.embedding_rows = true;
      const WeightView& e = m.token_embd();
      q->plan.embedding_buffer_bytes = embedding_row_buffer_bytes(row_bytes(e.type, e.cols));
    } else if (embd != nullptr) {
      q->pinned.insert(q->pinned.begin(), embd);
      q->plan.pinned_tensors.insert(q->plan.pinned_tensors.begin(), embd->name);
      q->plan.pinned_bytes = spans_bytes(mapped_spans(q->pinned));
    }
    return q->plan.sparse ? plan_sparse(m, qo, whole, q) : plan_dense(m, qo, q);
  };
  const int64_t budget = o.mem_budget_bytes;
  if (p.pinned_bytes + embd_bytes + all_layers <= budget) {  // everything fits
    // The smallest budget that streams, for callers sizing budgets (plans nothing else).
    InternalPlan probe = ip;
    StreamOptions po = o;
    po.mem_budget_bytes = 0;
    STRATA_RETURN_IF_ERROR(plan_streamed(&probe, po));
    p.min_budget_bytes = probe.plan.min_budget_bytes;
    if (embd != nullptr) {
      ip.pinned.insert(ip.pinned.begin(), embd);
      p.pinned_tensors.insert(p.pinned_tensors.begin(), embd->name);
      p.pinned_bytes = spans_bytes(mapped_spans(ip.pinned));
    }
    for (size_t i = 0; i < n; ++i) {
      ip.layers[i].resident = true;
      p.resident_layers.push_back(ip.layer_begin + static_cast<int64_t>(i));
    }
    p.sparse = false;
    p.resident_layer_bytes = all_layers;
    p.resident_bytes = p.pinned_bytes + all_layers;
    choose_chunk(o, default_unit_bytes(o.storage_seq_read_mb_per_s), &p);
    return ip;
  }
  STRATA_RETURN_IF_ERROR(plan_streamed(&ip, o));
  if (budget < p.min_budget_bytes) {
    std::string names;
    for (const std::string& t : p.pinned_tensors) names += (names.empty() ? "" : ", ") + t;
    std::string what =
        "pinned " + mb(p.pinned_bytes) + " (" + (names.empty() ? "none" : names) + ")";
    if (p.embedding_rows) what += " + embedding row buffer " + mb(p.embedding_buffer_bytes);
    if (p.norm_bytes > 0) what += " + norms " + mb(p.norm_bytes);
    if (p.sparse) {
      what += " + kept gates " + mb(p.sparse_gate_bytes) + " + FFN buffers " +
              mb(p.sparse_buffer_bytes);
    }
    what += std::string(" + one ") + (p.sparse ? "layer" : "unit") + " buffer " + mb(ip.slot_bytes);
    return resource_exhausted("memory budget " + mb(budget) + " (" + std::to_string(budget) +
                              " bytes) is too small for " + f.path() +
                              ": streaming needs at least " + mb(p.min_budget_bytes) + " (" +
                              std::to_string(p.min_budget_bytes) + " bytes): " + what + "; " +
                              mb(p.min_budget_bytes - ring_buffer_bytes(ip.slot_bytes, 1) +
                                 ring_buffer_bytes(ip.slot_bytes, 2)) +
                              " lets reads overlap compute");
  }
  if (p.sparse && p.lookahead == 0) {
    p.notes.push_back("budget holds one layer buffer: reads do not overlap compute");
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
