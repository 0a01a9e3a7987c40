#!/usr/bin/env bash
# The administrator's commands of `tranche` against a real tranche-server:
# token create|list|revoke (a revoked token refused at once), tenant
# create|list|policy, release list|show, audit, device list|show|events, and
# plan check (no server: stage sizes for a fleet, errors naming file and line).
# Every server command's --json is the API's answer as it came.
#
#   admin_cli_test.sh PATH/TO/tranche PATH/TO/tranche-server   (from the repo root)
#
# Node (scripts/deps.sh) plays one device and reads JSON.
set -u
TRANCHE="$1"
SERVER_BIN="$2"
# shellcheck source=../cli_lib.sh
source "$(dirname "$0")/../cli_lib.sh"

ADMIN=admin-cli-test-admin-token-0123456789
export TRANCHE_CONFIG="$tmp/config/cli.json"
unset TRANCHE_SERVER TRANCHE_TOKEN

# run NAME EXPECTED-RC COMMAND...: stdout in $tmp/out, stderr in $tmp/err.
run() {
  local name="$1" want="$2"; shift 2
  "$@" > "$tmp/out" 2> "$tmp/err"; local rc=$?
  check "$name exits $want (got $rc)" test $rc -eq "$want"
}

# --- plan check: no server needed -------------------------------------------------------
cat > "$tmp/plan.yaml" <<'YAML'
name: t
stages:
  - {name: canary, percent: 1%, min_devices: 10, bake: 10m}
  - {name: half, percent: 50%, bake: 1h}
  - {name: all, percent: 100%, bake: 0s, admits_critical: true}
YAML
run "plan check --fleet 10000" 0 "$TRANCHE" plan check "$tmp/plan.yaml" --fleet 10000
check "... says it is valid" grep -q "^$tmp/plan.yaml: valid plan 't', 3 stages for a fleet of 10000 devices$" "$tmp/out"
check "... canary takes ~100 devices (1%)" grep -qE "^canary +1% +10 +~100 \(1%\) +10m +no" "$tmp/out"
check "... half takes ~5000" grep -qE "^half +50% +0 +~5000 \(50%\) +1h" "$tmp/out"
run "plan check --fleet 200 --json" 0 "$TRANCHE" plan check "$tmp/plan.yaml" --fleet 200 --json
check "... canary raised to its 10 devices (5%)" \
  test "$(json "$tmp/out" 'j.stages.map(s => s.devices + "@" + s.share).join(",")')" = "10@5%,100@50%,200@100%"
printf 'name: bad\nstages:\n  - name: a\n    percent: 50%%\n  - name: b\n    percent: 10%%\n' > "$tmp/bad.yaml"
run "plan check of shares going down" 1 "$TRANCHE" plan check "$tmp/bad.yaml"
check "... names the file and line" grep -qE "$tmp/bad.yaml:[0-9]+" "$tmp/err"
run "plan check of a missing file" 2 "$TRANCHE" plan check "$tmp/missing.yaml"
check "... names the file" grep -q "$tmp/missing.yaml" "$tmp/err"

# --- a server -------------------------------------------------------------------------------
start_server "$SERVER_BIN" --admin-token "$ADMIN" --tick-ms 100
run "login" 0 "$TRANCHE" login --server "$URL" --token "$ADMIN"

# --- tokens ----------------------------------------------------------------------------------
run "token create ops --role operator" 0 "$TRANCHE" token create ops --role operator
OPS=$(grep -o 'tro_[0-9a-f]*' "$tmp/out")
check "... prints the token once" test -n "$OPS"
run "token create ci --json" 0 "$TRANCHE" token create ci --json
CI=$(json "$tmp/out" j.token)
check "... --json is the API's answer" test "$(json "$tmp/out" j.role)" = viewer
run "token create x --role root" 2 "$TRANCHE" token create x --role root
run "token list" 0 "$TRANCHE" token list
check "... lists ops as operator, created today" grep -qE "^ops +operator +$(date -u +%Y-%m-%d) " "$tmp/out"
check "... and never a token" bash -c "! grep -q tro_ '$tmp/out'"
run "token list --json" 0 "$TRANCHE" token list --json
check "... names admin, ci, ops" test "$(json "$tmp/out" 'j.tokens.map(t => t.name).join(",")')" = "admin,ci,ops"
TRANCHE_TOKEN="$CI" run "token revoke as a viewer" 1 "$TRANCHE" token revoke ops
check "... is refused 403" grep -q "^tranche token revoke: 403 forbidden: " "$tmp/err"
TRANCHE_TOKEN="$OPS" run "fleet with the ops token" 0 "$TRANCHE" fleet
run "token revoke ops" 0 "$TRANCHE" token revoke ops
check "... says so" grep -q "revoked token 'ops'" "$tmp/out"
TRANCHE_TOKEN="$OPS" run "fleet with the revoked token" 1 "$TRANCHE" fleet
check "... 401, naming TRANCHE_TOKEN" bash -c "grep -q '401 unauthorized' '$tmp/err' && grep -q 'TRANCHE_TOKEN' '$tmp/err'"
run "token revoke ops again" 1 "$TRANCHE" token revoke ops
check "... 404" grep -q "404 not_found" "$tmp/err"
run "token revoke admin (the last admin)" 1 "$TRANCHE" token revoke admin
check "... 409 conflict" grep -q "409 conflict" "$tmp/err"

# --- tenants ---------------------------------------------------------------------------------
run "tenant create acme" 0 "$TRANCHE" tenant create acme --enrollment-key acme-enrollment-key-0123
echo '{"pins":{"content":{"kind":"previous"}},"critical":{"class":["server"]}}' > "$tmp/policy.json"
run "tenant policy acme --set" 0 "$TRANCHE" tenant policy acme --set "$tmp/policy.json"
run "tenant list" 0 "$TRANCHE" tenant list
check "... acme with 1 pin and its critical tag" grep -qE '^acme +1 pin, always open, critical \{"class":\["server"\]\}$' "$tmp/out"
run "tenant policy acme --json" 0 "$TRANCHE" tenant policy acme --json
check "... the pin as stored" test "$(json "$tmp/out" j.policy.pins.content.kind)" = previous
run "tenant policy nobody" 1 "$TRANCHE" tenant policy nobody
check "... 404" grep -q "404 not_found: tenant 'nobody' does not exist" "$tmp/err"
run "tenant policy acme --set missing" 2 "$TRANCHE" tenant policy acme --set "$tmp/missing.json"
check "... names the file" grep -q "$tmp/missing.json" "$tmp/err"

# --- releases ----------------------------------------------------------------------------------
head -c 1000 /dev/urandom > "$tmp/a.bin"
run "release publish 1.0" 0 "$TRANCHE" release publish --channel content --version 1.0 --target "$tmp/a.bin"
run "release list" 0 "$TRANCHE" release list
check "... content 1.0 with one target" grep -qE "^content +1.0 +1 " "$tmp/out"
run "release show content 1.0.0" 0 "$TRANCHE" release show content 1.0.0
check "... its target and no rollout" bash -c "grep -q 'target content/a.bin: 1000 bytes' '$tmp/out' && grep -q 'no rollout of it yet' '$tmp/out'"
run "release show --json" 0 "$TRANCHE" release show content 1.0 --json
check "... the API's answer" test "$(json "$tmp/out" j.targets[0].length)" = 1000
run "release show content 9.9" 1 "$TRANCHE" release show content 9.9
check "... 404" grep -q "404 not_found" "$tmp/err"

# --- devices --------------------------------------------------------------------------------------
cat > "$tmp/device.mjs" <<'JS'
const [url] = process.argv.slice(2);
const post = async (p, body, token) => {
  const r = await fetch(url + p, { method: 'POST', headers: { 'Content-Type': 'application/json',
    ...(token ? { Authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
  if (r.status >= 300) throw new Error(`${p}: ${r.status} ${await r.text()}`);
  return r.json();
};
const { device_token } = await post('/v1/enroll', { tenant: 'acme', enrollment_key: 'acme-enrollment-key-0123', device_id: 'dev-1' });
await post('/v1/checkin', { versions: { content: '0.9' } }, device_token);
JS
node "$tmp/device.mjs" "$URL" 2> "$tmp/err"
check "a device enrolled and checked in" test $? -eq 0
run "device list" 0 "$TRANCHE" device list
check "... dev-1 of acme on content=0.9" grep -qE "^dev-1 +acme +content=0.9 " "$tmp/out"
run "device list --json" 0 "$TRANCHE" device list --json
check "... the API's page" test "$(json "$tmp/out" 'j.devices[0].id + " " + j.next')" = "dev-1 null"
run "device show dev-1" 0 "$TRANCHE" device show dev-1
check "... names the device" grep -q "dev-1" "$tmp/out"
run "device dev-1 (the short form)" 0 "$TRANCHE" device dev-1 --json
check "... the same answer" test "$(json "$tmp/out" j.id)" = dev-1
run "device events dev-1 --json" 0 "$TRANCHE" device events dev-1 --json
check "... the API's answer" test "$(json "$tmp/out" j.device)" = dev-1
run "device show nobody" 1 "$TRANCHE" device show nobody
check "... 404" grep -q "404 not_found" "$tmp/err"
# The same id in a second tenant: another device, named with --tenant.
run "tenant create beta" 0 "$TRANCHE" tenant create beta --enrollment-key beta-enrollment-key-0123
cat > "$tmp/beta.mjs" <<'JS'
const [url] = process.argv.slice(2);
const r = await fetch(url + '/v1/enroll', { method: 'POST', headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify({ tenant: 'beta', enrollment_key: 'beta-enrollment-key-0123', device_id: 'dev-1' }) });
if (r.status !== 201) throw new Error(`${r.status} ${await r.text()}`);
JS
node "$tmp/beta.mjs" "$URL" 2> "$tmp/err"
check "beta's dev-1 enrolled" test $? -eq 0
run "device show dev-1, in two tenants" 1 "$TRANCHE" device show dev-1
check "... 409 naming both and --tenant" bash -c "grep -q '409 conflict' '$tmp/err' && grep -q '(acme, beta)' '$tmp/err' && grep -q -- '--tenant' '$tmp/err'"
run "device show dev-1 --tenant beta --json" 0 "$TRANCHE" device show dev-1 --tenant beta --json
check "... beta's" test "$(json "$tmp/out" j.tenant)" = beta
run "device dev-1 --tenant acme --json (the short form)" 0 "$TRANCHE" device dev-1 --tenant acme --json
check "... acme's, on 0.9" test "$(json "$tmp/out" 'j.tenant + " " + j.channels.content.current')" = "acme 0.9"
run "device events dev-1 --tenant beta --json" 0 "$TRANCHE" device events dev-1 --tenant beta --json
check "... none yet" test "$(json "$tmp/out" 'j.tenant + " " + j.events.length')" = "beta 0"
run "device list --tenant beta" 0 "$TRANCHE" device list --tenant beta
check "... only beta's dev-1" bash -c "grep -qE '^dev-1 +beta ' '$tmp/out' && ! grep -qE '^dev-1 +acme ' '$tmp/out'"

# --- audit --------------------------------------------------------------------------------------------
run "audit" 0 "$TRANCHE" audit
check "... has the revocation" grep -qE "admin +token.revoke +token ops" "$tmp/out"
run "audit --after 1 --limit 2 --json" 0 "$TRANCHE" audit --after 1 --limit 2 --json
check "... two entries from seq 2" test "$(json "$tmp/out" 'j.entries.map(e => e.seq).join(",")')" = "2,3"

exit $fail
