// Metadata parsing: valid documents of every role, and errors that name the field.
#include "tuf/metadata.h"

#include <string>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "tests/tuf/fixture_paths.h"

namespace tranche::tuf {
namespace {

namespace json = boost::json;
using core::ErrorCode;

std::string envelope(const json::value& signed_value) {
  return json::serialize(json::object{{"signed", signed_value}, {"signatures", json::array{}}});
}

json::object targets_signed() {
  return json::object{
      {"_type", "targets"},
      {"spec_version", "1.0.31"},
      {"version", 3},
      {"expires", "2030-01-01T00:00:00Z"},
      {"targets",
       {{"a.txt", {{"length", 5}, {"hashes", {{"sha256", std::string(64, 'a')}}}}},
        {"dir/b.bin",
         {{"length", 0}, {"hashes", {{"sha512", std::string(128, 'b')}}}, {"custom", {{"x", 1}}}}}}},
      {"delegations",
       {{"keys", json::object{}},
        {"roles", json::array{{{"name", "bins"},
                               {"keyids", json::array{"k1"}},
                               {"threshold", 1},
                               {"terminating", true},
                               {"paths", json::array{"dir/*", "*.txt"}}}}}}}};
}

// The error message of parsing `signed_value` as targets.
std::string targets_error(const json::value& signed_value) {
  auto r = parse_targets(envelope(signed_value));
  EXPECT_FALSE(r.ok()) << "accepted " << json::serialize(signed_value);
  if (r.ok()) return "";
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << r.error().to_string();
  return r.error().message;
}

TEST(Metadata, ParsesTheOpensslFixtureRoot) {
  auto root = parse_root(testing::read_fixture("root.json"));
  ASSERT_TRUE(root.ok()) << root.error().to_string();
  EXPECT_EQ(root->body.common.version, 1);
  EXPECT_EQ(root->body.common.spec_version, "1.0.31");
  EXPECT_EQ(root->body.common.expires, 1893456000000);  // 2030-01-01T00:00:00Z
  EXPECT_TRUE(root->body.consistent_snapshot);
  EXPECT_EQ(root->body.keys.size(), 3u);
  EXPECT_EQ(root->body.root.threshold, 3u);
  EXPECT_EQ(root->body.root.keyids.size(), 3u);
  EXPECT_EQ(root->signatures.size(), 3u);
  EXPECT_EQ(root->canonical_signed, testing::read_fixture("root.signed.canonical"));
  for (const auto& [id, key] : root->body.keys) EXPECT_EQ(key_id(key), id);
}

TEST(Metadata, ParsesTargetsWithDelegations) {
  auto t = parse_targets(envelope(targets_signed()));
  ASSERT_TRUE(t.ok()) << t.error().to_string();
  EXPECT_EQ(t->body.targets.size(), 2u);
  const auto& b = t->body.targets.at(*TargetPath::parse("dir/b.bin"));
  EXPECT_EQ(b.length, 0);
  EXPECT_TRUE(b.custom.has_value());
  ASSERT_TRUE(t->body.delegations.has_value());
  ASSERT_EQ(t->body.delegations->roles.size(), 1u);
  const DelegatedRole& role = t->body.delegations->roles[0];
  EXPECT_TRUE(role.terminating);
  EXPECT_TRUE(role.is_delegated_path(*TargetPath::parse("dir/x")));
  EXPECT_TRUE(role.is_delegated_path(*TargetPath::parse("notes.txt")));
  // '*' does not cross '/': a pattern matches only as many components.
  EXPECT_FALSE(role.is_delegated_path(*TargetPath::parse("dir/sub/x")));
  EXPECT_FALSE(role.is_delegated_path(*TargetPath::parse("a/notes.txt")));
}

TEST(Metadata, ParsesTimestampAndSnapshot) {
  json::object ts{{"_type", "timestamp"},
                  {"spec_version", "1.0"},
                  {"version", 7},
                  {"expires", "2024-02-29T23:59:59Z"},
                  {"meta", {{"snapshot.json", {{"version", 4}, {"length", 10},
                                               {"hashes", {{"sha256", "ab"}}}}}}}};
  auto t = parse_timestamp(envelope(ts));
  ASSERT_TRUE(t.ok()) << t.error().to_string();
  EXPECT_EQ(t->body.snapshot.version, 4);
  EXPECT_EQ(*t->body.snapshot.length, 10);

  json::object snap{{"_type", "snapshot"},
                    {"spec_version", "1.0.0"},
                    {"version", 4},
                    {"expires", "2030-01-01T00:00:00Z"},
                    {"meta", {{"targets.json", {{"version", 3}}}, {"bins.json", {{"version", 1}}}}}};
  auto s = parse_snapshot(envelope(snap));
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  EXPECT_EQ(s->body.meta.at("targets.json").version, 3);
  EXPECT_FALSE(s->body.meta.at("targets.json").length.has_value());

  ts["meta"] = json::object{{"targets.json", {{"version", 1}}}};
  auto missing = parse_timestamp(envelope(ts));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message, "timestamp.signed.meta['snapshot.json']: missing");
}

TEST(Metadata, ErrorsNameTheField) {
  auto t = targets_signed();
  t["targets"].as_object()["a.txt"].as_object()["length"] = -1;
  EXPECT_EQ(targets_error(t),
            "targets.signed.targets['a.txt'].length: expected a non-negative integer");

  t = targets_signed();
  t["targets"].as_object()["a.txt"].as_object()["length"] = "5";
  EXPECT_EQ(targets_error(t),
            "targets.signed.targets['a.txt'].length: expected a non-negative integer");

  t = targets_signed();
  t["targets"].as_object()["a.txt"].as_object().erase("hashes");
  EXPECT_EQ(targets_error(t), "targets.signed.targets['a.txt'].hashes: missing");

  t = targets_signed();
  t["targets"].as_object()["a.txt"].as_object()["hashes"] = json::object{};
  EXPECT_EQ(targets_error(t), "targets.signed.targets['a.txt'].hashes: expected at least one hash");

  t = targets_signed();
  t["targets"].as_object()["a.txt"].as_object()["hashes"] = {{"sha256", "xyz"}};
  EXPECT_EQ(targets_error(t), "targets.signed.targets['a.txt'].hashes['sha256']: expected a hex digest");

  t = targets_signed();
  t["version"] = 0;
  EXPECT_EQ(targets_error(t), "targets.signed.version: expected a positive integer");

  t = targets_signed();
  t["spec_version"] = "2.0.0";
  EXPECT_EQ(targets_error(t),
            "targets.signed.spec_version: unsupported version '2.0.0' (this client reads 1.x)");

  t = targets_signed();
  t["expires"] = "2030-01-01 00:00:00";
  EXPECT_NE(targets_error(t).find("targets.signed.expires: expected a UTC time"), std::string::npos);

  t = targets_signed();
  t["_type"] = "root";
  EXPECT_EQ(targets_error(t), "targets.signed._type: expected 'targets', got 'root'");

  t = targets_signed();
  t["delegations"].as_object()["roles"].as_array()[0].as_object()["threshold"] = 0;
  EXPECT_EQ(targets_error(t), "targets.signed.delegations.roles[0].threshold: expected a positive integer");

  t = targets_signed();
  t["delegations"].as_object()["roles"].as_array()[0].as_object()["path_hash_prefixes"] =
      json::array{"ab"};
  EXPECT_EQ(targets_error(t),
            "targets.signed.delegations.roles[0]: expected exactly one of paths and path_hash_prefixes");

  t = targets_signed();
  t["delegations"].as_object()["roles"].as_array()[0].as_object()["name"] = "root";
  EXPECT_EQ(targets_error(t),
            "targets.signed.delegations.roles[0].name: a top-level role name cannot be delegated");

  t = targets_signed();
  t["delegations"].as_object()["roles"].as_array()[0].as_object()["keyids"] = json::array{"k", "k"};
  EXPECT_EQ(targets_error(t), "targets.signed.delegations.roles[0].keyids[1]: duplicate 'k'");

  t = targets_signed();
  t["delegations"].as_object()["roles"].as_array()[0].as_object().erase("terminating");
  EXPECT_EQ(targets_error(t), "targets.signed.delegations.roles[0].terminating: missing");
}

TEST(Metadata, RejectsUnsafeTargetPathsNamingThem) {
  for (const char* bad : {"../etc/passwd", "/abs", "a//b", "a/", "a/./b", "a\\b", "a/../b", ".."}) {
    auto t = targets_signed();
    t["targets"].as_object()[bad] = {{"length", 1}, {"hashes", {{"sha256", "aa"}}}};
    std::string e = targets_error(t);
    EXPECT_EQ(e.rfind("targets.signed.targets['", 0), 0u) << bad << ": " << e;
  }
  auto t = targets_signed();
  t["targets"].as_object()[std::string("a\0b", 3)] = {{"length", 1}, {"hashes", {{"sha256", "aa"}}}};
  EXPECT_NE(targets_error(t).find("targets['a\\x00b']: target path contains a control character"),
            std::string::npos);
}

TEST(Metadata, RootRolesAreExactlyTheFourTopLevelRoles) {
  auto doc = json::parse(testing::read_fixture("root.json"));
  auto& roles = doc.as_object()["signed"].as_object()["roles"].as_object();
  roles.erase("timestamp");
  auto r = parse_root(json::serialize(doc));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "root.signed.roles.timestamp: missing");
  roles["timestamp"] = roles["snapshot"];
  roles["bins"] = roles["snapshot"];
  r = parse_root(json::serialize(doc));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "root.signed.roles['bins']: not a top-level role");
}

TEST(Metadata, EnvelopeErrors) {
  auto bad = [](const std::string& text) {
    auto r = parse_targets(text);
    EXPECT_FALSE(r.ok()) << text;
    return r.ok() ? std::string() : r.error().message;
  };
  EXPECT_EQ(bad("[]"), "targets: expected an object");
  EXPECT_EQ(bad(R"({"signatures": []})"), "targets.signed: missing");
  EXPECT_EQ(bad(json::serialize(json::object{{"signed", targets_signed()}})),
            "targets.signatures: missing");
  EXPECT_EQ(bad(json::serialize(json::object{{"signed", targets_signed()},
                                             {"signatures", json::array{{{"keyid", 1}}}}})),
            "targets.signatures[0].keyid: expected a string");
  // The same key twice in the signatures is refused, whatever the signatures say.
  json::object twice{{"keyid", "ab12"}, {"sig", "00"}};
  EXPECT_EQ(bad(json::serialize(json::object{{"signed", targets_signed()}, {"signatures", json::array{twice, twice}}})),
            "targets.signatures[1].keyid: 'ab12' signs twice (keyids must be unique)");
  // JSON-level errors keep their code and say which role.
  auto dup = parse_targets(R"({"signed": {}, "signed": {}})");
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, ErrorCode::kParse);
  EXPECT_EQ(dup.error().message.rfind("targets: JSON at byte", 0), 0u) << dup.error().message;
  // A delegated role's name starts its paths.
  auto t = targets_signed();
  t["version"] = -3;
  auto d = parse_targets(envelope(t), "bins-0f");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().message, "bins-0f.signed.version: expected a positive integer");
}

TEST(Metadata, SuccinctHashBins) {
  auto t = targets_signed();
  t["delegations"] = {{"keys", json::object{}},
                      {"succinct_roles",
                       {{"keyids", json::array{"k"}}, {"threshold", 1}, {"bit_length", 8},
                        {"name_prefix", "bin"}}}};
  auto parsed = parse_targets(envelope(t));
  ASSERT_TRUE(parsed.ok()) << parsed.error().to_string();
  const SuccinctRoles& s = *parsed->body.delegations->succinct_roles;
  EXPECT_EQ(s.number_of_bins(), 256u);
  // sha256("a.txt") starts with 0xb1 (python-tuf: bin = first 8 bits).
  auto path = *TargetPath::parse("a.txt");
  EXPECT_EQ(sha256_hex("a.txt").substr(0, 2), s.role_for(path).substr(4));
  EXPECT_EQ(s.role_for(path).size(), std::string("bin-").size() + 2);
  SuccinctRoles odd = s;
  odd.bit_length = 5;  // 32 bins: suffix of 2 hex digits, value < 0x20
  std::string name = odd.role_for(path);
  EXPECT_EQ(name.size(), 6u);
  EXPECT_LT(std::stoul(name.substr(4), nullptr, 16), 32u);

  t["delegations"].as_object()["roles"] = json::array{};
  EXPECT_EQ(targets_error(t),
            "targets.signed.delegations: expected exactly one of roles and succinct_roles");
}

TEST(Metadata, PathHashPrefixes) {
  DelegatedRole r;
  r.path_hash_prefixes = std::vector<std::string>{sha256_hex("x/y").substr(0, 3)};
  EXPECT_TRUE(r.is_delegated_path(*TargetPath::parse("x/y")));
  r.path_hash_prefixes = std::vector<std::string>{sha256_hex("x/y").substr(0, 3) == "000" ? "fff" : "000"};
  EXPECT_FALSE(r.is_delegated_path(*TargetPath::parse("x/y")));
}

TEST(Metadata, FnmatchComponent) {
  EXPECT_TRUE(fnmatch_component("*", "anything"));
  EXPECT_TRUE(fnmatch_component("*.tar.gz", "x.tar.gz"));
  EXPECT_FALSE(fnmatch_component("*.tar.gz", "x.tar.gzz"));
  EXPECT_TRUE(fnmatch_component("f?le", "file"));
  EXPECT_TRUE(fnmatch_component("[a-c]x", "bx"));
  EXPECT_FALSE(fnmatch_component("[!a-c]x", "bx"));
  EXPECT_TRUE(fnmatch_component("[", "["));
  EXPECT_TRUE(fnmatch_component("a*b*c", "aXXbYYc"));
  EXPECT_FALSE(fnmatch_component("a*b*c", "aXXbYY"));
}

TEST(Metadata, UtcTimes) {
  EXPECT_EQ(*parse_utc_time("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(*parse_utc_time("2000-03-01T00:00:01Z"), 951868801000);
  EXPECT_TRUE(parse_utc_time("2024-02-29T12:00:00Z").ok());
  for (const char* bad : {"2023-02-29T12:00:00Z", "2030-13-01T00:00:00Z", "2030-01-01T24:00:00Z",
                          "2030-01-01T00:00:00", "2030-01-01T00:00:00+00:00", "2030-1-01T00:00:00Z",
                          "2030-01-01T00:00:00.5Z", ""}) {
    EXPECT_FALSE(parse_utc_time(bad).ok()) << bad;
  }
}

TEST(Metadata, TargetPathValidation) {
  for (const char* good : {"a", "a/b/c.txt", "...", "a..b", ".hidden", "dir/.x", "caf\xc3\xa9"}) {
    EXPECT_TRUE(TargetPath::parse(good).ok()) << good;
  }
  for (const char* bad : {"", "/a", "a//b", "a/", "./a", "a/.", "../a", "a/../b", "a\\b", "a\tb"}) {
    EXPECT_FALSE(TargetPath::parse(bad).ok()) << bad;
  }
  EXPECT_FALSE(TargetPath::parse(std::string("a\0b", 3)).ok());
  EXPECT_FALSE(TargetPath::parse(std::string(4097, 'a')).ok());
}

}  // namespace
}  // namespace tranche::tuf
