#include <algorithm>
#include <string>

#include "strata/base/io.h"
#include "strata/model/engine.h"

namespace strata::model {

Result<GenerateResult> generate(Engine& engine, const GenerateOptions& options,
                                const std::function<void(int32_t)>& on_token) {
  const ModelConfig& c = engine.config();
  STRATA_CHECK_MSG(engine.layer_begin() == 0 && engine.layer_end() == c.n_layers,
                   "generate() needs an engine holding every layer");
  const auto n_prompt = static_cast<int64_t>(options.prompt.size());
  if (n_prompt == 0) return invalid_argument("the prompt is empty");
  if (options.n_gen < 1) return invalid_argument("-n must be at least 1");
  if (n_prompt + options.n_gen - 1 > engine.ctx()) {
    return invalid_argument("prompt (" + std::to_string(n_prompt) + ") plus " +
                            std::to_string(options.n_gen) + " new tokens exceeds the context of " +
                            std::to_string(engine.ctx()));
  }
  engine.reset_sequence(options.seq);
  Sampler sampler(options.sampler);
  GenerateResult out;
  std::vector<float> hidden;
  std::vector<float> logits(static_cast<size_t>(c.vocab));
  std::vector<TokenSlot> slots;

  // Prefill in chunks of at most 512 tokens (one chunk for the usual prompt).
  const int64_t chunk = 512;
  const double t0 = now_s();
  for (int64_t b = 0; b < n_prompt; b += chunk) {
    const int64_t e = std::min(n_prompt, b + chunk);
    hidden.resize(static_cast<size_t>((e - b) * c.dim));
    slots.clear();
    for (int64_t i = b; i < e; ++i) slots.push_back({options.seq, static_cast<int32_t>(i)});
    STRATA_RETURN_IF_ERROR(engine.embed(
        std::span<const int32_t>(options.prompt.data() + b, static_cast<size_t>(e - b)),
        hidden.data()));
    STRATA_RETURN_IF_ERROR(engine.forward(slots, hidden.data()));
    if (e == n_prompt) engine.head(hidden.data() + (e - b - 1) * c.dim, 1, logits.data());
  }
  int32_t tok = sampler.sample(logits);
  out.prefill_s = now_s() - t0;
  out.prompt_logits = logits;
  if (options.logits_top > 0) out.top_logits = top_logits(logits, options.logits_top);
  out.tokens.push_back(tok);
  if (on_token) on_token(tok);

  hidden.resize(static_cast<size_t>(c.dim));
  const double t1 = now_s();
  for (int64_t step = 1; step < options.n_gen; ++step) {
    if (options.stop_at_eos && tok == static_cast<int32_t>(c.eos_id)) break;
    const TokenSlot slot{options.seq, static_cast<int32_t>(n_prompt + step - 1)};
    STRATA_RETURN_IF_ERROR(engine.embed(std::span<const int32_t>(&tok, 1), hidden.data()));
    STRATA_RETURN_IF_ERROR(engine.forward(std::span<const TokenSlot>(&slot, 1), hidden.data()));
    engine.head(hidden.data(), 1, logits.data());
    tok = sampler.sample(logits);
    out.tokens.push_back(tok);
    ++out.n_decode_steps;
    if (on_token) on_token(tok);
  }
  out.decode_s = now_s() - t1;
  out.last_logits = std::move(logits);
  return out;
}

}  // namespace strata::model
