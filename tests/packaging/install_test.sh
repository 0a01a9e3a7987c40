#!/usr/bin/env bash
# `cmake --install BUILD --prefix TMP`: every file an installation needs is there,
# the units name the installed binaries, and `systemd-analyze verify` accepts the
# units (skipped, saying so, where the tool does not exist).
#
#   install_test.sh BUILD_DIR   (from the repo root)
set -u
BUILD="$1"
# shellcheck source=../cli_lib.sh
source "$(dirname "$0")/../cli_lib.sh"
P="$tmp/prefix"

cmake --install "$BUILD" --prefix "$P" > "$tmp/install.log" 2>&1
rc=$?
check "cmake --install exits 0 (got $rc)" [ "$rc" -eq 0 ]
[ "$rc" -eq 0 ] || tail -n 20 "$tmp/install.log"

for b in tranche tranche-server tranche-agent tranche-demo-sensor tranche-tuf-client; do
  check "bin/$b executable" [ -x "$P/bin/$b" ]
done
for u in tranche-server tranche-agent; do
  check "lib/systemd/system/$u.service" [ -f "$P/lib/systemd/system/$u.service" ]
  check "$u.service runs $P/bin/$u" grep -q "^ExecStart=$P/bin/$u " "$P/lib/systemd/system/$u.service"
done
for c in server agent; do
  check "etc/tranche/$c.yaml" [ -f "$P/etc/tranche/$c.yaml" ]
  check "share/tranche/config/$c.yaml" [ -f "$P/share/tranche/config/$c.yaml" ]
done
check "agent.yaml names the installed sensor" grep -q "$P/bin/tranche-demo-sensor" "$P/etc/tranche/agent.yaml"
check "agent unit: KillMode=mixed (the agent stops its own service)" \
  grep -q '^KillMode=mixed' "$P/lib/systemd/system/tranche-agent.service"
for f in index.html app.js style.css; do
  check "share/tranche/dashboard/$f" [ -f "$P/share/tranche/dashboard/$f" ]
done
check "share/tranche/examples/content/channel-291.yaml" [ -f "$P/share/tranche/examples/content/channel-291.yaml" ]
check "share/tranche/examples/plans/rings.yaml" [ -f "$P/share/tranche/examples/plans/rings.yaml" ]
check "share/tranche/scenarios" [ -d "$P/share/tranche/scenarios" ]
for b in tranche tranche-server tranche-agent; do
  check "share/bash-completion/completions/$b" [ -f "$P/share/bash-completion/completions/$b" ]
done
# The installed completion, asked as bash would ask it, with the installed binaries.
complete_words() {  # complete_words WORD... : what TAB offers for the last word
  PATH="$P/bin:$PATH" bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _tranche; echo "${COMPREPLY[*]}"' \
    _ "$P/share/bash-completion/completions/tranche" "$@"
}
check "completion: tranche rollout st -> start status" test "$(complete_words tranche rollout st)" = "start status"
check "completion: tranche token -> create list revoke" test "$(complete_words tranche token '')" = "create list revoke"
check "completion: tranche rollout start --ch -> --channel" test "$(complete_words tranche rollout start --ch)" = "--channel"
check "completion: tranche-server --po -> --port" test "$(complete_words tranche-server --po)" = "--port"
check "installed tranche runs" "$P/bin/tranche" --version
check "installed tranche-server runs" "$P/bin/tranche-server" --version

# The installed server starts on its default config (port overridden: 0, any free).
"$P/bin/tranche-server" --config "$P/etc/tranche/server.yaml" --port 0 --data-dir "$tmp/state" \
  > "$tmp/server.out" 2> "$tmp/server.err" &
spid=$!
for _ in $(seq 50); do grep -q 'listening on' "$tmp/server.out" 2>/dev/null && break; sleep 0.1; done
check "tranche-server starts with etc/tranche/server.yaml" grep -q 'listening on http://127.0.0.1:' "$tmp/server.out"
kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null
grep -q 'listening on' "$tmp/server.out" || cat "$tmp/server.err"

if command -v systemd-analyze > /dev/null; then
  # verify loads the units offline; it warns about the ExecStart binary not existing
  # only if it does not — here it does, under the prefix.
  out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no \
        "$P/lib/systemd/system/tranche-server.service" "$P/lib/systemd/system/tranche-agent.service" 2>&1)
  vrc=$?
  [ -n "$out" ] && echo "$out"
  check "systemd-analyze verify (exit $vrc, no warnings about the units)" \
    bash -c "[ $vrc -eq 0 ] && ! grep -q 'tranche-' <<< \"\$1\"" _ "$out"
else
  echo "SKIP: systemd-analyze not found; the units were not verified"
fi
exit $fail
