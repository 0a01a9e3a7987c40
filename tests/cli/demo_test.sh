#!/usr/bin/env bash
# `tranche demo --once --agents 10`: the whole story with real processes (a
# tranche-server, 10 tranche-agents, their tranche-demo-sensors). Asserts the JSON
# summary line — the gate halted, the bad release crashed some sensors but not all,
# nobody needs a manual repair, the good release reached the whole fleet — and that
# no process of the demo is left running afterwards.
#
#   demo_test.sh PATH/TO/tranche [SERVERS [SWUPDATE]]   (from the repo root; the other binaries beside it)
#
# With SERVERS 2 or 3: `--servers SERVERS`, the cluster on a PostgreSQL of the
# demo's own behind HAProxy; the same summary, and no PostgreSQL left either.
# With SWUPDATE: `--swupdate SWUPDATE` real swupdate clients (hawkBit DDI) in the
# fleet too: every one installs 1.0 and runs it at the end; those offered 2.0
# refused it and the gate counted each; the others never downloaded it.
#
# Node (scripts/deps.sh) reads the JSON.
set -u
TRANCHE="$1"
# shellcheck source=../cli_lib.sh
source "$(dirname "$0")/../cli_lib.sh"
work="$tmp/demo"
AGENTS=10
SERVERS=${2:-1}
SWU=${3:-0}
FLEET=$((AGENTS + SWU))

"$TRANCHE" demo --once --agents "$AGENTS" --servers "$SERVERS" --swupdate "$SWU" --work-dir "$work" > "$tmp/out" 2> "$tmp/err"
rc=$?
cat "$tmp/out"
[ -s "$tmp/err" ] && { echo "--- stderr"; cat "$tmp/err"; }
check "exit code 0 (got $rc)" [ "$rc" -eq 0 ]
tail -n 1 "$tmp/out" > "$tmp/summary.json"
echo "summary: $(cat "$tmp/summary.json")"

# j EXPR: EXPR evaluated with `j` the summary's JSON.
j() { node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(eval(process.argv[2]))' "$tmp/summary.json" "$1" 2>/dev/null; }
keys='["agents","good_release_coverage","bad_release_exposed","bad_release_crashed","self_healed","manual_repairs","halted","time_to_halt_s","swupdate_clients","swupdate_installed_good","swupdate_refused_bad","swupdate_failed_counted","swupdate_running_good"]'
check "the last line is the summary JSON with exactly its keys, in order" \
  [ "$(j "JSON.stringify(Object.keys(j)) === JSON.stringify($keys)")" = true ]
check "agents = $AGENTS" [ "$(j "j.agents === $AGENTS")" = true ]
check "halted" [ "$(j 'j.halted === true')" = true ]
check "bad release crashed >= 1 sensor" [ "$(j 'j.bad_release_crashed >= 1')" = true ]
check "... and fewer than the fleet" [ "$(j "j.bad_release_crashed < $AGENTS")" = true ]
check "exposed >= crashed + refused, < fleet" \
  [ "$(j "j.bad_release_exposed >= j.bad_release_crashed + j.swupdate_refused_bad && j.bad_release_exposed < $FLEET")" = true ]
check "every crashed agent healed itself" [ "$(j 'j.self_healed === j.bad_release_crashed')" = true ]
check "no manual repairs" [ "$(j 'j.manual_repairs === 0')" = true ]
check "good release on the whole fleet" [ "$(j 'j.good_release_coverage === 1')" = true ]
check "time to halt measured (> 0)" [ "$(j 'j.time_to_halt_s > 0')" = true ]
check "swupdate clients = $SWU" [ "$(j "j.swupdate_clients === $SWU")" = true ]
if [ "$SWU" -gt 0 ]; then
  check "every swupdate client installed update-1.0.swu" [ "$(j "j.swupdate_installed_good === $SWU")" = true ]
  check "every one runs 1.0 at the end" [ "$(j "j.swupdate_running_good === $SWU")" = true ]
  check "the gate counted every client that refused 2.0 as failed" \
    [ "$(j 'j.swupdate_failed_counted === j.swupdate_refused_bad')" = true ]
  check "... and some clients never got 2.0" [ "$(j "j.swupdate_refused_bad < $SWU")" = true ]
  for d in "$work"/swupdate/swu-*; do
    check "$(basename "$d") holds content 1.0" [ "$(cat "$d/content.txt" 2>/dev/null)" = "content 1.0" ]
  done
  check "the summary names the SWUpdate clients" grep -q "SWUpdate clients (real swupdate) *$SWU" "$tmp/out"
fi

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
