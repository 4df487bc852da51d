// Writes the seed corpus of gguf_fuzz into a folder: tiny synthesized llama models of each
// weight type (tied and untied) and a file holding every metadata value and tensor type.
// Generated at fuzz time so that no binary seeds live in the repository.
#include <cstdio>
#include <string>
#include <vector>

#include "strata/model/gguf.h"
#include "strata/model/model.h"

using namespace strata::model;  // NOLINT: a small program

namespace {

int fail(const strata::Status& s) {
  std::fprintf(stderr, "gguf_fuzz_seeds: %s\n", s.message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: gguf_fuzz_seeds OUTDIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  int n = 0;
  for (DType type : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0}) {
    for (bool tied : {true, false}) {
      SynthSpec s;
      s.dim = 32;
      s.n_layers = 1;
      s.n_heads = 2;
      s.n_kv_heads = 1;
      s.ffn_dim = 32;
      s.vocab = 260;
      s.type = type;
      s.tied_embeddings = tied;
      const std::string path = dir + "/llama_" +
                               std::string(*dtype_name(static_cast<uint32_t>(type))) +
                               (tied ? "_tied" : "") + ".gguf";
      if (const strata::Status st = synth_model(s, path, {}); !st.ok()) return fail(st);
      ++n;
    }
  }
  // Small llamas without a tokenizer (vocab from token_embd): fast to fuzz.
  for (DType type : {DType::kF32, DType::kQ4_0}) {
    GgufWriter t;
    t.set_string("general.architecture", "llama");
    t.set_u32("llama.context_length", 16);
    t.set_u32("llama.embedding_length", 32);
    t.set_u32("llama.block_count", 1);
    t.set_u32("llama.feed_forward_length", 32);
    t.set_u32("llama.attention.head_count", 2);
    t.set_u32("llama.attention.head_count_kv", 1);
    auto add = [&](const std::string& name, DType ty, std::vector<int64_t> dims) {
      const int64_t rows = dims.size() > 1 ? dims[1] : 1;
      t.add_tensor(name, ty, dims,
                   std::vector<uint8_t>(static_cast<size_t>(row_bytes(ty, dims[0]) * rows), 0x3c));
    };
    add("token_embd.weight", type, {32, 4});
    add("blk.0.attn_norm.weight", DType::kF32, {32});
    add("blk.0.attn_q.weight", type, {32, 32});
    add("blk.0.attn_k.weight", type, {32, 16});
    add("blk.0.attn_v.weight", type, {32, 16});
    add("blk.0.attn_output.weight", type, {32, 32});
    add("blk.0.ffn_norm.weight", DType::kF32, {32});
    add("blk.0.ffn_gate.weight", type, {32, 32});
    add("blk.0.ffn_up.weight", type, {32, 32});
    add("blk.0.ffn_down.weight", type, {32, 32});
    add("output_norm.weight", DType::kF32, {32});
    const std::string path =
        dir + "/small_llama_" + std::string(*dtype_name(static_cast<uint32_t>(type))) + ".gguf";
    if (const strata::Status st = t.write(path); !st.ok()) return fail(st);
    ++n;
  }

  GgufWriter w;
  w.set_alignment(64);
  w.set("u8", GgufValue{GgufType::kU8, GgufType::kU32, uint64_t{7}});
  w.set("i16", GgufValue{GgufType::kI16, GgufType::kU32, int64_t{-7}});
  w.set("u64", GgufValue{GgufType::kU64, GgufType::kU32, uint64_t{1} << 40});
  w.set("f64", GgufValue{GgufType::kF64, GgufType::kU32, 0.5});
  w.set_f32("f32", 0.25f);
  w.set_bool("bool", true);
  w.set_string("general.architecture", "llama");
  w.set_string_array("strings", {"a", "bc"});
  w.set_i32_array("i32s", {1, -2});
  w.set_f32_array("f32s", {1.5f});
  w.set("bools", GgufValue{GgufType::kArray, GgufType::kBool, std::vector<bool>{true, false}});
  w.add_tensor("f32", DType::kF32, {2, 2}, std::vector<uint8_t>(16, 1));
  w.add_tensor("f16", DType::kF16, {3}, std::vector<uint8_t>(6, 2));
  w.add_tensor("bf16", DType::kBF16, {1, 1, 1, 2}, std::vector<uint8_t>(4, 3));
  w.add_tensor("q8_0", DType::kQ8_0, {32}, std::vector<uint8_t>(34, 4));
  w.add_tensor("q4_0", DType::kQ4_0, {32, 2}, std::vector<uint8_t>(36, 5));
  if (const strata::Status st = w.write(dir + "/every_type.gguf"); !st.ok()) return fail(st);
  ++n;
  std::printf("gguf_fuzz_seeds: wrote %d seeds to %s\n", n, dir.c_str());
  return 0;
}
