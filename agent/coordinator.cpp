#include "strata/agent/coordinator.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "headroom.h"
#include "strata/agent/scheduler.h"
#include "strata/base/io.h"
#include "strata/model/model.h"
#include "strata/transport/channel.h"
#include "strata/transport/heartbeat.h"
#include "units.h"

namespace strata::agent {

namespace tp = strata::transport;

namespace {

struct Peer {
  std::string device;
  std::string endpoint;
  std::optional<tp::ControlClient> control;
  tp::Hello hello;
  std::optional<tp::HeartbeatTracker> tracker;
};

class Run {
 public:
  explicit Run(const RunOptions& o) : o_(o) {}

  Result<RunReport> go() {
    report_.plan = o_.plan;
    plan_ = o_.plan;
    const double t0 = now_s();
    STRATA_RETURN_IF_ERROR(check_inputs());
    STRATA_ASSIGN_OR_RETURN(ctx_, tp::Context::create(1));
    STRATA_ASSIGN_OR_RETURN(tp::DataReceiver results,
                            tp::DataReceiver::bind(*ctx_, o_.result_bind));
    results_.emplace(std::move(results));
    STRATA_RETURN_IF_ERROR(hello_all());
    STRATA_RETURN_IF_ERROR(assign_all());
    STRATA_RETURN_IF_ERROR(connect_first());
    report_.setup_s = now_s() - t0;
    STRATA_RETURN_IF_ERROR(generate_surviving());
    STRATA_RETURN_IF_ERROR(collect_stats());
    for (Peer& p : peers_) {
      (void)p.control->send(tp::Shutdown{"run finished"}, tp::Deadline::after_ms(1000));
    }
    return std::move(report_);
  }

 private:
  void progress(const std::string& line) const {
    if (o_.on_progress) o_.on_progress(line);
  }

  Status check_inputs() {
    if (o_.plan.stages.empty()) return invalid_argument("the plan has no stages");
    if (o_.prompts.empty()) return invalid_argument("no sequences to generate");
    for (const auto& p : o_.prompts) {
      if (p.empty()) return invalid_argument("a prompt is empty");
    }
    if (o_.n_gen < 1) return invalid_argument("-n must be at least 1");
    STRATA_ASSIGN_OR_RETURN(model_, model::Model::load(o_.model_path));
    const int64_t n_units = model_->config().n_layers + 2;
    int64_t expect = 0;
    for (const StageSpec& s : o_.plan.stages) {
      if (s.unit_begin != expect || s.unit_end <= s.unit_begin) {
        return invalid_argument("plan stage on '" + s.device + "' covers units [" +
                                std::to_string(s.unit_begin) + ", " + std::to_string(s.unit_end) +
                                "), expected to start at " + std::to_string(expect));
      }
      expect = s.unit_end;
      if (o_.agents.count(s.device) == 0) {
        return invalid_argument("the plan puts a stage on '" + s.device + "' but no --agent " +
                                s.device + "=ENDPOINT was given");
      }
    }
    if (expect != n_units) {
      return invalid_argument("the plan covers " + std::to_string(expect) + " units but " +
                              o_.model_path + " has " + std::to_string(n_units) + " (embedding, " +
                              std::to_string(n_units - 2) +
                              " blocks, head): was it made for another model?");
    }
    int64_t longest = 0;
    for (const auto& p : o_.prompts)
      longest = std::max<int64_t>(longest, static_cast<int64_t>(p.size()));
    ctx_len_ = o_.ctx > 0 ? o_.ctx : longest + o_.n_gen;
    if (longest + o_.n_gen - 1 > ctx_len_)
      return invalid_argument("the context is too short for prompt + n");
    return {};
  }

  Status hello_all() {
    for (const StageSpec& s : plan_.stages) {
      STRATA_ASSIGN_OR_RETURN(Peer p, hello(s.device));
      peers_.push_back(std::move(p));
    }
    return {};
  }

  Result<Peer> hello(const std::string& device) {
    Peer p;
    p.device = device;
    p.endpoint = o_.agents.at(device);
    Result<tp::ControlClient> c = tp::ControlClient::connect(*ctx_, p.endpoint);
    if (!c.ok()) return c.status().with_context("agent '" + p.device + "' at '" + p.endpoint + "'");
    p.control.emplace(std::move(c).value());
    tp::Hello me;
    me.agent_id = "coordinator";
    me.agent_name = "coordinator";
    const Status sent = p.control->send(me, tp::Deadline::after_ms(o_.agent_timeout_ms));
    if (!sent.ok()) return sent.with_context("agent '" + p.device + "' at " + p.endpoint);
    STRATA_ASSIGN_OR_RETURN(tp::ControlMessage m, expect_reply(p));
    if (auto* h = std::get_if<tp::Hello>(&m)) {
      p.hello = *h;
    } else {
      return internal_error("agent '" + p.device + "' answered hello with " +
                            tp::control_message_name(m));
    }
    progress("agent " + p.device + " at " + p.endpoint + ": " + p.hello.agent_name + ", " +
             std::to_string(p.hello.n_threads) + " threads, data " + p.hello.data_endpoint);
    p.tracker.emplace(o_.agent_timeout_ms, now_ns());
    return p;
  }

  Status connect_first() {
    tp::ChannelOptions co;
    co.link.delay_ms = o_.link_delay_ms;
    co.link.rate_mbit_per_s = o_.link_mbit_per_s;
    STRATA_ASSIGN_OR_RETURN(tp::DataSender first,
                            tp::DataSender::connect(*ctx_, peers_[0].hello.data_endpoint, co));
    first_.emplace(std::move(first));
    return {};
  }

  // The next control message from `p`, turning an ErrorMessage into its Status.
  Result<tp::ControlMessage> expect_reply(Peer& p, bool errors_as_values = false) {
    Result<tp::ControlReply> r = p.control->recv(tp::Deadline::after_ms(o_.agent_timeout_ms));
    if (!r.ok()) {
      if (r.status().code() == StatusCode::kDeadlineExceeded) {
        return deadline_exceeded("agent '" + p.device + "' at " + p.endpoint +
                                 " did not answer within " +
                                 std::to_string(static_cast<int>(o_.agent_timeout_ms)) + " ms");
      }
      return r.status().with_context("agent '" + p.device + "' at " + p.endpoint);
    }
    if (p.tracker) p.tracker->heard(now_ns());
    if (auto* e = std::get_if<tp::ErrorMessage>(&r->message); e != nullptr && !errors_as_values) {
      return Status(e->code, "agent '" + p.device + "': " + e->message);
    }
    return std::move(r->message);
  }

  Status assign_all() {
    const std::string model_hash_key =
        std::to_string(std::filesystem::file_size(o_.model_path)) + "-" +
        std::to_string(std::filesystem::last_write_time(o_.model_path).time_since_epoch().count());
    std::error_code ec;
    std::filesystem::create_directories(o_.slice_dir, ec);
    if (ec) return io_error(o_.slice_dir + ": cannot create: " + ec.message());
    const model::ModelConfig& c = model_->config();
    const std::string base = std::filesystem::path(o_.model_path).stem().string();
    std::vector<uint32_t> sampled_before;
    for (const auto& t : report_.tokens) sampled_before.push_back(static_cast<uint32_t>(t.size()));
    for (size_t i = 0; i < peers_.size(); ++i) {
      const StageSpec& s = plan_.stages[i];
      STRATA_ASSIGN_OR_RETURN(const UnitRange u, unit_range(s.unit_begin, s.unit_end, c.n_layers));
      // "s1": the streaming layout (model/slice.cpp); a slice cut in another layout by an
      // older build is not reused under this name.
      const std::string slice = o_.slice_dir + "/" + base + "-" + model_hash_key + "-u" +
                                std::to_string(s.unit_begin) + "-" + std::to_string(s.unit_end) +
                                "-s1.gguf";
      if (!std::filesystem::exists(slice)) {
        progress("cutting slice units [" + std::to_string(s.unit_begin) + ", " +
                 std::to_string(s.unit_end) + ") for " + s.device);
        STRATA_RETURN_IF_ERROR(model::write_model_slice(*model_, u.block_begin, u.block_end,
                                                        u.embedding, u.head, slice));
      }
      STRATA_ASSIGN_OR_RETURN(const std::string slice_hash, model::hash_file(slice));
      tp::Assign a;
      a.model_id = c.name;
      a.model_hash = model_hash_key;
      a.slice_hash = slice_hash;
      a.stage_index = static_cast<uint32_t>(i);
      a.n_stages = static_cast<uint32_t>(peers_.size());
      a.unit_begin = static_cast<uint32_t>(s.unit_begin);
      a.unit_end = static_cast<uint32_t>(s.unit_end);
      a.n_threads = static_cast<uint32_t>(std::max(0, o_.threads_per_agent));
      a.downstream_endpoint =
          i + 1 < peers_.size() ? peers_[i + 1].hello.data_endpoint : results_->endpoint();
      a.upstream_name = i == 0 ? "coordinator" : peers_[i - 1].device;
      a.n_ctx = static_cast<uint32_t>(ctx_len_);
      a.n_seq_max = static_cast<uint32_t>(o_.prompts.size());
      a.temperature = o_.sampler.temperature;
      a.top_k = o_.sampler.top_k;
      a.top_p = o_.sampler.top_p;
      a.seed = o_.sampler.seed;
      a.epoch = epoch_;
      a.sampled_before = sampled_before;
      Peer& p = peers_[i];
      StageReport sr;
      sr.device = p.device;
      sr.endpoint = p.endpoint;
      sr.unit_begin = s.unit_begin;
      sr.unit_end = s.unit_end;
      sr.predicted_decode_ms = s.predicted_decode_ms;
      STRATA_RETURN_IF_ERROR(p.control->send(a, tp::Deadline::after_ms(o_.agent_timeout_ms)));
      STRATA_ASSIGN_OR_RETURN(tp::ControlMessage m, expect_reply(p, /*errors_as_values=*/true));
      if (auto* e = std::get_if<tp::ErrorMessage>(&m);
          e != nullptr && e->code == StatusCode::kNotFound) {
        STRATA_ASSIGN_OR_RETURN(sr.shipped_bytes, ship(p, slice, slice_hash));
        STRATA_ASSIGN_OR_RETURN(m, expect_reply(p, /*errors_as_values=*/true));
      }
      if (auto* e = std::get_if<tp::ErrorMessage>(&m))
        return Status(e->code, "agent '" + p.device + "': " + e->message);
      auto* ready = std::get_if<tp::Ready>(&m);
      if (ready == nullptr) {
        return internal_error("agent '" + p.device + "' answered its assignment with " +
                              tp::control_message_name(m));
      }
      sr.load_ms = ready->load_ms;
      sr.resident_bytes = ready->resident_bytes;
      progress("stage " + std::to_string(i) + " ready on " + p.device + " (" +
               format_bytes(static_cast<double>(ready->resident_bytes)) + ", loaded in " +
               std::to_string(static_cast<int>(ready->load_ms)) + " ms)");
      report_.stages.push_back(sr);
    }
    return {};
  }

  Result<uint64_t> ship(Peer& p, const std::string& path, const std::string& hash) {
    STRATA_ASSIGN_OR_RETURN(const std::string bytes, read_file(path));
    progress("shipping " + format_bytes(static_cast<double>(bytes.size())) + " slice " + hash +
             " to " + p.device);
    const auto owner = std::make_shared<const std::string>(bytes);
    for (uint64_t off = 0; off < owner->size() || off == 0; off += o_.ship_chunk_bytes) {
      const uint64_t n = std::min<uint64_t>(o_.ship_chunk_bytes, owner->size() - off);
      tp::SharedBytes chunk(owner, owner->data() + off, n);
      const Status s = p.control->send(tp::ShipSlice{hash, off, n, owner->size()},
                                       tp::Deadline::after_ms(o_.agent_timeout_ms), chunk);
      if (!s.ok()) return s.with_context("shipping the slice to '" + p.device + "'");
      if (owner->empty()) break;
    }
    return static_cast<uint64_t>(owner->size());
  }

  Status send_step(const Step& st) {
    tp::DataHeader h;
    h.request_id = epoch_;
    h.step_id = next_step_id_++;
    h.flags = (st.n_prefill_tokens > 0 ? tp::kDataPrefill : 0u) |
              (st.n_decode_tokens > 0 ? tp::kDataDecode : 0u) |
              (o_.want_logits ? tp::kDataWantLogits : 0u);
    h.n_tokens = static_cast<uint32_t>(st.seq_ids.size());
    h.seq_ids = st.seq_ids;
    h.positions = st.positions;
    h.token_ids = st.token_ids;
    h.logit_rows = st.logit_rows;
    step_group_[h.step_id] = st.group;
    step_sent_ns_[h.step_id] = now_ns();
    step_decode_only_[h.step_id] = st.n_prefill_tokens == 0;
    if (st.n_prefill_tokens == 0 && first_decode_ns_ == 0) first_decode_ns_ = now_ns();
    const Status s = first_->send(h, {}, tp::Deadline::after_ms(o_.agent_timeout_ms));
    return s.ok() ? s : s.with_context("sending a step to stage 0 ('" + peers_[0].device + "')");
  }

  Status heartbeat() {
    const int64_t now = now_ns();
    if (auto hb = heartbeat_.due(now)) {
      for (Peer& p : peers_) (void)p.control->send(*hb, tp::Deadline::after_ms(0));
    }
    Peer* lost = nullptr;
    for (Peer& p : peers_) {
      // Drain replies: any message counts as a sign of life; errors are reported.
      for (;;) {
        Result<tp::ControlReply> r = p.control->recv(tp::Deadline::after_ms(0));
        if (!r.ok()) break;
        p.tracker->heard(now_ns());
        if (auto* e = std::get_if<tp::ErrorMessage>(&r->message)) {
          return Status(e->code, "agent '" + p.device + "': " + e->message);
        }
      }
      // Of several silent agents the one silent longest is taken for lost: the others may
      // only be waiting on it.
      if (p.tracker->lost(now_ns()) && (lost == nullptr || p.tracker->silence_ms(now_ns()) >
                                                               lost->tracker->silence_ms(now_ns())))
        lost = &p;
    }
    if (lost != nullptr) {
      lost_device_ = lost->device;
      return unavailable(
          "agent '" + lost->device + "' at " + lost->endpoint + " is lost: silent for " +
          std::to_string(static_cast<int>(lost->tracker->silence_ms(now_ns()))) + " ms");
    }
    return {};
  }

  // generate(), re-planning over the agents left whenever one is lost (at most
  // o_.max_replans times). Every sequence resumes from the tokens it has.
  Status generate_surviving() {
    for (;;) {
      lost_device_.clear();
      const Status s = generate();
      if (s.ok() || lost_device_.empty()) return s;
      if (static_cast<int>(report_.replans.size()) >= o_.max_replans) {
        return s.with_context("no re-plan left (--max-replans " + std::to_string(o_.max_replans) +
                              ")");
      }
      STRATA_RETURN_IF_ERROR(replan(s));
    }
  }

  // Per device of the current plan that is still here: measured milliseconds per unit of a
  // decode step (0 when it ran none).
  std::map<std::string, double> measured_ms_per_unit() {
    std::map<std::string, double> out;
    for (size_t i = 0; i < peers_.size(); ++i) {
      Peer& p = peers_[i];
      if (p.device == lost_device_) continue;
      Result<tp::Stats> st = request_stats(p);
      if (!st.ok()) continue;  // it may be going too: it then counts as unmeasured
      const std::vector<double> ms = decode_step_ms(*st);
      const StageSpec& spec = plan_.stages[i];
      if (!ms.empty())
        out[p.device] = median_of(ms) / static_cast<double>(spec.unit_end - spec.unit_begin);
    }
    return out;
  }

  // The step statistics `p` keeps (heartbeat echoes before them are skipped).
  Result<tp::Stats> request_stats(Peer& p) {
    STRATA_RETURN_IF_ERROR(
        p.control->send(tp::Stats{}, tp::Deadline::after_ms(o_.agent_timeout_ms)));
    for (;;) {
      STRATA_ASSIGN_OR_RETURN(tp::ControlMessage m, expect_reply(p));
      if (auto* s = std::get_if<tp::Stats>(&m)) return std::move(*s);
    }
  }

  // True when step `id` was sent holding decode tokens only (no prompt chunk).
  bool decode_only(uint64_t id) const {
    const auto it = step_decode_only_.find(id);
    return it != step_decode_only_.end() && it->second;
  }

  // Compute times of the decode-only steps among `s`'s.
  std::vector<double> decode_step_ms(const tp::Stats& s) const {
    std::vector<double> ms;
    for (const tp::StepStats& x : s.steps) {
      if (decode_only(x.step_id)) ms.push_back(x.compute_ms);
    }
    return ms;
  }

  Status replan(const Status& cause) {
    const double t0 = now_s();
    ReplanEvent ev;
    ev.lost_device = lost_device_;
    ev.cause = cause.message();
    ev.at_s = t0 - t0_generate_;
    ev.tokens_before = 0;
    for (const auto& t : report_.tokens) ev.tokens_before += static_cast<int64_t>(t.size());
    lost_.insert(lost_device_);
    std::vector<std::string> left;
    for (const Peer& p : peers_) {
      if (lost_.count(p.device) == 0) left.push_back(p.device);
    }
    for (const auto& [name, endpoint] : o_.agents) {
      const bool used = std::any_of(peers_.begin(), peers_.end(),
                                    [&](const Peer& p) { return p.device == name; });
      if (!used && lost_.count(name) == 0) left.push_back(name);  // a spare agent
    }
    if (left.empty()) return cause.with_context("every agent is lost");
    progress("agent " + lost_device_ + " lost (" + cause.message() + "): re-planning over " +
             std::to_string(left.size()) + " agent(s) left");
    const std::map<std::string, double> speed = measured_ms_per_unit();
    PlanSpec next;
    if (o_.replan) {
      STRATA_ASSIGN_OR_RETURN(next, o_.replan(left));
    } else {
      std::vector<double> ms;
      for (const std::string& d : left) ms.push_back(speed.count(d) != 0 ? speed.at(d) : 0.0);
      next = speed_weighted_plan(left, ms, model_->config().n_layers);
    }
    next.micro_batch = plan_.micro_batch;
    std::vector<Peer> old = std::move(peers_);
    peers_.clear();
    for (const StageSpec& st : next.stages) {
      auto it = std::find_if(old.begin(), old.end(),
                             [&](const Peer& p) { return p.device == st.device; });
      if (it != old.end()) {
        peers_.push_back(std::move(*it));
        continue;
      }
      if (o_.agents.count(st.device) == 0)
        return invalid_argument("the re-plan names '" + st.device + "', which is not an agent");
      STRATA_ASSIGN_OR_RETURN(Peer p, hello(st.device));
      peers_.push_back(std::move(p));
    }
    ++epoch_;
    plan_ = next;
    report_.stages.clear();
    step_group_.clear();
    step_sent_ns_.clear();
    STRATA_RETURN_IF_ERROR(assign_all());
    STRATA_RETURN_IF_ERROR(connect_first());
    ev.recovery_s = now_s() - t0;
    for (const StageSpec& st : next.stages) ev.devices.push_back(st.device);
    progress("re-planned in " + std::to_string(ev.recovery_s).substr(0, 5) +
             " s: " + std::to_string(next.stages.size()) + " stage(s); resuming every sequence");
    report_.replans.push_back(std::move(ev));
    return {};
  }

  Status generate() {
    const auto n_seq = static_cast<int32_t>(o_.prompts.size());
    const int64_t b = plan_.micro_batch;  // a re-plan carries it over
    int groups = o_.n_groups > 0 ? o_.n_groups
                 : b > 0         ? static_cast<int>((n_seq + b - 1) / b)
                                 : static_cast<int>(peers_.size());
    groups = std::max(1, std::min(groups, n_seq));
    report_.n_groups = groups;
    Scheduler sched({groups, o_.step_token_budget});
    if (report_.tokens.empty()) {
      report_.tokens.assign(static_cast<size_t>(n_seq), {});
      if (o_.want_logits) {
        report_.first_logits.assign(static_cast<size_t>(n_seq), {});
        report_.last_logits.assign(static_cast<size_t>(n_seq), {});
      }
    }
    // After a re-plan every sequence starts again from its prompt and the tokens it has.
    for (size_t i = 0; i < o_.prompts.size(); ++i)
      sched.resume_sequence(o_.prompts[i], report_.tokens[i], o_.n_gen);
    const int64_t vocab = model_->config().vocab;
    if (t0_generate_ == 0) t0_generate_ = now_s();
    const double t0 = t0_generate_;
    int64_t last_result_ns = now_ns();
    while (!sched.done()) {
      for (int g = 0; g < groups; ++g) {
        if (auto st = sched.next_step(g)) STRATA_RETURN_IF_ERROR(send_step(*st));
      }
      STRATA_RETURN_IF_ERROR(heartbeat());
      Result<tp::DataMessage> r = results_->recv(tp::Deadline::after_ms(50));
      if (!r.ok()) {
        if (r.status().code() != StatusCode::kDeadlineExceeded)
          return r.status().with_context("results");
        // Twice the agent deadline: a lost agent is named by the heartbeats first.
        if (static_cast<double>(now_ns() - last_result_ns) * 1e-6 > 2 * o_.agent_timeout_ms) {
          return deadline_exceeded("no result from the pipeline for " +
                                   std::to_string(static_cast<int>(o_.agent_timeout_ms)) +
                                   " ms (last stage '" + peers_.back().device + "')");
        }
        continue;
      }
      const tp::DataHeader& h = r->header;
      if (h.request_id != epoch_) continue;  // from the pipeline before a re-plan
      last_result_ns = now_ns();
      if (h.status_code != StatusCode::kOk) return Status(h.status_code, h.status_message);
      auto git = step_group_.find(h.step_id);
      if (git == step_group_.end())
        return internal_error("result for unknown step " + std::to_string(h.step_id));
      const int group = git->second;
      const double rtt_ms = static_cast<double>(now_ns() - step_sent_ns_[h.step_id]) * 1e-6;
      if (decode_only(h.step_id))
        decode_results_.push_back({now_ns(), static_cast<int64_t>(h.n_tokens), rtt_ms});
      step_group_.erase(git);
      if (h.sampled_tokens.size() != h.seq_ids.size()) {
        return internal_error("the last stage returned " + std::to_string(h.sampled_tokens.size()) +
                              " tokens for " + std::to_string(h.seq_ids.size()) + " rows");
      }
      std::span<const float> logits;
      std::optional<tp::SharedBytes> aligned;
      if (o_.want_logits && !r->payload.empty()) {
        aligned = r->payload.aligned_to(alignof(float));
        STRATA_ASSIGN_OR_RETURN(logits, aligned->view_as<float>());
      }
      for (size_t k = 0; k < h.seq_ids.size(); ++k) {
        const int32_t seq = h.seq_ids[k];
        if (seq < 0 || seq >= n_seq)
          return internal_error("result for unknown sequence " + std::to_string(seq));
        auto& toks = report_.tokens[static_cast<size_t>(seq)];
        if (toks.empty() && report_.time_to_first_token_ms == 0)
          report_.time_to_first_token_ms = (now_s() - t0) * 1e3;
        if (o_.on_token) o_.on_token(seq, static_cast<int64_t>(toks.size()), h.sampled_tokens[k]);
        if (!logits.empty() && logits.size() == h.seq_ids.size() * static_cast<size_t>(vocab)) {
          std::vector<float> row(
              logits.begin() + static_cast<std::ptrdiff_t>(k * static_cast<size_t>(vocab)),
              logits.begin() + static_cast<std::ptrdiff_t>((k + 1) * static_cast<size_t>(vocab)));
          if (toks.empty()) report_.first_logits[static_cast<size_t>(seq)] = row;
          report_.last_logits[static_cast<size_t>(seq)] = std::move(row);
        }
        toks.push_back(h.sampled_tokens[k]);
        if (toks.size() == 1 && ++n_started_ == n_seq) all_decoding_ns_ = now_ns();
        if (static_cast<int64_t>(toks.size()) == o_.n_gen && first_done_ns_ == 0)
          first_done_ns_ = now_ns();
      }
      STRATA_RETURN_IF_ERROR(sched.complete(group, h.sampled_tokens));
    }
    const double t1 = now_s();
    report_.generate_s = t1 - t0;
    for (const auto& t : report_.tokens) report_.total_tokens += static_cast<int64_t>(t.size());
    report_.plan_used = plan_;
    measure_decode(t1);
    return {};
  }

  // The report's decode latency (median round trip of a decode-only step) and throughput: the
  // steady state the plan predicts, tokens of results that arrived after every sequence was
  // decoding and up to the first sequence's end, over that time; over the whole decode phase
  // (from the first decode step to `end_s`) when that window holds fewer than two steps.
  void measure_decode(double end_s) {
    std::vector<double> rtt_ms;
    int64_t tokens = 0, window_tokens = 0, window_steps = 0;
    for (const DecodeResult& r : decode_results_) {
      rtt_ms.push_back(r.rtt_ms);
      tokens += r.n_tokens;
      if (all_decoding_ns_ > 0 && r.at_ns > all_decoding_ns_ && r.at_ns <= first_done_ns_) {
        window_tokens += r.n_tokens;
        ++window_steps;
      }
    }
    report_.decode_latency_ms = median_of(rtt_ms);
    if (window_steps >= 2 && first_done_ns_ > all_decoding_ns_) {
      report_.throughput_tok_per_s =
          static_cast<double>(window_tokens) /
          (static_cast<double>(first_done_ns_ - all_decoding_ns_) * 1e-9);
    } else if (first_decode_ns_ > 0 && tokens > 0) {
      report_.throughput_tok_per_s =
          static_cast<double>(tokens) / (end_s - static_cast<double>(first_decode_ns_) * 1e-9);
    }
  }

  Status collect_stats() {
    for (size_t i = 0; i < peers_.size(); ++i) {
      STRATA_ASSIGN_OR_RETURN(const tp::Stats s, request_stats(peers_[i]));
      StageReport& sr = report_.stages[i];
      for (const tp::StepStats& st : s.steps) {
        ++sr.steps;
        sr.compute_ms += st.compute_ms;
        sr.wait_ms += st.wait_ms;
        sr.link_ms += st.link_ms;
        sr.bytes_in += st.bytes_in;
        sr.bytes_out += st.bytes_out;
      }
      sr.decode_compute_ms_median = median_of(decode_step_ms(s));
      sr.emulation =
          measure_headroom(s.steps, [this](uint64_t step_id) { return decode_only(step_id); });
    }
    return {};
  }

  const RunOptions& o_;
  RunReport report_;
  std::unique_ptr<model::Model> model_;
  int64_t ctx_len_ = 0;
  std::optional<tp::Context> ctx_;
  std::optional<tp::DataReceiver> results_;
  std::optional<tp::DataSender> first_;
  std::vector<Peer> peers_;
  PlanSpec plan_;               // the plan running now (o_.plan until a re-plan)
  uint32_t epoch_ = 1;          // data steps carry it as request_id
  std::string lost_device_;     // set when a heartbeat deadline passes
  std::set<std::string> lost_;  // every agent lost so far
  double t0_generate_ = 0;
  struct DecodeResult {
    int64_t at_ns;  // arrival
    int64_t n_tokens;
    double rtt_ms;  // sent to received
  };
  std::vector<DecodeResult> decode_results_;  // every decode-only step, all epochs
  int32_t n_started_ = 0;                     // sequences with a first token
  int64_t all_decoding_ns_ = 0;               // when the last sequence got its first token
  int64_t first_done_ns_ = 0;                 // when the first sequence got its last token
  tp::HeartbeatSender heartbeat_{1000};
  uint64_t next_step_id_ = 1;
  std::map<uint64_t, int> step_group_;
  std::map<uint64_t, int64_t> step_sent_ns_;
  std::map<uint64_t, bool> step_decode_only_;
  int64_t first_decode_ns_ = 0;
};

}  // namespace

Result<RunReport> run_plan(const RunOptions& options) { return Run(options).go(); }

namespace {

// One stage per device in order, device k holding blocks[k] blocks; the embedding joins the
// first stage and the head the last.
PlanSpec plan_of_blocks(const std::vector<std::string>& devices,
                        const std::vector<int64_t>& blocks) {
  PlanSpec p;
  int64_t unit = 0;
  for (size_t k = 0; k < devices.size(); ++k) {
    StageSpec s;
    s.device = devices[k];
    s.unit_begin = unit;
    s.unit_end = unit + blocks[k] + (k == 0 ? 1 : 0) + (k + 1 == devices.size() ? 1 : 0);
    unit = s.unit_end;
    p.stages.push_back(s);
  }
  return p;
}

}  // namespace

PlanSpec even_plan(const std::vector<std::string>& devices, int64_t n_layers) {
  // Blocks split as evenly as possible, the first stages taking the remainder.
  const auto n = static_cast<int64_t>(devices.size());
  std::vector<int64_t> blocks;
  for (int64_t i = 0; i < n; ++i) blocks.push_back(n_layers / n + (i < n_layers % n ? 1 : 0));
  return plan_of_blocks(devices, blocks);
}

PlanSpec speed_weighted_plan(const std::vector<std::string>& devices,
                             const std::vector<double>& ms_per_unit, int64_t n_layers) {
  STRATA_CHECK(!devices.empty() && devices.size() == ms_per_unit.size());
  // Unmeasured devices count as the median measured one (as fast as a typical peer).
  std::vector<double> known;
  for (const double m : ms_per_unit) {
    if (m > 0) known.push_back(m);
  }
  const double fallback = known.empty() ? 1.0 : median_of(known);
  // At most one stage per block: the slowest devices sit out when blocks are fewer.
  std::vector<size_t> order(devices.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto ms = [&](size_t i) { return ms_per_unit[i] > 0 ? ms_per_unit[i] : fallback; };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ms(a) < ms(b); });
  order.resize(
      static_cast<size_t>(std::min<int64_t>(n_layers, static_cast<int64_t>(order.size()))));
  std::sort(order.begin(), order.end());  // back to the given order
  double total = 0;
  for (const size_t i : order) total += 1.0 / ms(i);
  // Blocks in proportion to speed, at least one each, largest remainders rounded up.
  std::vector<int64_t> blocks(order.size(), 1);
  int64_t left = n_layers - static_cast<int64_t>(order.size());
  std::vector<std::pair<double, size_t>> rest;
  for (size_t k = 0; k < order.size(); ++k) {
    const double share = static_cast<double>(n_layers - static_cast<int64_t>(order.size())) *
                         (1.0 / ms(order[k])) / total;
    const auto whole = static_cast<int64_t>(share);
    blocks[k] += whole;
    left -= whole;
    rest.emplace_back(share - static_cast<double>(whole), k);
  }
  std::stable_sort(rest.begin(), rest.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t r = 0; left > 0; ++r, --left) ++blocks[rest[r % rest.size()].second];
  std::vector<std::string> kept;
  for (const size_t i : order) kept.push_back(devices[i]);
  return plan_of_blocks(kept, blocks);
}

Result<PlanSpec> load_plan(const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(const std::string text, read_file(path));
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return corrupt(path + ": not JSON");
  if (j.value("schema", "") != "strata.plan/1")
    return corrupt(path + ": not a strata.plan/1 document");
  if (!j.contains("chosen") || !j["chosen"].contains("stages") ||
      !j["chosen"]["stages"].is_array()) {
    return corrupt(path + ": no chosen plan with stages");
  }
  PlanSpec p;
  const auto& chosen = j["chosen"];
  if (chosen.contains("predicted") && chosen["predicted"].is_object()) {
    const auto& pr = chosen["predicted"];
    p.predicted_latency_ms = pr.value("latency_ms", 0.0);
    p.predicted_round_trip_ms = pr.value("round_trip_ms", 0.0);
    p.predicted_throughput_tok_per_s = pr.value("throughput_tok_per_s", 0.0);
    p.predicted_sequences = pr.value("sequences", int64_t{0});
    p.micro_batch = pr.value("micro_batch", int64_t{0});
  }
  if (j.contains("model") && j["model"].is_object())
    p.model_source = j["model"].value("source", "");
  for (const auto& s : chosen["stages"]) {
    if (!s.is_object() || !s.contains("device") || !s.contains("units") || !s["units"].is_array() ||
        s["units"].size() != 2 || !s["units"][0].is_number_integer() ||
        !s["units"][1].is_number_integer()) {
      return corrupt(path + ": a chosen stage lacks device or units [begin, end]");
    }
    StageSpec st;
    st.device = s["device"].get<std::string>();
    st.unit_begin = s["units"][0].get<int64_t>();
    st.unit_end = s["units"][1].get<int64_t>();
    st.predicted_decode_ms = s.value("decode_ms", 0.0);
    st.predicted_prefill_ms = s.value("prefill_ms", 0.0);
    st.predicted_link_ms = s.value("link_out_ms", 0.0);
    p.stages.push_back(st);
  }
  return p;
}

namespace {
std::string pct_error(double predicted, double measured) {
  if (predicted <= 0 || measured <= 0) return "n/a";
  char b[32];
  std::snprintf(b, sizeof b, "%+.1f%%", (predicted - measured) / measured * 100.0);
  return b;
}
}  // namespace

std::string format_report(const RunReport& r) {
  std::string out;
  char line[512];
  std::snprintf(line, sizeof line,
                "\n%zu sequences, %lld tokens in %.2f s (setup %.2f s), %d pipeline groups\n",
                r.tokens.size(), static_cast<long long>(r.total_tokens), r.generate_s, r.setup_s,
                r.n_groups);
  out += line;
  for (const ReplanEvent& e : r.replans) {
    std::string devs;
    for (const std::string& d : e.devices) devs += (devs.empty() ? "" : " -> ") + d;
    std::snprintf(line, sizeof line,
                  "re-planned at %.2f s after %lld tokens: '%s' lost (%s); recovered in %.2f s "
                  "on %s\n",
                  e.at_s, static_cast<long long>(e.tokens_before), e.lost_device.c_str(),
                  e.cause.c_str(), e.recovery_s, devs.c_str());
    out += line;
  }
  out +=
      "stage  device            units      steps  compute ms  wait ms  link ms   bytes in  bytes "
      "out  decode step ms (pred)\n";
  for (size_t i = 0; i < r.stages.size(); ++i) {
    const StageReport& s = r.stages[i];
    std::snprintf(line, sizeof line,
                  "%-6zu %-17s [%3lld,%3lld) %6lld %11.1f %8.1f %8.1f %10s %10s  %7.2f (%s)\n", i,
                  s.device.c_str(), static_cast<long long>(s.unit_begin),
                  static_cast<long long>(s.unit_end), static_cast<long long>(s.steps), s.compute_ms,
                  s.wait_ms, s.link_ms, format_bytes(static_cast<double>(s.bytes_in)).c_str(),
                  format_bytes(static_cast<double>(s.bytes_out)).c_str(),
                  s.decode_compute_ms_median,
                  s.predicted_decode_ms > 0
                      ? (std::to_string(s.predicted_decode_ms).substr(0, 6) + " ms, err " +
                         pct_error(s.predicted_decode_ms, s.decode_compute_ms_median))
                            .c_str()
                      : "n/a");
    out += line;
  }
  out += format_headroom(r.stages);
  out += "\n                      predicted   measured   error\n";
  const double interval_ms = r.plan.predicted_token_interval_ms();
  std::snprintf(line, sizeof line, "per-token latency ms  %9.2f  %9.2f   %s", interval_ms,
                r.decode_latency_ms, pct_error(interval_ms, r.decode_latency_ms).c_str());
  out += line;
  if (r.plan.predicted_round_trip_ms > 0) {
    std::snprintf(line, sizeof line, "  (all %lld in flight; a step alone %.2f ms)",
                  static_cast<long long>(r.plan.predicted_sequences), r.plan.predicted_latency_ms);
  } else {
    line[0] = '\0';
  }
  out += line;
  out += "\n";
  std::snprintf(line, sizeof line,
                "throughput tok/s      %9.2f  %9.2f   %s  (plan at %lld sequences)\n",
                r.plan.predicted_throughput_tok_per_s, r.throughput_tok_per_s,
                pct_error(r.plan.predicted_throughput_tok_per_s, r.throughput_tok_per_s).c_str(),
                static_cast<long long>(r.plan.predicted_sequences));
  out += line;
  std::snprintf(line, sizeof line, "time to first token  %10.1f ms\n", r.time_to_first_token_ms);
  out += line;
  return out;
}

std::string report_json(const RunReport& r) {
  nlohmann::json j;
  j["tokens"] = r.tokens;
  j["n_groups"] = r.n_groups;
  j["replans"] = nlohmann::json::array();
  for (const ReplanEvent& e : r.replans) {
    j["replans"].push_back({{"lost_device", e.lost_device},
                            {"cause", e.cause},
                            {"at_s", e.at_s},
                            {"tokens_before", e.tokens_before},
                            {"recovery_s", e.recovery_s},
                            {"devices", e.devices}});
  }
  j["setup_s"] = r.setup_s;
  j["generate_s"] = r.generate_s;
  j["total_tokens"] = r.total_tokens;
  j["time_to_first_token_ms"] = r.time_to_first_token_ms;
  j["measured"] = {{"latency_ms", r.decode_latency_ms},
                   {"throughput_tok_per_s", r.throughput_tok_per_s}};
  j["predicted"] = {{"latency_ms", r.plan.predicted_token_interval_ms()},
                    {"step_alone_ms", r.plan.predicted_latency_ms},
                    {"throughput_tok_per_s", r.plan.predicted_throughput_tok_per_s},
                    {"sequences", r.plan.predicted_sequences}};
  const auto err = [](double p, double m) -> nlohmann::json {
    if (p <= 0 || m <= 0) return nullptr;
    return (p - m) / m;
  };
  j["error"] = {{"latency", err(r.plan.predicted_token_interval_ms(), r.decode_latency_ms)},
                {"throughput", err(r.plan.predicted_throughput_tok_per_s, r.throughput_tok_per_s)}};
  nlohmann::json stages = nlohmann::json::array();
  for (const StageReport& s : r.stages) {
    stages.push_back({{"device", s.device},
                      {"endpoint", s.endpoint},
                      {"units", {s.unit_begin, s.unit_end}},
                      {"steps", s.steps},
                      {"compute_ms", s.compute_ms},
                      {"wait_ms", s.wait_ms},
                      {"link_ms", s.link_ms},
                      {"bytes_in", s.bytes_in},
                      {"bytes_out", s.bytes_out},
                      {"decode_step_ms_median", s.decode_compute_ms_median},
                      {"predicted_decode_ms", s.predicted_decode_ms},
                      {"shipped_bytes", s.shipped_bytes},
                      {"load_ms", s.load_ms},
                      {"emulation", headroom_json(s.emulation)}});
  }
  j["stages"] = stages;
  return j.dump();
}

}  // namespace strata::agent
