// tuf metadata parsers and the client workflow (tuf/client.h) on bytes from the
// network.
//
// Every input goes to the four parsers (parse_root, parse_timestamp,
// parse_snapshot, parse_targets). Then it is split at NUL bytes (never valid
// in JSON) into up to four documents, fed in order to a TrustedSet that trusts
// a fixed root: part 0 to update_root, part 1 to update_timestamp, part 2 to
// update_snapshot, part 3 to update_targets. A fuzzer cannot forge
// signatures, so each part that parses as an envelope is first re-signed
// with the fixed root's key (the key of every role): the checks behind the
// signatures (rollback, versions, expiry, length and hashes, which snapshot
// and timestamp need not list) are reached too.
//
// Properties: never crashes; accepted metadata has canonical signed bytes that
// parse again to the same canonical form; a refused update leaves the trusted
// state as it was; an accepted root is exactly one version up.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "tuf/canonical_json.h"
#include "tuf/client.h"
#include "tuf/crypto.h"
#include "tuf/metadata.h"
#include "tuf/repository.h"

namespace {

namespace tuf = tranche::tuf;
using tranche::fuzz::check;
using tranche::fuzz::explain;

// A fixed Ed25519 key (generated once with openssl genpkey; only for fuzzing).
constexpr std::string_view kKeyPem =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIKqjKH46kOQw6t8s1ODVGnsa4Zi/cApnl6WzVWY7iD8V\n"
    "-----END PRIVATE KEY-----\n";
constexpr tranche::core::TimeMs kNow = 1735689600000;  // 2025-01-01T00:00:00Z

struct Fixed {
  tuf::SigningKey key;
  std::string root;
};

const Fixed& fixed() {
  static const Fixed f = [] {
    auto key = tuf::signing_key_from_pem(kKeyPem);
    check(key.ok(), "the fixed key does not load", "");
    tuf::RootDefinition def;
    def.expires = 4102444800000;  // 2100-01-01
    def.root = def.targets = def.snapshot = def.timestamp = {{key->public_key}, 1};
    auto root = tuf::make_root(def, {*key});
    check(root.ok(), "the fixed root does not sign", "");
    return Fixed{*key, *root};
  }();
  return f;
}

template <typename Md>
void check_canonical(const tranche::core::Result<Md>& md, std::string_view input) {
  if (!md.ok()) return;
  auto again = tuf::parse_json(md->canonical_signed);
  if (!again.ok()) return;  // raw control characters: see fuzz_tuf_json
  auto canonical = tuf::canonical_json(*again);
  check(canonical.ok() && *canonical == md->canonical_signed,
        "canonical signed bytes are not a fixed point", input);
}

// The part re-signed with the fixed key when it is an envelope; else as is.
std::string resigned(std::string_view part) {
  auto doc = tuf::parse_json(part);
  if (!doc.ok() || !doc->is_object()) return std::string(part);
  const auto* s = doc->get_object().if_contains("signed");
  if (s == nullptr || !s->is_object()) return std::string(part);
  auto bytes = tuf::sign_metadata(s->get_object(), {fixed().key});
  return bytes.ok() ? *bytes : std::string(part);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  check_canonical(tuf::parse_root(input), input);
  check_canonical(tuf::parse_timestamp(input), input);
  check_canonical(tuf::parse_snapshot(input), input);
  check_canonical(tuf::parse_targets(input, "role1"), input);

  std::vector<std::string> parts;
  std::size_t start = 0;
  while (parts.size() < 4) {
    const std::size_t nul = input.find('\0', start);
    parts.push_back(
        resigned(input.substr(start, nul == std::string_view::npos ? nul : nul - start)));
    if (nul == std::string_view::npos) break;
    start = nul + 1;
  }
  parts.resize(4);

  auto set = tuf::TrustedSet::create(fixed().root, kNow);
  check(set.ok(), "the fixed root is refused", input);
  if (!parts[0].empty()) {
    const std::int64_t before = set->root().body.common.version;
    auto st = set->update_root(parts[0]);
    if (!st.ok()) explain("update_root: " + st.error().to_string());
    const std::int64_t after = set->root().body.common.version;
    check(st.ok() ? after == before + 1 : after == before, "root version after update_root", input);
  }
  if (auto fin = set->finish_root_update(); !fin.ok()) {
    explain("root: " + fin.error().to_string());
    return 0;
  }
  auto ts = set->update_timestamp(parts[1]);
  if (!ts.ok()) {
    explain("timestamp: " + ts.error().to_string());
    // Only an expired timestamp may stay trusted after a refusal (5.4.4).
    check(set->timestamp() == nullptr || set->timestamp()->body.common.expires <= kNow,
          "a refused timestamp is trusted", input);
    return 0;
  }
  auto snap = set->update_snapshot(parts[2]);
  if (!snap.ok()) {
    explain("snapshot: " + snap.error().to_string());
    return 0;
  }
  check(set->snapshot()->body.common.version == set->timestamp()->body.snapshot.version,
        "trusted snapshot version differs from the timestamp's (5.5.4)", input);
  auto targets = set->update_targets(parts[3]);
  check(targets.ok() == (set->targets() != nullptr), "targets trusted iff accepted", input);
  explain(targets.ok() ? "targets: accepted" : "targets: " + targets.error().to_string());
  return 0;
}
