// The agent's persistence code (agent/state_files.h, write_durably) on a file
// system that forgets unsynced writes (agent/fake_file_system.h): whatever step
// the machine dies at, the record reads back as the old one or the new one,
// never a mix, never nothing; an event's seq is never handed out twice.
#include <gtest/gtest.h>

#include "agent/fake_file_system.h"
#include "agent/state_files.h"

namespace tranche::agent {
namespace {

core::Version v(const char* text) {
  return *core::Version::parse(text);
}

StoredRecord record(core::AgentPhase phase, const char* good, std::optional<const char*> candidate) {
  StoredRecord s;
  s.record.phase = phase;
  s.record.good = v(good);
  if (candidate) {
    s.record.candidate = v(*candidate);
    s.record.starts_left = 2;
    s.record.trial_started_at = 1234;
    s.candidate_targets = {TargetRef{"content/2.0.yaml", 10, std::string(64, 'a')}};
  }
  s.record.bad = {v("0.9")};
  return s;
}

TEST(FakeFileSystem, ForgetsWhatWasNotSynced) {
  FakeFileSystem fs;
  ASSERT_TRUE(fs.make_dirs("/d").ok());
  ASSERT_TRUE(fs.write("/d/unsynced", "x", false).ok());
  ASSERT_TRUE(fs.write("/d/synced-file-only", "y", false).ok());
  ASSERT_TRUE(fs.fsync("/d/synced-file-only").ok());
  fs.crash();
  // The file's bytes were synced but its name never was: gone with the directory entry.
  EXPECT_EQ(fs.read("/d/unsynced", 10).error().code, core::ErrorCode::kNotFound);
  EXPECT_EQ(fs.read("/d/synced-file-only", 10).error().code, core::ErrorCode::kNotFound);
  ASSERT_TRUE(fs.write("/d/f", "old", false).ok());
  ASSERT_TRUE(fs.fsync("/d/f").ok());
  ASSERT_TRUE(fs.fsync("/d").ok());
  ASSERT_TRUE(fs.write("/d/f", "new", false).ok());
  fs.crash();
  EXPECT_EQ(*fs.read("/d/f", 10), "old") << "an unsynced overwrite is lost";
}

TEST(Persistence, RecordRoundTrips) {
  const StoredRecord r = record(core::AgentPhase::kTrial, "1.0", "2.0");
  auto back = decode_record(encode_record(r));
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(*back, r);
  EXPECT_FALSE(decode_record("{\"phase\":\"nonsense\"}").ok());
  EXPECT_FALSE(decode_record("not json").ok());
}

// Every prefix of the write: the power fails after n file-system operations.
TEST(Persistence, RecordIsOldOrNewWhereverThePowerFails) {
  const StoredRecord old_r = record(core::AgentPhase::kCommitted, "1.0", std::nullopt);
  const StoredRecord new_r = record(core::AgentPhase::kActivating, "1.0", "2.0");
  int saw_old = 0, saw_new = 0;
  for (std::int64_t n = 0; n <= 6; ++n) {
    FakeFileSystem fs;
    ASSERT_TRUE(fs.make_dirs("/data").ok());
    ASSERT_TRUE(save_record(fs, "/data/record.json", old_r).ok());
    fs.fail_after(n);
    const bool saved = save_record(fs, "/data/record.json", new_r).ok();
    fs.crash();
    auto back = load_record(fs, "/data/record.json");
    ASSERT_TRUE(back.ok()) << "after " << n << " operations: " << back.error().to_string();
    if (*back == new_r) {
      ++saw_new;
    } else {
      EXPECT_EQ(*back, old_r) << "after " << n << " operations";
      EXPECT_FALSE(saved) << "a save that returned ok must survive the crash (n=" << n << ")";
      ++saw_old;
    }
  }
  EXPECT_GT(saw_old, 0);
  EXPECT_GT(saw_new, 0);
}

TEST(Persistence, EventSeqIsNeverHandedOutTwice) {
  FakeFileSystem fs;
  ASSERT_TRUE(fs.make_dirs("/data").ok());
  std::int64_t highest = 0;
  for (int round = 0; round < 5; ++round) {
    EventQueue q(fs, "/data/events.json");
    ASSERT_TRUE(q.load().ok());
    EXPECT_GT(q.next_seq(), highest) << "round " << round;
    for (int i = 0; i < 3; ++i) {
      DeviceEvent e;
      e.kind = "crashed";
      e.channel = "content";
      e.version = "2.0";
      e.signal = 11;
      if (q.push(e).ok()) highest = q.pending().back().seq;
    }
    ASSERT_TRUE(q.acknowledge(highest - 1).ok());
    fs.fail_after(round);  // the next push dies part-way
    DeviceEvent e;
    e.kind = "goodbye";
    (void)q.push(e);
    if (!q.pending().empty()) highest = std::max(highest, q.pending().back().seq);
    fs.crash();
    EventQueue reloaded(fs, "/data/events.json");
    ASSERT_TRUE(reloaded.load().ok());
    EXPECT_FALSE(reloaded.pending().empty()) << "the unacknowledged event survives";
  }
}

// A refused offer (offer_refused) keeps its reason through a restart and on the
// wire: the server files it under the event's detail.
TEST(Persistence, ARefusedOfferKeepsItsReasonQueuedAndUploaded) {
  FakeFileSystem fs;
  ASSERT_TRUE(fs.make_dirs("/data").ok());
  {
    EventQueue q(fs, "/data/events.json");
    ASSERT_TRUE(q.load().ok());
    DeviceEvent e;
    e.kind = "offer_refused";
    e.channel = "content";
    e.version = "2.0";
    e.reason = "trial_pending";
    e.message = "offered 2.0 while 1.0 is trial: finish the trial first";
    ASSERT_TRUE(q.push(e).ok());
  }
  EventQueue reloaded(fs, "/data/events.json");
  ASSERT_TRUE(reloaded.load().ok());
  ASSERT_EQ(reloaded.pending().size(), 1u);
  EXPECT_EQ(reloaded.pending()[0].reason, "trial_pending");
  const std::string body = reloaded.upload_body(10);
  EXPECT_NE(body.find(R"("kind":"offer_refused")"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("reason":"trial_pending")"), std::string::npos) << body;
}

}  // namespace
}  // namespace tranche::agent
