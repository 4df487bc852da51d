#include "strata/partitioner/device_caps.h"

#include <cmath>

#include "json_util.h"
#include "strata/base/io.h"

namespace strata::partitioner {
namespace {

using internal::Json;

// A figure at `path`: the rate a run sees, which is its stats' median where the profile
// measured it over repetitions (`value` is then their p90, what the device reaches when
// nothing interferes: `strata generate` decoded 3.6-6.9% below the median-based prediction
// and 12-17% below the p90-based one), else its value; present, numeric, non-negative and not
// `unavailable`; otherwise nullopt and `why` says what was wrong ("is missing", "is
// unavailable (not_present)").
std::optional<double> figure(const Json& root, const std::string& path, std::string* why) {
  const Json* node = internal::find_path(root, path);
  if (node == nullptr || node->is_null()) {
    *why = path + " is missing";
    return std::nullopt;
  }
  if (!node->is_object()) {
    *why = path + " is not a figure object ({\"value\": ..., \"provenance\": ...})";
    return std::nullopt;
  }
  const auto prov = node->find("provenance");
  if (prov != node->end() && prov->is_string() && *prov == "unavailable") {
    const auto reason = node->find("reason");
    *why = path + " is unavailable" +
           (reason != node->end() && reason->is_string() ? " (" + reason->get<std::string>() + ")"
                                                         : std::string());
    return std::nullopt;
  }
  const auto value = node->find("value");
  if (value == node->end() || value->is_null()) {
    *why = path + " has no value";
    return std::nullopt;
  }
  if (!value->is_number() || !std::isfinite(value->get<double>()) || value->get<double>() < 0) {
    *why = path + ".value must be a non-negative number, not " + value->dump();
    return std::nullopt;
  }
  const auto stats = node->find("stats");
  if (stats != node->end() && stats->is_object()) {
    const auto median = stats->find("median");
    if (median != stats->end() && median->is_number() && std::isfinite(median->get<double>()) &&
        median->get<double>() > 0) {
      return median->get<double>();
    }
  }
  return value->get<double>();
}

std::map<std::string, double> per_type(const Json& root, const char* section) {
  std::map<std::string, double> out;
  const Json* node = internal::find_path(root, std::string("compute.") + section);
  if (node == nullptr || !node->is_object()) return out;
  for (const auto& [type, body] : node->items()) {
    std::string why;
    const auto v =
        figure(root, std::string("compute.") + section + "." + type + ".threads_all", &why);
    if (v && *v > 0) out[type] = *v;
  }
  return out;
}

}  // namespace

Result<DeviceCaps> device_caps_from_profile(std::string_view json_text, const std::string& source,
                                            const std::string& name, int64_t mem_budget_bytes) {
  STRATA_ASSIGN_OR_RETURN(const Json root, internal::parse_json(json_text, source));
  if (!root.is_object()) return invalid_argument(source + ": a profile must be a JSON object");
  DeviceCaps d;
  d.source = source;
  d.name = name;
  if (d.name.empty()) {
    const auto n = root.find("name");
    if (n == root.end() || !n->is_string() || n->get<std::string>().empty()) {
      return invalid_argument(source + ": the profile has no name; give --device NAME=" + source);
    }
    d.name = n->get<std::string>();
  }
  const std::string who = "device '" + d.name + "' (" + source + ")";
  std::string why;

  if (const auto total = figure(root, "memory.total_bytes", &why)) {
    d.mem_total_bytes = static_cast<int64_t>(*total);
  }
  if (mem_budget_bytes > 0) {
    if (d.mem_total_bytes > 0 && mem_budget_bytes > d.mem_total_bytes) {
      return invalid_argument(who + ": mem=" + std::to_string(mem_budget_bytes) +
                              " exceeds memory.total_bytes " + std::to_string(d.mem_total_bytes));
    }
    d.mem_budget_bytes = mem_budget_bytes;
    d.mem_budget_from_flag = true;
  } else {
    const auto avail = figure(root, "memory.available_bytes", &why);
    if (!avail) return invalid_argument(who + ": " + why + " (or give mem=BYTES)");
    if (*avail < 1) return invalid_argument(who + ": memory.available_bytes is 0");
    d.mem_budget_bytes = static_cast<int64_t>(*avail);
  }

  std::string why_triad;
  if (const auto read = figure(root, "memory.read_gb_per_s.threads_all", &why)) {
    d.mem_read_gb_per_s = *read;
    d.mem_read_figure = "memory.read_gb_per_s.threads_all";
  } else if (const auto triad = figure(root, "memory.triad_gb_per_s.threads_all", &why_triad)) {
    d.mem_read_gb_per_s = *triad;
    d.mem_read_figure = "memory.triad_gb_per_s.threads_all";
  } else {
    return invalid_argument(who + ": " + why + " (and its fallback " + why_triad + ")");
  }
  if (d.mem_read_gb_per_s <= 0) {
    return invalid_argument(who + ": " + d.mem_read_figure + " is 0");
  }

  d.gemv_gflops = per_type(root, "gemv_gflops");
  d.gemm_gflops = per_type(root, "gemm_gflops");
  std::string why_attention;
  if (const auto a = figure(root, "compute.attention_gflops.threads_all", &why_attention);
      a && *a > 0) {
    d.attention_gflops = *a;
  }

  // Streaming reads whole layers in large chunks; the 4 MiB figure is the closest the
  // profile has to that, else its largest chunk.
  if (const Json* seq = internal::find_path(root, "storage.seq_read_mb_per_s");
      seq != nullptr && seq->is_object()) {
    int64_t best_chunk = 0;
    double best_mb_per_s = 0;
    for (const auto& [chunk_text, body] : seq->items()) {
      char* end = nullptr;
      const long long chunk = std::strtoll(chunk_text.c_str(), &end, 10);
      if (end == chunk_text.c_str() || *end != '\0' || chunk <= 0) continue;
      const auto v = figure(root, "storage.seq_read_mb_per_s." + chunk_text, &why);
      if (!v || *v <= 0) continue;
      d.storage_seq_read_mb_per_s[chunk] = *v;
      const bool is_4mib = chunk == 4194304;
      if (best_chunk != 4194304 && (is_4mib || chunk > best_chunk)) {
        best_chunk = chunk;
        best_mb_per_s = *v;
      }
    }
    d.storage_chunk_bytes = best_chunk;
    d.storage_read_mb_per_s = best_mb_per_s;
  }

  d.idle_watts = figure(root, "power.idle_watts", &why);
  d.load_watts = figure(root, "power.load_watts", &why);
  if (const Json* b = internal::find_path(root, "power.boundary"); b != nullptr && b->is_string()) {
    d.power_boundary = b->get<std::string>();
  }
  return d;
}

Result<DeviceCaps> load_device(const std::string& spec) {
  std::string rest = spec;
  std::string name;
  int64_t mem = 0;
  if (const size_t comma = rest.find(",mem="); comma != std::string::npos) {
    auto bytes = parse_bytes(rest.substr(comma + 5));
    if (!bytes.ok() || *bytes <= 0) {
      return invalid_argument("--device " + spec + ": mem= needs a positive byte count like 6G");
    }
    mem = *bytes;
    rest = rest.substr(0, comma);
  }
  if (const size_t eq = rest.find('='); eq != std::string::npos) {
    name = rest.substr(0, eq);
    rest = rest.substr(eq + 1);
    if (name.empty()) return invalid_argument("--device " + spec + ": the name before = is empty");
  }
  if (rest.empty()) return invalid_argument("--device " + spec + ": no profile file given");
  STRATA_ASSIGN_OR_RETURN(const std::string text, read_file(rest));
  return device_caps_from_profile(text, rest, name, mem);
}

Status require_compute(const DeviceCaps& device, const std::vector<std::string>& weight_types) {
  for (const auto& type : weight_types) {
    for (const auto* section : {"gemv_gflops", "gemm_gflops"}) {
      const auto& table =
          std::string(section) == "gemv_gflops" ? device.gemv_gflops : device.gemm_gflops;
      if (table.count(type) == 0) {
        return invalid_argument(
            "device '" + device.name + "' (" + device.source + "): compute." + section + "." +
            type + ".threads_all is missing or unavailable (the model has " + type + " weights)");
      }
    }
  }
  return {};
}

}  // namespace strata::partitioner
