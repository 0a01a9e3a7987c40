#include "cli/ops_command.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <boost/json.hpp>

#include "tuf/canonical_json.h"
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <thread>

#include "cli/api_client.h"
#include "cli/cli_config.h"
#include "cli/status_view.h"
#include "config/plan_yaml.h"
#include "config/usage.h"
#include "core/rollout_machine.h"

namespace tranche::cli {

namespace json = boost::json;

namespace {

constexpr int kApiError = 1;
constexpr int kUsage = 2;
constexpr std::size_t kMaxTextFile = 1 << 20;  // plans and bundles: the API's body limit

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int usage(const std::string& what, const std::string& message) {
  std::cerr << "tranche " << what << ": " << message << "\n";
  return kUsage;
}

// The server's refusal as it gave it: status, stable code, message (and every
// contract violation).
int api_failure(const std::string& what, const ApiReply& r) {
  std::cerr << "tranche " << what << ": " << r.status << " " << r.error_code << ": " << r.error_message << "\n";
  for (const auto& v : r.violations) std::cerr << "  violation: " << v << "\n";
  if (r.status == 401) {
    // connect() takes TRANCHE_TOKEN over the login file: logging in again would not help.
    const char* env = std::getenv("TRANCHE_TOKEN");
    if (what != "login" && env != nullptr && *env != '\0') {
      std::cerr << "  (the token came from the environment variable TRANCHE_TOKEN: set it to a valid operator "
                   "token, or unset it to use the login in "
                << cli_config_path() << ")\n";
    } else {
      std::cerr << "  (log in again: tranche login --server URL --token T; config " << cli_config_path() << ")\n";
    }
  }
  return kApiError;
}

int transport_failure(const std::string& what, const core::Error& e) {
  std::cerr << "tranche " << what << ": " << e.message << "\n";
  return kApiError;
}

// The server and token: the config file written by `tranche login`, each
// overridden by TRANCHE_SERVER / TRANCHE_TOKEN when set.
core::Result<ApiClient> connect(const std::string& what) {
  CliConfig c;
  const std::string path = cli_config_path();
  auto loaded = load_cli_config(path);
  if (loaded) {
    c = *loaded;
  } else if (loaded.error().code != core::ErrorCode::kNotFound) {
    return loaded.error();
  }
  if (const char* s = std::getenv("TRANCHE_SERVER"); s != nullptr && *s != '\0') c.server = s;
  if (const char* t = std::getenv("TRANCHE_TOKEN"); t != nullptr && *t != '\0') c.token = t;
  if (c.server.empty() || c.token.empty()) {
    return core::make_error(core::ErrorCode::kNotFound,
                            "not logged in: run `tranche login --server URL --token T` (config " + path +
                                "), or set TRANCHE_SERVER and TRANCHE_TOKEN");
  }
  (void)what;
  return ApiClient(c.server, c.token);
}

core::Result<std::string> read_text(const std::string& path, const std::string& what) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return core::make_error(core::ErrorCode::kNotFound, what + " " + path + ": " + ec.message());
  if (size > kMaxTextFile) {
    return core::make_error(core::ErrorCode::kTooLarge, what + " " + path + ": larger than 1 MiB");
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in && !in.eof()) return core::make_error(core::ErrorCode::kNotFound, what + " " + path + ": unreadable");
  return text.str();
}

struct FileDigest {
  std::uint64_t length = 0;
  std::string sha256;
};

// Streams the file through SHA-256: a target may be far larger than memory.
core::Result<FileDigest> digest_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return core::make_error(core::ErrorCode::kNotFound, "--target " + path + ": cannot open");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return core::make_error(core::ErrorCode::kInvalidArgument, "sha256: cannot start");
  }
  FileDigest d;
  std::string buf(1 << 20, '\0');
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto n = static_cast<std::size_t>(in.gcount());
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buf.data(), n);
    d.length += n;
  }
  if (in.bad()) return core::make_error(core::ErrorCode::kNotFound, "--target " + path + ": read error");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  static const char* kHex = "0123456789abcdef";
  for (unsigned int i = 0; i < len; ++i) {
    d.sha256 += kHex[md[i] >> 4];
    d.sha256 += kHex[md[i] & 15];
  }
  return d;
}

const json::object* as_object(const json::value& v) { return v.is_object() ? &v.as_object() : nullptr; }

json::value parse_body(const ApiReply& r) {
  auto parsed = tuf::parse_document(r.body, kMaxAnswerBytes);
  return parsed ? std::move(*parsed) : json::value();
}

// Sends one request and, on a refusal or a transport failure, prints it; the
// caller returns `exit_code` then.
struct Call {
  bool ok = false;
  int exit_code = 0;
  ApiReply reply;
  json::value body;
};

Call call(const ApiClient& api, const std::string& what, const std::string& method, const std::string& path,
          const std::string& body = "") {
  Call c;
  auto r = api.request(method, path, body);
  if (!r) {
    c.exit_code = transport_failure(what, r.error());
    return c;
  }
  c.reply = *r;
  if (!r->ok()) {
    c.exit_code = api_failure(what, *r);
    return c;
  }
  c.body = parse_body(*r);
  if (as_object(c.body) == nullptr) {
    std::cerr << "tranche " << what << ": the server's answer is not a JSON object: " << r->body.substr(0, 200)
              << "\n";
    c.exit_code = kApiError;
    return c;
  }
  c.ok = true;
  return c;
}

void print_json(const ApiReply& r) {
  std::cout << r.body;
  if (r.body.empty() || r.body.back() != '\n') std::cout << "\n";
}

int run_login(const OpsArgs& a) {
  ApiClient api(a.server, a.token);
  // A token the server does not know is refused here, before it is kept.
  Call c = call(api, "login", "GET", "/v1/rollouts");
  if (!c.ok) return c.exit_code;
  const std::string path = cli_config_path();
  if (auto st = save_cli_config(path, CliConfig{api.server(), a.token}); !st) {
    return usage("login", st.error().message);
  }
  if (a.json) {
    std::cout << json::serialize(json::object{{"server", api.server()}, {"config", path}}) << "\n";
  } else {
    std::cout << "logged in to " << api.server() << " (token accepted); kept in " << path << " (mode 0600)\n";
  }
  return 0;
}

int run_publish(const OpsArgs& a) {
  auto api = connect("release publish");
  if (!api) return usage("release publish", api.error().message);
  auto digest = digest_file(a.target);
  if (!digest) return usage("release publish", digest.error().message);
  std::string path = a.target_path.empty()
                         ? a.channel + "/" + std::filesystem::path(a.target).filename().string()
                         : a.target_path;
  json::object body{{"channel", a.channel},
                    {"version", a.version},
                    {"targets", json::array{json::object{{"path", path},
                                                         {"length", digest->length},
                                                         {"sha256", digest->sha256}}}}};
  if (!a.bundle.empty()) {
    auto text = read_text(a.bundle, "--bundle");
    if (!text) return usage("release publish", text.error().message);
    body["content_bundle"] = *text;
  }
  if (a.skip_contract_check) body["skip_contract_check"] = true;
  Call c = call(*api, "release publish", "POST", "/v1/releases", json::serialize(body));
  if (!c.ok) return c.exit_code;
  if (a.json) {
    print_json(c.reply);
    return 0;
  }
  const auto& o = c.body.as_object();
  const auto* check = o.if_contains("contract_check");
  std::cout << "registered " << a.channel << " " << a.version << ": " << path << ", " << digest->length
            << " bytes, sha256 " << digest->sha256 << "\n"
            << "contract check: "
            << (check != nullptr && check->is_string() ? std::string(check->as_string()) : "?")
            << (a.skip_contract_check ? " (bypassed by --skip-contract-check; recorded in the audit log)" : "")
            << "\n";
  return 0;
}

// GET /v1/fleet for the progress bars; a failure there only loses the device counts.
std::unique_ptr<json::object> fetch_fleet(const ApiClient& api) {
  auto r = api.request("GET", "/v1/fleet");
  if (!r || !r->ok()) return nullptr;
  json::value v = parse_body(*r);
  return v.is_object() ? std::make_unique<json::object>(v.as_object()) : nullptr;
}

int run_start(const OpsArgs& a) {
  auto api = connect("rollout start");
  if (!api) return usage("rollout start", api.error().message);
  auto plan = read_text(a.plan_file, "-f");
  if (!plan) return usage("rollout start", plan.error().message);
  // Checked here first, as `tranche plan check` does, so an error names the
  // file and its line ("rings.yaml:5: …"), not the request's plan_yaml field.
  if (auto parsed = config::parse_plan(*plan, a.plan_file); !parsed) {
    std::cerr << "tranche rollout start: " << parsed.error().message << "\n";
    return 1;
  }
  json::object body{{"channel", a.channel}, {"version", a.version}, {"plan_yaml", *plan}};
  if (!a.id.empty()) body["id"] = a.id;
  Call c = call(*api, "rollout start", "POST", "/v1/rollouts", json::serialize(body));
  if (!c.ok) return c.exit_code;
  if (a.json) {
    print_json(c.reply);
    return 0;
  }
  const auto& r = c.body.as_object();
  std::cout << "started rollout " << std::string(r.at("id").as_string()) << "\n";
  auto fleet = fetch_fleet(*api);
  std::cout << render_rollout(r, fleet.get(), now_ms());
  return 0;
}

// Completed, rolled back or aborted (core::is_final); an unknown state is not final.
bool final_state(const json::object& r) {
  const auto state = rollout_state(r);
  return state && core::is_final(*state);
}

// One screen of `rollout status`: the rollout, or the list and every one not final
// (pending or live). Returns the exit code, and whether the watched rollout has ended.
int status_once(const ApiClient& api, const OpsArgs& a, bool* ended) {
  if (!a.id.empty()) {
    Call c = call(api, "rollout status", "GET", "/v1/rollouts/" + url_encode(a.id));
    if (!c.ok) return c.exit_code;
    *ended = final_state(c.body.as_object());
    if (a.json) {
      print_json(c.reply);
      return 0;
    }
    auto fleet = fetch_fleet(api);
    std::cout << render_rollout(c.body.as_object(), fleet.get(), now_ms());
    return 0;
  }
  Call c = call(api, "rollout status", "GET", "/v1/rollouts");
  if (!c.ok) return c.exit_code;
  if (a.json) {
    print_json(c.reply);
    return 0;
  }
  const auto* list = c.body.as_object().if_contains("rollouts");
  if (list == nullptr || !list->is_array() || list->as_array().empty()) {
    std::cout << "no rollouts (start one: tranche rollout start -f plan.yaml --channel C --version V)\n";
    return 0;
  }
  for (const auto& r : list->as_array()) {
    if (r.is_object()) std::cout << render_rollout_line(r.as_object());
  }
  auto fleet = fetch_fleet(api);
  for (const auto& r : list->as_array()) {
    if (r.is_object() && !final_state(r.as_object())) {
      std::cout << "\n" << render_rollout(r.as_object(), fleet.get(), now_ms());
    }
  }
  return 0;
}

int run_status(const OpsArgs& a) {
  auto api = connect("rollout status");
  if (!api) return usage("rollout status", api.error().message);
  bool ended = false;
  if (!a.watch) return status_once(*api, a, &ended);
  // --watch: redraw every second; with an ID, stop once the rollout is final.
  const bool tty = ::isatty(STDOUT_FILENO) == 1;
  for (;;) {
    if (tty && !a.json) std::cout << "\x1b[H\x1b[2J";
    const int rc = status_once(*api, a, &ended);
    if (rc != 0) return rc;
    if (!a.json) {
      std::cout << "\n" << (tty ? "" : "--- ") << "refreshed every 1 s"
                << (a.id.empty() ? "; Ctrl-C to stop" : "; stops when the rollout ends (or Ctrl-C)") << "\n";
    }
    std::cout.flush();
    if (ended) return 0;
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

int run_action(const OpsArgs& a, const std::string& action) {
  const std::string what = "rollout " + action;
  auto api = connect(what);
  if (!api) return usage(what, api.error().message);
  json::object body;
  if (!a.reason.empty()) body["reason"] = a.reason;
  Call c = call(*api, what, "POST", "/v1/rollouts/" + url_encode(a.id) + "/" + action, json::serialize(body));
  if (!c.ok) return c.exit_code;
  if (a.json) {
    print_json(c.reply);
    return 0;
  }
  const auto& r = c.body.as_object();
  const auto& status = r.at("status").as_object();
  std::string allowed;
  for (const auto& x : r.at("allowed_actions").as_array()) {
    allowed += (allowed.empty() ? "" : ", ") + std::string(x.as_string());
  }
  std::cout << a.id << ": " << action << " done; now " << std::string(status.at("state").as_string())
            << " (generation " << r.at("generation").as_int64() << ")\n"
            << "why: " << std::string(status.at("reason").as_string()) << "\n"
            << "next: " << (allowed.empty() ? std::string("nothing (final state)") : allowed) << "\n";
  return 0;
}

int run_fleet(const OpsArgs& a) {
  auto api = connect("fleet");
  if (!api) return usage("fleet", api.error().message);
  Call c = call(*api, "fleet", "GET", "/v1/fleet");
  if (!c.ok) return c.exit_code;
  if (a.json) {
    print_json(c.reply);
  } else {
    std::cout << render_fleet(c.body.as_object());
  }
  return 0;
}

int run_device(const OpsArgs& a) {
  if (a.id.empty()) return usage("device", "give a command (list, show, events) or a device ID; see --help");
  auto api = connect("device");
  if (!api) return usage("device", api.error().message);
  const std::string path =
      device_path(a.id, a.tenant, "", a.version.empty() ? "" : "version=" + url_encode(a.version));
  Call c = call(*api, "device", "GET", path);
  if (!c.ok) {
    // `tranche device lsit`: taken for a device id, but it was a command.
    if (c.reply.status == 404) {
      if (const auto guess = config::closest_match(a.id, {"list", "show", "events"}); !guess.empty()) {
        std::cerr << "  (did you mean `tranche device " << guess << "`?)\n";
      }
    }
    return c.exit_code;
  }
  if (a.json) {
    print_json(c.reply);
  } else {
    std::cout << render_device(c.body.as_object(), now_ms());
  }
  return 0;
}

void add_json_flag(CLI::App* cmd, OpsArgs& a) {
  cmd->add_flag("--json", a.json, "print the API's JSON answer as it came, for scripts");
}

}  // namespace

void add_ops_commands(CLI::App& app, OpsArgs& a) {
  a.login = app.add_subcommand(
      "login",
      "Keep the server URL and an operator token for the other commands, in\n"
      "$TRANCHE_CONFIG or ~/.config/tranche/cli.json (mode 0600). The token is\n"
      "checked against the server first. TRANCHE_SERVER and TRANCHE_TOKEN, when set,\n"
      "override the file in every command.");
  a.login->add_option("--server", a.server, "the server's base URL, e.g. http://127.0.0.1:8080")->required();
  a.login->add_option("--token", a.token, "an operator token (tro_..., or the server's --admin-token)")
      ->required();
  add_json_flag(a.login, a);

  CLI::App* release = app.get_subcommand("release");
  a.publish = release->add_subcommand(
      "publish",
      "Register a release with the server (POST /v1/releases): the target file's length\n"
      "and SHA-256 are computed here. With --bundle, the server checks the content\n"
      "against the channel's consumer interface and refuses a violation (422, every\n"
      "violation listed). Needs role operator; --skip-contract-check needs admin.");
  a.publish->add_option("--channel", a.channel, "the channel, e.g. content")->required();
  a.publish->add_option("--version", a.version, "the release's version, e.g. 1.2.0")->required();
  a.publish->add_option("--target", a.target, "the file devices install")->required();
  a.publish->add_option("--target-path", a.target_path,
                        "the target's path in the repository (default CHANNEL/FILENAME)");
  a.publish->add_option("--bundle", a.bundle, "a tranche-content/1 bundle to check (docs/content.md)");
  a.publish->add_flag("--skip-contract-check", a.skip_contract_check,
                      "register without the contract check (admin; recorded in the audit log)");
  add_json_flag(a.publish, a);

  CLI::App* rollout = app.add_subcommand("rollout", "Start, watch and steer rollouts");
  rollout->require_subcommand(1);
  a.start = rollout->add_subcommand(
      "start",
      "Start a rollout of a registered release from a plan file (docs/plan.md).\n"
      "One live rollout per channel. Needs role operator.");
  a.start->add_option("-f,--file,--plan", a.plan_file, "the plan (YAML, docs/plan.md)")->required()->check(CLI::ExistingFile);
  a.start->add_option("--channel", a.channel, "the release's channel")->required();
  a.start->add_option("--version", a.version, "the release's version")->required();
  a.start->add_option("--id", a.id, "the rollout's id (default: r-<8 hex>, chosen by the server)");
  add_json_flag(a.start, a);

  a.status = rollout->add_subcommand(
      "status",
      "Where a rollout stands: per-stage progress bars (devices running the version\n"
      "against each stage's target), bake time, the health gate (failures of exposed\n"
      "and control devices, the log likelihood ratio against the halt threshold) and\n"
      "what the rollout accepts next. Without ID: every rollout, and each live one\n"
      "in full.");
  a.status->add_option("ID", a.id, "the rollout (default: all)");
  a.status->add_flag("-w,--watch", a.watch,
                     "redraw every second; with ID, stop when the rollout ends (--json: one answer per second)");
  add_json_flag(a.status, a);

  const std::pair<const char*, const char*> kActions[] = {
      {"pause", "Stop dispatching the release (running or halted -> paused). Role operator."},
      {"resume", "Go back to the state the pause came from. Role operator."},
      {"promote", "Move to the next stage now (the last stage: complete). Role operator; admin when the\n"
                  "next stage admits critical devices."},
      {"abort", "End the rollout; devices keep what they run. Role admin."},
      {"rollback", "Send every device on the version back to the previous one. Role admin."},
  };
  for (const auto& [name, help] : kActions) {
    CLI::App* cmd = rollout->add_subcommand(name, help);
    cmd->add_option("ID", a.id, "the rollout")->required();
    cmd->add_option("--reason", a.reason, "why (kept with the transition and in the audit log)");
    add_json_flag(cmd, a);
    a.actions[name] = cmd;
  }

  a.fleet = app.add_subcommand("fleet", "The fleet: devices, online, by version, by rollout stage, by tenant");
  add_json_flag(a.fleet, a);

  a.device = app.add_subcommand(
      "device",
      "Devices: list (a page of the fleet, filtered), show ID (as the server sees it, per\n"
      "channel what it should run and why), events ID. `tranche device ID [--tenant T] [--version V]` is\n"
      "show; with --version V, one sentence on why it has, or has not, got V.");
  a.device->add_option("ID", a.id, "the device id (the same as `tranche device show ID`)");
  a.device->add_option("--tenant", a.tenant, "the device's tenant (needed when several have such an id)");
  a.device->add_option("--version", a.version, "the version to ask about");
  add_json_flag(a.device, a);
}

bool ops_command_parsed(const OpsArgs& a) {
  for (CLI::App* c : {a.login, a.publish, a.start, a.status, a.fleet, a.device}) {
    if (c != nullptr && c->parsed()) return true;
  }
  for (const auto& [name, c] : a.actions) {
    if (c->parsed()) return true;
  }
  return false;
}

int run_ops_command(const OpsArgs& a) {
  if (a.login->parsed()) return run_login(a);
  if (a.publish->parsed()) return run_publish(a);
  if (a.start->parsed()) return run_start(a);
  if (a.status->parsed()) return run_status(a);
  if (a.fleet->parsed()) return run_fleet(a);
  if (a.device->parsed()) return run_device(a);
  for (const auto& [name, c] : a.actions) {
    if (c->parsed()) return run_action(a, name);
  }
  return kUsage;
}

int ops_request(const std::string& what, const std::string& method, const std::string& path,
                const std::string& body, std::string* answer) {
  auto api = connect(what);
  if (!api) return usage(what, api.error().message);
  Call c = call(*api, what, method, path, body);
  if (!c.ok) return c.exit_code;
  *answer = c.reply.body;
  return 0;
}

}  // namespace tranche::cli
