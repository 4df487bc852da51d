// `strata plan` end to end: the binary with fixture files, good and bad.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "strata/base/io.h"
#include "test_util.h"

namespace strata::partitioner {
namespace {

namespace fs = std::filesystem;

struct CliRun {
  int code = -1;
  std::string out;  // stdout and stderr together
};

CliRun strata(const std::string& args) {
  CliRun r;
  const std::string cmd = std::string(STRATA_BIN) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string three_devices() {
  return " --device pi5=" + testing::fixture("pi5.json") +
         " --device orin-nano=" + testing::fixture("orin-nano.json") +
         " --device laptop=" + testing::fixture("laptop.json");
}

class PlanCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("strata_plan_cli_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  // The Pi 5 fixture with one change.
  std::string pi5_with(const std::function<void(nlohmann::json&)>& edit) const {
    auto j = nlohmann::json::parse(*read_file(testing::fixture("pi5.json")));
    edit(j);
    const std::string p = path("pi5-edited.json");
    std::ofstream(p) << j.dump();
    return p;
  }
  fs::path dir_;
};

TEST_F(PlanCli, PlansTheFixturesAndWritesEveryOutput) {
  const CliRun r = strata("plan --layers " + testing::fixture("llama-1.1b-q4_0.json") +
                          three_devices() + " --links " + testing::fixture("links-100mbit.json") +
                          " --coordinator laptop --objective throughput --svg " + path("f.svg") +
                          " -o " + path("p.json"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("chosen plan: front #"), std::string::npos);
  EXPECT_NE(r.out.find("Pareto front:"), std::string::npos);
  auto plan = read_file(path("p.json"));
  ASSERT_TRUE(plan.ok());
  const auto j = nlohmann::json::parse(*plan);
  EXPECT_EQ(j["schema"], "strata.plan/1");
  EXPECT_GT(j["front"].size(), 1u);
  auto svg = read_file(path("f.svg"));
  ASSERT_TRUE(svg.ok());
  EXPECT_NE(svg->find("</svg>"), std::string::npos);

  const CliRun js = strata("plan --json --layers " + testing::fixture("llama-1.1b-q8_0.json") +
                           three_devices() + " --default-link 1,100 --sequences 8");
  ASSERT_EQ(js.code, 0) << js.out;
  const auto k = nlohmann::json::parse(js.out);
  EXPECT_EQ(k["settings"]["sequences"], 8);
  EXPECT_EQ(k["links"][0]["mbit_per_s"], 100.0);
}

TEST_F(PlanCli, HelpListsTheOptions) {
  const CliRun r = strata("plan --help");
  EXPECT_EQ(r.code, 0);
  for (const char* opt :
       {"--layers", "--model", "--device", "--links", "--link", "--default-link", "--sequences",
        "--prompt-len", "--objective", "--max-energy-j-per-token", "--allow-streaming",
        "--bandwidth-scenarios", "--svg", "--json", "--coordinator"}) {
    EXPECT_NE(r.out.find(opt), std::string::npos) << opt;
  }
}

TEST_F(PlanCli, AProfileMissingAFigure) {
  const std::string pi5 = pi5_with([](nlohmann::json& j) {
    j["memory"].erase("read_gb_per_s");
    j["memory"].erase("triad_gb_per_s");
  });
  const CliRun r =
      strata("plan --layers " + testing::fixture("llama-1.1b-q4_0.json") + " --device pi5=" + pi5);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("device 'pi5' (" + pi5 + "): memory.read_gb_per_s.threads_all is missing"),
            std::string::npos)
      << r.out;
}

TEST_F(PlanCli, ModelThatFitsNowhere) {
  const CliRun r = strata("plan --layers " + testing::fixture("llama-1.1b-q8_0.json") +
                          " --device pi5=" + testing::fixture("pi5.json") + ",mem=600M");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("the model fits nowhere: it needs"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("the budget of 'pi5' is 600.00 MiB, short by"), std::string::npos) << r.out;
}

TEST_F(PlanCli, ADeviceTooSmallForAnyUnitIsNamed) {
  const CliRun r = strata("plan --layers " + testing::fixture("llama-1.1b-q8_0.json") +
                          " --device pi5=" + testing::fixture("pi5.json") +
                          ",mem=50M --device laptop=" + testing::fixture("laptop.json"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("warning: device 'pi5' (" + testing::fixture("pi5.json") +
                       ") is too small for any unit: the smallest, 'token_embd', needs"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("against a budget of 50.00 MiB, short by"), std::string::npos) << r.out;
}

TEST_F(PlanCli, StreamingMakesItFit) {
  const CliRun r = strata("plan --allow-streaming --objective latency --layers " +
                          testing::fixture("llama-1.1b-q8_0.json") + " --device pi5=" +
                          testing::fixture("pi5.json") + ",mem=900M --sequences 1 --context 512");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("streaming allowed"), std::string::npos);
}

TEST_F(PlanCli, LinksNamingUnknownDevices) {
  const CliRun r = strata("plan --layers " + testing::fixture("llama-1.1b-q4_0.json") +
                          three_devices() + " --link pi5-jetson=1,100");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("'pi5-jetson' does not split at a '-' into two known devices (devices: "
                       "pi5, orin-nano, laptop)"),
            std::string::npos)
      << r.out;
  const std::string links = path("links.json");
  std::ofstream(links)
      << R"({"schema": "strata.links/1", "links": [{"a": "pi5", "b": "jetson", "rtt_ms": 1, "mbit_per_s": 100}]})";
  const CliRun f = strata("plan --layers " + testing::fixture("llama-1.1b-q4_0.json") +
                          three_devices() + " --links " + links);
  EXPECT_EQ(f.code, 2);
  EXPECT_NE(f.out.find("names unknown device 'jetson'"), std::string::npos) << f.out;
}

TEST_F(PlanCli, MalformedJsonAndBadUsage) {
  const std::string broken = path("broken.json");
  std::ofstream(broken) << "{\"schema\": \"strata.layers/1\", \"units\": [";
  const CliRun r = strata("plan --layers " + broken + three_devices());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find(broken + ": not valid JSON"), std::string::npos) << r.out;
  const CliRun both = strata("plan" + three_devices());
  EXPECT_EQ(both.code, 2);
  EXPECT_NE(both.out.find("exactly one of --layers"), std::string::npos);
  const CliRun obj = strata("plan --layers " + testing::fixture("llama-1.1b-q4_0.json") +
                            three_devices() + " --objective fast");
  EXPECT_EQ(obj.code, 2);
  const CliRun eps = strata("plan --layers " + testing::fixture("llama-1.1b-q4_0.json") +
                            three_devices() + " --max-energy-j-per-token 0.001");
  EXPECT_EQ(eps.code, 2);
  EXPECT_NE(eps.out.find("no plan meets --max-energy-j-per-token 0.001: the least energy"),
            std::string::npos)
      << eps.out;
}

TEST_F(PlanCli, BandwidthScenarios) {
  const CliRun r = strata("plan --layers " + testing::fixture("llama-1.1b-q4_0.json") +
                          three_devices() + " --links " + testing::fixture("links-100mbit.json") +
                          " --objective throughput --bandwidth-scenarios 1,0.1,0.01");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("bandwidth scenarios: every link's bandwidth x 1, 0.1, 0.01"),
            std::string::npos);
  EXPECT_NE(r.out.find("stays best:"), std::string::npos);
}

}  // namespace
}  // namespace strata::partitioner
