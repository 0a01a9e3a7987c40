#include "config/usage.h"

#include <algorithm>
#include <iostream>

namespace tranche::config {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  // Three rows of the dynamic programme: two back for a swap.
  std::vector<std::size_t> before(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        cur[j] = std::min(cur[j], before[j - 2] + 1);
      }
    }
    before.swap(prev);
    prev.swap(cur);
  }
  return prev[b.size()];
}

namespace {

std::string_view without_dashes(std::string_view s) {
  while (!s.empty() && s.front() == '-') s.remove_prefix(1);
  return s;
}

}  // namespace

std::string closest_match(std::string_view word, const std::vector<std::string>& candidates) {
  const std::string_view bare = without_dashes(word);
  if (bare.empty()) return {};
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(1, bare.size() / 3) + 1;
  for (const auto& c : candidates) {
    const std::size_t d = edit_distance(bare, without_dashes(c));
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  if (!best.empty() || bare.size() < 3) return best;
  // Nothing close: a unique completion ("--ver" for "--version").
  std::string prefixed;
  for (const auto& c : candidates) {
    if (without_dashes(c).substr(0, bare.size()) != bare) continue;
    if (!prefixed.empty()) return {};
    prefixed = c;
  }
  return prefixed;
}

namespace {

// "tranche rollout start": the names from the root down.
std::string command_path(const CLI::App& app) {
  std::string path = app.get_name();
  for (const CLI::App* p = app.get_parent(); p != nullptr; p = p->get_parent())
    path = p->get_name() + " " + path;
  return path;
}

// Every spelling of the options `app` takes: its own and, through fallthrough,
// its parents'.
std::vector<std::string> option_names(const CLI::App& app) {
  std::vector<std::string> out;
  for (const CLI::App* a = &app; a != nullptr;
       a = a->get_fallthrough() ? a->get_parent() : nullptr) {
    for (const CLI::Option* o : a->get_options()) {
      for (const auto& l : o->get_lnames()) out.push_back("--" + l);
      for (const auto& s : o->get_snames()) out.push_back("-" + s);
    }
  }
  return out;
}

std::vector<std::string> subcommand_names(const CLI::App& app) {
  std::vector<std::string> out;
  for (const CLI::App* s : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (!s->get_name().empty()) out.push_back(s->get_name());
  }
  return out;
}

std::string explain(const CLI::App& app, const std::string& arg) {
  const std::string where = command_path(app);
  if (arg.size() > 1 && arg.front() == '-') {
    const std::string name = arg.substr(0, arg.find('='));  // --chanel=content
    const std::string guess = closest_match(name, option_names(app));
    return where + ": unknown option " + name +
           (guess.empty() ? "" : "; did you mean " + guess + "?") + "\nRun '" + where +
           " --help' for its options.\n";
  }
  const auto subs = subcommand_names(app);
  if (subs.empty()) {
    return where + ": unexpected argument '" + arg + "'\nRun '" + where +
           " --help' for its arguments.\n";
  }
  const std::string guess = closest_match(arg, subs);
  std::string list;
  for (const auto& s : subs) list += (list.empty() ? "" : ", ") + s;
  return where + ": unknown command '" + arg + "'" +
         (guess.empty() ? "" : "; did you mean '" + where + " " + guess + "'?") +
         "\n(commands: " + list + ")\n";
}

// The deepest parsed app first: its leftovers are the likeliest typo.
std::string first_unknown(const CLI::App& app) {
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App* s) { return s->parsed(); })) {
    if (auto m = first_unknown(*sub); !m.empty()) return m;
  }
  const auto left = app.remaining(false);
  return left.empty() ? std::string() : explain(app, left.front());
}

// The deepest subcommand parsed: where the error is.
const CLI::App& deepest(const CLI::App& app) {
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App* s) { return s->parsed(); })) {
    return deepest(*sub);
  }
  return app;
}

}  // namespace

std::string unknown_argument_message(const CLI::App& app) {
  return first_unknown(app);
}

std::optional<int> parse_command_line(CLI::App& app, int argc, const char* const* argv) {
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success))
      return app.exit(e);  // --help, --version
    // A left-over argument explains most errors CLI11 reports first (a
    // required --channel is "missing" because --chanel was typed).
    if (const std::string m = unknown_argument_message(app); !m.empty()) {
      std::cerr << m;
    } else {
      // "tranche rollout start: --file: File does not exist: rings.yml"
      const std::string where = command_path(deepest(app));
      std::cerr << where << ": " << e.what() << "\nRun '" << where
                << " --help' for its arguments.\n";
    }
    return kUsageExit;
  }
}

}  // namespace tranche::config
