// config::parse_content_bundle and config::parse_consumer_interface: content
// bundle and consumer interface YAML from outside -> core's contract types.
// Every input goes to both parsers. Properties: never crashes or throws; a refusal
// names the file; whatever is accepted goes through core::check_contract (a bundle
// against a fixed interface, a fixed bundle against an interface), and every
// violation names the template type and instance it is about.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/content_files.h"
#include "core/contract.h"
#include "fuzz/fuzz_check.h"

namespace {

using tranche::fuzz::check;

// The example interface (examples/content/interface.yaml), small.
tranche::core::ConsumerInterface fixed_interface() {
  using tranche::core::FieldType;
  tranche::core::ConsumerInterface consumer;
  consumer.templates.push_back({"ChannelFile291Ipc",
                                std::vector<FieldType>(20, FieldType::kString)});
  consumer.templates.push_back(
      {"ProcessStart", {FieldType::kString, FieldType::kBoolean, FieldType::kInteger}});
  return consumer;
}

tranche::core::ContentBundle fixed_bundle() {
  using tranche::core::FieldType;
  tranche::core::ContentBundle bundle;
  bundle.instances.push_back(
      {"a", "ChannelFile291Ipc", {{1, FieldType::kString, "x"}, {21, FieldType::kWildcard, "*"}}});
  bundle.instances.push_back({"b", "ProcessStart", {{3, FieldType::kInteger, "1"}}});
  return bundle;
}

void check_violations(const std::vector<tranche::core::Violation>& violations,
                      std::string_view input) {
  for (const auto& v : violations) {
    check(v.message.find("template '") != std::string::npos &&
              v.message.find("instance '") != std::string::npos,
          "a violation does not name its template type and instance", input);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string file = "fuzz.yaml";
  static const tranche::core::ConsumerInterface kInterface = fixed_interface();
  static const tranche::core::ContentBundle kBundle = fixed_bundle();

  auto bundle = tranche::config::parse_content_bundle(text, file);
  tranche::fuzz::explain(bundle.ok() ? "bundle accepted: " +
                                           std::to_string(bundle->instances.size()) + " instances"
                                     : "bundle refused: " + bundle.error().to_string());
  if (bundle.ok()) {
    check_violations(tranche::core::check_contract(kInterface, *bundle), text);
  } else {
    check(bundle.error().message.starts_with(file),
          "parse_content_bundle error does not name the file", text);
  }

  auto consumer = tranche::config::parse_consumer_interface(text, file);
  tranche::fuzz::explain(consumer.ok()
                             ? "interface accepted: " +
                                   std::to_string(consumer->templates.size()) + " templates"
                             : "interface refused: " + consumer.error().to_string());
  if (consumer.ok()) {
    check_violations(tranche::core::check_contract(*consumer, kBundle), text);
  } else {
    check(consumer.error().message.starts_with(file),
          "parse_consumer_interface error does not name the file", text);
  }
  return 0;
}
