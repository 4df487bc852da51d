#include <algorithm>
#include <bit>
#include <cmath>
#include <iterator>

#include "strata/base/status.h"

#include "search_internal.h"

namespace strata::partitioner::internal {
namespace {

constexpr int32_t kLeafSize = 8;

}  // namespace

DominanceIndex::DominanceIndex(const std::vector<Objectives>& points, bool use_energy) {
  points_.reserve(points.size());
  for (const Objectives& o : points) {
    points_.push_back({o.latency_s, o.period_s, use_energy ? o.energy_j : 0.0, o.mem_pressure});
  }
  if (!points_.empty()) build(0, static_cast<int32_t>(points_.size()));
}

int32_t DominanceIndex::build(int32_t begin, int32_t end) {
  const auto id = static_cast<int32_t>(nodes_.size());
  nodes_.push_back({});
  Vec least{INFINITY, INFINITY, INFINITY, INFINITY};
  Vec most{-INFINITY, -INFINITY, -INFINITY, -INFINITY};
  for (int32_t i = begin; i < end; ++i) {
    for (size_t k = 0; k < 4; ++k) {
      least[k] = std::min(least[k], points_[static_cast<size_t>(i)][k]);
      most[k] = std::max(most[k], points_[static_cast<size_t>(i)][k]);
    }
  }
  int32_t left = -1, right = -1;
  if (end - begin > kLeafSize) {
    size_t dim = 0;
    for (size_t k = 1; k < 4; ++k) {
      if ((most[k] - least[k]) / std::max(1e-300, most[k]) >
          (most[dim] - least[dim]) / std::max(1e-300, most[dim])) {
        dim = k;
      }
    }
    const int32_t mid = begin + (end - begin) / 2;
    std::nth_element(points_.begin() + begin, points_.begin() + mid, points_.begin() + end,
                     [dim](const Vec& a, const Vec& b) { return a[dim] < b[dim]; });
    left = build(begin, mid);
    right = build(mid, end);
  }
  nodes_[static_cast<size_t>(id)] = {least, begin, end, left, right};
  return id;
}

bool DominanceIndex::covers(const Objectives& o, int32_t* hint) const {
  if (points_.empty()) return false;
  const Vec x{o.latency_s, o.period_s, std::isnan(o.energy_j) ? 0.0 : o.energy_j, o.mem_pressure};
  auto le = [&x](const Vec& p) {
    return p[0] <= x[0] && p[1] <= x[1] && p[2] <= x[2] && p[3] <= x[3];
  };
  // Neighbouring queries tend to be covered by the same point.
  if (*hint < 0 || *hint >= static_cast<int32_t>(points_.size())) *hint = 0;
  if (le(points_[static_cast<size_t>(*hint)])) return true;
  int32_t stack[64];
  int depth = 0;
  stack[depth++] = 0;
  while (depth > 0) {
    const Node& node = nodes_[static_cast<size_t>(stack[--depth])];
    if (!le(node.least)) continue;
    if (node.left < 0) {
      for (int32_t i = node.begin; i < node.end; ++i) {
        if (le(points_[static_cast<size_t>(i)])) {
          *hint = i;
          return true;
        }
      }
      continue;
    }
    stack[depth++] = node.right;
    stack[depth++] = node.left;
  }
  return false;
}

void Skyline3::reset(std::vector<double>* ms, std::vector<uint32_t>* ranks) {
  // A set's pressures repeat (a few stages' memory bounds most of its prefixes): dropping
  // repeats through a hash table first leaves only a few dozen values to sort, and the
  // table then gives each m its rank without a search.
  const size_t slots = std::bit_ceil(2 * ms->size() + 2);
  constexpr uint64_t kEmpty = ~uint64_t{0};  // a NaN's bits; no m is NaN
  seen_.assign(slots, kEmpty);
  slot_of_.resize(ms->size());
  const int shift = 64 - std::countr_zero(slots);
  size_t distinct = 0;
  for (size_t k = 0; k < ms->size(); ++k) {
    const double m = (*ms)[k];
    const auto bits = std::bit_cast<uint64_t>(m);
    auto i = static_cast<size_t>((bits * 0x9E3779B97F4A7C15ULL) >> shift);
    while (seen_[i] != kEmpty && seen_[i] != bits) i = (i + 1) & (slots - 1);
    if (seen_[i] == kEmpty) {
      seen_[i] = bits;
      (*ms)[distinct++] = m;
    }
    slot_of_[k] = static_cast<uint32_t>(i);
  }
  ms->resize(distinct);
  std::sort(ms->begin(), ms->end());
  ms->erase(std::unique(ms->begin(), ms->end()), ms->end());
  ms_.swap(*ms);
  if (nodes_.size() < ms_.size() + 1) nodes_.resize(ms_.size() + 1);
  for (size_t i = 1; i <= ms_.size(); ++i) nodes_[i].clear();
  if (ranks == nullptr) return;
  slot_rank_.resize(slots);
  for (size_t i = 0; i < slots; ++i) {
    if (seen_[i] != kEmpty)
      slot_rank_[i] = static_cast<uint32_t>(rank(std::bit_cast<double>(seen_[i])));
  }
  ranks->resize(slot_of_.size());
  for (size_t k = 0; k < slot_of_.size(); ++k) (*ranks)[k] = slot_rank_[slot_of_[k]];
}

size_t Skyline3::rank(double m) const {
  return static_cast<size_t>(std::upper_bound(ms_.begin(), ms_.end(), m) - ms_.begin());
}

bool Skyline3::covered_at(size_t rank, double b, double e) const {
  for (size_t i = rank; i > 0; i &= i - 1) {
    const auto& stair = nodes_[i];
    // The last step with b' <= b has the least e' of all such steps.
    auto it =
        std::upper_bound(stair.begin(), stair.end(), b,
                         [](double v, const std::pair<double, double>& s) { return v < s.first; });
    if (it != stair.begin() && std::prev(it)->second <= e) return true;
  }
  return false;
}

void Skyline3::insert(double b, double e, double m) {
  const size_t r = rank(m);
  STRATA_CHECK(r > 0 && ms_[r - 1] == m);
  insert_at(r, b, e);
}

void Skyline3::insert_at(size_t r, double b, double e) {
  STRATA_CHECK(r > 0 && r <= ms_.size());
  for (size_t i = r; i <= ms_.size(); i += i & (~i + 1)) {
    auto& stair = nodes_[i];
    auto it =
        std::upper_bound(stair.begin(), stair.end(), b,
                         [](double v, const std::pair<double, double>& s) { return v < s.first; });
    if (it != stair.begin() && std::prev(it)->second <= e) continue;  // already covered here
    // Steps from `it` on with e' >= e are covered by the new one (their b' > b).
    auto end = it;
    while (end != stair.end() && end->second >= e) ++end;
    if (it != stair.begin() && std::prev(it)->first == b) {
      --it;  // same b, larger e: replace it
    }
    if (it == end) {
      stair.insert(it, {b, e});
    } else {
      *it = {b, e};
      stair.erase(it + 1, end);
    }
  }
}

}  // namespace strata::partitioner::internal
