// config/usage.h: the edit distance, the suggestion, and the explanation of an
// unknown option or command on a small CLI11 app shaped like the tools'.
#include "config/usage.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tranche::config {
namespace {

TEST(EditDistance, CountsInsertionsDeletionsSubstitutionsAndSwaps) {
  EXPECT_EQ(edit_distance("", ""), 0u);
  EXPECT_EQ(edit_distance("abc", ""), 3u);
  EXPECT_EQ(edit_distance("chanel", "channel"), 1u);   // insertion
  EXPECT_EQ(edit_distance("versoin", "version"), 1u);  // swap of neighbours
  EXPECT_EQ(edit_distance("prot", "port"), 1u);
  EXPECT_EQ(edit_distance("plan", "file"), 4u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}

TEST(ClosestMatch, SuggestsOnlyWhatIsCloseOrAUniqueCompletion) {
  const std::vector<std::string> options = {"--channel", "--version", "--file", "--json", "-f"};
  EXPECT_EQ(closest_match("--chanel", options), "--channel");
  EXPECT_EQ(closest_match("--jsno", options), "--json");
  EXPECT_EQ(closest_match("--ver", options), "--version");  // a unique prefix
  EXPECT_EQ(closest_match("--frobnicate", options), "");
  EXPECT_EQ(closest_match("--plan", options), "");
  EXPECT_EQ(closest_match("", options), "");
  EXPECT_EQ(closest_match("strat", {"start", "status", "pause"}), "start");
}

// tranche-like: `rollout start --channel C` and `fleet`.
struct App {
  CLI::App app{"test", "tool"};
  std::string channel;
  App() {
    auto* rollout = app.add_subcommand("rollout", "rollouts");
    rollout->require_subcommand(1);
    rollout->add_subcommand("start", "start")->add_option("--channel", channel)->required();
    rollout->add_subcommand("status", "status");
    app.add_subcommand("fleet", "fleet")->add_flag("--json");
    app.require_subcommand(1);
  }
  std::optional<int> parse(std::vector<const char*> argv) {
    argv.insert(argv.begin(), "tool");
    return parse_command_line(app, static_cast<int>(argv.size()), argv.data());
  }
};

TEST(ParseCommandLine, AnUnknownOptionIsNamedWithItsSuggestionAndExits2) {
  App a;
  ::testing::internal::CaptureStderr();
  // --channel is also missing: the typo is what gets explained.
  EXPECT_EQ(a.parse({"rollout", "start", "--chanel", "c"}), kUsageExit);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("tool rollout start: unknown option --chanel; did you mean --channel?"),
            std::string::npos)
      << err;
}

TEST(ParseCommandLine, AnUnknownCommandIsNamedWithItsSuggestion) {
  App a;
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(a.parse({"rollout", "strat"}), kUsageExit);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("tool rollout: unknown command 'strat'; did you mean 'tool rollout start'?"),
            std::string::npos)
      << err;
  App b;
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(b.parse({"flet"}), kUsageExit);
  EXPECT_NE(::testing::internal::GetCapturedStderr().find("did you mean 'tool fleet'?"),
            std::string::npos);
}

TEST(ParseCommandLine, OtherUsageErrorsExit2AndHelpExits0) {
  App a;
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(a.parse({"rollout", "start"}), kUsageExit);  // --channel is required
  EXPECT_NE(::testing::internal::GetCapturedStderr().find("--channel"), std::string::npos);
  App b;
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(b.parse({"--help"}), 0);
  (void)::testing::internal::GetCapturedStdout();
  App c;
  EXPECT_EQ(c.parse({"rollout", "start", "--channel", "content"}), std::nullopt);
  EXPECT_EQ(c.channel, "content");
}

}  // namespace
}  // namespace tranche::config
