// Canonical JSON vectors (what securesystemslib.formats.encode_canonical
// produces) and the parser's limits and refusals.
#include "tuf/canonical_json.h"

#include <string>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "tests/tuf/fixture_paths.h"

namespace tranche::tuf {
namespace {

using core::ErrorCode;

std::string canon(std::string_view text) {
  auto v = parse_json(text);
  EXPECT_TRUE(v.ok()) << (v.ok() ? "" : v.error().to_string());
  if (!v.ok()) return "<parse error>";
  auto c = canonical_json(*v);
  EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().to_string());
  return c.ok() ? *c : "<canonical error>";
}

core::Error parse_error(std::string_view text, const JsonLimits& limits = {}) {
  auto v = parse_json(text, limits);
  EXPECT_FALSE(v.ok()) << "accepted: " << text;
  return v.ok() ? core::Error{ErrorCode::kInvalidArgument, "accepted"} : v.error();
}

// The doctest vectors of securesystemslib.formats.encode_canonical.
TEST(CanonicalJson, SecuresystemslibDoctestVectors) {
  EXPECT_EQ(canon(R"("")"), R"("")");
  EXPECT_EQ(canon("[1, 2, 3]"), "[1,2,3]");
  EXPECT_EQ(canon("[]"), "[]");
  EXPECT_EQ(canon(R"({"A": [99]})"), R"({"A":[99]})");
  EXPECT_EQ(canon(R"({"x" : 3, "y" : 2})"), R"({"x":3,"y":2})");
}

TEST(CanonicalJson, SortsKeysAtEveryLevelAndDropsWhitespace) {
  EXPECT_EQ(canon(R"( { "b" : { "z": 1, "a": [ {"d": null, "c": true} ] }, "a" : false } )"),
            R"({"a":false,"b":{"a":[{"c":true,"d":null}],"z":1}})");
  // Byte order, not locale order: upper case sorts before lower case, and a
  // prefix before its extensions.
  EXPECT_EQ(canon(R"({"b":1,"B":2,"a":3,"ab":4,"_":5,"1":6})"),
            R"({"1":6,"B":2,"_":5,"a":3,"ab":4,"b":1})");
}

TEST(CanonicalJson, EscapesOnlyQuoteAndBackslash) {
  // JSON escapes in the input are decoded; on output only " and \ are escaped,
  // everything else (newline, tab, control bytes) is written raw.
  EXPECT_EQ(canon(R"(["a\"b", "c\\d", "e\nf", "g\th", "\u0001", "\/"])"),
            std::string("[\"a\\\"b\",\"c\\\\d\",\"e\nf\",\"g\th\",\"\x01\",\"/\"]"));
  EXPECT_EQ(canon(R"({"k\"ey": "v"})"), R"({"k\"ey":"v"})");
}

TEST(CanonicalJson, UnicodePassesThroughAsUtf8) {
  // "é" as an escape and as raw UTF-8 give the same canonical bytes.
  EXPECT_EQ(canon(R"(["\u00e9"])"), "[\"\xc3\xa9\"]");
  EXPECT_EQ(canon("[\"\xc3\xa9\"]"), "[\"\xc3\xa9\"]");
  // A surrogate pair becomes one 4-byte sequence (U+1F600).
  EXPECT_EQ(canon(R"(["\ud83d\ude00"])"), "[\"\xf0\x9f\x98\x80\"]");
  // Keys sort by code point: U+00E9 (c3 a9) after "z", U+1F600 after U+00E9.
  EXPECT_EQ(canon("{\"\xf0\x9f\x98\x80\":1,\"\xc3\xa9\":2,\"z\":3}"),
            "{\"z\":3,\"\xc3\xa9\":2,\"\xf0\x9f\x98\x80\":1}");
}

TEST(CanonicalJson, Integers) {
  EXPECT_EQ(canon("[0, -1, 9223372036854775807, -9223372036854775808]"),
            "[0,-1,9223372036854775807,-9223372036854775808]");
}

TEST(CanonicalJson, RefusesFloatsAndBadUtf8WhenSerializing) {
  boost::json::value v = {{"a", 1.5}};
  auto c = canonical_json(v);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::kInvalidArgument);
  boost::json::value s = boost::json::string("\xff");
  EXPECT_FALSE(canonical_json(s).ok());
}

// root.json is pretty-printed with \u escapes; root.signed.canonical was written
// by an independent transcription of securesystemslib's encoder
// (tests/tuf/fixtures/make_fixtures.sh). Ours must give the same bytes.
TEST(CanonicalJson, MatchesIndependentEncoderOnFixture) {
  auto doc = parse_json(testing::read_fixture("root.json"));
  ASSERT_TRUE(doc.ok()) << doc.error().to_string();
  auto c = canonical_json(doc->at("signed"));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, testing::read_fixture("root.signed.canonical"));
}

TEST(CanonicalJson, IsIdempotent) {
  std::string once = canon(R"({"signed": {"_type": "root", "keys": {"b": {}, "a": {}}}})");
  EXPECT_EQ(canon(once), once);
}

TEST(JsonParser, RejectsFloatsAndOutOfRangeIntegers) {
  for (const char* text : {"1.0", "[1e3]", "{\"a\": 0.5}", "-1E-2", "18446744073709551615",
                           "9223372036854775808", "123456789012345678901234567890"}) {
    EXPECT_EQ(parse_error(text).code, ErrorCode::kParse) << text;
  }
}

// The server's request bodies take floats, but only finite ones: Boost reads 1e400
// as infinity and 0e400 as NaN, which serialize as "Infinity" and "NaN" (not
// JSON), and check-in health is stored serialized (fuzz_server_request found it).
TEST(JsonParser, WithFloatsRefusesNumbersBeyondADoublesRange) {
  JsonLimits limits;
  limits.integers_only = false;
  auto ok = parse_json(R"({"load": 0.25, "big": 1e300, "huge": 18446744073709551615})", limits);
  ASSERT_TRUE(ok.ok()) << ok.error().to_string();
  EXPECT_EQ(ok->at("load").as_double(), 0.25);
  for (const char* text : {"1e400", "-1e400", "0e400", "{\"load\": -0.0e999}"}) {
    auto r = parse_json(text, limits);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.error().code, ErrorCode::kParse) << text;
    EXPECT_NE(r.error().message.find("out of range"), std::string::npos) << r.error().message;
  }
}

TEST(JsonParser, RejectsDuplicateKeysNamingThem) {
  auto e = parse_error(R"({"signed": {"version": 1, "version": 2}})");
  EXPECT_EQ(e.code, ErrorCode::kParse);
  EXPECT_NE(e.message.find("duplicate key 'version'"), std::string::npos) << e.message;
  // The same key in different objects is fine.
  EXPECT_TRUE(parse_json(R"({"a": {"k": 1}, "b": {"k": 2}})").ok());
}

TEST(JsonParser, RejectsInvalidUtf8AndLoneSurrogates) {
  for (std::string text : {std::string("[\"\xff\"]"), std::string("[\"\xc0\xaf\"]"),
                           std::string("[\"\xed\xa0\x80\"]"), std::string("{\"\xfe\":1}"),
                           std::string(R"(["\ud800"])"), std::string(R"(["\udc00x"])")}) {
    EXPECT_EQ(parse_error(text).code, ErrorCode::kParse) << text;
  }
}

TEST(JsonParser, RejectsSyntaxErrorsAndTrailingData) {
  for (const char* text : {"", "{", "[1,]", "{\"a\":1,}", "[1] [2]", "[1] x", "// c\n[1]",
                           "{'a':1}", "[01]", "nul", "\"a"}) {
    EXPECT_EQ(parse_error(text).code, ErrorCode::kParse) << text;
  }
  EXPECT_TRUE(parse_json(" \n[1]\n ").ok());
}

TEST(JsonParser, EnforcesEveryLimit) {
  JsonLimits small;
  small.max_bytes = 64;
  small.max_depth = 3;
  small.max_string_bytes = 8;
  small.max_container_entries = 4;
  small.max_total_values = 10;

  EXPECT_TRUE(parse_json(R"({"a":[[1]],"b":"12345678"})", small).ok());

  auto too_big = parse_error(std::string(65, ' ') + "1", small);
  EXPECT_EQ(too_big.code, ErrorCode::kTooLarge);
  EXPECT_NE(too_big.message.find("over the limit"), std::string::npos) << too_big.message;

  auto deep = parse_error("[[[[1]]]]", small);
  EXPECT_EQ(deep.code, ErrorCode::kTooLarge);
  EXPECT_NE(deep.message.find("nesting deeper than 3"), std::string::npos) << deep.message;

  auto long_string = parse_error(R"(["123456789"])", small);
  EXPECT_EQ(long_string.code, ErrorCode::kTooLarge);
  EXPECT_NE(long_string.message.find("string longer than 8"), std::string::npos);

  auto long_key = parse_error(R"({"123456789":1})", small);
  EXPECT_EQ(long_key.code, ErrorCode::kTooLarge);
  EXPECT_NE(long_key.message.find("key longer than 8"), std::string::npos);

  auto wide = parse_error("[1,2,3,4,5]", small);
  EXPECT_EQ(wide.code, ErrorCode::kTooLarge);
  EXPECT_NE(wide.message.find("more than 4 entries"), std::string::npos) << wide.message;

  auto many = parse_error("[[1,2,3,4],[1,2,3,4],[1]]", small);
  EXPECT_EQ(many.code, ErrorCode::kTooLarge);
  EXPECT_NE(many.message.find("more than 10 values"), std::string::npos) << many.message;
}

TEST(JsonParser, DefaultDepthLimitStopsDeepNestingWithoutCrashing) {
  std::string deep(100000, '[');
  EXPECT_EQ(parse_error(deep).code, ErrorCode::kTooLarge);
}

TEST(JsonPath, FieldsKeysAndIndexes) {
  EXPECT_EQ(json_path_field("targets.signed", "targets"), "targets.signed.targets");
  EXPECT_EQ(json_path_key("targets.signed.targets", "a.txt"), "targets.signed.targets['a.txt']");
  EXPECT_EQ(json_path_key("x", "it's\n"), "x['it\\'s\\x0a']");
  EXPECT_EQ(json_path_field("x", "a b"), "x['a b']");
  EXPECT_EQ(json_path_index("sigs", 3), "sigs[3]");
}

}  // namespace
}  // namespace tranche::tuf
