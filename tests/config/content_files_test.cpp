#include "config/content_files.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "core/contract.h"

namespace tranche::config {
namespace {

using core::ErrorCode;
using core::FieldType;

const char* const kBundleFile = "content/test.yaml";
const char* const kInterfaceFile = "content/interface.yaml";

const std::string kBundle = R"(format: tranche-content/1
templates:
  - id: inst-1
    template_type: ChannelFile291Ipc
    criteria:
      - {field: 1, type: string, value: "\\\\.\\pipe\\foo"}
      - {field: 21, type: wildcard, value: "*"}
  - id: inst-2
    template_type: ProcessStart
    criteria:
      - field: 3
        type: integer
        value: -7
      - {field: 2, type: boolean, value: true}
)";

const std::string kInterface = R"(format: tranche-interface/1
templates:
  ChannelFile291Ipc: {fields: [string, string, integer]}
  ProcessStart:
    fields:
      - string
      - boolean
      - integer
  Empty: {fields: []}
)";

std::string replace(std::string text, std::string_view from, std::string_view to) {
  const std::size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

template <typename Parse>
void expect_error(Parse parse, const std::string& text, const std::string& file, int line,
                  std::initializer_list<const char*> mentions,
                  ErrorCode code = ErrorCode::kParse) {
  auto r = parse(text, file);
  ASSERT_FALSE(r.ok()) << text;
  const std::string& m = r.error().message;
  EXPECT_EQ(r.error().code, code) << m;
  EXPECT_TRUE(m.starts_with(file + ":" + std::to_string(line) + ":")) << m;
  for (const char* mention : mentions) EXPECT_NE(m.find(mention), std::string::npos) << m;
}

void bundle_error(const std::string& text, int line, std::initializer_list<const char*> mentions,
                  ErrorCode code = ErrorCode::kParse) {
  expect_error([](std::string_view t, const std::string& f) { return parse_content_bundle(t, f); },
               text, kBundleFile, line, mentions, code);
}
void interface_error(const std::string& text, int line,
                     std::initializer_list<const char*> mentions,
                     ErrorCode code = ErrorCode::kParse) {
  expect_error(parse_consumer_interface, text, kInterfaceFile, line, mentions, code);
}

TEST(ContentBundle, ParsesInstancesAndCriteriaInOrder) {
  auto r = parse_content_bundle(kBundle, kBundleFile);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  ASSERT_EQ(r->instances.size(), 2u);
  const auto& a = r->instances[0];
  EXPECT_EQ(a.id, "inst-1");
  EXPECT_EQ(a.template_type, "ChannelFile291Ipc");
  ASSERT_EQ(a.criteria.size(), 2u);
  EXPECT_EQ(a.criteria[0].field, 1u);
  EXPECT_EQ(a.criteria[0].type, FieldType::kString);
  EXPECT_EQ(a.criteria[0].value, "\\\\.\\pipe\\foo");
  EXPECT_EQ(a.criteria[1].field, 21u);
  EXPECT_EQ(a.criteria[1].type, FieldType::kWildcard);
  const auto& b = r->instances[1];
  ASSERT_EQ(b.criteria.size(), 2u);
  EXPECT_EQ(b.criteria[0].type, FieldType::kInteger);
  EXPECT_EQ(b.criteria[0].value, "-7");
  EXPECT_EQ(b.criteria[1].type, FieldType::kBoolean);
}

TEST(ContentBundle, GivesTheLineOfEachInstance) {
  std::vector<int> lines;
  auto r = parse_content_bundle(kBundle, kBundleFile, &lines);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(lines, (std::vector<int>{3, 8}));
}

TEST(ContentBundle, EmptyTemplateListIsAnEmptyBundle) {
  auto r = parse_content_bundle("format: tranche-content/1\ntemplates: []\n", kBundleFile);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_TRUE(r->instances.empty());
}

TEST(ContentBundle, FieldZeroIsLeftToTheContractCheck) {
  auto r = parse_content_bundle(replace(kBundle, "field: 21", "field: 0"), kBundleFile);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->instances[0].criteria[1].field, 0u);
}

TEST(ContentBundle, ErrorsNameFileLineAndField) {
  bundle_error(replace(kBundle, "format: tranche-content/1", "format: tranche-content/2"), 1,
               {"format", "tranche-content/1"}, ErrorCode::kInvalidArgument);
  bundle_error(replace(kBundle, "format: tranche-content/1\n", ""), 1, {"format: missing"});
  bundle_error(kBundle + "extra: 1\n", 15, {"extra: unknown key"});
  bundle_error(replace(kBundle, "    template_type: ProcessStart", "    templat_type: ProcessStart"),
               9, {"templates[1].templat_type: unknown key"});
  bundle_error(replace(kBundle, "{field: 21, type: wildcard", "{field: 21, typ: wildcard"), 7,
               {"templates[0].criteria[1].typ: unknown key"});
  bundle_error(replace(kBundle, "field: 21", "field: twenty-one"), 7,
               {"templates[0].criteria[1].field", "twenty-one"});
  bundle_error(replace(kBundle, "field: 21", "field: -1"), 7,
               {"templates[0].criteria[1].field"}, ErrorCode::kOutOfRange);
  bundle_error(replace(kBundle, "field: 21", "field: 4294967296"), 7,
               {"templates[0].criteria[1].field"}, ErrorCode::kOutOfRange);
  bundle_error(replace(kBundle, "type: wildcard", "type: regex"), 7,
               {"templates[0].criteria[1].type", "regex"}, ErrorCode::kInvalidArgument);
  bundle_error(replace(kBundle, "value: -7", "value: seven"), 13,
               {"templates[1].criteria[0].value", "integer"}, ErrorCode::kInvalidArgument);
  bundle_error(replace(kBundle, "value: true", "value: maybe"), 14,
               {"templates[1].criteria[1].value", "true or false"}, ErrorCode::kInvalidArgument);
  bundle_error(replace(kBundle, "  - id: inst-2", "  - id: inst-1"), 8,
               {"templates[1].id", "given twice", "line 3"}, ErrorCode::kInvalidArgument);
  bundle_error(replace(kBundle, "        value: -7\n", ""), 11,
               {"templates[1].criteria[0].value: missing"});
  bundle_error(replace(kBundle, "    template_type: ChannelFile291Ipc\n", ""), 3,
               {"templates[0].template_type: missing"});
  bundle_error(replace(kBundle, "  - id: inst-2", "  - id: inst-2\n    id: again"), 9,
               {"templates[1].id: key given twice"});
  bundle_error(replace(kBundle, "value: -7", "value: [1, 2]"), 13,
               {"templates[1].criteria[0].value: expected a scalar"});
  bundle_error("format: tranche-content/1\ntemplates: {a: 1}\n", 2, {"templates: expected a list"});
  bundle_error("format: tranche-content/1\ntemplates: [\n", 3, {}, ErrorCode::kParse);
  bundle_error("", 1, {"empty"});
  bundle_error("- 1\n", 1, {"expected a mapping"});
}

// YAML aliases let a small file name one criterion many times over; the reader
// refuses a file that expands to far more than its own size.
TEST(ContentBundle, AliasesExpandingPastTheFileAreRefused) {
  std::string text = "format: tranche-content/1\ntemplates:\n  - id: a\n    template_type: T\n"
                     "    criteria:\n      - &c {field: 1, type: string, value: \"" +
                     std::string(2000, 'x') + "\"}\n";
  for (int i = 0; i < 200; ++i) text += "      - *c\n";
  auto r = parse_content_bundle(text, kBundleFile);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kTooLarge) << r.error().message;
}

TEST(ConsumerInterface, ParsesTemplatesAndFieldTypesInOrder) {
  auto r = parse_consumer_interface(kInterface, kInterfaceFile);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  ASSERT_EQ(r->templates.size(), 3u);
  EXPECT_EQ(r->templates[0].type, "ChannelFile291Ipc");
  EXPECT_EQ(r->templates[0].supplied,
            (std::vector<FieldType>{FieldType::kString, FieldType::kString, FieldType::kInteger}));
  EXPECT_EQ(r->templates[1].type, "ProcessStart");
  EXPECT_EQ(r->templates[1].supplied,
            (std::vector<FieldType>{FieldType::kString, FieldType::kBoolean, FieldType::kInteger}));
  EXPECT_TRUE(r->templates[2].supplied.empty());
}

TEST(ConsumerInterface, ErrorsNameFileLineAndField) {
  interface_error(replace(kInterface, "tranche-interface/1", "tranche-content/1"), 1,
                  {"format", "tranche-interface/1"}, ErrorCode::kInvalidArgument);
  interface_error(kInterface + "version: 2\n", 10, {"version: unknown key"});
  interface_error(replace(kInterface, "{fields: [string, string, integer]}",
                          "{fields: [string, strin, integer]}"),
                  3, {"templates.ChannelFile291Ipc.fields[1] (field 2)", "strin"},
                  ErrorCode::kInvalidArgument);
  interface_error(replace(kInterface, "      - boolean", "      - bool"), 7,
                  {"templates.ProcessStart.fields[1] (field 2)", "bool"},
                  ErrorCode::kInvalidArgument);
  interface_error(replace(kInterface, "{fields: [string, string, integer]}",
                          "{fields: [string], declared: 21}"),
                  3, {"templates.ChannelFile291Ipc.declared: unknown key"});
  interface_error(replace(kInterface, "  Empty: {fields: []}", "  ProcessStart: {fields: []}"), 9,
                  {"templates.ProcessStart", "given twice"});
  interface_error(replace(kInterface, "  Empty: {fields: []}", "  Empty: {}"), 9,
                  {"templates.Empty.fields: missing"});
  interface_error(replace(kInterface, "  Empty: {fields: []}", "  Empty: {fields: string}"), 9,
                  {"templates.Empty.fields: expected a list"});
  interface_error("format: tranche-interface/1\ntemplates: [a]\n", 2,
                  {"templates: expected a mapping"});
}

TEST(ContentFiles, LoadingNamesTheFileAndRefusesOversizedOnes) {
  auto missing = load_content_bundle_file("no/such/bundle.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message.find("no/such/bundle.yaml"), std::string::npos);
  auto iface = load_consumer_interface_file("no/such/interface.yaml");
  ASSERT_FALSE(iface.ok());
  EXPECT_EQ(iface.error().code, ErrorCode::kNotFound);
}

// The example files of docs/content.md: the 2024 bundle reads field 21 of a
// template whose consumer supplies 20; the good one stays inside.
TEST(ContentFiles, ExamplesCheckAsDocumented) {
  const char* src = std::getenv("TRANCHE_SOURCE_DIR");
  const std::string dir = std::string(src != nullptr ? src : ".") + "/examples/content/";
  auto consumer = load_consumer_interface_file(dir + "interface.yaml");
  ASSERT_TRUE(consumer.ok()) << consumer.error().to_string();
  ASSERT_FALSE(consumer->templates.empty());
  EXPECT_EQ(consumer->templates[0].type, "ChannelFile291Ipc");
  EXPECT_EQ(consumer->templates[0].supplied.size(), 20u);

  auto good = load_content_bundle_file(dir + "good.yaml");
  ASSERT_TRUE(good.ok()) << good.error().to_string();
  EXPECT_TRUE(core::check_contract(*consumer, *good).empty());

  auto bad = load_content_bundle_file(dir + "channel-291.yaml");
  ASSERT_TRUE(bad.ok()) << bad.error().to_string();
  const auto violations = core::check_contract(*consumer, *bad);
  ASSERT_EQ(violations.size(), 1u);
  EXPECT_EQ(violations[0].kind, core::Violation::Kind::kFieldNotSupplied);
  EXPECT_EQ(violations[0].template_type, "ChannelFile291Ipc");
  EXPECT_EQ(violations[0].field, 21u);
}

}  // namespace
}  // namespace tranche::config
