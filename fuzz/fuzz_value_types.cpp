// The value-type parsers of core/types.h and core::parse_utc_time. Every input goes to
// every parser. Properties, beyond "never crashes": what each accepts keeps the
// contract its header states, checked by printing the value back and parsing that.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "core/types.h"
#include "fuzz/fuzz_check.h"
#include "core/types.h"

namespace {

using tranche::fuzz::check;
namespace core = tranche::core;

bool is_lower_hex(const std::string& s) {
  for (const char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// Milliseconds since the epoch -> "YYYY-MM-DDThh:mm:ssZ" (Howard Hinnant's
// civil_from_days), written independently of core::parse_utc_time so the two check each
// other: it accepts exactly the texts this prints back unchanged.
std::string format_utc(core::TimeMs t) {
  if (t % 1000 != 0) return "(not whole seconds)";
  std::int64_t secs = t / 1000;
  std::int64_t days = secs / 86400;
  std::int64_t rest = secs % 86400;
  if (rest < 0) {
    rest += 86400;
    --days;
  }
  days += 719468;
  const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const std::int64_t doe = days - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const std::int64_t day = doy - (153 * mp + 2) / 5 + 1;
  const std::int64_t month = mp < 10 ? mp + 3 : mp - 9;
  const std::int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lldZ",
                static_cast<long long>(year), static_cast<long long>(month),
                static_cast<long long>(day), static_cast<long long>(rest / 3600),
                static_cast<long long>(rest / 60 % 60), static_cast<long long>(rest % 60));
  return buf;
}

template <typename NameType>
void check_name(std::string_view text) {
  if (auto n = NameType::parse(text); n.ok()) {
    check(n->str() == text, "a name changed while parsed", text);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  if (auto v = core::Version::parse(text); v.ok()) {
    auto again = core::Version::parse(v->to_string());
    check(again.ok() && *again == *v, "Version does not survive to_string and parse", text);
  }

  if (auto p = core::Ppm::parse(text); p.ok()) {
    check(p->value() <= core::Ppm::kWhole, "Ppm above 100% accepted", text);
    auto again = core::Ppm::parse(p->to_string());
    check(again.ok() && *again == *p, "Ppm does not survive to_string and parse", text);
  }

  if (auto d = core::parse_duration(text); d.ok()) {
    check(*d >= 0, "negative duration accepted", text);
    auto again = core::parse_duration(core::format_duration(*d));
    check(again.ok() && *again == *d, "duration does not survive format_duration and parse", text);
  }

  if (auto h = core::Sha256::parse(text); h.ok()) {
    check(h->hex().size() == 64 && is_lower_hex(h->hex()), "Sha256 is not 64 lowercase hex", text);
    for (std::size_t i = 0; i < text.size(); ++i) {
      check(h->hex()[i] == lower(text[i]), "Sha256 is not the input folded to lower case", text);
    }
  }

  if (auto c = core::Channel::parse(text); c.ok()) {
    check(c->str() == text, "a channel changed while parsed", text);
  }
  check_name<core::DeviceId>(text);
  check_name<core::TenantId>(text);
  check_name<core::RolloutId>(text);
  if (auto key = core::parse_device_key(text); key.ok()) {
    // Accepted keys are kept as they are and split back into a valid tenant and id.
    check(*key == text, "a device key changed while parsed", text);
    check(core::TenantId::parse(core::device_tenant_of(*key)).ok() && core::DeviceId::parse(core::device_id_of(*key)).ok(),
          "a device key does not split into a tenant and an id", text);
    check(core::device_key(core::device_tenant_of(*key), core::device_id_of(*key)) == *key,
          "a device key does not survive splitting and joining", text);
  }

  if (auto t = tranche::core::parse_utc_time(text); t.ok()) {
    check(format_utc(*t) == text, "parse_utc_time accepted a text that is not the time it returns",
          text);
  }
  return 0;
}
