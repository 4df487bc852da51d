// The two encodings of a Profile, both generated from the `fields()` lists in profile.h: one
// generic walk per encoding and direction, so a field added to a struct appears in JSON and on
// the wire at once and cannot drift between them.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include <flatbuffers/flexbuffers.h>
#include <nlohmann/json.hpp>

#include "strata/base/io.h"
#include "strata/profiles/profile.h"

namespace strata::profiles {
namespace {

using Json = nlohmann::ordered_json;

template <class T>
struct IsOptional : std::false_type {};
template <class T>
struct IsOptional<std::optional<T>> : std::true_type {};
template <class T>
struct IsVector : std::false_type {};
template <class T>
struct IsVector<std::vector<T>> : std::true_type {};
template <class T>
struct IsStringMap : std::false_type {};
template <class T>
struct IsStringMap<std::map<std::string, T>> : std::true_type {};

const char* enum_name(Provenance e) { return provenance_name(e); }
const char* enum_name(Reason e) { return reason_name(e); }
const char* enum_name(Boundary e) { return boundary_name(e); }
std::optional<Provenance> parse_enum(std::string_view s, Provenance*) {
  return parse_provenance(s);
}
std::optional<Reason> parse_enum(std::string_view s, Reason*) { return parse_reason(s); }
std::optional<Boundary> parse_enum(std::string_view s, Boundary*) { return parse_boundary(s); }

template <class E>
std::string enum_choices() {
  std::string out;
  for (int i = 0;; ++i) {
    const char* name = enum_name(static_cast<E>(i));
    if (name[0] == '?') break;
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

std::string join_path(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

// ---- JSON ----

template <class T>
Json to_json(const T& v) {
  if constexpr (std::is_same_v<T, bool> || std::is_same_v<T, std::string> ||
                std::is_integral_v<T>) {
    return v;
  } else if constexpr (std::is_floating_point_v<T>) {
    // JSON has no NaN or infinity; a non-finite double is a bug of the probe that made it.
    STRATA_CHECK_MSG(std::isfinite(v), "non-finite number in a profile");
    return v;
  } else if constexpr (std::is_enum_v<T>) {
    return enum_name(v);
  } else if constexpr (IsOptional<T>::value) {
    return v ? to_json(*v) : Json(nullptr);
  } else if constexpr (IsVector<T>::value) {
    Json a = Json::array();
    for (const auto& e : v) a.push_back(to_json(e));
    return a;
  } else if constexpr (IsStringMap<T>::value) {
    Json o = Json::object();
    for (const auto& [k, e] : v) o[k] = to_json(e);
    return o;
  } else {
    Json o = Json::object();
    T::fields(v, [&](const char* key, const auto& field) { o[key] = to_json(field); });
    return o;
  }
}

Status type_error(const std::string& path, const char* want, const Json& got) {
  return corrupt((path.empty() ? std::string("profile") : path) + ": expected " + want +
                 ", found " + got.type_name());
}

template <class T>
Status from_json(const Json& j, T& out, const std::string& path) {
  if constexpr (std::is_same_v<T, bool>) {
    if (!j.is_boolean()) return type_error(path, "a boolean", j);
    out = j.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!j.is_number_integer()) return type_error(path, "an integer", j);
    out = j.get<T>();
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!j.is_number()) return type_error(path, "a number", j);
    out = j.get<T>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!j.is_string()) return type_error(path, "a string", j);
    out = j.get<std::string>();
  } else if constexpr (std::is_enum_v<T>) {
    if (!j.is_string()) return type_error(path, "a string", j);
    const auto e = parse_enum(j.get<std::string>(), static_cast<T*>(nullptr));
    if (!e) {
      return corrupt(path + ": '" + j.get<std::string>() + "' is not one of " + enum_choices<T>());
    }
    out = *e;
  } else if constexpr (IsOptional<T>::value) {
    if (j.is_null()) {
      out.reset();
    } else {
      typename T::value_type inner{};
      STRATA_RETURN_IF_ERROR(from_json(j, inner, path));
      out = std::move(inner);
    }
  } else if constexpr (IsVector<T>::value) {
    if (!j.is_array()) return type_error(path, "an array", j);
    out.clear();
    for (size_t i = 0; i < j.size(); ++i) {
      typename T::value_type e{};
      STRATA_RETURN_IF_ERROR(from_json(j[i], e, path + "[" + std::to_string(i) + "]"));
      out.push_back(std::move(e));
    }
  } else if constexpr (IsStringMap<T>::value) {
    if (!j.is_object()) return type_error(path, "an object", j);
    out.clear();
    for (const auto& [k, e] : j.items()) {
      typename T::mapped_type value{};
      STRATA_RETURN_IF_ERROR(from_json(e, value, join_path(path, k)));
      out.emplace(k, std::move(value));
    }
  } else {
    if (!j.is_object()) return type_error(path, "an object", j);
    Status status;
    T::fields(out, [&](const char* key, auto& field) {
      if (!status.ok()) return;
      const auto it = j.find(key);
      if (it == j.end()) return;  // missing: keep the default
      status = from_json(*it, field, join_path(path, key));
    });
    return status;
  }
  return {};
}

// ---- FlexBuffers ----

template <class T>
void to_flex(flexbuffers::Builder& b, const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    b.Bool(v);
  } else if constexpr (std::is_integral_v<T>) {
    b.Int(static_cast<int64_t>(v));
  } else if constexpr (std::is_floating_point_v<T>) {
    STRATA_CHECK_MSG(std::isfinite(v), "non-finite number in a profile");
    b.Double(v);
  } else if constexpr (std::is_same_v<T, std::string>) {
    b.String(v);
  } else if constexpr (std::is_enum_v<T>) {
    b.String(enum_name(v));
  } else if constexpr (IsOptional<T>::value) {
    if (v) {
      to_flex(b, *v);
    } else {
      b.Null();
    }
  } else if constexpr (IsVector<T>::value) {
    const size_t start = b.StartVector();
    for (const auto& e : v) to_flex(b, e);
    b.EndVector(start, false, false);
  } else if constexpr (IsStringMap<T>::value) {
    const size_t start = b.StartMap();
    for (const auto& [k, e] : v) {
      b.Key(k);
      to_flex(b, e);
    }
    b.EndMap(start);
  } else {
    const size_t start = b.StartMap();
    T::fields(v, [&](const char* key, const auto& field) {
      b.Key(key);
      to_flex(b, field);
    });
    b.EndMap(start);
  }
}

Status flex_type_error(const std::string& path, const char* want) {
  return corrupt((path.empty() ? std::string("profile") : path) + ": expected " + want +
                 " in the wire bytes");
}

template <class T>
Status from_flex(const flexbuffers::Reference& r, T& out, const std::string& path) {
  if constexpr (std::is_same_v<T, bool>) {
    if (!r.IsBool()) return flex_type_error(path, "a boolean");
    out = r.AsBool();
  } else if constexpr (std::is_integral_v<T>) {
    if (!r.IsInt() && !r.IsUInt()) return flex_type_error(path, "an integer");
    out = static_cast<T>(r.AsInt64());
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!r.IsNumeric()) return flex_type_error(path, "a number");
    out = r.AsDouble();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!r.IsString()) return flex_type_error(path, "a string");
    out = r.AsString().str();
  } else if constexpr (std::is_enum_v<T>) {
    if (!r.IsString()) return flex_type_error(path, "a string");
    const std::string s = r.AsString().str();
    const auto e = parse_enum(s, static_cast<T*>(nullptr));
    if (!e) return corrupt(path + ": '" + s + "' is not one of " + enum_choices<T>());
    out = *e;
  } else if constexpr (IsOptional<T>::value) {
    if (r.IsNull()) {
      out.reset();
    } else {
      typename T::value_type inner{};
      STRATA_RETURN_IF_ERROR(from_flex(r, inner, path));
      out = std::move(inner);
    }
  } else if constexpr (IsVector<T>::value) {
    if (!r.IsVector() || r.IsMap()) return flex_type_error(path, "a vector");
    const auto vec = r.AsVector();
    out.clear();
    for (size_t i = 0; i < vec.size(); ++i) {
      typename T::value_type e{};
      STRATA_RETURN_IF_ERROR(from_flex(vec[i], e, path + "[" + std::to_string(i) + "]"));
      out.push_back(std::move(e));
    }
  } else if constexpr (IsStringMap<T>::value) {
    if (!r.IsMap()) return flex_type_error(path, "a map");
    const auto map = r.AsMap();
    const auto keys = map.Keys();
    const auto values = map.Values();
    out.clear();
    for (size_t i = 0; i < keys.size(); ++i) {
      const std::string k = keys[i].AsKey();
      typename T::mapped_type value{};
      STRATA_RETURN_IF_ERROR(from_flex(values[i], value, join_path(path, k)));
      out.emplace(k, std::move(value));
    }
  } else {
    if (!r.IsMap()) return flex_type_error(path, "a map");
    const auto map = r.AsMap();
    Status status;
    T::fields(out, [&](const char* key, auto& field) {
      if (!status.ok()) return;
      const flexbuffers::Reference e = map[key];
      if (e.IsNull() && !IsOptional<std::remove_reference_t<decltype(field)>>::value) return;
      status = from_flex(e, field, join_path(path, key));
    });
    return status;
  }
  return {};
}

Status check_schema(const Profile& p) {
  if (p.schema != kProfileSchema) {
    return unsupported("profile schema '" + p.schema + "' is not " + kProfileSchema);
  }
  return {};
}

}  // namespace

const char* provenance_name(Provenance p) {
  switch (p) {
    case Provenance::kMeasured: return "measured";
    case Provenance::kDerived: return "derived";
    case Provenance::kEstimated: return "estimated";
    case Provenance::kSpec: return "spec";
    case Provenance::kUnavailable: return "unavailable";
  }
  return "?";
}

const char* reason_name(Reason r) {
  switch (r) {
    case Reason::kNotPresent: return "not_present";
    case Reason::kPermissionDenied: return "permission_denied";
    case Reason::kVirtualized: return "virtualized";
    case Reason::kUnsupported: return "unsupported";
  }
  return "?";
}

const char* boundary_name(Boundary b) {
  switch (b) {
    case Boundary::kRail: return "rail";
    case Boundary::kPackage: return "package";
    case Boundary::kModule: return "module";
    case Boundary::kSystem: return "system";
    case Boundary::kWall: return "wall";
    case Boundary::kNone: return "none";
  }
  return "?";
}

namespace {
template <class E>
std::optional<E> parse_by_name(std::string_view s) {
  for (int i = 0;; ++i) {
    const char* name = enum_name(static_cast<E>(i));
    if (name[0] == '?') return std::nullopt;
    if (s == name) return static_cast<E>(i);
  }
}
}  // namespace

std::optional<Provenance> parse_provenance(std::string_view s) {
  return parse_by_name<Provenance>(s);
}
std::optional<Reason> parse_reason(std::string_view s) { return parse_by_name<Reason>(s); }
std::optional<Boundary> parse_boundary(std::string_view s) { return parse_by_name<Boundary>(s); }

std::string profile_to_json(const Profile& profile, int indent) {
  return to_json(profile).dump(indent) + (indent >= 0 ? "\n" : "");
}

Result<Profile> profile_from_json(std::string_view json_text) {
  Json j = Json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return corrupt("profile: not valid JSON");
  Profile p;
  p.schema.clear();
  STRATA_RETURN_IF_ERROR(from_json(j, p, ""));
  STRATA_RETURN_IF_ERROR(check_schema(p));
  return p;
}

Result<Profile> load_profile(const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(const std::string text, read_file(path));
  Result<Profile> p = profile_from_json(text);
  if (!p.ok()) return p.status().with_context(path);
  return p;
}

std::vector<uint8_t> profile_to_wire(const Profile& profile) {
  flexbuffers::Builder b(4096, flexbuffers::BUILDER_FLAG_SHARE_KEYS_AND_STRINGS);
  to_flex(b, profile);
  b.Finish();
  return b.GetBuffer();
}

Result<Profile> profile_from_wire(const uint8_t* bytes, size_t size) {
  if (bytes == nullptr || size == 0) return corrupt("profile wire bytes: empty");
  if (!flexbuffers::VerifyBuffer(bytes, size)) {
    return corrupt("profile wire bytes: " + std::to_string(size) +
                   " bytes fail the FlexBuffers verifier");
  }
  Profile p;
  p.schema.clear();
  STRATA_RETURN_IF_ERROR(from_flex(flexbuffers::GetRoot(bytes, size), p, ""));
  STRATA_RETURN_IF_ERROR(check_schema(p));
  return p;
}

}  // namespace strata::profiles
