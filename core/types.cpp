#include "core/types.h"

#include <cstddef>
#include <limits>
#include <string>
#include <string_view>

namespace tranche::core {
namespace {

// Inputs come from outside (files, requests), so an error quotes them escaped and
// bounded: a megabyte of garbage must not become a megabyte of log line.
constexpr std::size_t kQuoteMax = 80;

std::string quoted(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "'";
  for (std::size_t i = 0; i < text.size() && i < kQuoteMax; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c >= 0x7f || c == '\'' || c == '\\') {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  out += "'";
  if (text.size() > kQuoteMax) out += " (" + std::to_string(text.size()) + " bytes, truncated)";
  return out;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_lower(char c) {
  return c >= 'a' && c <= 'z';
}
bool is_upper(char c) {
  return c >= 'A' && c <= 'Z';
}

std::string char_at(std::string_view text, std::size_t i) {
  return quoted(text.substr(i, 1)) + " at position " + std::to_string(i + 1);
}

// What each kind of name is called in messages. Only these three tags are
// instantiated (bottom of this file).
template <typename Tag>
constexpr std::string_view kNameKind = "name";
template <>
constexpr std::string_view kNameKind<DeviceIdTag> = "device id";
template <>
constexpr std::string_view kNameKind<TenantIdTag> = "tenant id";
template <>
constexpr std::string_view kNameKind<RolloutIdTag> = "rollout id";

bool is_name_char(char c) {
  return is_digit(c) || is_lower(c) || is_upper(c) || c == '.' || c == '_' || c == ':' || c == '-';
}

}  // namespace

// --- Name ------------------------------------------------------------------------

template <typename Tag, std::size_t kMax>
Result<Name<Tag, kMax>> Name<Tag, kMax>::parse(std::string_view text) {
  const std::string kind(kNameKind<Tag>);
  if (text.empty()) return make_error(ErrorCode::kParse, kind + ": empty");
  if (text.size() > kMax) {
    return make_error(ErrorCode::kTooLarge, kind + ": longer than " + std::to_string(kMax) +
                                                " characters: " + quoted(text));
  }
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (!is_name_char(text[i])) {
      return make_error(ErrorCode::kParse, kind + ": character " + char_at(text, i) +
                                               " is not one of [A-Za-z0-9._:-] in " + quoted(text));
    }
  }
  return Name(std::string(text));
}

// Spelled as template-ids: a typedef may not qualify an explicit instantiation
// (GCC accepts it, Clang does not).
template Result<Name<DeviceIdTag, 128>> Name<DeviceIdTag, 128>::parse(std::string_view);
template Result<Name<TenantIdTag, 64>> Name<TenantIdTag, 64>::parse(std::string_view);
template Result<Name<RolloutIdTag, 64>> Name<RolloutIdTag, 64>::parse(std::string_view);

// --- device keys -------------------------------------------------------------------

std::string device_key(std::string_view tenant, std::string_view id) {
  return std::string(tenant) + "/" + std::string(id);
}

Result<std::string> parse_device_key(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) {
    return make_error(ErrorCode::kParse, "device key: expected TENANT/DEVICE, not " + quoted(text));
  }
  auto tenant = TenantId::parse(text.substr(0, slash));
  if (!tenant) return tenant.error().with_context("device key: ");
  auto id = DeviceId::parse(text.substr(slash + 1));
  if (!id) return id.error().with_context("device key: ");
  return device_key(tenant->str(), id->str());
}

std::string_view device_id_of(std::string_view key) {
  const auto slash = key.find('/');
  return slash == std::string_view::npos ? key : key.substr(slash + 1);
}

std::string_view device_tenant_of(std::string_view key) {
  const auto slash = key.find('/');
  return slash == std::string_view::npos ? std::string_view{} : key.substr(0, slash);
}

// --- Channel -----------------------------------------------------------------------

Result<Channel> Channel::parse(std::string_view text) {
  constexpr std::size_t kMax = 32;
  if (text.empty()) return make_error(ErrorCode::kParse, "channel: empty");
  if (text.size() > kMax) {
    return make_error(ErrorCode::kTooLarge, "channel: longer than " + std::to_string(kMax) +
                                                " characters: " + quoted(text));
  }
  if (text[0] == '-') {
    return make_error(ErrorCode::kParse,
                      "channel: must start with [a-z0-9], not '-', in " + quoted(text));
  }
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (!is_lower(c) && !is_digit(c) && c != '-') {
      return make_error(ErrorCode::kParse, "channel: character " + char_at(text, i) +
                                               " is not one of [a-z0-9-] in " + quoted(text));
    }
  }
  return Channel(std::string(text));
}

// --- Version -----------------------------------------------------------------------

Result<Version> Version::parse(std::string_view text) {
  constexpr std::size_t kMaxLength = 64;
  if (text.empty()) return make_error(ErrorCode::kParse, "version: empty");
  if (text.size() > kMaxLength) {
    return make_error(ErrorCode::kTooLarge, "version: longer than " + std::to_string(kMaxLength) +
                                                " characters: " + quoted(text));
  }
  Version v;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = text.find('.', start);
    const std::size_t end = dot == std::string_view::npos ? text.size() : dot;
    const std::string_view part = text.substr(start, end - start);
    const std::size_t index = v.count_;  // 0-based component being read
    if (index == kMaxComponents) {
      return make_error(ErrorCode::kParse, "version: more than " + std::to_string(kMaxComponents) +
                                               " components in " + quoted(text));
    }
    if (part.empty()) {
      const char* what = start == 0           ? "leading dot"
                         : end == text.size() ? "trailing dot"
                                              : "empty component";
      return make_error(ErrorCode::kParse, std::string("version: ") + what + " in " + quoted(text));
    }
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < part.size(); ++i) {
      const char c = part[i];
      if (!is_digit(c)) {
        const std::string what = (c == '+' || c == '-') ? "sign " : "character ";
        return make_error(ErrorCode::kParse, "version: " + what + char_at(text, start + i) +
                                                 " is not a decimal digit in " + quoted(text));
      }
      value = value * 10 + static_cast<std::uint64_t>(c - '0');
      // Checked per digit, so `value` never gets near wrapping (at most 11 digits).
      if (value > std::numeric_limits<std::uint32_t>::max()) {
        return make_error(ErrorCode::kOutOfRange,
                          "version: component " + std::to_string(index + 1) + " " + quoted(part) +
                              " exceeds 4294967295 in " + quoted(text));
      }
    }
    v.parts_[index] = static_cast<std::uint32_t>(value);
    v.count_ = static_cast<std::uint8_t>(index + 1);
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return v;
}

std::string Version::to_string() const {
  std::string out;
  for (std::size_t i = 0; i < count_; ++i) {
    if (i > 0) out += '.';
    out += std::to_string(parts_[i]);
  }
  return out;
}

std::strong_ordering Version::operator<=>(const Version& other) const {
  // Components beyond count_ are 0, which is exactly "a missing component counts
  // as 0": the arrays compare as they are.
  return parts_ <=> other.parts_;
}

// --- Sha256 ------------------------------------------------------------------------

Result<Sha256> Sha256::parse(std::string_view hex) {
  constexpr std::size_t kLength = 64;
  if (hex.size() != kLength) {
    return make_error(ErrorCode::kParse, "sha256: expected 64 hex characters, got " +
                                             std::to_string(hex.size()) + ": " + quoted(hex));
  }
  std::string out(hex);
  for (std::size_t i = 0; i < out.size(); ++i) {
    char& c = out[i];
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    if (!is_digit(c) && !(c >= 'a' && c <= 'f')) {
      return make_error(ErrorCode::kParse, "sha256: character " + char_at(hex, i) +
                                               " is not a hex digit in " + quoted(hex));
    }
  }
  return Sha256(std::move(out));
}

// --- Ppm ---------------------------------------------------------------------------

Result<Ppm> Ppm::parse(std::string_view text) {
  constexpr std::size_t kMaxDecimals = 4;  // 0.0001% = 1 ppm
  const std::string example = "; expected a percentage like '0.1%' or '25%'";
  if (text.empty()) return make_error(ErrorCode::kParse, "percentage: empty" + example);
  if (text.back() != '%') {
    return make_error(ErrorCode::kParse, "percentage: missing '%' in " + quoted(text) + example);
  }
  const std::string_view body = text.substr(0, text.size() - 1);
  if (!body.empty() && body[0] == '-') {
    return make_error(ErrorCode::kOutOfRange, "percentage: negative: " + quoted(text));
  }
  const std::size_t dot = body.find('.');
  const std::string_view whole = body.substr(0, dot);
  const std::string_view frac =
      dot == std::string_view::npos ? std::string_view{} : body.substr(dot + 1);
  if (whole.empty() || (dot != std::string_view::npos && frac.empty())) {
    return make_error(ErrorCode::kParse, "percentage: expected digits on both sides of '.' in " +
                                             quoted(text) + example);
  }
  if (frac.size() > kMaxDecimals) {
    return make_error(ErrorCode::kParse,
                      "percentage: more than 4 decimals (finest is 0.0001%) in " + quoted(text));
  }
  std::uint64_t ppm = 0;
  for (std::size_t i = 0; i < body.size(); ++i) {
    if (i == dot) continue;
    if (!is_digit(body[i])) {
      return make_error(ErrorCode::kParse, "percentage: character " + char_at(text, i) +
                                               " is not a digit in " + quoted(text) + example);
    }
    if (i < whole.size()) {
      ppm = ppm * 10 + static_cast<std::uint64_t>(body[i] - '0');
      // Checked per digit so a long run of digits cannot wrap.
      if (ppm > 100) {
        return make_error(ErrorCode::kOutOfRange, "percentage: above 100%: " + quoted(text));
      }
    }
  }
  ppm *= 10'000;
  std::uint64_t scale = 1'000;
  for (const char c : frac) {
    ppm += static_cast<std::uint64_t>(c - '0') * scale;
    scale /= 10;
  }
  if (ppm > kWhole) {
    return make_error(ErrorCode::kOutOfRange, "percentage: above 100%: " + quoted(text));
  }
  return Ppm(static_cast<std::uint32_t>(ppm));
}

Ppm Ppm::from_ppm(std::uint32_t ppm) {
  TRANCHE_ASSERT(ppm <= kWhole, "a share above 100%");
  return Ppm(ppm);
}

std::string Ppm::to_string() const {
  std::string out = std::to_string(value_ / 10'000);
  std::uint32_t frac = value_ % 10'000;
  if (frac != 0) {
    std::string digits = std::to_string(frac);
    digits.insert(0, 4 - digits.size(), '0');
    while (digits.back() == '0') digits.pop_back();
    out += '.' + digits;
  }
  return out + '%';
}

// --- durations -----------------------------------------------------------------------

namespace {

struct DurationUnit {
  std::string_view name;
  DurationMs ms;
};
// Largest first: a combination names each unit at most once, in this order.
constexpr DurationUnit kDurationUnits[] = {
    {"d", kDay}, {"h", kHour}, {"m", kMinute}, {"s", kSecond}, {"ms", 1},
};
constexpr std::size_t kUnitCount = sizeof kDurationUnits / sizeof kDurationUnits[0];

}  // namespace

Result<DurationMs> parse_duration(std::string_view text) {
  constexpr std::size_t kMaxLength = 64;
  const std::string units = " (units: d, h, m, s, ms; e.g. '30m', '1h30m', '500ms')";
  if (text.empty()) return make_error(ErrorCode::kParse, "duration: empty" + units);
  if (text.size() > kMaxLength) {
    return make_error(ErrorCode::kTooLarge, "duration: longer than " + std::to_string(kMaxLength) +
                                                " characters: " + quoted(text));
  }
  constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<DurationMs>::max());
  std::uint64_t total = 0;
  std::size_t next_unit = 0;  // index into kDurationUnits of the largest unit still allowed
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t number_start = i;
    std::uint64_t n = 0;
    while (i < text.size() && is_digit(text[i])) {
      const auto digit = static_cast<std::uint64_t>(text[i] - '0');
      // Checked before the multiply: n <= kMax only bounds n * 10 by 10 * kMax,
      // which wraps a uint64 ("18446744073709551620ms" would read as 4 ms).
      if (n > (kMax - digit) / 10) {
        return make_error(ErrorCode::kOutOfRange, "duration: too large: " + quoted(text));
      }
      n = n * 10 + digit;
      ++i;
    }
    if (i == number_start) {
      const std::string what = text[i] == '-' ? "negative" : "expected a number";
      return make_error(ErrorCode::kParse, "duration: " + what + " at position " +
                                               std::to_string(i + 1) + " in " + quoted(text) +
                                               units);
    }
    const std::size_t unit_start = i;
    while (i < text.size() && is_lower(text[i])) ++i;
    const std::string_view unit = text.substr(unit_start, i - unit_start);
    if (unit.empty()) {
      const std::string what = unit_start == text.size()
                                   ? "missing unit after " + quoted(text.substr(number_start))
                                   : "unexpected " + char_at(text, unit_start);
      return make_error(ErrorCode::kParse, "duration: " + what + " in " + quoted(text) + units);
    }
    std::size_t u = 0;
    while (u < kUnitCount && kDurationUnits[u].name != unit) ++u;
    if (u == kUnitCount) {
      return make_error(ErrorCode::kParse,
                        "duration: unknown unit " + quoted(unit) + " in " + quoted(text) + units);
    }
    if (u < next_unit) {
      return make_error(ErrorCode::kParse, "duration: unit " + quoted(unit) +
                                               " repeated or out of order (largest first) in " +
                                               quoted(text));
    }
    next_unit = u + 1;
    const auto ms = static_cast<std::uint64_t>(kDurationUnits[u].ms);
    if (n > (kMax - total) / ms) {
      return make_error(ErrorCode::kOutOfRange, "duration: too large: " + quoted(text));
    }
    total += n * ms;
  }
  return static_cast<DurationMs>(total);
}

std::string format_duration(DurationMs d) {
  if (d == 0) return "0s";
  std::string out;
  // Magnitude in unsigned arithmetic: -INT64_MIN does not fit in an int64.
  std::uint64_t rest = static_cast<std::uint64_t>(d);
  if (d < 0) {
    out += '-';
    rest = 0 - rest;
  }
  for (const DurationUnit& unit : kDurationUnits) {
    const auto ms = static_cast<std::uint64_t>(unit.ms);
    const std::uint64_t n = rest / ms;
    rest %= ms;
    if (n != 0) out += std::to_string(n) + std::string(unit.name);
  }
  return out;
}

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

}  // namespace

Result<TimeMs> parse_utc_time(std::string_view t) {
  auto bad = [&] {
    return make_error(ErrorCode::kInvalidArgument,
                      "expected a UTC time like 2030-01-01T00:00:00Z, got '" +
                          std::string(t.substr(0, 40)) + "'");
  };
  // YYYY-MM-DDTHH:MM:SSZ
  if (t.size() != 20 || t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' ||
      t[16] != ':' || t[19] != 'Z') {
    return bad();
  }
  auto num = [&](std::size_t pos, std::size_t len, unsigned& out) {
    out = 0;
    for (std::size_t i = pos; i < pos + len; ++i) {
      if (t[i] < '0' || t[i] > '9') return false;
      out = out * 10 + static_cast<unsigned>(t[i] - '0');
    }
    return true;
  };
  unsigned year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!num(0, 4, year) || !num(5, 2, month) || !num(8, 2, day) || !num(11, 2, hour) ||
      !num(14, 2, minute) || !num(17, 2, second)) {
    return bad();
  }
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (month < 1 || month > 12) return bad();
  unsigned dim = kDays[month - 1] + ((month == 2 && leap) ? 1u : 0u);
  if (day < 1 || day > dim || hour > 23 || minute > 59 || second > 59) return bad();
  std::int64_t days = days_from_civil(static_cast<std::int64_t>(year), month, day);
  std::int64_t secs = days * 86400 + static_cast<std::int64_t>(hour * 3600 + minute * 60 + second);
  return secs * 1000;
}

}  // namespace tranche::core
