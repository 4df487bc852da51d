// The GGUF writer. Values are checked when they are set (a mismatch is a bug in the caller, so
// it aborts); the file is laid out exactly as ggml's writer lays it out — tensor data in the
// order of the tensor infos, each padded to the alignment — because llama.cpp refuses any
// other layout.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <thread>

#include "gguf_internal.h"
#include "strata/model/gguf.h"

namespace strata::model {
namespace {

template <typename T>
bool int_fits(GgufType t, T x) {
  switch (t) {
    case GgufType::kU8: return x >= 0 && static_cast<uint64_t>(x) <= 0xff;
    case GgufType::kU16: return x >= 0 && static_cast<uint64_t>(x) <= 0xffff;
    case GgufType::kU32: return x >= 0 && static_cast<uint64_t>(x) <= 0xffffffffu;
    case GgufType::kU64: return x >= 0;
    case GgufType::kI8: return static_cast<int64_t>(x) >= -128 && static_cast<int64_t>(x) <= 127;
    case GgufType::kI16:
      return static_cast<int64_t>(x) >= -32768 && static_cast<int64_t>(x) <= 32767;
    case GgufType::kI32:
      return static_cast<int64_t>(x) >= std::numeric_limits<int32_t>::min() &&
             static_cast<int64_t>(x) <= std::numeric_limits<int32_t>::max();
    case GgufType::kI64: return true;
    default: return false;
  }
}

bool is_unsigned(GgufType t) {
  return t == GgufType::kU8 || t == GgufType::kU16 || t == GgufType::kU32 || t == GgufType::kU64;
}
bool is_signed(GgufType t) {
  return t == GgufType::kI8 || t == GgufType::kI16 || t == GgufType::kI32 || t == GgufType::kI64;
}
bool is_float(GgufType t) { return t == GgufType::kF32 || t == GgufType::kF64; }

// True when `v` holds the alternative its type calls for, with integers in range.
bool value_consistent(const GgufValue& v) {
  if (v.type == GgufType::kArray) {
    const GgufType e = v.array_type;
    if (is_unsigned(e)) {
      const auto* a = std::get_if<std::vector<uint64_t>>(&v.v);
      if (a == nullptr) return false;
      for (uint64_t x : *a) {
        if (!int_fits(e, x)) return false;
      }
      return true;
    }
    if (is_signed(e)) {
      const auto* a = std::get_if<std::vector<int64_t>>(&v.v);
      if (a == nullptr) return false;
      for (int64_t x : *a) {
        if (!int_fits(e, x)) return false;
      }
      return true;
    }
    if (is_float(e)) return std::holds_alternative<std::vector<double>>(v.v);
    if (e == GgufType::kBool) return std::holds_alternative<std::vector<bool>>(v.v);
    if (e == GgufType::kString) return std::holds_alternative<std::vector<std::string>>(v.v);
    return false;
  }
  if (is_unsigned(v.type)) {
    const auto* x = std::get_if<uint64_t>(&v.v);
    return x != nullptr && int_fits(v.type, *x);
  }
  if (is_signed(v.type)) {
    const auto* x = std::get_if<int64_t>(&v.v);
    return x != nullptr && int_fits(v.type, *x);
  }
  if (is_float(v.type)) return std::holds_alternative<double>(v.v);
  if (v.type == GgufType::kBool) return std::holds_alternative<bool>(v.v);
  if (v.type == GgufType::kString) return std::holds_alternative<std::string>(v.v);
  return false;
}

class ByteSink {
 public:
  explicit ByteSink(std::vector<uint8_t>& out) : out_(out) {}
  void bytes(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out_.insert(out_.end(), b, b + n);
  }
  template <typename T>
  void pod(T x) {
    bytes(&x, sizeof x);
  }
  void string(const std::string& s) {
    pod<uint64_t>(s.size());
    bytes(s.data(), s.size());
  }
  void zeros(size_t n) { out_.insert(out_.end(), n, 0); }
  size_t size() const { return out_.size(); }

 private:
  std::vector<uint8_t>& out_;
};

void put_int(ByteSink& s, GgufType t, uint64_t bits) {
  switch (t) {
    case GgufType::kU8:
    case GgufType::kI8: s.pod(static_cast<uint8_t>(bits)); return;
    case GgufType::kU16:
    case GgufType::kI16: s.pod(static_cast<uint16_t>(bits)); return;
    case GgufType::kU32:
    case GgufType::kI32: s.pod(static_cast<uint32_t>(bits)); return;
    default: s.pod(bits); return;
  }
}

void put_float(ByteSink& s, GgufType t, double x) {
  if (t == GgufType::kF32) {
    s.pod(static_cast<float>(x));
  } else {
    s.pod(x);
  }
}

void put_value(ByteSink& s, const GgufValue& v) {
  s.pod(static_cast<uint32_t>(v.type));
  if (v.type != GgufType::kArray) {
    if (const auto* u = std::get_if<uint64_t>(&v.v)) put_int(s, v.type, *u);
    if (const auto* i = std::get_if<int64_t>(&v.v)) put_int(s, v.type, static_cast<uint64_t>(*i));
    if (const auto* d = std::get_if<double>(&v.v)) put_float(s, v.type, *d);
    if (const auto* b = std::get_if<bool>(&v.v)) s.pod(static_cast<uint8_t>(*b ? 1 : 0));
    if (const auto* str = std::get_if<std::string>(&v.v)) s.string(*str);
    return;
  }
  s.pod(static_cast<uint32_t>(v.array_type));
  std::visit(
      [&](const auto& a) {
        using A = std::decay_t<decltype(a)>;
        if constexpr (std::is_same_v<A, std::vector<uint64_t>>) {
          s.pod<uint64_t>(a.size());
          for (uint64_t x : a) put_int(s, v.array_type, x);
        } else if constexpr (std::is_same_v<A, std::vector<int64_t>>) {
          s.pod<uint64_t>(a.size());
          for (int64_t x : a) put_int(s, v.array_type, static_cast<uint64_t>(x));
        } else if constexpr (std::is_same_v<A, std::vector<double>>) {
          s.pod<uint64_t>(a.size());
          for (double x : a) put_float(s, v.array_type, x);
        } else if constexpr (std::is_same_v<A, std::vector<bool>>) {
          s.pod<uint64_t>(a.size());
          for (bool x : a) s.pod(static_cast<uint8_t>(x ? 1 : 0));
        } else if constexpr (std::is_same_v<A, std::vector<std::string>>) {
          s.pod<uint64_t>(a.size());
          for (const std::string& x : a) s.string(x);
        }
      },
      v.v);
}

uint64_t pad_to(uint64_t n, uint64_t alignment) { return (alignment - n % alignment) % alignment; }

Status errno_status(const std::string& what, const std::string& path, int err) {
  const std::string msg = path + ": " + what + ": " + std::strerror(err);
  if (err == EACCES || err == EPERM) return permission_denied(msg);
  if (err == ENOENT) return not_found(msg);
  return io_error(msg);
}

bool write_all(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

void GgufWriter::set(const std::string& key, GgufValue value) {
  STRATA_CHECK_MSG(!key.empty(), "GGUF keys must not be empty");
  STRATA_CHECK_MSG(value_consistent(value), "GGUF value for '" + key + "' does not match its type");
  if (key == "general.alignment") {
    const auto* a = std::get_if<uint64_t>(&value.v);
    STRATA_CHECK_MSG(
        value.type == GgufType::kU32 && a != nullptr && *a != 0 && (*a & (*a - 1)) == 0,
        "general.alignment must be a u32 power of two");
    alignment_ = static_cast<uint32_t>(*a);
  }
  for (auto& kv : kv_) {
    if (kv.first == key) {
      kv.second = std::move(value);
      return;
    }
  }
  kv_.emplace_back(key, std::move(value));
}

void GgufWriter::set_u32(const std::string& key, uint32_t v) {
  set(key, GgufValue{GgufType::kU32, GgufType::kU32, uint64_t{v}});
}
void GgufWriter::set_i32(const std::string& key, int32_t v) {
  set(key, GgufValue{GgufType::kI32, GgufType::kU32, int64_t{v}});
}
void GgufWriter::set_f32(const std::string& key, float v) {
  set(key, GgufValue{GgufType::kF32, GgufType::kU32, double{v}});
}
void GgufWriter::set_bool(const std::string& key, bool v) {
  set(key, GgufValue{GgufType::kBool, GgufType::kU32, v});
}
void GgufWriter::set_string(const std::string& key, std::string v) {
  set(key, GgufValue{GgufType::kString, GgufType::kU32, std::move(v)});
}
void GgufWriter::set_string_array(const std::string& key, std::vector<std::string> v) {
  set(key, GgufValue{GgufType::kArray, GgufType::kString, std::move(v)});
}
void GgufWriter::set_f32_array(const std::string& key, const std::vector<float>& v) {
  set(key, GgufValue{GgufType::kArray, GgufType::kF32, std::vector<double>(v.begin(), v.end())});
}
void GgufWriter::set_i32_array(const std::string& key, const std::vector<int32_t>& v) {
  set(key, GgufValue{GgufType::kArray, GgufType::kI32, std::vector<int64_t>(v.begin(), v.end())});
}

void GgufWriter::set_alignment(uint32_t alignment) {
  STRATA_CHECK_MSG(alignment != 0 && (alignment & (alignment - 1)) == 0,
                   "alignment must be a power of two");
  bool has_key = false;
  for (const auto& kv : kv_) has_key = has_key || kv.first == "general.alignment";
  if (alignment != 32 || has_key) {
    set_u32("general.alignment", alignment);
  } else {
    alignment_ = alignment;
  }
}

namespace {

int64_t checked_tensor_bytes(const std::string& name, DType type,
                             const std::vector<int64_t>& dims) {
  STRATA_CHECK_MSG(!dims.empty() && dims.size() <= 4, "tensor '" + name + "': 1 to 4 dims");
  for (int64_t d : dims) STRATA_CHECK_MSG(d > 0, "tensor '" + name + "': dims must be > 0");
  int64_t rows = 1;
  for (size_t i = 1; i < dims.size(); ++i) rows *= dims[i];
  return row_bytes(type, dims[0]) * rows;  // checks the block multiple
}

}  // namespace

void GgufWriter::add_tensor(const std::string& name, DType type, const std::vector<int64_t>& dims,
                            std::vector<uint8_t> data) {
  const int64_t n = checked_tensor_bytes(name, type, dims);
  STRATA_CHECK_MSG(static_cast<int64_t>(data.size()) == n,
                   "tensor '" + name + "': " + std::to_string(data.size()) + " bytes given, " +
                       std::to_string(n) + " expected");
  for (const Tensor& t : tensors_) STRATA_CHECK_MSG(t.name != name, "duplicate tensor " + name);
  tensors_.push_back(Tensor{name, type, dims, std::move(data), {}});
}

void GgufWriter::add_tensor_fn(const std::string& name, DType type,
                               const std::vector<int64_t>& dims,
                               std::function<void(uint8_t* dst)> fill) {
  checked_tensor_bytes(name, type, dims);
  STRATA_CHECK(fill != nullptr);
  for (const Tensor& t : tensors_) STRATA_CHECK_MSG(t.name != name, "duplicate tensor " + name);
  tensors_.push_back(Tensor{name, type, dims, {}, std::move(fill)});
}

// Header, metadata, tensor infos and the padding up to the data section.
std::vector<uint8_t> GgufWriter::serialize_head() const {
  std::vector<uint8_t> out;
  ByteSink s(out);
  s.bytes("GGUF", 4);
  s.pod<uint32_t>(3);
  s.pod<uint64_t>(tensors_.size());
  s.pod<uint64_t>(kv_.size());
  for (const auto& [key, value] : kv_) {
    s.string(key);
    put_value(s, value);
  }
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    s.string(t.name);
    s.pod<uint32_t>(static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) s.pod<uint64_t>(static_cast<uint64_t>(d));
    s.pod<uint32_t>(static_cast<uint32_t>(t.type));
    s.pod<uint64_t>(offset);
    const auto n = static_cast<uint64_t>(checked_tensor_bytes(t.name, t.type, t.dims));
    offset += n + pad_to(n, alignment_);
  }
  s.zeros(pad_to(s.size(), alignment_));
  return out;
}

int64_t GgufWriter::file_bytes() const {
  auto total = static_cast<int64_t>(serialize_head().size());
  for (const Tensor& t : tensors_) {
    const auto n = static_cast<uint64_t>(checked_tensor_bytes(t.name, t.type, t.dims));
    total += static_cast<int64_t>(n + pad_to(n, alignment_));
  }
  return total;
}

std::vector<uint8_t> GgufWriter::serialize() const {
  std::vector<uint8_t> out = serialize_head();
  for (const Tensor& t : tensors_) {
    const auto n = static_cast<size_t>(checked_tensor_bytes(t.name, t.type, t.dims));
    const size_t at = out.size();
    out.resize(at + n + pad_to(n, alignment_), 0);
    if (t.fill) {
      t.fill(out.data() + at);
    } else {
      std::memcpy(out.data() + at, t.data.data(), n);
    }
  }
  return out;
}

Status GgufWriter::write(
    const std::string& path,
    const std::function<void(int64_t done_bytes, int64_t total_bytes)>& progress) const {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno_status("cannot create", tmp, errno);
  const int64_t total = file_bytes();
  int64_t done = 0;
  auto fail = [&](const std::string& what, int err) {
    ::close(fd);
    std::remove(tmp.c_str());
    return errno_status(what, tmp, err);
  };

  const std::vector<uint8_t> head = serialize_head();
  if (!write_all(fd, head.data(), head.size())) return fail("write failed", errno);
  done += static_cast<int64_t>(head.size());

  // Lazy tensors are produced into one of two buffers while the other is being written, so
  // that generating weights and the kernel's copy into the page cache overlap.
  size_t max_fill = 0;
  for (const Tensor& t : tensors_) {
    if (t.fill) {
      max_fill =
          std::max(max_fill, static_cast<size_t>(checked_tensor_bytes(t.name, t.type, t.dims)));
    }
  }
  std::unique_ptr<uint8_t[]> buffers[2];
  static const uint8_t kZeros[64] = {};
  std::thread writer;
  bool write_ok = true;
  int write_err = 0;
  auto join_writer = [&] {
    if (writer.joinable()) writer.join();
  };
  int slot = 0;
  for (const Tensor& t : tensors_) {
    const auto n = static_cast<size_t>(checked_tensor_bytes(t.name, t.type, t.dims));
    const uint8_t* src = t.data.data();
    if (t.fill) {
      if (!buffers[slot]) buffers[slot].reset(new uint8_t[max_fill]);
      t.fill(buffers[slot].get());
      src = buffers[slot].get();
      slot ^= 1;
    }
    join_writer();
    if (!write_ok) return fail("write failed", write_err);
    if (progress) progress(done, total);
    const size_t pad = pad_to(n, alignment_);
    writer = std::thread([&write_ok, &write_err, fd, src, n, pad] {
      bool ok = write_all(fd, src, n);
      for (size_t left = pad; ok && left > 0;) {
        const size_t k = std::min(left, sizeof kZeros);
        ok = write_all(fd, kZeros, k);
        left -= k;
      }
      if (!ok) {
        write_ok = false;
        write_err = errno;
      }
    });
    done += static_cast<int64_t>(n + pad);
  }
  join_writer();
  if (!write_ok) return fail("write failed", write_err);
  if (::close(fd) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    return errno_status("close failed", tmp, err);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    return errno_status("cannot rename to " + path, tmp, err);
  }
  if (progress) progress(total, total);
  return {};
}

}  // namespace strata::model
