#include "core/contract.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tranche::core {
namespace {

// The 2024 shape: the template type declares 21 input fields, the sensor's
// content interpreter supplies 20.
constexpr std::uint32_t kDeclaredFields = 21;
constexpr std::uint32_t kSuppliedFields = 20;
const std::string kIpc = "ChannelFile291Ipc";

ConsumerInterface sensor_interface() {
  InterfaceTemplate ipc;
  ipc.type = kIpc;
  for (std::uint32_t f = 1; f <= kSuppliedFields; ++f) {
    ipc.supplied.push_back(f % 5 == 0 ? FieldType::kInteger : FieldType::kString);
  }
  InterfaceTemplate file;
  file.type = "FileWrite";
  file.supplied = {FieldType::kString, FieldType::kInteger, FieldType::kBoolean};
  return ConsumerInterface{{ipc, file}};
}

FieldType supplied_type(std::uint32_t field) {
  return field % 5 == 0 ? FieldType::kInteger : FieldType::kString;
}

TemplateInstance instance(std::string id, std::string type, std::vector<Criterion> criteria) {
  return TemplateInstance{std::move(id), std::move(type), std::move(criteria)};
}

TEST(Contract, TheJuly2024ContentIsRefusedNamingTemplateInstanceAndField) {
  // Instances 1..6 use the fields the sensor supplies; inst-7 is the first to use
  // field 21, which the template declares but the sensor does not supply.
  ContentBundle bundle;
  for (std::uint32_t i = 1; i <= 6; ++i) {
    bundle.instances.push_back(
        instance("inst-" + std::to_string(i), kIpc,
                 {{i, supplied_type(i), "x"}, {10, FieldType::kInteger, "3"}}));
  }
  bundle.instances.push_back(instance(
      "inst-7", kIpc,
      {{1, FieldType::kString, "\\\\.\\pipe\\"}, {kDeclaredFields, FieldType::kString, "*evil*"}}));

  const std::vector<Violation> violations = check_contract(sensor_interface(), bundle);

  ASSERT_EQ(violations.size(), 1u);
  const Violation& v = violations[0];
  EXPECT_EQ(v.kind, Violation::Kind::kFieldNotSupplied);
  EXPECT_EQ(v.template_type, kIpc);
  EXPECT_EQ(v.instance, "inst-7");
  EXPECT_EQ(v.field, 21u);
  EXPECT_EQ(v.message,
            "template 'ChannelFile291Ipc' instance 'inst-7': field 21 is not supplied "
            "(consumer supplies 20 fields)");
}

TEST(Contract, EverySuppliedFieldMayBeUsed) {
  ContentBundle bundle;
  std::vector<Criterion> all;
  for (std::uint32_t f = 1; f <= kSuppliedFields; ++f) {
    all.push_back({f, supplied_type(f), "v"});
    bundle.instances.push_back(
        instance("one-" + std::to_string(f), kIpc, {{f, supplied_type(f), "v"}}));
  }
  bundle.instances.push_back(instance("all", kIpc, all));

  EXPECT_TRUE(check_contract(sensor_interface(), bundle).empty());
}

TEST(Contract, AWildcardOnAnUnsuppliedFieldIsStillAViolation) {
  // A wildcard matches any value, but the interpreter still reads the field to
  // match it — and reading field 21 is the out-of-bounds read.
  ContentBundle bundle{{instance("inst-7", kIpc, {{kDeclaredFields, FieldType::kWildcard, ""}})}};

  const std::vector<Violation> violations = check_contract(sensor_interface(), bundle);

  ASSERT_EQ(violations.size(), 1u);
  EXPECT_EQ(violations[0].kind, Violation::Kind::kFieldNotSupplied);
  EXPECT_EQ(violations[0].field, 21u);
}

TEST(Contract, AWildcardOnASuppliedFieldMatchesAnyType) {
  ContentBundle bundle{
      {instance("w", kIpc, {{5, FieldType::kWildcard, ""}, {6, FieldType::kWildcard, ""}})}};
  EXPECT_TRUE(check_contract(sensor_interface(), bundle).empty());
}

TEST(Contract, UnknownTemplateTypeIsRefused) {
  ContentBundle bundle{{instance("inst-1", "RegistryWrite", {{1, FieldType::kString, "HKLM"}})}};

  const std::vector<Violation> violations = check_contract(sensor_interface(), bundle);

  ASSERT_EQ(violations.size(), 1u);
  EXPECT_EQ(violations[0].kind, Violation::Kind::kUnknownTemplate);
  EXPECT_EQ(violations[0].template_type, "RegistryWrite");
  EXPECT_EQ(violations[0].instance, "inst-1");
  EXPECT_NE(violations[0].message.find("template 'RegistryWrite' instance 'inst-1'"),
            std::string::npos);
}

TEST(Contract, TypeMismatchNamesBothTypes) {
  // FileWrite supplies field 2 as an integer; comparing it as a string would
  // reinterpret the value.
  ContentBundle bundle{{instance(
      "fw-1", "FileWrite", {{1, FieldType::kString, "C:\\x"}, {2, FieldType::kString, "12"}})}};

  const std::vector<Violation> violations = check_contract(sensor_interface(), bundle);

  ASSERT_EQ(violations.size(), 1u);
  EXPECT_EQ(violations[0].kind, Violation::Kind::kTypeMismatch);
  EXPECT_EQ(violations[0].field, 2u);
  EXPECT_EQ(violations[0].message,
            "template 'FileWrite' instance 'fw-1': field 2 is supplied as integer, criterion "
            "compares it as string");
}

TEST(Contract, FieldZeroIsNotAFieldNumber) {
  ContentBundle bundle{{instance("z", "FileWrite", {{0, FieldType::kString, ""}})}};

  const std::vector<Violation> violations = check_contract(sensor_interface(), bundle);

  ASSERT_EQ(violations.size(), 1u);
  EXPECT_EQ(violations[0].kind, Violation::Kind::kBadFieldNumber);
}

TEST(Contract, EveryViolationIsReportedInBundleOrder) {
  ContentBundle bundle{{
      instance("a", kIpc, {{21, FieldType::kString, ""}, {22, FieldType::kString, ""}}),
      instance("b", "Nope", {}),
      instance("c", kIpc, {{1, FieldType::kString, "fine"}}),
      instance("d", "FileWrite", {{3, FieldType::kInteger, "1"}, {0, FieldType::kString, ""}}),
  }};

  const std::vector<Violation> violations = check_contract(sensor_interface(), bundle);

  ASSERT_EQ(violations.size(), 5u);
  EXPECT_EQ(violations[0].instance, "a");
  EXPECT_EQ(violations[0].field, 21u);
  EXPECT_EQ(violations[1].instance, "a");
  EXPECT_EQ(violations[1].field, 22u);
  EXPECT_EQ(violations[2].instance, "b");
  EXPECT_EQ(violations[2].kind, Violation::Kind::kUnknownTemplate);
  EXPECT_EQ(violations[3].instance, "d");
  EXPECT_EQ(violations[3].kind, Violation::Kind::kTypeMismatch);
  EXPECT_EQ(violations[4].instance, "d");
  EXPECT_EQ(violations[4].kind, Violation::Kind::kBadFieldNumber);
}

TEST(Contract, OversizedValueIsRefused) {
  ContractLimits limits;
  limits.max_value_bytes = 16;
  ContentBundle bundle{{instance("big", kIpc,
                                 {{1, FieldType::kString, std::string(16, 'a')},
                                  {2, FieldType::kString, std::string(17, 'a')}})}};

  const std::vector<Violation> violations = check_contract(sensor_interface(), bundle, limits);

  ASSERT_EQ(violations.size(), 1u);
  EXPECT_EQ(violations[0].kind, Violation::Kind::kTooLarge);
  EXPECT_EQ(violations[0].field, 2u);
  EXPECT_EQ(violations[0].message,
            "template 'ChannelFile291Ipc' instance 'big': field 2 criterion value is 17 bytes "
            "(limit 16)");
}

TEST(Contract, TooManyCriteriaIsRefusedAndOnlyTheFirstOnesAreExamined) {
  ContractLimits limits;
  limits.max_criteria_per_instance = 3;
  ContentBundle bundle{{instance("many", kIpc,
                                 {{1, FieldType::kString, ""},
                                  {2, FieldType::kString, ""},
                                  {3, FieldType::kString, ""},
                                  {99, FieldType::kString, ""}})}};

  const std::vector<Violation> violations = check_contract(sensor_interface(), bundle, limits);

  ASSERT_EQ(violations.size(), 1u);
  EXPECT_EQ(violations[0].kind, Violation::Kind::kTooLarge);
  EXPECT_EQ(violations[0].message,
            "template 'ChannelFile291Ipc' instance 'many': 4 criteria (limit 3)");
}

TEST(Contract, TooManyInstancesIsRefusedWhereTheLimitIsCrossed) {
  ContractLimits limits;
  limits.max_instances = 2;
  ContentBundle bundle{{
      instance("i1", kIpc, {{1, FieldType::kString, ""}}),
      instance("i2", kIpc, {{21, FieldType::kString, ""}}),
      instance("i3", kIpc, {{21, FieldType::kString, ""}}),
      instance("i4", kIpc, {{21, FieldType::kString, ""}}),
  }};

  const std::vector<Violation> violations = check_contract(sensor_interface(), bundle, limits);

  ASSERT_EQ(violations.size(), 2u);
  EXPECT_EQ(violations[0].instance, "i2");
  EXPECT_EQ(violations[0].kind, Violation::Kind::kFieldNotSupplied);
  EXPECT_EQ(violations[1].kind, Violation::Kind::kTooLarge);
  EXPECT_EQ(violations[1].instance, "i3");
  EXPECT_NE(violations[1].message.find("bundle has 4 instances (limit 2)"), std::string::npos);
}

TEST(Contract, HostileNamesAreQuotedSafelyInMessages) {
  const std::string id = "x'\n" + std::string(500, 'y');
  ContentBundle bundle{{instance(id, "Nope", {})}};

  const std::vector<Violation> violations = check_contract(sensor_interface(), bundle);

  ASSERT_EQ(violations.size(), 1u);
  EXPECT_EQ(violations[0].instance, id);  // the exact text stays available
  EXPECT_EQ(violations[0].message.find('\n'), std::string::npos);
  EXPECT_NE(violations[0].message.find("instance 'x\\x27\\x0ayyy"), std::string::npos);
  EXPECT_LT(violations[0].message.size(), 300u);
}

TEST(Contract, FieldTypesHaveNames) {
  EXPECT_EQ(to_string(FieldType::kString), "string");
  EXPECT_EQ(to_string(FieldType::kInteger), "integer");
  EXPECT_EQ(to_string(FieldType::kBoolean), "boolean");
  EXPECT_EQ(to_string(FieldType::kWildcard), "wildcard");
}

}  // namespace
}  // namespace tranche::core
