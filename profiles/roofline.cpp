#include "strata/profiles/roofline.h"

#include <algorithm>
#include <cstdio>

#include "strata/model/types.h"

namespace strata::profiles {
namespace {

const Figure* threads_all(const std::map<std::string, ThreadFigures>& table,
                          const std::string& dtype) {
  const auto it = table.find(dtype);
  return it == table.end() ? nullptr : &it->second.threads_all;
}

bool usable(const Figure* f) { return f != nullptr && f->available() && *f->value > 0; }

// The rate a run sees: a measured figure's median (its value is the p90 of its repetitions,
// what the device reaches when nothing interferes), else its value.
double typical(const Figure* f) {
  return f->stats && f->stats->median > 0 ? f->stats->median : *f->value;
}

Figure missing(const char* unit, const Figure* f, const std::string& what) {
  const Reason r = f != nullptr && f->reason ? *f->reason : Reason::kNotPresent;
  return unavailable_figure(unit, r, "the profile has no " + what);
}

std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}

// Elements per byte of a weight type, to split a unit's FLOPs over its types (a matmul does
// 2 FLOPs per weight element). An unknown name counts as f32.
double elements_per_byte(const std::string& type) {
  const auto t = model::parse_dtype(type).value_or(model::DType::kF32);
  return static_cast<double>(model::dtype_block_elems(t)) /
         static_cast<double>(model::dtype_block_bytes(t));
}

// The all-thread GEMV run of exactly this type and shape, if the profile has one.
const Figure* gemv_run(const Compute& c, const MatrixCost& m) {
  for (const ComputeRun& r : c.runs) {
    if (r.op == "gemv" && r.dtype == m.type && r.rows == m.rows && r.cols == m.cols &&
        r.threads == c.threads_all && usable(&r.gflops)) {
      return &r.gflops;
    }
  }
  return nullptr;
}

// The rate attention runs at: the engine's own (compute.attention_gflops), else, for a profile
// without it, the GEMV rate of the unit's weight type.
const Figure* attention_rate(const Compute& c, const std::string& type) {
  if (usable(&c.attention_gflops.threads_all)) return &c.attention_gflops.threads_all;
  return threads_all(c.gemv_gflops, type);
}

}  // namespace

Prediction predict(const Profile& profile, const std::string& model_name, const std::string& dtype,
                   const std::vector<UnitCost>& units, int64_t ctx) {
  STRATA_CHECK(ctx >= 0);
  Prediction p;
  p.model = model_name;
  p.dtype = dtype;
  p.ctx = ctx;
  for (const UnitCost& u : units) {
    p.weight_bytes_per_token += u.weight_bytes_read_per_token;
    p.flops_per_token += u.flops_per_token;
  }
  const Figure* mem = &profile.memory.read_gb_per_s.threads_all;
  if (!mem->available()) mem = &profile.memory.triad_gb_per_s.threads_all;
  const Figure* gemm = threads_all(profile.compute.gemm_gflops, dtype);

  // Decode: the planner's roofline per unit, summed (roofline.h).
  const auto decode = [&]() -> Figure {
    if (!usable(mem)) return missing("tok/s", mem, "memory bandwidth figure");
    const double bw = typical(mem) * 1e9;
    double compute_s = 0;  // the units where the GEMV term won
    double memory_s = 0;   // the units where the bytes term won
    double attn_flops = 0;
    double kv_bytes = 0;
    int shaped = 0;  // matrices timed with a GEMV run of their own shape
    for (const UnitCost& u : units) {
      const double flops = u.flops_per_token + u.attn_flops_per_token_per_ctx * ctx;
      const double bytes = u.weight_bytes_read_per_token + u.kv_bytes_per_token * ctx;
      attn_flops += u.attn_flops_per_token_per_ctx * ctx;
      kv_bytes += u.kv_bytes_per_token * ctx;
      double gemv_s = 0;
      if (!u.matrices.empty()) {
        for (const MatrixCost& m : u.matrices) {
          const Figure* rate = gemv_run(profile.compute, m);
          if (rate != nullptr) ++shaped;
          if (rate == nullptr) rate = threads_all(profile.compute.gemv_gflops, m.type);
          if (!usable(rate)) return missing("tok/s", rate, m.type + " gemv threads_all figure");
          gemv_s += 2.0 * static_cast<double>(m.rows * m.cols) / (typical(rate) * 1e9);
        }
        if (u.attn_flops_per_token_per_ctx > 0) {
          const Figure* attn = attention_rate(profile.compute, u.matrices[0].type);
          if (!usable(attn)) {
            return missing("tok/s", attn, u.matrices[0].type + " gemv threads_all figure");
          }
          gemv_s += u.attn_flops_per_token_per_ctx * ctx / (typical(attn) * 1e9);
        }
      } else {
        double elements = 0;
        for (const auto& [type, b] : u.weight_bytes_by_type) {
          elements += b * elements_per_byte(type);
        }
        std::map<std::string, double> shares;
        if (elements > 0) {
          for (const auto& [type, b] : u.weight_bytes_by_type) {
            shares[type] = b * elements_per_byte(type) / elements;
          }
        } else {
          shares["f32"] = 1;
        }
        for (const auto& [type, share] : shares) {
          const Figure* gemv = threads_all(profile.compute.gemv_gflops, type);
          if (!usable(gemv)) return missing("tok/s", gemv, type + " gemv threads_all figure");
          gemv_s += share * flops / (typical(gemv) * 1e9);
        }
      }
      const double bytes_s = bytes / bw;
      (gemv_s >= bytes_s ? compute_s : memory_s) += std::max(gemv_s, bytes_s);
    }
    const double total_s = compute_s + memory_s;
    if (total_s <= 0) return missing("tok/s", nullptr, "cost for a model without work");
    p.decode_bound = compute_s >= memory_s ? "compute" : "memory";
    const Figure* main_gemv = threads_all(profile.compute.gemv_gflops, dtype);
    return derived_figure(
        1.0 / total_s, "tok/s",
        "1 / sum over " + std::to_string(units.size()) +
            " units of max(FLOPs / gemv GFLOP/s of their types, bytes / " + fmt(typical(mem)) +
            " GB/s) at ctx " + std::to_string(ctx) + ": " + fmt(p.flops_per_token) +
            " matmul FLOP + " + fmt(attn_flops) + " attention FLOP" +
            (usable(main_gemv) ? " (" + dtype + " gemv " + fmt(typical(main_gemv)) + " GFLOP/s)"
                               : "") +
            ", " + fmt(p.weight_bytes_per_token) + " weight B + " + fmt(kv_bytes) + " KV B; " +
            std::to_string(shaped) +
            " matrices at the GEMV rate of their own shape; attention at " +
            (usable(&profile.compute.attention_gflops.threads_all)
                 ? fmt(typical(&profile.compute.attention_gflops.threads_all)) +
                       " GFLOP/s (measured)"
                 : std::string("the GEMV rate")) +
            "; " + fmt(compute_s * 1e3) + " ms GEMV-bound + " + fmt(memory_s * 1e3) +
            " ms bandwidth-bound per token");
  };
  p.decode_tok_per_s = decode();

  if (usable(gemm) && p.flops_per_token > 0) {
    p.prefill_tok_per_s = derived_figure(
        typical(gemm) * 1e9 / p.flops_per_token, "tok/s",
        fmt(typical(gemm)) + " GFLOP/s / " + fmt(p.flops_per_token) + " FLOP per token");
  } else {
    p.prefill_tok_per_s = missing("tok/s", gemm, dtype + " gemm threads_all figure");
  }
  const Figure& watts = profile.power.load_watts;
  if (watts.available() && p.decode_tok_per_s.available()) {
    p.joules_per_token =
        derived_figure(*watts.value / *p.decode_tok_per_s.value, "J/token",
                       "power.load_watts (" + std::string(boundary_name(profile.power.boundary)) +
                           ") / predicted decode tok/s");
  } else {
    p.joules_per_token = watts.available()
                             ? missing("J/token", &p.decode_tok_per_s, "decode prediction")
                             : missing("J/token", &watts, "load watts");
  }
  return p;
}

}  // namespace strata::profiles
