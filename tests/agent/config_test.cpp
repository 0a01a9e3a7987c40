// The agent's configuration file (agent/config.h): a minimal file parses, and
// values that would turn the agent against the server are refused with the key
// named.
#include <gtest/gtest.h>

#include <string>
#include <tuple>

#include "agent/config.h"

namespace tranche::agent {
namespace {

std::string config(const std::string& checkin) {
  return "server_url: http://127.0.0.1:8080\n"
         "tenant: acme\n"
         "enrollment_key: acme-enrollment-key-0123\n"
         "device_id: d-1\n"
         "data_dir: /var/lib/tranche-agent\n"
         "channel: content\n"
         "contract_check: false\n"
         "tuf: {root: /etc/tranche/root.json}\n"
         "service: {command: [/usr/bin/sensor, \"{slot}\"]}\n" +
         checkin;
}

TEST(AgentConfig, AMinimalFileParsesWithTheDefaults) {
  auto s = parse_agent_config(config(""), "agent.yaml");
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  EXPECT_EQ(s->max_backoff, 5 * core::kMinute);
  EXPECT_EQ(s->tuf_url, "http://127.0.0.1:8080/tuf");
}

TEST(AgentConfig, ABackoffBelowASecondIsRefused) {
  // 0s gave 114 retries in 5 s against a failing server.
  for (const char* v : {"0s", "500ms"}) {
    auto s = parse_agent_config(config(std::string("checkin: {max_backoff: ") + v + "}\n"), "agent.yaml");
    ASSERT_FALSE(s.ok()) << v;
    EXPECT_NE(s.error().message.find("checkin.max_backoff"), std::string::npos) << s.error().to_string();
    EXPECT_NE(s.error().message.find("agent.yaml"), std::string::npos) << s.error().to_string();
  }
  auto ok = parse_agent_config(config("checkin: {max_backoff: 1s}\n"), "agent.yaml");
  EXPECT_TRUE(ok.ok()) << ok.error().to_string();
}

// A minimal file with one more entry ("health_interval: 0s") in `section`.
std::string config_with(const std::string& section, const std::string& entry) {
  if (section == "service") {
    std::string c = config("");
    const std::string line = "service: {command: [/usr/bin/sensor, \"{slot}\"]}\n";
    const auto at = c.find(line);
    return c.replace(at, line.size(),
                     "service: {command: [/usr/bin/sensor, \"{slot}\"], " + entry + "}\n");
  }
  return config(section + ": {" + entry + "}\n");
}

struct Range {
  const char* section;
  const char* key;
  const char* lowest;     // the least accepted
  const char* too_low;    // refused (nullptr: no lower bound besides 0)
  const char* highest;    // the most accepted
  const char* too_high;   // refused
};

// docs/agent.md, "Ranges".
constexpr Range kRanges[] = {
    {"service", "health_interval", "100ms", "99ms", "1h", "1h1ms"},
    {"service", "health_timeout", "100ms", "0s", "1h", "2h"},
    {"service", "stop_timeout", "0s", nullptr, "1h", "1h1ms"},
    {"trial", "window", "0s", nullptr, "30d", "30d1ms"},
    {"checkin", "interval", "1s", "999ms", "1d", "1d1ms"},
    {"checkin", "long_poll", "0s", nullptr, "1h", "25h"},
    {"checkin", "max_backoff", "1s", "0s", "1d", "106751991167d"},
    {"checkin", "http_timeout", "1s", "0s", "1h", "1h1ms"},
    {"download", "timeout", "1s", "0s", "1d", "9223372036854775807ms"},
    {"download", "retry_backoff", "1s", "0s", "1d", "1d1ms"},
};

TEST(AgentConfig, EveryDurationKeyIsCheckedAgainstItsRange) {
  for (const Range& r : kRanges) {
    const std::string key = std::string(r.section) + "." + r.key;
    for (const char* ok : {r.lowest, r.highest}) {
      auto s = parse_agent_config(config_with(r.section, std::string(r.key) + ": " + ok), "agent.yaml");
      EXPECT_TRUE(s.ok()) << key << ": " << ok << " refused: " << s.error().to_string();
    }
    for (const char* bad : {r.too_low, r.too_high}) {
      if (bad == nullptr) continue;
      auto s = parse_agent_config(config_with(r.section, std::string(r.key) + ": " + bad), "agent.yaml");
      ASSERT_FALSE(s.ok()) << key << ": " << bad << " accepted";
      // The file, the line (the entry's) and the key, then the range.
      const std::string& m = s.error().message;
      EXPECT_EQ(m.rfind("agent.yaml:", 0), 0U) << m;
      EXPECT_NE(m.find(key + ":"), std::string::npos) << m;
      EXPECT_NE(m.find("out of range [" + std::string(r.lowest) + ", " + r.highest + "]"),
                std::string::npos)
          << m;
    }
  }
}

TEST(AgentConfig, TheDefaultsAreInRange) {
  auto s = parse_agent_config(config(""), "agent.yaml");
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  EXPECT_GE(s->checkin_interval, kMinCheckinWait);
  EXPECT_LE(s->checkin_interval, kMaxCheckinWait);
  EXPECT_GE(s->retry_backoff, core::kSecond);
  EXPECT_GE(s->http_timeout, core::kSecond);
  EXPECT_GE(s->health_interval, 100);
}

TEST(AgentConfig, NumbersOutOfRangeAreRefusedWithTheirKey) {
  for (const auto& [section, entry, key] :
       {std::tuple<const char*, const char*, const char*>{"checkin", "jitter: 0.6", "checkin.jitter"},
        {"checkin", "jitter: -0.1", "checkin.jitter"},
        {"checkin", "jitter: .nan", "checkin.jitter"},
        {"checkin", "jitter: .inf", "checkin.jitter"},
        {"trial", "start_budget: 0", "trial.start_budget"},
        {"trial", "start_budget: 101", "trial.start_budget"},
        {"download", "max_bytes: 0", "download.max_bytes"},
        {"download", "max_bytes: 1099511627777", "download.max_bytes"},
        {"debug", "pause_after_step: -1", "debug.pause_after_step"},
        {"checkin", "interval: -1s", "checkin.interval"},
        {"checkin", "interval: 99999999999999999999ms", "checkin.interval"}}) {
    auto s = parse_agent_config(config_with(section, entry), "agent.yaml");
    ASSERT_FALSE(s.ok()) << entry << " accepted";
    EXPECT_NE(s.error().message.find(key), std::string::npos) << s.error().to_string();
    EXPECT_NE(s.error().message.find("agent.yaml"), std::string::npos) << s.error().to_string();
  }
  auto s = parse_agent_config(config("utc_offset_minutes: 841\n"), "agent.yaml");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("utc_offset_minutes"), std::string::npos) << s.error().to_string();
}

}  // namespace
}  // namespace tranche::agent
