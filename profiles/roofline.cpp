#include "strata/profiles/roofline.h"

#include <algorithm>
#include <cstdio>

namespace strata::profiles {

RooflineResult roofline(const RooflineInput& in) {
  STRATA_CHECK(in.weight_bytes_per_token > 0 && in.flops_per_token > 0 && in.mem_gb_per_s > 0 &&
               in.gemv_gflops > 0 && in.gemm_gflops > 0);
  const double mem_bound = in.mem_gb_per_s * 1e9 / in.weight_bytes_per_token;
  const double compute_bound = in.gemv_gflops * 1e9 / in.flops_per_token;
  RooflineResult r;
  r.decode_tok_per_s = std::min(mem_bound, compute_bound);
  r.decode_memory_bound = mem_bound <= compute_bound;
  r.prefill_tok_per_s = in.gemm_gflops * 1e9 / in.flops_per_token;
  return r;
}

namespace {

const Figure* threads_all(const std::map<std::string, ThreadFigures>& table,
                          const std::string& dtype) {
  const auto it = table.find(dtype);
  return it == table.end() ? nullptr : &it->second.threads_all;
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

}  // namespace

Prediction predict(const Profile& profile, const std::string& model_name, const std::string& dtype,
                   double weight_bytes_per_token, double flops_per_token) {
  Prediction p;
  p.model = model_name;
  p.dtype = dtype;
  p.weight_bytes_per_token = weight_bytes_per_token;
  p.flops_per_token = flops_per_token;
  const Figure* mem = &profile.memory.read_gb_per_s.threads_all;
  if (!mem->available()) mem = &profile.memory.triad_gb_per_s.threads_all;
  const Figure* gemv = threads_all(profile.compute.gemv_gflops, dtype);
  const Figure* gemm = threads_all(profile.compute.gemm_gflops, dtype);
  const bool have_mem = mem->available() && *mem->value > 0;
  const bool have_gemv = gemv != nullptr && gemv->available() && *gemv->value > 0;
  const bool have_gemm = gemm != nullptr && gemm->available() && *gemm->value > 0;

  if (have_mem && have_gemv) {
    const RooflineResult r = roofline({weight_bytes_per_token, flops_per_token, *mem->value,
                                       *gemv->value, have_gemm ? *gemm->value : 1.0});
    p.decode_bound = r.decode_memory_bound ? "memory" : "compute";
    p.decode_tok_per_s = derived_figure(
        r.decode_tok_per_s, "tok/s",
        "min(" + fmt(*mem->value) + " GB/s / " + fmt(weight_bytes_per_token) + " B, " +
            fmt(*gemv->value) + " GFLOP/s / " + fmt(flops_per_token) + " FLOP) per token");
  } else {
    p.decode_tok_per_s = have_mem ? missing("tok/s", gemv, dtype + " gemv threads_all figure")
                                  : missing("tok/s", mem, "memory bandwidth figure");
  }
  if (have_gemm) {
    p.prefill_tok_per_s = derived_figure(
        *gemm->value * 1e9 / flops_per_token, "tok/s",
        fmt(*gemm->value) + " GFLOP/s / " + fmt(flops_per_token) + " FLOP per token");
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
