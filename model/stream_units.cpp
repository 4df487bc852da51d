// The rules dense streaming cuts and keeps layers by, shared by the weight store
// (weight_store_plan.cpp) and the planner's cost model (partitioner/cost_model.cpp) so that
// both count the same bytes (docs/STREAMING.md, "What stays and what streams").
#include <algorithm>
#include <numeric>

#include "strata/model/weight_store.h"

namespace strata::model {
namespace {

constexpr int64_t kPage = 4096;
constexpr int64_t kDefaultUnitBytes = int64_t{4} << 20;
constexpr int64_t kMinUnitBytes = int64_t{32} << 10;

int64_t page_up(int64_t n) { return (n + kPage - 1) / kPage * kPage; }

}  // namespace

std::vector<StreamUnit> cut_block(const std::vector<StreamMatrix>& matrices, int64_t unit_bytes) {
  // Units of about the same size: n = ceil(block / unit_bytes) of about block / n each (a unit
  // is filled up to the target, plus one step of rows where that still fits in unit_bytes),
  // rather than full units and a small remainder, which would be a small read and a small
  // unit left over in the budget.
  int64_t total = 0;
  for (const StreamMatrix& m : matrices) total += page_up(m.rows * m.row_bytes);
  const int64_t n_units = std::max<int64_t>(1, (total + unit_bytes - 1) / unit_bytes);
  const int64_t target = std::min(unit_bytes, page_up((total + n_units - 1) / n_units));
  std::vector<StreamUnit> units;
  StreamUnit cur;
  const auto flush = [&] {
    if (!cur.pieces.empty()) units.push_back(std::move(cur));
    cur = StreamUnit{};
  };
  for (size_t m = 0; m < matrices.size(); ++m) {
    const int64_t rb = matrices[m].row_bytes;
    // Rows per cut: the fewest whose bytes are a multiple of a page.
    const int64_t step = kPage / std::gcd(rb, kPage);
    int64_t row = 0;
    while (row < matrices[m].rows) {
      const int64_t left = matrices[m].rows - row;
      int64_t take = left;
      if (cur.bytes + page_up(left * rb) > target) {
        take = std::max<int64_t>(0, target - cur.bytes) / (step * rb) * step;
        if (take == 0) {
          if (!cur.pieces.empty() && cur.bytes + page_up(std::min(step, left) * rb) > unit_bytes) {
            flush();
            continue;
          }
          take = std::min(step, left);  // one more step (a unit holds at least one)
        }
      }
      cur.pieces.push_back(StreamPiece{static_cast<int>(m), row, row + take});
      cur.bytes += page_up(take * rb);
      row += take;
      if (cur.bytes >= target) flush();
    }
  }
  flush();
  return units;
}

std::vector<bool> choose_resident(const std::vector<int64_t>& cost_bytes, int64_t room_bytes) {
  const auto n = static_cast<int64_t>(cost_bytes.size());
  const auto at = [n](int64_t k, int64_t j) {
    return static_cast<size_t>((2 * j + 1) * n / (2 * k));
  };
  // Any k units of at most the largest cost fit when k * largest <= room; from there k grows
  // while its spread positions fit. (Units differ little in size, so this ends within a few
  // steps; the sums are not strictly monotonic in k, and the top-up below takes the slack.)
  const int64_t largest =
      cost_bytes.empty()
          ? 1
          : std::max<int64_t>(1, *std::max_element(cost_bytes.begin(), cost_bytes.end()));
  int64_t best = std::clamp<int64_t>(room_bytes / largest, 0, n);
  for (int64_t k = best + 1; k <= n; ++k) {
    int64_t need = 0;
    for (int64_t j = 0; j < k && need <= room_bytes; ++j) need += cost_bytes[at(k, j)];
    if (need > room_bytes) break;
    best = k;
  }
  std::vector<bool> keep(static_cast<size_t>(n), false);
  int64_t left = room_bytes;
  for (int64_t j = 0; j < best; ++j) {
    keep[at(best, j)] = true;
    left -= cost_bytes[at(best, j)];
  }
  // Then whatever still fits, in order, so that less than one unit of the room goes unused.
  for (size_t i = 0; i < keep.size(); ++i) {
    if (!keep[i] && cost_bytes[i] <= left) {
      keep[i] = true;
      left -= cost_bytes[i];
    }
  }
  return keep;
}

UnitKeep keep_units(const std::vector<int64_t>& cost_bytes, int64_t slot_bytes, int64_t fixed_bytes,
                    int64_t budget_bytes, int64_t chunk_bytes, int io_depth, int lookahead) {
  UnitKeep k;
  int64_t all_units = 0;
  for (int64_t c : cost_bytes) all_units += c;
  // Every unit fits beside the fixed set (the embedding left out is what made the room):
  // nothing streams, so no ring.
  k.keep_all = fixed_bytes + all_units <= budget_bytes;
  if (k.keep_all) {
    k.keep.assign(cost_bytes.size(), true);
    return k;
  }
  k.lookahead = lookahead;
  if (k.lookahead < 0) {
    k.lookahead = default_lookahead(slot_bytes, chunk_bytes, io_depth);
    while (k.lookahead > 0 &&
           fixed_bytes + ring_buffer_bytes(slot_bytes, k.lookahead + 1) > budget_bytes) {
      --k.lookahead;
    }
  }
  k.ring_bytes = ring_buffer_bytes(slot_bytes, k.lookahead + 1);
  k.keep = choose_resident(cost_bytes, budget_bytes - fixed_bytes - k.ring_bytes);
  return k;
}

int default_lookahead(int64_t unit_bytes, int64_t chunk_bytes, int io_depth) {
  if (unit_bytes <= 0) return 1;
  // Buffers for io_depth reads in flight and half as many again queued behind them: with only
  // io_depth, one held by the engine and the others read, the queue runs dry whenever the
  // engine (or an I/O thread on busy cores) runs late, and the storage idles.
  const int64_t in_flight = 3 * io_depth * std::min(chunk_bytes, unit_bytes);
  const int64_t units = (in_flight + 2 * unit_bytes - 1) / (2 * unit_bytes);
  return static_cast<int>(std::clamp<int64_t>(units - 1, 1, 8));
}

int64_t default_unit_bytes(const std::map<int64_t, double>& seq_read_mb_per_s) {
  // Half the smallest read size the storage serves within 10% of its best: the ring is paid
  // for in budget, so more buffers of half the size keep as many bytes in flight for the same
  // memory, and their reads still run near the bound.
  double best = 0;
  for (const auto& [chunk, mbps] : seq_read_mb_per_s) {
    if (chunk >= kPage && chunk % kPage == 0) best = std::max(best, mbps);
  }
  if (best <= 0) return kDefaultUnitBytes / 2;
  for (const auto& [chunk, mbps] : seq_read_mb_per_s) {  // ascending sizes
    if (chunk >= kPage && chunk % kPage == 0 && mbps >= 0.9 * best) {
      return std::max(chunk / 2 / kPage * kPage, kMinUnitBytes);
    }
  }
  return kDefaultUnitBytes / 2;
}

int64_t embedding_row_buffer_bytes(int64_t row_bytes) { return page_up(row_bytes) + kPage; }

int64_t ring_buffer_bytes(int64_t slot_bytes, int buffers) {
  constexpr int64_t kHuge = int64_t{2} << 20;
  const int64_t bytes = slot_bytes * buffers;
  return bytes >= kHuge ? (bytes + kHuge - 1) / kHuge * kHuge : bytes;
}

}  // namespace strata::model
