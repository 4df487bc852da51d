#include "strata/agent/agent.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <optional>
#include <thread>
#include <vector>

#include "emulation.h"
#include "strata/base/io.h"
#include "strata/model/engine.h"
#include "strata/model/model.h"
#include "strata/model/weight_store.h"
#include "strata/transport/channel.h"
#include "strata/transport/link_probe.h"
#include "units.h"

namespace strata::agent {

namespace tp = strata::transport;

struct Agent::Impl {
  AgentOptions options;
  tp::Context ctx;
  tp::ControlServer control;
  tp::DataReceiver data;
  std::optional<Pace> pace;
  // The emulated stage's units (built on the first step after an assignment) and how many
  // steps took longer here than on the reference device (the emulation then lags).
  std::vector<partitioner::LayerUnit> pace_units;
  bool pace_overrun_logged = false;  // the first overrun is logged; the report counts them all
  // Steps the next stage has not taken yet (see send_down).
  static constexpr int kSendWaitMs = 200;
  std::deque<std::pair<tp::DataHeader, tp::SharedBytes>> pending_out;

  // The current assignment.
  std::optional<tp::Assign> assign;
  std::string assign_peer;  // who to send Ready/Error to once a shipped slice completes
  std::unique_ptr<model::Model> model;
  // Set when the stage's weights and KV cache exceed the budget: the engine's weight source
  // (declared between model and engine: it borrows the model, the engine borrows it).
  std::unique_ptr<model::StreamingWeights> streaming;
  std::unique_ptr<model::Engine> engine;
  std::optional<tp::DataSender> downstream;
  UnitRange units;
  std::map<int32_t, model::Sampler> samplers;

  // A slice being received.
  std::string ship_hash;
  std::string ship_part_path;
  FILE* ship_file = nullptr;
  uint64_t ship_received = 0;

  std::vector<tp::StepStats> stats;
  int64_t idle_since_ns = 0;
  AgentCounters counters;
  bool exit_requested = false;

  Impl(AgentOptions o, tp::Context c, tp::ControlServer cs, tp::DataReceiver dr)
      : options(std::move(o)), ctx(std::move(c)), control(std::move(cs)), data(std::move(dr)) {}

  ~Impl() { abort_ship(); }

  void log(const std::string& line) const {
    if (!options.quiet)
      std::fprintf(stderr, "strata agent %s: %s\n", options.name.c_str(), line.c_str());
  }

  void abort_ship() {
    if (ship_file != nullptr) {
      std::fclose(ship_file);
      ship_file = nullptr;
      std::error_code ec;
      std::filesystem::remove(ship_part_path, ec);
    }
    ship_hash.clear();
    ship_received = 0;
  }

  Status reply(const std::string& peer, const tp::ControlMessage& m, tp::SharedBytes payload = {}) {
    return control.reply(peer, m, tp::Deadline::after_ms(2000), std::move(payload));
  }
  void reply_error(const std::string& peer, const Status& s) {
    (void)reply(peer, tp::ErrorMessage{s.code(), s.message()});
  }

  std::string slice_path(const std::string& hash) const {
    return options.cache_dir + "/" + hash + ".gguf";
  }

  std::vector<std::string> cached_slices() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(options.cache_dir, ec)) {
      if (e.path().extension() == ".gguf" && out.size() < tp::kMaxCachedSlices)
        out.push_back(e.path().stem().string());
    }
    return out;
  }

  void unload() {
    engine.reset();
    streaming.reset();
    model.reset();
    downstream.reset();
    samplers.clear();
    assign.reset();
    pace_units.clear();
    pending_out.clear();
  }

  // The weight store for a stage whose weights and KV cache exceed `cap`: the budget left after
  // the KV cache holds a pinned resident set and the read ring (docs/STREAMING.md). A budget
  // below the streaming minimum is kResourceExhausted naming the bytes and the shortfall.
  Result<std::unique_ptr<model::StreamingWeights>> open_streaming(const model::Model& m,
                                                                  const tp::Assign& a,
                                                                  int64_t kv_bytes, int64_t cap) {
    const auto bytes = [](int64_t n) {
      return format_bytes(static_cast<double>(n)) + " (" + std::to_string(n) + " bytes)";
    };
    const std::string stage = "stage " + std::to_string(a.stage_index);
    if (units.block_begin == units.block_end) {
      return resource_exhausted(stage + " (no blocks to stream) needs " + bytes(kv_bytes) +
                                " of KV cache and its embedding or head, but " + options.name +
                                " has a budget of " + bytes(cap));
    }
    model::StreamOptions so;
    so.layer_begin = units.block_begin;
    so.layer_end = units.block_end;
    so.storage_seq_read_mb_per_s = options.storage_seq_read_mb_per_s;
    // The smallest budget that streams, from a plan that fits everything (no I/O).
    so.mem_budget_bytes = int64_t{1} << 60;
    STRATA_ASSIGN_OR_RETURN(const model::StreamPlan probe, model::plan_streaming(m, so));
    const int64_t least = probe.min_budget_bytes + kv_bytes;
    if (cap < least) {
      // (The probe fits everything, so its pinned set is not what streaming pins: name the
      // minimum's parts instead.)
      return resource_exhausted(
          stage + " needs at least " + bytes(least) + " to stream its weights (KV cache " +
          bytes(kv_bytes) + " + " + bytes(probe.min_budget_bytes) +
          " for the head, the norms, an embedding row buffer on a first stage and one read "
          "buffer) but " +
          options.name + " has a budget of " + bytes(cap) + ", short by " + bytes(least - cap));
    }
    so.mem_budget_bytes = cap - kv_bytes;
    return model::StreamingWeights::open(m, so);
  }

  void log_streaming(const model::StreamingWeights& sw, int64_t kv_bytes, int64_t cap) const {
    const model::StreamPlan& p = sw.plan();
    const auto list = [](const std::vector<int64_t>& v) {
      std::string out;
      for (int64_t l : v) out += (out.empty() ? "" : " ") + std::to_string(l);
      return out.empty() ? std::string("none") : out;
    };
    const auto mb = [](int64_t n) { return format_bytes(static_cast<double>(n)); };
    log("streaming: budget " + mb(cap) + " - KV cache " + mb(kv_bytes) + " = " +
        mb(cap - kv_bytes) + " for weights; resident " + mb(p.resident_bytes) + ": pinned " +
        mb(p.pinned_bytes) +
        (p.embedding_rows ? ", embedding rows on demand " + mb(p.embedding_buffer_bytes)
                          : std::string()) +
        (p.n_units > 0 ? ", norms " + mb(p.norm_bytes) + ", " + std::to_string(p.n_resident_units) +
                             " of " + std::to_string(p.n_units) + " units of <= " +
                             mb(p.unit_bytes) + " (whole layers [" + list(p.resident_layers) +
                             "], part of [" + list(p.partly_resident_layers) + "]) "
                       : ", layers [" + list(p.resident_layers) + "] ") +
        mb(p.resident_layer_bytes) + ", ring " + mb(p.ring_bytes) + " (lookahead " +
        std::to_string(p.lookahead) + ")" +
        (p.sparse ? ", kept gates " + mb(p.sparse_gate_bytes) + ", FFN buffers " +
                        mb(p.sparse_buffer_bytes) + ", window " + mb(p.window_bytes)
                  : std::string()));
    log("streaming: layers [" + list(p.streamed_layers) + "] stream " +
        mb(p.streamed_bytes_per_token) + " per forward call" +
        (p.sparse ? " at most (sparse FFN)" : "") + ", " + model::reader_kind_name(sw.reader()) +
        " reader, " + (sw.direct_io() ? "O_DIRECT" : "buffered") + ", chunk " + mb(p.chunk_bytes) +
        " (" + p.chunk_source + ")" + (p.repacked ? "" : ", slice not in the streaming layout"));
    for (const std::string& n : p.notes) log("streaming: " + n);
    for (const std::string& n : sw.notes()) log("streaming: " + n);
  }

  // Loads the assigned slice from the cache and builds the engine; replies Ready or Error.
  void load_assigned(const std::string& peer) {
    const tp::Assign& a = *assign;
    const double t0 = now_s();
    auto fail = [&](const Status& s) {
      log("assignment refused: " + s.message());
      reply_error(peer, s);
      unload();
    };
    Result<std::unique_ptr<model::Model>> m = model::Model::load(slice_path(a.slice_hash));
    if (!m.ok()) return fail(m.status());
    const model::ModelConfig& c = (*m)->config();
    Result<UnitRange> u = unit_range(a.unit_begin, a.unit_end, c.n_layers);
    if (!u.ok()) return fail(u.status());
    units = *u;
    const int64_t kv_bytes = (units.block_end - units.block_begin) * 2 * c.kv_dim() * 4 *
                             static_cast<int64_t>(a.n_ctx) * static_cast<int64_t>(a.n_seq_max);
    int64_t weight_bytes = 0;  // the tensors' own bytes (not a ReLU slice's bundles)
    for (const model::GgufTensorInfo& t : (*m)->file().tensors()) weight_bytes += t.n_bytes;
    const int64_t need = weight_bytes + kv_bytes;
    int64_t cap = options.mem_budget_bytes;
    if (a.mem_budget_bytes > 0 && (cap == 0 || static_cast<int64_t>(a.mem_budget_bytes) < cap)) {
      cap = static_cast<int64_t>(a.mem_budget_bytes);
    }
    if (pace && pace->mem_cap_bytes > 0 && (cap == 0 || pace->mem_cap_bytes < cap))
      cap = pace->mem_cap_bytes;
    if (pace) {  // the planner's cost table of this stage, for pacing its steps
      Result<std::vector<partitioner::LayerUnit>> su =
          stage_units(**m, units.embedding, units.block_begin, units.block_end, units.head);
      if (su.ok()) {
        pace_units = std::move(su).value();
      } else {
        log("emulation off for this stage: " + su.status().message());
        pace.reset();
      }
    }
    if ((units.embedding && !(*m)->has_embedding()) || (units.head && !(*m)->has_head())) {
      return fail(invalid_argument("slice " + a.slice_hash + " lacks the embedding or head stage " +
                                   std::to_string(a.stage_index) + " needs"));
    }
    std::unique_ptr<model::StreamingWeights> sw;
    int64_t held = need;
    if (cap > 0 && need > cap) {
      Result<std::unique_ptr<model::StreamingWeights>> opened =
          open_streaming(**m, a, kv_bytes, cap);
      if (!opened.ok()) return fail(opened.status());
      sw = std::move(opened).value();
      held = sw->plan().resident_bytes + kv_bytes;
    }
    model::EngineOptions eo;
    eo.n_threads = a.n_threads > 0 ? static_cast<int>(a.n_threads) : options.n_threads;
    eo.layer_begin = units.block_begin;
    eo.layer_end = units.block_end;
    eo.ctx = a.n_ctx;
    eo.max_sequences = a.n_seq_max;
    eo.max_batch = tp::kMaxTokens;
    eo.weights = sw.get();
    Result<std::unique_ptr<model::Engine>> e = model::Engine::create(**m, eo);
    if (!e.ok()) return fail(e.status());
    tp::ChannelOptions co;
    co.link.delay_ms = options.link_delay_ms;
    co.link.rate_mbit_per_s = options.link_mbit_per_s;
    Result<tp::DataSender> ds = tp::DataSender::connect(ctx, a.downstream_endpoint, co);
    if (!ds.ok()) return fail(ds.status().with_context("downstream " + a.downstream_endpoint));
    model = std::move(m).value();
    streaming = std::move(sw);
    engine = std::move(e).value();
    downstream.emplace(std::move(ds).value());
    samplers.clear();
    const double load_ms = (now_s() - t0) * 1e3;
    log("stage " + std::to_string(a.stage_index) + "/" + std::to_string(a.n_stages) + ": blocks [" +
        std::to_string(units.block_begin) + ", " + std::to_string(units.block_end) + ")" +
        (units.embedding ? " + embedding" : "") + (units.head ? " + head" : "") + ", " +
        std::to_string(eo.n_threads) + " threads, -> " + a.downstream_endpoint);
    if (streaming) log_streaming(*streaming, kv_bytes, cap);
    // Ready carries what the stage holds: with streaming, the budget's resident set and the KV
    // cache, not the whole slice.
    (void)reply(peer, tp::Ready{a.stage_index, static_cast<uint64_t>(held), load_ms});
  }

  void on_assign(const std::string& peer, const tp::Assign& a) {
    unload();
    abort_ship();
    if (a.n_ctx == 0 || a.n_seq_max == 0) {
      return reply_error(peer, invalid_argument("assignment needs n_ctx > 0 and n_seq_max > 0"));
    }
    if (a.slice_hash.empty() || a.slice_hash.find('/') != std::string::npos ||
        a.slice_hash.find("..") != std::string::npos) {
      return reply_error(peer,
                         invalid_argument("slice hash '" + a.slice_hash + "' is not a plain name"));
    }
    assign = a;
    assign_peer = peer;
    if (!std::filesystem::exists(slice_path(a.slice_hash))) {
      log("slice " + a.slice_hash + " is not cached: asking for it");
      return reply_error(peer,
                         not_found("slice " + a.slice_hash + " is not cached on " + options.name));
    }
    load_assigned(peer);
  }

  void on_ship(const std::string& peer, const tp::ShipSlice& s, const tp::SharedBytes& payload) {
    auto fail = [&](const Status& st) {
      log("slice transfer failed: " + st.message());
      abort_ship();
      reply_error(peer, st);
    };
    if (!assign || assign->slice_hash != s.slice_hash) {
      return fail(invalid_argument("slice " + s.slice_hash + " was not asked for"));
    }
    if (s.offset_bytes == 0) {
      abort_ship();
      std::error_code ec;
      std::filesystem::create_directories(options.cache_dir, ec);
      ship_hash = s.slice_hash;
      ship_part_path = slice_path(s.slice_hash) + ".part." + std::to_string(::getpid());
      ship_file = std::fopen(ship_part_path.c_str(), "wb");
      if (ship_file == nullptr) return fail(io_error(ship_part_path + ": cannot create"));
    }
    if (ship_file == nullptr || s.offset_bytes != ship_received) {
      return fail(invalid_argument("slice chunk at offset " + std::to_string(s.offset_bytes) +
                                   ", expected " + std::to_string(ship_received)));
    }
    if (std::fwrite(payload.data(), 1, payload.size_bytes(), ship_file) != payload.size_bytes()) {
      return fail(io_error(ship_part_path + ": write failed (disk full?)"));
    }
    ship_received += payload.size_bytes();
    if (ship_received < s.total_bytes) return;
    const bool closed = std::fclose(ship_file) == 0;
    ship_file = nullptr;
    if (!closed) return fail(io_error(ship_part_path + ": write failed on close"));
    Result<std::string> h = model::hash_file(ship_part_path);
    if (!h.ok()) return fail(h.status());
    if (*h != s.slice_hash) {
      std::error_code ec;
      std::filesystem::remove(ship_part_path, ec);
      return fail(corrupt("slice arrived with hash " + *h + ", expected " + s.slice_hash));
    }
    std::error_code ec;
    std::filesystem::rename(ship_part_path, slice_path(s.slice_hash), ec);
    if (ec) return fail(io_error(slice_path(s.slice_hash) + ": " + ec.message()));
    ++counters.slices_received;
    log("received slice " + s.slice_hash + " (" + format_bytes(static_cast<double>(s.total_bytes)) +
        ")");
    ship_hash.clear();
    ship_received = 0;
    load_assigned(peer);
  }

  void on_control(tp::ControlRequest& req) {
    ++counters.control_messages;
    const std::string& peer = req.peer;
    std::visit(
        [&](auto& m) {
          using T = std::decay_t<decltype(m)>;
          if constexpr (std::is_same_v<T, tp::Hello>) {
            tp::Hello h;
            h.agent_id = options.name + "-" + std::to_string(::getpid());
            h.agent_name = options.name;
            h.data_endpoint = data.endpoint();
            h.n_threads = static_cast<uint32_t>(options.n_threads);
            h.mem_bytes = static_cast<uint64_t>(options.mem_budget_bytes);
            h.capabilities = pace ? static_cast<uint64_t>(tp::kCapEmulation) : uint64_t{0};
            h.cached_slices = cached_slices();
            (void)reply(peer, h);
          } else if constexpr (std::is_same_v<T, tp::Assign>) {
            on_assign(peer, m);
          } else if constexpr (std::is_same_v<T, tp::ShipSlice>) {
            on_ship(peer, m, req.payload);
          } else if constexpr (std::is_same_v<T, tp::Heartbeat>) {
            (void)reply(peer, m);
          } else if constexpr (std::is_same_v<T, tp::Ping>) {
            tp::ProbeAnswer a = tp::answer_ping(m, req.payload.size_bytes());
            (void)reply(peer, a.pong, a.payload);
          } else if constexpr (std::is_same_v<T, tp::Stats>) {
            tp::Stats s;
            s.stage_index = assign ? assign->stage_index : 0;
            const size_t n = std::min(stats.size(), tp::kMaxStatsSteps);
            s.steps.assign(stats.end() - static_cast<std::ptrdiff_t>(n), stats.end());
            stats.clear();
            (void)reply(peer, s);
          } else if constexpr (std::is_same_v<T, tp::Shutdown>) {
            log("shutdown: " + m.reason);
            unload();
            abort_ship();
            (void)reply(peer, tp::Shutdown{"done"});
            if (m.reason == "exit") exit_requested = true;
          } else {
            reply_error(peer,
                        invalid_argument(std::string("an agent does not take '") +
                                         tp::control_message_name(req.message) + "' messages"));
          }
        },
        req.message);
  }

  // Hands a step to the next stage. A next stage that does not take it at once (gone, or its
  // queue full) must not stall this agent: a stalled agent answers no heartbeat and no
  // re-assignment, and the coordinator would take it for lost too. So the step waits in
  // `pending_out`, in order, and the serve loop retries while it keeps answering.
  void send_down(tp::DataHeader header, tp::SharedBytes payload, tp::StepStats* st) {
    const double t0 = now_s();
    if (pending_out.empty()) {
      const Status s = downstream->send(header, payload, tp::Deadline::after_ms(kSendWaitMs));
      st->link_ms = (now_s() - t0) * 1e3;
      if (s.ok()) return;
      if (s.code() == StatusCode::kInvalidArgument) {
        log("sending step " + std::to_string(header.step_id) +
            " downstream failed: " + s.message());
        return;
      }
      log("the next stage is not taking steps (" + s.message() + "): holding them");
    }
    pending_out.emplace_back(std::move(header), std::move(payload));
  }

  // Sends what waits in `pending_out`, oldest first, without waiting.
  void flush_pending() {
    while (!pending_out.empty() && downstream) {
      auto& [h, p] = pending_out.front();
      if (!downstream->send(h, p, tp::Deadline::after_ms(0)).ok()) return;
      pending_out.pop_front();
    }
  }

  void fail_step(const tp::DataHeader& in, const Status& s, tp::StepStats* st) {
    ++counters.step_errors;
    log("step " + std::to_string(in.step_id) + " failed: " + s.message());
    if (!downstream) return;
    tp::DataHeader out;
    out.request_id = in.request_id;
    out.step_id = in.step_id;
    out.flags = in.flags & tp::kDataFlagsKnown;
    out.status_code = s.code();
    out.status_message = "stage " + std::to_string(assign ? assign->stage_index : 0) + " (" +
                         options.name + "): " + s.message().substr(0, tp::kMaxStringBytes - 64);
    send_down(out, {}, st);
  }

  void on_data(tp::DataMessage& msg) {
    // A step from before a re-plan (its pipeline is gone and the KV cache it built on was
    // dropped): running it would write stale positions into the new cache.
    if (assign && assign->epoch != 0 && msg.header.request_id != assign->epoch) {
      ++counters.stale_steps;
      return;
    }
    const int64_t arrived = now_ns();
    tp::StepStats st;
    st.step_id = msg.header.step_id;
    st.n_tokens = msg.header.n_tokens;
    st.wait_ms = idle_since_ns > 0 ? static_cast<double>(arrived - idle_since_ns) * 1e-6 : 0;
    st.bytes_in = msg.payload.size_bytes();
    ++counters.data_steps;
    run_step(msg, &st);
    idle_since_ns = now_ns();
    if (stats.size() >= 4 * tp::kMaxStatsSteps)
      stats.erase(stats.begin(), stats.begin() + tp::kMaxStatsSteps);
    stats.push_back(st);
  }

  // Holds the step until the reference device would have finished it; returns the reference
  // device's time for the step (s), which the step overran when it is below `compute_s`, or 0
  // when the stage cannot be emulated (emulation is then off).
  double pace_step(const tp::DataHeader& h, double compute_s) {
    // Attention spans every token's position; KV rows are read once per sequence of the step
    // (a decode token reads its sequence's rows, a prompt chunk its rows up to its last).
    double ctx_positions = 0, kv_rows = 0;
    std::map<int32_t, std::pair<int32_t, int32_t>> per_seq;  // seq -> (tokens, last position)
    for (size_t i = 0; i < h.positions.size(); ++i) {
      ctx_positions += h.positions[i];
      auto& [n, last] = per_seq[i < h.seq_ids.size() ? h.seq_ids[i] : 0];
      ++n;
      last = std::max(last, h.positions[i]);
    }
    for (const auto& [seq, nl] : per_seq) kv_rows += nl.first == 1 ? nl.second : nl.second + 1;
    const double target_s = reference_step_s(*pace, pace_units, static_cast<int64_t>(h.n_tokens),
                                             ctx_positions, kv_rows);
    if (compute_s > target_s) {
      if (!pace_overrun_logged) {
        pace_overrun_logged = true;
        log("a step took " + std::to_string(compute_s * 1e3) + " ms here, longer than the " +
            std::to_string(target_s * 1e3) + " ms of " + pace->reference.name +
            ": this machine is too slow to emulate it exactly (the run's report counts every "
            "overrun)");
      }
      return target_s;
    }
    sleep_until_ns(now_ns() + static_cast<int64_t>((target_s - compute_s) * 1e9));
    return target_s;
  }

  void run_step(tp::DataMessage& msg, tp::StepStats* st) {
    const tp::DataHeader& h = msg.header;
    if (!engine) return fail_step(h, invalid_argument("no stage is assigned to this agent"), st);
    if (h.status_code != StatusCode::kOk) {  // an upstream failure: pass it on unchanged
      send_down(h, {}, st);
      return;
    }
    const model::ModelConfig& c = engine->config();
    const int64_t n = h.n_tokens;
    std::vector<float> hidden(static_cast<size_t>(n * c.dim));
    const double t0 = now_s();
    if (units.embedding) {
      if (h.token_ids.size() != static_cast<size_t>(n)) {
        return fail_step(h,
                         invalid_argument("stage 0 needs a token id for each of the " +
                                          std::to_string(n) + " tokens"),
                         st);
      }
      const Status s = engine->embed(h.token_ids, hidden.data());
      if (!s.ok()) return fail_step(h, s, st);
    } else {
      if (h.dtype != tp::DType::kF32 || h.shape.size() != 2 || h.shape[0] != n ||
          h.shape[1] != c.dim) {
        return fail_step(h,
                         invalid_argument("expected f32 activations of shape [" +
                                          std::to_string(n) + ", " + std::to_string(c.dim) + "]"),
                         st);
      }
      std::memcpy(hidden.data(), msg.payload.data(), hidden.size() * sizeof(float));
    }
    std::vector<model::TokenSlot> slots(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      slots[static_cast<size_t>(i)] = {h.seq_ids[static_cast<size_t>(i)],
                                       h.positions[static_cast<size_t>(i)]};
      // Position 0 starts a sequence afresh: its slot may have served an earlier one.
      if (slots[static_cast<size_t>(i)].pos == 0 && slots[static_cast<size_t>(i)].seq >= 0 &&
          slots[static_cast<size_t>(i)].seq < static_cast<int32_t>(assign->n_seq_max)) {
        engine->reset_sequence(slots[static_cast<size_t>(i)].seq);
        samplers.erase(slots[static_cast<size_t>(i)].seq);
      }
    }
    if (Status s = engine->forward(slots, hidden.data()); !s.ok()) return fail_step(h, s, st);

    tp::DataHeader out;
    out.request_id = h.request_id;
    out.step_id = h.step_id;
    out.flags = h.flags;
    tp::SharedBytes payload;
    if (!units.head) {
      out.n_tokens = h.n_tokens;
      out.seq_ids = h.seq_ids;
      out.positions = h.positions;
      out.logit_rows = h.logit_rows;
      out.dtype = tp::DType::kF32;
      out.shape = {n, c.dim};
      payload = tp::SharedBytes::from_vector(std::move(hidden));
    } else {
      const auto rows = static_cast<int64_t>(h.logit_rows.size());
      std::vector<float> picked(static_cast<size_t>(rows * c.dim));
      for (int64_t r = 0; r < rows; ++r) {
        const uint32_t row = h.logit_rows[static_cast<size_t>(r)];
        if (row >= static_cast<uint32_t>(n)) {
          return fail_step(
              h, invalid_argument("logit row " + std::to_string(row) + " is outside the step"), st);
        }
        std::memcpy(picked.data() + r * c.dim, hidden.data() + static_cast<int64_t>(row) * c.dim,
                    static_cast<size_t>(c.dim) * sizeof(float));
      }
      std::vector<float> logits(static_cast<size_t>(rows * c.vocab));
      if (rows > 0) engine->head(picked.data(), rows, logits.data());
      out.n_tokens = static_cast<uint32_t>(rows);
      for (int64_t r = 0; r < rows; ++r) {
        const uint32_t row = h.logit_rows[static_cast<size_t>(r)];
        const int32_t seq = h.seq_ids[row];
        out.seq_ids.push_back(seq);
        out.positions.push_back(h.positions[row]);
        auto it = samplers.find(seq);
        if (it == samplers.end()) {
          model::SamplerOptions so{assign->temperature, assign->top_k, assign->top_p,
                                   assign->seed + static_cast<uint64_t>(seq)};
          it = samplers.emplace(seq, model::Sampler(so)).first;
          const auto& before = assign->sampled_before;
          if (seq >= 0 && static_cast<size_t>(seq) < before.size())
            it->second.skip(before[static_cast<size_t>(seq)]);
        }
        out.sampled_tokens.push_back(it->second.sample(
            std::span<const float>(logits.data() + r * c.vocab, static_cast<size_t>(c.vocab))));
      }
      if ((h.flags & tp::kDataWantLogits) != 0 && rows > 0) {
        out.dtype = tp::DType::kF32;
        out.shape = {rows, c.vocab};
        payload = tp::SharedBytes::from_vector(std::move(logits));
      }
    }
    const double local_s = now_s() - t0;
    const double paced_s = pace ? pace_step(h, local_s) : 0;
    st->local_ms = local_s * 1e3;
    st->paced_ms = paced_s * 1e3;
    // The step took the paced time, or longer when this host overran it.
    st->compute_ms = std::max(local_s, paced_s) * 1e3;
    st->bytes_out = payload.size_bytes();
    send_down(std::move(out), std::move(payload), st);
  }
};

Agent::Agent(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Agent::~Agent() = default;

Result<std::unique_ptr<Agent>> Agent::start(const AgentOptions& options) {
  AgentOptions o = options;
  if (o.n_threads < 1 || o.n_threads > 1024) return invalid_argument("--threads must be 1..1024");
  if (o.link_delay_ms < 0 || o.link_mbit_per_s < 0)
    return invalid_argument("link delay and rate must be >= 0");
  if (o.name.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    o.name = host;
  }
  if (o.data_bind.empty()) {
    // The data socket listens on the control endpoint's host, on a port the OS picks.
    const size_t colon = o.bind.rfind(':');
    if (o.bind.rfind("tcp://", 0) != 0 || colon == std::string::npos || colon < 6) {
      return invalid_argument("--bind '" + o.bind + "' is not tcp://HOST:PORT");
    }
    o.data_bind = o.bind.substr(0, colon) + ":*";
  }
  std::optional<Pace> pace;
  if (!o.emulate_profile.empty()) {
    STRATA_ASSIGN_OR_RETURN(Pace p, load_pace(o.emulate_profile));
    pace = p;
  }
  std::error_code ec;
  std::filesystem::create_directories(o.cache_dir, ec);
  if (ec) return io_error(o.cache_dir + ": cannot create the cache folder: " + ec.message());
  STRATA_ASSIGN_OR_RETURN(tp::Context ctx, tp::Context::create(1));
  // A slow link slows everything the agent sends: control replies (so `strata profile link`
  // measures the emulated link) as well as activations.
  tp::ChannelOptions control_options;
  control_options.link.delay_ms = o.link_delay_ms;
  control_options.link.rate_mbit_per_s = o.link_mbit_per_s;
  STRATA_ASSIGN_OR_RETURN(tp::ControlServer cs,
                          tp::ControlServer::bind(ctx, o.bind, control_options));
  STRATA_ASSIGN_OR_RETURN(tp::DataReceiver dr, tp::DataReceiver::bind(ctx, o.data_bind));
  auto impl = std::make_unique<Impl>(o, std::move(ctx), std::move(cs), std::move(dr));
  impl->pace = pace;
  if (pace) impl->log(pace->note);
  return std::unique_ptr<Agent>(new Agent(std::move(impl)));
}

const std::string& Agent::control_endpoint() const { return impl_->control.endpoint(); }
const std::string& Agent::data_endpoint() const { return impl_->data.endpoint(); }

AgentCounters Agent::counters() const {
  AgentCounters c = impl_->counters;
  c.control_rejected = impl_->control.counters().rejected.total();
  c.data_rejected = impl_->data.counters().rejected.total();
  return c;
}

Status Agent::serve(const std::atomic<bool>& stop) {
  Impl& s = *impl_;
  s.log("serving control " + s.control.endpoint() + ", data " + s.data.endpoint());
  tp::Channel* chans[] = {&s.control, &s.data};
  while (!stop.load() && !s.exit_requested) {
    s.flush_pending();
    Result<uint32_t> ready =
        tp::wait_readable(chans, tp::Deadline::after_ms(s.pending_out.empty() ? 100 : 5));
    if (!ready.ok()) {
      if (ready.status().code() == StatusCode::kDeadlineExceeded) continue;
      return ready.status();
    }
    if ((*ready & 1u) != 0) {
      Result<tp::ControlRequest> req = s.control.recv(tp::Deadline::after_ms(0));
      if (req.ok()) {
        s.on_control(*req);
      } else if (req.status().code() != StatusCode::kDeadlineExceeded) {
        s.log("refused a control message: " + req.status().message());
      }
    }
    if ((*ready & 2u) != 0) {
      Result<tp::DataMessage> msg = s.data.recv(tp::Deadline::after_ms(0));
      if (msg.ok()) {
        s.on_data(*msg);
      } else if (msg.status().code() != StatusCode::kDeadlineExceeded) {
        s.log("refused a data message: " + msg.status().message());
      }
    }
  }
  s.log("stopped");
  return {};
}

}  // namespace strata::agent
