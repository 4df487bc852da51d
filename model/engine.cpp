#include "strata/model/engine.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

namespace strata::model {
namespace {

// Sum of a[i] * b[i] with eight interleaved partial sums combined in a fixed tree, so the
// result depends only on n (the compiler may vectorize the lanes, not reorder them).
float dot_f32(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int l = 0; l < 8; ++l) acc[l] += a[i + l] * b[i + l];
  }
  for (; i < n; ++i) acc[i & 7] += a[i] * b[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

// y = x / sqrt(mean(x^2) + eps) * w; the mean is accumulated in double as ggml does.
void rms_norm(const float* x, const float* w, float* y, int64_t n, double eps) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] * scale) * w[i];
}

// Rotates consecutive pairs (x[2i], x[2i+1]) of the first 2*n_pairs dims (GGUF llama "normal"
// RoPE layout).
void rope_apply(float* x, const float* cos_t, const float* sin_t, int64_t n_pairs) {
  for (int64_t i = 0; i < n_pairs; ++i) {
    const float x0 = x[2 * i];
    const float x1 = x[2 * i + 1];
    x[2 * i] = x0 * cos_t[i] - x1 * sin_t[i];
    x[2 * i + 1] = x0 * sin_t[i] + x1 * cos_t[i];
  }
}

// Calls fn(begin, end) on disjoint contiguous row ranges covering [0, n), one per thread.
template <typename Fn>
void parallel_rows(ThreadPool& pool, int64_t n, const Fn& fn) {
  const int nth = pool.size();
  if (nth == 1 || n < 2) {
    fn(int64_t{0}, n);
    return;
  }
  pool.run([&](int ith) {
    const int64_t per = (n + nth - 1) / nth;
    const int64_t b = std::min<int64_t>(n, per * ith);
    const int64_t e = std::min<int64_t>(n, b + per);
    if (b < e) fn(b, e);
  });
}

}  // namespace

Engine::Engine(const Model& model, const EngineOptions& options)
    : model_(model), options_(options), pool_(options.n_threads) {}

Result<std::unique_ptr<Engine>> Engine::create(const Model& model, const EngineOptions& options) {
  const ModelConfig& c = model.config();
  EngineOptions o = options;
  if (o.layer_end < 0) o.layer_end = c.n_layers;
  if (o.layer_begin < 0 || o.layer_begin > o.layer_end || o.layer_end > c.n_layers) {
    return invalid_argument("layer range [" + std::to_string(o.layer_begin) + ", " +
                            std::to_string(o.layer_end) + ") is outside the model's " +
                            std::to_string(c.n_layers) + " layers");
  }
  if (o.layer_begin < model.block_begin() || o.layer_end > model.block_end()) {
    return invalid_argument(
        "layer range [" + std::to_string(o.layer_begin) + ", " + std::to_string(o.layer_end) +
        ") is not in this model slice's blocks [" + std::to_string(model.block_begin()) + ", " +
        std::to_string(model.block_end()) + ")");
  }
  if (o.n_threads < 1 || o.n_threads > 1024) {
    return invalid_argument("thread count " + std::to_string(o.n_threads) + " must be 1..1024");
  }
  if (o.ctx < 1 || o.ctx > (int64_t{1} << 24)) {
    return invalid_argument("context " + std::to_string(o.ctx) + " must be 1..16M positions");
  }
  if (o.max_sequences < 1 || o.max_sequences > 65536) {
    return invalid_argument("sequence count " + std::to_string(o.max_sequences) +
                            " must be 1..65536");
  }
  if (o.max_batch < 1) return invalid_argument("max batch must be >= 1");
  std::unique_ptr<Engine> e(new Engine(model, o));
  e->layer_begin_ = o.layer_begin;
  e->layer_end_ = o.layer_end;
  const size_t slots = static_cast<size_t>((o.layer_end - o.layer_begin) * o.max_sequences);
  e->k_.resize(slots);
  e->v_.resize(slots);
  e->seq_len_.assign(static_cast<size_t>(o.max_sequences), 0);
  return e;
}

int64_t Engine::kv_cache_bytes() const {
  int64_t bytes = 0;
  for (const auto& k : k_) bytes += static_cast<int64_t>(k.size() * sizeof(float));
  for (const auto& v : v_) bytes += static_cast<int64_t>(v.size() * sizeof(float));
  return bytes;
}

float* Engine::k_cache(int64_t layer_local, int32_t seq) {
  auto& k = k_[static_cast<size_t>(layer_local * options_.max_sequences + seq)];
  if (k.empty()) k.resize(static_cast<size_t>(options_.ctx * config().kv_dim()));
  return k.data();
}

float* Engine::v_cache(int64_t layer_local, int32_t seq) {
  auto& v = v_[static_cast<size_t>(layer_local * options_.max_sequences + seq)];
  if (v.empty()) v.resize(static_cast<size_t>(options_.ctx * config().kv_dim()));
  return v.data();
}

void Engine::ensure_scratch(int64_t n) {
  if (n <= scratch_tokens_) return;
  const ModelConfig& c = config();
  const auto un = static_cast<size_t>(n);
  xn_.resize(un * static_cast<size_t>(c.dim));
  q_.resize(un * static_cast<size_t>(c.dim));
  k_new_.resize(un * static_cast<size_t>(c.kv_dim()));
  v_new_.resize(un * static_cast<size_t>(c.kv_dim()));
  attn_.resize(un * static_cast<size_t>(c.dim));
  gate_.resize(un * static_cast<size_t>(c.ffn_dim));
  up_.resize(un * static_cast<size_t>(c.ffn_dim));
  tmp_.resize(un * static_cast<size_t>(c.dim));
  rope_cos_.resize(un * static_cast<size_t>(c.rope_dims / 2));
  rope_sin_.resize(un * static_cast<size_t>(c.rope_dims / 2));
  scratch_tokens_ = n;
}

void Engine::reset_sequence(int32_t seq) {
  STRATA_CHECK(seq >= 0 && seq < options_.max_sequences);
  seq_len_[static_cast<size_t>(seq)] = 0;
}

Status Engine::embed(std::span<const int32_t> tokens, float* hidden) {
  const ModelConfig& c = config();
  for (size_t t = 0; t < tokens.size(); ++t) {
    if (tokens[t] < 0 || tokens[t] >= c.vocab) {
      return invalid_argument("token id " + std::to_string(tokens[t]) +
                              " is outside the vocabulary (" + std::to_string(c.vocab) +
                              " tokens)");
    }
  }
  if (options_.weights != nullptr && options_.weights->serves_embedding_rows()) {
    return options_.weights->embed_rows(tokens, hidden);
  }
  parallel_rows(pool_, static_cast<int64_t>(tokens.size()), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      get_row(model_.token_embd(), tokens[static_cast<size_t>(t)], hidden + t * c.dim);
    }
  });
  return {};
}

Status Engine::forward(std::span<const TokenSlot> tokens, float* hidden) {
  const ModelConfig& c = config();
  const auto n = static_cast<int64_t>(tokens.size());
  if (n == 0) return {};
  if (n > options_.max_batch) {
    return invalid_argument("batch of " + std::to_string(n) +
                            " tokens exceeds the engine's max batch " +
                            std::to_string(options_.max_batch));
  }
  // Validate sequence ids and positions against what is cached, before touching any state.
  std::vector<int32_t> next(seq_len_);
  for (const TokenSlot& s : tokens) {
    if (s.seq < 0 || s.seq >= options_.max_sequences) {
      return invalid_argument("sequence id " + std::to_string(s.seq) + " is outside the engine's " +
                              std::to_string(options_.max_sequences) + " slots");
    }
    if (s.pos < 0 || s.pos >= options_.ctx) {
      return invalid_argument("position " + std::to_string(s.pos) + " is outside the context of " +
                              std::to_string(options_.ctx));
    }
    if (s.pos != next[static_cast<size_t>(s.seq)]) {
      return invalid_argument("sequence " + std::to_string(s.seq) + " expects position " +
                              std::to_string(next[static_cast<size_t>(s.seq)]) + ", got " +
                              std::to_string(s.pos));
    }
    next[static_cast<size_t>(s.seq)] = s.pos + 1;
  }
  ensure_scratch(n);

  // RoPE angles depend only on the position: theta_i = pos * base^(-2i / rope_dims).
  const int64_t n_pairs = c.rope_dims / 2;
  for (int64_t t = 0; t < n; ++t) {
    const double pos = tokens[static_cast<size_t>(t)].pos;
    for (int64_t i = 0; i < n_pairs; ++i) {
      const double theta = pos * std::pow(c.rope_freq_base, -2.0 * static_cast<double>(i) /
                                                                static_cast<double>(c.rope_dims));
      rope_cos_[static_cast<size_t>(t * n_pairs + i)] = static_cast<float>(std::cos(theta));
      rope_sin_[static_cast<size_t>(t * n_pairs + i)] = static_cast<float>(std::sin(theta));
    }
  }

  const int64_t dim = c.dim;
  const int64_t kv_dim = c.kv_dim();
  const int64_t hd = c.head_dim;
  for (int64_t layer = layer_begin_; layer < layer_end_; ++layer) {
    const LayerWeights* wp = &model_.layer(layer);
    if (options_.weights != nullptr) {
      STRATA_ASSIGN_OR_RETURN(wp, options_.weights->acquire(layer));
    }
    const LayerWeights& w = *wp;
    const int64_t ll = layer - layer_begin_;
    // y = x · Wᵀ for a matrix the source may hand out in row ranges (data == nullptr): each
    // output element depends on its weight row only, so the pieces give the whole product's
    // bits.
    using Matrix = LayerWeightSource::Matrix;
    const auto product = [&](Matrix m, const WeightView& v, const float* x, float* y,
                             int64_t ldy) -> Status {
      if (v.data != nullptr) {
        matmul(v, x, n, y, ldy, pool_, mm_scratch_);
        return {};
      }
      STRATA_CHECK(options_.weights != nullptr);
      for (int64_t row = 0; row < v.rows;) {
        Result<WeightView> piece = options_.weights->matrix_rows(layer, m, row);
        if (!piece.ok()) {
          options_.weights->release(layer);
          return piece.status();
        }
        STRATA_CHECK(piece->rows > 0 && row + piece->rows <= v.rows && piece->cols == v.cols);
        matmul(*piece, x, n, y + row, ldy, pool_, mm_scratch_);
        row += piece->rows;
      }
      return {};
    };

    parallel_rows(pool_, n, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t)
        rms_norm(hidden + t * dim, w.attn_norm, xn_.data() + t * dim, dim, c.rms_eps);
    });
    STRATA_RETURN_IF_ERROR(product(Matrix::kQ, w.attn_q, xn_.data(), q_.data(), dim));
    STRATA_RETURN_IF_ERROR(product(Matrix::kK, w.attn_k, xn_.data(), k_new_.data(), kv_dim));
    STRATA_RETURN_IF_ERROR(product(Matrix::kV, w.attn_v, xn_.data(), v_new_.data(), kv_dim));
    for (int64_t t = 0; t < n; ++t) {
      const float* cs = rope_cos_.data() + t * n_pairs;
      const float* sn = rope_sin_.data() + t * n_pairs;
      for (int64_t h = 0; h < c.n_heads; ++h)
        rope_apply(q_.data() + t * dim + h * hd, cs, sn, n_pairs);
      for (int64_t h = 0; h < c.n_kv_heads; ++h)
        rope_apply(k_new_.data() + t * kv_dim + h * hd, cs, sn, n_pairs);
      const TokenSlot& s = tokens[static_cast<size_t>(t)];
      std::memcpy(k_cache(ll, s.seq) + s.pos * kv_dim, k_new_.data() + t * kv_dim,
                  static_cast<size_t>(kv_dim) * sizeof(float));
      std::memcpy(v_cache(ll, s.seq) + s.pos * kv_dim, v_new_.data() + t * kv_dim,
                  static_cast<size_t>(kv_dim) * sizeof(float));
    }
    attention(tokens, ll);
    STRATA_RETURN_IF_ERROR(product(Matrix::kO, w.attn_o, attn_.data(), tmp_.data(), dim));
    parallel_rows(pool_, n, [&](int64_t b, int64_t e) {
      for (int64_t i = b * dim; i < e * dim; ++i) hidden[i] += tmp_[static_cast<size_t>(i)];
      for (int64_t t = b; t < e; ++t)
        rms_norm(hidden + t * dim, w.ffn_norm, xn_.data() + t * dim, dim, c.rms_eps);
    });

    STRATA_RETURN_IF_ERROR(product(Matrix::kGate, w.ffn_gate, xn_.data(), gate_.data(), c.ffn_dim));
    WeightView ffn_up = w.ffn_up;
    WeightView ffn_down = w.ffn_down;
    if (options_.weights != nullptr) {
      Result<LayerWeightSource::FfnUpDown> ud =
          options_.weights->ffn_up_down(layer, w, gate_.data(), n);
      if (!ud.ok()) {
        options_.weights->release(layer);
        return ud.status();
      }
      ffn_up = ud->up;
      ffn_down = ud->down;
    }
    STRATA_RETURN_IF_ERROR(product(Matrix::kUp, ffn_up, xn_.data(), up_.data(), c.ffn_dim));
    const bool relu = c.ffn_act == FfnAct::kRelu;
    parallel_rows(pool_, n, [&](int64_t b, int64_t e) {
      float* g = gate_.data();
      const float* u = up_.data();
      for (int64_t i = b * c.ffn_dim; i < e * c.ffn_dim; ++i) {
        const float x = g[i];
        const float a = relu ? (x > 0.0f ? x : 0.0f) : x / (1.0f + std::exp(-x));
        g[i] = a * u[i];
      }
    });
    STRATA_RETURN_IF_ERROR(product(Matrix::kDown, ffn_down, gate_.data(), tmp_.data(), dim));
    parallel_rows(pool_, n, [&](int64_t b, int64_t e) {
      for (int64_t i = b * dim; i < e * dim; ++i) hidden[i] += tmp_[static_cast<size_t>(i)];
    });
    if (options_.weights != nullptr) options_.weights->release(layer);
  }
  seq_len_ = std::move(next);
  return {};
}

void attend(const float* q, const float* k, const float* v, int64_t kv_stride, int64_t head_dim,
            int64_t n_pos, float scale, float* scores, float* out) {
  float mx = -INFINITY;
  for (int64_t j = 0; j < n_pos; ++j) {
    const float s = dot_f32(q, k + j * kv_stride, head_dim) * scale;
    scores[j] = s;
    mx = std::max(mx, s);
  }
  double sum = 0.0;
  for (int64_t j = 0; j < n_pos; ++j) {
    const float e = std::exp(scores[j] - mx);
    scores[j] = e;
    sum += e;
  }
  const auto inv = static_cast<float>(1.0 / sum);
  std::fill(out, out + head_dim, 0.0f);
  for (int64_t j = 0; j < n_pos; ++j) {
    const float p = scores[j] * inv;
    const float* vj = v + j * kv_stride;
    for (int64_t d = 0; d < head_dim; ++d) out[d] += p * vj[d];
  }
}

void Engine::attention(std::span<const TokenSlot> tokens, int64_t ll) {
  const ModelConfig& c = config();
  const auto n = static_cast<int64_t>(tokens.size());
  const int64_t hd = c.head_dim;
  const int64_t dim = c.dim;
  const int64_t kv_dim = c.kv_dim();
  const int64_t group = c.n_heads / c.n_kv_heads;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  const int64_t items = n * c.n_heads;
  // Resolve cache pointers on this thread: k_cache() may allocate.
  std::vector<const float*> kc(static_cast<size_t>(n));
  std::vector<const float*> vc(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) {
    kc[static_cast<size_t>(t)] = k_cache(ll, tokens[static_cast<size_t>(t)].seq);
    vc[static_cast<size_t>(t)] = v_cache(ll, tokens[static_cast<size_t>(t)].seq);
  }
  pool_.run([&](int ith) {
    std::vector<float> scores(static_cast<size_t>(options_.ctx));
    // Interleaved items balance the causal triangle across threads; each (token, head) is
    // computed entirely by one thread, so the thread count never changes the result.
    for (int64_t item = ith; item < items; item += pool_.size()) {
      const int64_t t = item / c.n_heads;
      const int64_t h = item % c.n_heads;
      const int64_t kvh = h / group;
      const int32_t pos = tokens[static_cast<size_t>(t)].pos;
      attend(q_.data() + t * dim + h * hd, kc[static_cast<size_t>(t)] + kvh * hd,
             vc[static_cast<size_t>(t)] + kvh * hd, kv_dim, hd, int64_t{pos} + 1, scale,
             scores.data(), attn_.data() + t * dim + h * hd);
    }
  });
}

void Engine::head(const float* hidden, int64_t n_rows, float* logits) {
  const ModelConfig& c = config();
  ensure_scratch(n_rows);
  parallel_rows(pool_, n_rows, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      rms_norm(hidden + t * c.dim, model_.output_norm(), xn_.data() + t * c.dim, c.dim, c.rms_eps);
    }
  });
  matmul(model_.output(), xn_.data(), n_rows, logits, c.vocab, pool_, mm_scratch_);
}

}  // namespace strata::model
