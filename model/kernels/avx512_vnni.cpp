// AVX-512 kernels using VNNI's vpdpbusd for the Q4_0/Q8_0 block dots; compiled with
// -mavx512vnni, so only reached through avx512_ops(true) on CPUs that report AVX512_VNNI.
#define STRATA_AVX512_VNNI 1
#include "kernels/avx512_impl.h"

namespace strata::model::kernels {

const IsaOps* avx512_vnni_ops() {
  static const IsaOps ops{Isa::kAvx512, "avx512-vnni", act_stride_bytes, convert, rows};
  return &ops;
}

}  // namespace strata::model::kernels
