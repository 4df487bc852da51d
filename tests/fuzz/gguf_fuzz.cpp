// libFuzzer target for the GGUF reader and the llama loader: any byte string must give either
// a valid file or one error naming the file — never a crash, a leak, undefined behaviour or a
// read outside the input (libFuzzer hands over an exact-size heap copy, so ASan sees overruns).
// A file that parses is also written back with GgufWriter and parsed again: the writer and the
// reader must agree.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "strata/model/gguf.h"
#include "strata/model/model.h"

namespace {

using strata::model::DType;
using strata::model::GgufFile;
using strata::model::GgufWriter;

constexpr char kName[] = "fuzz.gguf";

uint8_t touch(const void* p, int64_t n) {
  if (n <= 0) return 0;
  const auto* b = static_cast<const uint8_t*>(p);
  return static_cast<uint8_t>(b[0] ^ b[n - 1]);
}

std::vector<uint8_t> rewrite(const GgufFile& f) {
  GgufWriter w;
  for (const auto& [key, value] : f.metadata()) {
    // The writer only takes a u32 alignment; a file may hold another integer type.
    if (key != "general.alignment") w.set(key, value);
  }
  for (const auto& t : f.tensors()) {
    w.add_tensor(t.name, t.type, t.dims,
                 std::vector<uint8_t>(t.data, t.data + static_cast<size_t>(t.n_bytes)));
  }
  return w.serialize();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parsed = GgufFile::parse(data, size, kName);
  if (!parsed.ok()) {
    STRATA_CHECK(parsed.status().message().rfind(std::string(kName) + ": ", 0) == 0);
    return 0;
  }
  const GgufFile& f = **parsed;
  volatile uint8_t sink = 0;
  for (const auto& t : f.tensors()) sink = sink ^ touch(t.data, t.n_bytes);
  for (const auto& kv : f.metadata()) {
    (void)f.get_u64(kv.first).ok();
    (void)f.get_f64(kv.first).ok();
    (void)f.get_string(kv.first).ok();
    (void)f.get_bool(kv.first).ok();
    (void)f.get_string_array(kv.first).ok();
    (void)f.get_array_length(kv.first).ok();
  }

  const std::vector<uint8_t> once = rewrite(f);
  auto again = GgufFile::parse(once.data(), once.size(), kName);
  STRATA_CHECK_MSG(again.ok(), "a rewritten file does not parse: " + again.status().message());
  STRATA_CHECK_MSG(rewrite(**again) == once, "rewriting is not stable");

  auto model = strata::model::Model::from_gguf(std::move(parsed).value());
  if (!model.ok()) {
    STRATA_CHECK(model.status().message().rfind(std::string(kName) + ": ", 0) == 0);
    return 0;
  }
  const strata::model::Model& m = **model;
  for (DType kv : {DType::kF32, DType::kF16}) {
    const auto cost = strata::model::model_cost(m, kv);
    STRATA_CHECK(cost.units.size() == static_cast<size_t>(m.config().n_layers) + 2);
  }
  auto touch_view = [&](const strata::model::WeightView& w) {
    sink = sink ^ touch(w.data, w.rows * strata::model::row_bytes(w.type, w.cols));
  };
  touch_view(m.token_embd());
  touch_view(m.output());
  for (int64_t i = 0; i < m.config().n_layers; ++i) {
    const auto& l = m.layer(i);
    for (const auto* w :
         {&l.attn_q, &l.attn_k, &l.attn_v, &l.attn_o, &l.ffn_gate, &l.ffn_up, &l.ffn_down}) {
      touch_view(*w);
    }
    sink = sink ^ touch(l.attn_norm, m.config().dim * 4) ^ touch(l.ffn_norm, m.config().dim * 4);
  }
  sink = sink ^ touch(m.output_norm(), m.config().dim * 4);
  return 0;
}
