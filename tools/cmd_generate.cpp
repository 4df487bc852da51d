// strata generate: single-process generation, the reference the distributed run matches. With
// --mem-budget the weights that do not fit stream from flash (model/weight_store.h).
#include <cinttypes>
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "prompt_args.h"
#include "storage_profile.h"
#include "strata/base/io.h"
#include "strata/model/engine.h"
#include "strata/model/model.h"
#include "strata/model/weight_store.h"

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
  // Streaming (--mem-budget).
  std::string mem_budget;
  std::string reader = "pread";
  std::string chunk;
  std::string unit;
  int io_depth = 0;
  int lookahead = -1;
  std::string profile;
  std::string sparse = "auto";
  int window = 4;
  bool no_mlock = false;
  bool no_direct_io = false;
};

Result<model::StreamOptions> stream_options(const GenerateArgs& a) {
  model::StreamOptions so;
  STRATA_ASSIGN_OR_RETURN(so.mem_budget_bytes, parse_bytes(a.mem_budget));
  so.reader = *model::parse_reader_kind(a.reader);
  if (!a.chunk.empty()) {
    STRATA_ASSIGN_OR_RETURN(so.chunk_bytes, parse_bytes(a.chunk));
  }
  if (!a.unit.empty()) {
    STRATA_ASSIGN_OR_RETURN(so.unit_bytes, parse_bytes(a.unit));
  }
  so.io_depth = a.io_depth;
  so.lookahead = a.lookahead;
  if (!a.profile.empty()) {
    STRATA_ASSIGN_OR_RETURN(so.storage_seq_read_mb_per_s, read_storage_profile(a.profile));
  }
  so.sparse = a.sparse == "on"    ? model::SparseMode::kOn
              : a.sparse == "off" ? model::SparseMode::kOff
                                  : model::SparseMode::kAuto;
  so.window_tokens = a.window;
  so.lock_resident = !a.no_mlock;
  so.direct_io = !a.no_direct_io;
  return so;
}

std::string layer_list(const std::vector<int64_t>& layers) {
  std::string s;
  for (int64_t l : layers) s += (s.empty() ? "" : ",") + std::to_string(l);
  return s.empty() ? "none" : s;
}

std::string mb(int64_t bytes) { return format_bytes(static_cast<double>(bytes)); }

// What stays and what streams, before the run (stderr).
void print_stream_plan(const model::StreamingWeights& sw, int64_t budget) {
  const model::StreamPlan& p = sw.plan();
  std::string pinned;
  for (const std::string& t : p.pinned_tensors) pinned += (pinned.empty() ? "" : ", ") + t;
  std::fprintf(stderr, "weights: budget %s; resident %s = pinned %s (%s)", mb(budget).c_str(),
               mb(p.resident_bytes).c_str(), mb(p.pinned_bytes).c_str(),
               pinned.empty() ? "none" : pinned.c_str());
  if (p.embedding_rows) {
    std::fprintf(stderr, " + embedding row buffer %s (token_embd rows read on demand)",
                 mb(p.embedding_buffer_bytes).c_str());
  }
  if (p.norm_bytes > 0) std::fprintf(stderr, " + norms %s", mb(p.norm_bytes).c_str());
  if (p.n_units > 0) {
    std::fprintf(
        stderr, " + %" PRId64 " of %" PRId64 " units of <= %s (%s: whole layers %s, part of %s)",
        p.n_resident_units, p.n_units, mb(p.unit_bytes).c_str(), mb(p.resident_layer_bytes).c_str(),
        layer_list(p.resident_layers).c_str(), layer_list(p.partly_resident_layers).c_str());
  } else {
    std::fprintf(stderr, " + %zu of %" PRId64 " layers %s (%s)", p.resident_layers.size(),
                 p.n_layers, layer_list(p.resident_layers).c_str(),
                 mb(p.resident_layer_bytes).c_str());
  }
  if (p.streamed_layers.empty()) {
    std::fprintf(stderr, "; nothing streams\n");
    return;
  }
  std::fprintf(stderr, " + read ring %s (%d buffers, lookahead %d)", mb(p.ring_bytes).c_str(),
               p.lookahead + 1, p.lookahead);
  if (p.sparse) {
    std::fprintf(stderr, " + gates %s + FFN buffers %s + window %s",
                 mb(p.sparse_gate_bytes).c_str(), mb(p.sparse_buffer_bytes).c_str(),
                 mb(p.window_bytes).c_str());
  }
  std::fprintf(stderr, "\nstreamed: %s of %zu layers %s, %s per token%s\n",
               p.n_units > 0 ? "units" : "all", p.streamed_layers.size(),
               layer_list(p.streamed_layers).c_str(), mb(p.streamed_bytes_per_token).c_str(),
               p.sparse ? " at most (sparse FFN: only bundles of active neurons are read)" : "");
  std::fprintf(stderr,
               "reader: %s, %s, %d reads of %s in flight (chunk: %s), %s layout (%" PRId64
               " read(s) per layer)%s\n",
               model::reader_kind_name(sw.reader()),
               sw.direct_io() ? "O_DIRECT" : "buffered (no O_DIRECT)", p.io_depth,
               mb(p.chunk_bytes).c_str(), p.chunk_source.c_str(),
               p.repacked ? "repacked" : "per-tensor", p.reads_per_layer,
               sw.resident_locked() ? ", resident set mlocked" : "");
  for (const std::string& n : p.notes) std::fprintf(stderr, "note: %s\n", n.c_str());
  for (const std::string& n : sw.notes()) std::fprintf(stderr, "note: %s\n", n.c_str());
}

nlohmann::json stream_json(const model::StreamingWeights& sw, int64_t budget,
                           const model::StreamStats& st, double decode_s) {
  const model::StreamPlan& p = sw.plan();
  const double steps = static_cast<double>(std::max<int64_t>(1, st.forward_calls));
  nlohmann::json j;
  j["mem_budget_bytes"] = budget;
  j["resident_bytes"] = p.resident_bytes;
  j["pinned_bytes"] = p.pinned_bytes;
  j["pinned_tensors"] = p.pinned_tensors;
  j["resident_layers"] = p.resident_layers;
  j["streamed_layers"] = p.streamed_layers;
  j["partly_resident_layers"] = p.partly_resident_layers;
  j["embedding_rows"] = p.embedding_rows;
  j["embedding_buffer_bytes"] = p.embedding_buffer_bytes;
  j["embedding_bytes_read"] = st.embedding_bytes_read;
  j["embedding_wait_s"] = st.embedding_wait_s;
  j["norm_bytes"] = p.norm_bytes;
  j["unit_bytes"] = p.unit_bytes;
  j["units"] = p.n_units;
  j["resident_units"] = p.n_resident_units;
  j["resident_layer_bytes"] = p.resident_layer_bytes;
  j["ring_bytes"] = p.ring_bytes;
  j["lookahead"] = p.lookahead;
  j["planned_streamed_bytes_per_token"] = p.streamed_bytes_per_token;
  j["streamed_bytes_per_token"] = static_cast<double>(st.bytes_used) / steps;
  j["bytes_read"] = st.bytes_read;
  j["storage_mb_per_s"] =
      st.read_busy_s > 0 ? static_cast<double>(st.bytes_read) / st.read_busy_s / 1e6 : 0.0;
  j["effective_mb_per_s"] =
      decode_s > 0 ? static_cast<double>(st.bytes_read) / decode_s / 1e6 : 0.0;
  j["read_busy_s"] = st.read_busy_s;
  j["wait_s"] = st.wait_s;
  j["reads"] = st.reads;
  j["reader"] = model::reader_kind_name(sw.reader());
  j["direct_io"] = sw.direct_io();
  j["chunk_bytes"] = p.chunk_bytes;
  j["chunk_source"] = p.chunk_source;
  j["io_depth"] = p.io_depth;
  j["repacked"] = p.repacked;
  j["reads_per_layer"] = p.reads_per_layer;
  j["resident_locked"] = sw.resident_locked();
  j["sparse"] = p.sparse;
  if (p.sparse) {
    j["sparse_gate_bytes"] = p.sparse_gate_bytes;
    j["sparse_buffer_bytes"] = p.sparse_buffer_bytes;
    j["window_bytes"] = p.window_bytes;
    j["bundle_bytes"] = p.bundle_bytes;
    j["bundles_needed_fraction"] = st.bundles_total > 0 ? static_cast<double>(st.bundles_needed) /
                                                              static_cast<double>(st.bundles_total)
                                                        : 0.0;
    j["bundles_cached_fraction"] =
        st.bundles_needed > 0
            ? static_cast<double>(st.bundles_cached) / static_cast<double>(st.bundles_needed)
            : 0.0;
  }
  std::vector<std::string> notes = p.notes;
  notes.insert(notes.end(), sw.notes().begin(), sw.notes().end());
  j["notes"] = notes;
  return j;
}

Status run_generate(const GenerateArgs& a) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<model::Model> m, model::Model::load(a.model));
  const model::ModelConfig& c = m->config();
  STRATA_ASSIGN_OR_RETURN(const std::vector<int32_t> prompt, prompt_ids(a.prompt, c.vocab));
  std::unique_ptr<model::StreamingWeights> streaming;
  int64_t budget = 0;
  if (!a.mem_budget.empty()) {
    STRATA_ASSIGN_OR_RETURN(const model::StreamOptions so, stream_options(a));
    budget = so.mem_budget_bytes;
    STRATA_ASSIGN_OR_RETURN(streaming, model::StreamingWeights::open(*m, so));
    print_stream_plan(*streaming, budget);
  }
  model::EngineOptions eo;
  eo.weights = streaming.get();
  eo.n_threads = a.threads;
  eo.ctx = a.ctx > 0 ? a.ctx : static_cast<int64_t>(prompt.size()) + a.n_gen;
  eo.max_batch = 512;
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<model::Engine> engine, model::Engine::create(*m, eo));

  model::GenerateOptions go;
  go.prompt = prompt;
  go.n_gen = a.n_gen;
  go.sampler = {a.temp, a.top_k, a.top_p, a.seed};
  go.logits_top = a.logits_top;
  // The first token ends the prefill: streaming counters restart there, so that they describe
  // the decode steps.
  bool first = true;
  std::function<void(int32_t)> stream = [&](int32_t tok) {
    if (first && streaming) streaming->reset_stats();
    first = false;
    if (a.json) return;
    std::printf("%d ", tok);
    std::fflush(stdout);
  };
  if (a.warmup) {
    // One untimed pass first, as llama.cpp's benchmark does: faults the mapped weights in and
    // warms the caches, so the timed pass measures the engine, not the page cache.
    STRATA_RETURN_IF_ERROR(model::generate(*engine, go, {}).status());
  }
  first = true;
  STRATA_ASSIGN_OR_RETURN(model::GenerateResult r, model::generate(*engine, go, stream));
  const model::StreamStats st = streaming ? streaming->stats() : model::StreamStats{};
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
    if (streaming) j["streaming"] = stream_json(*streaming, budget, st, r.decode_s);
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
  if (streaming && st.forward_calls > 0 && !streaming->plan().streamed_layers.empty()) {
    const nlohmann::json j = stream_json(*streaming, budget, st, r.decode_s);
    std::fprintf(stderr,
                 "streamed %s per decode step (%s over %lld steps): storage %.0f MB/s while "
                 "reading, %.0f MB/s over the decode; the engine waited %.2f s of %.2f s\n",
                 mb(static_cast<int64_t>(j["streamed_bytes_per_token"].get<double>())).c_str(),
                 mb(st.bytes_used).c_str(), static_cast<long long>(st.forward_calls),
                 j["storage_mb_per_s"].get<double>(), j["effective_mb_per_s"].get<double>(),
                 st.wait_s, r.decode_s);
    if (streaming->plan().embedding_rows) {
      std::fprintf(stderr, "embedding rows: %s read on demand in %.3f s (of the wait)\n",
                   mb(st.embedding_bytes_read).c_str(), st.embedding_wait_s);
    }
    if (streaming->plan().sparse) {
      std::fprintf(stderr,
                   "sparse FFN: %.1f%% of bundles needed, %.1f%% of those from the window\n",
                   100.0 * j["bundles_needed_fraction"].get<double>(),
                   100.0 * j["bundles_cached_fraction"].get<double>());
    }
  }
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
  cmd->add_option("--mem-budget", a->mem_budget,
                  "Bytes of weights to hold in memory (512M, 2G, ...): the rest streams from "
                  "flash with O_DIRECT");
  cmd->add_option("--reader", a->reader,
                  "Streaming reads: pread (a thread per read in flight) or uring (io_uring)")
      ->default_val("pread")
      ->check(CLI::IsMember({"pread", "uring"}));
  cmd->add_option("--chunk", a->chunk,
                  "Streaming read size (multiple of 4K; default from --profile, else 4M)");
  cmd->add_option("--unit", a->unit,
                  "Streaming unit: layers are read and kept in pieces of at most this size "
                  "(default: half the smallest read size --profile rates within 10% of the "
                  "best, else 2M)");
  cmd->add_option("--io-depth", a->io_depth, "Streaming reads in flight (default 4)")
      ->check(CLI::Range(1, 256));
  cmd->add_option("--lookahead", a->lookahead,
                  "Read buffers (one unit each) ahead of compute (default: enough for "
                  "--io-depth reads in flight and half as many queued, fewer when the budget "
                  "cannot hold them)")
      ->check(CLI::Range(0, 8));
  cmd->add_option("--profile", a->profile,
                  "Device profile JSON: storage.seq_read_mb_per_s picks the chunk size")
      ->check(CLI::ExistingFile);
  cmd->add_option("--sparse-ffn", a->sparse,
                  "Sparse FFN loading for ReLU models with bundles: auto, on, off")
      ->default_val("auto")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  cmd->add_option("--window", a->window,
                  "Sparse FFN: keep bundles used in the last N tokens (as the budget allows)")
      ->default_val(4)
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_flag("--no-mlock", a->no_mlock, "Do not mlock the resident set and read buffers");
  cmd->add_flag("--no-direct-io", a->no_direct_io,
                "Buffered streaming reads, dropped from the page cache after use (as where the "
                "filesystem refuses O_DIRECT)");
  cmd->add_flag("--warmup", a->warmup,
                "Run the whole generation once untimed before the timed run");
  cmd->add_flag(
      "--json", a->json,
      "Print one JSON object: tokens, top_logits, prefill_tps, decode_tps, peak_rss_bytes, "
      "and with --mem-budget a \"streaming\" object (resident_bytes, "
      "streamed_bytes_per_token, storage_mb_per_s, reader, direct_io, ...)");
  cmd->callback([a, &action] { action = [a] { return run_generate(*a); }; });
}

}  // namespace strata::tools
