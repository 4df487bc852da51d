// The GGUF reader: a bounds-checked cursor over the file's bytes. Nothing read from the file is
// trusted: every count is checked against the bytes left before anything is allocated from it,
// every length before it is read, and every tensor's extent before a pointer into it is made.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>
#include <type_traits>

#include "gguf_internal.h"
#include "strata/model/gguf.h"

namespace strata::model {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint64_t kHeaderBytes = 4 + 4 + 8 + 8;
constexpr uint64_t kMaxDim = uint64_t{1} << 40;
constexpr int64_t kMaxElements = int64_t{1} << 50;
// Metadata arrays are held in memory at up to 8 bytes per element (a u8 array too), so their
// total is capped: real files hold a few hundred thousand (tokenizer tokens and merges).
constexpr uint64_t kMaxArrayElements = uint64_t{1} << 27;
// The fewest bytes one metadata entry / tensor info can take: they bound the counts.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;                  // empty key, type, one-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // empty name, 1 dim, type, offset

std::string printable_magic(const uint8_t* p) {
  std::string out;
  for (int i = 0; i < 4; ++i) {
    const char c = static_cast<char>(p[i]);
    if (p[i] >= 0x20 && p[i] < 0x7f) {
      out += c;
    } else {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[p[i] >> 4];
      out += kHex[p[i] & 15];
    }
  }
  return out;
}

}  // namespace

// Reads one GGUF image into a GgufFile; a friend of GgufFile so it can fill the private fields.
class GgufParser {
 public:
  GgufParser(GgufFile& file, const uint8_t* bytes, uint64_t size)
      : f_(file), p_(bytes), size_(size) {}

  Status run() {
    if (size_ < kHeaderBytes) {
      return fail("file is " + std::to_string(size_) + " bytes, too small for a GGUF header (" +
                  std::to_string(kHeaderBytes) + " bytes)");
    }
    uint32_t magic = 0;
    uint32_t version = 0;
    uint64_t n_tensors = 0;
    uint64_t n_kv = 0;
    STRATA_RETURN_IF_ERROR(read_pod(&magic, "magic"));
    if (magic != kMagic) {
      return fail("not a GGUF file (magic '" + printable_magic(p_) + "', expected 'GGUF')");
    }
    STRATA_RETURN_IF_ERROR(read_pod(&version, "version"));
    if (version != 2 && version != 3) {
      const uint32_t swapped = __builtin_bswap32(version);
      std::string why = "GGUF version " + std::to_string(version) +
                        " is not supported (strata reads versions 2 and 3)";
      if (swapped == 2 || swapped == 3) why += "; this looks like a big-endian GGUF file";
      return {StatusCode::kUnsupported, f_.path_ + ": " + why};
    }
    f_.version_ = version;
    STRATA_RETURN_IF_ERROR(read_pod(&n_tensors, "tensor count"));
    STRATA_RETURN_IF_ERROR(read_pod(&n_kv, "metadata count"));
    if (n_kv > left() / kMinKvBytes) {
      return fail("metadata count " + std::to_string(n_kv) + " cannot fit in the " +
                  std::to_string(left()) + " bytes after the header (an entry takes at least " +
                  std::to_string(kMinKvBytes) + " bytes)");
    }
    if (n_tensors > left() / kMinTensorInfoBytes) {
      return fail("tensor count " + std::to_string(n_tensors) + " cannot fit in the " +
                  std::to_string(left()) +
                  " bytes after the header (a tensor info takes at least " +
                  std::to_string(kMinTensorInfoBytes) + " bytes)");
    }
    for (uint64_t i = 0; i < n_kv; ++i) STRATA_RETURN_IF_ERROR(read_kv(i));
    STRATA_RETURN_IF_ERROR(read_alignment());
    f_.tensors_.reserve(n_tensors);
    std::set<std::string> names;
    for (uint64_t i = 0; i < n_tensors; ++i) {
      GgufTensorInfo t;
      STRATA_RETURN_IF_ERROR(read_tensor_info(i, &t));
      if (!names.insert(t.name).second) {
        return fail("tensor name '" + t.name + "' appears twice");
      }
      f_.tensors_.push_back(std::move(t));
    }
    // The data section starts at the next multiple of the alignment.
    const uint64_t a = f_.alignment_;
    const uint64_t data_offset = pos_ + (a - pos_ % a) % a;
    f_.data_offset_ = data_offset;
    return check_tensor_data();
  }

 private:
  Status fail(const std::string& what) const { return corrupt(f_.path_ + ": " + what); }
  uint64_t left() const { return size_ - pos_; }
  std::string past_end(uint64_t need, const std::string& what) const {
    return what + " at byte " + std::to_string(pos_) + " needs " + std::to_string(need) +
           " bytes but only " + std::to_string(left()) + " are left in the file (" +
           std::to_string(size_) + " bytes)";
  }

  // Labels say what is being read, for errors only: a string, or a callable returning one so
  // that hot loops (every token of a vocabulary) build no string unless something is wrong.
  template <typename Label>
  static std::string text(const Label& what) {
    if constexpr (std::is_invocable_v<const Label&>) {
      return what();
    } else {
      return std::string(what);
    }
  }

  template <typename T, typename Label>
  Status read_pod(T* out, const Label& what) {
    if (left() < sizeof(T)) return fail(past_end(sizeof(T), text(what)));
    std::memcpy(out, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return {};
  }

  template <typename Label>
  Status read_string(std::string* out, const Label& what) {
    uint64_t len = 0;
    STRATA_RETURN_IF_ERROR(read_pod(&len, [&] { return text(what) + " length"; }));
    if (len > left()) {
      return fail(text(what) + ": string length " + std::to_string(len) + " at byte " +
                  std::to_string(pos_ - 8) + " runs past the end of the file (" +
                  std::to_string(size_) + " bytes)");
    }
    out->assign(reinterpret_cast<const char*>(p_ + pos_), len);
    pos_ += len;
    return {};
  }

  Status read_type(GgufType* out, const std::string& what) {
    uint32_t id = 0;
    STRATA_RETURN_IF_ERROR(read_pod(&id, what));
    if (id > static_cast<uint32_t>(GgufType::kF64)) {
      return fail(what + " " + std::to_string(id) + " is not a GGUF value type (0..12)");
    }
    *out = static_cast<GgufType>(id);
    return {};
  }

  // One scalar of `type` (not kArray) appended to / stored in `out`.
  Status read_scalar(GgufType type, GgufValue* out, const std::string& what) {
    switch (type) {
      case GgufType::kU8: return read_int<uint8_t, uint64_t>(out, what);
      case GgufType::kI8: return read_int<int8_t, int64_t>(out, what);
      case GgufType::kU16: return read_int<uint16_t, uint64_t>(out, what);
      case GgufType::kI16: return read_int<int16_t, int64_t>(out, what);
      case GgufType::kU32: return read_int<uint32_t, uint64_t>(out, what);
      case GgufType::kI32: return read_int<int32_t, int64_t>(out, what);
      case GgufType::kU64: return read_int<uint64_t, uint64_t>(out, what);
      case GgufType::kI64: return read_int<int64_t, int64_t>(out, what);
      case GgufType::kF32: {
        float x = 0;
        STRATA_RETURN_IF_ERROR(read_pod(&x, what));
        out->v = static_cast<double>(x);
        return {};
      }
      case GgufType::kF64: {
        double x = 0;
        STRATA_RETURN_IF_ERROR(read_pod(&x, what));
        out->v = x;
        return {};
      }
      case GgufType::kBool: {
        uint8_t b = 0;
        STRATA_RETURN_IF_ERROR(read_pod(&b, what));
        if (b > 1) {
          return fail(what + ": bool byte " + std::to_string(b) + " at byte " +
                      std::to_string(pos_ - 1) + " is neither 0 nor 1");
        }
        out->v = b != 0;
        return {};
      }
      case GgufType::kString: {
        std::string s;
        STRATA_RETURN_IF_ERROR(read_string(&s, what));
        out->v = std::move(s);
        return {};
      }
      case GgufType::kArray: break;
    }
    STRATA_CHECK_MSG(false, "read_scalar called for an array");
    return {};
  }

  template <typename Wire, typename Held>
  Status read_int(GgufValue* out, const std::string& what) {
    Wire x{};
    STRATA_RETURN_IF_ERROR(read_pod(&x, what));
    out->v = static_cast<Held>(x);
    return {};
  }

  template <typename Wire, typename Held>
  Status read_int_array(uint64_t n, GgufValue* out, const std::string& what) {
    std::vector<Held> v(n);
    for (uint64_t i = 0; i < n; ++i) {
      Wire x{};
      STRATA_RETURN_IF_ERROR(read_pod(&x, what));
      v[i] = static_cast<Held>(x);
    }
    out->v = std::move(v);
    return {};
  }

  Status read_array(GgufValue* out, const std::string& what) {
    GgufType elem = GgufType::kU8;
    STRATA_RETURN_IF_ERROR(read_type(&elem, what + ": array element type"));
    if (elem == GgufType::kArray) {
      return {StatusCode::kUnsupported,
              f_.path_ + ": " + what + ": nested arrays are not supported"};
    }
    uint64_t n = 0;
    STRATA_RETURN_IF_ERROR(read_pod(&n, [&] { return what + ": array length"; }));
    const uint64_t min_elem_bytes = gguf_min_value_bytes(elem);
    if (n > left() / min_elem_bytes) {
      return fail(what + ": array of " + std::to_string(n) + " " + gguf_type_name(elem) +
                  " at byte " + std::to_string(pos_ - 8) + " needs at least " +
                  (n > std::numeric_limits<uint64_t>::max() / min_elem_bytes
                       ? std::string("2^64")
                       : std::to_string(n * min_elem_bytes)) +
                  " bytes, past the end of the file (" + std::to_string(size_) + " bytes)");
    }
    if (n > kMaxArrayElements - array_elements_) {
      return {StatusCode::kUnsupported,
              f_.path_ + ": " + what + ": array of " + std::to_string(n) +
                  " elements takes the metadata past the 2^27 array elements strata reads"};
    }
    array_elements_ += n;
    out->array_type = elem;
    const std::string item = what + ": array element";
    switch (elem) {
      case GgufType::kU8: return read_int_array<uint8_t, uint64_t>(n, out, item);
      case GgufType::kI8: return read_int_array<int8_t, int64_t>(n, out, item);
      case GgufType::kU16: return read_int_array<uint16_t, uint64_t>(n, out, item);
      case GgufType::kI16: return read_int_array<int16_t, int64_t>(n, out, item);
      case GgufType::kU32: return read_int_array<uint32_t, uint64_t>(n, out, item);
      case GgufType::kI32: return read_int_array<int32_t, int64_t>(n, out, item);
      case GgufType::kU64: return read_int_array<uint64_t, uint64_t>(n, out, item);
      case GgufType::kI64: return read_int_array<int64_t, int64_t>(n, out, item);
      case GgufType::kF32: {
        std::vector<double> v(n);
        for (uint64_t i = 0; i < n; ++i) {
          float x = 0;
          STRATA_RETURN_IF_ERROR(read_pod(&x, item));
          v[i] = x;
        }
        out->v = std::move(v);
        return {};
      }
      case GgufType::kF64: return read_int_array<double, double>(n, out, item);
      case GgufType::kBool: {
        std::vector<bool> v(n);
        GgufValue one;
        for (uint64_t i = 0; i < n; ++i) {
          STRATA_RETURN_IF_ERROR(read_scalar(GgufType::kBool, &one, item));
          v[i] = std::get<bool>(one.v);
        }
        out->v = std::move(v);
        return {};
      }
      case GgufType::kString: {
        std::vector<std::string> v(n);
        for (uint64_t i = 0; i < n; ++i) {
          STRATA_RETURN_IF_ERROR(
              read_string(&v[i], [&] { return what + ": element " + std::to_string(i); }));
        }
        out->v = std::move(v);
        return {};
      }
      case GgufType::kArray: break;
    }
    STRATA_CHECK_MSG(false, "unreachable array type");
    return {};
  }

  Status read_kv(uint64_t index) {
    std::string key;
    STRATA_RETURN_IF_ERROR(
        read_string(&key, [&] { return "metadata entry " + std::to_string(index) + " key"; }));
    if (key.empty()) return fail("metadata entry " + std::to_string(index) + " has an empty key");
    const std::string what = "key '" + key + "'";
    GgufValue value;
    STRATA_RETURN_IF_ERROR(read_type(&value.type, what + ": value type"));
    if (value.type == GgufType::kArray) {
      STRATA_RETURN_IF_ERROR(read_array(&value, what));
    } else {
      STRATA_RETURN_IF_ERROR(read_scalar(value.type, &value, what));
    }
    if (!f_.kv_.emplace(key, std::move(value)).second) return fail(what + " appears twice");
    return {};
  }

  Status read_alignment() {
    auto it = f_.kv_.find("general.alignment");
    if (it == f_.kv_.end()) return {};
    const GgufValue& v = it->second;
    uint64_t a = 0;
    if (const auto* u = std::get_if<uint64_t>(&v.v); u != nullptr && v.type != GgufType::kArray) {
      a = *u;
    } else if (const auto* s = std::get_if<int64_t>(&v.v); s != nullptr && *s > 0) {
      a = static_cast<uint64_t>(*s);
    } else {
      return fail("general.alignment is a " + std::string(gguf_type_name(v.type)) +
                  ", expected a positive integer");
    }
    if (a == 0 || (a & (a - 1)) != 0 || a > (uint64_t{1} << 30)) {
      return fail("general.alignment is " + std::to_string(a) +
                  ", expected a power of two between 1 and 2^30");
    }
    f_.alignment_ = a;
    return {};
  }

  Status read_tensor_info(uint64_t index, GgufTensorInfo* t) {
    STRATA_RETURN_IF_ERROR(
        read_string(&t->name, [&] { return "tensor info " + std::to_string(index) + " name"; }));
    if (t->name.empty()) return fail("tensor info " + std::to_string(index) + " has an empty name");
    const std::string what = "tensor '" + t->name + "'";
    uint32_t n_dims = 0;
    STRATA_RETURN_IF_ERROR(read_pod(&n_dims, [&] { return what + ": dimension count"; }));
    if (n_dims < 1 || n_dims > 4) {
      return fail(what + " has " + std::to_string(n_dims) + " dimensions (expected 1 to 4)");
    }
    int64_t n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim = 0;
      STRATA_RETURN_IF_ERROR(
          read_pod(&dim, [&] { return what + ": dimension " + std::to_string(d); }));
      if (dim == 0 || dim > kMaxDim) {
        return fail(what + ": dimension " + std::to_string(d) + " is " + std::to_string(dim) +
                    " (expected 1 to 2^40)");
      }
      t->dims.push_back(static_cast<int64_t>(dim));
      if (__builtin_mul_overflow(n_elements, static_cast<int64_t>(dim), &n_elements) ||
          n_elements > kMaxElements) {
        return fail(what + ": " + gguf_dims_string(t->dims) +
                    " has more elements than strata accepts (2^50)");
      }
    }
    uint32_t type_id = 0;
    STRATA_RETURN_IF_ERROR(read_pod(&type_id, [&] { return what + ": type"; }));
    STRATA_RETURN_IF_ERROR(read_pod(&t->offset, [&] { return what + ": offset"; }));
    if (!dtype_supported(type_id)) {
      return {StatusCode::kUnsupported,
              f_.path_ + ": " + what + " has type " + std::to_string(type_id) + " (" +
                  ggml_type_label(type_id) +
                  "), which strata does not support (f32, f16, bf16, q8_0, q4_0)"};
    }
    t->type = static_cast<DType>(type_id);
    const int64_t block = dtype_block_elems(t->type);
    if (t->dims[0] % block != 0) {
      return fail(what + ": row length " + std::to_string(t->dims[0]) + " is not a multiple of " +
                  std::string(*dtype_name(type_id)) + "'s block of " + std::to_string(block));
    }
    t->n_elements = n_elements;
    // n_elements <= 2^50 and block bytes / block elements <= 4: no overflow.
    t->n_bytes = n_elements / block * dtype_block_bytes(t->type);
    return {};
  }

  Status check_tensor_data() {
    const uint64_t base = f_.data_offset_;
    std::vector<const GgufTensorInfo*> by_offset;
    by_offset.reserve(f_.tensors_.size());
    for (GgufTensorInfo& t : f_.tensors_) {
      const std::string what = "tensor '" + t.name + "'";
      if (t.offset % f_.alignment_ != 0) {
        return fail(what + ": offset " + std::to_string(t.offset) +
                    " is not a multiple of the alignment " + std::to_string(f_.alignment_));
      }
      const auto n = static_cast<uint64_t>(t.n_bytes);
      // begin/end as absolute file offsets; a file is at most 2^63 bytes, so only the
      // offset read from the file can overflow.
      if (t.offset > size_ || base > size_ - t.offset || n > size_ - base - t.offset) {
        const std::string begin = t.offset > std::numeric_limits<uint64_t>::max() - base
                                      ? std::to_string(base) + "+" + std::to_string(t.offset)
                                      : std::to_string(base + t.offset);
        const std::string end = t.offset > std::numeric_limits<uint64_t>::max() - base - n
                                    ? "..."
                                    : std::to_string(base + t.offset + n);
        return fail(what + " data [" + begin + ", " + end + ") runs past the end of the file (" +
                    std::to_string(size_) + " bytes)");
      }
      t.data = p_ + base + t.offset;
      by_offset.push_back(&t);
    }
    std::sort(
        by_offset.begin(), by_offset.end(),
        [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
      const GgufTensorInfo& prev = *by_offset[i - 1];
      const GgufTensorInfo& cur = *by_offset[i];
      const uint64_t prev_end = prev.offset + static_cast<uint64_t>(prev.n_bytes);
      if (cur.offset < prev_end) {
        return fail("tensor '" + cur.name + "' data [" + std::to_string(base + cur.offset) + ", " +
                    std::to_string(base + cur.offset + static_cast<uint64_t>(cur.n_bytes)) +
                    ") overlaps tensor '" + prev.name + "' [" + std::to_string(base + prev.offset) +
                    ", " + std::to_string(base + prev_end) + ")");
      }
    }
    return {};
  }

  GgufFile& f_;
  const uint8_t* p_;
  uint64_t size_;
  uint64_t pos_ = 0;
  uint64_t array_elements_ = 0;  // over all metadata arrays so far
};

GgufFile::~GgufFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, size_);
}

Result<std::unique_ptr<GgufFile>> GgufFile::parse(const uint8_t* bytes, size_t size,
                                                  const std::string& name) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = name;
  f->base_ = bytes;
  f->size_ = size;
  GgufParser parser(*f, bytes, size);
  STRATA_RETURN_IF_ERROR(parser.run());
  return f;
}

Result<std::unique_ptr<GgufFile>> GgufFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string msg = path + ": cannot open: " + std::strerror(err);
    if (err == ENOENT) return not_found(msg);
    if (err == EACCES || err == EPERM) return permission_denied(msg);
    return io_error(msg);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return io_error(path + ": cannot stat: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return io_error(path + ": not a regular file");
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size < kHeaderBytes) {
    ::close(fd);
    return corrupt(path + ": file is " + std::to_string(size) +
                   " bytes, too small for a GGUF header (" + std::to_string(kHeaderBytes) +
                   " bytes)");
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_err = errno;
  ::close(fd);
  if (map == MAP_FAILED) return io_error(path + ": cannot mmap: " + std::strerror(map_err));
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  f->mapping_ = map;
  f->base_ = static_cast<const uint8_t*>(map);
  f->size_ = size;
  GgufParser parser(*f, f->base_, size);
  STRATA_RETURN_IF_ERROR(parser.run());
  return f;
}

}  // namespace strata::model
