#include "cli/release_command.h"

#include <cstdio>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "config/content_files.h"
#include "core/contract.h"

namespace tranche::cli {

namespace {

std::string_view kind_name(core::Violation::Kind kind) {
  switch (kind) {
    case core::Violation::Kind::kFieldNotSupplied:
      return "field_not_supplied";
    case core::Violation::Kind::kTypeMismatch:
      return "type_mismatch";
    case core::Violation::Kind::kUnknownTemplate:
      return "unknown_template";
    case core::Violation::Kind::kTooLarge:
      return "too_large";
    case core::Violation::Kind::kBadFieldNumber:
      return "bad_field_number";
  }
  return "unknown";
}

// A JSON string: names come from whoever wrote the content, so every control byte
// is escaped. Bytes >= 0x80 pass through (the YAML reader gave us UTF-8).
std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto byte = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (byte < 0x20 || byte == 0x7f) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(byte));
      out += esc;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string to_json(const std::vector<core::Violation>& violations) {
  std::string out = "{\"ok\": ";
  out += violations.empty() ? "true" : "false";
  out += ", \"violations\": [";
  for (std::size_t i = 0; i < violations.size(); ++i) {
    const core::Violation& v = violations[i];
    out += i == 0 ? "\n  " : ",\n  ";
    out += "{\"kind\": " + json_string(kind_name(v.kind)) +
           ", \"template_type\": " + json_string(v.template_type) +
           ", \"instance\": " + json_string(v.instance) + ", \"field\": " +
           (v.field == 0 ? std::string("null") : std::to_string(v.field)) +
           ", \"message\": " + json_string(v.message) + "}";
  }
  out += violations.empty() ? "]}\n" : "\n]}\n";
  return out;
}

}  // namespace

void add_release_command(CLI::App& app, ReleaseArgs& args) {
  CLI::App* release = app.add_subcommand(
      "release", "Releases: check content before shipping, sign into the TUF repository, publish to a server, list, show");
  release->require_subcommand(1);
  args.check = release->add_subcommand(
      "check",
      "Check a content bundle against the interface its consumer really supplies\n"
      "(docs/content.md). Exit 0: clean; 1: violations (each names the template\n"
      "type, the instance and the field); 2: unreadable or malformed input.");
  args.check->add_option("BUNDLE", args.bundle, "content bundle file (tranche-content/1)")
      ->required();
  args.check
      ->add_option("--interface", args.interface_file,
                   "consumer interface file (tranche-interface/1)")
      ->required();
  args.check->add_flag("--json", args.json,
                       "print {\"ok\": bool, \"violations\": [...]} on stdout");
}

int run_release_command(const ReleaseArgs& args) {
  auto consumer = config::load_consumer_interface_file(args.interface_file);
  if (!consumer) {
    std::fprintf(stderr, "tranche release check: %s\n", consumer.error().to_string().c_str());
    return 2;
  }
  std::vector<int> lines;
  auto bundle = config::load_content_bundle_file(args.bundle, &lines);
  if (!bundle) {
    std::fprintf(stderr, "tranche release check: %s\n", bundle.error().to_string().c_str());
    return 2;
  }
  const std::vector<core::Violation> violations = core::check_contract(*consumer, *bundle);
  if (args.json) {
    std::fputs(to_json(violations).c_str(), stdout);
  } else {
    // Instance ids are unique in a bundle (the reader refuses a repeat), so a
    // violation's instance leads back to its line.
    std::map<std::string_view, int> line_of;
    for (std::size_t i = 0; i < bundle->instances.size() && i < lines.size(); ++i) {
      line_of.emplace(bundle->instances[i].id, lines[i]);
    }
    for (const core::Violation& v : violations) {
      const auto at = line_of.find(v.instance);
      const std::string where =
          args.bundle + (at == line_of.end() ? "" : ":" + std::to_string(at->second));
      std::printf("%s: %s: %s\n", where.c_str(), std::string(kind_name(v.kind)).c_str(),
                  v.message.c_str());
    }
    std::size_t criteria = 0;
    for (const auto& instance : bundle->instances) criteria += instance.criteria.size();
    const std::string summary = std::to_string(bundle->instances.size()) + " instances, " +
                                std::to_string(criteria) + " criteria checked against " +
                                args.interface_file;
    if (violations.empty()) {
      std::printf("ok: %s\n", summary.c_str());
    } else {
      std::printf("refused: %zu violation%s; %s\n", violations.size(),
                  violations.size() == 1 ? "" : "s", summary.c_str());
    }
  }
  return violations.empty() ? 0 : 1;
}

}  // namespace tranche::cli
