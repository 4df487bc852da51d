#include "strata/partitioner/cost_model.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "strata/model/types.h"
#include "strata/model/weight_store.h"

namespace strata::partitioner {
namespace {

constexpr int kMaxDevices = 16;  // device sets are bit masks of a uint32; 2^16 sets at most

// Bytes per weight element of `type`: 4 for f32, 18/32 for q4_0.
double bytes_per_element(const std::string& type) {
  const auto t = model::parse_dtype(type);
  STRATA_CHECK_MSG(t.has_value(), "unknown weight type " + type);
  return static_cast<double>(model::dtype_block_bytes(*t)) /
         static_cast<double>(model::dtype_block_elems(*t));
}

// The unit's FLOPs split across its weight types in proportion to their elements (a matmul
// does 2 FLOPs per weight element per token). A unit without weights computes at f32 rates.
std::vector<std::pair<std::string, double>> flop_shares(const LayerUnit& u) {
  std::vector<std::pair<std::string, double>> out;
  double total = 0;
  for (const auto& [type, bytes] : u.weight_bytes_by_type) {
    if (bytes <= 0) continue;
    const double elems = static_cast<double>(bytes) / bytes_per_element(type);
    out.emplace_back(type, elems);
    total += elems;
  }
  if (out.empty()) return {{"f32", 1.0}};
  for (auto& [type, share] : out) share /= total;
  return out;
}

// Seconds to do `flops` of unit `u` at the per-type rates of `gflops`.
double compute_time_s(const std::vector<std::pair<std::string, double>>& shares, double flops,
                      const std::map<std::string, double>& gflops) {
  double s = 0;
  for (const auto& [type, share] : shares) s += flops * share / (gflops.at(type) * 1e9);
  return s;
}

// Weight streaming (docs/STREAMING.md, "Figures for the planner's cost model"): the weight
// store's rules, through the functions it uses itself (cut_block, choose_resident,
// default_unit_bytes, default_lookahead), on tensor sizes recovered from the layer table.
// Tensors start on 4 KiB pages in the streaming layout.
constexpr int64_t kStreamPage = 4096;
// The fraction of the storage bound the reader reaches (measured in docs/STREAMING.md).
constexpr double kStreamEfficiency = 0.8;
// The reader's reads in flight (the weight store's default --io-depth).
constexpr int kStreamIoDepth = 4;
// Without storage figures per read size the reader reads in chunks of at most this.
constexpr int64_t kStreamDefaultChunk = int64_t{4} << 20;
// Reads are per forward call: a prefill chunk of up to this many tokens reads the streamed
// layers once.
constexpr int64_t kPrefillChunkTokens = 512;

int64_t page_up(int64_t n) { return (n + kStreamPage - 1) / kStreamPage * kStreamPage; }

// A block as the weight store cuts it: its norms (kept) and its matrices in the engine's order.
// A table gives a block's totals only, so the tensors are recovered from a Llama block's
// figures: dim from activation_bytes_out (f32), kv_dim from kv_bytes_per_token (f32 K and V),
// the matrix elements from flops_per_token (2 per element) and ffn from what is left; the two
// f32 norms are 8 * dim bytes and the matrices share the rest in proportion to their elements.
// A unit that is not a Llama block (a CNN layer, a hand-written table) is one matrix of one
// row: one read of its whole weights.
struct StreamBlock {
  int64_t norm_bytes = 0;
  std::vector<model::StreamMatrix> matrices;
  int64_t bytes() const {
    int64_t n = norm_bytes;
    for (const model::StreamMatrix& m : matrices) n += page_up(m.rows * m.row_bytes);
    return n;
  }
};

StreamBlock stream_block(const LayerUnit& u) {
  const StreamBlock whole{0, {{1, u.weight_bytes}}};
  if (u.kind != UnitKind::kBlock || u.activation_bytes_out <= 0 ||
      u.activation_bytes_out % 4 != 0 || u.kv_bytes_per_token <= 0 ||
      u.kv_bytes_per_token % 8 != 0) {
    return whole;
  }
  const int64_t dim = u.activation_bytes_out / 4;
  const int64_t kv_dim = u.kv_bytes_per_token / 8;
  const auto params = static_cast<int64_t>(std::llround(u.flops_per_token / 2));
  const int64_t ffn_params = params - 2 * dim * dim - 2 * dim * kv_dim;
  const int64_t matrix_bytes = u.weight_bytes - 2 * dim * 4;
  if (ffn_params <= 0 || ffn_params % (3 * dim) != 0 || matrix_bytes <= 0) return whole;
  const int64_t ffn = ffn_params / (3 * dim);
  const double bytes_per_param = static_cast<double>(matrix_bytes) / static_cast<double>(params);
  const auto matrix = [&](int64_t rows, int64_t cols) {
    return model::StreamMatrix{
        rows, static_cast<int64_t>(std::llround(static_cast<double>(cols) * bytes_per_param))};
  };
  StreamBlock b;
  b.norm_bytes = 2 * page_up(dim * 4);
  b.matrices = {matrix(dim, dim), matrix(kv_dim, dim), matrix(kv_dim, dim), matrix(dim, dim),
                matrix(ffn, dim), matrix(ffn, dim),    matrix(dim, ffn)};
  return b;
}

// The read size the weight store picks for buffers of `slot` bytes, and its MB/s: among the
// profiled sizes within 10% of the best figure, the largest no larger than a buffer, else the
// smallest of them. Without the per-size figures, the profile's one storage figure at the
// default chunk (capped by the buffer).
struct StreamChunk {
  int64_t bytes = 0;
  double mb_per_s = 0;
};

StreamChunk stream_chunk(const DeviceCaps& d, int64_t slot) {
  const int64_t cap = std::max(kStreamPage, slot / kStreamPage * kStreamPage);
  if (d.storage_seq_read_mb_per_s.empty()) {
    return {std::clamp(cap, int64_t{64} << 10, kStreamDefaultChunk), d.storage_read_mb_per_s};
  }
  double best = 0;
  for (const auto& [chunk, mb_per_s] : d.storage_seq_read_mb_per_s) best = std::max(best, mb_per_s);
  int64_t pick = 0;
  for (const auto& [chunk, mb_per_s] : d.storage_seq_read_mb_per_s) {  // ascending sizes
    if (mb_per_s < 0.9 * best) continue;
    if (pick == 0 || chunk <= cap) pick = chunk;
  }
  return {pick, d.storage_seq_read_mb_per_s.at(pick)};
}

// How units [b, c) stream with `budget` bytes for weights.
struct StreamFigures {
  int64_t min_bytes = 0;       // below it the stage cannot stream
  int64_t resident_bytes = 0;  // pinned + norms + embedding row buffer + kept units
  int64_t ring_bytes = 0;      // the read buffers
  int64_t streamed_bytes = 0;  // read per forward call
  bool overlap = false;        // read-ahead: reads run while the stage computes
  double mb_per_s = 0;         // the storage rate at the reader's read size
};

StreamFigures stream_figures(const LayerTable& table, const DeviceCaps& d, int b, int c,
                             int64_t budget) {
  StreamFigures f;
  int64_t pinned = 0;
  int64_t embedding = 0;      // the whole table, pinned only when everything fits
  int64_t embedding_row = 0;  // the row buffer when it streams
  std::vector<StreamBlock> blocks;
  int64_t all_layers = 0;
  for (int i = b; i < c; ++i) {
    const LayerUnit& u = table.units[static_cast<size_t>(i)];
    if (u.kind == UnitKind::kEmbedding) {
      embedding = page_up(u.weight_bytes);
      embedding_row = model::embedding_row_buffer_bytes(u.weight_bytes_read_per_token);
      continue;
    }
    if (u.kind == UnitKind::kHead) {
      // output_norm and output are separate tensors, each on its own pages: one per type.
      for (const auto& [type, bytes] : u.weight_bytes_by_type) pinned += page_up(bytes);
      if (u.weight_bytes_by_type.empty()) pinned += page_up(u.weight_bytes);
      continue;
    }
    blocks.push_back(stream_block(u));
    all_layers += blocks.back().bytes();
  }
  if (pinned + embedding + all_layers <= budget) {  // everything fits: nothing streams
    f.min_bytes = pinned + embedding + all_layers;
    f.resident_bytes = f.min_bytes;
    return f;
  }
  const int64_t unit_bytes = model::default_unit_bytes(d.storage_seq_read_mb_per_s);
  std::vector<int64_t> costs;
  int64_t slot = 0;
  int64_t fixed = pinned + embedding_row;
  for (const StreamBlock& blk : blocks) {
    fixed += blk.norm_bytes;
    for (const model::StreamUnit& su : model::cut_block(blk.matrices, unit_bytes)) {
      costs.push_back(su.bytes);
      slot = std::max(slot, su.bytes);
    }
  }
  const StreamChunk chunk = stream_chunk(d, slot);
  f.mb_per_s = chunk.mb_per_s;
  f.min_bytes = fixed + model::ring_buffer_bytes(slot, 1);
  if (budget < f.min_bytes) return f;
  const model::UnitKeep k =
      model::keep_units(costs, slot, fixed, budget, chunk.bytes, kStreamIoDepth, -1);
  f.overlap = !k.keep_all && k.lookahead > 0;
  f.ring_bytes = k.ring_bytes;
  f.resident_bytes = fixed;
  for (size_t i = 0; i < costs.size(); ++i)
    (k.keep[i] ? f.resident_bytes : f.streamed_bytes) += costs[i];
  return f;
}

}  // namespace

int64_t resolved_micro_batch(const PlanSettings& settings, int n_devices) {
  const int64_t n = std::max<int64_t>(1, settings.sequences);
  if (settings.micro_batch > 0) return settings.micro_batch;
  const int64_t stages = std::clamp<int64_t>(n_devices, 1, n);
  int64_t b = (n + stages - 1) / stages;
  while (n % b != 0) --b;
  return b;
}

double unit_step_s(const LayerUnit& u, const DeviceCaps& device, int64_t n_tokens,
                   double ctx_positions, double kv_rows) {
  const double n = static_cast<double>(n_tokens);
  const double matmul_flops = n * u.flops_per_token;
  const double attn_flops = u.attn_flops_per_token_per_ctx * ctx_positions;
  const double weight_bytes = std::min(static_cast<double>(u.weight_bytes),
                                       n * static_cast<double>(u.weight_bytes_read_per_token));
  const double read_bytes = weight_bytes + static_cast<double>(u.kv_bytes_per_token) * kv_rows;
  const bool decode = n_tokens <= kGemvMaxTokens;
  const auto& rates = decode ? device.gemv_gflops : device.gemm_gflops;
  const auto shares = flop_shares(u);
  // Decode attention reads a KV cache that the step's weights pushed out of every cache: the
  // profile's attention rate is measured that way. A prompt chunk attends to rows it just
  // wrote, at about the GEMM rate.
  const double compute_s = decode && device.attention_gflops > 0
                               ? compute_time_s(shares, matmul_flops, rates) +
                                     attn_flops / (device.attention_gflops * 1e9)
                               : compute_time_s(shares, matmul_flops + attn_flops, rates);
  return std::max(compute_s, read_bytes / (device.mem_read_gb_per_s * 1e9));
}

double CostModel::decode_position() const {
  return 0.5 * static_cast<double>(settings_.prompt_len + settings_.context);
}

double CostModel::boundary_bytes(int b) const {
  STRATA_CHECK(b >= 0 && b <= n_units());
  if (b == 0) return static_cast<double>(table_.input_bytes_per_token);
  return static_cast<double>(table_.units[static_cast<size_t>(b - 1)].activation_bytes_out);
}

Result<CostModel> CostModel::build(LayerTable table, std::vector<DeviceCaps> devices,
                                   LinkTable links, PlanSettings settings) {
  if (table.units.empty()) return invalid_argument("the layer table has no units");
  if (table.units.size() > 30000) return invalid_argument("the layer table has over 30000 units");
  if (devices.empty()) return invalid_argument("no devices given");
  if (devices.size() > kMaxDevices) {
    return invalid_argument(std::to_string(devices.size()) +
                            " devices given; the exact search "
                            "handles at most " +
                            std::to_string(kMaxDevices));
  }
  if (settings.sequences < 1 || settings.prompt_len < 1 || settings.context < 1) {
    return invalid_argument("--sequences, --prompt-len and --context must be at least 1");
  }
  if (settings.micro_batch < 0 ||
      (settings.micro_batch > 0 && settings.sequences % settings.micro_batch != 0)) {
    return invalid_argument("--micro-batch " + std::to_string(settings.micro_batch) +
                            " must divide --sequences " + std::to_string(settings.sequences) +
                            " (every pipeline group holds the same number of sequences)");
  }
  if (settings.prompt_len > settings.context) {
    return invalid_argument("--prompt-len " + std::to_string(settings.prompt_len) +
                            " exceeds --context " + std::to_string(settings.context));
  }
  if (links.n_devices() != static_cast<int>(devices.size())) {
    return invalid_argument("the link table covers " + std::to_string(links.n_devices()) +
                            " devices, not " + std::to_string(devices.size()));
  }
  std::set<std::string> names;
  for (size_t i = 0; i < devices.size(); ++i) {
    if (!names.insert(devices[i].name).second) {
      return invalid_argument("device name '" + devices[i].name +
                              "' is given twice; name them with --device NAME=PROFILE.json");
    }
    if (links.names()[i] != devices[i].name) {
      return invalid_argument("the link table's device " + std::to_string(i) + " is '" +
                              links.names()[i] + "', not '" + devices[i].name + "'");
    }
  }
  using C = PlanSettings::Coordinator;
  if (settings.coordinator == C::kDevice &&
      (settings.coordinator_device < 0 ||
       settings.coordinator_device >= static_cast<int>(devices.size()))) {
    return invalid_argument("the coordinator's device index is out of range");
  }

  std::set<std::string> types;
  for (const auto& u : table.units) {
    for (const auto& [type, share] : flop_shares(u)) types.insert(type);
  }
  const std::vector<std::string> needed(types.begin(), types.end());
  for (const auto& d : devices) STRATA_RETURN_IF_ERROR(require_compute(d, needed));

  CostModel m;
  m.table_ = std::move(table);
  m.devices_ = std::move(devices);
  m.links_ = std::move(links);
  m.settings_ = settings;
  m.micro_batch_ = resolved_micro_batch(settings, static_cast<int>(m.devices_.size()));
  const int n = m.n_units();
  const int nd = m.n_devices();

  m.energy_in_dominance_ = true;
  for (const auto& d : m.devices_) {
    m.dyn_watts_.push_back(d.has_power() ? *d.load_watts - *d.idle_watts : 0.0);
    m.energy_in_dominance_ = m.energy_in_dominance_ && d.has_power();
  }
  // Summed in ascending order of watts, not of index, so that sets which differ only by
  // interchangeable devices get bit-identical sums.
  m.idle_by_mask_.assign(size_t{1} << nd, 0.0);
  std::vector<double> watts;
  for (uint32_t mask = 1; mask < (uint32_t{1} << nd); ++mask) {
    watts.clear();
    bool known = true;
    for (int i = 0; i < nd; ++i) {
      if ((mask >> i & 1U) == 0) continue;
      const auto& d = m.devices_[static_cast<size_t>(i)];
      known = known && d.has_power();
      if (d.has_power()) watts.push_back(*d.idle_watts);
    }
    std::sort(watts.begin(), watts.end());
    double sum = 0;
    for (const double w : watts) sum += w;
    m.idle_by_mask_[mask] = known ? sum : NAN;
  }

  const double in_bytes = m.step_boundary_bytes(0);
  const double out_bytes = static_cast<double>(m.table_.units.back().activation_bytes_out) *
                           static_cast<double>(m.micro_batch_);
  for (int j = 0; j < nd; ++j) {
    double in_s = 0, in_ser = 0, out_s = 0, out_ser = 0;
    const Link* link = nullptr;
    if (settings.coordinator == C::kExternal) link = &m.settings_.coordinator_link;
    if (settings.coordinator == C::kDevice && settings.coordinator_device != j) {
      link = &m.links_.get(settings.coordinator_device, j);
    }
    if (link != nullptr) {
      in_s = link->transfer_s(in_bytes);
      in_ser = link->serialization_s(in_bytes);
      out_s = link->transfer_s(out_bytes);
      out_ser = link->serialization_s(out_bytes);
    }
    m.coord_in_s_.push_back(in_s);
    m.coord_in_ser_s_.push_back(in_ser);
    m.coord_out_s_.push_back(out_s);
    m.coord_out_ser_s_.push_back(out_ser);
  }

  for (int j = 0; j < nd; ++j) {
    uint32_t below = 0;
    for (int i = 0; i < j; ++i) {
      if (m.interchangeable(i, j)) below |= 1U << i;
    }
    m.interchangeable_below_.push_back(below);
  }
  m.compute_unit_times();
  m.stages_.resize(static_cast<size_t>(nd) * static_cast<size_t>(n + 1) *
                   static_cast<size_t>(n + 1));
  for (int j = 0; j < nd; ++j) {
    for (int b = 0; b < n; ++b) {
      for (int c = b + 1; c <= n; ++c) m.stages_[m.stage_index(j, b, c)] = m.compute_stage(j, b, c);
    }
  }
  return m;
}

void CostModel::compute_unit_times() {
  const double b = static_cast<double>(micro_batch_);
  const double pos = decode_position();
  const double p = static_cast<double>(settings_.prompt_len);
  for (const DeviceCaps& d : devices_) {
    for (const LayerUnit& u : table_.units) {
      // Decode: a step of B tokens, each at position `pos`: weights read once for the step.
      unit_decode_s_.push_back(unit_step_s(u, d, micro_batch_, b * pos, b * pos));
      // Prefill: P tokens in one chunk (causal attention over P(P-1)/2 pairs).
      unit_prefill_s_.push_back(unit_step_s(u, d, settings_.prompt_len, p * (p - 1) * 0.5, p));
    }
  }
}

StageCost CostModel::compute_stage(int device, int b, int c) const {
  const DeviceCaps& d = devices_[static_cast<size_t>(device)];
  const double p = static_cast<double>(settings_.prompt_len);
  const size_t row = static_cast<size_t>(device) * table_.units.size();
  StageCost s;
  int64_t kv_per_token = 0;
  double max_act = boundary_bytes(b);
  double prefill_compute_s = 0;
  for (int i = b; i < c; ++i) {
    const LayerUnit& u = table_.units[static_cast<size_t>(i)];
    s.compute_s += unit_decode_s_[row + static_cast<size_t>(i)];
    prefill_compute_s += unit_prefill_s_[row + static_cast<size_t>(i)];
    s.weight_bytes += u.weight_bytes;
    kv_per_token += u.kv_bytes_per_token;
    max_act = std::max(max_act, static_cast<double>(u.activation_bytes_out));
  }
  s.kv_bytes = kv_per_token * settings_.context * settings_.sequences;
  // Four activation-sized buffers per prompt token: input, output, residual and one working
  // buffer for the chunk being prefilled (decode needs far less).
  s.buffer_bytes = static_cast<int64_t>(4.0 * p * max_act);
  const int64_t budget = d.mem_budget_bytes;
  s.used_bytes = s.weight_bytes + s.kv_bytes + s.buffer_bytes;
  s.decode_s = s.compute_s;
  s.prefill_s = prefill_compute_s;
  bool streamed = false;  // the streaming rules hold the stage (weights did not fit)
  if (s.used_bytes <= budget) {
    s.feasible = true;
    s.resident_bytes = s.weight_bytes;
  } else if (settings_.allow_streaming && d.storage_read_mb_per_s > 0) {
    // A pinned resident set, a ring of unit buffers and as many units of layers as fit; the
    // other units are read from storage once per forward call (docs/COST_MODEL.md).
    const int64_t weight_budget = budget - s.kv_bytes - s.buffer_bytes;
    const StreamFigures f = stream_figures(table_, d, b, c, weight_budget);
    if (weight_budget >= f.min_bytes) {
      s.feasible = true;
      streamed = true;
      s.resident_bytes = f.resident_bytes;
      s.streamed_bytes = f.streamed_bytes;
      s.buffer_bytes += f.ring_bytes;
      s.used_bytes = s.resident_bytes + s.kv_bytes + s.buffer_bytes;
      s.stream_s = static_cast<double>(s.streamed_bytes) / (f.mb_per_s * 1e6);
      const double calls = std::ceil(p / static_cast<double>(kPrefillChunkTokens));
      if (f.overlap) {  // the reader runs whenever a buffer is free
        s.decode_s = std::max(s.compute_s, s.stream_s / kStreamEfficiency);
        s.prefill_s = std::max(prefill_compute_s, calls * s.stream_s / kStreamEfficiency);
      } else {  // one buffer: each read waits for the compute before it
        s.decode_s = s.compute_s + s.stream_s;
        s.prefill_s = prefill_compute_s + calls * s.stream_s;
      }
    } else {
      s.short_bytes = f.min_bytes - weight_budget;
    }
  } else {
    s.short_bytes = s.used_bytes - budget;
  }
  s.mem_pressure = static_cast<double>(s.used_bytes) / static_cast<double>(budget);
  // A stage whose weights had to be streamed has run out of memory: the budget binds (its
  // leftover is less than a unit), so its pressure is 1, as the search's bounds assume (they
  // take a stage to hold at least its weights otherwise). That holds too where only the
  // embedding's rows are read and every block is kept.
  if (s.feasible && streamed) s.mem_pressure = 1.0;
  return s;
}

double CostModel::period_s(double latency_s, double bottleneck_s) const {
  const double b = static_cast<double>(micro_batch_);
  const double s = bottleneck_s;
  const double l = std::max(latency_s, s);  // a lower bound's S may exceed its L
  const int64_t g = n_groups();
  if (g == 1) return l / b;
  // Mean value analysis, customer by customer: a group arriving at the station finds there the
  // queue of a cycle with one group fewer (the arrival theorem); each waiting one costs a full
  // step, the one in service half a step on average.
  const double z = l - s;
  double queue = 0;  // groups at the station
  double busy = 0;   // the station's utilisation
  double x = 0;      // groups per second
  for (int64_t n = 1; n <= g; ++n) {
    const double r = s + s * (queue - busy) + busy * s / 2;
    x = static_cast<double>(n) / (r + z);
    queue = x * r;
    busy = x * s;
  }
  // The half-step residual over-counts at high utilisation; no cycle beats one step per S.
  if (s > 0) x = std::min(x, 1.0 / s);
  return 1.0 / (x * b);
}

bool CostModel::interchangeable(int a, int b) const {
  const DeviceCaps& x = devices_[static_cast<size_t>(a)];
  const DeviceCaps& y = devices_[static_cast<size_t>(b)];
  if (x.mem_budget_bytes != y.mem_budget_bytes || x.mem_read_gb_per_s != y.mem_read_gb_per_s ||
      x.gemv_gflops != y.gemv_gflops || x.gemm_gflops != y.gemm_gflops ||
      x.storage_read_mb_per_s != y.storage_read_mb_per_s ||
      x.storage_seq_read_mb_per_s != y.storage_seq_read_mb_per_s || x.idle_watts != y.idle_watts ||
      x.load_watts != y.load_watts) {
    return false;
  }
  if (settings_.coordinator == PlanSettings::Coordinator::kDevice &&
      (settings_.coordinator_device == a || settings_.coordinator_device == b)) {
    return false;
  }
  for (int k = 0; k < n_devices(); ++k) {
    if (k == a || k == b) continue;
    const Link& la = links_.get(a, k);
    const Link& lb = links_.get(b, k);
    if (la.rtt_ms != lb.rtt_ms || la.mbit_per_s != lb.mbit_per_s) return false;
  }
  return true;
}

const Link* CostModel::coordinator_link(int device) const {
  using C = PlanSettings::Coordinator;
  if (settings_.coordinator == C::kExternal) return &settings_.coordinator_link;
  if (settings_.coordinator == C::kDevice && settings_.coordinator_device != device) {
    return &links_.get(settings_.coordinator_device, device);
  }
  return nullptr;
}

Objectives CostModel::finish(const Partial& p, int last_device, uint32_t mask) const {
  Objectives o;
  o.latency_s = p.latency_s + coord_out_s_[static_cast<size_t>(last_device)];
  const double bottleneck_s =
      std::max(p.bottleneck_s, coord_out_ser_s_[static_cast<size_t>(last_device)]);
  o.period_s = period_s(o.latency_s, bottleneck_s);
  // A step's dynamic energy is shared by its B tokens.
  o.energy_j =
      p.energy_dyn_j / static_cast<double>(micro_batch_) + idle_by_mask_[mask] * o.period_s;
  o.mem_pressure = p.mem_pressure;
  return o;
}

Result<Objectives> CostModel::evaluate(const std::vector<Stage>& stages) const {
  if (stages.empty()) return invalid_argument("a plan needs at least one stage");
  uint32_t mask = 0;
  Partial p;
  int expect_begin = 0;
  for (size_t k = 0; k < stages.size(); ++k) {
    const Stage& s = stages[k];
    const std::string where = "stage " + std::to_string(k);
    if (s.device < 0 || s.device >= n_devices()) {
      return invalid_argument(where + ": device index " + std::to_string(s.device) +
                              " out of range");
    }
    if ((mask >> s.device & 1U) != 0) {
      return invalid_argument(where + ": device '" + devices_[static_cast<size_t>(s.device)].name +
                              "' already holds an earlier stage");
    }
    if (s.unit_begin != expect_begin || s.unit_end <= s.unit_begin || s.unit_end > n_units()) {
      return invalid_argument(where + ": units [" + std::to_string(s.unit_begin) + ", " +
                              std::to_string(s.unit_end) + ") do not continue from unit " +
                              std::to_string(expect_begin));
    }
    const StageCost& cost = stage(s.device, s.unit_begin, s.unit_end);
    if (!cost.feasible) {
      return invalid_argument(where + ": does not fit on '" +
                              devices_[static_cast<size_t>(s.device)].name + "' (short by " +
                              std::to_string(cost.short_bytes) + " bytes)");
    }
    p = k == 0 ? start(s.device) : add_link(p, stages[k - 1].device, s.device, s.unit_begin);
    p = add_stage(p, s.device, s.unit_begin, s.unit_end);
    mask |= uint32_t{1} << s.device;
    expect_begin = s.unit_end;
  }
  if (expect_begin != n_units()) {
    return invalid_argument("the plan ends at unit " + std::to_string(expect_begin) + " of " +
                            std::to_string(n_units()));
  }
  return finish(p, stages.back().device, mask);
}

}  // namespace strata::partitioner
