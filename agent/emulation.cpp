#include "emulation.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "strata/base/io.h"

namespace strata::agent {
namespace {

// The value of the figure at `path` (a JSON pointer), or an error naming it.
Result<double> figure(const nlohmann::json& doc, const std::string& file, const std::string& path) {
  const nlohmann::json::json_pointer ptr(path);
  if (!doc.contains(ptr)) return invalid_argument(file + ": figure " + path + " is missing");
  const nlohmann::json& f = doc.at(ptr);
  const nlohmann::json& v = f.is_object() ? f.value("value", nlohmann::json()) : f;
  if (!v.is_number() || v.get<double>() <= 0) {
    return invalid_argument(file + ": figure " + path + " is unavailable or not positive");
  }
  return v.get<double>();
}

Result<nlohmann::json> load_json(const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(const std::string text, read_file(path));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return corrupt(path + ": not a JSON profile");
  return j;
}

Result<double> gemm(const nlohmann::json& doc, const std::string& file, const std::string& dtype,
                    const std::string& threads) {
  Result<double> g = figure(doc, file, "/compute/gemm_gflops/" + dtype + "/" + threads + "/value");
  if (g.ok()) return g;
  return figure(doc, file, "/compute/gemm_gflops/f32/" + threads + "/value");
}

}  // namespace

Result<Pace> load_pace(const std::string& local_profile, const std::string& reference_profile,
                       const std::string& dtype, int n_threads) {
  const std::string local_threads = n_threads == 1 ? "threads_1" : "threads_all";
  STRATA_ASSIGN_OR_RETURN(const nlohmann::json local, load_json(local_profile));
  STRATA_ASSIGN_OR_RETURN(const nlohmann::json ref, load_json(reference_profile));
  STRATA_ASSIGN_OR_RETURN(const double bw_local,
                          figure(local, local_profile, "/memory/read_gb_per_s/" + local_threads + "/value"));
  STRATA_ASSIGN_OR_RETURN(const double bw_ref, figure(ref, reference_profile,
                                                      "/memory/read_gb_per_s/threads_all/value"));
  STRATA_ASSIGN_OR_RETURN(const double gemm_local, gemm(local, local_profile, dtype, local_threads));
  STRATA_ASSIGN_OR_RETURN(const double gemm_ref, gemm(ref, reference_profile, dtype, "threads_all"));
  Pace p;
  p.reference_name = ref.value("name", reference_profile);
  const double raw_decode = bw_local / bw_ref;
  const double raw_prefill = gemm_local / gemm_ref;
  p.decode_factor = std::max(1.0, raw_decode);
  p.prefill_factor = std::max(1.0, raw_prefill);
  if (Result<double> mem = figure(ref, reference_profile, "/memory/available_bytes/value");
      mem.ok()) {
    p.mem_cap_bytes = static_cast<int64_t>(*mem);
  } else if (Result<double> total = figure(ref, reference_profile, "/memory/total_bytes/value");
             total.ok()) {
    p.mem_cap_bytes = static_cast<int64_t>(*total);
  }
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "emulating %s: decode x%.2f (read %.1f vs %.1f GB/s), prefill x%.2f (gemm %.1f vs "
                "%.1f GFLOP/s)%s",
                p.reference_name.c_str(), p.decode_factor, bw_local, bw_ref, p.prefill_factor,
                gemm_local, gemm_ref,
                (raw_decode < 1 || raw_prefill < 1)
                    ? "; the reference is faster than this machine in part: clamped to x1"
                    : "");
  p.note = buf;
  return p;
}

}  // namespace strata::agent
