// Who the device is: CPU identity through libcpuid on a live x86 machine, else /proc/cpuinfo
// and /sys/devices/system/cpu (ARM, a recorded tree, or libcpuid failing), each labelled with
// where it came from; the board model from the device tree or DMI; and whether it is a VM.
#include <libcpuid/libcpuid.h>
#include <sched.h>
#include <sys/utsname.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <sstream>

#include "strata/profiles/probes.h"

namespace strata::profiles {
namespace {

// One "processor" block of /proc/cpuinfo as key -> value, plus the trailing global lines
// (Raspberry Pi kernels print Hardware/Revision/Model after the last block).
struct CpuInfo {
  std::vector<std::map<std::string, std::string>> processors;
  std::map<std::string, std::string> global;
};

CpuInfo parse_cpuinfo(const std::string& text) {
  CpuInfo info;
  std::map<std::string, std::string> block;
  std::istringstream in(text);
  std::string line;
  auto flush = [&] {
    if (block.empty()) return;
    if (block.count("processor") != 0) {
      info.processors.push_back(block);
    } else {
      info.global.insert(block.begin(), block.end());
    }
    block.clear();
  };
  while (std::getline(in, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) {
      flush();
      continue;
    }
    auto strip = [](std::string s) {
      const size_t b = s.find_first_not_of(" \t");
      const size_t e = s.find_last_not_of(" \t\r");
      return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
    };
    block[strip(line.substr(0, colon))] = strip(line.substr(colon + 1));
  }
  flush();
  return info;
}

std::set<std::string> words(const std::string& s) {
  std::set<std::string> out;
  std::istringstream in(s);
  std::string w;
  while (in >> w) out.insert(w);
  return out;
}

std::optional<int64_t> to_int(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 0);
  if (end == s.c_str()) return std::nullopt;
  return v;
}

// "0-3,6" -> 5 CPUs.
int64_t count_cpu_list(const std::string& list) {
  int64_t n = 0;
  std::istringstream in(list);
  std::string part;
  while (std::getline(in, part, ',')) {
    const size_t dash = part.find('-');
    if (dash == std::string::npos) {
      if (to_int(part)) ++n;
    } else {
      const auto a = to_int(part.substr(0, dash));
      const auto b = to_int(part.substr(dash + 1));
      if (a && b && *b >= *a) n += *b - *a + 1;
    }
  }
  return n;
}

// "32K" / "1024K" / "8M" (sysfs cache size) -> bytes.
std::optional<int64_t> parse_cache_size(const std::string& s) {
  const auto v = to_int(s);
  if (!v) return std::nullopt;
  if (s.back() == 'K') return *v * 1024;
  if (s.back() == 'M') return *v * 1024 * 1024;
  return *v;
}

const char* arm_part_name(int64_t implementer, int64_t part) {
  if (implementer != 0x41) return "";
  switch (part) {
    case 0xd03: return "Cortex-A53";
    case 0xd04: return "Cortex-A35";
    case 0xd05: return "Cortex-A55";
    case 0xd07: return "Cortex-A57";
    case 0xd08: return "Cortex-A72";
    case 0xd09: return "Cortex-A73";
    case 0xd0a: return "Cortex-A75";
    case 0xd0b: return "Cortex-A76";
    case 0xd0c: return "Neoverse-N1";
    case 0xd0d: return "Cortex-A77";
    case 0xd41: return "Cortex-A78";
    case 0xd42: return "Cortex-A78AE";
    case 0xd46: return "Cortex-A510";
    case 0xd47: return "Cortex-A710";
    case 0xd48: return "Cortex-X2";
    case 0xd4d: return "Cortex-A715";
    case 0xd4e: return "Cortex-X3";
    default: return "";
  }
}

const char* arm_vendor_name(int64_t implementer) {
  switch (implementer) {
    case 0x41: return "ARM";
    case 0x42: return "Broadcom";
    case 0x4e: return "NVIDIA";
    case 0x51: return "Qualcomm";
    case 0x61: return "Apple";
    default: return "";
  }
}

// Maps kernel flag names (x86 "flags", ARM "Features") to the ISA names the profile uses.
std::vector<std::string> isa_from_flags(const std::set<std::string>& f) {
  static const std::pair<const char*, const char*> kMap[] = {
      {"sse4_2", "sse4_2"},
      {"avx", "avx"},
      {"avx2", "avx2"},
      {"fma", "fma"},
      {"f16c", "f16c"},
      {"avx512f", "avx512f"},
      {"avx512bw", "avx512bw"},
      {"avx512vl", "avx512vl"},
      {"avx512_vnni", "avx512_vnni"},
      {"avx512_bf16", "avx512_bf16"},
      {"avx_vnni", "avx_vnni"},
      {"amx_tile", "amx_tile"},
      {"amx_bf16", "amx_bf16"},
      {"amx_int8", "amx_int8"},
      {"asimd", "neon"},
      {"neon", "neon"},
      {"asimdhp", "fp16"},
      {"asimddp", "dotprod"},
      {"i8mm", "i8mm"},
      {"bf16", "bf16"},
      {"sve", "sve"},
      {"sve2", "sve2"},
  };
  std::vector<std::string> out;
  for (const auto& [flag, name] : kMap) {
    if (f.count(flag) != 0 && std::find(out.begin(), out.end(), name) == out.end()) {
      out.emplace_back(name);
    }
  }
  return out;
}

std::string hypervisor_from_dmi(const std::string& vendor, const std::string& product) {
  static const char* kVendors[] = {"QEMU",  "KVM",       "VMware",     "innotek", "Xen",
                                   "Bochs", "Parallels", "Amazon EC2", "Google"};
  for (const char* v : kVendors) {
    if (vendor.find(v) != std::string::npos || product.find(v) != std::string::npos) return v;
  }
  if (vendor.find("Microsoft") != std::string::npos &&
      product.find("Virtual") != std::string::npos) {
    return "Hyper-V";
  }
  return "";
}

const char* hypervisor_name(hypervisor_vendor_t h) {
  switch (h) {
    case HYPERVISOR_BHYVE: return "bhyve";
    case HYPERVISOR_HYPERV: return "Hyper-V";
    case HYPERVISOR_KVM: return "KVM";
    case HYPERVISOR_PARALLELS: return "Parallels";
    case HYPERVISOR_QEMU: return "QEMU";
    case HYPERVISOR_VIRTUALBOX: return "VirtualBox";
    case HYPERVISOR_VMWARE: return "VMware";
    case HYPERVISOR_XEN: return "Xen";
    default: return "unknown";
  }
}

// Restores the calling thread's CPU affinity when it goes out of scope. libcpuid's
// cpuid_get_all_raw_data moves the calling thread to each CPU in turn to read its cpuid and
// leaves it on the last one: every thread started afterwards inherited that single CPU, so the
// profiler's "all threads" bandwidth and GEMV figures measured two threads sharing one CPU
// (triad 25-33 GB/s where STREAM beside it gave 42-57).
class KeepAffinity {
 public:
  KeepAffinity() { saved_ = sched_getaffinity(0, sizeof mask_, &mask_) == 0; }
  ~KeepAffinity() {
    if (saved_) sched_setaffinity(0, sizeof mask_, &mask_);
  }
  KeepAffinity(const KeepAffinity&) = delete;
  KeepAffinity& operator=(const KeepAffinity&) = delete;

 private:
  cpu_set_t mask_{};
  bool saved_ = false;
};

// libcpuid's view of the live CPU; false when it cannot identify it (not x86, or failure).
bool identify_with_libcpuid(Device& d) {
  const KeepAffinity keep;
  if (!cpuid_present()) return false;
  cpu_raw_data_t raw{};
  cpu_id_t id{};
  if (cpuid_get_raw_data(&raw) != 0 || cpu_identify(&raw, &id) != 0) return false;
  const std::string src = std::string("libcpuid ") + cpuid_lib_version();
  d.cpu.vendor = id.vendor_str;
  d.cpu.brand = id.brand_str;
  d.cpu.codename = id.cpu_codename;
  d.cpu.family = id.ext_family;
  d.cpu.model = id.ext_model;
  d.cpu.stepping = id.stepping;
  d.cpu.source = src;
  if (id.total_logical_cpus > 0) {
    d.logical_cpus = read_figure(id.total_logical_cpus, "count", src + " total_logical_cpus");
  }
  auto cache = [&](const char* key, int32_t kb, const char* field) {
    if (kb > 0) d.caches[key] = read_figure(kb * 1024.0, "bytes", src + " " + field);
  };
  cache("l1d_bytes", id.l1_data_cache, "l1_data_cache");
  cache("l2_bytes", id.l2_cache, "l2_cache");
  cache("l3_bytes", id.l3_cache, "l3_cache");
  static const std::pair<cpu_feature_t, const char*> kFlags[] = {
      {CPU_FEATURE_SSE4_2, "sse4_2"},
      {CPU_FEATURE_AVX, "avx"},
      {CPU_FEATURE_AVX2, "avx2"},
      {CPU_FEATURE_FMA3, "fma"},
      {CPU_FEATURE_F16C, "f16c"},
      {CPU_FEATURE_AVX512F, "avx512f"},
      {CPU_FEATURE_AVX512BW, "avx512bw"},
      {CPU_FEATURE_AVX512VL, "avx512vl"},
      {CPU_FEATURE_AVX512VNNI, "avx512_vnni"},
  };
  d.isa.clear();
  for (const auto& [feature, name] : kFlags) {
    if (id.flags[feature] != 0) d.isa.emplace_back(name);
  }
  d.isa_source = src;
  const hypervisor_vendor_t hv = cpuid_get_hypervisor(&raw, &id);
  if (hv != HYPERVISOR_NONE) {
    d.virtualized = true;
    d.hypervisor = hypervisor_name(hv);
    d.virtualization_source = src + " cpuid hypervisor leaf";
  }
  // With a null raw array cpu_identify_all gathers one itself and never frees it (libcpuid
  // 0.6.2), so the array is ours to free.
  cpu_raw_data_array_t raw_all{};
  system_id_t sys{};
  if (cpuid_get_all_raw_data(&raw_all) == 0) {
    if (cpu_identify_all(&raw_all, &sys) == 0) {
      if (sys.num_cpu_types > 1) {
        d.core_types.clear();
        for (int i = 0; i < sys.num_cpu_types; ++i) {
          const cpu_id_t& t = sys.cpu_types[i];
          CoreType ct;
          ct.purpose = t.purpose == PURPOSE_PERFORMANCE  ? "performance"
                       : t.purpose == PURPOSE_EFFICIENCY ? "efficiency"
                                                         : "general";
          ct.name = t.cpu_codename;
          ct.n_logical_cpus = t.num_logical_cpus;
          d.core_types.push_back(ct);
        }
        d.core_types_source = src + " cpu_identify_all";
      }
      cpuid_free_system_id(&sys);
    }
    cpuid_free_raw_data_array(&raw_all);
  }
  return true;
}

// Identity from /proc/cpuinfo (x86 or ARM layout).
void identify_from_cpuinfo(const CpuInfo& info, Device& d) {
  d.cpu.source = "/proc/cpuinfo";
  if (info.processors.empty()) return;
  const auto& p = info.processors.front();
  auto get = [&](const char* k) {
    const auto it = p.find(k);
    return it == p.end() ? std::string() : it->second;
  };
  if (!get("vendor_id").empty()) {  // x86
    d.cpu.vendor = get("vendor_id");
    d.cpu.brand = get("model name");
    d.cpu.family = to_int(get("cpu family"));
    d.cpu.model = to_int(get("model"));
    d.cpu.stepping = to_int(get("stepping"));
    d.isa = isa_from_flags(words(get("flags")));
  } else {  // ARM: implementer/part codes; the brand is the core's name
    const auto impl = to_int(get("CPU implementer")).value_or(-1);
    const auto part = to_int(get("CPU part")).value_or(-1);
    d.cpu.vendor = arm_vendor_name(impl);
    d.cpu.brand = arm_part_name(impl, part);
    if (d.cpu.brand.empty()) d.cpu.brand = get("model name");
    d.cpu.family = to_int(get("CPU architecture"));
    d.cpu.model = part >= 0 ? std::optional<int64_t>(part) : std::nullopt;
    d.cpu.stepping = to_int(get("CPU revision"));
    d.isa = isa_from_flags(words(get("Features")));
  }
  d.isa_source = "/proc/cpuinfo";
  // ARM big.LITTLE: each distinct core part is one core type.
  std::map<std::string, int64_t> parts;
  for (const auto& proc : info.processors) {
    const auto it = proc.find("CPU part");
    if (it == proc.end()) break;
    const auto impl = proc.count("CPU implementer") ? to_int(proc.at("CPU implementer")) : 0;
    std::string name = arm_part_name(impl.value_or(0), to_int(it->second).value_or(0));
    parts[name.empty() ? it->second : name] += 1;
  }
  if (parts.size() > 1) {
    d.core_types.clear();
    for (const auto& [name, n] : parts) d.core_types.push_back({"general", name, n});
    d.core_types_source = "/proc/cpuinfo CPU part";
  }
}

void identify_topology(SysTree& sys, const CpuInfo& info, Device& d) {
  const std::string base = "/sys/devices/system/cpu";
  std::set<std::pair<int64_t, int64_t>> cores;
  int64_t n_cpus = 0;
  for (const std::string& name : sys.list(base)) {
    if (name.size() < 4 || name.compare(0, 3, "cpu") != 0 || !std::isdigit(name[3])) continue;
    ++n_cpus;
    const auto core = sys.read_int(base + "/" + name + "/topology/core_id");
    const auto pkg = sys.read_int(base + "/" + name + "/topology/physical_package_id");
    if (core.ok()) cores.insert({pkg.ok() ? *pkg : 0, *core});
  }
  if (!d.logical_cpus.available()) {
    const auto online = sys.read(base + "/online");
    if (online.ok() && count_cpu_list(*online) > 0) {
      d.logical_cpus =
          read_figure(static_cast<double>(count_cpu_list(*online)), "count", base + "/online");
    } else if (!info.processors.empty()) {
      d.logical_cpus = read_figure(static_cast<double>(info.processors.size()), "count",
                                   "/proc/cpuinfo processor entries");
    } else {
      d.logical_cpus = unavailable_figure("count", Reason::kNotPresent, base + "/online");
    }
  }
  if (!cores.empty()) {
    d.cores = read_figure(static_cast<double>(cores.size()), "count",
                          base + "/cpu*/topology/{physical_package_id,core_id}");
  } else if (n_cpus > 0) {
    d.cores = read_figure(static_cast<double>(n_cpus), "count",
                          base + "/cpu* (no topology: one core per cpu)");
  } else {
    d.cores = unavailable_figure("count", Reason::kNotPresent, base + "/cpu*/topology");
  }
  // Caches from cpu0's cache/index* when libcpuid gave none.
  const std::string cache = base + "/cpu0/cache";
  for (const std::string& index : sys.list(cache)) {
    if (index.compare(0, 5, "index") != 0) continue;
    const std::string dir = cache + "/" + index;
    const auto level = sys.read_int(dir + "/level");
    const auto type = sys.read(dir + "/type");
    const auto size = sys.read(dir + "/size");
    if (!level.ok() || !type.ok() || !size.ok()) continue;
    if (*type == "Instruction") continue;
    const std::string key = "l" + std::to_string(*level) + (*level == 1 ? "d" : "") + "_bytes";
    const auto bytes = parse_cache_size(*size);
    if (bytes && d.caches.count(key) == 0)
      d.caches[key] = read_figure(*bytes, "bytes", dir + "/size");
  }
  // Intel hybrid without libcpuid: the kernel exposes one PMU per core type.
  if (d.core_types.empty()) {
    for (const auto& [pmu, purpose] :
         {std::pair{"cpu_core", "performance"}, std::pair{"cpu_atom", "efficiency"}}) {
      const auto cpus = sys.read(std::string("/sys/devices/") + pmu + "/cpus");
      if (cpus.ok()) {
        d.core_types.push_back({purpose, pmu, count_cpu_list(*cpus)});
        d.core_types_source = "/sys/devices/cpu_{core,atom}/cpus";
      }
    }
  }
  if (d.core_types.empty() && d.logical_cpus.available()) {
    d.core_types.push_back({"general", d.cpu.brand, static_cast<int64_t>(*d.logical_cpus.value)});
    d.core_types_source = "one core type (no hybrid topology found)";
  }
}

void identify_board(SysTree& sys, Device& d) {
  for (const char* path : {"/proc/device-tree/model", "/sys/firmware/devicetree/base/model"}) {
    const auto model = sys.read(path);
    if (model.ok() && !model->empty()) {
      d.board_model = *model;
      d.board_model_source = path;
      return;
    }
  }
  const auto vendor = sys.read("/sys/class/dmi/id/sys_vendor");
  const auto product = sys.read("/sys/class/dmi/id/product_name");
  if (vendor.ok() || product.ok()) {
    std::string m = vendor.ok() ? *vendor : "";
    if (product.ok()) m += (m.empty() ? "" : " ") + *product;
    d.board_model = m;
    d.board_model_source = "/sys/class/dmi/id/{sys_vendor,product_name}";
    return;
  }
  d.board_model_source = "no device-tree model and no DMI";
}

void identify_virtualization(SysTree& sys, const CpuInfo& info, Device& d) {
  std::vector<std::string> evidence;
  if (d.virtualized) evidence.push_back(d.virtualization_source);
  if (!info.processors.empty()) {
    const auto it = info.processors.front().find("flags");
    if (it != info.processors.front().end() && words(it->second).count("hypervisor") != 0) {
      evidence.emplace_back("/proc/cpuinfo flag 'hypervisor'");
    }
  }
  const std::string hv = hypervisor_from_dmi(
      sys.read("/sys/class/dmi/id/sys_vendor").ok() ? *sys.read("/sys/class/dmi/id/sys_vendor")
                                                    : "",
      sys.read("/sys/class/dmi/id/product_name").ok() ? *sys.read("/sys/class/dmi/id/product_name")
                                                      : "");
  if (!hv.empty()) {
    evidence.push_back("/sys/class/dmi/id/sys_vendor '" + hv + "'");
    if (!d.hypervisor) d.hypervisor = hv;
  }
  const auto hv_type = sys.read("/sys/hypervisor/type");
  if (hv_type.ok() && !hv_type->empty()) {
    evidence.push_back("/sys/hypervisor/type '" + *hv_type + "'");
    if (!d.hypervisor) d.hypervisor = *hv_type;
  }
  const auto compatible = sys.read("/proc/device-tree/compatible");
  if (compatible.ok() && compatible->find("linux,dummy-virt") != std::string::npos) {
    evidence.emplace_back("/proc/device-tree/compatible 'linux,dummy-virt'");
    if (!d.hypervisor) d.hypervisor = "QEMU (dummy-virt)";
  }
  d.virtualized = !evidence.empty();
  if (evidence.empty()) {
    d.virtualization_source =
        "no hypervisor seen (cpuid/cpuinfo flag, DMI vendor, /sys/hypervisor, device tree)";
    return;
  }
  std::string s;
  for (const auto& e : evidence) s += (s.empty() ? "" : "; ") + e;
  d.virtualization_source = s;
}

}  // namespace

Device probe_device(SysTree& sys) {
  Device d;
  const auto cpuinfo_text = sys.read("/proc/cpuinfo");
  const CpuInfo info = parse_cpuinfo(cpuinfo_text.ok() ? *cpuinfo_text : "");
  const auto osrelease = sys.read("/proc/sys/kernel/osrelease");
  d.kernel = osrelease.ok() ? *osrelease : "";
  if (sys.live()) {
    utsname u{};
    if (uname(&u) == 0) d.arch = u.machine;
  } else if (!info.processors.empty()) {
    const auto& p = info.processors.front();
    if (p.count("CPU architecture") != 0) {
      d.arch = p.at("CPU architecture") == "8" ? "aarch64" : "arm";
    } else if (p.count("flags") != 0) {
      d.arch = words(p.at("flags")).count("lm") != 0 ? "x86_64" : "i686";
    }
  }
  // libcpuid only sees the CPU it runs on, so a recorded tree is identified from its files.
  if (!(sys.live() && identify_with_libcpuid(d))) identify_from_cpuinfo(info, d);
  if (sys.live() && d.cpu.source.rfind("libcpuid", 0) == 0 && !info.processors.empty()) {
    // libcpuid 0.6 knows no AVX-VNNI, AVX512-BF16 or AMX: the kernel's flags fill them in.
    const auto it = info.processors.front().find("flags");
    if (it != info.processors.front().end()) {
      bool added = false;
      for (const std::string& name : isa_from_flags(words(it->second))) {
        if (std::find(d.isa.begin(), d.isa.end(), name) == d.isa.end()) {
          d.isa.push_back(name);
          added = true;
        }
      }
      if (added) d.isa_source += "; avx_vnni/avx512_bf16/amx from /proc/cpuinfo flags";
    }
  }
  identify_topology(sys, info, d);
  identify_board(sys, d);
  identify_virtualization(sys, info, d);
  return d;
}

}  // namespace strata::profiles
