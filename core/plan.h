// A rollout plan: the stages a release walks through, the gate that guards each
// step, what to do on failure, and the tenant policies that bound it. Plans are
// data; core/rollout_machine.h and core/gate.h give them meaning. Defaults live on
// the structs so a plan file names only what differs.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "core/types.h"

namespace tranche::core {

// Device tags ("class" -> "laptop", "region" -> "emea", "os" -> "win11-23h2").
using Tags = std::map<std::string, std::string>;

// A device matches when every listed tag has one of the listed values. An empty
// selector matches every device.
struct Selector {
  std::map<std::string, std::vector<std::string>> any_of;
  bool matches(const Tags& tags) const;
};

// Absolute failure limits: a backstop the statistical test cannot give where
// there is little device-time (a lab of three) and a plain rule operators know
// from other systems (hawkBit's error threshold, AWS IoT Jobs' abortConfig, Argo
// Rollouts' failureLimit). Checked before the sequential test at every look, on
// the rollout's cumulative evidence (core/evidence.h): a limit crossed halts.
struct FailureLimits {
  // Halt when more than this share of the exposed devices have failed, once at
  // least min_exposed devices are exposed. Background failures (silence of a
  // machine that lost power, about 1e-4 per device per 10 minutes) stay far
  // below it on a good release at any fleet size; a release that breaks most of
  // the devices it reaches crosses it at the third.
  double max_failure_rate = 0.5;
  std::uint32_t min_exposed = 3;
  // Halt when more than this many exposed devices have failed. Off by default:
  // a count that stays silent across a million devices says nothing on ten, so
  // it is set per plan or per stage (e.g. a canary's max_failures: 5).
  std::optional<std::uint64_t> max_failures;
};

struct Stage {
  std::string name;
  Ppm percent = Ppm::from_ppm(Ppm::kWhole);
  std::uint32_t min_devices = 0;      // raise the share until this many are in
  // Raise the share, in each stratum of the plan's `strata`, until this many of
  // the stratum's devices are expected in: a step of a ramp then samples every
  // device class, region and OS build, not only the large ones (docs/plan.md).
  std::uint32_t min_per_stratum = 0;
  DurationMs bake = 30 * kMinute;     // time the stage must run clean before promotion
  bool admits_critical = false;       // devices marked critical only from this stage on
  Selector selector;                  // which devices the stage may take at all
  std::optional<FailureLimits> limits;  // the plan's gate.limits when unset
};

// Settings of the health gate (see core/gate.h for what each one does).
struct GateSettings {
  // Probability that a release as healthy as its control is ever halted, over its
  // whole life, however often the gate looks. 1e-3 = one false halt per 1,000.
  double alpha = 1e-3;
  // The alternative the sequential test is tuned for: exposed failure rate this
  // many times control. Larger effects are found sooner (log-likelihood grows
  // faster); smaller ones more slowly.
  double alternative_ratio = 1.6;
  // Promotion: the one-sided upper confidence bound on the failure-rate ratio
  // (exposed / control) must be at most this, once the stage's expected
  // background failures reach ratio_check_min_expected (below that the bound says
  // nothing and only the sequential test guards the stage).
  double tolerance = 2.0;
  double confidence = 0.95;
  double ratio_check_min_expected = 5.0;
  // Promotion needs at least this many devices to have acknowledged the release.
  std::uint32_t min_acknowledged = 50;
  // Silence: a device that acknowledged and then missed this many heartbeats
  // without saying goodbye counts as failed — a crashed machine cannot report.
  DurationMs heartbeat_interval = 60 * kSecond;
  std::uint32_t silent_after_missed = 3;
  // How often the engine evaluates the gate.
  DurationMs tick = 60 * kSecond;
  // Sequential promotion: a stage may promote before its bake ends (the bake is
  // then a maximum) once the evidence rules out a failure-rate ratio of
  // `tolerance` or more at `promote_confidence` — by a likelihood-ratio
  // confidence sequence valid however often the gate looks (core/gate.h) — and
  // the floors hold: the stage has run min_stage_time, and the exposed devices
  // have gathered min_promote_device_hours since the release started.
  bool early_promotion = true;
  double promote_confidence = 0.999;
  DurationMs min_stage_time = 10 * kMinute;
  double min_promote_device_hours = 100;
  // Absolute limits for every stage that sets none of its own.
  FailureLimits limits;
};

enum class OnFailure : std::uint8_t { kHalt, kRollback };

struct Plan {
  std::string name;
  std::vector<Stage> stages;
  GateSettings gate;
  OnFailure on_failure = OnFailure::kRollback;
  // The tag keys whose values make a device's stratum ("class", "region", "os"):
  // what a stage's min_per_stratum counts in. At most kMaxStrataKeys.
  std::vector<std::string> strata;
  static constexpr std::size_t kMaxStrataKeys = 4;
  static constexpr std::uint32_t kMaxPerStratum = 100000;
  // The last stage completes the rollout only once at least this share of the
  // online devices it targets run the release healthily (acknowledged), and at
  // least one does: a release nobody runs never completes, never becomes the
  // baseline. A share, not all: at a million devices some are always mid-install.
  Ppm completion_share = Ppm::from_ppm(Ppm::kWhole / 100 * 95);

  // The limits in force in stage `index` (its own, else the plan's).
  const FailureLimits& limits_for(std::size_t index) const;

  // The gate's settings in stage `index`: the plan's, with the stage's limits;
  // in a stage that sets min_devices (a step of a ramp), promotion needs
  // min(min_acknowledged, max(a quarter of min_devices rounded up,
  // min(min_devices, 3))) acknowledgements: a step of 10 devices cannot show 50,
  // and at night half of a step may be off.
  GateSettings gate_for(std::size_t index) const;

  // Names the first thing wrong: no stages, shares not increasing, the last
  // stage below 100%, a setting outside its range.
  Status validate() const;
};

// --- tenant policy -------------------------------------------------------------

// What a tenant lets a channel run: the newest release (N), the one before
// (N-1), or exactly one version. Applies to every channel, content included —
// in 2024 customers' N-1 pins did not cover content.
struct Pin {
  enum class Kind : std::uint8_t { kLatest, kPrevious, kExact };
  Kind kind = Kind::kLatest;
  std::optional<Version> exact;  // set iff kind == kExact
};

// A weekly window in the device's local time. Minutes since local midnight;
// end > start, or end < start for a window that crosses midnight.
struct MaintenanceWindow {
  std::uint8_t days = 0x7f;  // bit d = day d is allowed, 0 = Monday .. 6 = Sunday
  std::uint16_t start_minute = 0;
  std::uint16_t end_minute = 24 * 60;
};

struct TenantPolicy {
  std::map<std::string, Pin> pins;             // channel name -> pin
  std::vector<MaintenanceWindow> windows;      // empty: any time
  Selector critical;                           // devices that count as critical
  bool critical_selector_set = false;          // an empty selector would match all
  // DDI (docs/ddi.md): a controller the tenant's gateway token speaks for that
  // is not enrolled yet is enrolled at its first request, without tags.
  bool ddi_auto_enroll = false;

  bool is_critical(const Tags& tags) const {
    return critical_selector_set && critical.matches(tags);
  }
};

}  // namespace tranche::core
