// The demo sensor's content interpreter: the 2024 bug, reproduced on purpose.
//
// The sensor compiles in its template *definitions* (how many fields each
// template type declares) and an event source that *supplies* input fields to
// each. For ChannelFile291Ipc the definition declares 21 fields and the event
// source supplies 20 — exactly the mismatch of Channel File 291. The
// interpreter bounds-checks a criterion's field number against the declared
// count (the bug), then reads the input array at that index. The supplied
// fields are laid out at the very end of an mmap'd page followed by a
// PROT_NONE guard page, so reading field 21 touches the guard page and the
// process dies of SIGSEGV, reliably and for real (this target is never built
// with sanitizers: agent/demo_sensor/CMakeLists.txt).
//
// What the agent's contract check (core/contract.h) and examples/content/
// interface.yaml describe is the supplied side: 20 fields.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/contract.h"
#include "core/result.h"

namespace tranche::sensor {

// One input field as the event source supplies it. The interpreter reads the
// member matching the criterion's type; a wildcard criterion still loads the
// field (the interpreter fetches every referenced field before comparing).
struct FieldValue {
  const char* text = nullptr;  // NUL-terminated, for string fields
  std::int64_t number = 0;     // integer fields
  std::int64_t flag = 0;       // boolean fields (0 or 1)
};

struct TemplateDefinition {
  std::string_view type;
  std::uint32_t declared_fields;  // what the template definition says
  std::uint32_t supplied_fields;  // what the event source really fills in
  // Supplied only by a rare event (every Interpreter::rare_every-th), so content
  // that misreads it runs fine for hours, past any trial, and then crashes.
  bool rare = false;
};

// ChannelFile291Ipc: declared 21, supplied 20. ProcessStart: 3 and 3.
// ScheduledTaskRun (rare): declared 9, supplied 8.
const std::vector<TemplateDefinition>& template_definitions();

// The supplied fields of one template type, at the end of a readable page that
// is followed by a PROT_NONE page. Index `supplied` is the first byte of the
// guard page.
class InputArena {
 public:
  explicit InputArena(std::uint32_t supplied);
  ~InputArena();
  InputArena(const InputArena&) = delete;
  InputArena& operator=(const InputArena&) = delete;

  FieldValue* fields() { return fields_; }
  std::uint32_t supplied() const { return supplied_; }

 private:
  void* map_ = nullptr;
  std::size_t map_bytes_ = 0;
  FieldValue* fields_ = nullptr;
  std::uint32_t supplied_ = 0;
};

struct Evaluation {
  std::size_t instances = 0;  // evaluated
  std::size_t matched = 0;
  std::size_t skipped = 0;  // unknown template type or a field past the *declared* count
};

class Interpreter {
 public:
  // `rare_every`: event n is also a rare event when (n + 1) % rare_every == 0.
  explicit Interpreter(core::ContentBundle bundle, std::uint64_t rare_every = 3600);
  // Fills every template type's supplied fields from a synthetic event number
  // and evaluates every instance against them (instances of a rare type only on
  // a rare event).
  Evaluation evaluate_event(std::uint64_t event_number);
  const core::ContentBundle& bundle() const { return bundle_; }

 private:
  struct Slot {
    const TemplateDefinition* definition;
    InputArena* arena;
  };
  bool match(const core::TemplateInstance& instance, const Slot& slot) const;

  core::ContentBundle bundle_;
  std::uint64_t rare_every_;
  std::vector<std::string> texts_;
  std::vector<std::unique_ptr<InputArena>> arenas_;
  std::vector<Slot> slots_;
};

}  // namespace tranche::sensor
