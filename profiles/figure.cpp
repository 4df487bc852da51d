#include <algorithm>
#include <cmath>

#include "strata/profiles/profile.h"

namespace strata::profiles {
namespace {

// The q-quantile of sorted values, interpolating linearly between neighbours (the common
// "type 7" definition), so p10/p90 of few samples stay inside the observed range.
double quantile(const std::vector<double>& sorted, double q) {
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = pos - static_cast<double>(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

Figure plain(std::optional<double> value, std::string unit, Provenance p, std::string source) {
  Figure f;
  f.value = value;
  f.unit = std::move(unit);
  f.provenance = p;
  f.source = std::move(source);
  return f;
}

}  // namespace

Stats summarize(std::vector<double> samples) {
  STRATA_CHECK_MSG(!samples.empty(), "statistics of no samples");
  std::sort(samples.begin(), samples.end());
  Stats s;
  s.median = quantile(samples, 0.5);
  s.p10 = quantile(samples, 0.1);
  s.p90 = quantile(samples, 0.9);
  s.n = static_cast<int64_t>(samples.size());
  return s;
}

Figure measured_figure(const std::vector<double>& samples, std::string unit, std::string source) {
  const Stats s = summarize(samples);
  Figure f = plain(s.median, std::move(unit), Provenance::kMeasured, std::move(source));
  f.stats = s;
  return f;
}

Figure measured_rate_figure(const std::vector<double>& samples, std::string unit,
                            std::string source) {
  Figure f = measured_figure(samples, std::move(unit), std::move(source));
  f.value = f.stats->p90;
  return f;
}

Figure read_figure(double value, std::string unit, std::string source) {
  return measured_figure({value}, std::move(unit), std::move(source));
}

Figure derived_figure(double value, std::string unit, std::string source) {
  return plain(value, std::move(unit), Provenance::kDerived, std::move(source));
}

Figure spec_figure(double value, std::string unit, std::string source) {
  return plain(value, std::move(unit), Provenance::kSpec, std::move(source));
}

Figure estimated_figure(double value, std::string unit, std::string source) {
  return plain(value, std::move(unit), Provenance::kEstimated, std::move(source));
}

Figure unavailable_figure(std::string unit, Reason reason, std::string source) {
  Figure f = plain(std::nullopt, std::move(unit), Provenance::kUnavailable, std::move(source));
  f.reason = reason;
  return f;
}

}  // namespace strata::profiles
