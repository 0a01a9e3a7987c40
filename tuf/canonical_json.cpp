#include "tuf/canonical_json.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>
#include <vector>

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/error.hpp>
#include <boost/json/parse_options.hpp>

namespace tranche::tuf {
namespace {

namespace json = boost::json;
using core::Error;
using core::ErrorCode;
using core::make_error;

// A basic_parser handler that builds a boost::json::value while enforcing the
// limits and the TUF-specific rules (no floats, no duplicate keys). Returning
// false stops the parser at once, so an over-limit document costs no more than
// the bytes read before the limit was seen.
class Builder {
 public:
  static constexpr std::size_t max_array_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_string_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_key_size = static_cast<std::size_t>(-1);

  explicit Builder(const JsonLimits& limits) : limits_(limits) {}

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }

  bool on_array_begin(json::error_code& ec) { return open(false, ec); }
  bool on_array_end(std::size_t, json::error_code& ec) { return close(ec); }
  bool on_object_begin(json::error_code& ec) { return open(true, ec); }
  bool on_object_end(std::size_t, json::error_code& ec) { return close(ec); }

  bool on_string_part(json::string_view s, std::size_t n, json::error_code& ec) {
    if (!check_string_size(n, "string", ec)) return false;
    str_.append(s.data(), s.size());
    return true;
  }
  bool on_string(json::string_view s, std::size_t n, json::error_code& ec) {
    if (!check_string_size(n, "string", ec)) return false;
    str_.append(s.data(), s.size());
    if (!is_valid_utf8(str_)) return fail(ErrorCode::kParse, "string is not valid UTF-8", ec);
    json::value v(json::string_view(str_.data(), str_.size()));
    str_.clear();
    return add(std::move(v), ec);
  }
  bool on_key_part(json::string_view s, std::size_t n, json::error_code& ec) {
    if (!check_string_size(n, "key", ec)) return false;
    key_.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t n, json::error_code& ec) {
    if (!check_string_size(n, "key", ec)) return false;
    key_.append(s.data(), s.size());
    if (!is_valid_utf8(key_)) return fail(ErrorCode::kParse, "key is not valid UTF-8", ec);
    TRANCHE_ASSERT(!stack_.empty() && stack_.back().is_object, "a key outside an object");
    Frame& top = stack_.back();
    if (top.value.as_object().contains(json::string_view(key_.data(), key_.size()))) {
      return fail(ErrorCode::kParse, "duplicate key '" + key_ + "'", ec);
    }
    top.key = std::move(key_);
    key_.clear();
    return true;
  }

  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(std::int64_t i, json::string_view, json::error_code& ec) {
    return add(json::value(i), ec);
  }
  bool on_uint64(std::uint64_t u, json::string_view, json::error_code& ec) {
    if (!limits_.integers_only) return add(json::value(u), ec);
    return fail(ErrorCode::kParse, "integer out of range (above 2^63-1)", ec);
  }
  bool on_double(double d, json::string_view s, json::error_code& ec) {
    const std::string text(s.data(), std::min<std::size_t>(s.size(), 32));
    // Also reached for integers too large for 64 bits, which Boost reads as doubles.
    if (limits_.integers_only) {
      return fail(ErrorCode::kParse,
                  "number '" + text + "' is not an integer in range (TUF metadata has no floats)", ec);
    }
    // Boost reads a number beyond a double's range as infinity, and 0e400 as NaN;
    // serialized again they would be "Infinity" and "NaN", which no JSON reader takes.
    if (!std::isfinite(d)) return fail(ErrorCode::kParse, "number '" + text + "' is out of range", ec);
    return add(json::value(d), ec);
  }
  bool on_bool(bool b, json::error_code& ec) { return add(json::value(b), ec); }
  bool on_null(json::error_code& ec) { return add(json::value(nullptr), ec); }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

  std::optional<Error>& error() { return error_; }
  std::optional<json::value>& result() { return result_; }

 private:
  struct Frame {
    json::value value;
    std::string key;  // the key whose value comes next (objects only)
    bool is_object = false;
  };

  bool fail(ErrorCode code, std::string message, json::error_code& ec) {
    error_ = make_error(code, std::move(message));
    ec = json::error::exception;
    return false;
  }

  bool check_string_size(std::size_t n, const char* what, json::error_code& ec) {
    if (n > limits_.max_string_bytes) {
      return fail(ErrorCode::kTooLarge,
                  std::string(what) + " longer than " + std::to_string(limits_.max_string_bytes) +
                      " bytes",
                  ec);
    }
    return true;
  }

  bool count_value(json::error_code& ec) {
    if (++values_ > limits_.max_total_values) {
      return fail(ErrorCode::kTooLarge,
                  "more than " + std::to_string(limits_.max_total_values) + " values", ec);
    }
    return true;
  }

  bool open(bool is_object, json::error_code& ec) {
    if (!count_value(ec)) return false;
    if (stack_.size() >= limits_.max_depth) {
      return fail(ErrorCode::kTooLarge,
                  "nesting deeper than " + std::to_string(limits_.max_depth), ec);
    }
    Frame f;
    f.is_object = is_object;
    if (is_object) {
      f.value = json::object();
    } else {
      f.value = json::array();
    }
    stack_.push_back(std::move(f));
    return true;
  }

  bool close(json::error_code& ec) {
    TRANCHE_ASSERT(!stack_.empty(), "container end without a begin");
    json::value v = std::move(stack_.back().value);
    stack_.pop_back();
    return insert(std::move(v), ec);
  }

  bool add(json::value v, json::error_code& ec) {
    if (!count_value(ec)) return false;
    return insert(std::move(v), ec);
  }

  bool insert(json::value v, json::error_code& ec) {
    if (stack_.empty()) {
      result_ = std::move(v);
      return true;
    }
    Frame& top = stack_.back();
    std::size_t size = top.is_object ? top.value.as_object().size() : top.value.as_array().size();
    if (size >= limits_.max_container_entries) {
      return fail(ErrorCode::kTooLarge,
                  std::string(top.is_object ? "object" : "array") + " with more than " +
                      std::to_string(limits_.max_container_entries) + " entries",
                  ec);
    }
    if (top.is_object) {
      top.value.as_object().emplace(top.key, std::move(v));
      top.key.clear();
    } else {
      top.value.as_array().push_back(std::move(v));
    }
    return true;
  }

  JsonLimits limits_;
  std::vector<Frame> stack_;
  std::string str_;
  std::string key_;
  std::size_t values_ = 0;
  std::optional<json::value> result_;
  std::optional<Error> error_;
};

bool is_identifier(std::string_view s) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    bool digit = c >= '0' && c <= '9';
    if (!(alpha || (digit && i > 0))) return false;
  }
  return true;
}

void write_canonical_string(std::string& out, std::string_view s) {
  // securesystemslib _canonical_string_encoder:
  //   '"{}"'.format(string.replace("\\", "\\\\").replace('"', '\\"'))
  // Nothing else is escaped; the caller UTF-8-encodes the result.
  out.push_back('"');
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
}

core::Status write_canonical(std::string& out, const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      out += "null";
      return core::Ok{};
    case json::kind::bool_:
      out += v.get_bool() ? "true" : "false";
      return core::Ok{};
    case json::kind::int64:
      out += std::to_string(v.get_int64());
      return core::Ok{};
    case json::kind::uint64:
      out += std::to_string(v.get_uint64());
      return core::Ok{};
    case json::kind::double_:
      // OLPC canonical JSON has no floats; securesystemslib raises FormatError.
      return make_error(ErrorCode::kInvalidArgument,
                        "canonical JSON cannot encode a floating-point number");
    case json::kind::string: {
      const json::string& s = v.get_string();
      std::string_view sv(s.data(), s.size());
      if (!is_valid_utf8(sv)) {
        return make_error(ErrorCode::kInvalidArgument,
                          "canonical JSON cannot encode a string that is not valid UTF-8");
      }
      write_canonical_string(out, sv);
      return core::Ok{};
    }
    case json::kind::array: {
      out.push_back('[');
      bool first = true;
      for (const json::value& e : v.get_array()) {
        if (!first) out.push_back(',');
        first = false;
        auto st = write_canonical(out, e);
        if (!st) return st;
      }
      out.push_back(']');
      return core::Ok{};
    }
    case json::kind::object: {
      const json::object& o = v.get_object();
      std::vector<const json::key_value_pair*> members;
      members.reserve(o.size());
      for (const json::key_value_pair& kv : o) members.push_back(&kv);
      // std::string_view compares with char_traits<char>, i.e. as unsigned bytes:
      // for UTF-8 that is code point order, the order of Python's sorted().
      std::sort(members.begin(), members.end(), [](const auto* a, const auto* b) {
        return std::string_view(a->key().data(), a->key().size()) <
               std::string_view(b->key().data(), b->key().size());
      });
      out.push_back('{');
      bool first = true;
      for (const json::key_value_pair* kv : members) {
        if (!first) out.push_back(',');
        first = false;
        std::string_view key(kv->key().data(), kv->key().size());
        if (!is_valid_utf8(key)) {
          return make_error(ErrorCode::kInvalidArgument,
                            "canonical JSON cannot encode a key that is not valid UTF-8");
        }
        write_canonical_string(out, key);
        out.push_back(':');
        auto st = write_canonical(out, kv->value());
        if (!st) return st;
      }
      out.push_back('}');
      return core::Ok{};
    }
  }
  TRANCHE_ASSERT(false, "unknown boost::json kind");
  return core::Ok{};
}

}  // namespace

core::Result<json::value> parse_json(std::string_view bytes, const JsonLimits& limits) {
  if (bytes.size() > limits.max_bytes) {
    return make_error(ErrorCode::kTooLarge, "JSON document of " + std::to_string(bytes.size()) +
                                                " bytes is over the limit of " +
                                                std::to_string(limits.max_bytes));
  }
  json::parse_options options;
  // Our own depth check (in the handler) reports first, with the limit's name.
  options.max_depth = limits.max_depth + 1;
  options.allow_comments = false;
  options.allow_trailing_commas = false;
  options.allow_invalid_utf8 = false;
  json::basic_parser<Builder> parser(options, limits);
  json::error_code ec;
  std::size_t used = parser.write_some(false, bytes.data(), bytes.size(), ec);
  auto& handler_error = parser.handler().error();
  if (handler_error) {
    return handler_error->with_context("JSON at byte " + std::to_string(used) + ": ");
  }
  if (ec) {
    return make_error(ErrorCode::kParse,
                      "JSON at byte " + std::to_string(used) + ": " + ec.message());
  }
  if (used != bytes.size()) {
    return make_error(ErrorCode::kParse,
                      "JSON at byte " + std::to_string(used) + ": data after the document");
  }
  auto& result = parser.handler().result();
  TRANCHE_ASSERT(result.has_value(), "a complete parse without a value");
  return std::move(*result);
}

core::Result<std::string> canonical_json(const json::value& value) {
  std::string out;
  auto st = write_canonical(out, value);
  if (!st) return st.error();
  return out;
}

bool is_valid_utf8(std::string_view text) {
  std::size_t i = 0;
  const std::size_t n = text.size();
  while (i < n) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if ((c & 0xE0u) == 0xC0u) {
      len = 2;
      cp = c & 0x1Fu;
    } else if ((c & 0xF0u) == 0xE0u) {
      len = 3;
      cp = c & 0x0Fu;
    } else if ((c & 0xF8u) == 0xF0u) {
      len = 4;
      cp = c & 0x07u;
    } else {
      return false;
    }
    if (n - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0u) != 0x80u) return false;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    static constexpr std::uint32_t kMinForLength[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[len]) return false;        // overlong
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;  // surrogate
    if (cp > 0x10FFFF) return false;
    i += len;
  }
  return true;
}

std::string json_path_field(std::string_view base, std::string_view name) {
  std::string out(base);
  if (is_identifier(name)) {
    if (!out.empty()) out.push_back('.');
    out.append(name);
    return out;
  }
  return json_path_key(base, name);
}

std::string json_path_key(std::string_view base, std::string_view key) {
  std::string out(base);
  out += "['";
  static constexpr char kHex[] = "0123456789abcdef";
  for (char c : key) {
    auto u = static_cast<unsigned char>(c);
    if (c == '\'' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20 || u == 0x7F) {
      out += "\\x";
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xFu]);
    } else {
      out.push_back(c);
    }
  }
  out += "']";
  return out;
}

std::string json_path_index(std::string_view base, std::size_t index) {
  return std::string(base) + "[" + std::to_string(index) + "]";
}

core::Result<boost::json::value> parse_document(std::string_view bytes, std::size_t max_bytes) {
  JsonLimits limits;
  limits.max_bytes = max_bytes;
  limits.integers_only = false;
  return parse_json(bytes, limits);
}

}  // namespace tranche::tuf
