#!/usr/bin/env bash
# `tranche demo --once --agents 10`: the whole story with real processes (a
# tranche-server, 10 tranche-agents, their tranche-demo-sensors). Asserts the JSON
# summary line — the gate halted, the bad release crashed some sensors but not all,
# nobody needs a manual repair, the good release reached the whole fleet — and that
# no process of the demo is left running afterwards.
#
#   demo_test.sh PATH/TO/tranche [SERVERS]   (from the repo root; the other binaries beside it)
#
# With SERVERS 2 or 3: `--servers SERVERS`, the cluster on a PostgreSQL of the
# demo's own behind HAProxy; the same summary, and no PostgreSQL left either.
#
# Node (scripts/deps.sh) reads the JSON.
set -u
TRANCHE="$1"
# shellcheck source=../cli_lib.sh
source "$(dirname "$0")/../cli_lib.sh"
work="$tmp/demo"
AGENTS=10
SERVERS=${2:-1}

"$TRANCHE" demo --once --agents "$AGENTS" --servers "$SERVERS" --work-dir "$work" > "$tmp/out" 2> "$tmp/err"
rc=$?
cat "$tmp/out"
[ -s "$tmp/err" ] && { echo "--- stderr"; cat "$tmp/err"; }
check "exit code 0 (got $rc)" [ "$rc" -eq 0 ]
tail -n 1 "$tmp/out" > "$tmp/summary.json"
echo "summary: $(cat "$tmp/summary.json")"

# j EXPR: EXPR evaluated with `j` the summary's JSON.
j() { node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(eval(process.argv[2]))' "$tmp/summary.json" "$1" 2>/dev/null; }
keys='["agents","good_release_coverage","bad_release_exposed","bad_release_crashed","self_healed","manual_repairs","halted","time_to_halt_s"]'
check "the last line is the summary JSON with exactly its keys, in order" \
  [ "$(j "JSON.stringify(Object.keys(j)) === JSON.stringify($keys)")" = true ]
check "agents = $AGENTS" [ "$(j "j.agents === $AGENTS")" = true ]
check "halted" [ "$(j 'j.halted === true')" = true ]
check "bad release crashed >= 1 sensor" [ "$(j 'j.bad_release_crashed >= 1')" = true ]
check "... and fewer than the fleet" [ "$(j "j.bad_release_crashed < $AGENTS")" = true ]
check "exposed >= crashed, < fleet" [ "$(j "j.bad_release_exposed >= j.bad_release_crashed && j.bad_release_exposed < $AGENTS")" = true ]
check "every crashed agent healed itself" [ "$(j 'j.self_healed === j.bad_release_crashed')" = true ]
check "no manual repairs" [ "$(j 'j.manual_repairs === 0')" = true ]
check "good release on the whole fleet" [ "$(j 'j.good_release_coverage === 1')" = true ]
check "time to halt measured (> 0)" [ "$(j 'j.time_to_halt_s > 0')" = true ]

# Nothing of the demo left: every process it started had the work dir in its
# command line (the server's --data-dir, the agents' --config, the sensors' slots,
# HAProxy's configuration), or its PostgreSQL directory.
sleep 0.5
left=$(pgrep -af -- "$work" | grep -v pgrep || true)
if [ "$SERVERS" -gt 1 ]; then
  check "the cluster was announced" grep -q "$SERVERS tranche-servers on it" "$tmp/out"
  pg_dir=$(sed -n 's/.*(data in \(\/tmp\/tranche-demo-pg\.[A-Za-z0-9]*\),.*/\1/p' "$tmp/out" | head -1)
  check "its PostgreSQL directory was announced" [ -n "$pg_dir" ]
  if [ -n "$pg_dir" ]; then
    left+=$(pgrep -af -- "$pg_dir" | grep -v pgrep || true)
    check "its PostgreSQL directory is gone" [ ! -e "$pg_dir" ]
  fi
fi
check "no tranche-* process left" [ -z "$left" ]
[ -n "$left" ] && echo "left running: $left"
exit $fail
