// Helpers shared by the partitioner tests: fixture paths and random small instances.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "strata/partitioner/cost_model.h"

namespace strata::partitioner::testing {

inline std::string fixture(const std::string& name) {
  return std::string(STRATA_PLAN_FIXTURES) + "/" + name;
}

struct RandomInstanceOptions {
  int min_units = 1;
  int max_units = 8;
  int min_devices = 1;
  int max_devices = 4;
  bool all_copies = false;    // every device a copy of the first, every link alike
  bool no_power = false;      // no device has power figures (energy leaves dominance)
  bool tight_memory = false;  // budgets of 150-600 MB: each device holds only a few units
};

// A random instance: units with random costs (some without weights, mixed types), devices
// with random figures (sometimes without power or storage, sometimes with budgets too small
// for some ranges, sometimes an exact copy of another device), random links, random
// sequences / prompt / context, streaming and coordinator on or off.
inline CostModel random_instance(uint64_t seed, const RandomInstanceOptions& opt = {}) {
  std::mt19937_64 rng(seed);
  auto uni = [&](double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng);
  };
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  LayerTable table;
  table.name = "random";
  table.input_bytes_per_token = pick(1, 8);
  const int n = pick(opt.min_units, opt.max_units);
  for (int i = 0; i < n; ++i) {
    LayerUnit u;
    u.name = "u" + std::to_string(i);
    u.kind = i == 0 && pick(0, 1) ? UnitKind::kEmbedding : UnitKind::kBlock;
    u.flops_per_token = uni(1e6, 4e8);
    u.attn_flops_per_token_per_ctx = pick(0, 1) ? uni(0, 1e4) : 0.0;
    if (pick(0, 5) > 0) {
      const int64_t bytes = pick(1, 200) * int64_t{1000000};
      u.weight_bytes_by_type[pick(0, 1) ? "q4_0" : "q8_0"] = bytes;
      u.weight_bytes = bytes;
      if (pick(0, 2) == 0) {
        u.weight_bytes_by_type["f32"] = pick(1, 100) * int64_t{1000};
        u.weight_bytes += u.weight_bytes_by_type["f32"];
      }
    }
    u.weight_bytes_read_per_token = u.weight_bytes;
    if (u.kind == UnitKind::kEmbedding) u.weight_bytes_read_per_token = u.weight_bytes / 1000;
    u.activation_bytes_out = pick(4, 64) * 256;
    u.kv_bytes_per_token = pick(0, 1) ? pick(0, 8) * 512 : 0;
    table.units.push_back(u);
  }
  const int d = pick(opt.min_devices, opt.max_devices);
  std::vector<DeviceCaps> devices;
  std::vector<int> copy_of(static_cast<size_t>(d), -1);
  for (int i = 0; i < d; ++i) {
    if (i > 0 && pick(0, 3) == 0) {  // an exact copy: exercises the symmetry reduction
      copy_of[static_cast<size_t>(i)] = pick(0, i - 1);
      DeviceCaps copy = devices[static_cast<size_t>(copy_of[static_cast<size_t>(i)])];
      copy.name = "dev" + std::to_string(i);
      devices.push_back(copy);
      continue;
    }
    DeviceCaps dev;
    dev.name = "dev" + std::to_string(i);
    dev.source = "random";
    dev.mem_budget_bytes =
        pick(0, 3) == 0 ? pick(50, 400) * int64_t{1000000} : pick(1, 20) * int64_t{1000000000};
    dev.mem_total_bytes = dev.mem_budget_bytes;
    dev.mem_read_gb_per_s = uni(2, 80);
    for (const char* t : {"q4_0", "q8_0", "f32"}) {
      dev.gemv_gflops[t] = uni(2, 150);
      dev.gemm_gflops[t] = uni(10, 600);
    }
    if (pick(0, 3) > 0) {
      dev.storage_read_mb_per_s = uni(50, 5000);
      dev.storage_chunk_bytes = 4194304;
    }
    if (pick(0, 4) > 0) {
      dev.idle_watts = uni(0.5, 10);
      dev.load_watts = *dev.idle_watts + uni(0, 40);
    }
    devices.push_back(dev);
  }
  // The options below draw from the generator only when set, so default instances stay as
  // they were.
  for (int i = 0; i < d; ++i) {
    DeviceCaps& dev = devices[static_cast<size_t>(i)];
    if (opt.all_copies && i > 0) {
      dev = devices[0];
      dev.name = "dev" + std::to_string(i);
    }
    if (opt.no_power) {
      dev.idle_watts.reset();
      dev.load_watts.reset();
    }
    if (opt.tight_memory && (!opt.all_copies || i == 0)) {
      dev.mem_budget_bytes = pick(150, 600) * int64_t{1000000};
      dev.mem_total_bytes = dev.mem_budget_bytes;
    }
    if (opt.all_copies && opt.tight_memory && i > 0) {
      dev.mem_budget_bytes = devices[0].mem_budget_bytes;
      dev.mem_total_bytes = dev.mem_budget_bytes;
    }
  }
  std::vector<std::string> names;
  for (const auto& dev : devices) names.push_back(dev.name);
  LinkTable links(names, Link{uni(0, 5), uni(10, 2000), true});
  for (int a = 0; a < d; ++a) {
    for (int b = a + 1; b < d; ++b) {
      if (pick(0, 2) > 0) links.set(a, b, {uni(0, 10), uni(10, 2000), false});
    }
  }
  if (opt.all_copies) {
    for (int a = 0; a < d; ++a) {
      for (int b = a + 1; b < d; ++b) links.set(a, b, links.default_link());
    }
  }
  for (int i = 0; i < d && !opt.all_copies; ++i) {  // most copies also get their original's links
    const int orig = copy_of[static_cast<size_t>(i)];
    if (orig < 0 || pick(0, 3) == 0) continue;
    for (int k = 0; k < d; ++k) {
      if (k != i && k != orig) links.set(i, k, links.get(orig, k));
    }
  }
  PlanSettings settings;
  settings.sequences = pick(1, 8);
  // Half the instances let the model choose the micro-batch; the rest take a divisor of N.
  if (pick(0, 1) == 1) {
    do settings.micro_batch = pick(1, static_cast<int>(settings.sequences));
    while (settings.sequences % settings.micro_batch != 0);
  }
  settings.context = pick(16, 4096);
  settings.prompt_len = pick(1, static_cast<int>(settings.context));
  settings.allow_streaming = pick(0, 1) == 1;
  switch (pick(0, 2)) {
    case 0: settings.coordinator = PlanSettings::Coordinator::kNone; break;
    case 1:
      settings.coordinator = PlanSettings::Coordinator::kDevice;
      settings.coordinator_device = pick(0, d - 1);
      break;
    default:
      settings.coordinator = PlanSettings::Coordinator::kExternal;
      settings.coordinator_link = {uni(0, 5), uni(10, 1000), false};
  }
  auto model = CostModel::build(table, devices, links, settings);
  STRATA_CHECK_MSG(model.ok(), model.status().to_string());
  return std::move(model).value();
}

}  // namespace strata::partitioner::testing
