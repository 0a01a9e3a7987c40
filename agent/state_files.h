// What the agent keeps on disk between runs, each file replaced durably
// (write_durably: temp, fsync, rename, fsync the directory):
//   DATA/record.json  core::AgentRecord, plus the targets of the candidate
//   DATA/events.json  the event queue: next seq and the events not yet accepted
//   DATA/token        the device token (0600)
// A file that does not parse is an error, never silently reset: the agent stops
// and says which file (a person must look; tranche never guesses a record).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/ports.h"
#include "core/agent_machine.h"

namespace tranche::agent {

// One file of a release as the server lists it.
struct TargetRef {
  std::string path;
  std::int64_t length = 0;
  std::string sha256;
  bool operator==(const TargetRef&) const = default;
};

struct StoredRecord {
  core::AgentRecord record;
  std::vector<TargetRef> candidate_targets;  // the files of record.candidate
  bool operator==(const StoredRecord&) const = default;
};

std::string encode_record(const StoredRecord& r);
core::Result<StoredRecord> decode_record(const std::string& text);
// kNotFound when there is none (a first start).
core::Result<StoredRecord> load_record(FileSystem& fs, const std::string& path);
core::Status save_record(FileSystem& fs, const std::string& path, const StoredRecord& r);

// One event for POST /v1/events (docs/api.md).
struct DeviceEvent {
  std::int64_t seq = 0;
  std::string kind;  // core::to_string(core::DeviceEventKind): installed, install_failed, ...
  std::string channel;
  std::string version;
  std::optional<int> exit_code;
  std::optional<int> signal;
  std::string message;
  std::string reason;  // offer_refused: known_bad, trial_pending
};

// The durable event queue. seq is strictly increasing per device and persisted
// with the events, so a restart never reuses one.
class EventQueue {
 public:
  EventQueue(FileSystem& fs, std::string path) : fs_(&fs), path_(std::move(path)) {}
  core::Status load();  // a missing file is an empty queue
  // Assigns the next seq and persists the queue before returning.
  core::Status push(DeviceEvent e);
  // Drops every event with seq <= up_to (the server accepted them) and persists.
  core::Status acknowledge(std::int64_t up_to);
  const std::vector<DeviceEvent>& pending() const { return pending_; }
  std::int64_t next_seq() const { return next_seq_; }
  // The body of POST /v1/events for at most `max` pending events.
  std::string upload_body(std::size_t max) const;

 private:
  core::Status save();
  FileSystem* fs_;
  std::string path_;
  std::int64_t next_seq_ = 1;
  std::vector<DeviceEvent> pending_;
};

}  // namespace tranche::agent
