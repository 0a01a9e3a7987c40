// The content contract — the check whose absence caused the 2024 outage.
//
// A consumer (the sensor's content interpreter) declares, per template type, the
// input fields it really supplies and their types. A content bundle holds template
// instances whose match criteria reference fields by number (1-based, as the
// template defines them). Content may only use fields the consumer supplies; a
// template definition that *declares* more fields than are supplied proves
// nothing — in 2024 the validator trusted the declared 21, the sensor supplied 20.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tranche::core {

enum class FieldType : std::uint8_t { kString, kInteger, kBoolean, kWildcard };
std::string_view to_string(FieldType type);

struct InterfaceTemplate {
  std::string type;                  // template type name
  std::vector<FieldType> supplied;   // field i+1 is supplied with type supplied[i]
};

struct ConsumerInterface {
  std::vector<InterfaceTemplate> templates;
};

struct Criterion {
  std::uint32_t field = 0;  // 1-based field number
  FieldType type = FieldType::kString;
  std::string value;        // what to compare against
};

struct TemplateInstance {
  std::string id;
  std::string template_type;
  std::vector<Criterion> criteria;
};

struct ContentBundle {
  std::vector<TemplateInstance> instances;
};

struct ContractLimits {
  std::size_t max_instances = 100'000;
  std::size_t max_criteria_per_instance = 256;
  std::size_t max_value_bytes = 4096;
};

struct Violation {
  enum class Kind : std::uint8_t {
    kFieldNotSupplied,  // field number beyond what the consumer supplies
    kTypeMismatch,      // criterion type differs from the supplied field's type
    kUnknownTemplate,   // the consumer has no such template type
    kTooLarge,          // a size limit
    kBadFieldNumber,    // field 0
  };
  Kind kind;
  std::string template_type;
  std::string instance;
  std::uint32_t field = 0;
  std::string message;  // names template type, instance and field
};

// Every violation, in bundle order. Empty means the content is safe to feed.
std::vector<Violation> check_contract(const ConsumerInterface& consumer,
                                      const ContentBundle& bundle,
                                      const ContractLimits& limits = {});

}  // namespace tranche::core
