#include "cli/admin_command.h"

#include <boost/json.hpp>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "cli/api_client.h"
#include "cli/ops_command.h"
#include "cli/status_view.h"
#include "config/file_io.h"
#include "config/plan_yaml.h"
#include "core/cohort.h"
#include "tuf/canonical_json.h"

namespace tranche::cli {

namespace json = boost::json;

namespace {

constexpr int kUsage = 2;

int usage(const std::string& what, const std::string& message) {
  std::cerr << "tranche " << what << ": " << message << "\n";
  return kUsage;
}

// Sends the request; on success prints the answer as it came (--json) or hands
// its object to `render`.
int request(const AdminArgs& a, const std::string& what, const std::string& method,
            const std::string& path, const std::string& body,
            const std::function<void(const json::object&)>& render) {
  std::string answer;
  if (int rc = ops_request(what, method, path, body, &answer); rc != 0) return rc;
  if (a.json) {
    std::cout << answer << (answer.empty() || answer.back() != '\n' ? "\n" : "");
    return 0;
  }
  auto parsed = tuf::parse_document(answer, kMaxAnswerBytes);
  if (!parsed || !parsed->is_object()) {
    std::cerr << "tranche " << what << ": the server's answer is not a JSON object\n";
    return 1;
  }
  render(parsed->as_object());
  return 0;
}

std::string text(const json::value* v) {
  if (v == nullptr || v->is_null()) return "-";
  if (v->is_string()) return std::string(v->as_string());
  return json::serialize(*v);
}
std::string text(const json::object& o, std::string_view key) {
  return text(o.if_contains(key));
}

// Milliseconds since the epoch as UTC, "2026-12-03 10:46:31"; "never" for 0.
std::string when(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_int64() || v->as_int64() == 0)
    return v != nullptr && v->is_int64() ? "never" : "-";
  const std::time_t t = static_cast<std::time_t>(v->as_int64() / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::ostringstream out;
  out << std::put_time(&tm, "%Y-%m-%d %H:%M:%S");
  return out.str();
}

const json::array& list(const json::object& o, std::string_view key) {
  static const json::array kEmpty;
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_array() ? v->as_array() : kEmpty;
}

// Rows under a header, each column as wide as its widest cell.
void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size());
  for (std::size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < r.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], r[i].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      out += cells[i];
      if (i + 1 < cells.size()) out += std::string(width[i] - cells[i].size() + 2, ' ');
    }
    std::cout << out << "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
}

core::Result<std::string> read_json_file(const std::string& path, const std::string& flag) {
  auto t = config::read_file_limited(path, 1 << 20);
  if (!t) return t.error().with_context(flag + " ");
  auto parsed = tuf::parse_document(*t, 1 << 20);
  if (!parsed) return parsed.error().with_context(flag + " " + path + ": ");
  if (!parsed->is_object())
    return core::make_error(core::ErrorCode::kParse,
                            flag + " " + path + ": expected a JSON object");
  return json::serialize(*parsed);
}

// --- tokens --------------------------------------------------------------------------

int token_create(const AdminArgs& a) {
  const std::string body = json::serialize(json::object{{"name", a.name}, {"role", a.role}});
  return request(a, "token create", "POST", "/v1/tokens", body, [&](const json::object& o) {
    std::cout << "created token '" << text(o, "name") << "' (role " << text(o, "role") << "):\n"
              << text(o, "token") << "\n(shown once: the server keeps only its hash)\n";
  });
}

int token_list(const AdminArgs& a) {
  return request(a, "token list", "GET", "/v1/tokens", "", [](const json::object& o) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& t : list(o, "tokens")) {
      if (t.is_object()) {
        rows.push_back({text(t.as_object(), "name"), text(t.as_object(), "role"),
                        when(t.as_object(), "created_at")});
      }
    }
    print_table({"NAME", "ROLE", "CREATED (UTC)"}, rows);
  });
}

int token_revoke(const AdminArgs& a) {
  return request(a, "token revoke", "DELETE", "/v1/tokens/" + url_encode(a.name), "",
                 [&](const json::object&) {
                   std::cout << "revoked token '" << a.name
                             << "': refused from now on, by every server on the store\n";
                 });
}

// --- tenants -------------------------------------------------------------------------

std::string policy_summary(const json::value* policy) {
  if (policy == nullptr || !policy->is_object()) return "-";
  const auto& p = policy->as_object();
  const auto* pins = p.if_contains("pins");
  const std::size_t n_pins = pins != nullptr && pins->is_object() ? pins->as_object().size() : 0;
  const std::size_t n_windows = list(p, "windows").size();
  const auto* critical = p.if_contains("critical");
  std::ostringstream out;
  out << n_pins << " pin" << (n_pins == 1 ? "" : "s") << ", "
      << (n_windows == 0 ? std::string("always open") : std::to_string(n_windows) + " window(s)");
  if (critical != nullptr && critical->is_object() && !critical->as_object().empty()) {
    out << ", critical " << json::serialize(*critical);
  }
  return out.str();
}

int tenant_create(const AdminArgs& a) {
  json::object body{{"id", a.name}, {"enrollment_key", a.enrollment_key}};
  if (!a.policy_file.empty()) {
    auto policy = read_json_file(a.policy_file, "--policy");
    if (!policy) return usage("tenant create", policy.error().message);
    body["policy"] = json::parse(*policy);
  }
  return request(a, "tenant create", "POST", "/v1/tenants", json::serialize(body),
                 [](const json::object& o) {
                   std::cout << "tenant '" << text(o, "id")
                             << "' created (or replaced, with the new enrollment key); policy: "
                             << policy_summary(o.if_contains("policy")) << "\n";
                 });
}

int tenant_list(const AdminArgs& a) {
  return request(a, "tenant list", "GET", "/v1/tenants", "", [](const json::object& o) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& t : list(o, "tenants")) {
      if (t.is_object())
        rows.push_back(
            {text(t.as_object(), "id"), policy_summary(t.as_object().if_contains("policy"))});
    }
    print_table({"TENANT", "POLICY"}, rows);
  });
}

int tenant_policy(const AdminArgs& a) {
  const std::string path = "/v1/tenants/" + url_encode(a.name) + "/policy";
  auto show = [](const json::object& o) {
    const auto* p = o.if_contains("policy");
    std::cout << "tenant '" << text(o, "id") << "': " << policy_summary(p) << "\n"
              << (p != nullptr ? json::serialize(*p) : std::string("{}")) << "\n";
  };
  if (a.policy_file.empty()) return request(a, "tenant policy", "GET", path, "", show);
  auto policy = read_json_file(a.policy_file, "--set");
  if (!policy) return usage("tenant policy", policy.error().message);
  return request(a, "tenant policy", "PUT", path, *policy, show);
}

// --- releases and the audit log ----------------------------------------------------

std::vector<std::string> release_row(const json::object& r) {
  return {text(r, "channel"),
          text(r, "version"),
          std::to_string(list(r, "targets").size()),
          text(r, "contract_bypassed") == "true" ? "bypassed" : "-",
          text(r, "baseline") == "true" ? "baseline" : "-",
          when(r, "registered_at")};
}

int release_list(const AdminArgs& a) {
  return request(a, "release list", "GET", "/v1/releases", "", [](const json::object& o) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : list(o, "releases")) {
      if (r.is_object()) rows.push_back(release_row(r.as_object()));
    }
    print_table({"CHANNEL", "VERSION", "TARGETS", "CONTRACT", "BASELINE", "REGISTERED (UTC)"},
                rows);
  });
}

int release_show(const AdminArgs& a) {
  const std::string path = "/v1/releases/" + url_encode(a.name) + "/" + url_encode(a.version);
  return request(a, "release show", "GET", path, "", [](const json::object& r) {
    std::cout << text(r, "channel") << " " << text(r, "version") << ", registered "
              << when(r, "registered_at") << " UTC"
              << (text(r, "baseline") == "true" ? ", the channel's baseline" : "")
              << (text(r, "contract_bypassed") == "true" ? ", contract check bypassed" : "")
              << "\n";
    for (const auto& t : list(r, "targets")) {
      if (!t.is_object()) continue;
      std::cout << "  target " << text(t.as_object(), "path") << ": "
                << text(t.as_object(), "length") << " bytes, sha256 "
                << text(t.as_object(), "sha256") << "\n";
    }
    const auto& rollouts = list(r, "rollouts");
    if (rollouts.empty()) std::cout << "  no rollout of it yet\n";
    for (const auto& x : rollouts) {
      if (x.is_object())
        std::cout << "  rollout " << text(x.as_object(), "id") << ": "
                  << text(x.as_object(), "state") << "\n";
    }
  });
}

int audit(const AdminArgs& a) {
  std::string path = "/v1/audit?limit=" + std::to_string(a.limit > 0 ? a.limit : 100);
  if (!a.after.empty()) path += "&after=" + url_encode(a.after);
  return request(a, "audit", "GET", path, "", [](const json::object& o) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& e : list(o, "entries")) {
      if (!e.is_object()) continue;
      const auto& x = e.as_object();
      rows.push_back({text(x, "seq"), when(x, "at"), text(x, "actor"), text(x, "action"),
                      text(x, "target"), text(x, "reason")});
    }
    print_table({"SEQ", "AT (UTC)", "ACTOR", "ACTION", "TARGET", "REASON"}, rows);
  });
}

// --- devices -------------------------------------------------------------------------

int device_show(const AdminArgs& a) {
  const std::string path =
      device_path(a.name, a.tenant, "", a.version.empty() ? "" : "version=" + url_encode(a.version));
  return request(a, "device show", "GET", path, "", [](const json::object& o) {
    std::cout << render_device(o, static_cast<std::int64_t>(std::time(nullptr)) * 1000);
  });
}

// One page of the fleet (GET /v1/devices): the filters go to the server, which
// pages by id; `next` is the --after of the following page.
int device_list(const AdminArgs& a) {
  std::string query = "limit=" + std::to_string(a.limit > 0 ? a.limit : 100);
  for (const auto& [key, value] :
       {std::pair<const char*, const std::string*>{"version", &a.version},
        {"state", &a.state},
        {"stage", &a.stage},
        {"tag", &a.tag},
        {"tenant", &a.tenant},
        {"after", &a.after}}) {
    if (!value->empty()) query += std::string("&") + key + "=" + url_encode(*value);
  }
  return request(a, "device list", "GET", "/v1/devices?" + query, "", [](const json::object& o) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& d : list(o, "devices")) {
      if (!d.is_object()) continue;
      const auto& x = d.as_object();
      std::string versions;
      if (const auto* v = x.if_contains("versions"); v != nullptr && v->is_object()) {
        for (const auto& [ch, ver] : v->as_object()) {
          versions += (versions.empty() ? "" : " ") + std::string(ch) + "=" + text(&ver);
        }
      }
      rows.push_back({text(x, "id"), text(x, "tenant"), versions.empty() ? "-" : versions,
                      text(x, "state"), when(x, "last_seen"), text(x, "reason")});
    }
    print_table({"DEVICE", "TENANT", "VERSIONS", "STATE", "LAST SEEN (UTC)", "WHY"}, rows);
    if (const auto* next = o.if_contains("next"); next != nullptr && next->is_string()) {
      std::cout << "more: --after " << next->as_string() << "\n";
    }
  });
}

// A device's events, newest first, a page at a time (GET /v1/devices/{id}/events).
int device_events(const AdminArgs& a) {
  std::string path =
      device_path(a.name, a.tenant, "/events", "limit=" + std::to_string(a.limit > 0 ? a.limit : 100));
  if (a.before > 0) path += "&before_seq=" + std::to_string(a.before);
  return request(a, "device events", "GET", path, "", [](const json::object& o) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& e : list(o, "events")) {
      if (!e.is_object()) continue;
      const auto& x = e.as_object();
      const auto* detail = x.if_contains("detail");
      rows.push_back({text(x, "seq"), when(x, "at"), text(x, "kind"), text(x, "channel"),
                      text(x, "version"),
                      detail != nullptr && detail->is_object() && !detail->as_object().empty()
                          ? json::serialize(*detail)
                          : "-"});
    }
    print_table({"SEQ", "AT (UTC)", "KIND", "CHANNEL", "VERSION", "DETAIL"}, rows);
    if (const auto* next = o.if_contains("next"); next != nullptr && next->is_int64()) {
      std::cout << "more: --before " << next->as_int64() << "\n";
    }
  });
}

// --- plans (no server) ------------------------------------------------------------

int plan_check(const AdminArgs& a) {
  auto text_or = config::read_file_limited(a.file, 1 << 20);
  if (!text_or) return usage("plan check", text_or.error().message);
  auto plan = config::parse_plan(*text_or, a.file);
  if (!plan) {
    std::cerr << "tranche plan check: " << plan.error().message << "\n";
    return 1;
  }
  json::array stages;
  std::vector<std::vector<std::string>> rows;
  for (const core::Stage& s : plan->stages) {
    const core::Ppm share = core::effective_share(s.percent, s.min_devices, a.fleet);
    // Devices fall into stages by a hash of their id: about this many.
    const auto devices = static_cast<std::uint64_t>((static_cast<double>(a.fleet) * share.value()) /
                                                        static_cast<double>(core::Ppm::kWhole) +
                                                    0.5);
    json::object st{{"name", s.name},
                    {"percent", s.percent.to_string()},
                    {"min_devices", s.min_devices},
                    {"min_per_stratum", s.min_per_stratum},
                    {"bake_s", s.bake / core::kSecond},
                    {"admits_critical", s.admits_critical},
                    {"selector", !s.selector.any_of.empty()}};
    if (a.fleet > 0) {
      st["share"] = share.to_string();
      st["devices"] = devices;
    }
    stages.push_back(std::move(st));
    rows.push_back(
        {s.name, s.percent.to_string(), std::to_string(s.min_devices),
         a.fleet > 0 ? "~" + std::to_string(devices) + " (" + share.to_string() + ")" : "-",
         core::format_duration(s.bake), s.admits_critical ? "yes" : "no",
         s.selector.any_of.empty() ? "-" : "yes (of the devices it matches)"});
  }
  if (a.json) {
    json::object out{
        {"file", a.file}, {"valid", true}, {"name", plan->name}, {"stages", std::move(stages)}};
    if (a.fleet > 0) out["fleet"] = a.fleet;
    std::cout << json::serialize(out) << "\n";
    return 0;
  }
  std::cout << a.file << ": valid plan" << (plan->name.empty() ? "" : " '" + plan->name + "'")
            << ", " << plan->stages.size() << " stage" << (plan->stages.size() == 1 ? "" : "s")
            << (a.fleet > 0 ? " for a fleet of " + std::to_string(a.fleet) + " devices" : "")
            << "\n";
  print_table({"STAGE", "PERCENT", "MIN DEVICES", "DEVICES", "BAKE", "CRITICAL", "SELECTOR"}, rows);
  if (!plan->strata.empty()) {
    std::string keys;
    for (const auto& k : plan->strata) keys += (keys.empty() ? "" : ", ") + k;
    std::cout << "strata: " << keys
              << ". A stage's min_per_stratum takes more devices in each small stratum; DEVICES counts\n"
                 "the fleet as one stratum (the server counts the real ones when the rollout starts).\n";
  }
  return 0;
}

}  // namespace

void add_admin_commands(CLI::App& app, AdminArgs& a) {
  auto row = [&](CLI::App* cmd, std::function<int(const AdminArgs&)> run,
                 const char* json_help = "print the API's JSON answer as it came, for scripts") {
    cmd->add_flag("--json", a.json, json_help);
    a.commands.emplace_back(cmd, std::move(run));
    return cmd;
  };

  CLI::App* token = app.add_subcommand("token", "Operator tokens: create, list, revoke (admin)");
  token->require_subcommand(1);
  CLI::App* c = row(token->add_subcommand("create",
                                          "Create an operator token (POST /v1/tokens; admin). The\n"
                                          "token is printed once: the server keeps only its hash."),
                    token_create);
  c->add_option("NAME", a.name, "who holds it (1..64 bytes; the actor in the audit log)")
      ->required();
  c->add_option("--role", a.role, "viewer, operator or admin")
      ->capture_default_str()
      ->check(CLI::IsMember({"viewer", "operator", "admin"}));
  row(token->add_subcommand("list", "Token names and roles (never a token or its hash)"),
      token_list);
  c = row(
      token->add_subcommand("revoke",
                            "Revoke every token of NAME (DELETE /v1/tokens/NAME; admin; audited):\n"
                            "refused at once, by every server on the store. The last admin\n"
                            "token cannot be revoked."),
      token_revoke);
  c->add_option("NAME", a.name, "the token's name")->required();

  CLI::App* tenant = app.add_subcommand("tenant", "Tenants and their policies");
  tenant->require_subcommand(1);
  c = row(tenant->add_subcommand(
              "create", "Create a tenant, or replace it with a new enrollment key (admin)"),
          tenant_create);
  c->add_option("ID", a.name, "the tenant's id")->required();
  c->add_option("--enrollment-key", a.enrollment_key,
                "the key devices enroll with, 16..256 bytes (also from TRANCHE_ENROLLMENT_KEY)")
      ->envname("TRANCHE_ENROLLMENT_KEY")
      ->required();
  c->add_option("--policy", a.policy_file, "a JSON file of the tenant's policy (docs/api.md)");
  row(tenant->add_subcommand("list", "Every tenant and a summary of its policy"), tenant_list);
  c = row(tenant->add_subcommand("policy",
                                 "Show a tenant's policy; with --set FILE, replace it (operator)"),
          tenant_policy);
  c->add_option("ID", a.name, "the tenant's id")->required();
  c->add_option("--set", a.policy_file,
                "a JSON file of the whole new policy (what it omits is cleared)");

  CLI::App* release = app.get_subcommand("release");
  row(release->add_subcommand("list", "Registered releases, oldest version first within a channel"),
      release_list);
  c = row(release->add_subcommand(
              "show", "One release: its targets, whether it is the baseline, its rollouts"),
          release_show);
  c->add_option("CHANNEL", a.name, "the release's channel")->required();
  c->add_option("VERSION", a.version, "the release's version")->required();

  c = row(app.add_subcommand(
              "audit", "The audit log, oldest first: every operator action and automatic decision"),
          audit);
  c->add_option("--after", a.after, "entries after this seq (paging)");
  c->add_option("--limit", a.limit, "at most this many (1..1000, default 100)")
      ->check(CLI::Range(1, 1000));

  CLI::App* device = app.get_subcommand("device");
  c = row(device->add_subcommand("list",
                                 "Devices by id, a page at a time, each with its state and why"),
          device_list);
  c->add_option("--version", a.version, "only devices running CHANNEL:VERSION");
  c->add_option("--state", a.state,
                "only devices in this state (online, offline, silent, failed, refused, pending)");
  c->add_option("--stage", a.stage, "only devices a live rollout's stage NAME admits");
  c->add_option("--tag", a.tag, "only devices tagged KEY:VALUE");
  c->add_option("--tenant", a.tenant, "only the devices of this tenant");
  c->add_option("--limit", a.limit, "at most this many (default 100)")->check(CLI::Range(1, 1000));
  c->add_option("--after", a.after,
                "the page after this device, TENANT/ID (the 'more: --after' of the last page)");
  c = row(device->add_subcommand("events",
                                 "A device's events (installs, failures, crashes), newest first"),
          device_events);
  c->add_option("ID", a.name, "the device id")->required();
  c->add_option("--tenant", a.tenant, "the device's tenant (needed when several have such an id)");
  c->add_option("--limit", a.limit, "at most this many (default 100)")->check(CLI::Range(1, 1000));
  c->add_option("--before", a.before,
                "events before this seq (the 'more: --before' of the last page)");
  c = row(
      device->add_subcommand("show",
                             "One device as the server sees it, per channel what it should run\n"
                             "and why; with --version V, why it has, or has not, got V"),
      device_show);
  c->add_option("ID", a.name, "the device id")->required();
  c->add_option("--tenant", a.tenant, "the device's tenant (needed when several have such an id)");
  c->add_option("--version", a.version, "the version to ask about");

  CLI::App* plan =
      app.add_subcommand("plan", "Rollout plans (docs/plan.md), checked without a server");
  plan->require_subcommand(1);
  c = row(
      plan->add_subcommand("check",
                           "Validate a plan file as the server would, and show each stage's size\n"
                           "for a fleet of N devices. Errors name the file and line."),
      plan_check, "print {file, valid, name, fleet, stages: [...]} on stdout");
  c->add_option("FILE", a.file, "the plan (YAML)")->required();
  c->add_option("--fleet", a.fleet, "devices in the fleet: show how many each stage takes");
}

int run_admin_command(const AdminArgs& a) {
  for (const auto& [cmd, run] : a.commands) {
    if (cmd->parsed()) return run(a);
  }
  return -1;
}

}  // namespace tranche::cli
