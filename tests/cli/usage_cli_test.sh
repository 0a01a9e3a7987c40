#!/usr/bin/env bash
# Usage errors of the three programs, one convention (config/usage.h): an
# unknown option or command is named with the closest valid one suggested, the
# exit code is 2 (never CLI11's 106..127), a file that cannot be read is named,
# and a bad TRANCHE_TOKEN names the environment variable instead of asking for
# another login.
#
#   usage_cli_test.sh PATH/TO/tranche PATH/TO/tranche-server PATH/TO/tranche-agent
set -u
TRANCHE="$1"
SERVER_BIN="$2"
AGENT_BIN="$3"
# shellcheck source=../cli_lib.sh
source "$(dirname "$0")/../cli_lib.sh"
export TRANCHE_CONFIG="$tmp/cli.json"
unset TRANCHE_SERVER TRANCHE_TOKEN

# expect_usage NAME EXPECTED-STDERR-REGEX COMMAND...: exit 2 and the message.
expect_usage() {
  local name="$1" want="$2"; shift 2
  "$@" > "$tmp/out" 2> "$tmp/err"; local rc=$?
  check "$name: exit 2 (got $rc)" test $rc -eq 2
  check "$name: says '$want'" grep -qE -- "$want" "$tmp/err"
}

expect_usage "tranche rollout start --chanel" \
  "^tranche rollout start: unknown option --chanel; did you mean --channel\?$" \
  "$TRANCHE" rollout start --chanel content --version 1.0 -f "$tmp/none.yaml"
expect_usage "tranche rolout" "^tranche: unknown command 'rolout'; did you mean 'tranche rollout'\?$" \
  "$TRANCHE" rolout status
expect_usage "tranche rollout strat" "did you mean 'tranche rollout start'\?" "$TRANCHE" rollout strat
expect_usage "tranche fleet --jsn" "^tranche fleet: unknown option --jsn; did you mean --json\?$" "$TRANCHE" fleet --jsn
expect_usage "tranche token lsit" "did you mean 'tranche token list'\?" "$TRANCHE" token lsit
expect_usage "tranche --frobnicate (nothing close)" "^tranche: unknown option --frobnicate$" "$TRANCHE" --frobnicate
expect_usage "tranche-server --prot" "^tranche-server: unknown option --prot; did you mean --port\?$" \
  "$SERVER_BIN" --prot 8080
expect_usage "tranche-server --tick-ms x" "tick-ms" "$SERVER_BIN" --tick-ms x
expect_usage "tranche-agent --confg" "^tranche-agent: unknown option --confg; did you mean --config\?$" \
  "$AGENT_BIN" --confg agent.yaml
expect_usage "tranche-agent without --config" "--config is required" "$AGENT_BIN"

# --help and --version are not errors.
for bin in "$TRANCHE" "$SERVER_BIN" "$AGENT_BIN"; do
  "$bin" --help > /dev/null 2>&1; rc=$?
  check "$(basename "$bin") --help exits 0 (got $rc)" test $rc -eq 0
done

# Files that cannot be read are named.
expect_usage "tranche-server --config missing" "$tmp/missing-server.yaml" \
  "$SERVER_BIN" --config "$tmp/missing-server.yaml" --data-dir "$tmp/data"
expect_usage "tranche-server --tls-cert missing" "$tmp/missing-cert.pem" \
  "$SERVER_BIN" --port 0 --data-dir "$tmp/data-tls" --tls-cert "$tmp/missing-cert.pem" --tls-key "$tmp/missing-key.pem"
expect_usage "tranche-server --interface missing" "$tmp/missing-interface.yaml" \
  "$SERVER_BIN" --port 0 --data-dir "$tmp/data-if" --interface "content=$tmp/missing-interface.yaml"
expect_usage "tranche-agent --config missing" "$tmp/missing-agent.yaml" "$AGENT_BIN" --config "$tmp/missing-agent.yaml"
expect_usage "tranche plan check missing" "$tmp/missing-plan.yaml" "$TRANCHE" plan check "$tmp/missing-plan.yaml"
expect_usage "tranche rollout start -f missing" "^tranche rollout start: --file: File does not exist: $tmp/missing-plan.yaml" \
  "$TRANCHE" rollout start -f "$tmp/missing-plan.yaml" --channel c --version 1.0

# `--plan` is what docs/plan.md calls the file: accepted like --file (here the
# missing login is the next problem, not the flag).
echo "stages: []" > "$tmp/plan.yaml"
"$TRANCHE" rollout start --plan "$tmp/plan.yaml" --channel c --version 1.0 > "$tmp/out" 2> "$tmp/err"; rc=$?
check "rollout start --plan is accepted (exit $rc: not logged in)" grep -q "not logged in" "$tmp/err"
check "... no complaint about --plan" bash -c "! grep -q -- '--plan' '$tmp/err'"

# A bad TRANCHE_TOKEN: the environment variable is named, no "log in again".
# (A server is needed for the 401: a throwaway one.)
"$SERVER_BIN" --port 0 --data-dir "$tmp/srv" --admin-token usage-test-admin-token-0123456789 \
  > "$tmp/server.out" 2> "$tmp/server.err" &
server_pid=$!
trap 'kill $server_pid 2>/dev/null; wait $server_pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do grep -q "listening on" "$tmp/server.out" && break; sleep 0.1; done
URL=$(sed -n 's/^tranche-server listening on \(http:[^ ]*\).*/\1/p' "$tmp/server.out")
TRANCHE_SERVER="$URL" TRANCHE_TOKEN=tro_not_a_token "$TRANCHE" fleet > "$tmp/out" 2> "$tmp/err"; rc=$?
check "bad TRANCHE_TOKEN exits 1 (got $rc)" test $rc -eq 1
check "... names the environment variable TRANCHE_TOKEN" grep -q "environment variable TRANCHE_TOKEN" "$tmp/err"
check "... and does not say to log in again" bash -c "! grep -q 'log in again' '$tmp/err'"
# `tranche device ID` is the short form of `device show ID`: a misspelt command
# is a device nobody enrolled, and the command is suggested.
TRANCHE_SERVER="$URL" TRANCHE_TOKEN=usage-test-admin-token-0123456789 "$TRANCHE" device lsit > "$tmp/out" 2> "$tmp/err"; rc=$?
check "device lsit exits 1 (404, got $rc)" test $rc -eq 1
check "... suggests tranche device list" grep -q "did you mean \`tranche device list\`?" "$tmp/err"

exit $fail
