#include "sim/fleet_sim.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <thread>

#include "core/agent_machine.h"
#include "core/assignment.h"
#include "core/cohort.h"
#include "core/gate.h"
#include "core/rollout_machine.h"
#include "sim/event_queue.h"
#include "sim/run_evidence.h"

namespace tranche::sim {
namespace {

using core::AgentEvent;
using core::AgentPhase;
using core::DurationMs;

constexpr std::uint32_t kMinuteMs = 60'000;

enum EventKind : std::uint8_t {
  kSession,        // a device goes online or offline (shared by every run)
  kSharedSilence,  // a device that dropped off uncleanly would now count as silent
  kTick,           // once a minute: control planes look at their gates, samples are taken
  kRevert,         // policy "global": the vendor reverts the release
  kDeliver,        // a device gets the server's current answer
  kCrash,          // the bad release crashes the machine
  kBoot,           // a crashed machine comes back up
  kRepair,         // a person repairs a machine by hand
  kSilence,        // a crashed device would now count as silent
  kTrialEnd,       // the agent's trial window has passed
};

// now + delay in ms, saturating: anything past the horizon is dropped by the queue.
inline std::uint32_t after(std::uint32_t now, double delay_ms) {
  const double t = static_cast<double>(now) + std::max(0.0, delay_ms);
  return t >= 4.0e9 ? UINT32_MAX : static_cast<std::uint32_t>(t);
}

// --- randomness ----------------------------------------------------------------

inline std::uint64_t mix64(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() { return mix64(state_++ * 0x2545F4914F6CDD1DULL); }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double exponential(double mean) { return -mean * std::log1p(-uniform()); }
  double normal() {
    const double u1 = 1.0 - uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }

 private:
  std::uint64_t state_;
};

// --- per-device state ---------------------------------------------------------

// What every run shares: the device's online/offline life (4 bytes).
struct Device {
  std::uint16_t sessions = 0;  // session changes so far: seeds this device's draws
  std::uint8_t stratum = 0;    // class * regions + region
  std::uint8_t flags = 0;
};
constexpr std::uint8_t kOnline = 1;
constexpr std::uint8_t kEverOnline = 2;
constexpr std::uint8_t kAwaitingSilence = 4;  // dropped off without a goodbye, not yet silent
constexpr std::uint8_t kEndsUnclean = 128;  // the current session ends without a goodbye

// One device in one run (12 bytes). The agent record is packed: versions in a run
// are only "old" (last-known-good, index 0) and "new" (the release, index 1).
struct RunDevice {
  std::uint32_t trial_ms = 0;
  std::uint8_t agent = 0;  // phase:3 | good_new:1 | has_candidate:1 | candidate_new:1 | bad_new:1 | previous_in_slot:1
  std::uint8_t starts_left = 0;
  std::uint8_t flags = 0;
  std::uint8_t gen = 0;    // bumped when the device goes down or comes up
  std::uint8_t failed_boots = 0;
  std::uint8_t unclean_boots = 0;  // the agent record's, on the committed release
  std::uint8_t pad[2] = {0, 0};
};
static_assert(sizeof(RunDevice) == 12);

constexpr std::uint8_t kAdmitted = 1;        // a stage of the rollout took it
constexpr std::uint8_t kExposed = 2;         // it ran the release (acknowledged)
constexpr std::uint8_t kDown = 4;            // crashed, not running
constexpr std::uint8_t kWaitingPerson = 8;   // the OS gave up: recovery screen
constexpr std::uint8_t kCrashedEver = 16;
// 32: unused (the gate's standing is in Run::evidence)
constexpr std::uint8_t kNeedsPerson = 64;    // counted once as a manual repair
constexpr std::uint8_t kDeliveryPending = 128;

constexpr std::uint8_t kPhaseMask = 0x07;
constexpr std::uint8_t kGoodNew = 0x08;
constexpr std::uint8_t kHasCandidate = 0x10;
constexpr std::uint8_t kCandidateNew = 0x20;
constexpr std::uint8_t kBadNew = 0x40;
constexpr std::uint8_t kPreviousInSlot = 0x80;  // the old version waits in the other slot

// Memberships a device-in-run counts toward (recomputed around every change).
// (The gate's evidence is counted apart, in Run::evidence: sim/run_evidence.h.)
enum Membership : std::uint8_t {
  kIsDown = 1,
  kExposedOnline = 2,
  kExposedOnlineOk = 4,  // ... and back on last-known-good and up
  kRunsNewUp = 8,
  kOnNewExposed = 16,    // exposed and still on the release (up or down)
  kOnlineRunsNew = 32,   // online now, up, on the release
};
constexpr std::size_t kMembershipCount = 6;

struct Versions {
  core::Version old_v;
  core::Version new_v;
};

Versions make_versions() {
  auto o = core::Version::parse("1.0");
  auto n = core::Version::parse("2.0");
  TRANCHE_ASSERT(o.ok() && n.ok(), "simulator versions must parse");
  return Versions{o.value(), n.value()};
}

// --- one run: a policy with the bad or the good release ------------------------

struct Run {
  const Policy* policy = nullptr;
  bool bad = true;
  core::AgentConfig agent_config;
  RunDevice* dev = nullptr;  // this run's slot of device 0; devices are `stride` apart
  std::size_t stride = 1;
  RunDevice& at(std::uint32_t d) { return dev[static_cast<std::size_t>(d) * stride]; }
  const RunDevice& at(std::uint32_t d) const { return dev[static_cast<std::size_t>(d) * stride]; }
  Rng rng{0};

  core::RolloutStatus status;
  core::GateState gate;
  std::uint64_t dispatched = 0;  // devices of the cohort order admitted so far
  std::uint32_t last_gate_ms = 0;
  bool reverted = false;
  std::optional<std::uint32_t> halted_at_ms;

  std::array<std::int64_t, kMembershipCount> count{};  // devices per membership bit
  std::int64_t in(Membership which) const {
    return count[static_cast<std::size_t>(std::countr_zero(static_cast<unsigned>(which)))];
  }
  // A device's memberships went from `before` to `after`.
  void recount(std::uint8_t before, std::uint8_t after) {
    if (before == after) return;
    for (std::size_t b = 0; b < kMembershipCount; ++b) {
      count[b] += static_cast<std::int64_t>((after >> b) & 1) - ((before >> b) & 1);
    }
  }
  std::uint32_t integrated_ms = 0;
  double down_ms = 0;
  RunEvidence evidence;          // the gate's evidence (core/evidence.h)
  std::uint32_t accrued_ms = 0;  // the evidence's last accrual
  core::Coverage coverage;       // the last stage's, at the last gate look

  RunMetrics m;
};

std::uint8_t classify(const Device& d, const RunDevice& r) {
  const bool online = d.flags & kOnline;
  const bool down = r.flags & kDown;
  const bool exposed = r.flags & kExposed;
  const AgentPhase phase = static_cast<AgentPhase>(r.agent & kPhaseMask);
  const bool in_trial = phase == AgentPhase::kActivating || phase == AgentPhase::kTrial;
  const bool runs_new = in_trial ? (r.agent & kCandidateNew) != 0 : (r.agent & kGoodNew) != 0;
  std::uint8_t m = 0;
  if (down) m |= kIsDown;
  if (exposed && online) {
    m |= kExposedOnline;
    if (!down && !runs_new) m |= kExposedOnlineOk;
  }
  if (runs_new && !down) m |= kRunsNewUp;
  if (exposed && runs_new) m |= kOnNewExposed;
  if (online && runs_new && !down) m |= kOnlineRunsNew;
  return m;
}

bool runs_new(const RunDevice& r) {
  const AgentPhase phase = static_cast<AgentPhase>(r.agent & kPhaseMask);
  const bool in_trial = phase == AgentPhase::kActivating || phase == AgentPhase::kTrial;
  return in_trial ? (r.agent & kCandidateNew) != 0 : (r.agent & kGoodNew) != 0;
}

class Simulator {
 public:
  Simulator(const Scenario& s, const SimOptions& o)
      : s_(s), o_(o), versions_(make_versions()),
        horizon_ms_(static_cast<std::uint32_t>(s.horizon)),
        queue_(horizon_ms_, kMinuteMs) {}

  core::Result<SimResult> run();

 private:
  // setup
  void build_fleet();
  void add_runs();
  // time
  void integrate(Run& r, std::uint32_t now);
  template <typename F>
  void change(Run& r, std::uint32_t d, std::uint32_t now, F&& mutate);
  bool business(std::uint8_t stratum, double t_ms) const;
  double next_boundary(std::uint8_t stratum, double t_ms) const;
  double online_probability(std::uint8_t stratum, double t_ms) const;
  double draw_off_duration(std::uint8_t stratum, double t_ms, Rng& rng) const;
  double start_session(Device& dv, Rng& rng) const;
  // handlers
  void on_session(std::uint32_t d, std::uint32_t now);
  void on_shared_silence(std::uint32_t d, std::uint8_t gen, std::uint32_t now);
  void on_tick(std::uint32_t now);
  void on_revert(Run& r, std::uint32_t now);
  void on_deliver(Run& r, std::uint32_t d, std::uint8_t gen, std::uint32_t now);
  void on_crash(Run& r, std::uint32_t d, std::uint8_t gen, std::uint32_t now);
  void on_boot(Run& r, std::uint32_t d, std::uint8_t gen, std::uint32_t now);
  void on_repair(Run& r, std::uint32_t d, std::uint8_t gen, std::uint32_t now);
  void on_silence(Run& r, std::uint32_t d, std::uint8_t gen, std::uint32_t now);
  void on_trial_end(Run& r, std::uint32_t d, std::uint8_t gen, std::uint32_t now);
  // agent
  core::AgentRecord unpack(const RunDevice& rd) const;
  void pack(const core::AgentRecord& rec, RunDevice& rd) const;
  void drive(Run& r, std::uint32_t d, AgentEvent event, std::uint32_t now);
  void on_service_start(Run& r, std::uint32_t d, std::uint32_t now);
  // A fact for the gate about device d in run r (core/evidence.h).
  void record(Run& r, std::uint32_t d, core::Fact fact) {
    r.evidence.record(d, fact, presence(devices_[d]));
  }
  static Presence presence(const Device& dv) {
    return (dv.flags & (kOnline | kAwaitingSilence)) ? Presence::kOnline : Presence::kOffline;
  }
  // The last stage's coverage (core::Coverage): online devices it admitted
  // that have not failed, and of those the ones running the release healthily.
  core::Coverage coverage(const Run& r) const;
  // control plane
  bool desired_new(const Run& r, std::uint32_t d, std::uint32_t now) const;
  void schedule_delivery(Run& r, std::uint32_t d, std::uint32_t now, bool on_connect);
  void maybe_deliver(Run& r, std::uint32_t d, std::uint32_t now, bool on_connect);
  void apply(Run& r, core::RolloutEvent event, std::string reason, std::uint32_t now);
  void dispatch_stage(Run& r, std::uint32_t now);
  void send_previous(Run& r, std::uint32_t now);
  void finish(Run& r);
  bool crash_prone(std::uint32_t d) const;
  // The device's cohort bucket in the rollout (core::cohort_bucket of its id).
  std::uint32_t bucket_of(std::uint32_t d) const {
    char id[32];
    std::snprintf(id, sizeof id, "dev-%08u", d);
    return core::cohort_bucket(id, salt_);
  }
  std::uint8_t run_index(const Run& r) const {
    return static_cast<std::uint8_t>(&r - runs_.data());
  }

  const Scenario& s_;
  const SimOptions& o_;
  Versions versions_;
  std::uint32_t horizon_ms_;
  EventQueue queue_;
  std::uint32_t n_ = 0;
  std::vector<Device> devices_;
  std::uint64_t salt_ = 0;             // the rollout's cohort salt
  std::vector<std::uint32_t> order_;   // devices by bucket: the cohort order
  std::vector<core::Tags> stratum_tags_;
  std::vector<std::uint64_t> stratum_size_;  // devices per stratum (class x region)
  std::uint64_t ever_online_ = 0;
  std::uint64_t online_now_ = 0;  // devices online at this moment (Device::flags & kOnline)
  // TRANCHE_SIM_TRACE=1: the gate's reason every 10 simulated minutes, and the
  // devices that took the bad release without crashing, on stderr.
  const bool trace_ = std::getenv("TRANCHE_SIM_TRACE") != nullptr;
  std::vector<Run> runs_;
  std::vector<RunDevice> run_devices_;  // device-major: [device][run]
  std::uint64_t events_ = 0;
};

// --- local time and sessions -----------------------------------------------------

bool Simulator::business(std::uint8_t stratum, double t_ms) const {
  const Region& region = s_.regions[stratum % s_.regions.size()];
  const double local = static_cast<double>(s_.start) + t_ms + static_cast<double>(region.utc_offset);
  const auto day = static_cast<std::int64_t>(std::floor(local / static_cast<double>(core::kDay)));
  const int weekday = static_cast<int>(((day + 3) % 7 + 7) % 7);  // 1970-01-01 was a Thursday
  const double hour = (local - static_cast<double>(day) * static_cast<double>(core::kDay)) /
                      static_cast<double>(core::kHour);
  return weekday < 5 && hour >= s_.business_start_hour && hour < s_.business_end_hour;
}

double Simulator::next_boundary(std::uint8_t stratum, double t_ms) const {
  // The next local 08:00 or 18:00 (by the scenario's business hours) at which
  // business() changes: computed from the local day and hour, Monday = 0.
  const Region& region = s_.regions[stratum % s_.regions.size()];
  const double offset = static_cast<double>(s_.start) + static_cast<double>(region.utc_offset);
  const double day_ms = static_cast<double>(core::kDay);
  const double hour_ms = static_cast<double>(core::kHour);
  const double local = t_ms + offset;
  const double day_start = std::floor(local / day_ms) * day_ms;
  const auto day = static_cast<std::int64_t>(day_start / day_ms);
  const int weekday = static_cast<int>(((day + 3) % 7 + 7) % 7);  // 1970-01-01 was a Thursday
  const double open = day_start + s_.business_start_hour * hour_ms;
  const double close = day_start + s_.business_end_hour * hour_ms;
  double next = 0;
  if (weekday < 5 && local < open) {
    next = open;
  } else if (weekday < 5 && local < close) {
    next = close;
  } else {
    const int days_ahead = weekday >= 4 ? 7 - weekday : 1;  // Friday evening, Sat, Sun: Monday
    next = open + days_ahead * day_ms;
  }
  return next - offset;
}

double Simulator::online_probability(std::uint8_t stratum, double t_ms) const {
  const DeviceClass& c = s_.classes[stratum / s_.regions.size()];
  return business(stratum, t_ms) ? c.online_business : c.online_other;
}

// Offline time with a rate that changes at business-hour boundaries: the rate of
// coming online is p / (s (1 - p)), which makes the online share p in steady
// state; drawn exactly by walking the piecewise-constant segments.
double Simulator::draw_off_duration(std::uint8_t stratum, double t_ms, Rng& rng) const {
  const DeviceClass& c = s_.classes[stratum / s_.regions.size()];
  const double s = static_cast<double>(c.mean_session);
  double budget = rng.exponential(1.0);
  double t = t_ms;
  for (int guard = 0; guard < 64; ++guard) {
    const double p = online_probability(stratum, t);
    const double rate = p / (s * (1.0 - p));
    const double boundary = next_boundary(stratum, t);
    const double need = budget / rate;
    if (t + need <= boundary) return t + need - t_ms;
    budget -= rate * (boundary - t);
    t = boundary;
  }
  return t - t_ms;
}

// Marks the device online and returns how long the session lasts. It ends
// uncleanly (no goodbye) when an unclean disconnect comes before its natural end.
double Simulator::start_session(Device& dv, Rng& rng) const {
  const DeviceClass& c = s_.classes[dv.stratum / s_.regions.size()];
  const double session = rng.exponential(static_cast<double>(c.mean_session));
  const double unclean_rate = s_.unclean_per_10min / (10.0 * static_cast<double>(core::kMinute));
  const double drop = unclean_rate > 0 ? rng.exponential(1.0 / unclean_rate) : 1e18;
  dv.flags = static_cast<std::uint8_t>((dv.flags | kOnline | kEverOnline) & ~kEndsUnclean);
  if (drop < session) dv.flags |= kEndsUnclean;
  return std::min(session, drop);
}

void Simulator::build_fleet() {
  n_ = static_cast<std::uint32_t>(s_.devices);
  devices_.assign(n_, Device{});
  std::vector<std::uint32_t> bucket(n_);  // only to sort by: recomputed when dispatching
  order_.resize(n_);
  const std::size_t nr = s_.regions.size();
  for (std::size_t ci = 0; ci < s_.classes.size(); ++ci) {
    for (std::size_t ri = 0; ri < nr; ++ri) {
      core::Tags tags{{"class", s_.classes[ci].name}, {"region", s_.regions[ri].name}};
      stratum_tags_.push_back(std::move(tags));
    }
  }
  stratum_size_.assign(stratum_tags_.size(), 0);
  salt_ = core::rollout_salt(s_.name + "-release-2");
  for (std::uint32_t d = 0; d < n_; ++d) {
    Rng rng(mix64(o_.seed * 0x100000001b3ULL + d));
    double u = rng.uniform();
    std::size_t ci = 0;
    while (ci + 1 < s_.classes.size() && u >= s_.classes[ci].share) u -= s_.classes[ci++].share;
    u = rng.uniform();
    std::size_t ri = 0;
    while (ri + 1 < nr && u >= s_.regions[ri].share) u -= s_.regions[ri++].share;
    devices_[d].stratum = static_cast<std::uint8_t>(ci * nr + ri);
    bucket[d] = bucket_of(d);
    ++stratum_size_[ci * nr + ri];
  }
  std::iota(order_.begin(), order_.end(), 0U);
  std::sort(order_.begin(), order_.end(), [&](std::uint32_t a, std::uint32_t b) {
    return bucket[a] != bucket[b] ? bucket[a] < bucket[b] : a < b;
  });
  std::vector<std::uint32_t>().swap(bucket);
  // Initial sessions: online with the probability of the local hour at t = 0.
  for (std::uint32_t d = 0; d < n_; ++d) {
    Device& dv = devices_[d];
    Rng rng(mix64(o_.seed ^ (static_cast<std::uint64_t>(d) << 20) ^ 0xabcdefULL));
    double next = 0;
    if (rng.uniform() < online_probability(dv.stratum, 0)) {
      ++ever_online_;
      ++online_now_;
      next = start_session(dv, rng);  // memoryless: a fresh session is the rest of one
    } else {
      next = draw_off_duration(dv.stratum, 0, rng);
    }
    queue_.push(after(0, next), d, kSession, 0, 0);
  }
}

void Simulator::add_runs() {
  std::vector<std::string> names = o_.policies.empty() ? s_.default_policies : o_.policies;
  for (int pass = 0; pass < 2; ++pass) {
    const bool bad = pass == 0;
    if ((bad && !o_.bad_run) || (!bad && !o_.good_run)) continue;
    for (const auto& name : names) {
      Run r;
      r.policy = &s_.policies.at(name);
      r.bad = bad;
      r.agent_config = s_.agent;
      r.agent_config.fallback = r.policy->agent;
      // Seeded by (seed, policy, bad or good): a run draws the same numbers
      // whichever other runs share its pass.
      r.rng = Rng(mix64(o_.seed * 31 + core::rollout_salt(name) * 2 + (bad ? 1 : 0)));
      runs_.push_back(std::move(r));
    }
  }
  // The runs' states of one device sit side by side: a session event touches
  // every run, and this keeps that to one or two cache lines.
  const std::size_t stride = runs_.size();
  run_devices_.assign(static_cast<std::size_t>(n_) * stride, RunDevice{});
  for (auto& rd : run_devices_) {
    rd.agent = static_cast<std::uint8_t>(AgentPhase::kCommitted);  // runs "old", committed
  }
  for (std::size_t i = 0; i < runs_.size(); ++i) {
    runs_[i].dev = run_devices_.data() + i;
    runs_[i].stride = stride;
  }
  for (Run& r : runs_) {
    r.evidence = RunEvidence(n_);
    for (std::uint32_t d = 0; d < n_; ++d) {
      const std::uint8_t m = classify(devices_[d], r.at(d));
      for (std::size_t b = 0; b < kMembershipCount; ++b) r.count[b] += (m >> b) & 1;
      r.evidence.presence_changed(d, Presence::kOffline, presence(devices_[d]));
    }
  }
}

// --- bookkeeping ---------------------------------------------------------------

void Simulator::integrate(Run& r, std::uint32_t now) {
  if (now <= r.integrated_ms) return;
  const double dt = now - r.integrated_ms;
  r.down_ms += dt * static_cast<double>(r.in(kIsDown));
  r.integrated_ms = now;
}

template <typename F>
void Simulator::change(Run& r, std::uint32_t d, std::uint32_t now, F&& mutate) {
  integrate(r, now);
  const std::uint8_t before = classify(devices_[d], r.at(d));
  mutate(r.at(d));
  const std::uint8_t after = classify(devices_[d], r.at(d));
  r.recount(before, after);
}

bool Simulator::crash_prone(std::uint32_t d) const {
  const core::Tags& tags = stratum_tags_[devices_[d].stratum];
  if (s_.crash_class != "all" && tags.at("class") != s_.crash_class) return false;
  if (s_.crash_region != "all" && tags.at("region") != s_.crash_region) return false;
  if (s_.crash_probability >= 1.0) return true;
  const double u = static_cast<double>(mix64(o_.seed ^ 0x5eedULL ^ (static_cast<std::uint64_t>(d) << 8)) >> 11) * 0x1.0p-53;
  return u < s_.crash_probability;
}

// --- agent ----------------------------------------------------------------------

core::AgentRecord Simulator::unpack(const RunDevice& rd) const {
  core::AgentRecord rec;
  rec.phase = static_cast<AgentPhase>(rd.agent & kPhaseMask);
  rec.good = (rd.agent & kGoodNew) ? versions_.new_v : versions_.old_v;
  if (rd.agent & kHasCandidate) {
    rec.candidate = (rd.agent & kCandidateNew) ? versions_.new_v : versions_.old_v;
  }
  rec.starts_left = rd.starts_left;
  rec.trial_started_at = rd.trial_ms;
  if (rd.agent & kBadNew) rec.bad.push_back(versions_.new_v);
  if (rd.agent & kPreviousInSlot) {
    rec.previous = versions_.old_v;
    rec.previous_in_slot = true;
  }
  rec.unclean_boots = rd.unclean_boots;
  return rec;
}

void Simulator::pack(const core::AgentRecord& rec, RunDevice& rd) const {
  std::uint8_t a = static_cast<std::uint8_t>(rec.phase);
  TRANCHE_ASSERT(rec.good.has_value(), "simulated devices always have a good version");
  if (*rec.good == versions_.new_v) a |= kGoodNew;
  if (rec.candidate) {
    a |= kHasCandidate;
    if (*rec.candidate == versions_.new_v) a |= kCandidateNew;
  }
  for (const auto& b : rec.bad) {
    TRANCHE_ASSERT(b == versions_.new_v, "only the release can fail in the simulator");
    a |= kBadNew;
  }
  if (rec.previous_in_slot) {
    TRANCHE_ASSERT(rec.previous == versions_.old_v && *rec.good == versions_.new_v,
                   "only the release is committed over the old version in the simulator");
    a |= kPreviousInSlot;
  }
  rd.agent = a;
  rd.unclean_boots = static_cast<std::uint8_t>(std::min<std::uint32_t>(rec.unclean_boots, 255));
  rd.starts_left = static_cast<std::uint8_t>(std::min<std::uint32_t>(rec.starts_left, 255));
  rd.trial_ms = static_cast<std::uint32_t>(std::max<core::TimeMs>(0, rec.trial_started_at));
}

// Runs the agent machine like a shell would: executes each action in order and
// feeds back its outcome. Downloads, verification and slot writes are instant and
// succeed; what matters here is what runs and when it crashes.
void Simulator::drive(Run& r, std::uint32_t d, AgentEvent event, std::uint32_t now) {
  AgentEvent queue[8];
  std::size_t head = 0, tail = 0;
  queue[tail++] = std::move(event);
  while (head < tail) {
    AgentEvent ev = std::move(queue[head++]);
    auto step = core::agent_step(r.agent_config, unpack(r.at(d)), ev, now);
    if (!step.ok()) {
      // An offer the machine refuses (e.g. during a trial) is retried later.
      TRANCHE_ASSERT(ev.kind == AgentEvent::Kind::kOffer, step.error().message.c_str());
      return;
    }
    change(r, d, now, [&](RunDevice& rd) {
      pack(step->record, rd);
      if (runs_new(rd) && !(rd.flags & kExposed)) {
        rd.flags |= kExposed;
        ++r.m.exposed;
        r.m.last_exposure_s = now / 1000.0;
      }
    });
    // Committed on the release (its trial passed, or it had none): it runs it
    // healthily, which its next check-in tells the server.
    if (step->record.phase == AgentPhase::kCommitted && step->record.good == versions_.new_v) {
      record(r, d, core::Fact::kRunsHealthy);
    }
    for (const auto& action : step->actions) {
      using K = core::AgentAction::Kind;
      switch (action.kind) {
        case K::kDownload: queue[tail++] = AgentEvent{AgentEvent::Kind::kDownloaded, {}, {}, false, true}; break;
        case K::kVerify: queue[tail++] = AgentEvent{AgentEvent::Kind::kVerified, {}, {}, false, true}; break;
        case K::kWriteSlot: queue[tail++] = AgentEvent{AgentEvent::Kind::kSlotWritten, {}, {}, false, true}; break;
        case K::kActivate:
          // The pointer switch succeeds; the machine waits for it only when it
          // activates into a trial (without fallback it commits at once).
          if (step->record.phase == AgentPhase::kActivating) {
            queue[tail++] = AgentEvent{AgentEvent::Kind::kActivated, {}, {}, false, true};
          }
          break;
        case K::kStartService: on_service_start(r, d, now); break;
        case K::kReport:
          // What the agent reports, as the server counts it.
          if (const auto wire = core::device_event_of(action.report); wire && core::is_failure(*wire)) {
            record(r, d, core::fact_of(*wire));
          }
          break;
        case K::kPersist:      // the run's memory is the device's disk
        case K::kRevert:       // the record says what runs
        case K::kStopService:  // the next start replaces what ran
          break;
      }
      TRANCHE_ASSERT(tail < 8, "agent event chain too long");
    }
  }
}

void Simulator::on_service_start(Run& r, std::uint32_t d, std::uint32_t now) {
  // A trial passes only when the service has stayed up for the whole window
  // since this start: a power-off stales this event (see on_session).
  if (static_cast<AgentPhase>(r.at(d).agent & kPhaseMask) == AgentPhase::kTrial) {
    queue_.push(after(now, static_cast<double>(r.agent_config.trial_window)), d, kTrialEnd,
                run_index(r), r.at(d).gen);
  }
  if (!r.bad || !runs_new(r.at(d)) || !crash_prone(d)) return;
  const double delay = static_cast<double>(s_.crash_after) +
                       r.rng.exponential(static_cast<double>(s_.crash_mean));
  queue_.push(after(now, delay), d, kCrash, run_index(r), r.at(d).gen);
}

core::Coverage Simulator::coverage(const Run& r) const {
  core::Coverage c;
  for (std::uint32_t d = 0; d < n_; ++d) {
    const RunDevice& rd = r.at(d);
    if (!(rd.flags & kAdmitted) || presence(devices_[d]) != Presence::kOnline) continue;
    const core::Standing s = r.evidence.standing(d);
    if (core::is_failed(s)) continue;
    ++c.target;
    if (s == core::Standing::kAcknowledged && runs_new(rd) && !(rd.flags & kDown)) ++c.running;
  }
  return c;
}

// --- control plane --------------------------------------------------------------

bool Simulator::desired_new(const Run& r, std::uint32_t d, std::uint32_t now) const {
  const RunDevice& rd = r.at(d);
  if (r.policy->kind == PolicyKind::kGlobal) {
    return !(r.bad && r.policy->revert_after >= 0 && now >= r.policy->revert_after);
  }
  using S = core::RolloutState;
  switch (r.status.state) {
    case S::kPending: return false;
    case S::kRunning: return (rd.flags & kAdmitted) != 0;
    case S::kCompleted: return true;
    case S::kPaused:
    case S::kHalted:
    case S::kAborted: return (rd.flags & kExposed) && runs_new(rd);  // no new devices
    case S::kRollingBack:
    case S::kRolledBack: return false;
  }
  return false;
}

void Simulator::schedule_delivery(Run& r, std::uint32_t d, std::uint32_t now, bool on_connect) {
  RunDevice& rd = r.at(d);
  if (rd.flags & kDeliveryPending) return;
  double delay = 0;
  if (on_connect) {
    delay = r.rng.exponential(static_cast<double>(s_.connect_mean));
  } else if (s_.delivery_poll) {
    const double period = static_cast<double>(s_.poll_min) +
                          r.rng.uniform() * static_cast<double>(s_.poll_max - s_.poll_min);
    delay = r.rng.uniform() * period;
  } else {
    delay = r.rng.exponential(static_cast<double>(s_.held_mean));
  }
  rd.flags |= kDeliveryPending;
  queue_.push(after(now, delay), d, kDeliver, run_index(r), rd.gen);
}

void Simulator::maybe_deliver(Run& r, std::uint32_t d, std::uint32_t now, bool on_connect) {
  const RunDevice& rd = r.at(d);
  if (!(devices_[d].flags & kOnline) || (rd.flags & kDown)) return;
  if (desired_new(r, d, now) == runs_new(rd)) return;
  if (desired_new(r, d, now) && (rd.agent & kBadNew)) return;  // never retried here
  schedule_delivery(r, d, now, on_connect);
}

void Simulator::dispatch_stage(Run& r, std::uint32_t now) {
  const core::Plan& plan = r.policy->plan;
  const core::Stage& stage = plan.stages[r.status.stage];
  const core::Ppm share = core::effective_share(stage.percent, stage.min_devices, n_);
  while (r.dispatched < n_ && bucket_of(order_[r.dispatched]) < share.value()) {
    const std::uint32_t d = order_[r.dispatched++];
    if ((r.at(d).flags & kAdmitted) || !stage.selector.matches(stratum_tags_[devices_[d].stratum])) continue;
    r.at(d).flags |= kAdmitted;
    maybe_deliver(r, d, now, false);
  }
  if (stage.min_per_stratum == 0 || plan.strata.empty()) return;
  // min_per_stratum: each of the plan's strata — the scenario's class x region
  // strata grouped by the plan's keys, counted as the server counts them — at the
  // share core::stage_share gives it; the devices above the stage's share that
  // it admits.
  core::StratumCounts counts;
  for (std::size_t s = 0; s < stratum_tags_.size(); ++s) {
    counts[core::stratum_of(stratum_tags_[s], plan.strata)] += stratum_size_[s];
  }
  const core::RolloutView view{"", salt_, versions_.new_v, versions_.old_v, &plan, r.status, n_, &counts};
  std::vector<std::uint32_t> raised(stratum_tags_.size(), share.value());
  std::uint32_t highest = share.value();
  for (std::size_t s = 0; s < stratum_tags_.size(); ++s) {
    raised[s] = core::stage_share(view, r.status.stage, stratum_tags_[s]).value();
    highest = std::max(highest, raised[s]);
  }
  for (std::uint64_t i = r.dispatched; i < n_; ++i) {
    const std::uint32_t d = order_[i];
    const std::uint32_t bucket = bucket_of(d);
    if (bucket >= highest) break;
    const std::uint8_t s = devices_[d].stratum;
    if (bucket >= raised[s] || (r.at(d).flags & kAdmitted) || !stage.selector.matches(stratum_tags_[s])) continue;
    r.at(d).flags |= kAdmitted;
    maybe_deliver(r, d, now, false);
  }
}

void Simulator::send_previous(Run& r, std::uint32_t now) {
  for (std::uint32_t d = 0; d < n_; ++d) {
    if (r.at(d).flags & kExposed) maybe_deliver(r, d, now, false);
  }
}

void Simulator::apply(Run& r, core::RolloutEvent event, std::string reason, std::uint32_t now) {
  auto t = core::apply_event(r.status, event, r.policy->plan, now, std::move(reason), r.coverage);
  TRANCHE_ASSERT(t.ok(), "simulator fed the rollout machine an event it refuses");
  const bool halting = event == core::RolloutEvent::kHalt;
  r.status = t->next;
  if (halting) {
    r.m.halted = true;
    r.m.halt_reason = r.status.reason;
    if (!r.m.time_to_detect_s) r.m.time_to_detect_s = now / 1000.0;
    r.halted_at_ms = now;
    r.m.time_to_halt_s = now / 1000.0;
  }
  switch (t->effect) {
    case core::RolloutEffect::kEnterStage: dispatch_stage(r, now); break;
    case core::RolloutEffect::kSendPrevious: send_previous(r, now); break;
    case core::RolloutEffect::kStopDispatch:
    case core::RolloutEffect::kFinish:
    case core::RolloutEffect::kNone: break;
  }
}

// --- handlers -------------------------------------------------------------------

void Simulator::on_session(std::uint32_t d, std::uint32_t now) {
  Device& dv = devices_[d];
  ++dv.sessions;
  Rng rng(mix64(o_.seed ^ (static_cast<std::uint64_t>(d) << 20) ^
                (static_cast<std::uint64_t>(dv.sessions) << 52) ^ 0x5e55ULL));
  const bool going_online = !(dv.flags & kOnline);
  bool unclean = false;
  double next = 0;
  const Presence was = presence(dv);
  if (going_online) {
    if (!(dv.flags & kEverOnline)) ++ever_online_;
    ++online_now_;
    next = start_session(dv, rng);
    dv.flags = static_cast<std::uint8_t>(dv.flags & ~kAwaitingSilence);
  } else {
    unclean = (dv.flags & kEndsUnclean) != 0;
    --online_now_;
    dv.flags = static_cast<std::uint8_t>(dv.flags & ~(kOnline | kEndsUnclean));
    // Without a goodbye the server presumes it online until it is silent.
    if (unclean) dv.flags |= kAwaitingSilence;
    next = draw_off_duration(dv.stratum, now, rng);
  }
  const Presence is = presence(dv);
  // Tell every run; flags already flipped, so undo for `before` classification.
  for (Run& r : runs_) {
    r.evidence.presence_changed(d, was, is);
    integrate(r, now);
    dv.flags ^= kOnline;
    const std::uint8_t before = classify(dv, r.at(d));
    dv.flags ^= kOnline;
    const std::uint8_t after = classify(dv, r.at(d));
    r.recount(before, after);
    if (!going_online && !(r.at(d).flags & kDown)) {
      // Shutting down stops the protected service: pending crash and trial
      // events of this run no longer apply (a trial restarts its clock at boot).
      RunDevice& rd = r.at(d);
      const AgentPhase phase = static_cast<AgentPhase>(rd.agent & kPhaseMask);
      if (phase == AgentPhase::kActivating || phase == AgentPhase::kTrial || runs_new(rd)) {
        ++rd.gen;
        rd.flags = static_cast<std::uint8_t>(rd.flags & ~kDeliveryPending);
      }
    }
    if (going_online && !(r.at(d).flags & kDown)) {
      RunDevice& rd = r.at(d);
      const AgentPhase phase = static_cast<AgentPhase>(rd.agent & kPhaseMask);
      // A machine that boots runs its agent; only a trial or the release's
      // content make that boot matter (a committed old version just starts).
      const bool trial = phase == AgentPhase::kActivating || phase == AgentPhase::kTrial;
      // A boot matters to a trial, and to a machine holding the bad release;
      // anywhere else the agent just starts the committed version, which changes
      // nothing the simulation tracks (so the machine is not consulted).
      if (trial || (r.bad && runs_new(rd))) {
        drive(r, d, AgentEvent{AgentEvent::Kind::kBoot, {}, {}, false, true}, now);
      }
      // Committed bad content loads early in boot and crashes the machine before
      // the agent can fetch anything: no delivery races the crash.
      const bool doomed = !trial && r.bad && runs_new(rd) && crash_prone(d);
      if (!doomed) maybe_deliver(r, d, now, true);
    }
  }
  if (!going_online && unclean) {
    // Last heartbeat somewhere in the interval before the drop; silent once the
    // allowed number of heartbeats has been missed.
    const double hb = static_cast<double>(s_.heartbeat_interval);
    const double last_heard = std::max(0.0, now - rng.uniform() * hb);
    const double at = last_heard + hb * s_.silent_after_missed + 1;
    queue_.push(after(now, at - now), d, kSharedSilence, 0,
                static_cast<std::uint8_t>(dv.sessions));
  }
  queue_.push(after(now, next), d, kSession, 0, 0);
}

void Simulator::on_shared_silence(std::uint32_t d, std::uint8_t gen, std::uint32_t now) {
  const Device& dv = devices_[d];
  if (static_cast<std::uint8_t>(dv.sessions) != gen || (dv.flags & kOnline)) return;
  core::GateSettings gs;
  gs.heartbeat_interval = s_.heartbeat_interval;
  gs.silent_after_missed = s_.silent_after_missed;
  // The check was scheduled at last heartbeat + allowed silence + 1 ms (see
  // on_session), so that is when the device was last heard of.
  const core::TimeMs last = static_cast<core::TimeMs>(now) - s_.heartbeat_interval * s_.silent_after_missed - 1;
  if (!core::is_silent(gs, last, false, now)) return;
  for (Run& r : runs_) {
    record(r, d, core::Fact::kSilent);  // a crashed machine's own silence is the same one
    r.evidence.presence_changed(d, Presence::kOnline, Presence::kOffline);
  }
  devices_[d].flags = static_cast<std::uint8_t>(devices_[d].flags & ~kAwaitingSilence);
}

void Simulator::on_deliver(Run& r, std::uint32_t d, std::uint8_t gen, std::uint32_t now) {
  RunDevice& rd = r.at(d);
  if (rd.gen != gen) return;
  rd.flags = static_cast<std::uint8_t>(rd.flags & ~kDeliveryPending);
  if (!(devices_[d].flags & kOnline) || (rd.flags & kDown)) return;
  const bool want_new = desired_new(r, d, now);
  if (r.agent_config.fallback && runs_new(rd) && r.policy->kind != PolicyKind::kGlobal &&
      core::sends_back(r.status.state, r.policy->plan.on_failure)) {
    // The answer revokes the release: the agent leaves it at once for the
    // other slot (a committed device) or its trial's fallback.
    drive(r, d, AgentEvent{AgentEvent::Kind::kRevoked, versions_.new_v, {}, false, true}, now);
  }
  if (want_new == runs_new(r.at(d))) return;
  // The server's answer tells it to install the release: exposed from now.
  if (want_new) record(r, d, core::Fact::kOffered);
  drive(r, d,
        AgentEvent{AgentEvent::Kind::kOffer, want_new ? versions_.new_v : versions_.old_v, {},
                   false, true},
        now);
}

void Simulator::on_crash(Run& r, std::uint32_t d, std::uint8_t gen, std::uint32_t now) {
  RunDevice& rd = r.at(d);
  if (rd.gen != gen || (rd.flags & kDown) || !runs_new(rd)) return;
  if (!(devices_[d].flags & kOnline)) return;  // powered off first: it crashes at next boot
  if (!(rd.flags & kCrashedEver)) ++r.m.devices_crashed;
  change(r, d, now, [&](RunDevice& x) {
    x.flags = static_cast<std::uint8_t>((x.flags | kDown | kCrashedEver) & ~kDeliveryPending);
    x.failed_boots = 0;
    ++x.gen;
  });
  const double hb = static_cast<double>(s_.heartbeat_interval);
  const double last_heard = std::max(0.0, now - r.rng.uniform() * hb);
  queue_.push(after(now, last_heard + hb * s_.silent_after_missed + 1 - now), d,
              kSilence, run_index(r), rd.gen);
  const AgentPhase phase = static_cast<AgentPhase>(rd.agent & kPhaseMask);
  const bool trial = phase == AgentPhase::kActivating || phase == AgentPhase::kTrial;
  if (!(r.agent_config.fallback && trial)) {
    // Without a fallback only a person brings it back (or luck, when the
    // scenario allows self-healing reboots).
    const double z = r.rng.normal();
    const double repair = static_cast<double>(s_.repair_median) * std::exp(s_.repair_sigma * z);
    queue_.push(after(now, repair), d, kRepair, run_index(r), rd.gen);
  }
  queue_.push(after(now, static_cast<double>(s_.reboot_cycle)), d, kBoot, run_index(r), rd.gen);
}

void Simulator::on_boot(Run& r, std::uint32_t d, std::uint8_t gen, std::uint32_t now) {
  RunDevice& rd = r.at(d);
  if (rd.gen != gen || !(rd.flags & kDown) || (rd.flags & kWaitingPerson)) return;
  const AgentPhase phase = static_cast<AgentPhase>(rd.agent & kPhaseMask);
  const bool trial = phase == AgentPhase::kActivating || phase == AgentPhase::kTrial;
  if (r.agent_config.fallback && trial) {
    // tranche's agent starts before the protected service and finds a trial with
    // no clean end: it falls back at once, before the release runs again.
    change(r, d, now, [](RunDevice& x) {
      x.flags = static_cast<std::uint8_t>(x.flags & ~kDown);
      ++x.gen;
    });
    drive(r, d, AgentEvent{AgentEvent::Kind::kBoot, {}, {}, false, false}, now);
    maybe_deliver(r, d, now, true);
    return;
  }
  // The release's content loads early in boot and crashes the machine again,
  // unless the revert reached it first (the scenario's self-heal chance).
  if (s_.self_heal_per_reboot > 0 && !desired_new(r, d, now) &&
      r.rng.uniform() < s_.self_heal_per_reboot) {
    change(r, d, now, [](RunDevice& x) {
      x.agent = static_cast<std::uint8_t>(static_cast<std::uint8_t>(AgentPhase::kCommitted) |
                                          (x.agent & kBadNew));
      x.flags = static_cast<std::uint8_t>(x.flags & ~kDown);
      ++x.gen;
    });
    return;
  }
  ++rd.failed_boots;
  if (rd.failed_boots >= s_.os_gives_up_after) {
    rd.flags |= kWaitingPerson;  // the recovery screen waits for a person
    if (!(rd.flags & kNeedsPerson)) {
      rd.flags |= kNeedsPerson;
      ++r.m.manual_repairs;
    }
    return;
  }
  if (r.agent_config.fallback && phase == AgentPhase::kCommitted) {
    // The release passed its trial and now takes the machine down at every
    // boot. tranche's agent starts before the protected service and counts the
    // unclean boot; at the k-th in a row (agent.max_unclean_boots) it starts
    // the version in the other slot instead (core::agent_step).
    drive(r, d, AgentEvent{AgentEvent::Kind::kBoot, {}, {}, false, false}, now);
    if (!runs_new(r.at(d))) {
      change(r, d, now, [](RunDevice& x) {
        x.flags = static_cast<std::uint8_t>(x.flags & ~kDown);
        x.failed_boots = 0;
        ++x.gen;
      });
      maybe_deliver(r, d, now, true);
      return;
    }
  }
  const double next = r.rng.exponential(static_cast<double>(s_.crash_mean)) +
                      static_cast<double>(s_.reboot_cycle);
  queue_.push(after(now, next), d, kBoot, run_index(r), rd.gen);
}

void Simulator::on_repair(Run& r, std::uint32_t d, std::uint8_t gen, std::uint32_t now) {
  RunDevice& rd = r.at(d);
  if (rd.gen != gen || !(rd.flags & kDown)) return;
  if (!(rd.flags & kNeedsPerson)) {
    rd.flags |= kNeedsPerson;
    ++r.m.manual_repairs;
  }
  // A person boots into recovery and deletes the release's file: the machine
  // runs the previous version again.
  change(r, d, now, [](RunDevice& x) {
    x.agent = static_cast<std::uint8_t>(static_cast<std::uint8_t>(AgentPhase::kCommitted) |
                                        (x.agent & kBadNew));
    x.flags = static_cast<std::uint8_t>(x.flags & ~(kDown | kWaitingPerson));
    ++x.gen;
  });
  maybe_deliver(r, d, now, true);
}

void Simulator::on_silence(Run& r, std::uint32_t d, std::uint8_t gen, std::uint32_t) {
  if (r.at(d).gen != gen || !(r.at(d).flags & kDown)) return;
  record(r, d, core::Fact::kSilent);
}

void Simulator::on_trial_end(Run& r, std::uint32_t d, std::uint8_t gen, std::uint32_t now) {
  RunDevice& rd = r.at(d);
  if (rd.gen != gen || (rd.flags & kDown) || !(devices_[d].flags & kOnline)) return;
  if (static_cast<AgentPhase>(rd.agent & kPhaseMask) != AgentPhase::kTrial) return;
  drive(r, d, AgentEvent{AgentEvent::Kind::kTrialPassed, {}, {}, false, true}, now);
  maybe_deliver(r, d, now, false);
}

void Simulator::on_revert(Run& r, std::uint32_t now) {
  r.reverted = true;
  r.halted_at_ms = now;
  r.m.time_to_halt_s = now / 1000.0;
  for (std::uint32_t d = 0; d < n_; ++d) maybe_deliver(r, d, now, false);
}

void Simulator::on_tick(std::uint32_t now) {
  for (Run& r : runs_) {
    integrate(r, now);
    // Exposure accrues per tick, as the server's engine accrues it (core/evidence.h).
    r.evidence.accrue(static_cast<core::DurationMs>(now - r.accrued_ms));
    r.accrued_ms = now;
    r.m.down_series.push_back(static_cast<std::uint32_t>(r.in(kIsDown)));
    if (r.policy->kind == PolicyKind::kRings) {
      const core::Plan& plan = r.policy->plan;
      // Compared as DurationMs: a tick of 2^32 ms or more from a plan file would
      // truncate to a small uint32 and look at the gate every minute.
      if (r.status.state == core::RolloutState::kRunning &&
          static_cast<DurationMs>(now - r.last_gate_ms) >= plan.gate.tick) {
        r.last_gate_ms = now;
        const core::GateObservation obs =
            core::observe(r.evidence.tally(), static_cast<core::DurationMs>(now) - r.status.stage_started_at,
                          plan.stages[r.status.stage].bake);
        const bool last = std::size_t{r.status.stage} + 1 >= plan.stages.size();
        r.coverage = last ? coverage(r) : core::Coverage{};
        core::TickDecision decision = core::decide_tick(r.status, plan, r.gate, obs, now, r.coverage);
        if (trace_ && (now % (10 * kMinuteMs)) == 0) {
          std::fprintf(stderr, "[%s %s t=%um] stage %u: %s\n", r.policy->name.c_str(), r.bad ? "bad" : "good",
                       now / kMinuteMs, r.status.stage, decision.reason.c_str());
        }
        r.gate = decision.gate.state;
        if (decision.event == core::RolloutEvent::kHalt) r.m.halted_by_limit = decision.gate.verdict.limit_crossed;
        apply(r, decision.event, std::move(decision.reason), now);
      }
      if (r.status.state == core::RolloutState::kRollingBack && r.in(kOnNewExposed) == 0) {
        apply(r, core::RolloutEvent::kRollbackDone,
              "every exposed device runs the previous version", now);
      }
    }
    if (r.bad && r.halted_at_ms && !r.m.time_to_rollback99_s && r.in(kExposedOnline) > 0 &&
        static_cast<double>(r.in(kExposedOnlineOk)) >= 0.99 * static_cast<double>(r.in(kExposedOnline))) {
      r.m.time_to_rollback99_s = now / 1000.0;
    }
    if (!r.bad) {
      const double up_new = static_cast<double>(r.in(kRunsNewUp));
      if (!r.m.t99_all_s && up_new >= 0.99 * n_) r.m.t99_all_s = now / 1000.0;
      if (!r.m.t99_ever_online_s && ever_online_ > 0 &&
          up_new >= 0.99 * static_cast<double>(ever_online_)) {
        r.m.t99_ever_online_s = now / 1000.0;
      }
      const double online_new = static_cast<double>(r.in(kOnlineRunsNew));
      if (!r.m.t99_online_s && online_now_ > 0 &&
          online_new >= 0.99 * static_cast<double>(online_now_)) {
        r.m.t99_online_s = now / 1000.0;
      }
    }
  }
  if (now + kMinuteMs <= horizon_ms_) queue_.push(now + kMinuteMs, 0, kTick, 0, 0);
}

void Simulator::finish(Run& r) {
  integrate(r, horizon_ms_);
  if (trace_) {
    for (std::uint32_t d = 0; d < n_; ++d) {
      const RunDevice& x = r.at(d);
      if ((x.flags & kExposed) && !(x.flags & kCrashedEver) && r.bad) {
        std::fprintf(stderr, "[%s] exposed, never crashed: dev %u agent %02x flags %02x online %d\n",
                     r.policy->name.c_str(), d, x.agent, x.flags, devices_[d].flags & kOnline);
      }
    }
  }
  r.m.still_down_at_horizon = static_cast<std::uint64_t>(r.in(kIsDown));
  r.m.device_hours_down = r.down_ms / static_cast<double>(core::kHour);
  const auto sample = [&](double days) -> std::uint64_t {
    const auto i = static_cast<std::size_t>(std::llround(days * 24 * 60));
    return i < r.m.down_series.size() ? r.m.down_series[i] : r.m.still_down_at_horizon;
  };
  r.m.down_day6 = sample(6.0);
  r.m.down_day10_8 = sample(10.8);
  r.m.final_state = r.policy->kind == PolicyKind::kGlobal
                        ? (r.reverted ? "reverted" : "pushed to all")
                        : std::string(core::to_string(r.status.state));
}

core::Result<SimResult> Simulator::run() {
  if (s_.horizon <= 0 || s_.horizon > 45 * core::kDay) {
    return core::Error{core::ErrorCode::kOutOfRange, "horizon must be between 1ms and 45 days"};
  }
  // Device::stratum and Event::variant are one byte each.
  if (s_.classes.empty() || s_.regions.empty() || s_.classes.size() * s_.regions.size() > 256) {
    return core::Error{core::ErrorCode::kOutOfRange,
                       "device classes times regions must be between 1 and 256"};
  }
  std::vector<std::string> names = o_.policies.empty() ? s_.default_policies : o_.policies;
  if (names.size() > 128) {
    return core::Error{core::ErrorCode::kOutOfRange, "at most 128 policies in one simulation"};
  }
  for (const auto& name : names) {
    if (!s_.policies.count(name)) {
      std::string known;
      for (const auto& kv : s_.policies) known += (known.empty() ? "" : ", ") + kv.first;
      return core::Error{core::ErrorCode::kNotFound,
                         "no policy '" + name + "' in " + s_.file + " (known: " + known + ")"};
    }
  }
  build_fleet();
  add_runs();
  for (Run& r : runs_) {
    if (r.policy->kind == PolicyKind::kGlobal) {
      for (std::uint32_t d = 0; d < n_; ++d) maybe_deliver(r, d, 0, false);
      // A revert after the horizon never happens (and would not fit a uint32).
      if (r.bad && r.policy->revert_after >= 0 && r.policy->revert_after <= s_.horizon) {
        queue_.push(static_cast<std::uint32_t>(r.policy->revert_after), 0, kRevert, run_index(r), 0);
      }
    } else {
      apply(r, core::RolloutEvent::kStart, "rollout started", 0);
    }
  }
  queue_.push(0, 0, kTick, 0, 0);
  Event e{};
  const std::size_t stride = runs_.size();
  while (queue_.pop(e)) {
    ++events_;
    // The fleet's state is far larger than the caches: ask for the device an
    // event a few places ahead will touch while this one is handled.
    if (const Event* ahead = queue_.peek_ahead(8)) {
      __builtin_prefetch(&devices_[ahead->device]);
      __builtin_prefetch(&run_devices_[static_cast<std::size_t>(ahead->device) * stride]);
      __builtin_prefetch(&run_devices_[static_cast<std::size_t>(ahead->device) * stride + stride - 1]);
    }
    if ((events_ & 0xFFFFF) == 0 && o_.progress) o_.progress(e.time_ms, s_.horizon);
    switch (e.kind) {
      case kSession: on_session(e.device, e.time_ms); break;
      case kSharedSilence: on_shared_silence(e.device, e.gen, e.time_ms); break;
      case kTick: on_tick(e.time_ms); break;
      case kRevert: on_revert(runs_[e.variant], e.time_ms); break;
      case kDeliver: on_deliver(runs_[e.variant], e.device, e.gen, e.time_ms); break;
      case kCrash: on_crash(runs_[e.variant], e.device, e.gen, e.time_ms); break;
      case kBoot: on_boot(runs_[e.variant], e.device, e.gen, e.time_ms); break;
      case kRepair: on_repair(runs_[e.variant], e.device, e.gen, e.time_ms); break;
      case kSilence: on_silence(runs_[e.variant], e.device, e.gen, e.time_ms); break;
      case kTrialEnd: on_trial_end(runs_[e.variant], e.device, e.gen, e.time_ms); break;
      default: TRANCHE_ASSERT(false, "unknown event kind");
    }
  }
  SimResult result;
  result.scenario = s_.name;
  result.devices = n_;
  result.seed = o_.seed;
  result.events = events_;
  for (const auto& name : names) {
    PolicyResult pr;
    pr.policy = name;
    for (Run& r : runs_) {
      if (r.policy->name != name) continue;
      finish(r);
      (r.bad ? pr.bad : pr.good) = std::move(r.m);
    }
    result.policies.push_back(std::move(pr));
  }
  return result;
}

}  // namespace

core::Result<SimResult> run_simulation(const Scenario& scenario, const SimOptions& options) {
  if (scenario.devices > 100'000'000) {
    return core::Error{core::ErrorCode::kOutOfRange, "at most 100,000,000 devices"};
  }
  if (options.threads < 2 || !options.bad_run || !options.good_run) {
    Simulator sim(scenario, options);
    return sim.run();
  }
  // Two passes in parallel: the bad release's runs and the good release's. Each
  // replays the same sessions (drawn per device from the seed), so the result is
  // the same as one pass; only the progress callback is left to the first.
  SimOptions bad = options;
  bad.good_run = false;
  SimOptions good = options;
  good.bad_run = false;
  good.progress = nullptr;
  std::optional<core::Result<SimResult>> good_result;
  std::thread worker([&] {
    Simulator sim(scenario, good);
    good_result.emplace(sim.run());
  });
  Simulator sim(scenario, bad);
  core::Result<SimResult> result = sim.run();
  worker.join();
  if (!result.ok()) return result;
  if (!good_result->ok()) return *good_result;
  for (std::size_t i = 0; i < result->policies.size(); ++i) {
    result->policies[i].good = std::move(good_result->value().policies[i].good);
  }
  result->events += good_result->value().events;
  return result;
}

core::Result<FalseHaltResult> run_false_halt_trials(
    const Scenario& scenario, const std::string& policy, std::uint64_t trials, std::uint64_t seed,
    const std::function<void(std::uint64_t)>& progress) {
  FalseHaltResult out;
  out.policy = policy;
  auto it = scenario.policies.find(policy);
  if (it == scenario.policies.end()) {
    return core::Error{core::ErrorCode::kNotFound, "no policy '" + policy + "'"};
  }
  if (it->second.kind != PolicyKind::kRings) {
    return core::Error{core::ErrorCode::kInvalidArgument,
                       "policy '" + policy + "' has no gate (kind global): no halts to count"};
  }
  // A good release has settled once its rollout completes: simulate until the sum
  // of the stages' bakes plus a day, not the whole horizon.
  Scenario s = scenario;
  // Saturating: a plan's bakes are bounded below only, and their sum may not fit.
  core::DurationMs bakes = core::kDay;
  for (const auto& st : it->second.plan.stages) bakes = core::saturating_add(bakes, st.bake);
  s.horizon = std::min(s.horizon, bakes);
  for (std::uint64_t k = 0; k < trials; ++k) {
    SimOptions o;
    o.seed = seed + k;
    o.policies = {policy};
    o.bad_run = false;
    o.good_run = true;
    auto r = run_simulation(s, o);
    if (!r.ok()) return r.error();
    ++out.trials;
    if (r->policies[0].good.halted) ++out.halts;
    if (r->policies[0].good.halted_by_limit) ++out.limit_halts;
    if (progress) progress(k + 1);
  }
  return out;
}

}  // namespace tranche::sim
