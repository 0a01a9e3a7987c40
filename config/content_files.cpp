#include "config/content_files.h"

#include <charconv>
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "config/yaml_util.h"

namespace tranche::config {

using core::Error;
using core::ErrorCode;
using core::Result;
using core::Status;

namespace {

// What both readers share: errors at a node's line with a path, keys checked, and a
// bound on how much a file may expand to. YAML aliases (*a) let a small file name
// the same subtree many times over; without the bound, a kilobyte of aliases could
// ask for gigabytes of criteria.
class Reader {
 public:
  Reader(const std::string& file, std::size_t text_size)
      : file_(file), budget_(2 * text_size + 4096) {}

  Error fail(const YAML::Node& node, const std::string& path, const std::string& what,
             ErrorCode code = ErrorCode::kParse) const {
    Error e = error_at(file_, node, path + ": " + what);
    e.code = code;
    return e;
  }

  // A mapping with only `allowed` keys, each at most once.
  Status mapping(const YAML::Node& map, std::initializer_list<std::string_view> allowed,
                 const std::string& path) const {
    if (!map.IsMap()) return fail(map, path.empty() ? "document" : path, "expected a mapping");
    if (Status s = check_keys(map, allowed, file_, path); !s) return s;
    // yaml-cpp keeps both copies of a repeated key; lookups see only the first.
    std::set<std::string> seen;
    for (const auto& kv : map) {
      const std::string key = kv.first.Scalar();
      if (!seen.insert(key).second) return fail(kv.first, join(path, key), "key given twice");
    }
    return core::Ok{};
  }

  // A key that must be present.
  Result<YAML::Node> required(const YAML::Node& map, std::string_view key,
                              const std::string& path) const {
    const YAML::Node node = map[std::string(key)];
    if (!node.IsDefined()) return fail(map, join(path, key), "missing");
    return node;
  }

  Result<std::string> text(const YAML::Node& node, const std::string& path) const {
    if (!node.IsScalar()) return fail(node, path, "expected a scalar");
    return node.Scalar();
  }

  Status format(const YAML::Node& root, std::string_view expected) const {
    auto node = required(root, "format", "");
    if (!node) return node.error();
    auto s = text(*node, "format");
    if (!s) return s.error();
    if (*s != expected) {
      return fail(*node, "format",
                  "expected '" + std::string(expected) + "', got '" + *s + "'",
                  ErrorCode::kInvalidArgument);
    }
    return core::Ok{};
  }

  Result<core::FieldType> field_type(const YAML::Node& node, const std::string& path) const {
    auto s = text(node, path);
    if (!s) return s.error();
    if (*s == "string") return core::FieldType::kString;
    if (*s == "integer") return core::FieldType::kInteger;
    if (*s == "boolean") return core::FieldType::kBoolean;
    if (*s == "wildcard") return core::FieldType::kWildcard;
    return fail(node, path,
                "expected one of string, integer, boolean, wildcard, got '" + *s + "'",
                ErrorCode::kInvalidArgument);
  }

  // Charges `bytes` against the expansion bound.
  Status spend(const YAML::Node& node, const std::string& path, std::size_t bytes) {
    if (bytes > budget_) {
      return fail(node, path,
                  "the file expands to far more than its own size (YAML aliases?); refused",
                  ErrorCode::kTooLarge);
    }
    budget_ -= bytes;
    return core::Ok{};
  }

  static std::string join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }
  static std::string index(const std::string& path, std::size_t i) {
    return path + "[" + std::to_string(i) + "]";
  }

 private:
  const std::string& file_;
  std::size_t budget_;
};

constexpr std::size_t kNodeCost = 16;  // charged per instance, criterion and field

Status check_value(const Reader& r, const YAML::Node& node, const std::string& path,
                   core::FieldType type, const std::string& value) {
  if (type == core::FieldType::kInteger) {
    std::int64_t v = 0;
    const char* end = value.data() + value.size();
    auto [p, ec] = std::from_chars(value.data(), end, v);
    if (value.empty() || ec != std::errc{} || p != end) {
      return r.fail(node, path, "an integer criterion needs an integer value, got '" + value + "'",
                    ErrorCode::kInvalidArgument);
    }
  } else if (type == core::FieldType::kBoolean && value != "true" && value != "false") {
    return r.fail(node, path, "a boolean criterion needs true or false, got '" + value + "'",
                  ErrorCode::kInvalidArgument);
  }
  return core::Ok{};
}

Result<core::Criterion> read_criterion(Reader& r, const YAML::Node& node, const std::string& path) {
  if (Status s = r.mapping(node, {"field", "type", "value"}, path); !s) return s.error();
  core::Criterion c;

  auto field_node = r.required(node, "field", path);
  if (!field_node) return field_node.error();
  const std::string field_path = Reader::join(path, "field");
  auto s = r.text(*field_node, field_path);
  if (!s) return s.error();
  std::int64_t n = 0;
  const char* end = s->data() + s->size();
  auto [p, ec] = std::from_chars(s->data(), end, n);
  if (s->empty() || p != end || ec == std::errc::invalid_argument) {
    return r.fail(*field_node, field_path, "expected a field number, got '" + *s + "'");
  }
  // Field 0 is accepted here: the contract check reports it (kBadFieldNumber), with
  // the other violations, rather than the file being refused.
  if (ec == std::errc::result_out_of_range || n < 0 ||
      n > std::int64_t{std::numeric_limits<std::uint32_t>::max()}) {
    return r.fail(*field_node, field_path, "must be between 0 and 4294967295, got " + *s,
                  ErrorCode::kOutOfRange);
  }
  c.field = static_cast<std::uint32_t>(n);

  auto type_node = r.required(node, "type", path);
  if (!type_node) return type_node.error();
  auto type = r.field_type(*type_node, Reader::join(path, "type"));
  if (!type) return type.error();
  c.type = *type;

  auto value_node = r.required(node, "value", path);
  if (!value_node) return value_node.error();
  const std::string value_path = Reader::join(path, "value");
  auto value = r.text(*value_node, value_path);
  if (!value) return value.error();
  if (Status v = check_value(r, *value_node, value_path, c.type, *value); !v) return v.error();
  if (Status b = r.spend(node, path, kNodeCost + value->size()); !b) return b.error();
  c.value = std::move(*value);
  return c;
}

Result<core::ContentBundle> read_bundle(Reader& r, const YAML::Node& root,
                                        std::vector<int>* lines) {
  if (Status s = r.mapping(root, {"format", "templates"}, ""); !s) return s.error();
  if (Status s = r.format(root, kContentFormat); !s) return s.error();
  auto templates = r.required(root, "templates", "");
  if (!templates) return templates.error();
  if (!templates->IsSequence()) return r.fail(*templates, "templates", "expected a list");

  core::ContentBundle bundle;
  std::map<std::string, int> ids;  // id -> line, to refuse a repeated id
  std::size_t i = 0;
  for (const YAML::Node& item : *templates) {
    const std::string path = Reader::index("templates", i++);
    if (Status s = r.mapping(item, {"id", "template_type", "criteria"}, path); !s) {
      return s.error();
    }
    core::TemplateInstance instance;
    auto id_node = r.required(item, "id", path);
    if (!id_node) return id_node.error();
    auto id = r.text(*id_node, Reader::join(path, "id"));
    if (!id) return id.error();
    if (id->empty()) return r.fail(*id_node, Reader::join(path, "id"), "must not be empty");
    if (auto [at, fresh] = ids.emplace(*id, line_of(*id_node)); !fresh) {
      return r.fail(*id_node, Reader::join(path, "id"),
                    "'" + *id + "' given twice (first at line " + std::to_string(at->second) +
                        ")",
                    ErrorCode::kInvalidArgument);
    }
    auto type_node = r.required(item, "template_type", path);
    if (!type_node) return type_node.error();
    auto type = r.text(*type_node, Reader::join(path, "template_type"));
    if (!type) return type.error();
    if (Status b = r.spend(item, path, kNodeCost + id->size() + type->size()); !b) {
      return b.error();
    }
    instance.id = std::move(*id);
    instance.template_type = std::move(*type);

    auto criteria = r.required(item, "criteria", path);
    if (!criteria) return criteria.error();
    const std::string criteria_path = Reader::join(path, "criteria");
    if (!criteria->IsSequence()) return r.fail(*criteria, criteria_path, "expected a list");
    std::size_t c = 0;
    for (const YAML::Node& cnode : *criteria) {
      auto criterion = read_criterion(r, cnode, Reader::index(criteria_path, c++));
      if (!criterion) return criterion.error();
      instance.criteria.push_back(std::move(*criterion));
    }
    bundle.instances.push_back(std::move(instance));
    if (lines != nullptr) lines->push_back(line_of(item));
  }
  return bundle;
}

Result<core::ConsumerInterface> read_interface(Reader& r, const YAML::Node& root) {
  if (Status s = r.mapping(root, {"format", "templates"}, ""); !s) return s.error();
  if (Status s = r.format(root, kInterfaceFormat); !s) return s.error();
  auto templates = r.required(root, "templates", "");
  if (!templates) return templates.error();
  if (!templates->IsMap()) {
    return r.fail(*templates, "templates", "expected a mapping of template type to {fields: [...]}");
  }
  // Any template name is a key here, so only the shape and repeats are checked.
  core::ConsumerInterface consumer;
  std::set<std::string> seen;
  for (const auto& kv : *templates) {
    auto name = r.text(kv.first, "templates");
    if (!name) return name.error();
    const std::string path = Reader::join("templates", *name);
    if (name->empty()) return r.fail(kv.first, "templates", "a template type name is empty");
    if (!seen.insert(*name).second) return r.fail(kv.first, path, "template type given twice");
    if (Status s = r.mapping(kv.second, {"fields"}, path); !s) return s.error();
    auto fields = r.required(kv.second, "fields", path);
    if (!fields) return fields.error();
    const std::string fields_path = Reader::join(path, "fields");
    if (!fields->IsSequence()) return r.fail(*fields, fields_path, "expected a list of types");
    if (Status b = r.spend(kv.first, path, kNodeCost + name->size()); !b) return b.error();
    core::InterfaceTemplate t;
    t.type = std::move(*name);
    std::size_t i = 0;
    for (const YAML::Node& f : *fields) {
      const std::string field_path =
          fields_path + "[" + std::to_string(i) + "] (field " + std::to_string(i + 1) + ")";
      ++i;
      auto type = r.field_type(f, field_path);
      if (!type) return type.error();
      if (Status b = r.spend(f, field_path, kNodeCost); !b) return b.error();
      t.supplied.push_back(*type);
    }
    consumer.templates.push_back(std::move(t));
  }
  return consumer;
}

// yaml-cpp throws in places on odd shapes (a key that is itself a mapping); this is
// the edge where its exceptions become Results.
template <typename T, typename Read>
Result<T> parse_with(std::string_view yaml_text, const std::string& file, Read read) {
  auto root = parse_yaml(yaml_text, file);
  if (!root) return root.error();
  try {
    Reader reader(file, yaml_text.size());
    return read(reader, *root);
  } catch (const YAML::Exception& e) {
    return Error{ErrorCode::kParse, file + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg};
  }
}

}  // namespace

Result<core::ContentBundle> parse_content_bundle(std::string_view yaml_text,
                                                 const std::string& file,
                                                 std::vector<int>* instance_lines) {
  std::vector<int> lines;
  auto bundle = parse_with<core::ContentBundle>(
      yaml_text, file,
      [&lines](Reader& r, const YAML::Node& root) { return read_bundle(r, root, &lines); });
  if (bundle && instance_lines != nullptr) *instance_lines = std::move(lines);
  return bundle;
}

Result<core::ContentBundle> load_content_bundle_file(const std::string& path,
                                                     std::vector<int>* instance_lines) {
  auto text = read_file_limited(path, kMaxContentBundleBytes);
  if (!text) return text.error();
  return parse_content_bundle(*text, path, instance_lines);
}

Result<core::ConsumerInterface> parse_consumer_interface(std::string_view yaml_text,
                                                         const std::string& file) {
  return parse_with<core::ConsumerInterface>(yaml_text, file, read_interface);
}

Result<core::ConsumerInterface> load_consumer_interface_file(const std::string& path) {
  auto text = read_file_limited(path, kMaxInterfaceBytes);
  if (!text) return text.error();
  return parse_consumer_interface(*text, path);
}

}  // namespace tranche::config
