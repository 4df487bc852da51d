// Streamed decode against the storage bound and against mmap under the same memory limit.
//
//   bench_streaming [--strata build/release/bin/strata] [--models-dir build/bench-models]
//       [--model FILE.gguf] [--rounds 3] [--threads 2] [--prompt 16] [--gen 16]
//       [--budget-fraction 0.5] [--no-sparse] [--no-cgroup] [--json out.json]
//
// On the 1.1B Llama shape in Q4_0 (--model, else synthesized into --models-dir; repacked into
// --models-dir when missing),
// with a weight budget of half the file, every round runs, alternated:
//   * a plain O_DIRECT sequential read of the file at the reader's chunk size, one request at
//     a time and with the reader's depth (pread threads, io_uring), the best of them being the
//     storage bandwidth the bound uses, measured beside each run it bounds;
//   * `strata generate --mem-budget` on the repacked file with each reader, and on the file as
//     synthesized (per-tensor extents) with the default reader (pread);
//   * `strata generate` without a budget (mmap) inside a memory cgroup limited to the peak RSS
//     of the streamed run, after dropping the file from the page cache;
//   * the same shape with a ReLU FFN: dense streaming against sparse FFN loading;
//   * the model fully resident, for the compute speed.
// Prints a table a person can paste, medians over rounds. O_DIRECT keeps the streamed runs off
// the page cache; the mmap run's page-cache state before it is measured (mincore) and printed.
#include <fcntl.h>
#include <liburing.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "strata/base/io.h"
#include "strata/base/status.h"

namespace {

namespace fs = std::filesystem;
using strata::Result;
using strata::Status;

struct Options {
  std::string strata = "build/release/bin/strata";
  std::string models_dir = "build/bench-models";
  std::string model;  // the dense Q4_0 model; empty: synthesized into models_dir
  int rounds = 3;
  int threads = 2;
  int prompt = 16;
  int gen = 16;
  double budget_fraction = 0.5;
  bool sparse = true;
  bool cgroup = true;
  std::string json_out;
};

struct Run {
  nlohmann::json j;       // strata generate --json
  int64_t storage_bytes;  // read from storage by the process (getrusage ru_inblock)
};

Result<std::string> run_capture(const std::string& cmd) {
  std::fprintf(stderr, "  $ %s\n", cmd.c_str());
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return strata::io_error("cannot run: " + cmd);
  std::string out;
  char buf[65536];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int rc = ::pclose(p);
  if (rc != 0) return strata::internal_error("command failed (status " + std::to_string(rc) + ")");
  return out;
}

int64_t children_inblock_bytes() {
  rusage ru{};
  ::getrusage(RUSAGE_CHILDREN, &ru);
  return static_cast<int64_t>(ru.ru_inblock) * 512;
}

Result<Run> run_generate(const std::string& cmd) {
  const int64_t before = children_inblock_bytes();
  STRATA_ASSIGN_OR_RETURN(const std::string out, run_capture(cmd + " 2>/dev/null"));
  Run r;
  r.j = nlohmann::json::parse(out, nullptr, false);
  if (r.j.is_discarded()) return strata::internal_error("not JSON: " + out.substr(0, 200));
  r.storage_bytes = children_inblock_bytes() - before;
  return r;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// A page-aligned buffer on transparent huge pages where the kernel allows them (as the
// streaming reader's): O_DIRECT into 4 KiB pages splits each request at the device's segment
// limit, which would understate what the storage delivers.
void* huge_buffer(int64_t bytes) {
  void* p = ::mmap(nullptr, static_cast<size_t>(bytes), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) std::exit(1);
  ::madvise(p, static_cast<size_t>(bytes), MADV_HUGEPAGE);
  std::memset(p, 0, static_cast<size_t>(bytes));
  return p;
}

// A plain sequential O_DIRECT read of the whole file: `depth` threads take consecutive chunks
// of `chunk` bytes. MB/s (10^6 bytes per second).
Result<double> seq_read_mb_per_s(const std::string& path, int64_t chunk, int depth) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (fd < 0) return strata::io_error(path + ": O_DIRECT open: " + std::strerror(errno));
  const auto size = static_cast<int64_t>(fs::file_size(path));
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  const double t0 = strata::now_s();
  std::vector<std::thread> ts;
  for (int t = 0; t < depth; ++t) {
    ts.emplace_back([&] {
      void* buf = huge_buffer(chunk);
      for (int64_t at = next.fetch_add(chunk); at < size; at = next.fetch_add(chunk)) {
        if (::pread(fd, buf, static_cast<size_t>(chunk), at) < 0) failed = true;
      }
      ::munmap(buf, static_cast<size_t>(chunk));
    });
  }
  for (std::thread& t : ts) t.join();
  const double dt = strata::now_s() - t0;
  ::close(fd);
  if (failed) return strata::io_error(path + ": O_DIRECT read failed");
  return static_cast<double>(size) / dt / 1e6;
}

// The same read through io_uring: `depth` reads of `chunk` bytes in flight from one thread,
// as the streaming reader issues them.
Result<double> uring_read_mb_per_s(const std::string& path, int64_t chunk, int depth) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (fd < 0) return strata::io_error(path + ": O_DIRECT open: " + std::strerror(errno));
  const auto size = static_cast<int64_t>(fs::file_size(path));
  io_uring ring{};
  if (io_uring_queue_init(static_cast<unsigned>(depth), &ring, 0) < 0) {
    ::close(fd);
    return strata::unsupported("io_uring unavailable");
  }
  std::vector<void*> bufs(static_cast<size_t>(depth));
  for (void*& b : bufs) b = huge_buffer(chunk);
  const double t0 = strata::now_s();
  int64_t next = 0;
  int in_flight = 0;
  bool failed = false;
  std::vector<size_t> idle;
  for (size_t i = 0; i < bufs.size(); ++i) idle.push_back(i);
  while (in_flight > 0 || (next < size && !failed)) {
    while (!idle.empty() && next < size && !failed) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      const size_t b = idle.back();
      idle.pop_back();
      io_uring_prep_read(sqe, fd, bufs[b], static_cast<unsigned>(chunk),
                         static_cast<uint64_t>(next));
      io_uring_sqe_set_data64(sqe, b);
      next += chunk;
      ++in_flight;
    }
    io_uring_submit(&ring);
    io_uring_cqe* cqe = nullptr;
    if (io_uring_wait_cqe(&ring, &cqe) < 0) break;
    if (cqe->res < 0) failed = true;
    idle.push_back(static_cast<size_t>(io_uring_cqe_get_data64(cqe)));
    io_uring_cqe_seen(&ring, cqe);
    --in_flight;
  }
  const double dt = strata::now_s() - t0;
  io_uring_queue_exit(&ring);
  for (void* b : bufs) ::munmap(b, static_cast<size_t>(chunk));
  ::close(fd);
  if (failed) return strata::io_error(path + ": O_DIRECT read failed");
  return static_cast<double>(size) / dt / 1e6;
}

// The storage bandwidth at `chunk` that bounds streaming: the best of a sequential read one
// request at a time, `depth` threads, and io_uring at `depth`.
double storage_mb_per_s(const std::string& path, int64_t chunk, int depth) {
  double best = 0;
  for (Result<double> r : {seq_read_mb_per_s(path, chunk, 1), seq_read_mb_per_s(path, chunk, depth),
                           uring_read_mb_per_s(path, chunk, depth)}) {
    if (r.ok()) best = std::max(best, *r);
  }
  return best;
}

// Fraction of the file's pages in the page cache (mincore over a mapping that touches none).
double cached_fraction(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  const auto size = static_cast<size_t>(fs::file_size(path));
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return -1;
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> v((size + page - 1) / page);
  double f = -1;
  if (::mincore(map, size, v.data()) == 0) {
    size_t n = 0;
    for (unsigned char c : v) n += c & 1;
    f = static_cast<double>(n) / static_cast<double>(v.size());
  }
  ::munmap(map, size);
  return f;
}

void drop_from_page_cache(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

// A child memory cgroup of this process's own (v2 where it has the memory controller, else
// v1), limited to `limit` bytes: page cache and anonymous memory both count against it.
struct Cgroup {
  std::string dir;
  bool v2 = false;
  ~Cgroup() {
    if (!dir.empty()) ::rmdir(dir.c_str());
  }
  std::string wrap(const std::string& cmd) const {
    return "sh -c 'echo $$ > " + dir + "/cgroup.procs && exec " + cmd + "'";
  }
  int64_t peak_bytes() const {
    std::ifstream in(dir + (v2 ? "/memory.peak" : "/memory.max_usage_in_bytes"));
    int64_t v = -1;
    in >> v;
    return v;
  }
};

bool write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.flush();
  return static_cast<bool>(out);
}

Result<std::unique_ptr<Cgroup>> make_cgroup(int64_t limit) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  std::string v1_path;
  std::string v2_path;
  while (std::getline(in, line)) {
    const size_t a = line.find(':');
    const size_t b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string ctrl = line.substr(a + 1, b - a - 1);
    const std::string path = line.substr(b + 1);
    if (ctrl == "memory") v1_path = path;
    if (line.rfind("0::", 0) == 0) v2_path = path;
  }
  const std::string name = "/strata_bench_" + std::to_string(::getpid());
  auto cg = std::make_unique<Cgroup>();
  for (const char* root : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
    std::ifstream ctl(std::string(root) + v2_path + "/cgroup.controllers");
    std::string ctrls;
    std::getline(ctl, ctrls);
    if (ctrls.find("memory") == std::string::npos) continue;
    const std::string dir = std::string(root) + v2_path + name;
    if (::mkdir(dir.c_str(), 0755) != 0) continue;
    cg->dir = dir;
    cg->v2 = true;
    if (write_text(dir + "/memory.max", std::to_string(limit))) return cg;
    cg->dir.clear();
    ::rmdir(dir.c_str());
  }
  if (v1_path.empty()) return strata::unsupported("no memory cgroup (v1 or v2) for this process");
  const std::string dir = "/sys/fs/cgroup/memory" + v1_path + name;
  if (::mkdir(dir.c_str(), 0755) != 0) {
    return strata::permission_denied(dir + ": cannot create: " + std::strerror(errno));
  }
  cg->dir = dir;
  if (!write_text(dir + "/memory.limit_in_bytes", std::to_string(limit))) {
    return strata::permission_denied(dir + ": cannot set memory.limit_in_bytes");
  }
  return cg;
}

Status ensure(const std::string& path, const std::string& cmd) {
  if (fs::exists(path)) return {};
  std::fprintf(stderr, "making %s\n", path.c_str());
  return run_capture(cmd + " >&2").status();
}

std::string synth_cmd(const Options& o, const std::string& act, const std::string& out) {
  return o.strata +
         " model synth --dim 2048 --layers 16 --heads 32 --kv-heads 8 --ffn 8192 --vocab 32000 "
         "--type q4_0 --seed 1 --ffn-act " +
         act + " -o " + out;
}

int usage() {
  std::fprintf(stderr,
               "usage: bench_streaming [--strata BIN] [--models-dir DIR] [--model FILE] "
               "[--rounds N] [--threads T]\n       [--prompt P] [--gen G] [--budget-fraction F] "
               "[--no-sparse] [--no-cgroup] [--json FILE]\n");
  return 2;
}

struct Series {
  std::vector<double> tps, per_token, read_per_token, storage_mbps, achieved_mbps, rss, bound_tps,
      fraction, storage_bytes, needed;
  nlohmann::json last;
};

void add(Series& s, const Run& r, double plain_mbps, int decode_steps) {
  const nlohmann::json& j = r.j;
  s.tps.push_back(j["decode_tps"].get<double>());
  s.rss.push_back(j["peak_rss_bytes"].get<double>());
  s.storage_bytes.push_back(static_cast<double>(r.storage_bytes));
  if (j.contains("streaming")) {
    const nlohmann::json& st = j["streaming"];
    const double per = st["streamed_bytes_per_token"].get<double>();
    s.per_token.push_back(per);
    s.storage_mbps.push_back(st["storage_mb_per_s"].get<double>());
    s.achieved_mbps.push_back(st["effective_mb_per_s"].get<double>());
    s.read_per_token.push_back(st["bytes_read"].get<double>() / decode_steps);
    if (per > 0 && plain_mbps > 0) {
      s.bound_tps.push_back(plain_mbps * 1e6 / per);
      s.fraction.push_back(s.tps.back() / s.bound_tps.back());
    }
    if (st.contains("bundles_needed_fraction")) {
      s.needed.push_back(st["bundles_needed_fraction"].get<double>());
    }
  }
  s.last = j;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto need = [&]() -> std::string {
      if (i + 1 >= argc) std::exit(usage());
      return argv[++i];
    };
    if (a == "--strata") {
      o.strata = need();
    } else if (a == "--models-dir") {
      o.models_dir = need();
    } else if (a == "--model") {
      o.model = need();
    } else if (a == "--rounds") {
      o.rounds = std::max(1, std::atoi(need().c_str()));
    } else if (a == "--threads") {
      o.threads = std::max(1, std::atoi(need().c_str()));
    } else if (a == "--prompt") {
      o.prompt = std::max(1, std::atoi(need().c_str()));
    } else if (a == "--gen") {
      o.gen = std::max(2, std::atoi(need().c_str()));
    } else if (a == "--budget-fraction") {
      o.budget_fraction = std::atof(need().c_str());
    } else if (a == "--no-sparse") {
      o.sparse = false;
    } else if (a == "--no-cgroup") {
      o.cgroup = false;
    } else if (a == "--json") {
      o.json_out = need();
    } else {
      return usage();
    }
  }
  fs::create_directories(o.models_dir);
  const std::string dense = o.model.empty() ? o.models_dir + "/llama1.1b-q4_0.gguf" : o.model;
  const std::string dense_s = o.models_dir + "/" + fs::path(dense).stem().string() + ".stream.gguf";
  const std::string relu = o.models_dir + "/llama1.1b-relu-q4_0.gguf";
  const std::string relu_s = o.models_dir + "/llama1.1b-relu-q4_0.stream.gguf";
  const std::string profile = o.models_dir + "/storage-profile.json";
  for (Status st :
       {ensure(dense, synth_cmd(o, "silu", dense)),
        ensure(dense_s, o.strata + " model repack --for-streaming " + dense + " -o " + dense_s),
        o.sparse ? ensure(relu, synth_cmd(o, "relu", relu)) : Status(),
        o.sparse
            ? ensure(relu_s, o.strata + " model repack --for-streaming " + relu + " -o " + relu_s)
            : Status()}) {
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.message().c_str());
      return 1;
    }
  }
  const auto file_bytes = static_cast<int64_t>(fs::file_size(dense));
  const auto budget = static_cast<int64_t>(static_cast<double>(file_bytes) * o.budget_fraction);

  // The storage figures a device profile carries (docs/PROFILE_SCHEMA.md), at the reader's
  // depth: the streamed runs take their chunk size from them.
  const int depth = 4;
  nlohmann::json seq = nlohmann::json::object();
  std::fprintf(stderr, "storage: O_DIRECT sequential reads of %s, %d in flight\n", dense.c_str(),
               depth);
  for (int64_t chunk :
       {int64_t{256} << 10, int64_t{1} << 20, int64_t{4} << 20, int64_t{16} << 20}) {
    const double mbps = storage_mb_per_s(dense, chunk, depth);
    if (mbps <= 0) {
      std::fprintf(stderr, "%s: O_DIRECT reads fail\n", dense.c_str());
      return 1;
    }
    seq[std::to_string(chunk)] = {
        {"value", mbps},
        {"unit", "MB/s"},
        {"provenance", "measured"},
        {"source", "bench_streaming: O_DIRECT, best of pread x1, pread x4, io_uring x4"}};
    std::fprintf(stderr, "  %8lld bytes: %.0f MB/s\n", static_cast<long long>(chunk), mbps);
  }
  const nlohmann::json prof = {
      {"schema", "strata.profile/1"},
      {"name", "bench-streaming"},
      {"storage", {{"path", o.models_dir}, {"direct_io", true}, {"seq_read_mb_per_s", seq}}}};
  if (!write_text(profile, prof.dump(2) + "\n")) {
    std::fprintf(stderr, "%s: cannot write\n", profile.c_str());
    return 1;
  }

  const std::string common = " generate --json --prompt-len " + std::to_string(o.prompt) + " -n " +
                             std::to_string(o.gen) + " --threads " + std::to_string(o.threads);
  const std::string stream = " --mem-budget " + std::to_string(budget) + " --profile " + profile;
  struct Variant {
    std::string name;
    std::string cmd;
    bool mmap_cgroup = false;
  };
  std::vector<Variant> variants = {
      {"streamed, repacked, pread", o.strata + common + stream + " --reader pread -m " + dense_s},
      {"streamed, repacked, uring", o.strata + common + stream + " --reader uring -m " + dense_s},
      {"streamed, as synthesized, pread",
       o.strata + common + stream + " --reader pread -m " + dense},
      {"mmap, cgroup limit", o.strata + common + " -m " + dense, true},
      {"resident (no limit)", o.strata + common + " --warmup -m " + dense_s},
  };
  if (o.sparse) {
    variants.push_back(
        {"ReLU: dense streaming", o.strata + common + stream + " --sparse-ffn off -m " + relu_s});
    variants.push_back(
        {"ReLU: sparse FFN", o.strata + common + stream + " --sparse-ffn on -m " + relu_s});
  }
  std::map<std::string, Series> series;
  std::vector<double> plain_mbps;
  int64_t chunk_used = 0;
  int64_t cgroup_limit = 0;
  int64_t cgroup_peak = 0;
  double cached_before_mmap = -1;
  std::string cgroup_note;
  for (int round = 0; round < o.rounds; ++round) {
    for (const Variant& v : variants) {
      std::fprintf(stderr, "round %d/%d: %s\n", round + 1, o.rounds, v.name.c_str());
      double plain = 0;
      if (chunk_used > 0 && v.cmd.find("--mem-budget") != std::string::npos) {
        // The storage bound for this run, measured right beside it.
        plain = storage_mb_per_s(dense, chunk_used, depth);
        plain_mbps.push_back(plain);
      }
      Result<Run> r = strata::internal_error("not run");
      if (v.mmap_cgroup) {
        if (!o.cgroup || cgroup_limit == 0) continue;
        drop_from_page_cache(dense);
        cached_before_mmap = cached_fraction(dense);
        Result<std::unique_ptr<Cgroup>> cg = make_cgroup(cgroup_limit);
        if (!cg.ok()) {
          cgroup_note = cg.status().message();
          std::fprintf(stderr, "cgroup: %s: mmap comparison skipped\n", cgroup_note.c_str());
          o.cgroup = false;
          continue;
        }
        r = run_generate((*cg)->wrap(v.cmd));
        cgroup_peak = std::max(cgroup_peak, (*cg)->peak_bytes());
        cgroup_note = (*cg)->v2 ? "cgroup v2 memory.max" : "cgroup v1 memory.limit_in_bytes";
      } else {
        r = run_generate(v.cmd);
      }
      if (!r.ok()) {
        std::fprintf(stderr, "%s: %s\n", v.name.c_str(), r.status().message().c_str());
        return 1;
      }
      if (chunk_used == 0 && r->j.contains("streaming")) {
        chunk_used = r->j["streaming"]["chunk_bytes"].get<int64_t>();
        // The first streamed run's peak RSS is the mmap run's memory limit: the same memory.
        cgroup_limit = (r->j["peak_rss_bytes"].get<int64_t>() + (1 << 20) - 1) / (1 << 20) << 20;
        plain = storage_mb_per_s(dense, chunk_used, depth);
        plain_mbps.push_back(plain);
      }
      add(series[v.name], *r, plain, o.gen - 1);
    }
  }

  const double plain = median(plain_mbps);
  std::printf(
      "\nstreamed decode: 1.1B Llama shape Q4_0 (%s file), weight budget %s (%.0f%%), "
      "%d threads,\n%d-token prompt, %d decode steps, %d alternated rounds, medians; "
      "storage: plain O_DIRECT read at %s x %d in flight = %.0f MB/s\n\n",
      strata::format_bytes(static_cast<double>(file_bytes)).c_str(),
      strata::format_bytes(static_cast<double>(budget)).c_str(), 100 * o.budget_fraction, o.threads,
      o.prompt, o.gen - 1, o.rounds, strata::format_bytes(static_cast<double>(chunk_used)).c_str(),
      depth, plain);
  std::printf(
      "| variant | decode tok/s | streamed / token | read / token | read MB/s (while reading) | "
      "achieved MB/s (over decode) | bound tok/s | decode / bound | storage read / run | "
      "peak RSS |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  nlohmann::json report;
  for (const Variant& v : variants) {
    auto it = series.find(v.name);
    if (it == series.end()) continue;
    const Series& s = it->second;
    const auto fmt = [](double b) { return strata::format_bytes(b); };
    const auto num = [](const std::vector<double>& x, int decimals, double scale,
                        const char* unit) {
      if (x.empty()) return std::string("-");
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.*f%s", decimals, scale * median(x), unit);
      return std::string(buf);
    };
    std::printf("| %s | %.2f | %s | %s | %s | %s | %s | %s | %s | %s |\n", v.name.c_str(),
                median(s.tps), s.per_token.empty() ? "-" : fmt(median(s.per_token)).c_str(),
                s.read_per_token.empty() ? "-" : fmt(median(s.read_per_token)).c_str(),
                num(s.storage_mbps, 0, 1, "").c_str(), num(s.achieved_mbps, 0, 1, "").c_str(),
                num(s.bound_tps, 2, 1, "").c_str(), num(s.fraction, 0, 100, "%").c_str(),
                fmt(median(s.storage_bytes)).c_str(), fmt(median(s.rss)).c_str());
    report[v.name] = {{"decode_tps", s.tps},
                      {"streamed_bytes_per_token", s.per_token},
                      {"storage_mb_per_s", s.storage_mbps},
                      {"achieved_mb_per_s", s.achieved_mbps},
                      {"read_bytes_per_token", s.read_per_token},
                      {"bound_tps", s.bound_tps},
                      {"fraction_of_bound", s.fraction},
                      {"storage_bytes_read", s.storage_bytes},
                      {"peak_rss_bytes", s.rss},
                      {"bundles_needed_fraction", s.needed},
                      {"command", v.cmd},
                      {"last", s.last}};
  }
  const auto ratio = [&](const char* a, const char* b) {
    if (!series.count(a) || !series.count(b)) return 0.0;
    return median(series[a].tps) / median(series[b].tps);
  };
  std::printf("\n");
  for (const char* name : {"streamed, repacked, pread", "streamed, repacked, uring"}) {
    if (series.count(name) && !series[name].fraction.empty()) {
      std::printf(
          "%s: %.0f%% of the storage bound (%.0f MB/s at %s / bytes streamed per token; "
          "target >= 80%%)\n",
          name, 100 * median(series[name].fraction), plain,
          strata::format_bytes(static_cast<double>(chunk_used)).c_str());
    }
  }
  if (series.count("mmap, cgroup limit")) {
    std::printf(
        "mmap comparison: %s = %s (the streamed run's peak RSS); peak usage in the "
        "group %s; file pages cached before the run %.1f%%\n",
        cgroup_note.c_str(), strata::format_bytes(static_cast<double>(cgroup_limit)).c_str(),
        strata::format_bytes(static_cast<double>(cgroup_peak)).c_str(), 100 * cached_before_mmap);
    std::printf(
        "streamed (repacked, pread) / mmap: %.2fx; streamed (repacked, uring) / mmap: "
        "%.2fx (target >= 3x)\n",
        ratio("streamed, repacked, pread", "mmap, cgroup limit"),
        ratio("streamed, repacked, uring", "mmap, cgroup limit"));
  } else if (o.cgroup) {
    std::printf("mmap comparison skipped: %s\n", cgroup_note.c_str());
  }
  if (o.sparse && series.count("ReLU: sparse FFN")) {
    std::printf(
        "ReLU model: sparse FFN / dense streaming: %.2fx decode, bytes per token %s vs %s, "
        "%.0f%% of bundles needed\n",
        ratio("ReLU: sparse FFN", "ReLU: dense streaming"),
        strata::format_bytes(median(series["ReLU: sparse FFN"].per_token)).c_str(),
        strata::format_bytes(median(series["ReLU: dense streaming"].per_token)).c_str(),
        100 * median(series["ReLU: sparse FFN"].needed));
  }
  report["budget_bytes"] = budget;
  report["file_bytes"] = file_bytes;
  report["plain_read_mb_per_s"] = plain_mbps;
  report["profile_seq_read_mb_per_s"] = seq;
  report["cgroup_limit_bytes"] = cgroup_limit;
  report["cgroup_peak_bytes"] = cgroup_peak;
  report["cached_fraction_before_mmap"] = cached_before_mmap;
  if (!o.json_out.empty()) {
    const Status st = strata::write_file_atomic(o.json_out, report.dump(2) + "\n");
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.message().c_str());
      return 1;
    }
  }
  return 0;
}
