#include "core/contract.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <unordered_map>

namespace tranche::core {

std::string_view to_string(FieldType type) {
  switch (type) {
    case FieldType::kString:
      return "string";
    case FieldType::kInteger:
      return "integer";
    case FieldType::kBoolean:
      return "boolean";
    case FieldType::kWildcard:
      return "wildcard";
  }
  return "unknown";
}

namespace {

// Names in a bundle come from whoever wrote the content: a message quotes them
// bounded and with control bytes escaped, so a hostile id can neither flood a log
// line nor forge one. The Violation's own fields keep the exact text.
constexpr std::size_t kMaxQuotedName = 128;

std::string quoted(std::string_view name) {
  std::string out = "'";
  const std::size_t shown = std::min(name.size(), kMaxQuotedName);
  for (std::size_t i = 0; i < shown; ++i) {
    const auto byte = static_cast<unsigned char>(name[i]);
    if (byte < 0x20 || byte == 0x7f || byte == '\'' || byte == '\\') {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\x%02x", static_cast<unsigned>(byte));
      out += esc;
    } else {
      out += name[i];
    }
  }
  if (shown < name.size()) out += "...";
  out += "'";
  return out;
}

class Reporter {
 public:
  explicit Reporter(std::vector<Violation>& out) : out_(out) {}

  void add(Violation::Kind kind, const TemplateInstance& instance, std::uint32_t field,
           const std::string& what) {
    out_.push_back(Violation{kind, instance.template_type, instance.id, field,
                             "template " + quoted(instance.template_type) + " instance " +
                                 quoted(instance.id) + ": " + what});
  }

 private:
  std::vector<Violation>& out_;
};

std::string count_of(std::size_t n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

}  // namespace

std::vector<Violation> check_contract(const ConsumerInterface& consumer,
                                      const ContentBundle& bundle, const ContractLimits& limits) {
  std::vector<Violation> violations;
  Reporter report(violations);

  // The first declaration of a template type wins; the consumer side is ours and
  // is not expected to repeat one.
  std::unordered_map<std::string_view, const InterfaceTemplate*> templates;
  for (const InterfaceTemplate& t : consumer.templates) templates.emplace(t.type, &t);

  for (std::size_t i = 0; i < bundle.instances.size(); ++i) {
    const TemplateInstance& instance = bundle.instances[i];
    if (i == limits.max_instances) {
      // Reported where the bundle crosses the limit; nothing past it is examined,
      // since bounding the work is what the limit is for.
      report.add(Violation::Kind::kTooLarge, instance, 0,
                 "bundle has " + count_of(bundle.instances.size(), "instance", "instances") +
                     " (limit " + std::to_string(limits.max_instances) + ")");
      break;
    }

    const auto found = templates.find(instance.template_type);
    const InterfaceTemplate* tmpl = found == templates.end() ? nullptr : found->second;
    if (tmpl == nullptr) {
      report.add(Violation::Kind::kUnknownTemplate, instance, 0,
                 "unknown template type (the consumer supplies no such template)");
    }

    std::size_t criteria = instance.criteria.size();
    if (criteria > limits.max_criteria_per_instance) {
      report.add(Violation::Kind::kTooLarge, instance, 0,
                 count_of(criteria, "criterion", "criteria") + " (limit " +
                     std::to_string(limits.max_criteria_per_instance) + ")");
      criteria = limits.max_criteria_per_instance;
    }

    for (std::size_t c = 0; c < criteria; ++c) {
      const Criterion& criterion = instance.criteria[c];
      const std::string field_name = "field " + std::to_string(criterion.field);

      if (criterion.field == 0) {
        report.add(Violation::Kind::kBadFieldNumber, instance, 0,
                   "field 0 does not exist (fields are numbered from 1)");
      } else if (tmpl != nullptr) {
        const std::size_t supplied = tmpl->supplied.size();
        if (criterion.field > supplied) {
          // The 2024 check: against what the consumer supplies, never against what
          // the template declares. A wildcard here is no excuse — the interpreter
          // still reads the field, and reading it is the out-of-bounds read.
          report.add(Violation::Kind::kFieldNotSupplied, instance, criterion.field,
                     field_name + " is not supplied (consumer supplies " +
                         count_of(supplied, "field", "fields") + ")");
        } else {
          const FieldType has = tmpl->supplied[criterion.field - 1];
          // A wildcard criterion matches any value, and a field the consumer
          // supplies as a wildcard is untyped: either side being a wildcard is fine.
          if (criterion.type != FieldType::kWildcard && has != FieldType::kWildcard &&
              criterion.type != has) {
            report.add(Violation::Kind::kTypeMismatch, instance, criterion.field,
                       field_name + " is supplied as " + std::string(to_string(has)) +
                           ", criterion compares it as " + std::string(to_string(criterion.type)));
          }
        }
      }

      if (criterion.value.size() > limits.max_value_bytes) {
        report.add(Violation::Kind::kTooLarge, instance, criterion.field,
                   field_name + " criterion value is " +
                       count_of(criterion.value.size(), "byte", "bytes") + " (limit " +
                       std::to_string(limits.max_value_bytes) + ")");
      }
    }
  }
  return violations;
}

}  // namespace tranche::core
