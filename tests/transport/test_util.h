// Helpers for transport tests: a context per test, sample messages of every kind, and a small
// agent-like responder thread (hello, ping, heartbeat) on a ControlServer.
#pragma once

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "strata/transport/channel.h"
#include "strata/transport/link_probe.h"
#include "strata/transport/messages.h"

namespace strata::transport::testing {

inline Context make_context() {
  auto ctx = Context::create();
  EXPECT_TRUE(ctx.ok()) << ctx.status().to_string();
  return std::move(ctx).value();
}

// A generous deadline for things that must happen (a loaded 2-core machine, sanitizers).
inline Deadline soon() { return Deadline::after_ms(10000); }

inline Hello sample_hello() {
  Hello m;
  m.agent_id = "agent-7f3a";
  m.agent_name = "rpi5-kitchen";
  m.data_endpoint = "tcp://10.0.0.5:7101";
  m.n_threads = 4;
  m.mem_bytes = 8ull << 30;
  m.capabilities = kCapStreaming | kCapEmulation;
  m.cached_slices = {"sha256:aa11", "sha256:bb22"};
  m.profile_json = R"({"schema":"strata.profile/1"})";
  return m;
}

inline std::vector<ControlMessage> sample_control_messages() {
  Assign assign;
  assign.model_id = "tinyllama-1.1b-q4_0";
  assign.model_hash = "sha256:0123";
  assign.slice_hash = "sha256:4567";
  assign.stage_index = 1;
  assign.n_stages = 3;
  assign.unit_begin = 8;
  assign.unit_end = 16;
  assign.mem_budget_bytes = 3ull << 30;
  assign.n_threads = 2;
  assign.downstream_endpoint = "tcp://10.0.0.6:7101";
  assign.upstream_name = "laptop";
  assign.n_ctx = 2048;
  assign.n_seq_max = 8;
  assign.temperature = 0.7f;
  assign.top_k = 40;
  assign.top_p = 0.9f;
  assign.seed = 1234567890123ull;
  Stats stats;
  stats.stage_index = 2;
  // Step 41 was paced (local below paced), step 42 overran its pace, step 43 was not emulated.
  stats.steps = {{41, 8, 12.5, 0.25, 1.75, 65536, 32768, 2.5, 12.5},
                 {42, 1, 3.0, 0.5, 0.125, 8192, 8192, 3.0, 2.25},
                 {43, 1, 1.5, 0.0, 0.0625, 8192, 8192, 1.5, 0.0}};
  return {sample_hello(),
          assign,
          ShipSlice{"sha256:4567", 1024, 16, 4096},
          Ready{1, 123456789, 42.5},
          Heartbeat{17, 1234567890123},
          stats,
          ErrorMessage{StatusCode::kNotFound, "slice sha256:4567 is not cached"},
          Shutdown{"run finished"},
          Ping{5, 99, 0},
          Pong{5, 99, 0}};
}

inline DataHeader sample_data_header() {
  DataHeader h;
  h.request_id = 77;
  h.step_id = 12;
  h.flags = kDataDecode | kDataFinal;
  h.n_tokens = 3;
  h.seq_ids = {0, 1, 2};
  h.positions = {10, 4, 7};
  h.token_ids = {101, 102, 103};
  h.sampled_tokens = {};
  h.dtype = DType::kF32;
  h.shape = {3, 16};
  return h;
}

inline std::vector<float> sample_activations(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i) * 0.5f - 3.0f;
  return v;
}

// An agent stand-in: answers hello (as `name`), ping (answer_ping) and heartbeat (echo) until
// stopped. Binds tcp://127.0.0.1:* with `options`; endpoint() says where.
class Responder {
 public:
  explicit Responder(const Context& context, std::string name = "test-agent",
                     ChannelOptions options = {})
      : name_(std::move(name)) {
    auto server = ControlServer::bind(context, "tcp://127.0.0.1:*", options);
    EXPECT_TRUE(server.ok()) << server.status().to_string();
    endpoint_ = server->endpoint();
    thread_ = std::thread([this, s = std::move(server).value()]() mutable { serve(s); });
  }
  ~Responder() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  const std::string& endpoint() const { return endpoint_; }
  uint64_t handled() const { return handled_.load(); }

 private:
  void serve(ControlServer& server) {
    while (!stop_) {
      auto req = server.recv(Deadline::after_ms(20));
      if (!req.ok()) continue;
      ++handled_;
      if (std::holds_alternative<Hello>(req->message)) {
        Hello hello;
        hello.agent_name = name_;
        (void)server.reply(req->peer, hello, soon());
      } else if (const auto* ping = std::get_if<Ping>(&req->message)) {
        ProbeAnswer a = answer_ping(*ping, req->payload.size_bytes());
        (void)server.reply(req->peer, a.pong, soon(), a.payload);
      } else if (const auto* hb = std::get_if<Heartbeat>(&req->message)) {
        (void)server.reply(req->peer, *hb, soon());
      }
    }
  }

  std::string name_;
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> handled_{0};
  std::thread thread_;
};

}  // namespace strata::transport::testing
