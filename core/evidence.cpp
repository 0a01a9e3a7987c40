#include "core/evidence.h"

#include <array>
#include <utility>

#include "core/result.h"

namespace tranche::core {
namespace {

// One codec per vocabulary: the table is the only place a name is spelled.
template <typename E, std::size_t N>
using Names = std::array<std::pair<E, std::string_view>, N>;

constexpr Names<DeviceEventKind, kDeviceEventKindCount> kEventNames{{
    {DeviceEventKind::kInstalled, "installed"},
    {DeviceEventKind::kInstallFailed, "install_failed"},
    {DeviceEventKind::kDownloadFailed, "download_failed"},
    {DeviceEventKind::kCrashed, "crashed"},
    {DeviceEventKind::kRolledBack, "rolled_back"},
    {DeviceEventKind::kGoodbye, "goodbye"},
    {DeviceEventKind::kOfferRefused, "offer_refused"},
    {DeviceEventKind::kDownloading, "downloading"},
    {DeviceEventKind::kInstalling, "installing"},
}};

constexpr Names<Standing, 5> kStandingNames{{
    {Standing::kControl, "control"},
    {Standing::kExposed, "exposed"},
    {Standing::kAcknowledged, "acknowledged"},
    {Standing::kExposedFailed, "exposed_failed"},
    {Standing::kControlFailed, "control_failed"},
}};

constexpr Names<FailureCause, kFailureCauseCount> kCauseNames{{
    {FailureCause::kNone, "none"},
    {FailureCause::kInstallFailed, "install_failed"},
    {FailureCause::kCrashed, "crashed"},
    {FailureCause::kFellBack, "fell_back"},
    {FailureCause::kSilent, "silent"},
}};

template <typename E, std::size_t N>
std::string_view name_of(const Names<E, N>& names, E value) {
  for (const auto& [v, name] : names) {
    if (v == value) return name;
  }
  TRANCHE_ASSERT(false, "a vocabulary value without a name");
  return {};
}

template <typename E, std::size_t N>
std::optional<E> value_of(const Names<E, N>& names, std::string_view text) {
  for (const auto& [v, name] : names) {
    if (name == text) return v;
  }
  return std::nullopt;
}

}  // namespace

std::string_view to_string(DeviceEventKind kind) {
  return name_of(kEventNames, kind);
}
std::optional<DeviceEventKind> parse_device_event_kind(std::string_view text) {
  return value_of(kEventNames, text);
}
std::string_view to_string(Standing standing) {
  return name_of(kStandingNames, standing);
}
std::optional<Standing> parse_standing(std::string_view text) {
  return value_of(kStandingNames, text);
}
std::string_view to_string(FailureCause cause) {
  return name_of(kCauseNames, cause);
}
std::optional<FailureCause> parse_failure_cause(std::string_view text) {
  return value_of(kCauseNames, text);
}

FailureCause failure_cause_of(Fact fact) {
  switch (fact) {
    case Fact::kInstallFailed:
      return FailureCause::kInstallFailed;
    case Fact::kCrashed:
      return FailureCause::kCrashed;
    case Fact::kFellBack:
      return FailureCause::kFellBack;
    case Fact::kSilent:
      return FailureCause::kSilent;
    case Fact::kOffered:
    case Fact::kDownloading:
    case Fact::kRunsHealthy:
    case Fact::kDownloadFailed:
    case Fact::kGoodbye:
    case Fact::kOfferRefused:
      return FailureCause::kNone;
  }
  return FailureCause::kNone;
}

bool is_failure(DeviceEventKind kind) {
  return kind == DeviceEventKind::kInstallFailed || kind == DeviceEventKind::kCrashed ||
         kind == DeviceEventKind::kRolledBack;
}

bool bans_version(DeviceEventKind kind) {
  return kind == DeviceEventKind::kInstallFailed || kind == DeviceEventKind::kRolledBack;
}

Fact fact_of(DeviceEventKind kind) {
  switch (kind) {
    case DeviceEventKind::kInstalled:
      return Fact::kDownloading;  // in its trial: not yet healthy
    case DeviceEventKind::kInstallFailed:
      return Fact::kInstallFailed;
    case DeviceEventKind::kDownloadFailed:
      return Fact::kDownloadFailed;
    case DeviceEventKind::kCrashed:
      return Fact::kCrashed;
    case DeviceEventKind::kRolledBack:
      return Fact::kFellBack;
    case DeviceEventKind::kGoodbye:
      return Fact::kGoodbye;
    case DeviceEventKind::kOfferRefused:
      return Fact::kOfferRefused;
    case DeviceEventKind::kDownloading:
    case DeviceEventKind::kInstalling:
      return Fact::kDownloading;  // on its way: exposed, no evidence
  }
  return Fact::kDownloading;
}

Group accrual_group(Standing standing) {
  switch (standing) {
    case Standing::kControl:
      return Group::kControl;
    case Standing::kExposed:
    case Standing::kAcknowledged:
      return Group::kExposed;
    case Standing::kExposedFailed:
    case Standing::kControlFailed:
      return Group::kNone;
  }
  return Group::kNone;
}

bool is_exposed(Standing standing) {
  return standing == Standing::kExposed || standing == Standing::kAcknowledged ||
         standing == Standing::kExposedFailed;
}

bool is_failed(Standing standing) {
  return standing == Standing::kExposedFailed || standing == Standing::kControlFailed;
}

bool record(Standing& standing, Fact fact, EvidenceTally& tally) {
  if (is_failed(standing)) return false;  // each device fails once, then leaves the evidence
  const FailureCause cause = failure_cause_of(fact);
  if (cause != FailureCause::kNone) {
    if (standing == Standing::kControl) {
      standing = Standing::kControlFailed;
      ++tally.control.failures;
      ++tally.control_failed_since_accrual;
      return true;
    }
    if (standing == Standing::kAcknowledged) --tally.acknowledged;  // never both
    standing = Standing::kExposedFailed;
    ++tally.exposed.failures;
    ++tally.exposed_by_cause[static_cast<std::size_t>(cause)];
    ++tally.exposed_failed_since_accrual;
    return true;
  }
  switch (fact) {
    case Fact::kOffered:
      if (standing != Standing::kControl) return false;
      standing = Standing::kExposed;
      ++tally.exposed_devices;
      return true;
    case Fact::kRunsHealthy:
      if (standing == Standing::kAcknowledged) return false;
      if (standing == Standing::kControl) ++tally.exposed_devices;  // running it is exposure too
      standing = Standing::kAcknowledged;
      ++tally.acknowledged;
      return true;
    default:
      return false;  // downloading, download_failed, goodbye, offer_refused: not evidence
  }
}

int standing_rank(Standing standing) {
  switch (standing) {
    case Standing::kControl: return 0;
    case Standing::kExposed: return 1;
    case Standing::kAcknowledged: return 2;
    case Standing::kExposedFailed:
    case Standing::kControlFailed: return 3;
  }
  return 0;
}

Standing merge_standing(Standing stored, Standing incoming) {
  if (standing_rank(incoming) <= standing_rank(stored)) return stored;
  if (incoming == Standing::kControlFailed && is_exposed(stored)) return Standing::kExposedFailed;
  return incoming;
}

void count_standing(EvidenceTally& tally, Standing standing, FailureCause cause,
                    std::uint64_t devices) {
  if (is_exposed(standing)) tally.exposed_devices += devices;
  switch (standing) {
    case Standing::kControl:
    case Standing::kExposed:
      break;
    case Standing::kAcknowledged:
      tally.acknowledged += devices;
      break;
    case Standing::kExposedFailed:
      tally.exposed.failures += devices;
      tally.exposed_by_cause[static_cast<std::size_t>(cause)] += devices;
      break;
    case Standing::kControlFailed:
      tally.control.failures += devices;
      break;
  }
}

void accrue(EvidenceTally& tally, std::uint64_t exposed_online, std::uint64_t control_online,
            DurationMs elapsed) {
  if (elapsed <= 0) return;  // no interval: the failures wait for the next one
  const double seconds = static_cast<double>(elapsed) / 1000.0;
  tally.exposed.exposure_s +=
      static_cast<double>(exposed_online + tally.exposed_failed_since_accrual) * seconds;
  tally.control.exposure_s +=
      static_cast<double>(control_online + tally.control_failed_since_accrual) * seconds;
  tally.exposed_failed_since_accrual = 0;
  tally.control_failed_since_accrual = 0;
}

GateObservation observe(const EvidenceTally& tally, DurationMs stage_elapsed,
                        DurationMs stage_bake) {
  GateObservation o;
  o.exposed = tally.exposed;
  o.control = tally.control;
  o.exposed_devices = tally.exposed_devices;
  o.acknowledged = tally.acknowledged;
  o.stage_elapsed = stage_elapsed;
  o.stage_bake = stage_bake;
  return o;
}

}  // namespace tranche::core
