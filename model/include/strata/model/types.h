// Tensor element types as GGUF/ggml number them, their block layouts, and bit-exact
// quantize/dequantize as ggml's reference code defines them.
//
// Thread-safety: every function here is pure and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace strata::model {

// Values are ggml's type ids, as stored in GGUF tensor infos.
enum class DType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ8_0 = 8,
  kBF16 = 30,
};

inline constexpr int kQK = 32;  // elements per Q4_0 / Q8_0 block

// ggml's block_q8_0: scale d (IEEE half) then 32 signed 8-bit quants; 34 bytes.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};
// ggml's block_q4_0: scale d (IEEE half) then 16 bytes holding 32 4-bit quants:
// element j (j < 16) in the low nibble of qs[j], element j + 16 in the high nibble; value
// = (nibble - 8) * d. 18 bytes.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4_0) == 18);

// Returns the ggml name ("f32", "q4_0", ...) or nullopt for an id strata does not support.
std::optional<std::string_view> dtype_name(uint32_t ggml_type_id);
// Parses "f32", "f16", "bf16", "q8_0", "q4_0" (case-insensitive); nullopt otherwise.
std::optional<DType> parse_dtype(std::string_view name);
// True for the ids in DType.
bool dtype_supported(uint32_t ggml_type_id);

// Elements per block (1 for float types, 32 for Q4_0/Q8_0) and bytes per block.
int64_t dtype_block_elems(DType t);
int64_t dtype_block_bytes(DType t);
// Bytes of a row of `n` elements; `n` must be a multiple of dtype_block_elems (checked).
int64_t row_bytes(DType t, int64_t n);

// IEEE half <-> float, round to nearest even, as ggml's GGML_FP32_TO_FP16 (F16C semantics).
uint16_t fp32_to_fp16(float f);
float fp16_to_fp32(uint16_t h);
// bfloat16 <-> float as ggml's GGML_FP32_TO_BF16: round to nearest even, NaN kept quiet.
uint16_t fp32_to_bf16(float f);
float bf16_to_fp32(uint16_t h);

// Bit-exact ggml reference quantization of `n` floats (n a multiple of the block size) into
// `dst`, which must hold row_bytes(t, n) bytes. For kF32 it copies.
void quantize_row(DType t, const float* src, void* dst, int64_t n);
// Inverse of quantize_row: `n` floats out of row_bytes(t, n) bytes at `src`.
void dequantize_row(DType t, const void* src, float* dst, int64_t n);

}  // namespace strata::model
