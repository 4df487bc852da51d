// The SVG of the front: latency across, throughput up, energy as colour, the choice ringed.
#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>

#include "strata/partitioner/report.h"

namespace strata::partitioner {
namespace {

constexpr double kWidth = 960, kHeight = 640;
constexpr double kLeft = 90, kRight = 190, kTop = 70, kBottom = 75;

std::string svg_printf(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string svg_printf(const char* format, ...) {
  char buf[1024];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buf, sizeof buf, format, args);
  va_end(args);
  return buf;
}

std::string escape(const std::string& text) {
  std::string out;
  for (const char ch : text) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += ch;
    }
  }
  return out;
}

// Viridis-like colour for t in [0, 1].
std::string colour(double t) {
  static const double kStops[][3] = {{68, 1, 84},    {65, 68, 135},  {42, 120, 142},
                                     {34, 168, 132}, {122, 209, 81}, {253, 231, 37}};
  t = std::clamp(t, 0.0, 1.0) * 5.0;
  const int i = std::min(4, static_cast<int>(t));
  const double f = t - i;
  int rgb[3];
  for (int k = 0; k < 3; ++k) {
    rgb[k] = static_cast<int>(std::lround(kStops[i][k] + f * (kStops[i + 1][k] - kStops[i][k])));
  }
  return svg_printf("#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

// Tick positions at 1, 2 or 5 times a power of ten, about 6 over [lo, hi].
std::vector<double> ticks(double lo, double hi) {
  const double raw = (hi - lo) / 6.0;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (const double m : {1.0, 2.0, 5.0, 10.0}) {
    if (raw <= m * mag) {
      step = m * mag;
      break;
    }
  }
  std::vector<double> out;
  for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push_back(v);
  return out;
}

std::string tick_label(double v) {
  if (std::fabs(v) >= 100 || v == std::floor(v)) return svg_printf("%.0f", v);
  if (std::fabs(v) >= 1) return svg_printf("%.1f", v);
  return svg_printf("%.3g", v);
}

// Pads [lo, hi] by 6% on each side (or around a single value).
void pad(double* lo, double* hi) {
  double span = *hi - *lo;
  if (span <= 0) span = std::max(std::fabs(*hi) * 0.2, 1e-3);
  *lo -= span * 0.06;
  *hi += span * 0.06;
  if (*lo < 0 && *hi > 0 && *lo > -span * 0.1) *lo = 0;
}

}  // namespace

std::string front_svg(const PlanRun& run) {
  const CostModel& m = *run.model;
  const Front& f = *run.front;
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  double e_lo = INFINITY, e_hi = -INFINITY;
  for (const auto& p : f.plans) {
    const Objectives& o = p.objectives;
    x_lo = std::min(x_lo, o.latency_s * 1e3);
    x_hi = std::max(x_hi, o.latency_s * 1e3);
    y_lo = std::min(y_lo, o.throughput_tok_per_s());
    y_hi = std::max(y_hi, o.throughput_tok_per_s());
    if (!std::isnan(o.energy_j)) {
      e_lo = std::min(e_lo, o.energy_j);
      e_hi = std::max(e_hi, o.energy_j);
    }
  }
  const bool have_energy = std::isfinite(e_lo);
  pad(&x_lo, &x_hi);
  pad(&y_lo, &y_hi);
  const double pw = kWidth - kLeft - kRight, ph = kHeight - kTop - kBottom;
  auto sx = [&](double v) { return kLeft + (v - x_lo) / (x_hi - x_lo) * pw; };
  auto sy = [&](double v) { return kTop + ph - (v - y_lo) / (y_hi - y_lo) * ph; };

  std::string s;
  s += svg_printf(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 "
      "%.0f %.0f\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n",
      kWidth, kHeight, kWidth, kHeight);
  s += svg_printf("<rect width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", kWidth, kHeight);
  std::string devices;
  for (const auto& d : m.devices()) devices += (devices.empty() ? "" : ", ") + d.name;
  s += svg_printf("<text x=\"%.0f\" y=\"28\" font-size=\"18\" font-weight=\"bold\">%s</text>\n",
                  kLeft, escape("Pareto front: " + m.table().name + " on " + devices).c_str());
  s += svg_printf(
      "<text x=\"%.0f\" y=\"50\" font-size=\"13\" fill=\"#444\">%s</text>\n", kLeft,
      escape(svg_printf("%zu plans (%s); %lld sequences in flight; colour: energy per token; "
                        "ringed: the chosen plan (%s)",
                        f.plans.size(), f.exact ? "exact" : "approximate",
                        static_cast<long long>(m.settings().sequences),
                        objective_name(run.objective)))
          .c_str());
  s += svg_printf(
      "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" fill=\"#666\">points that look "
      "dominated here win on energy per token or memory pressure; plans with equal latency and "
      "throughput overlap</text>\n",
      kLeft, kHeight - 6);
  // Grid, ticks, axes.
  s += "<g font-size=\"12\" fill=\"#333\">\n";
  for (const double v : ticks(x_lo, x_hi)) {
    s += svg_printf("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n",
                    sx(v), kTop, sx(v), kTop + ph);
    s += svg_printf("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", sx(v),
                    kTop + ph + 18, tick_label(v).c_str());
  }
  for (const double v : ticks(y_lo, y_hi)) {
    s += svg_printf("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n",
                    kLeft, sy(v), kLeft + pw, sy(v));
    s += svg_printf("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", kLeft - 8,
                    sy(v) + 4, tick_label(v).c_str());
  }
  s += "</g>\n";
  s += svg_printf(
      "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
      "stroke=\"#333\"/>\n",
      kLeft, kTop, pw, ph);
  s += svg_printf(
      "<text x=\"%.1f\" y=\"%.1f\" font-size=\"14\" text-anchor=\"middle\">per-token decode "
      "latency (ms)</text>\n",
      kLeft + pw / 2, kHeight - 25);
  s += svg_printf(
      "<text transform=\"translate(24,%.1f) rotate(-90)\" font-size=\"14\" "
      "text-anchor=\"middle\">throughput with %lld sequences in flight (tokens/s)</text>\n",
      kTop + ph / 2, static_cast<long long>(m.settings().sequences));
  // Points: the chosen one last so that its ring is on top.
  for (size_t i = 0; i < f.plans.size(); ++i) {
    const Objectives& o = f.plans[i].objectives;
    const std::string fill = std::isnan(o.energy_j)
                                 ? "#9a9a9a"
                                 : colour(e_hi > e_lo ? (o.energy_j - e_lo) / (e_hi - e_lo) : 0.5);
    s += svg_printf(
        "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"%s\" stroke=\"#222\" "
        "stroke-width=\"0.5\" fill-opacity=\"0.9\"><title>#%zu: %.2f ms, %.2f tok/s, %s J/token, "
        "memory %.1f%%</title></circle>\n",
        sx(o.latency_s * 1e3), sy(o.throughput_tok_per_s()), fill.c_str(), i, o.latency_s * 1e3,
        o.throughput_tok_per_s(),
        std::isnan(o.energy_j) ? "n/a" : svg_printf("%.3f", o.energy_j).c_str(),
        o.mem_pressure * 100);
  }
  const Objectives& c = f.plans[run.choice.index].objectives;
  const double cx = sx(c.latency_s * 1e3), cy = sy(c.throughput_tok_per_s());
  s += svg_printf(
      "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"10\" fill=\"none\" stroke=\"#d62728\" "
      "stroke-width=\"2.5\"/>\n",
      cx, cy);
  const bool left = cx > kLeft + pw * 0.7;
  s += svg_printf(
      "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\" fill=\"#d62728\" font-weight=\"bold\" "
      "text-anchor=\"%s\">chosen #%zu (%s): %.1f ms, %.1f tok/s</text>\n",
      left ? cx - 14 : cx + 14, cy < kTop + 20 ? cy + 22 : cy - 12, left ? "end" : "start",
      run.choice.index, objective_name(run.objective), c.latency_s * 1e3, c.throughput_tok_per_s());
  // Colour bar.
  const double bx = kLeft + pw + 40, bw = 22, by = kTop + 20, bh = ph - 60;
  s += svg_printf("<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\">energy per token</text>\n", bx - 10,
                  by - 10);
  if (have_energy) {
    s += "<defs><linearGradient id=\"energy\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">\n";
    for (int k = 0; k <= 10; ++k) {
      s += svg_printf("<stop offset=\"%.1f\" stop-color=\"%s\"/>\n", k / 10.0,
                      colour(k / 10.0).c_str());
    }
    s += "</linearGradient></defs>\n";
    s += svg_printf(
        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"url(#energy)\" "
        "stroke=\"#333\"/>\n",
        bx, by, bw, bh);
    for (int k = 0; k <= 4; ++k) {
      const double v = e_lo + (e_hi - e_lo) * k / 4.0;
      const double y = by + bh - bh * k / 4.0;
      s += svg_printf(
          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/><text "
          "x=\"%.1f\" y=\"%.1f\" font-size=\"12\">%s J</text>\n",
          bx + bw, y, bx + bw + 5, y, bx + bw + 8, y + 4, svg_printf("%.3g", v).c_str());
    }
    s += svg_printf(
        "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#555\">(lower is better)</text>\n",
        bx - 10, by + bh + 20);
  } else {
    s += svg_printf(
        "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" fill=\"#555\">n/a: a device has no power "
        "figures</text>\n",
        bx - 10, by + 10);
  }
  s += "</svg>\n";
  return s;
}

}  // namespace strata::partitioner
