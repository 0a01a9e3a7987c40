#!/usr/bin/env bash
# Long-poll propagation (docs/benchmarks.md, issue 3 section 4): 1,000 check-ins
# held at once (wait_s 30, devices at rest), then one operator action that changes
# every answer; the time from the operator's request to each held answer.
#   bash bench/propagation.sh [path/to/tranche-server]      (after make build)
# Two actions, each with its own 1,000 held check-ins:
#   start   devices run content 1.0, the baseline, no live rollout ("keep"); an admin starts a rollout of 1.1
#           whose only stage is 100%: every answer becomes "install"
#   rollback devices run 1.1 (the rollout at 100%: "keep"); an admin rolls the
#           rollout back: every answer becomes "rollback" to 1.0
# Knobs: BENCH_HELD (1000), BENCH_THREADS (server threads, default nproc), TRANCHE_LOADGEN.
set -euo pipefail
cd "$(dirname "$0")/.."
SERVER=${1:-${TRANCHE_SERVER:-build/bin/tranche-server}}
LOADGEN=${TRANCHE_LOADGEN:-$(dirname "$SERVER")/tranche-loadgen}
HELD=${BENCH_HELD:-1000}
THREADS=${BENCH_THREADS:-$(nproc)}
for tool in "$SERVER" "$LOADGEN"; do
  [ -x "$tool" ] || { echo "propagation.sh: $tool not found: make build first" >&2; exit 1; }
done
ulimit -n $((HELD * 2 + 256)) 2> /dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((HELD + 64)) ] || { echo "propagation.sh: ulimit -n $(ulimit -n) is too low" >&2; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tranche-propagation.XXXXXX")
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2> /dev/null || true
    wait "$SERVER_PID" 2> /dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "machine: $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC'); server: $SERVER --threads $THREADS; $HELD held check-ins"
ADMIN="tro_bench$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
"$SERVER" --listen 127.0.0.1 --port 0 --threads "$THREADS" --data-dir "$WORK/data" --long-poll-max-s 30 \
  --admin-token "$ADMIN" > "$WORK/server.out" 2> "$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 100); do
  grep -q 'listening on' "$WORK/server.out" 2> /dev/null && break
  kill -0 "$SERVER_PID" 2> /dev/null || { cat "$WORK/server.log" >&2; exit 1; }
  sleep 0.1
done
PORT=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$WORK/server.out" | head -1)
[ -n "$PORT" ] || { echo "propagation.sh: the server did not start" >&2; exit 1; }
python3 bench/provision.py "$PORT" "$ADMIN" "$HELD" "$WORK/tokens" --baseline

python3 - "$WORK/start.json" "$WORK/rollback.json" <<'EOF'
import json, sys
plan = "name: all-at-once\non_failure: rollback\nstages:\n  - {name: all, percent: 100%, bake: 24h}\n"
json.dump({"channel": "content", "version": "1.1", "id": "r-prop", "plan_yaml": plan}, open(sys.argv[1], "w"))
json.dump({"reason": "propagation benchmark"}, open(sys.argv[2], "w"))
EOF

status=0
"$LOADGEN" longpoll --port "$PORT" --tokens "$WORK/tokens" --count "$HELD" --admin-token "$ADMIN" \
  --body '{"versions":{"content":"1.0"},"wait_s":30}' --expect '"action":"install"' \
  --trigger-path /v1/rollouts --trigger-body-file "$WORK/start.json" | sed 's/^/start: /' || status=1
"$LOADGEN" longpoll --port "$PORT" --tokens "$WORK/tokens" --count "$HELD" --admin-token "$ADMIN" \
  --body '{"versions":{"content":"1.1"},"wait_s":30}' --expect '"action":"rollback"' \
  --trigger-path /v1/rollouts/r-prop/rollback --trigger-body-file "$WORK/rollback.json" | sed 's/^/rollback: /' \
  || status=1
exit $status
