// JSON for TUF metadata: a size-limited parser for untrusted bytes and the
// canonical serializer whose output TUF signs.
//
// Values are Boost.JSON values (boost::json::value). What the parser accepts is
// narrower than RFC 8259, because TUF metadata never needs more and every extra
// form is attack surface or ambiguity between implementations:
//   - no floating-point numbers (TUF has none, and OLPC canonical JSON forbids
//     them): a number with a fraction or an exponent is rejected;
//   - integers must fit in a signed 64-bit integer;
//   - a key may not repeat inside one object (which of two values would be
//     "the" value differs between parsers: a classic signature-confusion bug);
//   - strings must be valid UTF-8 (and \u escapes must not produce lone
//     surrogates), since the canonical form is defined over UTF-8 text;
//   - limits on total size, nesting depth, string/key length, entries per
//     container and total values, checked while parsing, before allocation grows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/json/value.hpp>

#include "core/result.h"

namespace tranche::tuf {

struct JsonLimits {
  std::size_t max_bytes = 16u << 20;            // whole document
  std::size_t max_depth = 32;                   // nested arrays/objects
  std::size_t max_string_bytes = 64u << 10;     // one string or key, decoded
  std::size_t max_container_entries = 1u << 20; // members of one object/array
  std::size_t max_total_values = 4u << 20;      // every value in the document
  // TUF metadata has integers only; other documents read with this strict parser
  // (the server's request bodies: duplicate keys refused all the same) may carry
  // floats (finite ones: a number beyond a double's range is refused) and
  // integers above 2^63-1.
  bool integers_only = true;
};

// Parses one JSON document (surrounding whitespace allowed). Errors:
// kTooLarge (a limit, naming it), kParse (syntax, invalid UTF-8, a float unless
// !integers_only, a duplicate key — with the byte offset and, for keys, the key).
core::Result<boost::json::value> parse_json(std::string_view bytes,
                                            const JsonLimits& limits = {});

// A JSON document from outside that is not TUF metadata — a server's answer, the
// CLI's login file, the agent's state files: the same strict reader (duplicate
// keys refused, finite floats allowed), at most `max_bytes`.
core::Result<boost::json::value> parse_document(std::string_view bytes, std::size_t max_bytes);

// The canonical JSON form that TUF signs: "OLPC canonical JSON" as implemented by
// securesystemslib.formats.encode_canonical (python-tuf, go-tuf and tough agree):
//   - object members sorted by key (Python's sorted() over str, i.e. by code
//     point, which for UTF-8 is plain byte order);
//   - no whitespace at all: "," and ":" separators;
//   - strings: only '"' and '\' are escaped (as \" and \\); every other
//     character, control characters and non-ASCII included, is written as its
//     raw UTF-8 bytes (_canonical_string_encoder);
//   - integers in decimal, true/false/null; floats are an error.
// Errors: kInvalidArgument for a double or a string that is not valid UTF-8
// (securesystemslib would raise FormatError / UnicodeEncodeError).
core::Result<std::string> canonical_json(const boost::json::value& value);

// True if `text` is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool is_valid_utf8(std::string_view text);

// JSON paths for error messages: a schema field is `base.name`, an entry of a
// map keyed by data (a target path, a key id, a role name) is `base['name']`
// (quotes and backslashes in the name escaped, control bytes as \xNN), an array
// element is `base[3]`.
std::string json_path_field(std::string_view base, std::string_view name);
std::string json_path_key(std::string_view base, std::string_view key);
std::string json_path_index(std::string_view base, std::size_t index);

}  // namespace tranche::tuf
