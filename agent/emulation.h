// Device emulation: an agent on a fast machine paces itself to behave like a slower reference
// device, so one machine can reproduce a heterogeneous testbed. Compute is scaled by the ratio
// of this machine's measured figure to the reference's: decode-like steps (few tokens, bound
// by reading weights) by memory read bandwidth, prefill-like steps (many tokens, bound by
// arithmetic) by GEMM GFLOP/s. Memory is capped at the reference's available memory.
#pragma once

#include <cstdint>
#include <string>

#include "strata/base/status.h"

namespace strata::agent {

struct Pace {
  double decode_factor = 1.0;   // reference step time / this machine's, for decode steps
  double prefill_factor = 1.0;  // the same for prefill steps
  int64_t mem_cap_bytes = 0;    // 0 = no cap
  std::string reference_name;
  std::string note;  // what the factors came from, for logs
};

// Reads both profiles (docs/PROFILE_SCHEMA.md) and derives the factors for weights of type
// `dtype` ("q4_0", ...; the GEMM figure of that type, falling back to f32). Factors below 1
// (a reference faster than this machine) cannot be emulated and are clamped to 1, said in
// `note`. Errors name the file and the missing figure.
// `n_threads` is the agent's thread count: this machine's 1-thread figures are used for a
// 1-thread agent, its all-thread figures otherwise (the reference always at all threads).
Result<Pace> load_pace(const std::string& local_profile, const std::string& reference_profile,
                       const std::string& dtype, int n_threads);

// Steps with at most this many tokens are paced as decode steps.
inline constexpr uint32_t kDecodeLikeTokens = 8;

}  // namespace strata::agent
