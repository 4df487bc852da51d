#include "strata/partitioner/layer_table.h"

#include <gtest/gtest.h>

#include "strata/base/io.h"
#include "test_util.h"

namespace strata::partitioner {
namespace {

const LlamaShape kShape11b{"llama-1.1b-shape", 16, 2048, 32, 8, 8192, 32000};

void expect_same(const LayerTable& a, const LayerTable& b) {
  ASSERT_EQ(a.units.size(), b.units.size());
  EXPECT_EQ(a.input_bytes_per_token, b.input_bytes_per_token);
  for (size_t i = 0; i < a.units.size(); ++i) {
    const LayerUnit& x = a.units[i];
    const LayerUnit& y = b.units[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.kind, y.kind) << x.name;
    EXPECT_EQ(x.flops_per_token, y.flops_per_token) << x.name;
    EXPECT_EQ(x.attn_flops_per_token_per_ctx, y.attn_flops_per_token_per_ctx) << x.name;
    EXPECT_EQ(x.weight_bytes, y.weight_bytes) << x.name;
    EXPECT_EQ(x.weight_bytes_by_type, y.weight_bytes_by_type) << x.name;
    EXPECT_EQ(x.weight_bytes_read_per_token, y.weight_bytes_read_per_token) << x.name;
    EXPECT_EQ(x.activation_bytes_out, y.activation_bytes_out) << x.name;
    EXPECT_EQ(x.kv_bytes_per_token, y.kv_bytes_per_token) << x.name;
  }
}

// The fixtures were computed by hand from the shape (a script outside the build); the C++
// formulas must agree with them to the byte.
TEST(LayerTable, FixturesMatchTheShapeFormulas) {
  for (const char* type : {"q4_0", "q8_0"}) {
    auto fixture = load_layer_table(testing::fixture(std::string("llama-1.1b-") + type + ".json"));
    ASSERT_TRUE(fixture.ok()) << fixture.status().to_string();
    auto computed = llama_layer_table(kShape11b, type);
    ASSERT_TRUE(computed.ok());
    expect_same(*fixture, *computed);
  }
}

TEST(LayerTable, Llama11bFiguresByHand) {
  auto t = llama_layer_table(kShape11b, "q4_0");
  ASSERT_TRUE(t.ok());
  ASSERT_EQ(t->units.size(), 18u);
  const LayerUnit& blk = t->units[1];
  // q, o: 2048 rows x 1152 B; k, v: 512 x 1152; gate, up: 8192 x 1152; down: 2048 x 4608.
  EXPECT_EQ(blk.weight_bytes_by_type.at("q4_0"), 34209792);
  EXPECT_EQ(blk.weight_bytes_by_type.at("f32"), 16384);
  EXPECT_EQ(blk.flops_per_token, 2.0 * 60817408);
  EXPECT_EQ(blk.kv_bytes_per_token, 4096);
  EXPECT_EQ(blk.activation_bytes_out, 8192);
  EXPECT_EQ(t->units[0].weight_bytes, 32000 * 1152);
  EXPECT_EQ(t->units[0].weight_bytes_read_per_token, 1152);
  EXPECT_EQ(t->units[17].flops_per_token, 2.0 * 32000 * 2048);
  EXPECT_EQ(t->units[17].activation_bytes_out, 4);
  EXPECT_EQ(t->total_weight_bytes(), 621355008);
  auto q8 = llama_layer_table(kShape11b, "q8_0");
  ASSERT_TRUE(q8.ok());
  EXPECT_EQ(q8->units[1].weight_bytes_by_type.at("q8_0"), 64618496);
  EXPECT_EQ(t->block_index(0), 0);
  EXPECT_EQ(t->block_index(1), 0);
  EXPECT_EQ(t->block_index(17), 16);
  EXPECT_EQ(t->block_index(18), 16);
  EXPECT_EQ(t->weight_types(), (std::vector<std::string>{"f32", "q4_0"}));
}

TEST(LayerTable, JsonRoundTrip) {
  auto t = llama_layer_table({"tiny", 3, 256, 8, 4, 512, 300}, "q8_0");
  ASSERT_TRUE(t.ok());
  auto back = parse_layer_table(layer_table_to_json(*t), "tiny.json");
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  expect_same(*t, *back);
  EXPECT_EQ(back->name, t->name);
}

TEST(LayerTable, AcceptsACnnWithADefaultType) {
  auto t = parse_layer_table(R"({"schema": "strata.layers/1", "weight_type": "f16",
    "input_bytes_per_token": 602112,
    "units": [
      {"name": "conv1", "flops_per_token": 2.3e8, "weight_bytes": 18816, "activation_bytes_out": 3211264},
      {"name": "pool", "kind": "other", "flops_per_token": 8e5, "weight_bytes": 0, "activation_bytes_out": 802816},
      {"name": "fc", "flops_per_token": 4.1e6, "weight_bytes": 4098000, "activation_bytes_out": 4000}]})",
                             "resnet.json");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->name, "resnet");
  EXPECT_EQ(t->units[0].weight_bytes_by_type.at("f16"), 18816);
  EXPECT_TRUE(t->units[1].weight_bytes_by_type.empty());
  EXPECT_EQ(t->units[2].weight_bytes_read_per_token, 4098000);
  EXPECT_EQ(t->block_index(3), 2);  // conv1 and fc are blocks (the default kind)
}

struct BadTable {
  const char* json;
  StatusCode code;
  const char* message;
};

TEST(LayerTable, BadTablesAreNamedClearly) {
  const BadTable cases[] = {
      {"{not json", StatusCode::kCorrupt, "t.json: not valid JSON"},
      {R"({"units": []})", StatusCode::kInvalidArgument, "schema must be \"strata.layers/1\""},
      {R"({"schema": "strata.layers/1", "units": []})", StatusCode::kInvalidArgument,
       "units must be a non-empty array"},
      {R"({"schema": "strata.layers/1", "weight_type": "q4_0", "units": [
         {"name": "a", "weight_bytes": 10, "activation_bytes_out": 4}]})",
       StatusCode::kInvalidArgument, "units[0] (a): flops_per_token is missing"},
      {R"({"schema": "strata.layers/1", "weight_type": "q4_0", "units": [
         {"name": "a", "flops_per_token": -1, "weight_bytes": 10, "activation_bytes_out": 4}]})",
       StatusCode::kInvalidArgument, "flops_per_token must be a non-negative number"},
      {R"({"schema": "strata.layers/1", "units": [
         {"name": "a", "flops_per_token": 1, "weight_bytes": 10, "activation_bytes_out": 4}]})",
       StatusCode::kInvalidArgument, "no weight_type to assume"},
      {R"({"schema": "strata.layers/1", "units": [{"name": "a", "flops_per_token": 1,
         "weight_bytes": 11, "weight_bytes_by_type": {"q4_0": 10}, "activation_bytes_out": 4}]})",
       StatusCode::kInvalidArgument,
       "weight_bytes 11 differs from the sum of weight_bytes_by_type 10"},
      {R"({"schema": "strata.layers/1", "units": [{"name": "a", "flops_per_token": 1,
         "weight_bytes_by_type": {"q5_k": 10}, "activation_bytes_out": 4}]})",
       StatusCode::kInvalidArgument, "weight type 'q5_k' is not one of"},
      {R"({"schema": "strata.layers/1", "weight_type": "f32", "units": [
         {"name": "a", "flops_per_token": 1, "weight_bytes": 4, "activation_bytes_out": 4},
         {"name": "e", "kind": "embedding", "flops_per_token": 1, "weight_bytes": 4, "activation_bytes_out": 4}]})",
       StatusCode::kInvalidArgument, "units[1] (e): an embedding must be the first unit"},
      {R"({"schema": "strata.layers/1", "weight_type": "f32", "units": [
         {"name": "h", "kind": "head", "flops_per_token": 1, "weight_bytes": 4, "activation_bytes_out": 4},
         {"name": "a", "flops_per_token": 1, "weight_bytes": 4, "activation_bytes_out": 4}]})",
       StatusCode::kInvalidArgument, "units[0] (h): a head must be the last unit"},
      {R"({"schema": "strata.layers/1", "weight_type": "f32", "units": [
         {"name": "a", "flops_per_token": 1, "weight_bytes": 4, "activation_bytes_out": 4},
         {"name": "a", "flops_per_token": 1, "weight_bytes": 4, "activation_bytes_out": 4}]})",
       StatusCode::kInvalidArgument, "units[1] (a): the name is used by an earlier unit"},
      {R"({"schema": "strata.layers/1", "weight_type": "f32", "units": [
         {"name": "a", "flops_per_token": 1, "weight_bytes": 4, "weight_bytes_read_per_token": 8,
          "activation_bytes_out": 4}]})",
       StatusCode::kInvalidArgument, "weight_bytes_read_per_token 8 exceeds weight_bytes 4"},
  };
  for (const auto& c : cases) {
    auto t = parse_layer_table(c.json, "t.json");
    ASSERT_FALSE(t.ok()) << c.json;
    EXPECT_EQ(t.status().code(), c.code) << t.status().to_string();
    EXPECT_NE(t.status().message().find(c.message), std::string::npos) << t.status().message();
  }
}

TEST(LayerTable, ShapeErrors) {
  EXPECT_FALSE(llama_layer_table({"x", 0, 2048, 32, 8, 8192, 32000}, "q4_0").ok());
  EXPECT_FALSE(llama_layer_table({"x", 2, 2048, 30, 8, 8192, 32000}, "q4_0").ok());
  EXPECT_FALSE(llama_layer_table({"x", 2, 2048 + 16, 8, 8, 8192, 32000}, "q4_0").ok());
  EXPECT_FALSE(llama_layer_table(kShape11b, "q5_k").ok());
}

TEST(LayerTable, GgufPathFailsForAMissingFile) {
  auto t = layer_table_from_gguf("/nonexistent/model.gguf");
  ASSERT_FALSE(t.ok());
}

}  // namespace
}  // namespace strata::partitioner
