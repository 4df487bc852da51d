// The roofline the planner uses, from a profile's measured figures and a model's cost:
//   decode tok/s  = min(memory bandwidth / weight bytes read per token,
//                       GEMV GFLOP/s / FLOPs per token)
//   prefill tok/s = GEMM GFLOP/s / FLOPs per token
// with the figures of the model's main weight type and all threads.
#pragma once

#include <string>

#include "strata/base/status.h"
#include "strata/profiles/profile.h"

namespace strata::profiles {

struct RooflineInput {
  double weight_bytes_per_token = 0;
  double flops_per_token = 0;
  double mem_gb_per_s = 0;
  double gemv_gflops = 0;
  double gemm_gflops = 0;
};

struct RooflineResult {
  double decode_tok_per_s = 0;
  double prefill_tok_per_s = 0;
  bool decode_memory_bound = false;
};

// All inputs must be > 0 (checked). Pure.
RooflineResult roofline(const RooflineInput& in);

// The prediction for a model of `dtype` (its main weight type, "q4_0") with the given cost
// per token, from `profile`: memory.read_gb_per_s.threads_all (else triad), the dtype's
// gemv/gemm threads_all figures, and power.load_watts for joules per token. A figure the
// profile lacks makes the predictions that need it unavailable with its reason. Never fails.
Prediction predict(const Profile& profile, const std::string& model_name, const std::string& dtype,
                   double weight_bytes_per_token, double flops_per_token);

// predict() for a GGUF file, its cost taken from strata::model::model_cost. Errors: the
// model loader's (kNotFound, kCorrupt, kUnsupported naming the file).
Result<Prediction> predict_for_model(const Profile& profile, const std::string& gguf_path);

}  // namespace strata::profiles
