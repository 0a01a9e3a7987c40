#include "server/metrics.h"

#include <cstdio>
#include <string>

namespace tranche::server {

void Histogram::observe(double seconds) {
  std::size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_us_.fetch_add(static_cast<std::uint64_t>(seconds * 1e6), std::memory_order_relaxed);
}

std::string Histogram::render(const std::string& name, const std::string& help) const {
  std::string out = "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  std::uint64_t cumulative = 0;
  char buf[64];
  for (std::size_t i = 0; i < kBounds.size(); ++i) {
    cumulative += buckets_[i].load();
    std::snprintf(buf, sizeof buf, "%g", kBounds[i]);
    out += name + "_bucket{le=\"" + buf + "\"} " + std::to_string(cumulative) + "\n";
  }
  cumulative += buckets_[kBounds.size()].load();
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(cumulative) + "\n";
  std::snprintf(buf, sizeof buf, "%.6f", static_cast<double>(sum_us_.load()) / 1e6);
  out += name + "_sum " + buf + "\n";
  out += name + "_count " + std::to_string(count_.load()) + "\n";
  return out;
}

namespace {
void counter(std::string& out, const char* name, const char* help, std::uint64_t value,
             const char* type = "counter") {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
         name + " " + std::to_string(value) + "\n";
}
}  // namespace

std::string Metrics::render() const {
  std::string out;
  counter(out, "tranche_checkins_total", "Device check-ins answered.", checkins.load());
  counter(out, "tranche_checkins_held", "Check-ins held by long poll now.", checkins_held.load(),
          "gauge");
  counter(out, "tranche_enrollments_total", "Devices enrolled.", enrollments.load());
  counter(out, "tranche_device_events_total", "Device events accepted.", events.load());
  out +=
      "# HELP tranche_decisions_total Check-in answers per channel, by whether the device must "
      "change version.\n# TYPE tranche_decisions_total counter\n";
  out += "tranche_decisions_total{decision=\"install\"} " +
         std::to_string(decisions_install.load()) + "\n";
  out += "tranche_decisions_total{decision=\"keep\"} " + std::to_string(decisions_keep.load()) +
         "\n";
  counter(out, "tranche_requests_rejected_total", "Requests answered with a 4xx error.",
          requests_rejected.load());
  counter(out, "tranche_rollout_transitions_total", "Rollout transitions applied.",
          transitions.load());
  counter(out, "tranche_engine_ticks_total", "Rollout engine ticks run.", engine_ticks.load());
  counter(out, "tranche_engine_leader", "1 while this server runs the rollout engine.",
          engine_leader.load(), "gauge");
  counter(out, "tranche_store_flushes_total", "Batches of device state written.",
          store_flushes.load());
  counter(out, "tranche_store_flush_records_total", "Device states and events written.",
          store_flush_records.load());
  counter(out, "tranche_store_flush_errors_total", "Batch writes that failed (retried).",
          store_flush_errors.load());
  out += store_flush_seconds.render("tranche_store_flush_seconds",
                                    "Time to write one batch of device state.");
  return out;
}

}  // namespace tranche::server
