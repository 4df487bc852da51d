#include "strata/agent/coordinator.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <optional>

#include <nlohmann/json.hpp>

#include "strata/agent/scheduler.h"
#include "strata/base/io.h"
#include "strata/model/model.h"
#include "strata/transport/channel.h"
#include "strata/transport/heartbeat.h"
#include "units.h"

namespace strata::agent {

namespace tp = strata::transport;

namespace {

double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

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
    const double t0 = now_s();
    STRATA_RETURN_IF_ERROR(check_inputs());
    STRATA_ASSIGN_OR_RETURN(ctx_, tp::Context::create(1));
    STRATA_ASSIGN_OR_RETURN(tp::DataReceiver results,
                            tp::DataReceiver::bind(*ctx_, o_.result_bind));
    results_.emplace(std::move(results));
    STRATA_RETURN_IF_ERROR(hello_all());
    STRATA_RETURN_IF_ERROR(assign_all());
    STRATA_ASSIGN_OR_RETURN(tp::DataSender first,
                            tp::DataSender::connect(*ctx_, peers_[0].hello.data_endpoint));
    first_.emplace(std::move(first));
    report_.setup_s = now_s() - t0;
    STRATA_RETURN_IF_ERROR(generate());
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
    for (const StageSpec& s : o_.plan.stages) {
      Peer p;
      p.device = s.device;
      p.endpoint = o_.agents.at(s.device);
      Result<tp::ControlClient> c = tp::ControlClient::connect(*ctx_, p.endpoint);
      if (!c.ok())
        return c.status().with_context("agent '" + p.device + "' at '" + p.endpoint + "'");
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
      peers_.push_back(std::move(p));
    }
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
    for (size_t i = 0; i < peers_.size(); ++i) {
      const StageSpec& s = o_.plan.stages[i];
      STRATA_ASSIGN_OR_RETURN(const UnitRange u, unit_range(s.unit_begin, s.unit_end, c.n_layers));
      const std::string slice = o_.slice_dir + "/" + base + "-" + model_hash_key + "-u" +
                                std::to_string(s.unit_begin) + "-" + std::to_string(s.unit_end) +
                                ".gguf";
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
    h.request_id = 1;
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
      if (p.tracker->lost(now_ns())) {
        return unavailable("agent '" + p.device + "' at " + p.endpoint + " is lost: silent for " +
                           std::to_string(static_cast<int>(p.tracker->silence_ms(now_ns()))) +
                           " ms");
      }
    }
    return {};
  }

  Status generate() {
    const auto n_seq = static_cast<int32_t>(o_.prompts.size());
    int groups = o_.n_groups > 0 ? o_.n_groups : static_cast<int>(peers_.size());
    groups = std::max(1, std::min(groups, n_seq));
    report_.n_groups = groups;
    Scheduler sched({groups, o_.step_token_budget});
    for (const auto& p : o_.prompts) sched.add_sequence(p, o_.n_gen);
    report_.tokens.assign(static_cast<size_t>(n_seq), {});
    if (o_.want_logits) {
      report_.first_logits.assign(static_cast<size_t>(n_seq), {});
      report_.last_logits.assign(static_cast<size_t>(n_seq), {});
    }
    const int64_t vocab = model_->config().vocab;
    const double t0 = now_s();
    int64_t decode_tokens = 0;
    std::vector<double> decode_rtt_ms;
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
        if (static_cast<double>(now_ns() - last_result_ns) * 1e-6 > o_.agent_timeout_ms) {
          return deadline_exceeded("no result from the pipeline for " +
                                   std::to_string(static_cast<int>(o_.agent_timeout_ms)) +
                                   " ms (last stage '" + peers_.back().device + "')");
        }
        continue;
      }
      last_result_ns = now_ns();
      const tp::DataHeader& h = r->header;
      if (h.status_code != StatusCode::kOk) return Status(h.status_code, h.status_message);
      auto git = step_group_.find(h.step_id);
      if (git == step_group_.end())
        return internal_error("result for unknown step " + std::to_string(h.step_id));
      const int group = git->second;
      const double rtt_ms = static_cast<double>(now_ns() - step_sent_ns_[h.step_id]) * 1e-6;
      if (step_decode_only_[h.step_id]) {
        decode_rtt_ms.push_back(rtt_ms);
        decode_tokens += h.n_tokens;
      }
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
      }
      STRATA_RETURN_IF_ERROR(sched.complete(group, h.sampled_tokens));
    }
    const double t1 = now_s();
    report_.generate_s = t1 - t0;
    for (const auto& t : report_.tokens) report_.total_tokens += static_cast<int64_t>(t.size());
    report_.decode_latency_ms = median_of(decode_rtt_ms);
    if (first_decode_ns_ > 0 && decode_tokens > 0) {
      report_.throughput_tok_per_s =
          static_cast<double>(decode_tokens) / (t1 - static_cast<double>(first_decode_ns_) * 1e-9);
    }
    return {};
  }

  Status collect_stats() {
    for (size_t i = 0; i < peers_.size(); ++i) {
      Peer& p = peers_[i];
      STRATA_RETURN_IF_ERROR(
          p.control->send(tp::Stats{}, tp::Deadline::after_ms(o_.agent_timeout_ms)));
      for (;;) {
        STRATA_ASSIGN_OR_RETURN(tp::ControlMessage m, expect_reply(p));
        auto* s = std::get_if<tp::Stats>(&m);
        if (s == nullptr) continue;  // a late heartbeat echo
        StageReport& sr = report_.stages[i];
        std::vector<double> decode_ms;
        for (const tp::StepStats& st : s->steps) {
          ++sr.steps;
          sr.compute_ms += st.compute_ms;
          sr.wait_ms += st.wait_ms;
          sr.link_ms += st.link_ms;
          sr.bytes_in += st.bytes_in;
          sr.bytes_out += st.bytes_out;
          if (step_decode_only_.count(st.step_id) != 0 && step_decode_only_[st.step_id])
            decode_ms.push_back(st.compute_ms);
        }
        sr.decode_compute_ms_median = median_of(decode_ms);
        break;
      }
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
  tp::HeartbeatSender heartbeat_{1000};
  uint64_t next_step_id_ = 1;
  std::map<uint64_t, int> step_group_;
  std::map<uint64_t, int64_t> step_sent_ns_;
  std::map<uint64_t, bool> step_decode_only_;
  int64_t first_decode_ns_ = 0;
};

}  // namespace

Result<RunReport> run_plan(const RunOptions& options) { return Run(options).go(); }

PlanSpec even_plan(const std::vector<std::string>& devices, int64_t n_layers) {
  PlanSpec p;
  const auto n = static_cast<int64_t>(devices.size());
  int64_t unit = 0;
  for (int64_t i = 0; i < n; ++i) {
    // Blocks split as evenly as possible; the embedding joins stage 0, the head the last.
    const int64_t blocks = n_layers / n + (i < n_layers % n ? 1 : 0);
    StageSpec s;
    s.device = devices[static_cast<size_t>(i)];
    s.unit_begin = unit;
    s.unit_end = unit + blocks + (i == 0 ? 1 : 0) + (i + 1 == n ? 1 : 0);
    unit = s.unit_end;
    p.stages.push_back(s);
  }
  return p;
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
    p.predicted_throughput_tok_per_s = pr.value("throughput_tok_per_s", 0.0);
    p.predicted_sequences = pr.value("sequences", int64_t{0});
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
  out += "\n                      predicted   measured   error\n";
  std::snprintf(line, sizeof line, "per-token latency ms  %9.2f  %9.2f   %s\n",
                r.plan.predicted_latency_ms, r.decode_latency_ms,
                pct_error(r.plan.predicted_latency_ms, r.decode_latency_ms).c_str());
  out += line;
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
  j["setup_s"] = r.setup_s;
  j["generate_s"] = r.generate_s;
  j["total_tokens"] = r.total_tokens;
  j["time_to_first_token_ms"] = r.time_to_first_token_ms;
  j["measured"] = {{"latency_ms", r.decode_latency_ms},
                   {"throughput_tok_per_s", r.throughput_tok_per_s}};
  j["predicted"] = {{"latency_ms", r.plan.predicted_latency_ms},
                    {"throughput_tok_per_s", r.plan.predicted_throughput_tok_per_s},
                    {"sequences", r.plan.predicted_sequences}};
  const auto err = [](double p, double m) -> nlohmann::json {
    if (p <= 0 || m <= 0) return nullptr;
    return (p - m) / m;
  };
  j["error"] = {{"latency", err(r.plan.predicted_latency_ms, r.decode_latency_ms)},
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
                      {"load_ms", s.load_ms}});
  }
  j["stages"] = stages;
  return j.dump();
}

}  // namespace strata::agent
