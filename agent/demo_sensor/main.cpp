// tranche-demo-sensor — a stand-in for a security sensor (issue 5 §5,
// docs/agent.md). Loads the content bundle(s) from CONTENT (a file, or every
// *.yaml file of a directory: the agent passes the active slot) and evaluates
// their template instances against a synthetic event every --interval-ms,
// through the interpreter of interpreter.h, which supplies 20 fields to a
// template type declaring 21. Content that reads field 21 kills the process
// with SIGSEGV on the first event. ScheduledTaskRun (8 supplied, 9 declared) is
// only supplied by every --rare-every-th event: content reading its field 9
// runs fine for hours, then dies the same way (a late crash, past any trial).
//
//   tranche-demo-sensor CONTENT [--heartbeat FILE] [--interval-ms 1000] [--events N]
//                       [--rare-every 3600]
//   tranche-demo-sensor --health FILE [--max-age-ms 5000]
//
// Health: while running, the sensor rewrites FILE (--heartbeat) after every
// event; `--health FILE` exits 0 when FILE was written within --max-age-ms,
// 1 otherwise (the agent's `health_command`). SIGTERM or SIGINT: exit 0.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "agent/demo_sensor/interpreter.h"
#include "config/content_files.h"

namespace {

using tranche::core::ContentBundle;
namespace config = tranche::config;
namespace sensor = tranche::sensor;

volatile sig_atomic_t g_stop = 0;  // set by SIGTERM/SIGINT only

extern "C" void on_stop(int /*sig*/) {
  g_stop = 1;
}

void say(const std::string& line) {
  std::fprintf(stderr, "tranche-demo-sensor: %s\n", line.c_str());
  std::fflush(stderr);
}

std::vector<std::string> content_files(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  if (!S_ISDIR(st.st_mode)) return {path};
  std::vector<std::string> files;
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return {};
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".yaml") == 0 && name[0] != '.') {
      files.push_back(path + "/" + name);
    }
  }
  ::closedir(d);
  std::sort(files.begin(), files.end());
  return files;
}

int health(const std::string& file, std::int64_t max_age_ms) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    say("unhealthy: no heartbeat at " + file);
    return 1;
  }
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  const std::int64_t age_ms = (now.tv_sec - st.st_mtim.tv_sec) * 1000 +
                              (now.tv_nsec - st.st_mtim.tv_nsec) / 1'000'000;
  if (age_ms > max_age_ms) {
    say("unhealthy: last heartbeat " + std::to_string(age_ms) + " ms ago");
    return 1;
  }
  return 0;
}

void beat(const std::string& file, std::uint64_t events) {
  if (file.empty()) return;
  const std::string tmp = file + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  const std::string text = std::to_string(events) + "\n";
  const ssize_t n = ::write(fd, text.data(), text.size());
  ::close(fd);
  if (n == static_cast<ssize_t>(text.size())) ::rename(tmp.c_str(), file.c_str());
}

int run(const std::string& content, const std::string& heartbeat, std::int64_t interval_ms,
        std::uint64_t max_events, std::uint64_t rare_every) {
  ContentBundle bundle;
  const auto files = content_files(content);
  if (files.empty()) {
    say("no content at " + content);
    return 2;
  }
  for (const std::string& f : files) {
    auto b = config::load_content_bundle_file(f);
    if (!b) {
      say("cannot load content: " + b.error().to_string());
      return 2;
    }
    for (auto& i : b->instances) bundle.instances.push_back(std::move(i));
  }
  say("loaded " + std::to_string(bundle.instances.size()) + " template instances from " +
      std::to_string(files.size()) + " file(s) in " + content);
  sensor::Interpreter interpreter(std::move(bundle), rare_every);

  struct sigaction sa {};
  sa.sa_handler = on_stop;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);

  std::uint64_t events = 0;
  std::uint64_t matched = 0;
  while (g_stop == 0 && (max_events == 0 || events < max_events)) {
    const sensor::Evaluation e = interpreter.evaluate_event(events);
    ++events;
    matched += e.matched;
    beat(heartbeat, events);
    if (events == 1) say("first event evaluated: " + std::to_string(e.instances) + " instances");
    // Sleeps; a signal ends the sleep early (no busy polling).
    timespec ts{static_cast<time_t>(interval_ms / 1000),
                static_cast<long>((interval_ms % 1000) * 1'000'000)};  // NOLINT(google-runtime-int)
    ::nanosleep(&ts, nullptr);
  }
  say("stopping after " + std::to_string(events) + " events, " + std::to_string(matched) +
      " matches");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {  // NOLINT(bugprone-exception-escape)
  CLI::App app{
      "tranche-demo-sensor: a stand-in security sensor whose content interpreter supplies\n"
      "20 fields to a template type declaring 21 (the 2024 bug, on purpose). Content\n"
      "reading field 21 dies of SIGSEGV. docs/agent.md.",
      "tranche-demo-sensor"};
  std::string content;
  std::string heartbeat;
  std::string health_file;
  std::int64_t interval_ms = 1000;
  std::int64_t max_age_ms = 5000;
  std::uint64_t max_events = 0;
  std::uint64_t rare_every = 3600;
  app.add_option("content", content, "content bundle file, or a directory of *.yaml bundles");
  app.add_option("--heartbeat", heartbeat, "file rewritten after every event");
  app.add_option("--interval-ms", interval_ms, "time between synthetic events")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{3'600'000}));
  app.add_option("--events", max_events, "stop after N events (0: run until SIGTERM)");
  app.add_option("--rare-every", rare_every,
                 "every N-th event is also a ScheduledTaskRun event (3600: hourly at 1 s)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1'000'000'000}));
  app.add_option("--health", health_file, "check FILE's heartbeat and exit 0 (fresh) or 1");
  app.add_option("--max-age-ms", max_age_ms, "with --health: the oldest heartbeat that counts");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (!health_file.empty()) return health(health_file, max_age_ms);
  if (content.empty()) {
    say("CONTENT is required (or --health FILE)");
    return 2;
  }
  return run(content, heartbeat, interval_ms, max_events, rare_every);
}
