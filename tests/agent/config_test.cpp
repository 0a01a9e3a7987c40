// The agent's configuration file (agent/config.h): a minimal file parses, and
// values that would turn the agent against the server are refused with the key
// named.
#include <gtest/gtest.h>

#include <string>

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

}  // namespace
}  // namespace tranche::agent
