// `strata model repack --for-streaming` and `strata generate --mem-budget` end to end (the built
// binary, run as a user would): same tokens as the resident run, the report of what is resident
// and what streams, the chunk taken from a device profile, and the errors a user sees.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "strata/base/status.h"
#include "strata/model/gguf.h"
#include "support/cli.h"

#ifndef STRATA_BIN
#error "STRATA_BIN must name the strata binary"
#endif

namespace strata::model {
namespace {

// Each test's folder, named after the file's tests.
class TempDir : public testing::TempDir {
 public:
  TempDir() : testing::TempDir("strata_stream_cli_") {}
};

using testing::CmdResult;

CmdResult run(const TempDir& dir, const std::string& args) {
  return testing::run_command(dir, STRATA_BIN, args);
}

nlohmann::json generate(const TempDir& dir, const std::string& model, const std::string& extra) {
  CmdResult r = run(dir, "generate --json --prompt-len 6 -n 6 -t 2 -m " + model + " " + extra);
  EXPECT_EQ(r.rc, 0) << r.err;
  return nlohmann::json::parse(r.out, nullptr, false);
}

class StreamingCli : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = dir_.file("m.gguf");
    CmdResult s = run(dir_,
                      "model synth --dim 128 --layers 6 --heads 4 --kv-heads 2 --ffn 256 "
                      "--vocab 400 --type q8_0 --seed 5 -o " +
                          model_);
    ASSERT_EQ(s.rc, 0) << s.err;
    streamed_ = dir_.file("m.stream.gguf");
    CmdResult r = run(dir_, "model repack --for-streaming " + model_ + " -o " + streamed_);
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.out.find("layers aligned to 4096 bytes"), std::string::npos) << r.out;
  }
  TempDir dir_;
  std::string model_;
  std::string streamed_;
};

TEST_F(StreamingCli, RepackedFileKeepsEveryTensorAndAlignsIt) {
  auto a = GgufFile::open(model_);
  auto b = GgufFile::open(streamed_);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*b)->alignment(), 4096u);
  ASSERT_EQ((*a)->tensors().size(), (*b)->tensors().size());
  for (const GgufTensorInfo& t : (*a)->tensors()) {
    const GgufTensorInfo* u = (*b)->find_tensor(t.name);
    ASSERT_NE(u, nullptr) << t.name;
    EXPECT_EQ(u->dims, t.dims);
    EXPECT_EQ(u->type, t.type);
    EXPECT_EQ(((*b)->data_offset() + u->offset) % 4096, 0u) << t.name;
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(u->data), static_cast<size_t>(u->n_bytes)),
              std::string(reinterpret_cast<const char*>(t.data), static_cast<size_t>(t.n_bytes)))
        << t.name;
  }
  for (const auto& [key, value] : (*a)->metadata()) {
    if (key == "general.alignment") continue;
    EXPECT_TRUE((*b)->has(key)) << key;
  }
  EXPECT_TRUE((*b)->has("strata.stream.layer_offsets"));
  EXPECT_FALSE((*b)->has("strata.stream.bundle_neurons"));  // SiLU: no bundles
}

TEST_F(StreamingCli, BudgetedRunsGiveTheResidentTokensAndSayWhatStreams) {
  const nlohmann::json want = generate(dir_, model_, "--logits-top 5");
  ASSERT_FALSE(want.is_discarded());
  for (const std::string& m : {model_, streamed_}) {
    for (const char* budget : {"300K", "600K", "1M", "64M"}) {
      SCOPED_TRACE(m + " " + budget);
      const nlohmann::json got =
          generate(dir_, m, std::string("--logits-top 5 --mem-budget ") + budget);
      ASSERT_FALSE(got.is_discarded());
      EXPECT_EQ(got["tokens"], want["tokens"]);
      EXPECT_EQ(got["top_logits"], want["top_logits"]);
      const nlohmann::json& s = got["streaming"];
      EXPECT_LE(s["resident_bytes"].get<int64_t>(), s["mem_budget_bytes"].get<int64_t>());
      EXPECT_EQ(s["resident_layers"].size() + s["streamed_layers"].size(), 6u);
      EXPECT_EQ(s["repacked"].get<bool>(), m == streamed_);
      if (!s["streamed_layers"].empty()) {
        EXPECT_GT(s["streamed_bytes_per_token"].get<double>(), 0);
        EXPECT_GT(s["storage_mb_per_s"].get<double>(), 0);
        EXPECT_EQ(s["reader"], "pread");  // the default
        EXPECT_TRUE(s["direct_io"].get<bool>());
      }
    }
  }
  CmdResult text = run(dir_, "generate --prompt-len 6 -n 6 -m " + model_ + " --mem-budget 600K");
  ASSERT_EQ(text.rc, 0) << text.err;
  EXPECT_NE(text.err.find("weights: budget"), std::string::npos) << text.err;
  EXPECT_NE(text.err.find("streamed:"), std::string::npos) << text.err;
  EXPECT_NE(text.err.find("not repacked"), std::string::npos) << text.err;
  EXPECT_NE(text.err.find("O_DIRECT"), std::string::npos) << text.err;
}

TEST_F(StreamingCli, ChunkComesFromTheProfile) {
  const std::string profile = dir_.file("profile.json");
  std::ofstream(profile) << R"({"schema": "strata.profile/1", "storage": {"seq_read_mb_per_s": {
      "65536": {"value": 300, "unit": "MB/s", "provenance": "measured"},
      "1048576": {"value": 1450, "unit": "MB/s", "provenance": "measured"},
      "4194304": {"value": 1500, "unit": "MB/s", "provenance": "measured"},
      "16777216": {"value": null, "unit": "MB/s", "provenance": "unavailable"}}}})";
  const nlohmann::json got =
      generate(dir_, streamed_, "--mem-budget 600K --reader uring --profile " + profile);
  ASSERT_FALSE(got.is_discarded());
  // The smallest chunk within 10% of the best figure.
  EXPECT_EQ(got["streaming"]["chunk_bytes"], 1048576);
  EXPECT_EQ(got["streaming"]["reader"], "uring");
  std::ofstream(profile) << R"({"storage": {}})";
  CmdResult bad = run(dir_, "generate --prompt-len 6 -n 2 -m " + streamed_ +
                                " --mem-budget 600K --profile " + profile);
  EXPECT_EQ(bad.rc, 2);
  EXPECT_NE(bad.err.find("storage.seq_read_mb_per_s"), std::string::npos) << bad.err;
}

TEST_F(StreamingCli, ErrorsNameTheProblem) {
  CmdResult small = run(dir_, "generate --prompt-len 6 -n 2 -m " + streamed_ + " --mem-budget 10K");
  EXPECT_EQ(small.rc, 1);
  EXPECT_NE(small.err.find("is too small"), std::string::npos) << small.err;
  EXPECT_NE(small.err.find("needs at least"), std::string::npos) << small.err;
  CmdResult junk = run(dir_, "generate --prompt-len 6 -n 2 -m " + streamed_ + " --mem-budget lots");
  EXPECT_EQ(junk.rc, 2) << junk.err;
  CmdResult sparse = run(
      dir_, "generate --prompt-len 6 -n 2 -m " + streamed_ + " --mem-budget 600K --sparse-ffn on");
  EXPECT_EQ(sparse.rc, 1);
  EXPECT_NE(sparse.err.find("ReLU"), std::string::npos) << sparse.err;
  CmdResult same = run(dir_, "model repack --for-streaming " + model_ + " -o " + model_);
  EXPECT_EQ(same.rc, 2);
  CmdResult bundles = run(
      dir_, "model repack --for-streaming --bundles on " + model_ + " -o " + dir_.file("x.gguf"));
  EXPECT_EQ(bundles.rc, 2);
  EXPECT_NE(bundles.err.find("ReLU"), std::string::npos) << bundles.err;
}

}  // namespace
}  // namespace strata::model
