#include "strata/partitioner/links.h"

#include <cmath>
#include <cstdlib>

#include "json_util.h"

namespace strata::partitioner {
namespace {

using internal::Json;

std::string known_names(const LinkTable& table) {
  std::string out;
  for (const auto& n : table.names()) out += (out.empty() ? "" : ", ") + n;
  return out;
}

Result<Link> link_from_object(const Json& j, const std::string& where) {
  if (!j.is_object()) return invalid_argument(where + " must be an object");
  Link link;
  STRATA_ASSIGN_OR_RETURN(link.rtt_ms, internal::required_number(j, "rtt_ms", where));
  STRATA_ASSIGN_OR_RETURN(link.mbit_per_s, internal::required_number(j, "mbit_per_s", where));
  if (link.mbit_per_s <= 0) return invalid_argument(where + ": mbit_per_s must be > 0");
  link.is_default = false;
  return link;
}

}  // namespace

Result<Link> parse_link_value(std::string_view text, const std::string& what) {
  const size_t comma = text.find(',');
  const std::string usage = what + ": '" + std::string(text) +
                            "' must be RTT_MS,MBIT_PER_S with RTT >= 0 and bandwidth > 0 "
                            "(e.g. 2,100)";
  if (comma == std::string_view::npos) return invalid_argument(usage);
  const std::string rtt_text(text.substr(0, comma));
  const std::string bw_text(text.substr(comma + 1));
  char* end = nullptr;
  Link link;
  link.rtt_ms = std::strtod(rtt_text.c_str(), &end);
  if (rtt_text.empty() || *end != '\0' || !std::isfinite(link.rtt_ms) || link.rtt_ms < 0) {
    return invalid_argument(usage);
  }
  link.mbit_per_s = std::strtod(bw_text.c_str(), &end);
  if (bw_text.empty() || *end != '\0' || !std::isfinite(link.mbit_per_s) || link.mbit_per_s <= 0) {
    return invalid_argument(usage);
  }
  link.is_default = false;
  return link;
}

LinkTable::LinkTable(std::vector<std::string> names, Link default_link)
    : names_(std::move(names)), default_(default_link) {
  default_.is_default = true;
  links_.assign(names_.size() * names_.size(), default_);
}

const Link& LinkTable::get(int a, int b) const {
  STRATA_CHECK(a >= 0 && b >= 0 && a < n_devices() && b < n_devices());
  return links_[static_cast<size_t>(a) * names_.size() + static_cast<size_t>(b)];
}

void LinkTable::set(int a, int b, Link link) {
  STRATA_CHECK(a >= 0 && b >= 0 && a < n_devices() && b < n_devices() && a != b);
  link.is_default = false;
  links_[static_cast<size_t>(a) * names_.size() + static_cast<size_t>(b)] = link;
  links_[static_cast<size_t>(b) * names_.size() + static_cast<size_t>(a)] = link;
}

void LinkTable::set_default(Link link) {
  link.is_default = true;
  default_ = link;
  for (auto& l : links_) {
    if (l.is_default) l = link;
  }
}

int LinkTable::index_of(std::string_view name) const {
  for (size_t i = 0; i < names_.size(); ++i) {
    if (names_[i] == name) return static_cast<int>(i);
  }
  return -1;
}

LinkTable LinkTable::scaled_bandwidth(double factor) const {
  STRATA_CHECK(factor > 0);
  LinkTable out = *this;
  out.default_.mbit_per_s *= factor;
  for (auto& l : out.links_) l.mbit_per_s *= factor;
  return out;
}

Status apply_links_json(std::string_view json_text, const std::string& source, LinkTable* table) {
  STRATA_ASSIGN_OR_RETURN(const Json root, internal::parse_json(json_text, source));
  if (!root.is_object()) return invalid_argument(source + ": a links file must be a JSON object");
  const auto schema = root.find("schema");
  if (schema == root.end() || *schema != "strata.links/1") {
    return invalid_argument(source + ": schema must be \"strata.links/1\"");
  }
  if (const auto def = root.find("default"); def != root.end()) {
    STRATA_ASSIGN_OR_RETURN(const Link link, link_from_object(*def, source + ": default"));
    table->set_default(link);
  }
  const auto links = root.find("links");
  if (links == root.end()) return {};
  if (!links->is_array()) return invalid_argument(source + ": links must be an array");
  for (size_t i = 0; i < links->size(); ++i) {
    const Json& entry = (*links)[i];
    const std::string where = source + ": links[" + std::to_string(i) + "]";
    STRATA_ASSIGN_OR_RETURN(const Link link, link_from_object(entry, where));
    int idx[2] = {-1, -1};
    const char* keys[2] = {"a", "b"};
    for (int k = 0; k < 2; ++k) {
      const auto it = entry.find(keys[k]);
      if (it == entry.end() || !it->is_string()) {
        return invalid_argument(where + ": " + keys[k] + " must name a device");
      }
      idx[k] = table->index_of(it->get<std::string>());
      if (idx[k] < 0) {
        return invalid_argument(where + " names unknown device '" + it->get<std::string>() +
                                "' (devices: " + known_names(*table) + ")");
      }
    }
    if (idx[0] == idx[1]) return invalid_argument(where + ": a and b are the same device");
    table->set(idx[0], idx[1], link);
  }
  return {};
}

Status apply_link_flag(const std::string& spec, LinkTable* table) {
  const size_t eq = spec.find('=');
  if (eq == std::string::npos) {
    return invalid_argument("--link " + spec + ": expected A-B=RTT_MS,MBIT_PER_S");
  }
  const std::string pair = spec.substr(0, eq);
  STRATA_ASSIGN_OR_RETURN(const Link link, parse_link_value(spec.substr(eq + 1), "--link " + spec));
  int found_a = -1;
  int found_b = -1;
  int matches = 0;
  for (size_t dash = pair.find('-'); dash != std::string::npos; dash = pair.find('-', dash + 1)) {
    const int a = table->index_of(pair.substr(0, dash));
    const int b = table->index_of(pair.substr(dash + 1));
    if (a >= 0 && b >= 0) {
      found_a = a;
      found_b = b;
      ++matches;
    }
  }
  if (matches == 0) {
    return invalid_argument(
        "--link " + spec + ": '" + pair +
        "' does not split at a '-' into two known devices (devices: " + known_names(*table) + ")");
  }
  if (matches > 1) {
    return invalid_argument("--link " + spec + ": '" + pair +
                            "' splits into known devices in more than one way; use --links "
                            "FILE.json");
  }
  if (found_a == found_b) return invalid_argument("--link " + spec + ": a device with itself");
  table->set(found_a, found_b, link);
  return {};
}

}  // namespace strata::partitioner
