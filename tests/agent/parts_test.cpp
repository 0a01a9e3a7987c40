// The agent's parts in-process, on the fakes beside its ports (agent/fakes.h,
// agent/fake_file_system.h): the backoff every part shares, the event outbox,
// the check-in client, the supervisor and the downloader. No process, socket or
// real clock: each test drives a part step by step and reads what it did.
#include <gtest/gtest.h>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "agent/backoff.h"
#include "agent/checkin_client.h"
#include "agent/downloader.h"
#include "agent/event_outbox.h"
#include "agent/fake_file_system.h"
#include "agent/fakes.h"
#include "agent/supervisor.h"

namespace tranche::agent {
namespace {

using core::kSecond;

AgentSettings settings() {
  AgentSettings s;
  s.server_url = "http://server.test";
  s.tuf_url = "http://server.test/tuf";
  s.device_id = "dev-1";
  s.tenant = "acme";
  s.enrollment_key = "key";
  s.data_dir = "/data";
  s.channel = "content";
  s.checkin_jitter = 0.1;
  s.max_backoff = 30 * kSecond;
  s.checkin_interval = 60 * kSecond;
  s.service_command = {"/bin/sensor", "{slot}", "--data", "{data}", "--version", "{version}"};
  return s;
}

std::vector<std::string> log_lines;
Logger logger() {
  return [](const std::string& l) { log_lines.push_back(l); };
}

// ---- Backoff and Jitter --------------------------------------------------------

TEST(Backoff, DoublesFromTheFirstWaitUpToTheCapAndResetsOnSuccess) {
  Backoff b(kSecond, 5 * kSecond);
  EXPECT_EQ(b.current(), 0);
  EXPECT_EQ(b.failed(), 1 * kSecond);
  EXPECT_EQ(b.failed(), 2 * kSecond);
  EXPECT_EQ(b.failed(), 4 * kSecond);
  EXPECT_EQ(b.failed(), 5 * kSecond);
  EXPECT_EQ(b.failed(), 5 * kSecond);
  b.succeeded();
  EXPECT_EQ(b.failed(), 1 * kSecond);
  // A cap far out never overflows.
  Backoff far(kSecond, core::kMaxTime);
  for (int i = 0; i < 200; ++i) EXPECT_GT(far.failed(), 0);
}

TEST(Jitter, StaysWithinItsSpreadAndAboveZero) {
  Jitter j(0.1, 7);
  for (int i = 0; i < 1000; ++i) {
    const auto w = j(10 * kSecond);
    EXPECT_GE(w, 9 * kSecond);
    EXPECT_LE(w, 11 * kSecond);
  }
  EXPECT_GE(j(0), 1);
  EXPECT_EQ(j(core::kMaxTime) > 0, true);
}

// ---- EventOutbox ----------------------------------------------------------------

class OutboxTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(fs_.make_dirs("/data").ok()); }
  DeviceEvent event(const std::string& kind) {
    DeviceEvent e;
    e.kind = kind;
    e.channel = "content";
    e.version = "2.0";
    return e;
  }
  AgentSettings settings_ = settings();
  FakeFileSystem fs_;
  FakeHttpClient http_;
  FakeClock clock_;
  EventOutbox outbox_{settings_, fs_, http_, clock_, logger()};
};

TEST_F(OutboxTest, AnAcceptedPostEmptiesTheQueueAndNothingIsDueAfter) {
  ASSERT_TRUE(outbox_.load().ok());
  EXPECT_EQ(outbox_.next_post_at(), core::kMaxTime);
  ASSERT_TRUE(outbox_.push(event("crashed")).ok());
  EXPECT_LE(outbox_.next_post_at(), clock_.now());  // due at once
  http_.answer("POST", "/v1/events", 200, R"({"accepted":1})");
  outbox_.post("");  // no token yet: nothing is sent
  EXPECT_EQ(http_.count("/v1/events"), 0U);
  outbox_.post("dev-1.secret");
  ASSERT_EQ(http_.count("/v1/events"), 1U);
  EXPECT_EQ(http_.requests()[0].bearer_token, "dev-1.secret");
  EXPECT_NE(http_.requests()[0].body.find("\"crashed\""), std::string::npos);
  EXPECT_TRUE(outbox_.empty());
  EXPECT_EQ(outbox_.next_post_at(), core::kMaxTime);
}

TEST_F(OutboxTest, FailuresBackOffDoublingWithJitterAndTheEventsStayQueued) {
  ASSERT_TRUE(outbox_.load().ok());
  ASSERT_TRUE(outbox_.push(event("crashed")).ok());
  http_.answer("POST", "/v1/events", 500, "boom");
  core::DurationMs expected = kSecond;
  for (int i = 0; i < 7; ++i) {
    const core::TimeMs before = clock_.now();
    outbox_.post("t");
    const core::DurationMs wait = outbox_.next_post_at() - before;
    EXPECT_GE(wait, expected * 9 / 10) << i;
    EXPECT_LE(wait, expected * 11 / 10 + 1) << i;
    expected = std::min(expected * 2, settings_.max_backoff);
  }
  EXPECT_FALSE(outbox_.empty());
  // Durable: a new outbox on the same disk has the event.
  EventOutbox again(settings_, fs_, http_, clock_, logger());
  ASSERT_TRUE(again.load().ok());
  EXPECT_EQ(again.queue().pending().size(), 1U);
}

TEST_F(OutboxTest, AReplayedSeqAcknowledgesWhatTheServerHasAndNoMore) {
  ASSERT_TRUE(outbox_.load().ok());
  for (const char* k : {"installed", "crashed", "rolled_back"}) ASSERT_TRUE(outbox_.push(event(k)).ok());
  http_.answer("POST", "/v1/events", 409, R"({"error":{"code":"replayed","message":"last accepted seq is 2"}})");
  outbox_.post("t");
  ASSERT_EQ(outbox_.queue().pending().size(), 1U);
  EXPECT_EQ(outbox_.queue().pending()[0].seq, 3);
  // The same answer again takes nothing off: a failure (backoff), not a loop.
  const core::TimeMs before = clock_.now();
  outbox_.post("t");
  EXPECT_GT(outbox_.next_post_at(), before);
}

// ---- CheckinClient ---------------------------------------------------------------

TEST(CheckinAnswer, ReadsTheChannelsVersionsTargetsAndClampsAskAgain) {
  std::optional<std::int64_t> ask;
  auto a = parse_checkin_answer(
      R"({"channels":{"content":{"current":"2.0","desired":"1.0","action":"rollback","reason":"rolled back",
          "code":"rolled_back","revoked":"2.0","targets":[{"path":"content/1.0.yaml","length":12,"sha256":"ab"}]}},
          "ask_again_s":4611686018427387904,"server_time":0})",
      "content", &ask);
  ASSERT_TRUE(a.ok()) << a.error().to_string();
  EXPECT_EQ(a->action, "rollback");
  EXPECT_EQ(a->desired->to_string(), "1.0");
  EXPECT_EQ(a->revoked->to_string(), "2.0");
  ASSERT_EQ(a->targets.size(), 1U);
  EXPECT_EQ(a->targets[0].length, 12);
  ASSERT_TRUE(ask.has_value());
  EXPECT_EQ(*ask, core::kDay);  // 2^62 s is clamped to a day, not overflowed

  auto other = parse_checkin_answer(R"({"channels":{"sensor":{"action":"install"}},"ask_again_s":5})", "content", &ask);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->action, "");  // nothing for this channel: keep
  EXPECT_FALSE(other->desired.has_value());

  for (const char* bad : {R"({"channels":{"content":{"action":"install","desired":"not a version!"}}})",
                          R"({"channels":{"content":{"action":"keep","revoked":"v 2"}}})",
                          R"({"channels":{"content":{"action":"keep","action":"install"}}})", R"([1])", "{",
                          R"({"channels":{"content":{"targets":[{"path":1}]}}})"}) {
    EXPECT_FALSE(parse_checkin_answer(bad, "content", &ask).ok()) << bad;
  }
}

class CheckinTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(fs_.make_dirs("/data").ok()); }
  AgentSettings settings_ = settings();
  FakeFileSystem fs_;
  FakeHttpClient http_;
  std::atomic<int> notified_{0};
  CheckinClient client_{settings_, http_, fs_, logger(), [this] { ++notified_; }};
};

TEST_F(CheckinTest, EnrollsFirstStoresTheTokenPrivatelyThenChecksInWithWhatRuns) {
  http_.answer("POST", "/v1/enroll", 201, R"({"device_id":"dev-1","device_token":"dev-1.s3cret"})");
  http_.answer("POST", "/v1/checkin", 200,
               R"({"channels":{"content":{"action":"install","desired":"2.0","reason":"in stage"}},"ask_again_s":20})");
  EXPECT_EQ(client_.run_once(), 0);  // enrolled: check in at once
  EXPECT_EQ(client_.token(), "dev-1.s3cret");
  EXPECT_EQ(*fs_.read("/data/token", 100), "dev-1.s3cret\n");
  EXPECT_NE(http_.requests()[0].body.find("\"enrollment_key\":\"key\""), std::string::npos);

  client_.set_state("1.0", "committed");
  const std::int64_t wait = client_.run_once();
  EXPECT_GE(wait, 18 * kSecond);  // the server's ask_again_s, jittered ±10%
  EXPECT_LE(wait, 22 * kSecond);
  const HttpRequest req = http_.requests().back();  // a copy: requests() is a snapshot
  EXPECT_EQ(req.bearer_token, "dev-1.s3cret");
  EXPECT_NE(req.body.find(R"("versions":{"content":"1.0"})"), std::string::npos) << req.body;
  EXPECT_NE(req.body.find(R"("phase":"committed")"), std::string::npos) << req.body;
  auto answers = client_.take_answers();
  ASSERT_EQ(answers.size(), 1U);
  EXPECT_EQ(answers[0].desired->to_string(), "2.0");
  EXPECT_TRUE(client_.take_answers().empty());
  EXPECT_EQ(notified_.load(), 2);
}

TEST_F(CheckinTest, FailuresAndMalformedAnswersBackOffAndASuccessResets) {
  client_.set_token("dev-1.s3cret");
  http_.answer("POST", "/v1/checkin", 503, "busy");
  core::DurationMs expected = kSecond;
  for (int i = 0; i < 6; ++i) {
    const std::int64_t wait = client_.run_once();
    EXPECT_GE(wait, expected * 9 / 10) << i;
    EXPECT_LE(wait, expected * 11 / 10 + 1) << i;
    expected = std::min(expected * 2, settings_.max_backoff);
  }
  http_.answer("POST", "/v1/checkin", 200, R"({"channels":{"content":{"action":"keep","action":"install"}}})");
  EXPECT_LE(client_.run_once(), 33 * kSecond);  // still backing off (capped)
  EXPECT_TRUE(client_.take_answers().empty()) << "a malformed answer is no answer";
  http_.answer("POST", "/v1/checkin", 200, R"({"channels":{},"ask_again_s":1})");
  EXPECT_LE(client_.run_once(), 1100);
  http_.answer("POST", "/v1/checkin", 500, "");
  EXPECT_LE(client_.run_once(), 1100);  // the backoff starts over
}

TEST_F(CheckinTest, TheThreadChecksInAtOnceWhenWokenAndStopsPromptly) {
  client_.set_token("dev-1.s3cret");
  http_.answer("POST", "/v1/checkin", 200, R"({"channels":{},"ask_again_s":3600})");
  client_.start();
  for (int i = 0; i < 200 && http_.count("/v1/checkin") < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(http_.count("/v1/checkin"), 1U);
  client_.wake();  // news: an hour's wait is cut short
  for (int i = 0; i < 200 && http_.count("/v1/checkin") < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(http_.count("/v1/checkin"), 2U);
  const auto t0 = std::chrono::steady_clock::now();
  client_.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
}

// ---- Supervisor -------------------------------------------------------------------

class SupervisorTest : public ::testing::Test {
 protected:
  SupervisorTest() { clock_.tick_on_read(kSecond); }  // restart throttles and stop deadlines pass in fake time
  AgentSettings settings_ = settings();
  FakeProcess process_;
  FakeClock clock_;
  std::vector<std::string> started_;
  Supervisor service_{settings_, process_, clock_, logger(), [this](const std::string& slot) { started_.push_back(slot); }};
};

TEST_F(SupervisorTest, StartsTheCommandOnTheSlotAndReportsItsExitOnce) {
  service_.start(core::Version::parse("2.0").value(), "/data/slots/b");
  ASSERT_TRUE(service_.running());
  ASSERT_EQ(process_.spawned.size(), 1U);
  EXPECT_EQ(process_.spawned[0].argv,
            (std::vector<std::string>{"/bin/sensor", "/data/slots/b", "--data", "/data", "--version", "2.0"}));
  EXPECT_EQ(process_.spawned[0].log_file, "/data/service.log");
  EXPECT_EQ(started_, (std::vector<std::string>{"/data/slots/b"}));
  EXPECT_FALSE(service_.reap().has_value());  // still running
  process_.exit(process_.spawned[0].pid, ExitStatus{std::nullopt, SIGSEGV});
  auto exit = service_.reap();
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->describe(), "signal 11 (SIGSEGV)");
  EXPECT_FALSE(service_.running());
  EXPECT_FALSE(service_.reap().has_value()) << "an exit is reported once";
  EXPECT_EQ(service_.last_exit()->signal, SIGSEGV);
}

TEST_F(SupervisorTest, AStartStopsWhatRunsAndStopEscalatesToSigkill) {
  service_.start(std::nullopt, "/opt/shipped");
  EXPECT_EQ(process_.spawned[0].argv[5], "shipped");
  const pid_t first = process_.spawned[0].pid;
  service_.start(core::Version::parse("2.0").value(), "/data/slots/a");
  EXPECT_FALSE(process_.alive(first));
  EXPECT_EQ(process_.signals.front(), (std::pair<pid_t, int>{first, SIGTERM}));
  process_.ignore_term = true;  // a service that will not stop
  const pid_t second = process_.spawned[1].pid;
  service_.stop();
  EXPECT_FALSE(service_.running());
  EXPECT_EQ(process_.signals.back(), (std::pair<pid_t, int>{second, SIGKILL}));
}

TEST_F(SupervisorTest, HealthIsDueEveryIntervalAndAFailureSaysWhy) {
  settings_.health_command = {"/bin/sensor", "--health", "{data}/heartbeat"};
  service_.start(core::Version::parse("2.0").value(), "/data/slots/a");
  EXPECT_FALSE(service_.health_due(service_.next_health_at() - 1));
  EXPECT_TRUE(service_.health_due(service_.next_health_at()));
  EXPECT_TRUE(service_.check_health("/data/slots/a").ok());
  EXPECT_EQ(process_.health_runs.back(), (std::vector<std::string>{"/bin/sensor", "--health", "/data/heartbeat"}));
  process_.health = ExitStatus{1, std::nullopt};
  const auto st = service_.check_health("/data/slots/a");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message, "health command failed: exit code 1");
  service_.stop();
  EXPECT_FALSE(service_.health_due(core::kMaxTime)) << "no health check of a service that is not running";
}

// ---- Downloader -------------------------------------------------------------------

TEST(Downloader, AServerWithoutTufMetadataFailsTheDownloadTransientlyWithTheCause) {
  AgentSettings s = settings();
  FakeFileSystem fs;
  ASSERT_TRUE(fs.make_dirs("/data/tuf").ok());
  ASSERT_TRUE(fs.make_dirs("/data/downloads").ok());
  FakeHttpClient http;
  http.answer("GET", "", 404, "no such file");
  FakeClock clock;
  std::atomic<int> done{0};
  Downloader d(s, clock, fs, http, logger(), [&] { ++done; });
  const auto v = core::Version::parse("2.0").value();
  const DownloadResult r = d.run(v, {TargetRef{"content/2.0.yaml", 10, "ab"}});
  EXPECT_EQ(r.event.kind, core::AgentEvent::Kind::kDownloadFailed);
  EXPECT_EQ(r.event.version, v);
  EXPECT_NE(r.event.detail.find("TUF"), std::string::npos) << r.event.detail;
  EXPECT_FALSE(r.event.permanent) << "a network can delay an update, never ban it";

  // On its thread: the result comes once, after `done`.
  d.start(v, {TargetRef{"content/2.0.yaml", 10, "ab"}});
  for (int i = 0; i < 400 && done.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(done.load(), 1);
  auto taken = d.take();
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->event.kind, core::AgentEvent::Kind::kDownloadFailed);
  EXPECT_FALSE(d.take().has_value());
  // A cancelled download leaves no result behind.
  d.start(v, {});
  d.cancel();
  EXPECT_FALSE(d.take().has_value());
}

}  // namespace
}  // namespace tranche::agent
