// The weight store against the fully resident run: every budget from "only the pinned set and
// one layer buffer" to "everything fits" gives the same tokens and bit-identical logits, for
// every weight type, with and without the streaming layout, with both readers, with sparse FFN
// loading on ReLU models, and on a filesystem that refuses O_DIRECT. Plus the failures: a
// budget below the minimum, and a file truncated under a running engine.
#include "strata/model/weight_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "strata/model/engine.h"
#include "strata/model/model.h"

namespace strata::model {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  explicit TempDir(const fs::path& root = fs::temp_directory_path()) {
    dir_ = root / ("strata_ws_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::create_directories(dir_);
  }
  ~TempDir() { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

 private:
  static inline int counter_ = 0;
  fs::path dir_;
};

SynthSpec small_spec(DType type, FfnAct act = FfnAct::kSilu) {
  SynthSpec s;
  s.dim = 64;
  s.n_layers = 5;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.ffn_dim = 128;
  s.vocab = 300;
  s.ctx = 64;
  s.type = type;
  s.ffn_act = act;
  s.seed = 11;
  return s;
}

std::string synth(const TempDir& dir, const SynthSpec& spec, const std::string& name) {
  const std::string path = dir.path(name);
  const Status st = synth_model(spec, path, {});
  EXPECT_TRUE(st.ok()) << st.to_string();
  return path;
}

std::string repack(const std::string& in, const std::string& out, const RepackOptions& o = {}) {
  Result<RepackResult> r = repack_for_streaming(in, out, o, {});
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return out;
}

std::unique_ptr<Model> load(const std::string& path) {
  auto m = Model::load(path);
  EXPECT_TRUE(m.ok()) << m.status().to_string();
  return std::move(m).value();
}

// Logits after the prompt and after each of `steps` greedy decode steps, one row each.
Result<std::vector<std::vector<float>>> run(const Model& m, LayerWeightSource* src, int steps = 4) {
  const ModelConfig& c = m.config();
  EngineOptions o;
  o.n_threads = 2;
  o.ctx = 32;
  o.weights = src;
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Engine> e, Engine::create(m, o));
  std::vector<int32_t> tokens = default_prompt(6, c.vocab);
  std::vector<float> hidden(tokens.size() * static_cast<size_t>(c.dim));
  std::vector<TokenSlot> slots;
  for (size_t t = 0; t < tokens.size(); ++t) slots.push_back({0, static_cast<int32_t>(t)});
  STRATA_RETURN_IF_ERROR(e->embed(tokens, hidden.data()));
  STRATA_RETURN_IF_ERROR(e->forward(slots, hidden.data()));
  std::vector<std::vector<float>> rows;
  std::vector<float> logits(static_cast<size_t>(c.vocab));
  e->head(hidden.data() + (tokens.size() - 1) * static_cast<size_t>(c.dim), 1, logits.data());
  rows.push_back(logits);
  for (int s = 0; s < steps; ++s) {
    const int32_t tok = top_logits(logits, 1)[0].first;
    const TokenSlot slot{0, static_cast<int32_t>(tokens.size() + static_cast<size_t>(s))};
    STRATA_RETURN_IF_ERROR(e->embed(std::span<const int32_t>(&tok, 1), hidden.data()));
    STRATA_RETURN_IF_ERROR(e->forward(std::span<const TokenSlot>(&slot, 1), hidden.data()));
    e->head(hidden.data(), 1, logits.data());
    rows.push_back(logits);
  }
  return rows;
}

bool same_bits(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].size() != b[i].size() ||
        std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float)) != 0) {
      return false;
    }
  }
  return true;
}

// Budgets from the minimum (every layer streamed, one buffer) to everything resident.
std::vector<int64_t> budgets(const Model& m, StreamOptions o) {
  o.mem_budget_bytes = int64_t{1} << 40;
  Result<StreamPlan> all = plan_streaming(m, o);
  EXPECT_TRUE(all.ok()) << all.status().to_string();
  const int64_t lo = all->min_budget_bytes;
  const int64_t hi = all->resident_bytes;
  EXPECT_LT(lo, hi);
  std::vector<int64_t> out = {
      lo, lo + (hi - lo) / 8, lo + (hi - lo) / 3, lo + (hi - lo) * 2 / 3, hi - 1, hi};
  return out;
}

// Runs the model streamed at every budget and checks bits and the plan's accounting.
void expect_identical_at_every_budget(const std::string& path, StreamOptions o,
                                      bool expect_sparse) {
  auto m = load(path);
  auto want = run(*m, nullptr);
  ASSERT_TRUE(want.ok()) << want.status().to_string();
  bool streamed_some = false;
  for (int64_t budget : budgets(*m, o)) {
    SCOPED_TRACE("budget " + std::to_string(budget));
    o.mem_budget_bytes = budget;
    auto sw = StreamingWeights::open(*m, o);
    ASSERT_TRUE(sw.ok()) << sw.status().to_string();
    const StreamPlan& p = (*sw)->plan();
    EXPECT_LE(p.resident_bytes, budget);
    EXPECT_EQ(p.resident_layers.size() + p.streamed_layers.size(),
              static_cast<size_t>(m->config().n_layers));
    auto got = run(*m, sw->get());
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    EXPECT_TRUE(same_bits(*want, *got));
    const StreamStats st = (*sw)->stats();
    if (!p.streamed_layers.empty()) {
      streamed_some = true;
      EXPECT_EQ(p.sparse, expect_sparse);
      EXPECT_GT(st.bytes_read, 0);
      EXPECT_EQ(st.forward_calls, 5);
      // Dense streaming reads the embedding's rows on demand: 6 prompt tokens and 4 more.
      EXPECT_EQ(p.embedding_rows, !expect_sparse);
      if (p.embedding_rows) {
        EXPECT_GE(st.embedding_bytes_read, 10 * 4096);
        EXPECT_LE(st.embedding_bytes_read, 10 * p.embedding_buffer_bytes);
      }
    } else {
      EXPECT_EQ(st.bytes_read, 0);
    }
  }
  EXPECT_TRUE(streamed_some);
}

struct Case {
  DType type;
  bool repacked;
  ReaderKind reader;
  int64_t unit_bytes;  // 0: the default (a whole small layer); 8192: pieces of matrices
};

class EveryBudget : public ::testing::TestWithParam<Case> {};

TEST_P(EveryBudget, GivesTheResidentRunsBits) {
  const Case c = GetParam();
  TempDir dir;
  std::string path = synth(dir, small_spec(c.type), "m.gguf");
  if (c.repacked) path = repack(path, dir.path("m.stream.gguf"));
  StreamOptions o;
  o.reader = c.reader;
  o.chunk_bytes = 8192;  // several chunks per layer: exercises the splitting
  o.unit_bytes = c.unit_bytes;
  expect_identical_at_every_budget(path, o, false);
}

INSTANTIATE_TEST_SUITE_P(Types, EveryBudget,
                         ::testing::Values(Case{DType::kF32, false, ReaderKind::kUring, 0},
                                           Case{DType::kF32, true, ReaderKind::kPread, 0},
                                           Case{DType::kF32, false, ReaderKind::kPread, 8192},
                                           Case{DType::kF32, true, ReaderKind::kUring, 8192},
                                           Case{DType::kQ8_0, false, ReaderKind::kPread, 0},
                                           Case{DType::kQ8_0, true, ReaderKind::kUring, 0},
                                           Case{DType::kQ8_0, true, ReaderKind::kPread, 8192},
                                           Case{DType::kQ4_0, false, ReaderKind::kUring, 0},
                                           Case{DType::kQ4_0, true, ReaderKind::kUring, 0},
                                           Case{DType::kQ4_0, true, ReaderKind::kPread, 8192}),
                         [](const ::testing::TestParamInfo<Case>& p) {
                           return std::string(*dtype_name(static_cast<uint32_t>(p.param.type))) +
                                  (p.param.repacked ? "_repacked_" : "_plain_") +
                                  reader_kind_name(p.param.reader) +
                                  (p.param.unit_bytes > 0 ? "_units" : "");
                         });

TEST(WeightStore, SparseFfnGivesTheDenseRunsBits) {
  for (DType type : {DType::kF32, DType::kQ8_0, DType::kQ4_0}) {
    SCOPED_TRACE(*dtype_name(static_cast<uint32_t>(type)));
    TempDir dir;
    const std::string plain = synth(dir, small_spec(type, FfnAct::kRelu), "relu.gguf");
    const std::string path = repack(plain, dir.path("relu.stream.gguf"));
    StreamOptions o;
    o.sparse = SparseMode::kOn;
    o.chunk_bytes = 8192;
    expect_identical_at_every_budget(path, o, true);
  }
}

// One-neuron bundles (f32 has no blocks): about half the neurons are off for each token, so
// this exercises skipped bundles, zeroed buffers and the window, and must still give the bits.
TEST(WeightStore, SparseSkipsInactiveNeuronsAndKeepsTheBits) {
  TempDir dir;
  const std::string plain = synth(dir, small_spec(DType::kF32, FfnAct::kRelu), "relu.gguf");
  RepackOptions ro;
  ro.bundle_neurons = 1;
  const std::string path = repack(plain, dir.path("relu1.gguf"), ro);
  auto m = load(path);
  auto want = run(*m, nullptr);
  ASSERT_TRUE(want.ok());
  StreamOptions o;
  o.sparse = SparseMode::kOn;
  o.window_tokens = 2;
  o.chunk_bytes = 8192;
  const int64_t min = budgets(*m, o)[0];
  int windows = 0;
  for (int64_t extra_bundles : {0, 16, 64, 100}) {
    o.mem_budget_bytes = min + extra_bundles * 4096;
    auto sw = StreamingWeights::open(*m, o);
    ASSERT_TRUE(sw.ok()) << sw.status().to_string();
    const StreamPlan& p = (*sw)->plan();
    ASSERT_TRUE(p.sparse);
    SCOPED_TRACE("budget " + std::to_string(o.mem_budget_bytes) + ", window " +
                 std::to_string(p.window_bytes));
    auto got = run(*m, sw->get());
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    EXPECT_TRUE(same_bits(*want, *got));
    const StreamStats st = (*sw)->stats();
    EXPECT_GT(st.bundles_needed, 0);
    EXPECT_LT(st.bundles_needed, st.bundles_total);  // some neurons were skipped
    if (p.window_bytes > 0) {
      ++windows;
      EXPECT_GT(st.bundles_cached, 0);  // later tokens reuse what earlier ones read
    }
    // Only needed bundles are read: at most their bytes (a window hit reads none).
    EXPECT_LE(st.bytes_read, static_cast<int64_t>(p.streamed_layers.size()) *
                                     ((*sw)->plan().ring_bytes / (p.lookahead + 1)) * 6 +
                                 st.bundles_needed * p.bundle_bytes);
  }
  EXPECT_GE(windows, 2);
}

// The buffered path: taken where the filesystem refuses O_DIRECT (older tmpfs, some network
// filesystems; tmpfs accepts it since Linux 6.6) and when asked. Either way it is said and the
// bits are the same.
TEST(WeightStore, BufferedReadsWhereODirectIsRefusedOrOff) {
  const bool shm = fs::is_directory("/dev/shm");
  TempDir dir(shm ? fs::path("/dev/shm") : fs::temp_directory_path());
  const std::string path = synth(dir, small_spec(DType::kQ8_0), "m.gguf");
  auto m = load(path);
  auto want = run(*m, nullptr);
  ASSERT_TRUE(want.ok());
  for (bool direct : {true, false}) {
    SCOPED_TRACE(direct ? "O_DIRECT asked" : "O_DIRECT off");
    StreamOptions o;
    o.direct_io = direct;
    o.mem_budget_bytes = budgets(*m, o)[1];
    auto sw = StreamingWeights::open(*m, o);
    ASSERT_TRUE(sw.ok()) << sw.status().to_string();
    bool said = false;
    for (const std::string& n : (*sw)->notes()) said = said || n.find("O_DIRECT") == 0;
    EXPECT_EQ(said, !(*sw)->direct_io());
    if (!direct) {
      EXPECT_FALSE((*sw)->direct_io());
    }
    auto got = run(*m, sw->get());
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    EXPECT_TRUE(same_bits(*want, *got));
  }
}

TEST(WeightStore, BudgetBelowTheMinimumNamesWhatIsNeeded) {
  TempDir dir;
  auto m = load(synth(dir, small_spec(DType::kQ4_0), "m.gguf"));
  StreamOptions o;
  const int64_t min = budgets(*m, o)[0];
  o.mem_budget_bytes = min - 1;
  auto sw = StreamingWeights::open(*m, o);
  ASSERT_FALSE(sw.ok());
  EXPECT_EQ(sw.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(sw.status().message().find("needs at least"), std::string::npos);
  EXPECT_NE(sw.status().message().find(std::to_string(min) + " bytes"), std::string::npos)
      << sw.status().message();
  o.mem_budget_bytes = min;
  EXPECT_TRUE(StreamingWeights::open(*m, o).ok());
}

TEST(WeightStore, SparseNeedsReluAndBundles) {
  TempDir dir;
  auto silu = load(synth(dir, small_spec(DType::kQ8_0), "silu.gguf"));
  StreamOptions o;
  o.mem_budget_bytes = 1 << 20;
  o.sparse = SparseMode::kOn;
  EXPECT_EQ(plan_streaming(*silu, o).status().code(), StatusCode::kUnsupported);
  auto relu = load(synth(dir, small_spec(DType::kQ8_0, FfnAct::kRelu), "relu.gguf"));
  const Status st = plan_streaming(*relu, o).status();
  EXPECT_EQ(st.code(), StatusCode::kUnsupported);
  EXPECT_NE(st.message().find("repack"), std::string::npos);
}

// A file cut short while the engine runs (flash failing, a copy replaced in place): the read
// of the missing layer fails with an error naming the file and the layer, and so does every
// later call; nothing crashes or hangs. The repacked layout puts the pinned tensors first, so
// only streamed bytes go missing.
TEST(WeightStore, TruncatedFileUnderStreamingIsAnError) {
  TempDir dir;
  const std::string path =
      repack(synth(dir, small_spec(DType::kQ4_0), "m.gguf"), dir.path("m.stream.gguf"));
  auto m = load(path);
  StreamOptions o;
  o.mem_budget_bytes = budgets(*m, o)[0];  // every layer streamed, one buffer
  auto sw = StreamingWeights::open(*m, o);
  ASSERT_TRUE(sw.ok()) << sw.status().to_string();
  ASSERT_EQ((*sw)->plan().streamed_layers.size(), static_cast<size_t>(m->config().n_layers));
  fs::resize_file(path, fs::file_size(path) - 3 * 4096);
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto got = run(*m, sw->get(), 1);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().code(), StatusCode::kIo);
    EXPECT_NE(got.status().message().find("layer 4"), std::string::npos) << got.status().message();
    EXPECT_NE(got.status().message().find(path), std::string::npos);
  }
}

// Sum of Rss over the mappings of `path` in this process (/proc/self/smaps).
int64_t mapped_rss_bytes(const std::string& path) {
  std::ifstream in("/proc/self/smaps");
  std::string line;
  bool mine = false;
  int64_t kb = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (std::isxdigit(static_cast<unsigned char>(line[0])) && line.find('-') != std::string::npos &&
        line.find(':') > line.find(' ')) {
      mine = line.size() >= path.size() &&
             line.compare(line.size() - path.size(), path.size(), path) == 0;
      continue;
    }
    if (mine && line.rfind("Rss:", 0) == 0) {
      std::istringstream ss(line.substr(4));
      int64_t v = 0;
      ss >> v;
      kb += v;
    }
  }
  return kb * 1024;
}

// Streamed layers are read into the store's own buffers, never through the mapping: the
// mapping's resident pages stay within the resident set (plus the header and the pages
// around the resident spans that fault-around may map).
TEST(WeightStore, StreamedLayersNeverEnterTheMapping) {
  TempDir dir;
  SynthSpec spec = small_spec(DType::kF32);
  spec.n_layers = 8;
  spec.dim = 128;
  spec.ffn_dim = 512;
  const std::string path = repack(synth(dir, spec, "m.gguf"), dir.path("m.stream.gguf"));
  auto m = load(path);
  StreamOptions o;
  o.mem_budget_bytes = budgets(*m, o)[1];
  auto sw = StreamingWeights::open(*m, o);
  ASSERT_TRUE(sw.ok()) << sw.status().to_string();
  const StreamPlan& p = (*sw)->plan();
  ASSERT_GE(p.streamed_layers.size(), 4u);
  ASSERT_TRUE(run(*m, sw->get()).ok());
  const int64_t mapped = mapped_rss_bytes(path);
  const int64_t header = static_cast<int64_t>(m->file().data_offset());
  const int64_t slack =
      (p.n_layers + p.n_resident_units + static_cast<int64_t>(p.resident_layers.size()) + 2) * 2 *
      (64 << 10);
  EXPECT_GT(mapped, 0);
  EXPECT_TRUE(p.embedding_rows);  // the embedding is not in the mapping's resident pages either
  EXPECT_LE(mapped, p.pinned_bytes + p.norm_bytes + p.resident_layer_bytes + header + slack)
      << "streamed " << p.streamed_bytes_per_token << " bytes per token";
}

TEST(WeightStore, ResidentLayersAreSpreadAndTheBudgetIsKept) {
  TempDir dir;
  SynthSpec spec = small_spec(DType::kQ8_0);
  spec.n_layers = 12;
  auto m = load(repack(synth(dir, spec, "m.gguf"), dir.path("m.stream.gguf")));
  StreamOptions o;
  o.lookahead = 1;  // two buffers of a (small) layer each: room for several kept layers
  const std::vector<int64_t> b = budgets(*m, o);
  o.mem_budget_bytes = (b[0] + b[5]) / 2;
  auto p = plan_streaming(*m, o);
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_TRUE(p->repacked);
  EXPECT_EQ(p->reads_per_layer, 1);  // a small layer is one unit, one aligned extent
  EXPECT_LE(p->resident_bytes, o.mem_budget_bytes);
  ASSERT_GE(p->resident_layers.size(), 3u);
  // Spread: no two kept layers adjacent when fewer than half are kept, none at layer 0.
  if (p->resident_layers.size() * 2 < 12) {
    for (size_t i = 1; i < p->resident_layers.size(); ++i) {
      EXPECT_GT(p->resident_layers[i] - p->resident_layers[i - 1], 1);
    }
  }
  EXPECT_NE(p->resident_layers.front(), 0);
  EXPECT_EQ(p->lookahead, 1);
  EXPECT_EQ(p->ring_bytes % (p->lookahead + 1), 0);
}

// Hidden states after layers [begin, end) (a pipeline stage) for the prompt, then for one
// more token: two forward calls, so the reader wraps around the range.
Result<std::vector<float>> run_stage(const Model& m, LayerWeightSource* src, int64_t begin,
                                     int64_t end) {
  const ModelConfig& c = m.config();
  EngineOptions o;
  o.n_threads = 2;
  o.ctx = 16;
  o.layer_begin = begin;
  o.layer_end = end;
  o.weights = src;
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Engine> e, Engine::create(m, o));
  const std::vector<int32_t> tokens = default_prompt(5, c.vocab);
  std::vector<float> hidden(tokens.size() * static_cast<size_t>(c.dim));
  std::vector<TokenSlot> slots;
  for (size_t t = 0; t < tokens.size(); ++t) slots.push_back({0, static_cast<int32_t>(t)});
  STRATA_RETURN_IF_ERROR(e->embed(tokens, hidden.data()));
  STRATA_RETURN_IF_ERROR(e->forward(slots, hidden.data()));
  std::vector<float> next(hidden.end() - c.dim, hidden.end());
  const TokenSlot slot{0, static_cast<int32_t>(tokens.size())};
  STRATA_RETURN_IF_ERROR(e->forward(std::span<const TokenSlot>(&slot, 1), next.data()));
  hidden.insert(hidden.end(), next.begin(), next.end());
  return hidden;
}

TEST(WeightStore, AStageOfTheLayersStreamsOnlyItsRange) {
  TempDir dir;
  SynthSpec spec = small_spec(DType::kQ4_0);
  spec.n_layers = 12;
  auto m = load(synth(dir, spec, "m.gguf"));
  auto want = run_stage(*m, nullptr, 3, 9);
  ASSERT_TRUE(want.ok()) << want.status().to_string();
  StreamOptions o;
  o.layer_begin = 3;
  o.layer_end = 9;
  const std::vector<int64_t> b = budgets(*m, o);
  o.mem_budget_bytes = b[2];
  auto sw = StreamingWeights::open(*m, o);
  ASSERT_TRUE(sw.ok()) << sw.status().to_string();
  EXPECT_EQ((*sw)->plan().n_layers, 6);
  EXPECT_TRUE((*sw)->plan().pinned_tensors.empty());  // a middle stage: no embedding, no head
  EXPECT_EQ((*sw)->plan().pinned_bytes, 0);
  EXPECT_FALSE((*sw)->plan().streamed_layers.empty());
  for (int64_t l : (*sw)->plan().streamed_layers) {
    EXPECT_GE(l, 3);
    EXPECT_LT(l, 9);
  }
  auto got = run_stage(*m, sw->get(), 3, 9);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  ASSERT_EQ(got->size(), want->size());
  EXPECT_EQ(std::memcmp(got->data(), want->data(), got->size() * sizeof(float)), 0);
  // A layer outside the range is refused, not read.
  EXPECT_EQ((*sw)->acquire(2).status().code(), StatusCode::kInvalidArgument);
}

// What an agent streams: the slice a coordinator cuts is in the streaming layout (each block's
// two halves are aligned extents, one read each), with its layer offsets counted from the
// slice's first block, and it streams to the whole model's bits. (The slices carry the
// embedding only because run_stage embeds its prompt.)
TEST(WeightStore, AModelSliceStreamsInTheStreamingLayout) {
  TempDir dir;
  SynthSpec spec = small_spec(DType::kQ4_0);
  spec.n_layers = 12;
  auto m = load(synth(dir, spec, "m.gguf"));
  auto want = run_stage(*m, nullptr, 3, 9);
  ASSERT_TRUE(want.ok()) << want.status().to_string();
  const std::string slice_path = dir.path("slice.gguf");
  ASSERT_TRUE(write_model_slice(*m, 3, 9, true, false, slice_path).ok());
  auto slice = load(slice_path);
  StreamOptions o;
  o.layer_begin = 3;
  o.layer_end = 9;
  const std::vector<int64_t> b = budgets(*slice, o);
  o.mem_budget_bytes = b[2];
  auto sw = StreamingWeights::open(*slice, o);
  ASSERT_TRUE(sw.ok()) << sw.status().to_string();
  const StreamPlan& p = (*sw)->plan();
  EXPECT_TRUE(p.repacked);
  EXPECT_EQ(p.reads_per_layer, 1);  // one unit (a small layer), one aligned extent
  ASSERT_FALSE(p.streamed_layers.empty());
  for (int64_t l : p.streamed_layers) EXPECT_TRUE(l >= 3 && l < 9) << l;
  auto got = run_stage(*slice, sw->get(), 3, 9);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  ASSERT_EQ(got->size(), want->size());
  EXPECT_EQ(std::memcmp(got->data(), want->data(), got->size() * sizeof(float)), 0);
  // A range reaching outside the slice's blocks is refused before any I/O.
  o.layer_begin = 2;
  EXPECT_EQ(StreamingWeights::open(*slice, o).status().code(), StatusCode::kInvalidArgument);
}

// A ReLU model's slice carries its bundles, so a streamed stage can load its FFN sparsely.
TEST(WeightStore, AReluSliceCarriesBundlesForSparseLoading) {
  TempDir dir;
  SynthSpec spec = small_spec(DType::kQ4_0);
  spec.n_layers = 6;
  spec.ffn_act = FfnAct::kRelu;
  auto m = load(synth(dir, spec, "relu.gguf"));
  auto want = run_stage(*m, nullptr, 2, 6);
  ASSERT_TRUE(want.ok()) << want.status().to_string();
  const std::string slice_path = dir.path("relu_slice.gguf");
  ASSERT_TRUE(write_model_slice(*m, 2, 6, true, true, slice_path).ok());
  auto slice = load(slice_path);
  StreamOptions o;
  o.layer_begin = 2;
  o.sparse = SparseMode::kOn;
  o.mem_budget_bytes = budgets(*slice, o)[0];
  auto sw = StreamingWeights::open(*slice, o);
  ASSERT_TRUE(sw.ok()) << sw.status().to_string();
  EXPECT_TRUE((*sw)->plan().sparse);
  auto got = run_stage(*slice, sw->get(), 2, 6);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  ASSERT_EQ(got->size(), want->size());
  EXPECT_EQ(std::memcmp(got->data(), want->data(), got->size() * sizeof(float)), 0);
}

}  // namespace
// Units smaller than a layer: the budget keeps pieces of layers (some layers partly), at most
// about one unit of it goes unused, and a middle stage and a first-stage slice (which reads
// its embedding rows on demand) give the resident run's bits.
TEST(WeightStore, UnitsKeepPartsOfLayersAndFillTheBudget) {
  TempDir dir;
  SynthSpec spec = small_spec(DType::kF32);
  spec.n_layers = 8;
  auto m = load(repack(synth(dir, spec, "m.gguf"), dir.path("m.stream.gguf")));
  StreamOptions o;
  o.unit_bytes = 8192;
  const std::vector<int64_t> b = budgets(*m, o);
  for (int64_t budget : {b[1], b[2], b[3]}) {
    SCOPED_TRACE("budget " + std::to_string(budget));
    o.mem_budget_bytes = budget;
    auto p = plan_streaming(*m, o);
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    EXPECT_TRUE(p->embedding_rows);
    EXPECT_EQ(p->pinned_tensors, (std::vector<std::string>{"output_norm.weight", "output.weight"}));
    EXPECT_GT(p->n_units, 8 * 4);  // f32 layers of 8 KiB units: many per layer
    EXPECT_GT(p->n_resident_units, 0);
    EXPECT_FALSE(p->partly_resident_layers.empty());
    EXPECT_LE(p->resident_bytes, budget);
    const int64_t slot = p->ring_bytes / (p->lookahead + 1);
    EXPECT_LE(slot, 8192);
    EXPECT_LT(budget - p->resident_bytes, 2 * slot);
    // Every byte of the layers is either kept or read per token (repacked: no padding).
    int64_t layers = 0;
    for (int64_t l = 0; l < 8; ++l) {
      for (const char* t :
           {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}) {
        layers += m->file().find_tensor("blk." + std::to_string(l) + "." + t + ".weight")->n_bytes;
      }
    }
    EXPECT_EQ(p->resident_layer_bytes + p->streamed_bytes_per_token, layers);
  }

  // A middle stage.
  auto want = run_stage(*m, nullptr, 2, 6);
  ASSERT_TRUE(want.ok()) << want.status().to_string();
  o.layer_begin = 2;
  o.layer_end = 6;
  o.mem_budget_bytes = budgets(*m, o)[2];
  auto sw = StreamingWeights::open(*m, o);
  ASSERT_TRUE(sw.ok()) << sw.status().to_string();
  EXPECT_FALSE((*sw)->plan().embedding_rows);
  EXPECT_FALSE((*sw)->plan().partly_resident_layers.empty());
  auto got = run_stage(*m, sw->get(), 2, 6);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  ASSERT_EQ(got->size(), want->size());
  EXPECT_EQ(std::memcmp(got->data(), want->data(), got->size() * sizeof(float)), 0);

  // A first-stage slice, as an agent gets it: embedding + blocks [0, 5), no head.
  const std::string slice_path = dir.path("first.gguf");
  ASSERT_TRUE(write_model_slice(*m, 0, 5, true, false, slice_path).ok());
  auto slice = load(slice_path);
  want = run_stage(*m, nullptr, 0, 5);
  ASSERT_TRUE(want.ok()) << want.status().to_string();
  o.layer_begin = 0;
  o.layer_end = 5;
  const std::vector<int64_t> first_budgets = budgets(*slice, o);
  for (int64_t budget : first_budgets) {
    SCOPED_TRACE("first stage, budget " + std::to_string(budget));
    o.mem_budget_bytes = budget;
    auto first = StreamingWeights::open(*slice, o);
    ASSERT_TRUE(first.ok()) << first.status().to_string();
    const StreamPlan& p = (*first)->plan();
    // Rows on demand whenever not everything fits (at hi - 1, leaving the embedding out is
    // enough: every layer is kept and only rows are read).
    EXPECT_EQ(p.embedding_rows, budget < first_budgets.back());
    if (p.embedding_rows) {
      EXPECT_TRUE(p.pinned_tensors.empty());
    }
    got = run_stage(*slice, first->get(), 0, 5);
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    ASSERT_EQ(got->size(), want->size());
    EXPECT_EQ(std::memcmp(got->data(), want->data(), got->size() * sizeof(float)), 0);
  }
}

}  // namespace strata::model
