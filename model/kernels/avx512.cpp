// AVX-512 (F, BW, VL, DQ) kernels: the shared body in avx512_impl.h without VNNI, plus the
// table that picks the VNNI build of the same body when the CPU has it.
#define STRATA_AVX512_VNNI 0
#include "kernels/avx512_impl.h"

namespace strata::model::kernels {

const IsaOps* avx512_ops(bool vnni) {
  if (vnni) return avx512_vnni_ops();
  static const IsaOps ops{Isa::kAvx512, "avx512", act_stride_bytes, convert, rows};
  return &ops;
}

}  // namespace strata::model::kernels
