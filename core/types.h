// Value types that cross trust boundaries. Each is constructed only through
// parse(), so a value that exists has been validated once; after that the code
// passes it around without re-checking.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "core/result.h"
#include "core/time_math.h"

namespace tranche::core {

// TimeMs, DurationMs, kSecond .. kDay and the overflow-safe arithmetic on them
// (saturating_add and the rest) live in core/time_math.h.

// A name made of [A-Za-z0-9._:-], 1..kMax characters. The base of DeviceId,
// TenantId and RolloutId: they differ in meaning, not in syntax, and are kept as
// distinct types so one cannot be passed for another.
template <typename Tag, std::size_t kMax>
class Name {
 public:
  static Result<Name> parse(std::string_view text);
  const std::string& str() const { return value_; }
  auto operator<=>(const Name&) const = default;

 private:
  explicit Name(std::string v) : value_(std::move(v)) {}
  std::string value_;
};

struct DeviceIdTag {};
struct TenantIdTag {};
struct RolloutIdTag {};
using DeviceId = Name<DeviceIdTag, 128>;
using TenantId = Name<TenantIdTag, 64>;
using RolloutId = Name<RolloutIdTag, 64>;

// A device's key, "<tenant>/<device id>": a device id is unique within its
// tenant only (tenants a and b may each have a "gw-1", and neither can take the
// other's), so whatever stores, finds or locks a device uses the key. '/' is in
// neither name, so the key splits back without doubt.
std::string device_key(std::string_view tenant, std::string_view id);  // both valid names
// The key a text names, both parts checked ("acme/gw-1"); kParse otherwise.
Result<std::string> parse_device_key(std::string_view text);
// The parts of a key. A text without '/' is all id and no tenant (a device
// token from before schema version 5 names the id alone).
std::string_view device_id_of(std::string_view key);
std::string_view device_tenant_of(std::string_view key);

// An update channel ("sensor", "content"): [a-z0-9][a-z0-9-]{0,31}.
class Channel {
 public:
  static Result<Channel> parse(std::string_view text);
  const std::string& str() const { return value_; }
  auto operator<=>(const Channel&) const = default;

 private:
  explicit Channel(std::string v) : value_(std::move(v)) {}
  std::string value_;
};

// A release version: 1 to 4 dot-separated decimal components, each < 2^32
// ("7.11.18110", "291.2024071904"). Ordered component-wise, a missing component
// counting as 0 ("1.2" == "1.2.0").
class Version {
 public:
  static constexpr std::size_t kMaxComponents = 4;
  static Result<Version> parse(std::string_view text);
  std::string to_string() const;
  std::strong_ordering operator<=>(const Version& other) const;
  bool operator==(const Version& other) const { return (*this <=> other) == 0; }

 private:
  Version() = default;
  std::array<std::uint32_t, kMaxComponents> parts_{};
  std::uint8_t count_ = 0;
};

// A SHA-256 digest as 64 lowercase hex characters (upper case is accepted and
// folded, since tools print both).
class Sha256 {
 public:
  static Result<Sha256> parse(std::string_view hex);
  const std::string& hex() const { return hex_; }
  auto operator<=>(const Sha256&) const = default;

 private:
  explicit Sha256(std::string h) : hex_(std::move(h)) {}
  std::string hex_;
};

// A share of a population in parts per million: 0.1% is 1,000 ppm. Parsed from
// "0.1%", "25%" or "100%" (at most 4 decimals).
class Ppm {
 public:
  static constexpr std::uint32_t kWhole = 1'000'000;
  static Result<Ppm> parse(std::string_view text);
  static Ppm from_ppm(std::uint32_t ppm);  // asserts ppm <= kWhole
  std::uint32_t value() const { return value_; }
  std::string to_string() const;  // "0.1%"
  auto operator<=>(const Ppm&) const = default;

 private:
  explicit Ppm(std::uint32_t v) : value_(v) {}
  std::uint32_t value_ = 0;
};

// "30m", "1h", "90s", "2d", "500ms", or a combination ("1h30m") -> milliseconds.
Result<DurationMs> parse_duration(std::string_view text);
std::string format_duration(DurationMs d);  // "1h30m", "45s", "0s"

// "2030-01-01T00:00:00Z" (exactly this form, UTC, as python-tuf writes it and as
// scenario files use it) -> milliseconds since the Unix epoch; the day must exist
// in its month. kInvalidArgument otherwise, quoting the input.
Result<TimeMs> parse_utc_time(std::string_view text);

}  // namespace tranche::core
