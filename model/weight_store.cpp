// StreamingWeights: the resident set stays in the file's mapping, pinned; streamed layers are
// read by the I/O engine's threads into a ring of lookahead + 1 aligned buffers in the order
// the engine uses them (its layer range, cyclically; a dense layer in two halves: norms, attention
// and gate for acquire(), up and down for ffn_up_down()), so that the next halves are read while
// the engine computes. Streamed layers never go through the mapping: touching them there would
// fault them into the page cache and the process's RSS, which is what the budget rules out.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>

#include "direct_io.h"
#include "sparse_ffn.h"
#include "strata/base/io.h"
#include "weight_store_internal.h"

namespace strata::model {

using stream::InternalPlan;
using stream::IoEngine;
using stream::LayerPlan;
using stream::ReadOp;
using stream::Span;
using stream::StreamFile;
using stream::UnitPlan;

class StreamingWeights::Impl {
 public:
  Impl(const Model& model, InternalPlan plan) : model_(model), ip_(std::move(plan)) {}
  ~Impl() {
    {
      std::unique_lock<std::mutex> lock(mu_);
      stop_ = true;
    }
    // Destroying the engines waits for the reads in flight and completes the queued ones as
    // cancelled, while the buffers they write to still exist.
    ring_io_.reset();
    sparse_.reset();
    sparse_io_.reset();
    for (const Span& s : pinned_) {
      if (locked_) ::munlock(s.begin, static_cast<size_t>(s.bytes));
    }
  }

  Status start(const StreamOptions& o) {
    pin(o.lock_resident);
    // Every layer kept can still leave the embedding out (its rows are read on demand).
    if (ip_.plan.streamed_layers.empty() && !ip_.plan.embedding_rows) return {};
    STRATA_ASSIGN_OR_RETURN(file_, StreamFile::open(model_.file().path(), o.direct_io));
    if (!file_->note().empty()) notes_.push_back(file_->note());
    if (ip_.plan.embedding_rows) {
      STRATA_ASSIGN_OR_RETURN(row_buf_, AlignedBuffer::allocate(ip_.plan.embedding_buffer_bytes));
      if (o.lock_resident) row_buf_.lock();
    }
    if (ip_.plan.streamed_layers.empty()) return {};
    const int depth = ip_.plan.io_depth;
    const int64_t chunk = ip_.plan.chunk_bytes;
    STRATA_ASSIGN_OR_RETURN(ring_io_, stream::make_io_engine(o.reader, *file_, depth, chunk));
    // One region for the ring, buffers end to end: it starts on a huge page and huge pages
    // cover it whole but its tail, whatever the unit size (ring_buffer_bytes counts the tail).
    slots_.resize(static_cast<size_t>(ip_.plan.lookahead + 1));
    STRATA_ASSIGN_OR_RETURN(ring_, AlignedBuffer::allocate(ip_.plan.ring_bytes));
    if (o.lock_resident && !ring_.lock()) locked_ = false;
    for (size_t i = 0; i < slots_.size(); ++i) {
      slots_[i].data = ring_.data() + static_cast<int64_t>(i) * ip_.slot_bytes;
    }
    if (ip_.plan.sparse) {
      STRATA_ASSIGN_OR_RETURN(sparse_io_, stream::make_io_engine(o.reader, *file_, depth, chunk));
      STRATA_ASSIGN_OR_RETURN(
          sparse_, stream::SparseFfn::create(ip_, *sparse_io_, o.window_tokens, o.lock_resident));
      if (o.lock_resident && !sparse_->locked()) locked_ = false;
    }
    if (o.lock_resident && !locked_ && lock_note_.empty()) {
      lock_note_ = "mlock refused (RLIMIT_MEMLOCK): read buffers are not locked";
    }
    if (!lock_note_.empty()) notes_.push_back(lock_note_);
    for (size_t i = 0; i < ip_.units.size(); ++i) {
      if (!ip_.units[i].resident) order_.push_back(i);
    }
    std::lock_guard<std::mutex> lock(mu_);
    fill();
    return {};
  }

  Result<const LayerWeights*> acquire(int64_t layer) {
    if (layer < ip_.layer_begin || layer >= ip_.layer_end) {
      return invalid_argument("layer " + std::to_string(layer) +
                              " is outside the streamed range [" + std::to_string(ip_.layer_begin) +
                              ", " + std::to_string(ip_.layer_end) + ")");
    }
    if (layer == ip_.layer_begin) {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.forward_calls;
      if (sparse_) sparse_->begin_call();
    }
    const LayerPlan& lp = plan_of(layer);
    if (lp.resident) return &model_.layer(layer);
    if (!ip_.plan.sparse) return &lp.views;  // the matrices come from matrix_rows
    std::unique_lock<std::mutex> lock(mu_);
    STRATA_ASSIGN_OR_RETURN(Slot * s, take(lp.units[0], lock));
    return &s->views;
  }

  Result<WeightView> matrix_rows(int64_t layer, LayerWeightSource::Matrix m, int64_t row_begin) {
    const auto mi = static_cast<int>(m);
    const LayerPlan& lp = plan_of(layer);
    for (size_t ui : lp.units) {
      const stream::UnitPlan& u = ip_.units[ui];
      for (size_t pi = 0; pi < u.pieces.size(); ++pi) {
        const StreamPiece& pc = u.pieces[pi];
        if (pc.matrix != mi || pc.row_begin != row_begin) continue;
        WeightView v = model_.layer(layer).*stream::kMatrices[static_cast<size_t>(mi)];
        const int64_t rb = row_bytes(v.type, v.cols);
        v.rows = pc.row_end - pc.row_begin;
        if (u.resident) {
          v.data = static_cast<const uint8_t*>(v.data) + pc.row_begin * rb;
          return v;
        }
        // Every earlier unit of the layer is done with: its buffer goes back to the reader.
        std::unique_lock<std::mutex> lock(mu_);
        bool freed = false;
        for (Slot& s : slots_) {
          if (s.unit != ui && s.state == State::kInUse && ip_.units[s.unit].layer == layer) {
            free(s);
            freed = true;
          }
        }
        if (freed) {
          fill();
          cv_.notify_all();
        }
        Slot* s = slot_of(ui);
        if (s == nullptr || s->state != State::kInUse) {
          STRATA_ASSIGN_OR_RETURN(s, take(ui, lock));
        }
        v.data = s->data + u.layout.range_at[pi];
        return v;
      }
    }
    return invalid_argument("layer " + std::to_string(layer) + " has no piece of matrix " +
                            std::to_string(mi) + " starting at row " + std::to_string(row_begin));
  }

  bool serves_embedding_rows() const { return ip_.plan.embedding_rows; }

  // One pread per token into the row buffer (aligned for O_DIRECT; the row may straddle a page
  // boundary), then the same dequantization the mapping's row would get.
  Status embed_rows(std::span<const int32_t> tokens, float* hidden) {
    const GgufTensorInfo* t = ip_.embedding;
    const WeightView& e = model_.token_embd();
    const int64_t rb = row_bytes(e.type, e.cols);
    const int64_t base = static_cast<int64_t>(model_.file().data_offset() + t->offset);
    for (size_t i = 0; i < tokens.size(); ++i) {
      const int64_t begin = base + tokens[i] * rb;
      const int64_t a_begin = stream::align_down(begin, stream::kDirectAlign);
      const int64_t a_bytes = stream::align_up(begin + rb, stream::kDirectAlign) - a_begin;
      STRATA_CHECK(a_bytes <= row_buf_.size());
      const double t0 = now_s();
      const ssize_t r = ::pread(file_->fd(), row_buf_.data(), static_cast<size_t>(a_bytes),
                                static_cast<off_t>(a_begin));
      if (r < 0) {
        return io_error(file_->path() + ": cannot read the embedding row of token " +
                        std::to_string(tokens[i]) + " at offset " + std::to_string(a_begin) + ": " +
                        std::strerror(errno));
      }
      if (r < begin + rb - a_begin) {
        return corrupt(file_->path() + ": the embedding row of token " + std::to_string(tokens[i]) +
                       " needs bytes up to " + std::to_string(begin + rb) +
                       " but the file ends at " + std::to_string(a_begin + r));
      }
      if (!file_->direct()) {
        ::posix_fadvise(file_->fd(), a_begin, a_bytes, POSIX_FADV_DONTNEED);
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        stats_.embedding_bytes_read += a_bytes;
        stats_.embedding_wait_s += now_s() - t0;
        stats_.wait_s += now_s() - t0;
      }
      WeightView row = e;
      row.rows = 1;
      row.data = row_buf_.data() + (begin - a_begin);
      get_row(row, 0, hidden + static_cast<int64_t>(i) * e.cols);
    }
    return {};
  }

  void release(int64_t layer) {
    if (plan_of(layer).resident) return;
    std::lock_guard<std::mutex> lock(mu_);
    for (Slot& s : slots_) {
      if (s.state == State::kInUse && ip_.units[s.unit].layer == layer) free(s);
    }
    fill();
    cv_.notify_all();
  }

  Result<FfnUpDown> ffn_up_down(int64_t layer, const LayerWeights& w, const float* gate,
                                int64_t n_tokens) {
    // Dense: w's up and down are null where they stream; the engine asks matrix_rows.
    if (plan_of(layer).resident || !sparse_) return FfnUpDown{w.ffn_up, w.ffn_down};
    stream::SparseCounters c;
    Result<FfnUpDown> r = sparse_->load(layer, w, gate, n_tokens, &c);
    std::lock_guard<std::mutex> lock(mu_);
    stats_.bytes_read += c.bytes_read;
    stats_.bytes_used += c.bytes_read;
    stats_.reads += c.reads;
    stats_.read_busy_s += c.read_s;
    stats_.wait_s += c.read_s;
    stats_.bundles_needed += c.bundles_needed;
    stats_.bundles_cached += c.bundles_cached;
    stats_.bundles_total += c.bundles_total;
    return r;
  }

  const StreamPlan& plan() const { return ip_.plan; }
  bool direct_io() const { return file_ != nullptr && file_->direct(); }
  ReaderKind reader() const { return ring_io_ ? ring_io_->kind() : ReaderKind::kPread; }
  const std::vector<std::string>& notes() const { return notes_; }
  bool locked() const { return locked_; }
  StreamStats stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    StreamStats st = stats_;
    if (ring_io_) st.read_busy_s += ring_io_->busy_s() - busy_base_;
    return st;
  }
  void reset_stats() {
    std::lock_guard<std::mutex> lock(mu_);
    stats_ = {};
    busy_base_ = ring_io_ ? ring_io_->busy_s() : 0.0;
  }

 private:
  enum class State { kFree, kReading, kReady, kInUse, kFailed };
  static constexpr size_t kNoUnit = static_cast<size_t>(-1);
  struct Slot {
    uint8_t* data = nullptr;  // slot_bytes of ring_
    size_t unit = kNoUnit;    // what the buffer holds: an index in ip_.units
    State state = State::kFree;
    Status status;
    LayerWeights views;  // sparse: the unit's tensors in buf; the others as the model has them
  };

  const LayerPlan& plan_of(int64_t layer) const {
    return ip_.layers[static_cast<size_t>(layer - ip_.layer_begin)];
  }

  Slot* slot_of(size_t u) {
    for (Slot& s : slots_) {
      if (s.unit == u && s.state != State::kFree) return &s;
    }
    return nullptr;
  }

  void free(Slot& s) {
    s.state = State::kFree;
    s.unit = kNoUnit;
  }

  // Waits until unit `u` is in a buffer and marks it in use. A unit neither read nor being
  // read is fine when the reader takes it next into a free buffer; otherwise every buffer
  // holds units the engine skipped (a new start, a retry after an error) and reading restarts
  // at `u`. A failed read frees its buffer and returns the error.
  Result<Slot*> take(size_t u, std::unique_lock<std::mutex>& lock) {
    const double t0 = now_s();
    const bool free_slot = std::any_of(slots_.begin(), slots_.end(),
                                       [](const Slot& x) { return x.state == State::kFree; });
    if (slot_of(u) == nullptr && (order_[next_] != u || !free_slot)) restart_at(u, lock);
    Slot* s = nullptr;
    cv_.wait(lock, [&] {
      s = slot_of(u);
      return s != nullptr && s->state != State::kReading;
    });
    stats_.wait_s += now_s() - t0;
    if (s->state == State::kFailed) {
      Status st = s->status;
      free(*s);
      fill();
      cv_.notify_all();
      return st.with_context("reading layer " + std::to_string(ip_.units[u].layer));
    }
    s->state = State::kInUse;
    stats_.bytes_used += ip_.units[u].layout.buffer_bytes;
    return s;
  }

  void restart_at(size_t u, std::unique_lock<std::mutex>& lock) {
    cv_.wait(lock, [&] {
      return std::none_of(slots_.begin(), slots_.end(),
                          [](const Slot& s) { return s.state == State::kReading; });
    });
    for (Slot& s : slots_) {
      if (s.state != State::kInUse) free(s);
    }
    next_ = static_cast<size_t>(std::find(order_.begin(), order_.end(), u) - order_.begin());
    STRATA_CHECK(next_ < order_.size());
    fill();
    cv_.notify_all();
  }

  // Queues the next units of the engine's order into every free buffer (mu_ held). The reads
  // complete in on_read(), on an I/O thread.
  void fill() {
    for (Slot& s : slots_) {
      if (stop_ || s.state != State::kFree) continue;
      const size_t u = order_[next_];
      next_ = (next_ + 1) % order_.size();
      s.unit = u;
      s.state = State::kReading;
      const stream::UnitLayout& layout = ip_.units[u].layout;
      std::vector<ReadOp> ops;
      int64_t at = 0;
      for (const stream::Extent& e : layout.extents) {
        ops.push_back(ReadOp{e.offset, e.bytes, s.data + at, e.need_end});
        at += e.bytes;
      }
      STRATA_CHECK(!ops.empty());  // an empty group would complete inside submit(), under mu_
      Slot* slot = &s;
      ring_io_->submit(std::move(ops),
                       [this, slot, u, at](Status st) { on_read(slot, u, at, st); });
    }
  }

  void on_read(Slot* s, size_t u, int64_t bytes, Status st) {
    std::lock_guard<std::mutex> lock(mu_);
    STRATA_CHECK(s->state == State::kReading && s->unit == u);
    if (st.ok()) {
      stats_.bytes_read += bytes;
      const stream::UnitPlan& up = ip_.units[u];
      stats_.reads += static_cast<int64_t>(up.layout.extents.size());
      if (ip_.plan.sparse) {
        s->views = stream::views_into(model_.layer(up.layer), up.layer, up.layout, s->data);
        // Up and down come from the sparse loader: the mapping must never serve them.
        s->views.ffn_up.data = nullptr;
        s->views.ffn_down.data = nullptr;
      }
      s->state = State::kReady;
    } else {
      s->status = std::move(st);
      s->state = State::kFailed;
    }
    cv_.notify_all();
  }

  // Pins the resident set in the mapping: asks the kernel to read it ahead, then locks it
  // (which faults it in); where locking is refused its pages are touched once instead, so the
  // first token does not pay for faulting them.
  void pin(bool lock) {
    std::vector<Span> pieces;
    for (const GgufTensorInfo* t : ip_.pinned) pieces.push_back(Span{t->data, t->n_bytes});
    const GgufFile& f = model_.file();
    for (size_t i = 0; i < ip_.layers.size(); ++i) {
      const int64_t layer = ip_.layer_begin + static_cast<int64_t>(i);
      const LayerPlan& lp = ip_.layers[i];
      // Streamed layers keep their gate in sparse mode, their norms and kept units in dense.
      stream::Part part = stream::Part::kAll;
      if (!lp.resident) part = ip_.plan.sparse ? stream::Part::kGate : stream::Part::kNorms;
      for (const GgufTensorInfo* t : stream::layer_tensors(f, layer, part)) {
        pieces.push_back(Span{t->data, t->n_bytes});
      }
      if (lp.resident || ip_.plan.sparse) continue;
      for (size_t ui : lp.units) {
        const stream::UnitPlan& u = ip_.units[ui];
        if (!u.resident) continue;
        for (const StreamPiece& pc : u.pieces) {
          const WeightView& v =
              model_.layer(layer).*stream::kMatrices[static_cast<size_t>(pc.matrix)];
          const int64_t rb = row_bytes(v.type, v.cols);
          pieces.push_back(Span{static_cast<const uint8_t*>(v.data) + pc.row_begin * rb,
                                (pc.row_end - pc.row_begin) * rb});
        }
      }
    }
    pinned_ = stream::mapped_spans(pieces);
    locked_ = lock;
    int err = 0;
    for (const Span& s : pinned_) {
      void* p = const_cast<uint8_t*>(s.begin);
      ::madvise(p, static_cast<size_t>(s.bytes), MADV_WILLNEED);
      if (locked_ && ::mlock(p, static_cast<size_t>(s.bytes)) != 0) {
        err = errno;
        locked_ = false;
        for (const Span& u : pinned_) {
          if (u.begin == s.begin) break;
          ::munlock(u.begin, static_cast<size_t>(u.bytes));
        }
      }
    }
    if (!locked_) {
      volatile uint8_t sink = 0;
      for (const Span& s : pinned_) {
        for (int64_t at = 0; at < s.bytes; at += stream::kDirectAlign) sink = sink + s.begin[at];
      }
      (void)sink;
    }
    if (lock && !locked_) {
      lock_note_ = std::string("mlock refused (") + std::strerror(err) +
                   "): the resident set is faulted in but not locked; under memory pressure "
                   "the kernel may evict it and fault it back from the file";
    }
  }

  const Model& model_;
  InternalPlan ip_;
  std::unique_ptr<StreamFile> file_;
  std::unique_ptr<IoEngine> ring_io_;
  std::unique_ptr<IoEngine> sparse_io_;
  std::unique_ptr<stream::SparseFfn> sparse_;
  std::vector<Span> pinned_;
  bool locked_ = false;
  std::string lock_note_;
  std::vector<std::string> notes_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Slot> slots_;
  std::vector<size_t> order_;  // streamed units (ip_.units indexes) in the engine's order
  AlignedBuffer row_buf_;      // embedding rows read on demand
  AlignedBuffer ring_;         // the slots' buffers
  size_t next_ = 0;            // index in order_ of the next unit to read
  bool stop_ = false;
  StreamStats stats_;     // read_busy_s: sparse reads only; the ring's comes from ring_io_
  double busy_base_ = 0;  // ring_io_->busy_s() at the last reset
};

StreamingWeights::StreamingWeights(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StreamingWeights::~StreamingWeights() = default;

Result<std::unique_ptr<StreamingWeights>> StreamingWeights::open(const Model& model,
                                                                 const StreamOptions& options) {
  STRATA_ASSIGN_OR_RETURN(stream::InternalPlan ip, stream::build_plan(model, options));
  auto impl = std::make_unique<Impl>(model, std::move(ip));
  STRATA_RETURN_IF_ERROR(impl->start(options));
  return std::unique_ptr<StreamingWeights>(new StreamingWeights(std::move(impl)));
}

const StreamPlan& StreamingWeights::plan() const { return impl_->plan(); }
bool StreamingWeights::direct_io() const { return impl_->direct_io(); }
ReaderKind StreamingWeights::reader() const { return impl_->reader(); }
const std::vector<std::string>& StreamingWeights::notes() const { return impl_->notes(); }
bool StreamingWeights::resident_locked() const { return impl_->locked(); }
StreamStats StreamingWeights::stats() const { return impl_->stats(); }
void StreamingWeights::reset_stats() { impl_->reset_stats(); }

Result<const LayerWeights*> StreamingWeights::acquire(int64_t layer) {
  return impl_->acquire(layer);
}
void StreamingWeights::release(int64_t layer) { impl_->release(layer); }
Result<LayerWeightSource::FfnUpDown> StreamingWeights::ffn_up_down(int64_t layer,
                                                                   const LayerWeights& w,
                                                                   const float* gate,
                                                                   int64_t n_tokens) {
  return impl_->ffn_up_down(layer, w, gate, n_tokens);
}

Result<WeightView> StreamingWeights::matrix_rows(int64_t layer, Matrix m, int64_t row_begin) {
  return impl_->matrix_rows(layer, m, row_begin);
}
bool StreamingWeights::serves_embedding_rows() const { return impl_->serves_embedding_rows(); }
Status StreamingWeights::embed_rows(std::span<const int32_t> tokens, float* hidden) {
  return impl_->embed_rows(tokens, hidden);
}

}  // namespace strata::model
