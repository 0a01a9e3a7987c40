#include "core/types.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace tranche::core {
namespace {

// The error of a failed parse; fails the test if the parse succeeded.
template <typename T>
Error error_of(const Result<T>& r) {
  EXPECT_FALSE(r.ok());
  return r.ok() ? Error{ErrorCode::kInvalidArgument, "<parse succeeded>"} : r.error();
}

// An error must say what is wrong and quote the input.
template <typename T>
void expect_rejected(const Result<T>& r, ErrorCode code, const std::string& input,
                     const std::string& what) {
  const Error e = error_of(r);
  EXPECT_EQ(e.code, code) << e.to_string();
  EXPECT_NE(e.message.find(what), std::string::npos)
      << "missing '" << what << "' in: " << e.message;
  if (!input.empty()) {
    EXPECT_NE(e.message.find("'" + input + "'"), std::string::npos)
        << "input not quoted in: " << e.message;
  }
}

Version v(const char* text) {
  auto r = Version::parse(text);
  EXPECT_TRUE(r.ok()) << text << ": " << (r.ok() ? "" : r.error().message);
  return *r;
}

// --- names ---------------------------------------------------------------------------

TEST(NameTest, AcceptsTheAllowedAlphabet) {
  auto id = DeviceId::parse("host-01.emea:A_b");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->str(), "host-01.emea:A_b");
  EXPECT_TRUE(TenantId::parse("acme").ok());
  EXPECT_TRUE(RolloutId::parse("r-2024-07-19").ok());
}

TEST(NameTest, RejectsEmptyBadCharactersAndOverlong) {
  expect_rejected(DeviceId::parse(""), ErrorCode::kParse, "", "device id: empty");
  expect_rejected(TenantId::parse("a b"), ErrorCode::kParse, "a b", "tenant id");
  expect_rejected(RolloutId::parse("x/y"), ErrorCode::kParse, "x/y", "'/' at position 2");
  EXPECT_TRUE(DeviceId::parse(std::string(128, 'a')).ok());
  expect_rejected(DeviceId::parse(std::string(129, 'a')), ErrorCode::kTooLarge, "",
                  "longer than 128");
  EXPECT_TRUE(TenantId::parse(std::string(64, 'a')).ok());
  expect_rejected(TenantId::parse(std::string(65, 'a')), ErrorCode::kTooLarge, "",
                  "longer than 64");
}

TEST(NameTest, ErrorsEscapeControlBytesAndTruncateLongInput) {
  const Error e = error_of(DeviceId::parse(std::string("a\nb", 3)));
  EXPECT_NE(e.message.find("\\x0a"), std::string::npos) << e.message;
  EXPECT_EQ(e.message.find('\n'), std::string::npos);
  const Error big = error_of(DeviceId::parse(std::string(100'000, '!')));
  EXPECT_LT(big.message.size(), 400u) << big.message;
}

TEST(DeviceKeyTest, ScopesADeviceIdToItsTenant) {
  const auto a = device_key("a", "gw-1");
  const auto b = device_key("b", "gw-1");
  EXPECT_EQ(a, "a/gw-1");
  EXPECT_NE(a, b);  // the same id in two tenants: two devices
  EXPECT_EQ(device_id_of(a), "gw-1");
  EXPECT_EQ(device_tenant_of(a), "a");
  // A token from before keys named the id alone: all id, no tenant.
  EXPECT_EQ(device_id_of("gw-1"), "gw-1");
  EXPECT_EQ(device_tenant_of("gw-1"), "");
}

TEST(DeviceKeyTest, ParsesBothPartsAndNamesTheBadOne) {
  EXPECT_EQ(parse_device_key("acme/host-01.emea").value(), "acme/host-01.emea");
  expect_rejected(parse_device_key("host-01"), ErrorCode::kParse, "", "device key: expected TENANT/DEVICE");
  expect_rejected(parse_device_key("/host-01"), ErrorCode::kParse, "", "device key: tenant id: empty");
  expect_rejected(parse_device_key("acme/"), ErrorCode::kParse, "", "device key: device id: empty");
  expect_rejected(parse_device_key("acme/a/b"), ErrorCode::kParse, "", "device key: device id: character");
}

TEST(NameTest, OrdersByText) {
  EXPECT_LT(*DeviceId::parse("a"), *DeviceId::parse("b"));
  EXPECT_EQ(*DeviceId::parse("a"), *DeviceId::parse("a"));
}

// --- channel -------------------------------------------------------------------------

TEST(ChannelTest, AcceptsLowercaseDigitsAndDashes) {
  EXPECT_EQ(Channel::parse("sensor")->str(), "sensor");
  EXPECT_TRUE(Channel::parse("content-291").ok());
  EXPECT_TRUE(Channel::parse("7").ok());
  EXPECT_TRUE(Channel::parse(std::string(32, 'c')).ok());
}

TEST(ChannelTest, Rejects) {
  expect_rejected(Channel::parse(""), ErrorCode::kParse, "", "channel: empty");
  expect_rejected(Channel::parse("-x"), ErrorCode::kParse, "-x", "must start with");
  expect_rejected(Channel::parse("Sensor"), ErrorCode::kParse, "Sensor", "'S' at position 1");
  expect_rejected(Channel::parse("a_b"), ErrorCode::kParse, "a_b", "[a-z0-9-]");
  expect_rejected(Channel::parse(std::string(33, 'c')), ErrorCode::kTooLarge, "", "longer than 32");
}

// --- version -------------------------------------------------------------------------

TEST(VersionTest, ParsesAndPrints) {
  for (const char* text : {"0", "7.11.18110", "291.2024071904", "1.2.3.4", "4294967295"}) {
    EXPECT_EQ(v(text).to_string(), text);
  }
}

TEST(VersionTest, LeadingZerosReadAsNumbers) {
  // Calendar versions ("2024.07.19") are common; they compare numerically.
  EXPECT_EQ(v("2024.07.19"), v("2024.7.19"));
  EXPECT_EQ(v("2024.07.19").to_string(), "2024.7.19");
}

TEST(VersionTest, MissingComponentsCountAsZero) {
  EXPECT_EQ(v("1.2"), v("1.2.0"));
  EXPECT_EQ(v("1"), v("1.0.0.0"));
  EXPECT_LT(v("1.2"), v("1.2.0.1"));
  EXPECT_GT(v("1.10"), v("1.9.99"));
  EXPECT_LT(v("7.11.18110"), v("7.11.18111"));
  EXPECT_LT(v("9"), v("10"));
}

TEST(VersionTest, OrderingIsATotalOrderConsistentWithComponents) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> count(1, 4);
  std::uniform_int_distribution<int> comp(0, 3);
  std::vector<std::vector<std::uint32_t>> raw;
  std::vector<Version> parsed;
  for (int i = 0; i < 300; ++i) {
    std::vector<std::uint32_t> parts(4, 0);
    std::string text;
    const int n = count(rng);
    for (int c = 0; c < n; ++c) {
      parts[static_cast<std::size_t>(c)] = static_cast<std::uint32_t>(comp(rng));
      text += (c ? "." : "") + std::to_string(parts[static_cast<std::size_t>(c)]);
    }
    raw.push_back(parts);
    parsed.push_back(v(text.c_str()));
  }
  for (std::size_t i = 0; i < raw.size(); ++i) {
    for (std::size_t j = 0; j < raw.size(); ++j) {
      EXPECT_EQ(parsed[i] <=> parsed[j], raw[i] <=> raw[j]) << i << " " << j;
    }
  }
}

TEST(VersionTest, Rejects) {
  expect_rejected(Version::parse(""), ErrorCode::kParse, "", "version: empty");
  expect_rejected(Version::parse("1..2"), ErrorCode::kParse, "1..2", "empty component");
  expect_rejected(Version::parse(".1"), ErrorCode::kParse, ".1", "leading dot");
  expect_rejected(Version::parse("1."), ErrorCode::kParse, "1.", "trailing dot");
  expect_rejected(Version::parse("."), ErrorCode::kParse, ".", "leading dot");
  expect_rejected(Version::parse("+1"), ErrorCode::kParse, "+1", "sign");
  expect_rejected(Version::parse("1.-2"), ErrorCode::kParse, "1.-2", "sign");
  expect_rejected(Version::parse("1.2a"), ErrorCode::kParse, "1.2a", "'a' at position 4");
  expect_rejected(Version::parse("v1"), ErrorCode::kParse, "v1", "not a decimal digit");
  expect_rejected(Version::parse("1 .2"), ErrorCode::kParse, "1 .2", "not a decimal digit");
  expect_rejected(Version::parse("4294967296"), ErrorCode::kOutOfRange, "4294967296",
                  "exceeds 4294967295");
  expect_rejected(Version::parse("1.99999999999999999999"), ErrorCode::kOutOfRange,
                  "1.99999999999999999999", "component 2");
  expect_rejected(Version::parse("1.2.3.4.5"), ErrorCode::kParse, "1.2.3.4.5",
                  "more than 4 components");
  const std::string long_version = "1." + std::string(63, '0');
  expect_rejected(Version::parse(long_version), ErrorCode::kTooLarge, "", "longer than 64");
  EXPECT_TRUE(Version::parse("1." + std::string(62, '0')).ok());
}

// --- sha256 --------------------------------------------------------------------------

TEST(Sha256Test, ParsesAndFoldsUpperCase) {
  const std::string lower("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  std::string upper = lower;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  ASSERT_TRUE(Sha256::parse(upper).ok());
  EXPECT_EQ(Sha256::parse(upper)->hex(), lower);
  EXPECT_EQ(*Sha256::parse(upper), *Sha256::parse(lower));
}

TEST(Sha256Test, Rejects) {
  expect_rejected(Sha256::parse(std::string(63, 'a')), ErrorCode::kParse, std::string(63, 'a'),
                  "expected 64 hex characters, got 63");
  expect_rejected(Sha256::parse(std::string(65, 'a')), ErrorCode::kParse, "", "got 65");
  expect_rejected(Sha256::parse(""), ErrorCode::kParse, "", "got 0");
  const std::string bad = std::string(10, 'a') + "g" + std::string(53, 'a');
  expect_rejected(Sha256::parse(bad), ErrorCode::kParse, bad, "'g' at position 11");
}

// --- ppm -----------------------------------------------------------------------------

TEST(PpmTest, Parses) {
  EXPECT_EQ(Ppm::parse("0.1%")->value(), 1'000u);
  EXPECT_EQ(Ppm::parse("1%")->value(), 10'000u);
  EXPECT_EQ(Ppm::parse("25%")->value(), 250'000u);
  EXPECT_EQ(Ppm::parse("100%")->value(), Ppm::kWhole);
  EXPECT_EQ(Ppm::parse("100.0000%")->value(), Ppm::kWhole);
  EXPECT_EQ(Ppm::parse("0.0001%")->value(), 1u);
  EXPECT_EQ(Ppm::parse("0%")->value(), 0u);
  EXPECT_EQ(Ppm::parse("12.3456%")->value(), 123'456u);
  EXPECT_EQ(Ppm::parse("007%")->value(), 70'000u);
}

TEST(PpmTest, PrintsTheShortestFormAndRoundTrips) {
  EXPECT_EQ(Ppm::from_ppm(1'000).to_string(), "0.1%");
  EXPECT_EQ(Ppm::from_ppm(0).to_string(), "0%");
  EXPECT_EQ(Ppm::from_ppm(1).to_string(), "0.0001%");
  EXPECT_EQ(Ppm::from_ppm(Ppm::kWhole).to_string(), "100%");
  EXPECT_EQ(Ppm::from_ppm(123'450).to_string(), "12.345%");
  EXPECT_EQ(Ppm::parse("50.50%")->to_string(), "50.5%");
  for (std::uint32_t p = 0; p <= Ppm::kWhole; p += 997) {
    const std::string text = Ppm::from_ppm(p).to_string();
    auto back = Ppm::parse(text);
    ASSERT_TRUE(back.ok()) << text;
    EXPECT_EQ(back->value(), p) << text;
  }
}

TEST(PpmTest, Rejects) {
  expect_rejected(Ppm::parse(""), ErrorCode::kParse, "", "percentage: empty");
  expect_rejected(Ppm::parse("10"), ErrorCode::kParse, "10", "missing '%'");
  expect_rejected(Ppm::parse("0.1"), ErrorCode::kParse, "0.1", "missing '%'");
  expect_rejected(Ppm::parse("100.0001%"), ErrorCode::kOutOfRange, "100.0001%", "above 100%");
  expect_rejected(Ppm::parse("101%"), ErrorCode::kOutOfRange, "101%", "above 100%");
  expect_rejected(Ppm::parse("99999999999999999999999%"), ErrorCode::kOutOfRange, "", "above 100%");
  expect_rejected(Ppm::parse("-1%"), ErrorCode::kOutOfRange, "-1%", "negative");
  expect_rejected(Ppm::parse("0.00001%"), ErrorCode::kParse, "0.00001%", "more than 4 decimals");
  expect_rejected(Ppm::parse("%"), ErrorCode::kParse, "%", "digits");
  expect_rejected(Ppm::parse(".5%"), ErrorCode::kParse, ".5%", "digits");
  expect_rejected(Ppm::parse("5.%"), ErrorCode::kParse, "5.%", "digits");
  expect_rejected(Ppm::parse("+5%"), ErrorCode::kParse, "+5%", "'+' at position 1");
  expect_rejected(Ppm::parse("1.2.3%"), ErrorCode::kParse, "1.2.3%", "not a digit");
  expect_rejected(Ppm::parse("ten%"), ErrorCode::kParse, "ten%", "not a digit");
  expect_rejected(Ppm::parse("5 %"), ErrorCode::kParse, "5 %", "not a digit");
}

TEST(PpmTest, FromPpmAboveWholeIsABug) {
  EXPECT_DEATH((void)Ppm::from_ppm(Ppm::kWhole + 1), "above 100%");
}

// --- durations -----------------------------------------------------------------------

TEST(DurationTest, Parses) {
  EXPECT_EQ(*parse_duration("500ms"), 500);
  EXPECT_EQ(*parse_duration("90s"), 90 * kSecond);
  EXPECT_EQ(*parse_duration("30m"), 30 * kMinute);
  EXPECT_EQ(*parse_duration("1h30m"), kHour + 30 * kMinute);
  EXPECT_EQ(*parse_duration("2d"), 2 * kDay);
  EXPECT_EQ(*parse_duration("0s"), 0);
  EXPECT_EQ(*parse_duration("1d2h3m4s5ms"), kDay + 2 * kHour + 3 * kMinute + 4 * kSecond + 5);
  EXPECT_EQ(*parse_duration("90m"), 90 * kMinute);  // a unit need not be "normalised"
}

TEST(DurationTest, FormatsLargestUnitsFirst) {
  EXPECT_EQ(format_duration(0), "0s");
  EXPECT_EQ(format_duration(45 * kSecond), "45s");
  EXPECT_EQ(format_duration(90 * kMinute), "1h30m");
  EXPECT_EQ(format_duration(500), "500ms");
  EXPECT_EQ(format_duration(2 * kDay), "2d");
  EXPECT_EQ(format_duration(-90 * kSecond), "-1m30s");
  EXPECT_EQ(format_duration(std::numeric_limits<DurationMs>::min()).front(), '-');
}

TEST(DurationTest, FormatThenParseRoundTrips) {
  std::mt19937_64 rng(11);
  for (int i = 0; i < 10'000; ++i) {
    const auto d = static_cast<DurationMs>(rng() >> (1 + rng() % 63));
    const std::string text = format_duration(d);
    auto back = parse_duration(text);
    ASSERT_TRUE(back.ok()) << d << " -> " << text << ": " << back.error().message;
    EXPECT_EQ(*back, d) << text;
  }
  const DurationMs max = std::numeric_limits<DurationMs>::max();
  EXPECT_EQ(*parse_duration(format_duration(max)), max);
}

TEST(DurationTest, Rejects) {
  expect_rejected(parse_duration(""), ErrorCode::kParse, "", "duration: empty");
  expect_rejected(parse_duration("30"), ErrorCode::kParse, "30", "missing unit");
  expect_rejected(parse_duration("5w"), ErrorCode::kParse, "5w", "unknown unit 'w'");
  expect_rejected(parse_duration("5sec"), ErrorCode::kParse, "5sec", "unknown unit 'sec'");
  expect_rejected(parse_duration("h"), ErrorCode::kParse, "h", "expected a number");
  expect_rejected(parse_duration("-5m"), ErrorCode::kParse, "-5m", "negative");
  expect_rejected(parse_duration("1.5h"), ErrorCode::kParse, "1.5h", "'.' at position 2");
  expect_rejected(parse_duration("1h 30m"), ErrorCode::kParse, "1h 30m", "expected a number");
  expect_rejected(parse_duration("30m1h"), ErrorCode::kParse, "30m1h", "out of order");
  expect_rejected(parse_duration("1h1h"), ErrorCode::kParse, "1h1h", "repeated");
  expect_rejected(parse_duration("30M"), ErrorCode::kParse, "30M", "'M'");
  expect_rejected(parse_duration("106751991168d"), ErrorCode::kOutOfRange, "106751991168d",
                  "too large");
  expect_rejected(parse_duration("99999999999999999999ms"), ErrorCode::kOutOfRange, "",
                  "too large");
  // 1844674407370955162 * 10 is 2^64 + 4: a check after the multiply sees 4.
  expect_rejected(parse_duration("18446744073709551620ms"), ErrorCode::kOutOfRange,
                  "18446744073709551620ms", "too large");
  EXPECT_EQ(*parse_duration("9223372036854775807ms"), std::numeric_limits<DurationMs>::max());
  expect_rejected(parse_duration("9223372036854775808ms"), ErrorCode::kOutOfRange,
                  "9223372036854775808ms", "too large");
  EXPECT_TRUE(parse_duration("106751991167d7h").ok());
  expect_rejected(parse_duration("106751991167d8h"), ErrorCode::kOutOfRange, "106751991167d8h",
                  "too large");
  expect_rejected(parse_duration(std::string(65, '1') + "s"), ErrorCode::kTooLarge, "",
                  "longer than 64");
}

}  // namespace
}  // namespace tranche::core

namespace tranche::core {
namespace {

TEST(UtcTime, ParsesTheOneFormTufAndScenariosUse) {
  EXPECT_EQ(parse_utc_time("1970-01-01T00:00:00Z").value(), 0);
  EXPECT_EQ(parse_utc_time("2024-07-19T04:09:00Z").value(), 1721362140000);  // a Friday
  EXPECT_EQ(parse_utc_time("2000-03-01T00:00:01Z").value(), 951868801000);
  EXPECT_TRUE(parse_utc_time("2024-02-29T12:00:00Z").ok());
  for (const char* bad : {"2024-07-19 04:09", "2024-13-19T04:09:00Z", "2023-02-29T00:00:00Z",
                          "2024-02-31T00:00:00Z", "2024-07-19T-1:00:00Z", "2024-07-19T04:09:00+01"}) {
    auto r = parse_utc_time(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.error().message.find(bad), std::string::npos) << r.error().message;
  }
}

}  // namespace
}  // namespace tranche::core
