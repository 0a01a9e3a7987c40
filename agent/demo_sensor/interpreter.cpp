#include "agent/demo_sensor/interpreter.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tranche::sensor {

const std::vector<TemplateDefinition>& template_definitions() {
  static const std::vector<TemplateDefinition> kDefinitions = {
      {"ChannelFile291Ipc", 21, 20},
      {"ProcessStart", 3, 3},
      {"ScheduledTaskRun", 9, 8, /*rare=*/true},
  };
  return kDefinitions;
}

InputArena::InputArena(std::uint32_t supplied) : supplied_(supplied) {
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const std::size_t bytes = sizeof(FieldValue) * supplied;
  const std::size_t data_pages = (bytes + page - 1) / page + (bytes == 0 ? 1 : 0);
  map_bytes_ = (data_pages + 1) * page;
  map_ = ::mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map_ == MAP_FAILED) {
    std::perror("tranche-demo-sensor: mmap");
    std::abort();
  }
  auto* base = static_cast<unsigned char*>(map_);
  unsigned char* guard = base + data_pages * page;
  if (::mprotect(guard, page, PROT_NONE) != 0) {
    std::perror("tranche-demo-sensor: mprotect");
    std::abort();
  }
  // The array ends exactly where the guard page begins.
  fields_ = reinterpret_cast<FieldValue*>(guard - bytes);  // NOLINT: placement in raw pages
  for (std::uint32_t i = 0; i < supplied; ++i) new (&fields_[i]) FieldValue{};
}

InputArena::~InputArena() {
  if (map_ != nullptr) ::munmap(map_, map_bytes_);
}

Interpreter::Interpreter(core::ContentBundle bundle, std::uint64_t rare_every)
    : bundle_(std::move(bundle)), rare_every_(rare_every == 0 ? 1 : rare_every) {
  for (const TemplateDefinition& d : template_definitions()) {
    arenas_.push_back(std::make_unique<InputArena>(d.supplied_fields));
    slots_.push_back(Slot{&d, arenas_.back().get()});
  }
  texts_ = {"\\\\.\\pipe\\foo", "svchost.exe", "lsass.exe", "powershell.exe", "explorer.exe"};
}

namespace {

// Reads through a volatile pointer so the load really happens (an optimiser may
// not drop or hoist it): this is the out-of-bounds read of 2024.
template <typename T>
T load(const T* p) {
  return *static_cast<const volatile T*>(p);
}

}  // namespace

bool Interpreter::match(const core::TemplateInstance& instance, const Slot& slot) const {
  bool all = true;
  for (const core::Criterion& c : instance.criteria) {
    // THE BUG, on purpose: the field number is checked against what the template
    // *declares*, not what the event source supplies.
    if (c.field == 0 || c.field > slot.definition->declared_fields) return false;
    const FieldValue* f = slot.arena->fields() + (c.field - 1);
    switch (c.type) {
      case core::FieldType::kString: {
        const char* text = load(&f->text);
        const bool ok = c.value == "*" || (text != nullptr && c.value == text);
        all = all && ok;
        break;
      }
      case core::FieldType::kInteger: {
        const std::int64_t n = load(&f->number);
        const bool ok = std::strtoll(c.value.c_str(), nullptr, 10) == n;
        all = all && ok;
        break;
      }
      case core::FieldType::kBoolean: {
        const std::int64_t b = load(&f->flag);
        const bool ok = (c.value == "true") == (b != 0);
        all = all && ok;
        break;
      }
      case core::FieldType::kWildcard: {
        // Matches anything, but the interpreter fetches the field first.
        (void)load(&f->text);
        break;
      }
    }
  }
  return all;
}

Evaluation Interpreter::evaluate_event(std::uint64_t event_number) {
  for (const Slot& s : slots_) {
    FieldValue* f = s.arena->fields();
    for (std::uint32_t i = 0; i < s.arena->supplied(); ++i) {
      f[i].text = texts_[(event_number + i) % texts_.size()].c_str();
      f[i].number = static_cast<std::int64_t>((event_number + i) % 8);
      f[i].flag = static_cast<std::int64_t>((event_number + i) % 2);
    }
  }
  Evaluation e;
  const bool rare_event = (event_number + 1) % rare_every_ == 0;
  for (const core::TemplateInstance& instance : bundle_.instances) {
    const Slot* slot = nullptr;
    for (const Slot& s : slots_) {
      if (s.definition->type == instance.template_type) slot = &s;
    }
    if (slot == nullptr) {
      ++e.skipped;
      continue;
    }
    if (slot->definition->rare && !rare_event) continue;
    ++e.instances;
    if (match(instance, *slot)) ++e.matched;
  }
  return e;
}

}  // namespace tranche::sensor
