// tuf::parse_json: TUF metadata bytes from the network -> a JSON value, and the
// canonical form that TUF signs.
// Properties: never crashes; whatever parse_json accepts, canonical_json can write
// (the parser refuses the only values it cannot: floats and invalid UTF-8); and
// the canonical form is a fixed point: parsed and written again, it is unchanged
// (checked when it has no raw control characters, which canonical JSON writes as
// they are but a JSON parser must refuse).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "tuf/canonical_json.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using tranche::fuzz::check;
  namespace tuf = tranche::tuf;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto value = tuf::parse_json(bytes);
  if (!value.ok()) return 0;
  auto canonical = tuf::canonical_json(*value);
  check(canonical.ok(), "canonical_json refused a value that parse_json accepted", bytes);
  const std::string& text = *canonical;
  if (std::any_of(text.begin(), text.end(), [](char c) { return c >= 0 && c < 0x20; })) return 0;
  auto again = tuf::parse_json(text);
  check(again.ok(), "the canonical form does not parse", bytes);
  auto twice = tuf::canonical_json(*again);
  check(twice.ok() && *twice == text, "the canonical form is not a fixed point", bytes);
  return 0;
}
