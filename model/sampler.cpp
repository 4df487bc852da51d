#include <algorithm>
#include <cmath>

#include "strata/model/engine.h"

namespace strata::model {

Sampler::Sampler(const SamplerOptions& options) : options_(options), rng_(options.seed) {}

void Sampler::skip(int64_t n_tokens) {
  STRATA_CHECK(n_tokens >= 0);
  if (options_.temperature > 0.0f) rng_.discard(static_cast<unsigned long long>(n_tokens));
}

int32_t Sampler::sample(std::span<const float> logits) {
  STRATA_CHECK(!logits.empty());
  if (options_.temperature <= 0.0f) {
    int32_t best = 0;
    for (size_t i = 1; i < logits.size(); ++i) {
      if (logits[i] > logits[static_cast<size_t>(best)]) best = static_cast<int32_t>(i);
    }
    return best;
  }
  candidates_.clear();
  candidates_.reserve(logits.size());
  for (size_t i = 0; i < logits.size(); ++i)
    candidates_.emplace_back(logits[i], static_cast<int32_t>(i));
  // Larger logit first, lower id first on ties: a total order, so the result is portable.
  const auto by_logit = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  };
  size_t keep = candidates_.size();
  if (options_.top_k > 0 && static_cast<size_t>(options_.top_k) < keep)
    keep = static_cast<size_t>(options_.top_k);
  std::partial_sort(candidates_.begin(), candidates_.begin() + static_cast<std::ptrdiff_t>(keep),
                    candidates_.end(), by_logit);
  candidates_.resize(keep);

  const double inv_t = 1.0 / static_cast<double>(options_.temperature);
  const double mx = candidates_.front().first;
  std::vector<double> p(keep);
  double sum = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    p[i] = std::exp((candidates_[i].first - mx) * inv_t);
    sum += p[i];
  }
  size_t n = keep;
  if (options_.top_p < 1.0f) {
    double cum = 0.0;
    for (size_t i = 0; i < keep; ++i) {
      cum += p[i] / sum;
      if (cum >= static_cast<double>(options_.top_p)) {
        n = i + 1;
        break;
      }
    }
  }
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) total += p[i];
  // 53 random bits -> [0, 1): the same on every platform, unlike std::uniform_real_distribution.
  const double u = static_cast<double>(rng_() >> 11) * 0x1p-53 * total;
  double acc = 0.0;
  for (size_t i = 0; i < n; ++i) {
    acc += p[i];
    if (u < acc) return candidates_[i].second;
  }
  return candidates_[n - 1].second;
}

std::vector<std::pair<int32_t, float>> top_logits(std::span<const float> logits, int n) {
  std::vector<std::pair<int32_t, float>> all;
  all.reserve(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) all.emplace_back(static_cast<int32_t>(i), logits[i]);
  const size_t k = std::min(all.size(), static_cast<size_t>(std::max(n, 0)));
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k), all.end(),
                    [](const auto& a, const auto& b) {
                      return a.second != b.second ? a.second > b.second : a.first < b.first;
                    });
  all.resize(k);
  return all;
}

std::vector<int32_t> default_prompt(int64_t n, int64_t vocab) {
  STRATA_CHECK(vocab > 259);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    ids[static_cast<size_t>(i)] =
        i == 0 ? 1 : static_cast<int32_t>(259 + (i * 7919) % (vocab - 259));
  }
  return ids;
}

}  // namespace strata::model
