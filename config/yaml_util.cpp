#include "config/yaml_util.h"

#include <charconv>
#include <cmath>
#include <sstream>

namespace tranche::config {

using core::Error;
using core::ErrorCode;

core::Result<YAML::Node> parse_yaml(std::string_view text, const std::string& file) {
  try {
    YAML::Node node = YAML::Load(std::string(text));
    if (!node.IsDefined() || node.IsNull()) {
      return Error{ErrorCode::kParse, file + ":1: empty document"};
    }
    return node;
  } catch (const YAML::Exception& e) {
    return Error{ErrorCode::kParse, file + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg};
  }
}

int line_of(const YAML::Node& node) {
  return node.Mark().is_null() ? 0 : node.Mark().line + 1;
}

Error error_at(const std::string& file, const YAML::Node& node, std::string_view what) {
  const int line = line_of(node);
  return Error{ErrorCode::kParse, file + ":" + std::to_string(line) + ": " + std::string(what)};
}

core::Status check_keys(const YAML::Node& map, std::initializer_list<std::string_view> allowed,
                        const std::string& file, std::string_view path) {
  if (!map.IsMap()) return error_at(file, map, std::string(path) + ": expected a mapping");
  for (const auto& kv : map) {
    const std::string key = kv.first.Scalar();
    bool known = false;
    for (auto a : allowed) known = known || a == key;
    if (!known) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      return error_at(file, kv.first,
                      std::string(path) + (path.empty() ? "" : ".") + key +
                          ": unknown key (known: " + list + ")");
    }
  }
  return core::Ok{};
}

core::Result<std::string> as_string(const YAML::Node& node, const std::string& file,
                                    std::string_view path) {
  if (!node.IsScalar()) return error_at(file, node, std::string(path) + ": expected a scalar");
  return node.Scalar();
}

core::Result<double> as_double(const YAML::Node& node, const std::string& file,
                               std::string_view path) {
  if (!node.IsScalar()) return error_at(file, node, std::string(path) + ": expected a number");
  const std::string& s = node.Scalar();
  double v = 0;
  std::istringstream in(s);
  in.imbue(std::locale::classic());
  in >> v;
  if (!in || !in.eof() || !std::isfinite(v)) {
    return error_at(file, node, std::string(path) + ": expected a number, got '" + s + "'");
  }
  return v;
}

core::Result<std::int64_t> as_int(const YAML::Node& node, const std::string& file,
                                  std::string_view path) {
  if (!node.IsScalar()) return error_at(file, node, std::string(path) + ": expected an integer");
  std::string s = node.Scalar();
  std::string digits;
  for (char c : s) {
    if (c != '_' && c != ',') digits += c;  // "1_000_000" and "1,000,000" read as numbers
  }
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc{} || p != digits.data() + digits.size() || digits.empty()) {
    return error_at(file, node, std::string(path) + ": expected an integer, got '" + s + "'");
  }
  return v;
}

core::Result<bool> as_bool(const YAML::Node& node, const std::string& file,
                           std::string_view path) {
  if (!node.IsScalar()) return error_at(file, node, std::string(path) + ": expected true or false");
  const std::string& s = node.Scalar();
  if (s == "true" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "no" || s == "off") return false;
  return error_at(file, node, std::string(path) + ": expected true or false, got '" + s + "'");
}

}  // namespace tranche::config
