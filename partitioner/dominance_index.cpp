#include <algorithm>

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

}  // namespace strata::partitioner::internal
