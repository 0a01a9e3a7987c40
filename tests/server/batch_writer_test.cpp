// The batch writer (server/batch_writer.h) over a fake sink: what a device
// relies on when the server answers {"accepted": N} — its events are durable
// then, written once even when the store refused them first, and a request is
// never left without an answer.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "server/batch_writer.h"
#include "server/fleet.h"

namespace tranche::server {
namespace {

// The store's side: every batch offered, and whether it was taken.
struct FakeSink {
  std::vector<store::DeviceBatch> written;
  int refuse_next = 0;  // this many batches are refused ("database or disk is full")
  int offered = 0;
  core::Status operator()(const store::DeviceBatch& batch) {
    ++offered;
    if (refuse_next > 0) {
      --refuse_next;
      return core::make_error(core::ErrorCode::kUnavailable, "database or disk is full");
    }
    written.push_back(batch);
    return core::Ok{};
  }
  std::size_t events() const {
    std::size_t n = 0;
    for (const auto& b : written) n += b.events.size();
    return n;
  }
};

class BatchWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* id : {"dev-1", "dev-2"}) {
      Device d;
      d.key = id;
      d.tenant = "t";
      ASSERT_TRUE(fleet_.add_device(std::move(d)).ok());
    }
  }

  BatchWriter make(std::chrono::seconds commit_wait = std::chrono::seconds(5)) {
    return BatchWriter(fleet_, metrics_, [this](const store::DeviceBatch& b) { return sink_(b); },
                       BatchWriter::Settings{std::chrono::milliseconds(20), 2000, commit_wait});
  }

  // A write of `n` events of `device`, whose answer lands in `answer`.
  DeviceWrite events(const std::string& device, int n, std::optional<core::Status>& answer) {
    DeviceWrite w;
    w.device = device;
    for (int i = 0; i < n; ++i) {
      store::DeviceEventRow e;
      e.device = device;
      e.seq = ++seq_;
      e.kind = "crashed";
      e.channel = "content";
      e.version = "2.0";
      w.events.push_back(e);
    }
    w.committed = [&answer](const core::Status& st) { answer = st; };
    return w;
  }

  Fleet fleet_;
  Metrics metrics_;
  FakeSink sink_;
  std::int64_t seq_ = 0;
};

TEST_F(BatchWriterTest, AWriteIsAnsweredOnlyOnceItsBatchCommitted) {
  BatchWriter writer = make();
  std::optional<core::Status> answer;
  writer.enqueue(events("dev-1", 3, answer));
  EXPECT_FALSE(answer) << "answered before any batch was written";
  EXPECT_EQ(writer.pending_events(), 3u);
  ASSERT_TRUE(writer.flush());
  ASSERT_TRUE(answer);
  EXPECT_TRUE(answer->ok());
  ASSERT_EQ(sink_.written.size(), 1u);
  EXPECT_EQ(sink_.written[0].events.size(), 3u);
  ASSERT_EQ(sink_.written[0].states.size(), 1u);  // the device's state, as it is now
  EXPECT_EQ(sink_.written[0].states[0].device, "dev-1");
  EXPECT_EQ(writer.pending_events(), 0u);
}

TEST_F(BatchWriterTest, ABatchTheStoreRefusedStaysQueuedAndIsWrittenOnce) {
  BatchWriter writer = make();
  std::optional<core::Status> a1, a2;
  writer.enqueue(events("dev-1", 2, a1));
  sink_.refuse_next = 2;
  EXPECT_FALSE(writer.flush());
  writer.enqueue(events("dev-2", 1, a2));  // arrives while the store is down
  EXPECT_FALSE(writer.flush());
  EXPECT_FALSE(a1) << "a refused batch must not be acknowledged";
  EXPECT_EQ(writer.pending_events(), 3u);
  EXPECT_EQ(metrics_.store_flush_errors.load(), 2u);
  ASSERT_TRUE(writer.flush());
  ASSERT_TRUE(a1 && a2);
  EXPECT_TRUE(a1->ok() && a2->ok());
  EXPECT_EQ(sink_.events(), 3u) << "each event written exactly once";
  ASSERT_TRUE(writer.flush());  // nothing left: nothing written twice
  EXPECT_EQ(sink_.events(), 3u);
}

TEST_F(BatchWriterTest, ARequestWaitingPastCommitWaitIsToldToRetryAndItsEventsStayQueued) {
  BatchWriter writer = make(std::chrono::seconds(0));
  std::optional<core::Status> answer;
  writer.enqueue(events("dev-1", 4, answer));
  sink_.refuse_next = 1;
  EXPECT_FALSE(writer.flush());
  ASSERT_TRUE(answer);
  ASSERT_FALSE(answer->ok());
  EXPECT_EQ(answer->error().code, core::ErrorCode::kUnavailable) << "retry later, not bad input";
  EXPECT_NE(answer->error().message.find("database or disk is full"), std::string::npos);
  // The events were not dropped: the device will send them again, and the
  // store keeps one row per (device, seq).
  ASSERT_TRUE(writer.flush());
  EXPECT_EQ(sink_.events(), 4u);
}

TEST_F(BatchWriterTest, ADeviceAnotherServerOwnsHasItsEventsWrittenButNotItsState) {
  ASSERT_TRUE(fleet_.disown("dev-2", "s-other", 1));
  BatchWriter writer = make();
  std::optional<core::Status> answer;
  writer.enqueue(events("dev-2", 1, answer));
  ASSERT_TRUE(writer.flush());
  ASSERT_EQ(sink_.written.size(), 1u);
  EXPECT_EQ(sink_.written[0].events.size(), 1u);
  EXPECT_TRUE(sink_.written[0].states.empty()) << "its state rows are its owner's to write";
}

TEST_F(BatchWriterTest, ItsThreadWritesWithinTheIntervalAndStopAnswersEveryone) {
  std::optional<core::Status> written, stopped;
  {
    BatchWriter writer = make();
    writer.start();
    std::promise<void> done;
    DeviceWrite w = events("dev-1", 1, written);
    w.committed = [&](const core::Status& st) {
      written = st;
      done.set_value();
    };
    writer.enqueue(std::move(w));
    ASSERT_EQ(done.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
    EXPECT_TRUE(written->ok());
    // The store goes away for good: stop() still answers the last request.
    sink_.refuse_next = 1'000'000;
    writer.enqueue(events("dev-2", 1, stopped));
    writer.stop();
  }
  ASSERT_TRUE(stopped);
  ASSERT_FALSE(stopped->ok());
  EXPECT_EQ(stopped->error().code, core::ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace tranche::server
