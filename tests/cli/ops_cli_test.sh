#!/usr/bin/env bash
# The operator commands of `tranche` against a real tranche-server on 127.0.0.1:
# login (and a wrong token), release publish (length and sha256 computed, the
# contract check refusing field 21, the admin bypass), rollout start / status
# (text and --json) / pause / resume / abort, status --watch ending with the
# rollout, device (the why), fleet, and the exit codes: 0 done, 1 refused by the
# server (its code and message printed), 2 usage.
#
#   ops_cli_test.sh PATH/TO/tranche PATH/TO/tranche-server   (from the repo root)
#
# Node (scripts/deps.sh) plays one device and reads JSON: no curl or python needed.
set -u
TRANCHE="$1"
SERVER_BIN="$2"
# shellcheck source=../cli_lib.sh
source "$(dirname "$0")/../cli_lib.sh"

ADMIN=cli-test-admin-token-0123456789
export TRANCHE_CONFIG="$tmp/config/cli.json"
unset TRANCHE_SERVER TRANCHE_TOKEN


start_server "$SERVER_BIN" --admin-token "$ADMIN" --tick-ms 100 \
  --interface content=examples/content/interface.yaml

# --- usage errors: exit 2 --------------------------------------------------------------
# A guessable bootstrap token is refused before anything starts.
"$SERVER_BIN" --port 0 --data-dir "$tmp/short" --admin-token a > /dev/null 2> "$tmp/err"; rc=$?
check "tranche-server --admin-token a exits 2 (got $rc)" test $rc -eq 2
check "... and says the minimum" grep -q "at least 128" "$tmp/err"
check "... and wrote nothing" test ! -e "$tmp/short/tranche.db"
# 20 lowercase letters hold at most 94 bits: refused too; 32 hex digits (128 bits) start.
"$SERVER_BIN" --port 0 --data-dir "$tmp/short" --admin-token abcdefghijklmnopqrst > /dev/null 2> "$tmp/err"; rc=$?
check "a 20-letter lowercase token exits 2 (got $rc)" test $rc -eq 2
"$TRANCHE" fleet > "$tmp/out" 2> "$tmp/err"; rc=$?
check "fleet before login exits 2 (got $rc)" test $rc -eq 2
check "... and says how to log in" grep -q "not logged in: run \`tranche login --server URL --token T\`" "$tmp/err"
"$TRANCHE" rollout pause > /dev/null 2>&1; rc=$?
check "rollout pause without ID exits 2 (got $rc)" test $rc -eq 2
"$TRANCHE" rollout --help > "$tmp/out" 2>&1; rc=$?
check "rollout --help exits 0 and lists the actions" \
  bash -c "[ $rc -eq 0 ] && grep -q 'rollback' '$tmp/out' && grep -q 'status' '$tmp/out'"

# --- login ------------------------------------------------------------------------------
"$TRANCHE" login --server "$URL" --token wrong-token > "$tmp/out" 2> "$tmp/err"; rc=$?
check "login with a wrong token exits 1 (got $rc)" test $rc -eq 1
check "... printing the API's code and message" \
  grep -q "^tranche login: 401 unauthorized: the operator token is not known to this server$" "$tmp/err"
check "... and keeps nothing" test ! -e "$TRANCHE_CONFIG"
"$TRANCHE" login --server "$URL/" --token "$ADMIN" > "$tmp/out" 2> "$tmp/err"; rc=$?
check "login exits 0 (got $rc)" test $rc -eq 0
check "config file is mode 0600" test "$(stat -c %a "$TRANCHE_CONFIG")" = 600
check "config keeps the server without the trailing slash" \
  test "$(json "$TRANCHE_CONFIG" j.server)" = "$URL"
# A config file that repeats a key is refused, naming the file and the key.
printf '{"server":"%s","token":"%s","token":"x"}' "$URL" "$ADMIN" > "$tmp/dup.json"
TRANCHE_CONFIG="$tmp/dup.json" "$TRANCHE" fleet > "$tmp/out" 2> "$tmp/err"; rc=$?
check "a config with a repeated key is refused (got $rc)" test $rc -ne 0
check "... naming the file and the key" grep -q "dup.json: .*duplicate key 'token'" "$tmp/err"

# A wrong token from the environment overrides the file: exit 1 with the message.
TRANCHE_TOKEN=not-a-token "$TRANCHE" fleet > "$tmp/out" 2> "$tmp/err"; rc=$?
check "fleet with a wrong token exits 1 (got $rc)" test $rc -eq 1
check "... naming the problem" grep -q "^tranche fleet: 401 unauthorized: the operator token is not known" "$tmp/err"

# --- one device, enrolled and checking in (node) ----------------------------------------
cat > "$tmp/device.mjs" <<'EOF'
const [url, admin] = process.argv.slice(2);
const post = async (p, body, token) => {
  const r = await fetch(url + p, { method: 'POST', headers: { 'Content-Type': 'application/json',
    ...(token ? { Authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
  if (r.status >= 300) throw new Error(`${p}: ${r.status} ${await r.text()}`);
  return r.json();
};
await post('/v1/tenants', { id: 'acme', enrollment_key: 'acme-enrollment-key-0123' }, admin);
const { device_token } = await post('/v1/enroll', { tenant: 'acme', enrollment_key: 'acme-enrollment-key-0123', device_id: 'dev-1' });
await post('/v1/checkin', { versions: { content: '0.9' } }, device_token);
EOF
node "$tmp/device.mjs" "$URL" "$ADMIN" 2> "$tmp/err"
check "a device enrolled and checked in" test $? -eq 0

# --- release publish ----------------------------------------------------------------------
head -c 5000 /dev/urandom > "$tmp/content-1.0.bin"
"$TRANCHE" release publish --channel content --version 1.0 --target "$tmp/content-1.0.bin" \
  --bundle examples/content/good.yaml > "$tmp/out" 2> "$tmp/err"; rc=$?
check "publish 1.0 exits 0 (got $rc)" test $rc -eq 0
sum=$(sha256sum "$tmp/content-1.0.bin" | cut -d' ' -f1)
check "publish prints length and sha256" grep -q "content/content-1.0.bin, 5000 bytes, sha256 $sum" "$tmp/out"
check "publish says the contract check passed" grep -q "^contract check: passed" "$tmp/out"
node --input-type=module -e '
  const r = await fetch(process.argv[1] + "/v1/releases", { headers: { Authorization: "Bearer " + process.argv[2] } });
  console.log(JSON.stringify(await r.json()));' "$URL" "$ADMIN" > "$tmp/releases.json"
check "the server has the target's length and sha256" \
  test "$(json "$tmp/releases.json" 'j.releases[0].targets[0].length + " " + j.releases[0].targets[0].sha256')" = "5000 $sum"

"$TRANCHE" release publish --channel content --version 2.0 --target "$tmp/content-1.0.bin" \
  --bundle examples/content/channel-291.yaml > "$tmp/out" 2> "$tmp/err"; rc=$?
check "publish of the field-21 bundle exits 1 (got $rc)" test $rc -eq 1
check "... with 422 contract_violation" grep -q "^tranche release publish: 422 contract_violation: " "$tmp/err"
check "... and the violation naming field 21" grep -q "violation: .*field 21 is not supplied" "$tmp/err"
"$TRANCHE" release publish --channel content --version 2.0 --target "$tmp/content-1.0.bin" \
  --bundle examples/content/channel-291.yaml --skip-contract-check --json > "$tmp/out" 2> "$tmp/err"; rc=$?
check "publish --skip-contract-check (admin) exits 0 (got $rc)" test $rc -eq 0
check "... --json is the API's answer: contract_check skipped" test "$(json "$tmp/out" j.contract_check)" = skipped
"$TRANCHE" release publish --channel content --version 2.1 --target "$tmp/content-1.0.bin" > "$tmp/out" 2> "$tmp/err"; rc=$?
check "publish without --bundle exits 0 (got $rc)" test $rc -eq 0
check "... and says the contract was not checked, not that it passed" grep -q "^contract check: not checked: no bundle given" "$tmp/out"
"$TRANCHE" release publish --channel content --version 3.0 --target "$tmp/missing.bin" > /dev/null 2> "$tmp/err"; rc=$?
check "publish of a missing file exits 2 (got $rc)" test $rc -eq 2
check "... naming the file" grep -q "missing.bin" "$tmp/err"

# --- rollouts -------------------------------------------------------------------------------
cat > "$tmp/plan.yaml" <<'EOF'
name: slow
on_failure: rollback
gate: {min_acknowledged: 1}
stages:
  - {name: canary, percent: 50%, bake: 1h}
  - {name: all, percent: 100%, bake: 0s}
EOF
# A bad plan is named by its file and line, as docs/plan.md says — not as the
# request's plan_yaml field — and nothing is started.
printf 'name: broken\nstages:\n  - {name: a, percent: 100%%\n' > "$tmp/broken.yaml"
"$TRANCHE" rollout start --plan "$tmp/broken.yaml" --channel content --version 1.0 > "$tmp/out" 2> "$tmp/err"; rc=$?
check "a bad plan file exits 1 (got $rc)" test $rc -eq 1
check "... naming the file and line" grep -q "^tranche rollout start: $tmp/broken.yaml:4: " "$tmp/err"
check "... not plan_yaml" bash -c "! grep -q plan_yaml '$tmp/err'"
"$TRANCHE" rollout start -f "$tmp/plan.yaml" --channel content --version 1.0 --id r-cli > "$tmp/out" 2> "$tmp/err"; rc=$?
check "rollout start exits 0 (got $rc)" test $rc -eq 0
check "... names the rollout" grep -q "^started rollout r-cli$" "$tmp/out"
check "... and shows the stages with bars" grep -q "^> 1 canary \[" "$tmp/out"
"$TRANCHE" rollout start -f "$tmp/plan.yaml" --channel content --version 1.0 > /dev/null 2> "$tmp/err"; rc=$?
check "a second live rollout on the channel exits 1 (got $rc)" test $rc -eq 1
check "... with 409 conflict" grep -q "^tranche rollout start: 409 conflict: " "$tmp/err"

"$TRANCHE" rollout status r-cli --json > "$tmp/status.json"; rc=$?
check "status --json exits 0 (got $rc)" test $rc -eq 0
check "status --json: running, stage 0" test "$(json "$tmp/status.json" 'j.status.state + " " + j.status.stage')" = "running 0"
"$TRANCHE" rollout status > "$tmp/out"; rc=$?
check "status (all) exits 0 and lists r-cli" bash -c "[ $rc -eq 0 ] && grep -q '^r-cli  *running' '$tmp/out'"
check "status shows the gate and the allowed actions" \
  bash -c "grep -q '^gate     exposed' '$tmp/out' && grep -q '^actions  pause, promote, abort, rollback' '$tmp/out'"

"$TRANCHE" rollout pause r-cli --reason "cli test pause" > "$tmp/out" 2> "$tmp/err"; rc=$?
check "pause exits 0 (got $rc)" test $rc -eq 0
check "pause says paused" grep -q "^r-cli: pause done; now paused" "$tmp/out"
"$TRANCHE" rollout status r-cli --json > "$tmp/status.json"
check "the API says paused" test "$(json "$tmp/status.json" j.status.state)" = paused
check "the reason is recorded" test "$(json "$tmp/status.json" 'j.transitions.at(-1).reason')" = "cli test pause"
"$TRANCHE" rollout pause r-cli > /dev/null 2> "$tmp/err"; rc=$?
check "pausing twice exits 1 (got $rc)" test $rc -eq 1
check "... with 409 invalid_transition" \
  grep -q "^tranche rollout pause: 409 invalid_transition: event 'pause' in state 'paused': no such transition$" "$tmp/err"
"$TRANCHE" rollout resume r-cli --json > "$tmp/out"; rc=$?
check "resume --json exits 0 and says running" \
  bash -c "[ $rc -eq 0 ] && [ \"\$(node -e 'console.log(JSON.parse(require(\"fs\").readFileSync(\"$tmp/out\",\"utf8\")).status.state)')\" = running ]"
"$TRANCHE" rollout promote no-such-rollout > /dev/null 2> "$tmp/err"; rc=$?
check "an unknown rollout exits 1 with 404" bash -c "[ $rc -eq 1 ] && grep -q '^tranche rollout promote: 404 not_found' '$tmp/err'"

# --- device and fleet --------------------------------------------------------------------------
"$TRANCHE" device dev-1 --version 1.0 > "$tmp/out" 2> "$tmp/err"; rc=$?
check "device exits 0 (got $rc)" test $rc -eq 0
check "device prints the why" grep -q "^why      .*1.0" "$tmp/out"
check "device prints the channel's answer and code" grep -q "^channel  content: runs 0.9" "$tmp/out"
"$TRANCHE" device dev-1 --version 1.0 --json > "$tmp/dev.json"
check "device --json has why" test -n "$(json "$tmp/dev.json" j.why)"
"$TRANCHE" device nobody > /dev/null 2> "$tmp/err"; rc=$?
check "unknown device exits 1 with 404 not_found" bash -c "[ $rc -eq 1 ] && grep -q '^tranche device: 404 not_found: ' '$tmp/err'"
"$TRANCHE" fleet > "$tmp/out"; rc=$?
check "fleet exits 0 (got $rc)" test $rc -eq 0
check "fleet counts the device" grep -q "^1 devices, 1 online" "$tmp/out"
check "fleet shows versions per channel" grep -q "^  0.9 " "$tmp/out"
"$TRANCHE" fleet --json > "$tmp/fleet.json"
check "fleet --json: 1 device on 0.9" test "$(json "$tmp/fleet.json" 'j.devices + " " + j.by_version.content["0.9"]')" = "1 1"

# --- --watch ends with the rollout --------------------------------------------------------------
"$TRANCHE" rollout status r-cli --watch > "$tmp/watch.out" 2>&1 &
watch_pid=$!
sleep 1.5
"$TRANCHE" rollout abort r-cli --reason "cli test abort" > /dev/null 2> "$tmp/err"
check "abort (admin) exits 0" test $? -eq 0
for _ in $(seq 50); do kill -0 $watch_pid 2>/dev/null || break; sleep 0.1; done
if kill -0 $watch_pid 2>/dev/null; then kill $watch_pid; watch_rc=99; else wait $watch_pid; watch_rc=$?; fi
check "status --watch exits 0 once the rollout is final (got $watch_rc)" test $watch_rc -eq 0
check "--watch redrew (at least two screens)" test "$(grep -c '^rollout  r-cli' "$tmp/watch.out")" -ge 2
check "--watch's last screen says aborted" grep -q "^state    aborted" "$tmp/watch.out"

exit $fail
