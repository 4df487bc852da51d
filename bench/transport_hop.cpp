// bench_transport_hop: what one pipeline hop costs on the wire strata's agents use.
//
// Two endpoints, each with its own ZeroMQ context (as two agents would have), joined by a
// DataSender -> DataReceiver pair in each direction over tcp on 127.0.0.1. The far side echoes
// every message back, forwarding the received payload without a copy. One-way latency is
// reported as RTT / 2. Then a one-way stream of 1 MiB payloads for throughput, timed until the
// far side acknowledges the last one.
//
// The two endpoints run as two threads of this process, and as two processes (fork before any
// ZeroMQ state exists, endpoints exchanged over pipes).
//
// Usage: bench_transport_hop [--round-trips N] [--stream-messages N] [--mode
// threads|processes|both]
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "strata/base/io.h"
#include "strata/transport/channel.h"

namespace {

using namespace strata;
using namespace strata::transport;

struct Config {
  int round_trips = 20000;
  int warmup = 2000;
  int stream_messages = 400;
  std::string mode = "both";
  double delay_ms = 0;  // > 0: both senders shaped with this one-way delay (link emulation)
};

ChannelOptions sender_options(const Config& cfg) {
  ChannelOptions o;
  o.link.delay_ms = cfg.delay_ms;
  return o;
}

constexpr int64_t kActivationFloats = 2048;       // 8 KiB
constexpr int64_t kStreamFloats = (1 << 20) / 4;  // 1 MiB
constexpr uint64_t kStopStep = ~uint64_t{0};

[[noreturn]] void die(const Status& s, const char* what) {
  std::fprintf(stderr, "bench_transport_hop: %s: %s\n", what, s.to_string().c_str());
  std::exit(1);
}

template <class T>
T must(Result<T> r, const char* what) {
  if (!r.ok()) die(r.status(), what);
  return std::move(r).value();
}

void must(const Status& s, const char* what) {
  if (!s.ok()) die(s, what);
}

DataHeader header_for(uint64_t step, int64_t n_floats) {
  DataHeader h;
  h.request_id = 1;
  h.step_id = step;
  h.flags = kDataDecode;
  h.n_tokens = 1;
  h.seq_ids = {0};
  h.positions = {static_cast<int32_t>(step % 100000)};
  if (n_floats > 0) {
    h.dtype = DType::kF32;
    h.shape = {1, n_floats};
  }
  return h;
}

// The far side: echoes every message back until the stop step. A stream message (flag
// kDataPrefill) is not echoed; the last one of a stream (kDataFinal) is acknowledged.
void echo_loop(DataReceiver& rx, DataSender& tx) {
  for (;;) {
    DataMessage m = must(rx.recv(Deadline::after_ms(60000)), "echo receive");
    if (m.header.step_id == kStopStep) return;
    if ((m.header.flags & kDataPrefill) != 0) {
      if ((m.header.flags & kDataFinal) != 0) {
        must(tx.send(header_for(m.header.step_id, 0), {}, Deadline::after_ms(60000)), "ack");
      }
      continue;
    }
    must(tx.send(m.header, m.payload, Deadline::after_ms(60000)), "echo send");
  }
}

struct HopFigures {
  double rtt_median_us = 0;
  double rtt_p99_us = 0;
  double rtt_min_us = 0;
  int n = 0;
};

struct StreamFigures {
  double mib_per_s = 0;
  double seconds = 0;
  int n = 0;
};

HopFigures measure_hops(DataSender& tx, DataReceiver& rx, const Config& cfg, int64_t n_floats) {
  const SharedBytes payload =
      n_floats > 0 ? SharedBytes::from_vector(std::vector<float>(n_floats, 0.25f)) : SharedBytes();
  std::vector<double> rtts_us;
  rtts_us.reserve(cfg.round_trips);
  for (int i = 0; i < cfg.warmup + cfg.round_trips; ++i) {
    const int64_t t0 = now_ns();
    must(tx.send(header_for(i, n_floats), payload, Deadline::after_ms(60000)), "send");
    DataMessage back = must(rx.recv(Deadline::after_ms(60000)), "receive echo");
    const int64_t t1 = now_ns();
    if (back.header.step_id != static_cast<uint64_t>(i)) {
      std::fprintf(stderr, "bench_transport_hop: echo out of order\n");
      std::exit(1);
    }
    if (i >= cfg.warmup) rtts_us.push_back(static_cast<double>(t1 - t0) * 1e-3);
  }
  std::sort(rtts_us.begin(), rtts_us.end());
  HopFigures f;
  f.n = static_cast<int>(rtts_us.size());
  f.rtt_median_us = rtts_us[rtts_us.size() / 2];
  f.rtt_p99_us = rtts_us[std::min(rtts_us.size() - 1, rtts_us.size() * 99 / 100)];
  f.rtt_min_us = rtts_us.front();
  return f;
}

StreamFigures measure_stream(DataSender& tx, DataReceiver& rx, const Config& cfg) {
  const SharedBytes payload = SharedBytes::from_vector(std::vector<float>(kStreamFloats, 1.0f));
  const int64_t t0 = now_ns();
  for (int i = 0; i < cfg.stream_messages; ++i) {
    DataHeader h = header_for(i, kStreamFloats);
    h.flags = kDataPrefill | (i + 1 == cfg.stream_messages ? kDataFinal : 0u);
    must(tx.send(h, payload, Deadline::after_ms(60000)), "stream send");
  }
  (void)must(rx.recv(Deadline::after_ms(60000)), "stream ack");
  StreamFigures f;
  f.seconds = static_cast<double>(now_ns() - t0) * 1e-9;
  f.n = cfg.stream_messages;
  f.mib_per_s = static_cast<double>(cfg.stream_messages) / f.seconds;
  return f;
}

struct Results {
  HopFigures hop_8k, hop_empty;
  StreamFigures stream;
};

Results run_near_side(DataSender& tx, DataReceiver& rx, const Config& cfg) {
  Results r;
  r.hop_8k = measure_hops(tx, rx, cfg, kActivationFloats);
  r.hop_empty = measure_hops(tx, rx, cfg, 0);
  r.stream = measure_stream(tx, rx, cfg);
  must(tx.send(header_for(kStopStep, 0), {}, Deadline::after_ms(60000)), "stop");
  return r;
}

Results run_threads(const Config& cfg) {
  Context near_ctx = must(Context::create(), "context");
  Context far_ctx = must(Context::create(), "context");
  DataReceiver near_rx = must(DataReceiver::bind(near_ctx, "tcp://127.0.0.1:*"), "bind");
  DataReceiver far_rx = must(DataReceiver::bind(far_ctx, "tcp://127.0.0.1:*"), "bind");
  DataSender near_tx =
      must(DataSender::connect(near_ctx, far_rx.endpoint(), sender_options(cfg)), "connect");
  DataSender far_tx =
      must(DataSender::connect(far_ctx, near_rx.endpoint(), sender_options(cfg)), "connect");
  std::thread far([&] { echo_loop(far_rx, far_tx); });
  Results r = run_near_side(near_tx, near_rx, cfg);
  far.join();
  return r;
}

void write_line(int fd, const std::string& s) {
  const std::string line = s + "\n";
  if (write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) std::exit(1);
}

std::string read_line(int fd) {
  std::string s;
  char c = 0;
  while (read(fd, &c, 1) == 1 && c != '\n') s.push_back(c);
  return s;
}

Results run_processes(const Config& cfg) {
  int to_child[2], to_parent[2];
  if (pipe(to_child) != 0 || pipe(to_parent) != 0) {
    std::perror("pipe");
    std::exit(1);
  }
  const pid_t pid = fork();
  if (pid < 0) {
    std::perror("fork");
    std::exit(1);
  }
  if (pid == 0) {  // far side: its own ZeroMQ world, created after the fork
    Context ctx = must(Context::create(), "context");
    DataReceiver rx = must(DataReceiver::bind(ctx, "tcp://127.0.0.1:*"), "bind");
    write_line(to_parent[1], rx.endpoint());
    DataSender tx =
        must(DataSender::connect(ctx, read_line(to_child[0]), sender_options(cfg)), "connect");
    echo_loop(rx, tx);
    std::_Exit(0);
  }
  Context ctx = must(Context::create(), "context");
  DataReceiver rx = must(DataReceiver::bind(ctx, "tcp://127.0.0.1:*"), "bind");
  write_line(to_child[1], rx.endpoint());
  DataSender tx =
      must(DataSender::connect(ctx, read_line(to_parent[0]), sender_options(cfg)), "connect");
  Results r = run_near_side(tx, rx, cfg);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "bench_transport_hop: echo process failed\n");
    std::exit(1);
  }
  return r;
}

void print_results(const char* mode, const Results& r, double delay_ms) {
  const auto hop = [&](const char* what, const HopFigures& f) {
    // With emulated delay, the one-way columns show what the hop costs beyond it.
    const double delay_us = delay_ms * 1e3;
    std::printf("| %-9s | %-26s | %7d | %9.1f | %9.1f | %12.1f | %12.1f |\n", mode, what, f.n,
                f.rtt_median_us, f.rtt_p99_us, f.rtt_median_us / 2 - delay_us,
                f.rtt_p99_us / 2 - delay_us);
  };
  hop("8 KiB (2048 f32) hop", r.hop_8k);
  hop("header only (no tensor)", r.hop_empty);
  std::printf("| %-9s | %-26s | %7d | %9s | %9s | %12s | %12s |   -> %.0f MiB/s (%.2f Gbit/s)\n",
              mode, "1 MiB stream, one way", r.stream.n, "-", "-", "-", "-", r.stream.mib_per_s,
              r.stream.mib_per_s * 1048576 * 8 / 1e9);
}

Config parse(int argc, char** argv) {
  Config cfg;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--round-trips" && has_value)
      cfg.round_trips = std::atoi(argv[++i]);
    else if (arg == "--stream-messages" && has_value)
      cfg.stream_messages = std::atoi(argv[++i]);
    else if (arg == "--mode" && has_value)
      cfg.mode = argv[++i];
    else if (arg == "--delay-ms" && has_value)
      cfg.delay_ms = std::atof(argv[++i]);
    else {
      std::fprintf(stderr,
                   "usage: bench_transport_hop [--round-trips N (>= 100, default 20000)]\n"
                   "       [--stream-messages N (default 400)] [--mode threads|processes|both]\n"
                   "       [--delay-ms X (shape both senders: one-way delay; the table then\n"
                   "        shows the excess over X)]\n");
      std::exit(arg == "--help" || arg == "-h" ? 0 : 2);
    }
  }
  if (cfg.round_trips < 100 || cfg.stream_messages < 1 || cfg.delay_ms < 0 ||
      (cfg.mode != "threads" && cfg.mode != "processes" && cfg.mode != "both")) {
    std::fprintf(stderr, "bench_transport_hop: bad arguments (see --help)\n");
    std::exit(2);
  }
  return cfg;
}

}  // namespace

int main(int argc, char** argv) {
  const Config cfg = parse(argc, argv);
  std::printf(
      "strata transport hop: DataSender -> DataReceiver over tcp://127.0.0.1, one ZeroMQ\n"
      "context (1 I/O thread) per side, echo forwards the received payload (no copy).\n"
      "one-way = RTT / 2%s; %d warm-up round trips not counted.\n\n",
      cfg.delay_ms > 0 ? " - the emulated delay (both senders shaped)" : "", cfg.warmup);
  std::printf("| %-9s | %-26s | %7s | %9s | %9s | %12s | %12s |\n", "endpoints", "message", "n",
              "RTT p50", "RTT p99", "one-way p50", "one-way p99");
  std::printf("| %-9s | %-26s | %7s | %9s | %9s | %12s | %12s |\n", "", "", "", "us", "us", "us",
              "us");
  std::printf(
      "|-----------|----------------------------|---------|-----------|-----------|"
      "--------------|--------------|\n");
  std::fflush(stdout);  // before fork: the child must not flush our buffer again
  if (cfg.mode == "threads" || cfg.mode == "both")
    print_results("threads", run_threads(cfg), cfg.delay_ms);
  std::fflush(stdout);
  if (cfg.mode == "processes" || cfg.mode == "both") {
    print_results("processes", run_processes(cfg), cfg.delay_ms);
  }
  return 0;
}
