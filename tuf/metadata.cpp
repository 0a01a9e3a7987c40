#include "tuf/metadata.h"

#include <cstdio>
#include <set>
#include <utility>

namespace tranche::tuf {
namespace {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;
using core::make_error;
using core::Result;

Error field_error(const std::string& path, std::string_view problem) {
  return make_error(ErrorCode::kInvalidArgument, path + ": " + std::string(problem));
}

std::string_view sv(const json::string& s) { return std::string_view(s.data(), s.size()); }
// An object's keys are json::string_view: taken as they are. Without this overload
// sv(kv.key()) built a temporary json::string and returned a view of it, dangling
// once the statement ended (ASan: stack-use-after-scope in parse_targets).
std::string_view sv(json::string_view s) { return std::string_view(s.data(), s.size()); }
// A view of a temporary string would dangle the same way.
std::string_view sv(json::string&& s) = delete;

Result<const json::object*> as_object(const json::value& v, const std::string& path) {
  if (!v.is_object()) return field_error(path, "expected an object");
  return &v.get_object();
}

Result<const json::value*> member(const json::object& o, const std::string& path,
                                  std::string_view name) {
  auto it = o.find(name);
  if (it == o.end()) return field_error(json_path_field(path, name), "missing");
  return &it->value();
}

Result<std::string> string_at(const json::value& v, const std::string& path) {
  if (!v.is_string()) return field_error(path, "expected a string");
  return std::string(sv(v.get_string()));
}

Result<std::string> get_string(const json::object& o, const std::string& path,
                               std::string_view name) {
  TRANCHE_ASSIGN_OR_RETURN(const json::value* v, member(o, path, name));
  return string_at(*v, json_path_field(path, name));
}

Result<std::int64_t> int_at(const json::value& v, const std::string& path, std::int64_t min) {
  if (!v.is_int64() || v.get_int64() < min) {
    return field_error(path, min == 0   ? "expected a non-negative integer"
                             : min == 1 ? "expected a positive integer"
                                        : "expected an integer");
  }
  return v.get_int64();
}

Result<std::int64_t> get_int(const json::object& o, const std::string& path,
                             std::string_view name, std::int64_t min) {
  TRANCHE_ASSIGN_OR_RETURN(const json::value* v, member(o, path, name));
  return int_at(*v, json_path_field(path, name), min);
}

Result<bool> get_bool(const json::object& o, const std::string& path, std::string_view name) {
  TRANCHE_ASSIGN_OR_RETURN(const json::value* v, member(o, path, name));
  if (!v->is_bool()) return field_error(json_path_field(path, name), "expected true or false");
  return v->get_bool();
}

Result<const json::object*> get_object(const json::object& o, const std::string& path,
                                       std::string_view name) {
  TRANCHE_ASSIGN_OR_RETURN(const json::value* v, member(o, path, name));
  return as_object(*v, json_path_field(path, name));
}

Result<std::vector<std::string>> string_list(const json::value& v, const std::string& path,
                                             bool unique) {
  if (!v.is_array()) return field_error(path, "expected an array of strings");
  std::vector<std::string> out;
  std::set<std::string> seen;
  const json::array& a = v.get_array();
  for (std::size_t i = 0; i < a.size(); ++i) {
    TRANCHE_ASSIGN_OR_RETURN(std::string s, string_at(a[i], json_path_index(path, i)));
    if (unique && !seen.insert(s).second) {
      return field_error(json_path_index(path, i), "duplicate '" + s + "'");
    }
    out.push_back(std::move(s));
  }
  return out;
}

// {"keyids": [...], "threshold": N}; keyids unique (python-tuf rejects repeats),
// threshold >= 1.
Result<RoleKeys> parse_role_keys(const json::object& o, const std::string& path) {
  RoleKeys rk;
  TRANCHE_ASSIGN_OR_RETURN(const json::value* ids, member(o, path, "keyids"));
  TRANCHE_ASSIGN_OR_RETURN(rk.keyids, string_list(*ids, json_path_field(path, "keyids"), true));
  TRANCHE_ASSIGN_OR_RETURN(std::int64_t threshold, get_int(o, path, "threshold", 1));
  if (threshold > 0xFFFF) return field_error(json_path_field(path, "threshold"), "too large");
  rk.threshold = static_cast<std::uint32_t>(threshold);
  return rk;
}

// KEY: {"keytype", "scheme", "keyval": {"public"}}. Unknown key types parse (they
// simply never verify), as in python-tuf.
Result<PublicKey> parse_key(const json::value& v, const std::string& path) {
  TRANCHE_ASSIGN_OR_RETURN(const json::object* o, as_object(v, path));
  PublicKey key;
  TRANCHE_ASSIGN_OR_RETURN(key.keytype, get_string(*o, path, "keytype"));
  TRANCHE_ASSIGN_OR_RETURN(key.scheme, get_string(*o, path, "scheme"));
  TRANCHE_ASSIGN_OR_RETURN(const json::object* keyval, get_object(*o, path, "keyval"));
  TRANCHE_ASSIGN_OR_RETURN(key.public_value, get_string(*keyval, json_path_field(path, "keyval"), "public"));
  key.json = *o;
  return key;
}

Result<std::map<std::string, PublicKey>> parse_keys(const json::object& o, const std::string& path) {
  std::map<std::string, PublicKey> keys;
  for (const auto& kv : o) {
    std::string id(sv(kv.key()));
    TRANCHE_ASSIGN_OR_RETURN(PublicKey key, parse_key(kv.value(), json_path_key(path, id)));
    keys.emplace(std::move(id), std::move(key));
  }
  return keys;
}

Result<Hashes> parse_hashes(const json::value& v, const std::string& path) {
  TRANCHE_ASSIGN_OR_RETURN(const json::object* o, as_object(v, path));
  if (o->empty()) return field_error(path, "expected at least one hash");
  Hashes out;
  for (const auto& kv : *o) {
    std::string alg(sv(kv.key()));
    TRANCHE_ASSIGN_OR_RETURN(std::string digest, string_at(kv.value(), json_path_key(path, alg)));
    if (digest.empty() || !hex_decode(digest)) {
      return field_error(json_path_key(path, alg), "expected a hex digest");
    }
    out.emplace(std::move(alg), std::move(digest));
  }
  return out;
}

Result<MetaInfo> parse_meta_info(const json::value& v, const std::string& path) {
  TRANCHE_ASSIGN_OR_RETURN(const json::object* o, as_object(v, path));
  MetaInfo mi;
  TRANCHE_ASSIGN_OR_RETURN(mi.version, get_int(*o, path, "version", 1));
  if (auto it = o->find("length"); it != o->end()) {
    TRANCHE_ASSIGN_OR_RETURN(mi.length, int_at(it->value(), json_path_field(path, "length"), 0));
  }
  if (auto it = o->find("hashes"); it != o->end()) {
    TRANCHE_ASSIGN_OR_RETURN(mi.hashes, parse_hashes(it->value(), json_path_field(path, "hashes")));
  }
  return mi;
}

// spec_version: "1.x" or "1.x.y", digits only (python-tuf accepts a major
// version equal to its own; this client implements 1.0.x).
bool supported_spec_version(std::string_view s) {
  std::size_t parts = 0;
  std::size_t i = 0;
  while (true) {
    std::size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start || i - start > 9) return false;
    if (parts == 0 && s.substr(start, i - start) != "1") return false;
    ++parts;
    if (i == s.size()) break;
    if (s[i] != '.') return false;
    ++i;
  }
  return parts == 2 || parts == 3;
}

Result<CommonFields> parse_common(const json::object& o, const std::string& path) {
  CommonFields c;
  TRANCHE_ASSIGN_OR_RETURN(c.spec_version, get_string(o, path, "spec_version"));
  if (!supported_spec_version(c.spec_version)) {
    return field_error(json_path_field(path, "spec_version"),
                       "unsupported version '" + c.spec_version + "' (this client reads 1.x)");
  }
  TRANCHE_ASSIGN_OR_RETURN(c.version, get_int(o, path, "version", 1));
  TRANCHE_ASSIGN_OR_RETURN(std::string expires, get_string(o, path, "expires"));
  auto t = parse_utc_time(expires);
  if (!t) return field_error(json_path_field(path, "expires"), t.error().message);
  c.expires = *t;
  return c;
}

Result<DelegatedRole> parse_delegated_role(const json::value& v, const std::string& path) {
  TRANCHE_ASSIGN_OR_RETURN(const json::object* o, as_object(v, path));
  DelegatedRole r;
  TRANCHE_ASSIGN_OR_RETURN(r.name, get_string(*o, path, "name"));
  if (r.name.empty()) return field_error(json_path_field(path, "name"), "expected a non-empty name");
  TRANCHE_ASSIGN_OR_RETURN(r.keys, parse_role_keys(*o, path));
  TRANCHE_ASSIGN_OR_RETURN(r.terminating, get_bool(*o, path, "terminating"));
  auto paths = o->find("paths");
  auto prefixes = o->find("path_hash_prefixes");
  // Spec: "either paths or path_hash_prefixes"; python-tuf requires exactly one.
  if ((paths == o->end()) == (prefixes == o->end())) {
    return field_error(path, "expected exactly one of paths and path_hash_prefixes");
  }
  if (paths != o->end()) {
    TRANCHE_ASSIGN_OR_RETURN(r.paths, string_list(paths->value(), json_path_field(path, "paths"), false));
  } else {
    std::string p = json_path_field(path, "path_hash_prefixes");
    TRANCHE_ASSIGN_OR_RETURN(r.path_hash_prefixes, string_list(prefixes->value(), p, false));
    for (std::size_t i = 0; i < r.path_hash_prefixes->size(); ++i) {
      const std::string& prefix = (*r.path_hash_prefixes)[i];
      for (char c : prefix) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
          return field_error(json_path_index(p, i), "expected lowercase hex");
        }
      }
    }
  }
  return r;
}

bool is_top_level_role(std::string_view name) {
  return name == "root" || name == "targets" || name == "snapshot" || name == "timestamp";
}

Result<Delegations> parse_delegations(const json::value& v, const std::string& path) {
  TRANCHE_ASSIGN_OR_RETURN(const json::object* o, as_object(v, path));
  Delegations d;
  TRANCHE_ASSIGN_OR_RETURN(const json::object* keys, get_object(*o, path, "keys"));
  TRANCHE_ASSIGN_OR_RETURN(d.keys, parse_keys(*keys, json_path_field(path, "keys")));
  auto roles = o->find("roles");
  auto succinct = o->find("succinct_roles");
  // TAP 15 / python-tuf: exactly one of roles and succinct_roles.
  if ((roles == o->end()) == (succinct == o->end())) {
    return field_error(path, "expected exactly one of roles and succinct_roles");
  }
  if (roles != o->end()) {
    std::string rp = json_path_field(path, "roles");
    if (!roles->value().is_array()) return field_error(rp, "expected an array");
    const json::array& a = roles->value().get_array();
    std::set<std::string> names;
    for (std::size_t i = 0; i < a.size(); ++i) {
      TRANCHE_ASSIGN_OR_RETURN(DelegatedRole r, parse_delegated_role(a[i], json_path_index(rp, i)));
      std::string np = json_path_field(json_path_index(rp, i), "name");
      if (is_top_level_role(r.name)) return field_error(np, "a top-level role name cannot be delegated");
      if (!names.insert(r.name).second) return field_error(np, "duplicate role '" + r.name + "'");
      d.roles.push_back(std::move(r));
    }
  } else {
    std::string sp = json_path_field(path, "succinct_roles");
    TRANCHE_ASSIGN_OR_RETURN(const json::object* so, as_object(succinct->value(), sp));
    SuccinctRoles s;
    TRANCHE_ASSIGN_OR_RETURN(s.keys, parse_role_keys(*so, sp));
    TRANCHE_ASSIGN_OR_RETURN(std::int64_t bits, get_int(*so, sp, "bit_length", 1));
    if (bits > 32) return field_error(json_path_field(sp, "bit_length"), "expected 1..32");
    s.bit_length = static_cast<std::uint32_t>(bits);
    TRANCHE_ASSIGN_OR_RETURN(s.name_prefix, get_string(*so, sp, "name_prefix"));
    d.succinct_roles = std::move(s);
  }
  return d;
}

Result<TargetFile> parse_target_file(const json::value& v, const std::string& path) {
  TRANCHE_ASSIGN_OR_RETURN(const json::object* o, as_object(v, path));
  TargetFile t;
  TRANCHE_ASSIGN_OR_RETURN(t.length, get_int(*o, path, "length", 0));
  TRANCHE_ASSIGN_OR_RETURN(const json::value* hashes, member(*o, path, "hashes"));
  TRANCHE_ASSIGN_OR_RETURN(t.hashes, parse_hashes(*hashes, json_path_field(path, "hashes")));
  if (auto it = o->find("custom"); it != o->end()) t.custom = it->value();
  return t;
}

template <typename Body, typename Fn>
Result<Metadata<Body>> parse_typed(std::string_view bytes, std::string_view type,
                                   std::string_view role_name, const JsonLimits& limits, Fn&& fn) {
  TRANCHE_ASSIGN_OR_RETURN(Envelope env, parse_envelope(bytes, type, role_name, limits));
  std::string path = json_path_field(role_name, "signed");
  Metadata<Body> md;
  TRANCHE_ASSIGN_OR_RETURN(md.body, fn(env.signed_value.get_object(), path));
  md.canonical_signed = std::move(env.canonical_signed);
  md.signatures = std::move(env.signatures);
  return md;
}

bool match_class(std::string_view pattern, std::size_t& pi, char c, bool& matched) {
  // pattern[pi] == '['; on success pi points past ']'.
  std::size_t i = pi + 1;
  bool negate = false;
  if (i < pattern.size() && (pattern[i] == '!')) {
    negate = true;
    ++i;
  }
  bool found = false;
  bool first = true;
  while (i < pattern.size() && (pattern[i] != ']' || first)) {
    first = false;
    char lo = pattern[i];
    char hi = lo;
    if (i + 2 < pattern.size() && pattern[i + 1] == '-' && pattern[i + 2] != ']') {
      hi = pattern[i + 2];
      i += 2;
    }
    if (c >= lo && c <= hi) found = true;
    ++i;
  }
  if (i >= pattern.size()) return false;  // no closing ']': '[' is literal
  pi = i + 1;
  matched = found != negate;
  return true;
}

}  // namespace

std::string format_utc_time(core::TimeMs t) {
  // 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z in ms since the epoch.
  constexpr core::TimeMs kMin = -62167219200000;
  constexpr core::TimeMs kMax = 253402300799000;
  t = t < kMin ? kMin : (t > kMax ? kMax : t);
  auto floor_div = [](std::int64_t a, std::int64_t b) {
    return a / b - ((a % b != 0 && (a < 0) != (b < 0)) ? 1 : 0);
  };
  const std::int64_t secs = floor_div(t, 1000);
  const std::int64_t days = floor_div(secs, 86400);
  const std::int64_t sod = secs - days * 86400;
  // days-to-civil (Howard Hinnant's algorithm), as core::parse_utc_time inverts.
  const std::int64_t z = days + 719468;
  const std::int64_t era = floor_div(z, 146097);
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const std::int64_t day = doy - (153 * mp + 2) / 5 + 1;
  const std::int64_t month = mp < 10 ? mp + 3 : mp - 9;
  const std::int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  char buf[96];  // room for any int64 year: GCC's -Wformat-truncation checks the extremes
  std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lldZ",
                static_cast<long long>(year), static_cast<long long>(month),
                static_cast<long long>(day), static_cast<long long>(sod / 3600),
                static_cast<long long>(sod / 60 % 60), static_cast<long long>(sod % 60));
  return buf;
}

Result<TargetPath> TargetPath::parse(std::string_view text) {
  if (text.empty()) return make_error(ErrorCode::kInvalidArgument, "target path is empty");
  if (text.size() > kMaxBytes) {
    return make_error(ErrorCode::kInvalidArgument, "target path longer than 4096 bytes");
  }
  if (text.front() == '/') {
    return make_error(ErrorCode::kInvalidArgument, "target path starts with '/'");
  }
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (c == '\\') return make_error(ErrorCode::kInvalidArgument, "target path contains '\\'");
    if (u < 0x20 || u == 0x7F) {
      return make_error(ErrorCode::kInvalidArgument, "target path contains a control character");
    }
  }
  std::size_t start = 0;
  while (true) {
    std::size_t end = text.find('/', start);
    std::string_view comp = text.substr(start, end == std::string_view::npos ? end : end - start);
    if (comp.empty()) return make_error(ErrorCode::kInvalidArgument, "target path has an empty component");
    if (comp == "." || comp == "..") {
      return make_error(ErrorCode::kInvalidArgument,
                        "target path has a '" + std::string(comp) + "' component");
    }
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return TargetPath(std::string(text));
}

bool fnmatch_component(std::string_view p, std::string_view s) {
  // Iterative glob with single-star backtracking (enough: '*' never crosses '/'
  // because callers match component by component).
  std::size_t pi = 0, si = 0;
  std::size_t star_p = std::string_view::npos, star_s = 0;
  while (si < s.size()) {
    if (pi < p.size() && p[pi] == '*') {
      star_p = pi++;
      star_s = si;
      continue;
    }
    if (pi < p.size()) {
      if (p[pi] == '?') {
        ++pi;
        ++si;
        continue;
      }
      if (p[pi] == '[') {
        std::size_t np = pi;
        bool matched = false;
        if (match_class(p, np, s[si], matched)) {
          if (matched) {
            pi = np;
            ++si;
            continue;
          }
        } else if (s[si] == '[') {
          ++pi;
          ++si;
          continue;
        }
      } else if (p[pi] == s[si]) {
        ++pi;
        ++si;
        continue;
      }
    }
    if (star_p == std::string_view::npos) return false;
    pi = star_p + 1;
    si = ++star_s;
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

bool DelegatedRole::is_delegated_path(const TargetPath& path) const {
  if (paths) {
    auto split = [](std::string_view s) {
      std::vector<std::string_view> parts;
      std::size_t start = 0;
      while (true) {
        std::size_t end = s.find('/', start);
        parts.push_back(s.substr(start, end == std::string_view::npos ? end : end - start));
        if (end == std::string_view::npos) break;
        start = end + 1;
      }
      return parts;
    };
    const auto target_parts = split(path.str());
    for (const std::string& pattern : *paths) {
      const auto pattern_parts = split(pattern);
      if (pattern_parts.size() != target_parts.size()) continue;
      bool all = true;
      for (std::size_t i = 0; i < pattern_parts.size() && all; ++i) {
        all = fnmatch_component(pattern_parts[i], target_parts[i]);
      }
      if (all) return true;
    }
    return false;
  }
  if (path_hash_prefixes) {
    const std::string digest = sha256_hex(path.str());
    for (const std::string& prefix : *path_hash_prefixes) {
      if (digest.compare(0, prefix.size(), prefix) == 0) return true;
    }
  }
  return false;
}

std::string SuccinctRoles::role_for(const TargetPath& path) const {
  const std::string digest = sha256_bytes(path.str());
  std::uint32_t first = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    first = (first << 8) | static_cast<unsigned char>(digest[i]);
  }
  const std::uint64_t bin = bit_length == 32 ? first : (first >> (32 - bit_length));
  // Suffix width: hex digits of the largest bin number (python-tuf).
  std::size_t width = 1;
  for (std::uint64_t top = number_of_bins() - 1; top >= 16; top >>= 4) ++width;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string suffix(width, '0');
  std::uint64_t b = bin;
  for (std::size_t i = width; i-- > 0; b >>= 4) suffix[i] = kHex[b & 0xFu];
  return name_prefix + "-" + suffix;
}

Result<Envelope> parse_envelope(std::string_view bytes, std::string_view expected_type,
                                std::string_view role_name, const JsonLimits& limits) {
  const std::string base(role_name);
  auto doc = parse_json(bytes, limits);
  if (!doc) return doc.error().with_context(base + ": ");
  TRANCHE_ASSIGN_OR_RETURN(const json::object* top, as_object(*doc, base));
  TRANCHE_ASSIGN_OR_RETURN(const json::object* signed_obj, get_object(*top, base, "signed"));
  const std::string sp = json_path_field(base, "signed");
  TRANCHE_ASSIGN_OR_RETURN(std::string type, get_string(*signed_obj, sp, "_type"));
  if (type != expected_type) {
    return field_error(json_path_field(sp, "_type"),
                       "expected '" + std::string(expected_type) + "', got '" + type + "'");
  }
  Envelope env;
  TRANCHE_ASSIGN_OR_RETURN(const json::value* sigs, member(*top, base, "signatures"));
  const std::string sigp = json_path_field(base, "signatures");
  if (!sigs->is_array()) return field_error(sigp, "expected an array");
  const json::array& arr = sigs->get_array();
  for (std::size_t i = 0; i < arr.size(); ++i) {
    const std::string p = json_path_index(sigp, i);
    TRANCHE_ASSIGN_OR_RETURN(const json::object* so, as_object(arr[i], p));
    Signature s;
    TRANCHE_ASSIGN_OR_RETURN(s.keyid, get_string(*so, p, "keyid"));
    TRANCHE_ASSIGN_OR_RETURN(s.sig, get_string(*so, p, "sig"));
    // A key signs a document once: a list that repeats a keyid is malformed,
    // not a second vote to ignore (python-tuf refuses it the same way).
    for (const Signature& earlier : env.signatures) {
      if (earlier.keyid == s.keyid) {
        return field_error(json_path_field(p, "keyid"), "'" + s.keyid + "' signs twice (keyids must be unique)");
      }
    }
    env.signatures.push_back(std::move(s));
  }
  // Signatures are over the canonical form of "signed" (spec 5.3.4 and
  // "Document formats"), never over the bytes as served.
  auto canonical = canonical_json(top->at("signed"));
  if (!canonical) return canonical.error().with_context(sp + ": ");
  env.canonical_signed = std::move(*canonical);
  env.signed_value = top->at("signed");
  return env;
}

Result<Metadata<Root>> parse_root(std::string_view bytes, const JsonLimits& limits) {
  return parse_typed<Root>(bytes, "root", "root", limits,
                           [](const json::object& o, const std::string& path) -> Result<Root> {
    Root r;
    TRANCHE_ASSIGN_OR_RETURN(r.common, parse_common(o, path));
    if (auto it = o.find("consistent_snapshot"); it != o.end()) {
      if (!it->value().is_bool()) {
        return field_error(json_path_field(path, "consistent_snapshot"), "expected true or false");
      }
      r.consistent_snapshot = it->value().get_bool();
    }
    TRANCHE_ASSIGN_OR_RETURN(const json::object* keys, get_object(o, path, "keys"));
    TRANCHE_ASSIGN_OR_RETURN(r.keys, parse_keys(*keys, json_path_field(path, "keys")));
    TRANCHE_ASSIGN_OR_RETURN(const json::object* roles, get_object(o, path, "roles"));
    const std::string rp = json_path_field(path, "roles");
    for (const auto& kv : *roles) {
      if (!is_top_level_role(sv(kv.key()))) {
        return field_error(json_path_key(rp, sv(kv.key())), "not a top-level role");
      }
    }
    auto role = [&](std::string_view name, RoleKeys& out) -> core::Status {
      TRANCHE_ASSIGN_OR_RETURN(const json::object* ro, get_object(*roles, rp, name));
      TRANCHE_ASSIGN_OR_RETURN(out, parse_role_keys(*ro, json_path_field(rp, name)));
      return core::Ok{};
    };
    for (auto [name, slot] : {std::pair<std::string_view, RoleKeys*>{"root", &r.root},
                              {"targets", &r.targets},
                              {"snapshot", &r.snapshot},
                              {"timestamp", &r.timestamp}}) {
      auto st = role(name, *slot);
      if (!st) return st.error();
    }
    return r;
  });
}

Result<Metadata<Timestamp>> parse_timestamp(std::string_view bytes, const JsonLimits& limits) {
  return parse_typed<Timestamp>(
      bytes, "timestamp", "timestamp", limits,
      [](const json::object& o, const std::string& path) -> Result<Timestamp> {
        Timestamp t;
        TRANCHE_ASSIGN_OR_RETURN(t.common, parse_common(o, path));
        TRANCHE_ASSIGN_OR_RETURN(const json::object* meta, get_object(o, path, "meta"));
        const std::string mp = json_path_field(path, "meta");
        auto it = meta->find("snapshot.json");
        if (it == meta->end()) return field_error(json_path_key(mp, "snapshot.json"), "missing");
        TRANCHE_ASSIGN_OR_RETURN(t.snapshot, parse_meta_info(it->value(), json_path_key(mp, "snapshot.json")));
        return t;
      });
}

Result<Metadata<Snapshot>> parse_snapshot(std::string_view bytes, const JsonLimits& limits) {
  return parse_typed<Snapshot>(
      bytes, "snapshot", "snapshot", limits,
      [](const json::object& o, const std::string& path) -> Result<Snapshot> {
        Snapshot s;
        TRANCHE_ASSIGN_OR_RETURN(s.common, parse_common(o, path));
        TRANCHE_ASSIGN_OR_RETURN(const json::object* meta, get_object(o, path, "meta"));
        const std::string mp = json_path_field(path, "meta");
        for (const auto& kv : *meta) {
          std::string name(sv(kv.key()));
          TRANCHE_ASSIGN_OR_RETURN(MetaInfo mi, parse_meta_info(kv.value(), json_path_key(mp, name)));
          s.meta.emplace(std::move(name), std::move(mi));
        }
        return s;
      });
}

Result<Metadata<Targets>> parse_targets(std::string_view bytes, std::string_view role_name,
                                        const JsonLimits& limits) {
  return parse_typed<Targets>(
      bytes, "targets", role_name, limits,
      [](const json::object& o, const std::string& path) -> Result<Targets> {
        Targets t;
        TRANCHE_ASSIGN_OR_RETURN(t.common, parse_common(o, path));
        TRANCHE_ASSIGN_OR_RETURN(const json::object* targets, get_object(o, path, "targets"));
        const std::string tp = json_path_field(path, "targets");
        for (const auto& kv : *targets) {
          std::string_view name = sv(kv.key());
          const std::string p = json_path_key(tp, name);
          auto target_path = TargetPath::parse(name);
          if (!target_path) return field_error(p, target_path.error().message);
          TRANCHE_ASSIGN_OR_RETURN(TargetFile file, parse_target_file(kv.value(), p));
          t.targets.emplace(std::move(*target_path), std::move(file));
        }
        if (auto it = o.find("delegations"); it != o.end()) {
          TRANCHE_ASSIGN_OR_RETURN(t.delegations, parse_delegations(it->value(), json_path_field(path, "delegations")));
        }
        return t;
      });
}

}  // namespace tranche::tuf
