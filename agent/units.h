// Plan units to model parts. A plan (docs/COST_MODEL.md) cuts the layer table of a Llama model
// into unit ranges: unit 0 is the token embedding, units 1..L the blocks, unit L+1 the head.
#pragma once

#include <cstdint>
#include <string>

#include "strata/base/status.h"

namespace strata::agent {

struct UnitRange {
  int64_t block_begin = 0;
  int64_t block_end = 0;
  bool embedding = false;
  bool head = false;
};

// Units [unit_begin, unit_end) of a model with `n_layers` blocks. kInvalidArgument for an
// empty or out-of-range span.
inline Result<UnitRange> unit_range(int64_t unit_begin, int64_t unit_end, int64_t n_layers) {
  if (unit_begin < 0 || unit_begin >= unit_end || unit_end > n_layers + 2) {
    return invalid_argument("units [" + std::to_string(unit_begin) + ", " +
                            std::to_string(unit_end) + ") are not a span of the model's " +
                            std::to_string(n_layers + 2) + " units");
  }
  UnitRange r;
  r.embedding = unit_begin == 0;
  r.head = unit_end == n_layers + 2;
  r.block_begin = unit_begin == 0 ? 0 : unit_begin - 1;
  r.block_end = unit_end > n_layers ? n_layers : unit_end - 1;
  if (r.block_begin > r.block_end) r.block_begin = r.block_end;
  return r;
}

}  // namespace strata::agent
