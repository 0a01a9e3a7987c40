#include "core/gate.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <string_view>

#include "core/result.h"

namespace tranche::core {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kSecondsPerDay = 86400.0;

// --- numbers into words ----------------------------------------------------------

// Three significant digits, no exponent below 1000 ("0.00069", "2.1", "310",
// "14"), whole numbers from 1000 up ("2775"). Reasons are read by people.
void append_number(std::string& out, double x) {
  if (std::isnan(x)) {
    out += "nan";
    return;
  }
  if (std::isinf(x)) {
    out += x > 0 ? "inf" : "-inf";
    return;
  }
  // Whole numbers only up to 1e21 (22 characters): a double near its maximum
  // has 309 digits, which no buffer here holds. Beyond that, 3 significant
  // digits with an exponent ("3.1e+96"), which always fits.
  char buf[64];
  std::to_chars_result r{};
  if (std::fabs(x) >= 1000.0 && std::fabs(x) < 1e21) {
    r = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::fixed, 0);
  } else {
    r = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::general, 3);
  }
  TRANCHE_ASSERT(r.ec == std::errc{}, "a gate number does not fit its buffer");
  out.append(buf, r.ptr);
}

void append_count(std::string& out, std::uint64_t n) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, r.ptr);
}

// "1h30m", "12m", "45s", "0s". Sub-second remainders are dropped: bake times are
// minutes. (Local rather than format_duration so the gate's reasons do not depend
// on another module's formatting.)
void append_duration(std::string& out, DurationMs d) {
  // Magnitude in unsigned arithmetic: -INT64_MIN does not fit in an int64, and
  // stage_elapsed is whatever the caller's clock says.
  std::uint64_t ms = static_cast<std::uint64_t>(d);
  if (d < 0) {
    out += '-';
    ms = 0 - ms;
  }
  std::uint64_t s = ms / static_cast<std::uint64_t>(kSecond);
  const std::uint64_t h = s / 3600;
  s -= h * 3600;
  const std::uint64_t m = s / 60;
  s -= m * 60;
  if (h > 0) {
    append_count(out, h);
    out += 'h';
  }
  if (m > 0) {
    append_count(out, m);
    out += 'm';
  }
  if (s > 0 || (h == 0 && m == 0)) {
    append_count(out, s);
    out += 's';
  }
}

// "exposed 14 failures in 2.1 device-days vs control 3 in 310 device-days"
void append_evidence(std::string& out, const GateObservation& o) {
  out += "exposed ";
  append_count(out, o.exposed.failures);
  out += o.exposed.failures == 1 ? " failure in " : " failures in ";
  append_number(out, o.exposed.exposure_s / kSecondsPerDay);
  out += " device-days vs control ";
  append_count(out, o.control.failures);
  out += " in ";
  append_number(out, o.control.exposure_s / kSecondsPerDay);
  out += " device-days";
}

// --- the incomplete beta function --------------------------------------------------
//
// Only what the Clopper-Pearson bound needs: a, b >= 1 (a = k1 + 1, b = k0), so
// no reflection for small arguments is required.

// log Gamma(x) for x >= 1: shift up to x >= 15 with Gamma(x+1) = x Gamma(x), then
// the Stirling series, whose next omitted term is below 1e-15 there. (std::lgamma
// writes the global signgam on glibc; core holds no globals, so it is not used.)
double log_gamma(double x) {
  double shift = 1.0;
  while (x < 15.0) {
    shift *= x;
    x += 1.0;
  }
  const double inv = 1.0 / x;
  const double inv2 = inv * inv;
  const double series =
      inv *
      (1.0 / 12 - inv2 * (1.0 / 360 - inv2 * (1.0 / 1260 - inv2 * (1.0 / 1680 - inv2 / 1188))));
  constexpr double kHalfLog2Pi = 0.91893853320467274178;
  return (x - 0.5) * std::log(x) - x + kHalfLog2Pi + series - std::log(shift);
}

double log_beta(double a, double b) {
  return log_gamma(a) + log_gamma(b) - log_gamma(a + b);
}

// Continued fraction of the incomplete beta function, evaluated by the forward
// recurrence renormalized at every step (Press et al., Numerical Recipes, 1st ed.,
// betacf): one division on the critical path per step, where modified Lentz needs
// two. Converges fast for x < (a + 1) / (a + b + 2); the caller uses the symmetry
// otherwise. Takes O(sqrt(max(a, b))) steps; the cap is far above what any real
// count needs, and if it were ever reached the value is already accurate far
// beyond the three digits a bound is shown with.
double beta_continued_fraction(double x, double a, double b) {
  constexpr double kEps = 1e-15;
  constexpr int kMaxTerms = 1'000'000;
  const double qab = a + b;
  const double qap = a + 1.0;
  const double qam = a - 1.0;
  double am = 1.0;
  double bm = 1.0;
  double az = 1.0;
  double bz = 1.0 - qab * x / qap;
  for (int m = 1; m <= kMaxTerms; ++m) {
    const double em = m;
    const double tem = em + em;
    const double d_even = em * (b - em) * x / ((qam + tem) * (a + tem));
    const double d_odd = -(a + em) * (qab + em) * x / ((qap + tem) * (a + tem));
    const double ap = az + d_even * am;
    const double bp = bz + d_even * bm;
    const double app = ap + d_odd * az;
    const double bpp = bp + d_odd * bz;
    const double inv = 1.0 / bpp;
    const double previous = az;
    am = ap * inv;
    bm = bp * inv;
    az = app * inv;
    bz = 1.0;
    if (std::fabs(az - previous) < kEps * std::fabs(az)) break;
  }
  return az;
}

// The point x = 1 / (1 + e^-t) in log-odds t, kept as log x and log(1 - x) so
// that neither tail loses digits.
struct LogOdds {
  double x;
  double log_x;
  double log_1mx;
};

LogOdds from_log_odds(double t) {
  // log x = -log(1 + e^-t), log(1 - x) = -log(1 + e^t); log1p keeps both exact.
  const double log_x = t >= 0 ? -std::log1p(std::exp(-t)) : t - std::log1p(std::exp(t));
  const double log_1mx = t >= 0 ? -t - std::log1p(std::exp(-t)) : -std::log1p(std::exp(t));
  return {std::exp(log_x), log_x, log_1mx};
}

// I_x(a, b), the regularized incomplete beta function, and d I / d t at the same
// point (t the log-odds of x): x^a (1-x)^b / B(a, b).
struct BetaAt {
  double value;
  double slope;
};

BetaAt regularized_beta(const LogOdds& p, double a, double b, double log_b) {
  const double log_front = a * p.log_x + b * p.log_1mx - log_b;
  const double front = std::exp(log_front);
  if (p.x < (a + 1.0) / (a + b + 2.0)) {
    return {front * beta_continued_fraction(p.x, a, b) / a, front};
  }
  const double y = std::exp(p.log_1mx);
  return {1.0 - front * beta_continued_fraction(y, b, a) / b, front};
}

// Starting point for the quantile: the normal approximation of Abramowitz and
// Stegun 26.5.22 (for a, b >= 1), in log-odds. Good to a few percent, so Newton
// needs two or three steps from it.
double beta_quantile_guess_log_odds(double level, double a, double b) {
  const double pp = level < 0.5 ? level : 1.0 - level;
  const double r = std::sqrt(-2.0 * std::log(pp));
  // y = minus the standard normal quantile of `level` (A&S 26.2.23).
  double y = (2.30753 + r * 0.27061) / (1.0 + r * (0.99229 + r * 0.04481)) - r;
  if (level < 0.5) y = -y;
  const double al = (y * y - 3.0) / 6.0;
  const double h = 2.0 / (1.0 / (2.0 * a - 1.0) + 1.0 / (2.0 * b - 1.0));
  const double w = y * std::sqrt(al + h) / h - (1.0 / (2.0 * b - 1.0) - 1.0 / (2.0 * a - 1.0)) *
                                                   (al + 5.0 / 6.0 - 2.0 / (3.0 * h));
  // The quantile is a / (a + b e^{2w}).
  const double t = std::log(a) - std::log(b) - 2.0 * w;
  // The approximation is meant for a, b > 1; clamp what it gives elsewhere.
  return std::isfinite(t) ? std::clamp(t, -700.0, 700.0) : std::log(a) - std::log(b);
}

// The log-odds t at which I_x(a, b) = level: Halley's method in t, safeguarded by
// a bracket (bisection whenever a step would leave it). I as a function of t is an
// increasing S-curve, so the bracket always holds the root. In t the derivatives
// are cheap: I' = x^a (1-x)^b / B(a, b) and I'' = I' * (a - (a + b) x).
double beta_quantile_log_odds(double level, double a, double b) {
  const double log_b = log_beta(a, b);
  double lo = -745.0;  // e^-745 is the smallest positive double: a bound of 0
  double hi = 745.0;
  double t = beta_quantile_guess_log_odds(level, a, b);
  // Width of the distribution in log-odds: the scale for "close enough".
  const double spread = std::sqrt(1.0 / a + 1.0 / b);
  for (int i = 0; i < 200; ++i) {
    const LogOdds p = from_log_odds(t);
    const BetaAt f = regularized_beta(p, a, b, log_b);
    const double diff = f.value - level;
    if (diff < 0) {
      lo = t;
    } else {
      hi = t;
    }
    if (diff == 0) break;
    double next = 0.5 * (lo + hi);
    if (f.slope > 0) {
      const double newton = diff / f.slope;
      const double denom = 1.0 - 0.5 * newton * (a - (a + b) * p.x);
      next = t - (denom > 0.5 ? newton / denom : newton);
      if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
    }
    // Halley converges cubically: a step under 1e-4 * spread leaves an error of
    // order 1e-12 * spread, far below the three digits a bound is shown with.
    const bool done = std::fabs(next - t) < 1e-4 * spread;
    t = next;
    if (done) break;
  }
  return t;
}

// --- the mixture -----------------------------------------------------------------

// Weights: 0.90 on the alternative ratio, the rest on the catastrophe ratios. The
// alternative ratio sets the power on moderate regressions; 4, 16 and 64 spaced by
// a factor of 4 cover every larger effect within a factor of 2 in log-ratio.
// log(0.03) = -3.5 costs a catastrophe one extra failure at rate ratio 64
// (3 failures cross log(1000) instead of 2) and buys the 90% for the main bet,
// whose power at mu0 = 50 is within 0.1 percentage point of a pure SPRT.
constexpr std::array<double, GateState::kComponents> kWeights = {0.90, 0.04, 0.03, 0.03};
constexpr std::array<double, GateState::kComponents - 1> kLargeRatios = {4.0, 16.0, 64.0};

double log_sum_exp(const std::array<double, GateState::kComponents>& v) {
  double m = -kInf;
  for (double x : v) m = std::max(m, x);
  if (m == -kInf) return -kInf;
  double s = 0;
  for (double x : v) s += std::exp(x - m);
  return m + std::log(s);
}

void check_settings(const GateSettings& s) {
  TRANCHE_ASSERT(s.alpha > 0 && s.alpha < 1, "gate alpha must be in (0, 1)");
  TRANCHE_ASSERT(s.alternative_ratio > 1 && std::isfinite(s.alternative_ratio),
                 "gate alternative_ratio must be > 1");
  TRANCHE_ASSERT(s.confidence > 0 && s.confidence < 1, "gate confidence must be in (0, 1)");
  TRANCHE_ASSERT(s.tolerance > 0, "gate tolerance must be > 0");
}

void check_counts(const GroupCounts& now, const GroupCounts& seen, const char* exposure_msg,
                  const char* failures_msg) {
  TRANCHE_ASSERT(std::isfinite(now.exposure_s) && now.exposure_s >= 0,
                 "gate exposure must be finite and >= 0");
  TRANCHE_ASSERT(now.exposure_s >= seen.exposure_s, exposure_msg);
  TRANCHE_ASSERT(now.failures >= seen.failures, failures_msg);
}

}  // namespace

std::array<GateComponent, GateState::kComponents> gate_mixture(const GateSettings& settings) {
  std::array<GateComponent, GateState::kComponents> mix{};
  mix[0] = {settings.alternative_ratio, kWeights[0]};
  for (std::size_t j = 1; j < GateState::kComponents; ++j) {
    mix[j] = {kLargeRatios[j - 1], kWeights[j]};
  }
  return mix;
}

double rate_ratio_upper_bound(std::uint64_t k1, double e1, std::uint64_t k0, double e0,
                              double confidence) {
  TRANCHE_ASSERT(confidence > 0 && confidence < 1, "confidence must be in (0, 1)");
  if (!(e1 > 0) || !(e0 > 0) || k0 == 0) return kInf;
  // Given k = k1 + k0 failures, k1 ~ Binomial(k, p) with p = rho e1 / (rho e1 + e0).
  // The exact upper bound p_U on p solves P(Binomial(k, p_U) <= k1) = 1 - confidence,
  // i.e. I_{p_U}(k1 + 1, k0) = confidence. The odds p/(1-p) = rho e1 / e0, so the
  // ratio bound is e^t * e0 / e1 with t the log-odds of p_U: no 1 - p_U cancellation.
  const double b = static_cast<double>(k0);
  const double scale = std::log(e0) - std::log(e1);
  if (k1 == 0) {
    // I_x(1, b) = 1 - (1 - x)^b: the odds of p_U are (1 - confidence)^(-1/b) - 1.
    return std::expm1(-std::log1p(-confidence) / b) * std::exp(scale);
  }
  const double a = static_cast<double>(k1) + 1.0;
  const double t = beta_quantile_log_odds(confidence, a, b);
  return std::exp(t + scale);
}

GateStep evaluate_gate(const GateSettings& settings, const GateState& state,
                       const GateObservation& observation) {
  check_settings(settings);
  const GroupCounts& exposed = observation.exposed;
  const GroupCounts& control = observation.control;
  check_counts(exposed, state.seen_exposed, "exposed exposure went down between looks",
               "exposed failures went down between looks");
  check_counts(control, state.seen_control, "control exposure went down between looks",
               "control failures went down between looks");

  GateStep step{state, {}};
  GateState& next = step.state;
  GateVerdict& v = step.verdict;
  const auto mix = gate_mixture(settings);

  // --- the sequential test, on this look's increments ------------------------------
  const double d_e1 = exposed.exposure_s - state.seen_exposed.exposure_s;
  const double d_e0 = control.exposure_s - state.seen_control.exposure_s;
  next.seen_exposed.exposure_s = exposed.exposure_s;
  next.seen_control.exposure_s = control.exposure_s;
  // A failure in a group that gained no exposure has nowhere to land in the model
  // (p would be 0/0): hold it back until the group gains exposure.
  std::uint64_t n1 = 0;
  std::uint64_t n0 = 0;
  if (d_e1 > 0) {
    n1 = exposed.failures - state.seen_exposed.failures;
    next.seen_exposed.failures = exposed.failures;
  }
  if (d_e0 > 0) {
    n0 = control.failures - state.seen_control.failures;
    next.seen_control.failures = control.failures;
  }
  // Without control exposure (d_e0 == 0) every failure would be exposed whatever
  // rho is: no information, the likelihood ratio does not move.
  if (d_e1 > 0 && d_e0 > 0 && n1 + n0 > 0) {
    // Each new failure is exposed with p(rho) = rho q / (1 + (rho - 1) q), where
    // q = p(1) = d_e1 / (d_e1 + d_e0). Per component:
    //   n1 log(p(rho)/q) + n0 log((1-p(rho))/(1-q)) = n1 log rho - (n1+n0) log1p((rho-1) q)
    const double q = d_e1 / (d_e1 + d_e0);
    const double f1 = static_cast<double>(n1);
    const double fn = static_cast<double>(n1 + n0);
    for (std::size_t j = 0; j < GateState::kComponents; ++j) {
      next.log_lr[j] += f1 * std::log(mix[j].ratio) - fn * std::log1p((mix[j].ratio - 1.0) * q);
    }
    // The early-promotion test: rho = 1 against rho = h = tolerance, i.e. minus
    // the same expression at h. With p(1) = q < p(h) the factor
    // q/p(h) per exposed and (1-q)/(1-p(h)) per control failure has mean
    // p q/p(h) + (1-p)(1-q)/(1-p(h)) <= 1 for every p >= p(h): a supermartingale
    // under any rho >= h (a tolerance of 1 never moves it: no early promotion).
    const double h = settings.tolerance;
    next.log_lr_harm += fn * std::log1p((h - 1.0) * q) - f1 * std::log(h);
  }
  // The mixture: log sum_j w_j LR_j. Each LR_j is a nonnegative martingale with
  // mean 1 under rho = 1 (a supermartingale under rho < 1), so is their average.
  std::array<double, GateState::kComponents> weighted{};
  for (std::size_t j = 0; j < GateState::kComponents; ++j) {
    weighted[j] = std::log(mix[j].weight) + next.log_lr[j];
  }
  v.log_lr = log_sum_exp(weighted);
  v.threshold = -std::log(settings.alpha);
  v.log_lr_harm = next.log_lr_harm;
  v.promote_threshold = -std::log1p(-settings.promote_confidence);

  // --- descriptive numbers, on the cumulative counts -------------------------------
  const double e1 = exposed.exposure_s;
  const double e0 = control.exposure_s;
  const double k1 = static_cast<double>(exposed.failures);
  const double k0 = static_cast<double>(control.failures);
  v.expected_background = e0 > 0 ? k0 / e0 * e1 : 0.0;
  v.ratio_estimate = (e1 > 0 && e0 > 0 && control.failures > 0) ? (k1 / e1) / (k0 / e0) : 0.0;
  v.ratio_upper =
      rate_ratio_upper_bound(exposed.failures, e1, control.failures, e0, settings.confidence);

  // --- verdict ---------------------------------------------------------------------
  if (state.halted) {
    v.kind = GateVerdict::Kind::kHalt;
    v.reason = "halted at an earlier look; now ";
    append_evidence(v.reason, observation);
    v.reason += "; log LR ";
    append_number(v.reason, v.log_lr);
    v.reason += " (threshold ";
    append_number(v.reason, v.threshold);
    v.reason += ')';
    return step;
  }
  // --- absolute limits, before the statistics ---------------------------------------
  const FailureLimits& limits = settings.limits;
  const std::uint64_t failed = exposed.failures;
  // The share's denominator is the exposed devices (core/evidence.h counts them;
  // an observation without them — a bare statistical look — has no share).
  const std::uint64_t n_exposed = observation.exposed_devices;
  std::string limit;
  if (n_exposed >= limits.min_exposed && n_exposed > 0 &&
      static_cast<double>(failed) > limits.max_failure_rate * static_cast<double>(n_exposed)) {
    limit = "failure limit: ";
    append_count(limit, failed);
    limit += " of ";
    append_count(limit, n_exposed);
    limit += " exposed devices failed (";
    append_number(limit, 100.0 * static_cast<double>(failed) / static_cast<double>(n_exposed));
    limit += "%) > max_failure_rate ";
    append_number(limit, 100.0 * limits.max_failure_rate);
    limit += '%';
  } else if (limits.max_failures && failed > *limits.max_failures) {
    limit = "failure limit: ";
    append_count(limit, failed);
    limit += " exposed devices failed > max_failures ";
    append_count(limit, *limits.max_failures);
  }
  if (!limit.empty()) {
    next.halted = true;
    v.kind = GateVerdict::Kind::kHalt;
    v.limit_crossed = true;
    v.reason = std::move(limit);
    v.reason += "; ";
    append_evidence(v.reason, observation);
    return step;
  }

  if (v.log_lr >= v.threshold) {
    next.halted = true;
    v.kind = GateVerdict::Kind::kHalt;
    v.reason.clear();
    append_evidence(v.reason, observation);
    v.reason += "; log LR ";
    append_number(v.reason, v.log_lr);
    v.reason += " >= ";
    append_number(v.reason, v.threshold);
    return step;
  }

  // --- sequential promotion: before the bake ends ---------------------------------
  const bool all_failed =
      observation.exposed_devices > 0 && failed >= observation.exposed_devices;
  const bool baked = observation.stage_elapsed >= observation.stage_bake;
  const double min_promote_s = settings.min_promote_device_hours * 3600.0;
  if (settings.early_promotion && !baked && settings.tolerance > 1 &&
      observation.stage_elapsed >= settings.min_stage_time && exposed.exposure_s >= min_promote_s &&
      observation.acknowledged >= settings.min_acknowledged && !all_failed &&
      v.log_lr_harm >= v.promote_threshold) {
    v.kind = GateVerdict::Kind::kPromote;
    v.early = true;
    v.reason = "ratio >= ";
    append_number(v.reason, settings.tolerance);
    v.reason += " ruled out at ";
    append_number(v.reason, 100.0 * settings.promote_confidence);
    v.reason += "% after ";
    append_duration(v.reason, observation.stage_elapsed);
    v.reason += " of a ";
    append_duration(v.reason, observation.stage_bake);
    v.reason += " bake (log LR ";
    append_number(v.reason, v.log_lr_harm);
    v.reason += " >= ";
    append_number(v.reason, v.promote_threshold);
    v.reason += "), acknowledged ";
    append_count(v.reason, observation.acknowledged);
    v.reason += "; ";
    append_evidence(v.reason, observation);
    return step;
  }

  std::string missing;
  auto add = [&missing]() -> std::string& {
    if (!missing.empty()) missing += "; ";
    return missing;
  };
  if (!baked) {
    std::string& m = add();
    m += "bake ";
    append_duration(m, observation.stage_elapsed);
    m += " of ";
    append_duration(m, observation.stage_bake);
    // Past the stage floor, what early promotion waits for.
    if (settings.early_promotion && settings.tolerance > 1 &&
        observation.stage_elapsed >= settings.min_stage_time) {
      m += " (early once ratio >= ";
      append_number(m, settings.tolerance);
      m += " is ruled out: log LR ";
      append_number(m, v.log_lr_harm);
      m += " of ";
      append_number(m, v.promote_threshold);
      if (exposed.exposure_s < min_promote_s) {
        m += ", exposed ";
        append_number(m, exposed.exposure_s / 3600.0);
        m += " of ";
        append_number(m, settings.min_promote_device_hours);
        m += " device-hours";
      }
      m += ')';
    }
  }
  if (observation.acknowledged < settings.min_acknowledged) {
    std::string& m = add();
    m += "acknowledged ";
    append_count(m, observation.acknowledged);
    m += " of ";
    append_count(m, settings.min_acknowledged);
  }
  if (all_failed) {
    std::string& m = add();
    m += "all ";
    append_count(m, observation.exposed_devices);
    m += observation.exposed_devices == 1 ? " exposed device failed" : " exposed devices failed";
  }
  const bool ratio_checked = v.expected_background >= settings.ratio_check_min_expected;
  if (ratio_checked && !(v.ratio_upper <= settings.tolerance)) {
    std::string& m = add();
    m += "ratio upper bound ";
    append_number(m, v.ratio_upper);
    m += " > tolerance ";
    append_number(m, settings.tolerance);
  }

  if (!missing.empty()) {
    v.kind = GateVerdict::Kind::kWait;
    v.reason = std::move(missing);
    return step;
  }
  v.kind = GateVerdict::Kind::kPromote;
  v.reason = "baked ";
  append_duration(v.reason, observation.stage_elapsed);
  v.reason += ", acknowledged ";
  append_count(v.reason, observation.acknowledged);
  if (ratio_checked) {
    v.reason += ", ratio upper bound ";
    append_number(v.reason, v.ratio_upper);
    v.reason += " <= tolerance ";
    append_number(v.reason, settings.tolerance);
  } else {
    v.reason += ", ratio not checked (expected background ";
    append_number(v.reason, v.expected_background);
    v.reason += " < ";
    append_number(v.reason, settings.ratio_check_min_expected);
    v.reason += ')';
  }
  v.reason += "; log LR ";
  append_number(v.reason, v.log_lr);
  v.reason += " < ";
  append_number(v.reason, v.threshold);
  return step;
}

bool last_seen_write_due(TimeMs stored, TimeMs now, DurationMs every) {
  if (every <= 0 || stored <= 0) return true;
  return now - stored >= every;
}

TimeMs latest_contact(TimeMs stored, DurationMs every, TimeMs now) {
  if (stored <= 0) return stored;
  if (every <= 0 || stored >= now) return stored;
  return now - stored > every ? stored + every : now;
}

TimeMs silence_horizon(const GateSettings& settings, TimeMs now) {
  // In unsigned arithmetic, biased so that order is kept: the settings come
  // from a plan file, and validate() bounds heartbeat_interval below only, so
  // interval * missed can exceed any int64, and so can now - limit.
  constexpr std::uint64_t kBias = std::uint64_t{1} << 63;
  constexpr std::uint64_t kMaxU = std::numeric_limits<std::uint64_t>::max();
  const auto interval =
      static_cast<std::uint64_t>(std::max<DurationMs>(settings.heartbeat_interval, 0));
  const std::uint64_t missed = settings.silent_after_missed;
  const std::uint64_t limit = missed != 0 && interval > kMaxU / missed ? kMaxU : interval * missed;
  const std::uint64_t biased_now = static_cast<std::uint64_t>(now) ^ kBias;
  const std::uint64_t biased = biased_now >= limit ? biased_now - limit : 0;
  return static_cast<TimeMs>(biased ^ kBias);
}

bool is_silent(const GateSettings& settings, TimeMs last_heard, bool said_goodbye, TimeMs now) {
  if (said_goodbye) return false;
  if (now <= last_heard) return false;
  // Silent iff now - last_heard > interval * missed, i.e. heard before the
  // horizon (strictly: at exactly the limit the last beat may be in flight).
  return last_heard < silence_horizon(settings, now);
}

}  // namespace tranche::core
