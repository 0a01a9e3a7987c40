#include "sim/report.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace tranche::sim {

namespace {

double round_to(double v, double unit) { return std::round(v / unit) * unit; }

boost::json::value opt(const std::optional<double>& v) {
  if (!v) return nullptr;
  return round_to(*v, 0.1);
}

const PolicyResult* find(const SimResult& r, const std::string& name) {
  for (const auto& p : r.policies) {
    if (p.policy == name) return &p;
  }
  return nullptr;
}

std::string human_duration(const std::optional<double>& seconds) {
  if (!seconds) return "-";
  const double s = *seconds;
  char buf[32];
  if (s < 120) {
    std::snprintf(buf, sizeof buf, "%.0f s", s);
  } else if (s < 2 * 3600) {
    std::snprintf(buf, sizeof buf, "%.1f min", s / 60);
  } else if (s < 2 * 86400) {
    std::snprintf(buf, sizeof buf, "%.1f h", s / 3600);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f d", s / 86400);
  }
  return buf;
}

std::string with_commas(std::uint64_t v) {
  // Built forwards (GCC 12 at -O3 warns, -Wrestrict, on string::insert here).
  const std::string digits = std::to_string(v);
  std::string s;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) s.push_back(',');
    s.push_back(digits[i]);
  }
  return s;
}

}  // namespace

std::string to_json(const Scenario& scenario, const SimResult& result) {
  boost::json::object root;
  root["scenario"] = result.scenario;
  root["devices"] = result.devices;
  root["seed"] = result.seed;
  root["horizon_s"] = scenario.horizon / 1000;
  root["full_scale_devices"] = scenario.full_scale_devices;
  const double scale = static_cast<double>(scenario.full_scale_devices) / static_cast<double>(result.devices);
  const PolicyResult* a = find(result, "A");
  boost::json::object policies;
  for (const auto& p : result.policies) {
    boost::json::object o;
    const RunMetrics& b = p.bad;
    o["devices_crashed"] = b.devices_crashed;
    o["devices_crashed_share"] = round_to(static_cast<double>(b.devices_crashed) / static_cast<double>(result.devices), 1e-6);
    o["devices_crashed_full_scale"] = std::llround(static_cast<double>(b.devices_crashed) * scale);
    if (a && a->bad.devices_crashed > 0) {
      o["crashed_ratio_to_A"] = round_to(static_cast<double>(b.devices_crashed) / static_cast<double>(a->bad.devices_crashed), 1e-6);
    } else {
      o["crashed_ratio_to_A"] = nullptr;
    }
    o["device_hours_down"] = round_to(b.device_hours_down, 0.01);
    o["still_down_at_horizon"] = b.still_down_at_horizon;
    o["manual_repairs"] = b.manual_repairs;
    o["exposed"] = b.exposed;
    o["time_to_detect_s"] = opt(b.time_to_detect_s);
    o["time_to_halt_s"] = opt(b.time_to_halt_s);
    o["time_to_rollback99_s"] = opt(b.time_to_rollback99_s);
    o["t99_good_all_s"] = opt(p.good.t99_all_s);
    o["t99_good_online_s"] = opt(p.good.t99_online_s);
    o["t99_good_ever_online_s"] = opt(p.good.t99_ever_online_s);
    o["halt_reason"] = b.halt_reason.empty() ? boost::json::value(nullptr) : boost::json::value(b.halt_reason);
    o["final_state"] = b.final_state;
    o["good_release_halted"] = p.good.halted;
    o["good_release_halted_by_limit"] = p.good.halted_by_limit;
    o["good_release_final_state"] = p.good.final_state;
    o["down_at_day6"] = b.down_day6;
    o["down_at_day10_8"] = b.down_day10_8;
    policies[p.policy] = std::move(o);
  }
  root["policies"] = std::move(policies);
  return boost::json::serialize(root) + "\n";
}

std::string to_table(const Scenario& scenario, const SimResult& result) {
  const double scale = static_cast<double>(scenario.full_scale_devices) / static_cast<double>(result.devices);
  const PolicyResult* a = find(result, "A");
  std::vector<std::pair<std::string, std::vector<std::string>>> rows;
  auto row = [&](const std::string& name, auto cell) {
    std::vector<std::string> cells;
    for (const auto& p : result.policies) cells.push_back(cell(p));
    rows.emplace_back(name, std::move(cells));
  };
  char buf[64];
  row("devices crashed", [&](const PolicyResult& p) {
    std::snprintf(buf, sizeof buf, "%s (%.3f%%)", with_commas(p.bad.devices_crashed).c_str(),
                  100.0 * static_cast<double>(p.bad.devices_crashed) / static_cast<double>(result.devices));
    return std::string(buf);
  });
  row("  at full scale", [&](const PolicyResult& p) {
    return with_commas(static_cast<std::uint64_t>(std::llround(static_cast<double>(p.bad.devices_crashed) * scale)));
  });
  row("  ratio to A", [&](const PolicyResult& p) {
    if (!a || a->bad.devices_crashed == 0) return std::string("-");
    std::snprintf(buf, sizeof buf, "%.5f", static_cast<double>(p.bad.devices_crashed) / static_cast<double>(a->bad.devices_crashed));
    return std::string(buf);
  });
  row("device-hours down", [&](const PolicyResult& p) {
    std::snprintf(buf, sizeof buf, "%.0f", p.bad.device_hours_down);
    return std::string(buf);
  });
  row("still down at horizon", [&](const PolicyResult& p) { return with_commas(p.bad.still_down_at_horizon); });
  row("needed a person", [&](const PolicyResult& p) { return with_commas(p.bad.manual_repairs); });
  row("exposed", [&](const PolicyResult& p) { return with_commas(p.bad.exposed); });
  row("time to detect", [&](const PolicyResult& p) { return human_duration(p.bad.time_to_detect_s); });
  row("time to halt", [&](const PolicyResult& p) { return human_duration(p.bad.time_to_halt_s); });
  row("99% exposed back on LKG", [&](const PolicyResult& p) { return human_duration(p.bad.time_to_rollback99_s); });
  row("good release: 99% of all", [&](const PolicyResult& p) { return human_duration(p.good.t99_all_s); });
  row("good release: 99% online now", [&](const PolicyResult& p) { return human_duration(p.good.t99_online_s); });
  row("good release: 99% ever online", [&](const PolicyResult& p) { return human_duration(p.good.t99_ever_online_s); });
  row("good release halted", [&](const PolicyResult& p) { return std::string(p.good.halted ? "yes (false halt)" : "no"); });

  std::size_t w0 = 0;
  for (const auto& r : rows) w0 = std::max(w0, r.first.size());
  std::vector<std::size_t> w(result.policies.size(), 0);
  for (std::size_t i = 0; i < result.policies.size(); ++i) {
    w[i] = result.policies[i].policy.size();
    for (const auto& r : rows) w[i] = std::max(w[i], r.second[i].size());
  }
  std::ostringstream out;
  out << "scenario " << result.scenario << ", " << with_commas(result.devices) << " devices, seed "
      << result.seed << "\n";
  out << std::string(w0, ' ');
  for (std::size_t i = 0; i < w.size(); ++i) {
    out << "  " << std::string(w[i] - result.policies[i].policy.size(), ' ') << result.policies[i].policy;
  }
  out << "\n";
  for (const auto& r : rows) {
    out << r.first << std::string(w0 - r.first.size(), ' ');
    for (std::size_t i = 0; i < w.size(); ++i) {
      out << "  " << std::string(w[i] - r.second[i].size(), ' ') << r.second[i];
    }
    out << "\n";
  }
  for (const auto& p : result.policies) {
    if (!p.bad.halt_reason.empty()) out << p.policy << " halted: " << p.bad.halt_reason << "\n";
  }
  return out.str();
}

std::string to_csv(const SimResult& result) {
  std::ostringstream out;
  out << "minute";
  std::size_t n = 0;
  for (const auto& p : result.policies) {
    out << "," << p.policy << "_down";
    n = std::max(n, p.bad.down_series.size());
  }
  out << "\n";
  for (std::size_t i = 0; i < n; ++i) {
    out << i;
    for (const auto& p : result.policies) {
      out << "," << (i < p.bad.down_series.size() ? p.bad.down_series[i] : 0);
    }
    out << "\n";
  }
  return out.str();
}

std::string to_svg(const Scenario& scenario, const SimResult& result) {
  const double width = 980, height = 520, left = 80, right = 250, top = 50, bottom = 60;
  const double pw = width - left - right, ph = height - top - bottom;
  std::uint32_t peak = 1;
  std::size_t samples = 1;
  for (const auto& p : result.policies) {
    for (auto v : p.bad.down_series) peak = std::max(peak, v);
    samples = std::max(samples, p.bad.down_series.size());
  }
  const double decades = std::max(1.0, std::ceil(std::log10(static_cast<double>(peak)) + 1e-9));
  const double days = static_cast<double>(scenario.horizon) / static_cast<double>(core::kDay);
  auto x = [&](double minute) { return left + pw * (minute / (days * 1440.0)); };
  // Zero is drawn on the bottom line (below 1 device).
  auto y = [&](double v) { return top + ph - ph * (v < 1 ? 0 : (std::log10(v) + 0.3) / (decades + 0.3)); };
  static const char* colors[] = {"#d62728", "#ff7f0e", "#2ca02c", "#1f77b4", "#9467bd", "#8c564b"};
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(1);
  out << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
      << "\" font-family=\"sans-serif\" font-size=\"13\">\n";
  out << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  out << "<text x=\"" << left << "\" y=\"28\" font-size=\"16\" font-weight=\"bold\">Devices down over time — "
      << result.scenario << " (" << with_commas(result.devices) << " devices, seed " << result.seed
      << ")</text>\n";
  for (int dcd = 0; dcd <= static_cast<int>(decades); ++dcd) {
    const double v = std::pow(10.0, dcd);
    out << "<line x1=\"" << left << "\" x2=\"" << left + pw << "\" y1=\"" << y(v) << "\" y2=\"" << y(v)
        << "\" stroke=\"#ddd\"/>\n";
    out << "<text x=\"" << left - 8 << "\" y=\"" << y(v) + 4 << "\" text-anchor=\"end\">"
        << with_commas(static_cast<std::uint64_t>(v)) << "</text>\n";
  }
  out << "<text x=\"" << left - 8 << "\" y=\"" << y(0) + 4 << "\" text-anchor=\"end\">0</text>\n";
  for (int dd = 0; dd <= static_cast<int>(days); ++dd) {
    out << "<line x1=\"" << x(dd * 1440.0) << "\" x2=\"" << x(dd * 1440.0) << "\" y1=\"" << top
        << "\" y2=\"" << top + ph << "\" stroke=\"#eee\"/>\n";
    out << "<text x=\"" << x(dd * 1440.0) << "\" y=\"" << top + ph + 18 << "\" text-anchor=\"middle\">" << dd
        << "</text>\n";
  }
  out << "<text x=\"" << left + pw / 2 << "\" y=\"" << height - 15
      << "\" text-anchor=\"middle\">days since the release (log-scale y: devices down)</text>\n";
  out << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << pw << "\" height=\"" << ph
      << "\" fill=\"none\" stroke=\"#333\"/>\n";
  std::size_t ci = 0;
  for (const auto& p : result.policies) {
    const char* color = colors[ci % 6];
    out << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"2\" points=\"";
    const auto& s = p.bad.down_series;
    // One point per 10 minutes keeps the file small; peaks inside a window are kept.
    for (std::size_t i = 0; i < s.size(); i += 10) {
      std::uint32_t v = 0;
      for (std::size_t j = i; j < std::min(s.size(), i + 10); ++j) v = std::max(v, s[j]);
      out << x(static_cast<double>(i)) << "," << y(v) << " ";
    }
    out << "\"/>\n";
    const double ly = top + 20 + 40.0 * static_cast<double>(ci);
    out << "<line x1=\"" << left + pw + 15 << "\" x2=\"" << left + pw + 40 << "\" y1=\"" << ly << "\" y2=\""
        << ly << "\" stroke=\"" << color << "\" stroke-width=\"3\"/>\n";
    out << "<text x=\"" << left + pw + 46 << "\" y=\"" << ly + 4 << "\">" << p.policy << ": "
        << with_commas(p.bad.devices_crashed) << " crashed</text>\n";
    out << "<text x=\"" << left + pw + 46 << "\" y=\"" << ly + 20 << "\" fill=\"#555\">"
        << with_commas(p.bad.manual_repairs) << " needed a person</text>\n";
    ++ci;
  }
  out << "</svg>\n";
  return out.str();
}

bool check_calibration(const Scenario& scenario, const RunMetrics& a, std::string& why) {
  const double crashed = static_cast<double>(a.devices_crashed) / static_cast<double>(scenario.devices);
  char buf[256];
  if (crashed < scenario.calib_crashed_min || crashed > scenario.calib_crashed_max) {
    std::snprintf(buf, sizeof buf, "crashed share %.3f outside [%.2f, %.2f]", crashed,
                  scenario.calib_crashed_min, scenario.calib_crashed_max);
    why = buf;
    return false;
  }
  // Every device that took the release crashed (but for the few that took the
  // revert in the seconds between receiving the release and crashing: at most
  // 0.1%), and none took it after the revert.
  if (scenario.crash_probability >= 1.0 &&
      static_cast<double>(a.exposed - a.devices_crashed) > 0.001 * static_cast<double>(a.exposed)) {
    std::snprintf(buf, sizeof buf, "%llu devices took the release but only %llu crashed",
                  static_cast<unsigned long long>(a.exposed), static_cast<unsigned long long>(a.devices_crashed));
    why = buf;
    return false;
  }
  const auto& pa = scenario.policies.at("A");
  if (pa.revert_after >= 0 && a.last_exposure_s &&
      *a.last_exposure_s * 1000.0 > static_cast<double>(pa.revert_after)) {
    std::snprintf(buf, sizeof buf, "a device took the release at %.0f s, after the revert", *a.last_exposure_s);
    why = buf;
    return false;
  }
  const double c = std::max(1.0, static_cast<double>(a.devices_crashed));
  const double d6 = static_cast<double>(a.down_day6) / c;
  const double d10 = static_cast<double>(a.down_day10_8) / c;
  if (d6 > scenario.calib_down_day6_max || d10 > scenario.calib_down_day10_8_max) {
    std::snprintf(buf, sizeof buf, "still down: %.3f at day 6 (max %.2f), %.3f at day 10.8 (max %.2f)", d6,
                  scenario.calib_down_day6_max, d10, scenario.calib_down_day10_8_max);
    why = buf;
    return false;
  }
  std::snprintf(buf, sizeof buf,
                "crashed %.3f of the fleet (%llu of %llu that took it); still down %.3f at day 6, %.3f at day 10.8",
                crashed, static_cast<unsigned long long>(a.devices_crashed),
                static_cast<unsigned long long>(a.exposed), d6, d10);
  why = buf;
  return true;
}

}  // namespace tranche::sim
