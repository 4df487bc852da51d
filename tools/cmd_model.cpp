// `strata model synth`, `strata model info` and `strata model repack`: write a llama-shaped
// GGUF with random weights, show a GGUF model's shape and the per-unit cost table the
// partitioner plans with, and rewrite a GGUF in the layout the weight store streams from.
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "commands.h"
#include "strata/base/io.h"
#include "strata/model/model.h"
#include "strata/model/weight_store.h"

namespace strata::tools {
namespace {

using model::DType;

std::string with_commas(int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) {
    digits.insert(static_cast<size_t>(i), ",");
  }
  return v < 0 ? "-" + digits : digits;
}

const char* type_name(DType t) { return model::dtype_name(static_cast<uint32_t>(t))->data(); }

// Reports progress on stderr: in place on a terminal, else one line per 10% for big files.
class Progress {
 public:
  explicit Progress(std::string path) : path_(std::move(path)), tty_(::isatty(2) != 0) {}
  ~Progress() {
    if (tty_ && printed_) std::fprintf(stderr, "\n");
  }
  void operator()(int64_t done, int64_t total) {
    constexpr int64_t kBigBytes = int64_t{64} << 20;
    if (total <= 0 || (!tty_ && total <= kBigBytes)) return;
    const int percent = static_cast<int>(done * 100 / total);
    const int step = tty_ ? 1 : 10;
    if (printed_ && percent / step == last_percent_ / step) return;
    last_percent_ = percent;
    printed_ = true;
    std::fprintf(stderr, "%swriting %s: %3d%% (%.1f of %.1f MB)%s", tty_ ? "\r" : "", path_.c_str(),
                 percent, static_cast<double>(done) / 1e6, static_cast<double>(total) / 1e6,
                 tty_ ? "" : "\n");
    std::fflush(stderr);
  }

 private:
  std::string path_;
  bool tty_;
  bool printed_ = false;
  int last_percent_ = -1;
};

struct SynthOptions {
  model::SynthSpec spec;
  std::string type;
  std::string ffn_act = "silu";
  int64_t kv_heads = 0;  // 0: same as --heads
  std::string out;
};

void add_synth(CLI::App& parent, Action& action) {
  auto o = std::make_shared<SynthOptions>();
  CLI::App* cmd =
      parent.add_subcommand("synth", "write a llama-shaped GGUF with deterministic random weights");
  cmd->footer(
      "Writes GGUF v3 with the full llama metadata and a llama (SPM) tokenizer vocabulary\n"
      "(<unk>, <s>, </s>, 256 byte tokens, then word pieces), loadable by llama.cpp unchanged.\n"
      "The same options give the same bytes. Progress goes to stderr on a terminal or for\n"
      "files over 64 MB.\n"
      "Example (the 1.1B TinyLlama shape):\n"
      "  strata model synth --dim 2048 --layers 16 --heads 32 --kv-heads 8 --ffn 8192 \\\n"
      "      --vocab 32000 --type q4_0 -o tiny.gguf");
  cmd->add_option("--arch", o->spec.arch, "architecture (only llama)")->default_val("llama");
  cmd->add_option("--dim", o->spec.dim, "embedding length")->required();
  cmd->add_option("--layers", o->spec.n_layers, "transformer blocks")->required();
  cmd->add_option("--heads", o->spec.n_heads, "attention heads")->required();
  cmd->add_option("--kv-heads", o->kv_heads,
                  "key/value heads (grouped-query attention; "
                  "default: --heads)");
  cmd->add_option("--ffn", o->spec.ffn_dim, "feed-forward hidden size")->required();
  cmd->add_option("--vocab", o->spec.vocab, "vocabulary size (at least 260)")->required();
  cmd->add_option("--type", o->type, "type of every 2-D weight; norms stay f32")
      ->required()
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0", "q4_0"}));
  cmd->add_flag("--tie-embeddings", o->spec.tied_embeddings,
                "no output.weight: the head reuses token_embd");
  cmd->add_option("--ctx", o->spec.ctx, "training context length written to the metadata")
      ->default_val(2048);
  cmd->add_option("--seed", o->spec.seed, "seed of the weights")->default_val(1);
  cmd->add_option("--ffn-act", o->ffn_act, "FFN gate activation (strata.ffn_act)")
      ->default_val("silu")
      ->check(CLI::IsMember({"silu", "relu"}));
  cmd->add_option("--name", o->spec.name, "general.name")->default_val("strata-synth");
  cmd->add_option("-o,--output", o->out, "the GGUF file to write")->required();
  cmd->callback([o, &action] {
    action = [o]() -> Status {
      model::SynthSpec spec = o->spec;
      spec.type = *model::parse_dtype(o->type);
      spec.n_kv_heads = o->kv_heads == 0 ? spec.n_heads : o->kv_heads;
      spec.ffn_act = o->ffn_act == "relu" ? model::FfnAct::kRelu : model::FfnAct::kSilu;
      STRATA_RETURN_IF_ERROR(model::validate_synth_spec(spec));
      const double t0 = now_s();
      {
        Progress progress(o->out);
        STRATA_RETURN_IF_ERROR(model::synth_model(
            spec, o->out, [&progress](int64_t done, int64_t total) { progress(done, total); }));
      }
      std::printf(
          "wrote %s: llama %s, %" PRId64 " layers, dim %" PRId64 ", vocab %" PRId64 ", in %.1f s\n",
          o->out.c_str(), o->type.c_str(), spec.n_layers, spec.dim, spec.vocab, now_s() - t0);
      return {};
    };
  });
}

nlohmann::json unit_json(const model::LayerCost& u) {
  return {{"name", u.name},
          {"weight_bytes", u.weight_bytes},
          {"weight_bytes_by_type", u.weight_bytes_by_type},
          {"weight_bytes_read_per_token", u.weight_bytes_read_per_token},
          {"flops_per_token", u.flops_per_token},
          {"attn_flops_per_token_per_ctx", u.attn_flops_per_token_per_ctx},
          {"kv_bytes_per_token", u.kv_bytes_per_token},
          {"activation_bytes_out", u.activation_bytes_out}};
}

struct TypeTotal {
  int64_t n_tensors = 0;
  int64_t bytes = 0;
};

void print_info_json(const model::Model& m, const model::ModelCost& cost, DType kv_type,
                     const std::map<std::string, TypeTotal>& types) {
  const model::ModelConfig& c = m.config();
  nlohmann::json j;
  j["file"] = m.file().path();
  j["file_bytes"] = m.file().file_bytes();
  j["gguf_version"] = m.file().version();
  j["arch"] = c.arch;
  j["name"] = c.name;
  j["config"] = {{"n_layers", c.n_layers},
                 {"dim", c.dim},
                 {"n_heads", c.n_heads},
                 {"n_kv_heads", c.n_kv_heads},
                 {"head_dim", c.head_dim},
                 {"kv_dim", c.kv_dim()},
                 {"ffn_dim", c.ffn_dim},
                 {"vocab", c.vocab},
                 {"ctx_train", c.ctx_train},
                 {"rope_dims", c.rope_dims},
                 {"rope_freq_base", c.rope_freq_base},
                 {"rms_eps", c.rms_eps},
                 {"tied_embeddings", c.tied_embeddings},
                 {"ffn_act", c.ffn_act == model::FfnAct::kRelu ? "relu" : "silu"},
                 {"main_type", type_name(c.main_type)},
                 {"bos_id", c.bos_id},
                 {"eos_id", c.eos_id}};
  nlohmann::json tj = nlohmann::json::object();
  for (const auto& [name, t] : types) tj[name] = {{"n_tensors", t.n_tensors}, {"bytes", t.bytes}};
  j["tensor_types"] = tj;
  j["total_weight_bytes"] = cost.total_weight_bytes;
  j["kv_type"] = type_name(kv_type);
  int64_t kv = 0;
  double flops = 0;
  nlohmann::json units = nlohmann::json::array();
  for (const model::LayerCost& u : cost.units) {
    kv += u.kv_bytes_per_token;
    flops += u.flops_per_token;
    units.push_back(unit_json(u));
  }
  j["kv_bytes_per_token"] = kv;
  j["flops_per_token"] = flops;
  j["units"] = units;
  std::printf("%s\n", j.dump(2).c_str());
}

void print_info_table(const model::Model& m, const model::ModelCost& cost, DType kv_type,
                      const std::map<std::string, TypeTotal>& types) {
  const model::ModelConfig& c = m.config();
  const model::GgufFile& f = m.file();
  std::printf("file      %s (GGUF v%u, %s bytes, %s)\n", f.path().c_str(), f.version(),
              with_commas(static_cast<int64_t>(f.file_bytes())).c_str(),
              format_bytes(static_cast<double>(f.file_bytes())).c_str());
  std::printf("model     %s '%s', main type %s, %s embeddings, ffn act %s\n", c.arch.c_str(),
              c.name.c_str(), type_name(c.main_type), c.tied_embeddings ? "tied" : "untied",
              c.ffn_act == model::FfnAct::kRelu ? "relu" : "silu");
  std::printf("shape     %" PRId64 " layers, dim %" PRId64 ", %" PRId64 " heads (%" PRId64
              " kv, head_dim %" PRId64 "), ffn %" PRId64 ", vocab %" PRId64 "\n",
              c.n_layers, c.dim, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim, c.vocab);
  std::printf("          ctx %" PRId64 ", rope base %g over %" PRId64
              " dims, rms eps %g, bos %u, eos %u\n",
              c.ctx_train, c.rope_freq_base, c.rope_dims, c.rms_eps, c.bos_id, c.eos_id);
  std::string type_line;
  for (const auto& [name, t] : types) {
    if (!type_line.empty()) type_line += "; ";
    type_line += name + ": " + std::to_string(t.n_tensors) + " tensors, " +
                 format_bytes(static_cast<double>(t.bytes));
  }
  std::printf("tensors   %s\n", type_line.c_str());
  int64_t kv = 0;
  double flops = 0;
  for (const model::LayerCost& u : cost.units) {
    kv += u.kv_bytes_per_token;
    flops += u.flops_per_token;
  }
  std::printf("weights   %s bytes (%s); %.4g GFLOP per token; KV cache (%s) %s bytes per token\n\n",
              with_commas(cost.total_weight_bytes).c_str(),
              format_bytes(static_cast<double>(cost.total_weight_bytes)).c_str(), flops / 1e9,
              type_name(kv_type), with_commas(kv).c_str());
  std::printf("%-12s %16s %12s %18s %13s %14s\n", "unit", "weight bytes", "MFLOP/token",
              "attn FLOP/tok/ctx", "KV bytes/tok", "act bytes out");
  for (const model::LayerCost& u : cost.units) {
    std::printf("%-12s %16s %12.2f %18.0f %13s %14s\n", u.name.c_str(),
                with_commas(u.weight_bytes).c_str(), u.flops_per_token / 1e6,
                u.attn_flops_per_token_per_ctx, with_commas(u.kv_bytes_per_token).c_str(),
                with_commas(u.activation_bytes_out).c_str());
  }
  if (c.tied_embeddings) {
    std::printf("(tied embeddings: token_embd and output both count the embedding matrix)\n");
  }
}

struct InfoOptions {
  std::string path;
  bool json = false;
  std::string kv_type = "f32";
};

void add_info(CLI::App& parent, Action& action) {
  auto o = std::make_shared<InfoOptions>();
  CLI::App* cmd =
      parent.add_subcommand("info", "validate a GGUF model and show its shape and per-layer costs");
  cmd->footer(
      "Shows the architecture, hyper-parameters, tensor types and, per unit (token_embd,\n"
      "blk.N, output): weight bytes, matmul FLOPs per token, attention FLOPs per token per\n"
      "cached position, KV cache bytes per token and activation bytes handed to the next unit.\n"
      "With tied embeddings both token_embd and output count the embedding matrix.\n"
      "A malformed file gives one error naming the file and the problem, and exit code 1.");
  cmd->add_option("file", o->path, "the GGUF model file")->required();
  cmd->add_flag("--json", o->json, "print one JSON object instead of the table");
  cmd->add_option("--kv-type", o->kv_type, "KV cache element type for the KV bytes")
      ->default_val("f32")
      ->check(CLI::IsMember({"f32", "f16"}));
  cmd->callback([o, &action] {
    action = [o]() -> Status {
      STRATA_ASSIGN_OR_RETURN(std::unique_ptr<model::Model> m, model::Model::load(o->path));
      const DType kv_type = *model::parse_dtype(o->kv_type);
      const model::ModelCost cost = model::model_cost(*m, kv_type);
      std::map<std::string, TypeTotal> types;
      for (const model::GgufTensorInfo& t : m->file().tensors()) {
        TypeTotal& tt = types[type_name(t.type)];
        ++tt.n_tensors;
        tt.bytes += t.n_bytes;
      }
      if (o->json) {
        print_info_json(*m, cost, kv_type, types);
      } else {
        print_info_table(*m, cost, kv_type, types);
      }
      return {};
    };
  });
}

struct RepackCliOptions {
  std::string in;
  std::string out;
  bool for_streaming = false;
  uint32_t alignment = 4096;
  std::string bundles = "auto";
  int64_t bundle_neurons = 32;
};

void add_repack(CLI::App& parent, Action& action) {
  auto o = std::make_shared<RepackCliOptions>();
  CLI::App* cmd = parent.add_subcommand("repack", "rewrite a GGUF in a layout for streaming");
  cmd->footer(
      "--for-streaming writes the same tensors and metadata with every tensor at a multiple of\n"
      "--alignment and each layer's tensors contiguous (norms, attention, gate, up, down), so\n"
      "that `strata generate --mem-budget` reads each half of a streamed layer (norms,\n"
      "attention and gate; up and down) as one aligned extent, and records the layer extents\n"
      "in strata.stream.* metadata. For ReLU models (strata.ffn_act = relu) it also writes\n"
      "row-column bundles after the last tensor: per group of --bundle-neurons neurons, their\n"
      "up rows and their slice of every down row, which sparse FFN loading reads for active\n"
      "neurons only (the file grows by the size of up and down).\n"
      "The result is still a valid GGUF (llama.cpp loads it) and gives bit-identical results.\n"
      "Example:\n"
      "  strata model repack --for-streaming tiny.gguf -o tiny.stream.gguf");
  cmd->add_option("input", o->in, "the GGUF model to read")->required()->check(CLI::ExistingFile);
  cmd->add_option("-o,--output", o->out, "the GGUF file to write")->required();
  cmd->add_flag("--for-streaming", o->for_streaming,
                "aligned per-layer extents (the only layout repack writes; required)")
      ->required();
  cmd->add_option("--alignment", o->alignment, "alignment of every tensor and layer extent")
      ->default_val(4096)
      ->check(CLI::IsMember({4096u, 8192u, 16384u, 65536u, 1048576u}));
  cmd->add_option("--bundles", o->bundles,
                  "row-column bundles: auto (ReLU models), on (required), off")
      ->default_val("auto")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  cmd->add_option("--bundle-neurons", o->bundle_neurons,
                  "neurons per bundle: a multiple of the down matrix's block (32 for q4_0/q8_0)")
      ->default_val(32)
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->callback([o, &action] {
    action = [o]() -> Status {
      if (o->in == o->out) return invalid_argument("repack: --output must differ from the input");
      model::RepackOptions ro;
      ro.alignment = o->alignment;
      ro.bundles = o->bundles == "on"    ? model::SparseMode::kOn
                   : o->bundles == "off" ? model::SparseMode::kOff
                                         : model::SparseMode::kAuto;
      ro.bundle_neurons = o->bundle_neurons;
      const double t0 = now_s();
      Result<model::RepackResult> r = [&] {
        Progress progress(o->out);
        return model::repack_for_streaming(
            o->in, o->out, ro, [&progress](int64_t done, int64_t total) { progress(done, total); });
      }();
      STRATA_RETURN_IF_ERROR(r.status());
      std::printf("wrote %s: %s (from %s), layers aligned to %u bytes", o->out.c_str(),
                  format_bytes(static_cast<double>(r->out_bytes)).c_str(),
                  format_bytes(static_cast<double>(r->in_bytes)).c_str(), o->alignment);
      if (r->bundles) {
        std::printf(", row-column bundles of %" PRId64 " neurons (%s)", o->bundle_neurons,
                    format_bytes(static_cast<double>(r->bundle_bytes)).c_str());
      }
      std::printf(", in %.1f s\n", now_s() - t0);
      return {};
    };
  });
}

}  // namespace

void add_model_command(CLI::App& root, Action& action) {
  CLI::App* cmd = root.add_subcommand("model", "create and inspect GGUF model files");
  cmd->require_subcommand(1);
  add_synth(*cmd, action);
  add_info(*cmd, action);
  add_repack(*cmd, action);
}

}  // namespace strata::tools
