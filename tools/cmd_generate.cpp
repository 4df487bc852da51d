// strata generate: single-process generation, the reference the distributed run matches.
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "prompt_args.h"
#include "strata/base/io.h"
#include "strata/model/engine.h"
#include "strata/model/model.h"

namespace strata::tools {
namespace {

struct GenerateArgs {
  std::string model;
  PromptArgs prompt;
  int64_t n_gen = 16;
  int threads = 1;
  float temp = 0.0f;
  int top_k = 0;
  float top_p = 1.0f;
  uint64_t seed = 0;
  int logits_top = 0;
  int64_t ctx = 0;
  bool json = false;
  bool warmup = false;
};

Status run_generate(const GenerateArgs& a) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<model::Model> m, model::Model::load(a.model));
  const model::ModelConfig& c = m->config();
  STRATA_ASSIGN_OR_RETURN(const std::vector<int32_t> prompt, prompt_ids(a.prompt, c.vocab));
  model::EngineOptions eo;
  eo.n_threads = a.threads;
  eo.ctx = a.ctx > 0 ? a.ctx : static_cast<int64_t>(prompt.size()) + a.n_gen;
  eo.max_batch = 512;
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<model::Engine> engine, model::Engine::create(*m, eo));

  model::GenerateOptions go;
  go.prompt = prompt;
  go.n_gen = a.n_gen;
  go.sampler = {a.temp, a.top_k, a.top_p, a.seed};
  go.logits_top = a.logits_top;
  std::function<void(int32_t)> stream;
  if (!a.json) {
    stream = [](int32_t tok) {
      std::printf("%d ", tok);
      std::fflush(stdout);
    };
  }
  if (a.warmup) {
    // One untimed pass first, as llama.cpp's benchmark does: faults the mapped weights in and
    // warms the caches, so the timed pass measures the engine, not the page cache.
    STRATA_RETURN_IF_ERROR(model::generate(*engine, go, {}).status());
  }
  STRATA_ASSIGN_OR_RETURN(model::GenerateResult r, model::generate(*engine, go, stream));
  const double prefill_tps = static_cast<double>(prompt.size()) / r.prefill_s;
  const double decode_tps =
      r.n_decode_steps > 0 ? static_cast<double>(r.n_decode_steps) / r.decode_s : 0.0;
  if (a.json) {
    nlohmann::json j;
    j["model"] = a.model;
    j["isa"] = model::isa_name(model::active_isa());
    j["threads"] = a.threads;
    j["prompt_tokens"] = prompt.size();
    j["tokens"] = r.tokens;
    nlohmann::json top = nlohmann::json::array();
    for (const auto& [id, v] : r.top_logits) top.push_back({id, v});
    j["top_logits"] = top;
    j["prefill_s"] = r.prefill_s;
    j["decode_s"] = r.decode_s;
    j["decode_steps"] = r.n_decode_steps;
    j["prefill_tps"] = prefill_tps;
    j["decode_tps"] = decode_tps;
    j["peak_rss_bytes"] = peak_rss_bytes();
    j["weight_bytes"] = m->file().file_bytes() - m->file().data_offset();
    j["kv_cache_bytes"] = engine->kv_cache_bytes();
    std::printf("%s\n", j.dump().c_str());
    return {};
  }
  std::printf("\n");
  for (const auto& [id, v] : r.top_logits)
    std::printf("top logit %d %.6f\n", id, static_cast<double>(v));
  std::fprintf(stderr,
               "prompt %zu tokens: %.1f tok/s prefill; %lld decode steps: %.2f tok/s; peak RSS %s "
               "(%s, %d threads)\n",
               prompt.size(), prefill_tps, static_cast<long long>(r.n_decode_steps), decode_tps,
               format_bytes(static_cast<double>(peak_rss_bytes())).c_str(),
               model::isa_name(model::active_isa()), a.threads);
  return {};
}

}  // namespace

void add_generate_command(CLI::App& root, Action& action) {
  auto a = std::make_shared<GenerateArgs>();
  CLI::App* cmd =
      root.add_subcommand("generate", "Generate tokens with the whole model in this process");
  cmd->add_option("--model,-m", a->model, "GGUF model file")->required()->check(CLI::ExistingFile);
  add_prompt_options(cmd, &a->prompt);
  cmd->add_option("-n,--n-gen", a->n_gen,
                  "New tokens to generate (the first comes from the prompt)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--threads,-t", a->threads, "Worker threads")->check(CLI::Range(1, 1024));
  cmd->add_option("--temp", a->temp, "Sampling temperature; 0 = greedy")
      ->check(CLI::Range(0.0f, 100.0f));
  cmd->add_option("--top-k", a->top_k, "Keep the K most likely tokens (0 = all)")
      ->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--top-p", a->top_p, "Nucleus sampling mass")->check(CLI::Range(0.0f, 1.0f));
  cmd->add_option("--seed", a->seed, "Sampler seed");
  cmd->add_option("--logits-top", a->logits_top, "Report the top-K raw logits after the prompt")
      ->check(CLI::Range(0, 1000));
  cmd->add_option("--ctx", a->ctx, "KV cache positions (default: prompt + n)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cmd->add_flag("--warmup", a->warmup,
                "Run the whole generation once untimed before the timed run");
  cmd->add_flag(
      "--json", a->json,
      "Print one JSON object: tokens, top_logits, prefill_tps, decode_tps, peak_rss_bytes");
  cmd->callback([a, &action] { action = [a] { return run_generate(*a); }; });
}

}  // namespace strata::tools
