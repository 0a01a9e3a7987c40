// Command-line usage errors, the same in tranche, tranche-server and
// tranche-agent: an unknown option or subcommand is named, with the closest
// valid one suggested ("did you mean --channel?"), and every usage error exits
// 2 (CLI11's own codes, 106..127, are not the tools' convention). CLI11 parses;
// this only explains what it could not.
#pragma once

#include <CLI/CLI.hpp>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tranche::config {

constexpr int kUsageExit = 2;

// Optimal string alignment distance: insertions, deletions, substitutions and
// swaps of two neighbours each cost 1 ("--chanel" -> "--channel" is 1).
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word`, when it is close enough to be what was
// meant (within a third of the word's length, at least 1; or the word is a
// prefix of exactly one candidate); "" otherwise.
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

// "tranche rollout start: unknown option --chanel; did you mean --channel?"
// for the first argument CLI11 left over in `app` or a subcommand parsed, or
// "" when nothing was left over. `app` has been through parse().
std::string unknown_argument_message(const CLI::App& app);

// app.parse(argc, argv), with usage errors explained: nullopt when the command
// line parsed and the program goes on; otherwise the exit code (0 after --help
// or --version, kUsageExit after a usage error, printed to stderr).
std::optional<int> parse_command_line(CLI::App& app, int argc, const char* const* argv);

}  // namespace tranche::config
