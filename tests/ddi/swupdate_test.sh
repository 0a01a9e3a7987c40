#!/usr/bin/env bash
# Unmodified SWUpdate (Debian's swupdate, suricatta) against tranche-server's DDI
# API on 127.0.0.1: ten real clients, each with its own TMPDIR and working
# directory, and two releases built here as CMS-signed .swu images.
#
#  1. Good release 1.1 to all ten: each installs it (its payload file holds
#     the expected text), its health step closes the action with swupdate-ipc,
#     and the server counts ten acknowledged devices; the rollout completes.
#     One client is killed (SIGKILL) in the middle of its download and started
#     again: it downloads again, and nothing is counted twice.
#  2. Bad release 1.2, whose postinstall script fails: the first ring reports
#     closed/failure, the gate halts, the clients outside that ring never
#     download it (the server's artifact requests, per device), and the reasons
#     are readable through GET /v1/rollouts/{id}/devices?state=failed. One
#     device of the ring is offered 1.2 while its swupdate is down: once the
#     rollout halts, its restarted swupdate is sent cancelAction, confirms it
#     and never downloads 1.2. (Which devices form the ring is found first by a
#     dry run of the same rollout on a scratch server.)
#
#   swupdate_test.sh PATH/TO/tranche-server   (from the repo root)
set -u
SERVER_BIN="$1"
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../cli_lib.sh
source "$HERE/../cli_lib.sh"
pids=()
declare -A client  # device number -> pid of its swupdate
# tree PID: the pid and its descendants (swupdate forks its suricatta and downloader).
tree() { echo "$1"; for c in $(pgrep -P "$1"); do tree "$c"; done; }
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  if [ "$fail" -ne 0 ] && [ -n "${KEEP_TMP:-}" ]; then echo "kept $tmp"; return; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

N=10
ADMIN=ddi-test-admin-token-0123456789abcdef
KEY=ddi-test-enrollment-key-0123456789abcdef

# Every client installs the payload at /proc/self/cwd/payload.txt: its own
# working directory (SWUpdate's raw file handler wants an absolute path).
# 1.1 carries 300 kB more, so that a client limited to 32 kB/s is still downloading
# it when it is killed (case 1).
"$HERE/../../examples/ddi/make_swu.sh" "$tmp/artifacts" 1.1 "payload 1.1" /proc/self/cwd/payload.txt good 300000 > /dev/null
"$HERE/../../examples/ddi/make_swu.sh" "$tmp/artifacts" 1.2 "payload 1.2" /proc/self/cwd/payload.txt fail > /dev/null

# start_server NAME: a tranche-server on 127.0.0.1 (data in $tmp/NAME); its URL.
start_server() {
  "$SERVER_BIN" --port 0 --data-dir "$tmp/$1" --admin-token "$ADMIN" --tick-ms 100 --batch-ms 50 \
    --ask-again-s 1 --artifact-dir "$tmp/artifacts" > "$tmp/$1.out" 2> "$tmp/$1.err" &
  pids+=($!)
  for _ in $(seq 100); do grep -q "listening on" "$tmp/$1.out" && break; sleep 0.1; done
  sed -n 's/^tranche-server listening on \(http:[^ ]*\).*/\1/p' "$tmp/$1.out"
}
URL=$(start_server data)
check "server started ($URL)" test -n "$URL"
[ -n "$URL" ] || exit 1
# The server's log lines (stderr, and stdout for the start-up line).
server_log() { cat "$tmp/data.out" "$tmp/data.err"; }

# api METHOD PATH [BODY]: the response body on stdout, the status in $tmp/status.
api() {
  curl -sS -o "$tmp/body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $ADMIN" \
    -H 'Content-Type: application/json' ${3:+--data "$3"} "$URL$2" > "$tmp/status"
  cat "$tmp/body"
}
status() { cat "$tmp/status"; }
# eventually SECONDS COMMAND...: true once COMMAND succeeds within SECONDS.
eventually() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do [ $SECONDS -ge $deadline ] && return 1; sleep 0.2; done
}

api POST /v1/tenants "{\"id\":\"acme\",\"enrollment_key\":\"$KEY\"}" > /dev/null
check "tenant created" test "$(status)" = 201
devices=$(for i in $(seq -w 1 $N); do printf '{"device_id":"swu-%s"},' "$i"; done)
api POST /v1/devices/bulk "{\"tenant\":\"acme\",\"devices\":[${devices%,}]}" > "$tmp/enrolled"
check "$N devices enrolled" test "$(status)" = 201
token() { jq -r --arg id "$1" '.devices[] | select(.device_id == $id) | .device_token' "$tmp/enrolled"; }

# --- the API's own refusals --------------------------------------------------------------
api POST /v1/releases '{"channel":"os","version":"1.1","kind":"swu","artifact":"missing.swu"}' > /dev/null
check "a swu release naming a missing file: 422" test "$(status)" = 422
api POST /v1/releases '{"channel":"os","version":"1.1","kind":"swu","artifact":"update-1.1.swu"}' > "$tmp/rel"
check "release 1.1 of kind swu registered" test "$(status)" = 201
check "... with the image's sha1, md5 and sha256" test \
  "$(jq -r '.targets[0] | "\(.sha1) \(.md5) \(.sha256) \(.length)"' "$tmp/rel")" = \
  "$(sha1sum < "$tmp/artifacts/update-1.1.swu" | cut -d' ' -f1) $(md5sum < "$tmp/artifacts/update-1.1.swu" | cut -d' ' -f1) $(sha256sum < "$tmp/artifacts/update-1.1.swu" | cut -d' ' -f1) $(stat -c %s "$tmp/artifacts/update-1.1.swu")"
api POST /v1/releases '{"channel":"os","version":"1.0","targets":[{"path":"a","length":1,"sha256":"'"$(printf 0%.0s $(seq 64))"'"}]}' > /dev/null
check "a tuf release on a swu channel: 409" test "$(status)" = 409
api POST /v1/releases '{"channel":"os","version":"1.2","kind":"swu","artifact":"update-1.2.swu"}' > /dev/null
check "release 1.2 registered" test "$(status)" = 201
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: TargetToken $(token swu-02)" "$URL/acme/controller/v1/swu-01")
check "another device's token: 401" test "$code" = 401
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: GatewayToken $KEY" "$URL/acme/controller/v1/swu-01")
check "the tenant's gateway token: 200" test "$code" = 200
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: GatewayToken $KEY" "$URL/acme/controller/v1/gw-1")
check "a controller not enrolled, gateway token, no auto-enrollment: 404" test "$code" = 404
api PUT /v1/tenants/acme/policy '{"ddi_auto_enroll":true}' > /dev/null
check "policy ddi_auto_enroll set" test "$(status)" = 200
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: GatewayToken $KEY" "$URL/acme/controller/v1/gw-1")
check "... then the gateway enrolls it at its first poll: 200" test "$code" = 200
check "... and it is a device of the tenant" test "$(api GET /v1/devices/gw-1 | jq -r .tenant)" = acme
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: GatewayToken wrong-key" "$URL/acme/controller/v1/gw-2")
check "a wrong gateway token enrolls nothing: 401" test "$code" = 401
api PUT /v1/tenants/acme/policy '{}' > /dev/null
code=$(curl -sS -o "$tmp/fb" -w '%{http_code}' -X POST -H "Authorization: TargetToken $(token swu-01)" \
  -H 'Content-Type: application/json' --data '{"status":{"execution":"closed"}}' \
  "$URL/acme/controller/v1/swu-01/deploymentBase/1/feedback")
check "closed feedback without finished: 400 invalid_argument" \
  test "$code $(jq -r .error.code "$tmp/fb")" = "400 invalid_argument"

# --- the clients ---------------------------------------------------------------------------
# start_client NUMBER [SERVER_URL]: swupdate for device swu-NUMBER, in
# $tmp/cNUMBER (its working directory and TMPDIR), polling $URL unless told;
# stop_client NUMBER kills it and its children with SIGKILL, as a power cut would.
start_client() {
  local dir="$tmp/c$1"
  mkdir -p "$dir/tmp"
  (cd "$dir" && TMPDIR="$dir/tmp" exec swupdate -v -k "$tmp/artifacts/signer.pem" -H board:1.0 \
    -u "-t acme -u ${2:-$URL} -i swu-$1 -k $(token "swu-$1")" >> "$dir/log" 2>&1) &
  pids+=($!)
  client[$1]=$!
}
stop_client() {
  # shellcheck disable=SC2046
  kill -KILL $(tree "${client[$1]}") 2>/dev/null
  wait "${client[$1]}" 2>/dev/null
}
# swu-10 reaches the server through a proxy that passes 32 kB/s: it is killed
# in the middle of its download (case 1).
python3 "$HERE/slow_proxy.py" "${URL##*:}" 32768 > "$tmp/proxy.port" &
pids+=($!)
check "the slow proxy started" eventually 10 test -s "$tmp/proxy.port"
for i in $(seq -w 1 $N); do
  start_client "$i" "$([ "$i" = $N ] && echo "http://127.0.0.1:$(cat "$tmp/proxy.port")")"
done

# A fleet already running: every client has polled once, with nothing to do,
# before the first release (SWUpdate handed a deployment in its first moments
# can hang between its downloader and its installer).
all=$(seq -w 1 $N)
polled() {
  for i in $all; do grep -q "No pending action on server" "$tmp/c$i/log" || return 1; done
}
check "all $N clients polled the server" eventually 20 polled

# --- 1. good release 1.1 -------------------------------------------------------------------
GOOD_PLAN='name: good
gate:
  min_acknowledged: 10
  heartbeat_interval: 1s
  silent_after_missed: 5
stages:
  - {name: all, percent: 100%, bake: 1s}'
api POST /v1/rollouts "$(jq -n --arg p "$GOOD_PLAN" '{channel:"os",version:"1.1",plan_yaml:$p,id:"r-1-1"}')" > /dev/null
check "rollout of 1.1 started" test "$(status)" = 201

# A client killed in the middle of its download: swupdate killed with SIGKILL
# (it and its children) while it fetches the image, then started again, without
# the limit. It downloads again, installs, and counts once (below: exactly $N
# acknowledged, no failure).
downloads_of() {  # downloads_of DEVICE VERSION: the artifact requests the server logged
  server_log | grep -c "ddi: device acme/swu-$1 downloads os $2 "
}
downloading() { [ "$(downloads_of $N 1.1)" -ge 1 ]; }
check "swu-$N starts downloading 1.1" eventually 15 downloading
sleep 1
check "... and is still downloading a second later (nothing installed)" test ! -e "$tmp/c$N/payload.txt"
stop_client $N
start_client $N
payloads_are() {  # payloads_are TEXT DEVICE...: each device's payload file holds TEXT
  local text=$1; shift
  for i in "$@"; do [ "$(cat "$tmp/c$i/payload.txt" 2>/dev/null)" = "$text" ] || return 1; done
}
# shellcheck disable=SC2086
check "all $N clients installed 1.1 (payload file present with its text)" eventually 25 payloads_are "payload 1.1" $all

# The health step of each device, once its swupdate is done with the install:
# close the action it installed through its own swupdate's IPC socket (same
# TMPDIR). swupdate-ipc exits 0 even when swupdate did not take the message, so
# the step is repeated until the server no longer offers the action.
action_of() {  # action_of DEVICE: the action id its base poll offers ("" when none)
  curl -sS -H "Authorization: TargetToken $(token "swu-$1")" "$URL/acme/controller/v1/swu-$1" |
    jq -r '._links.deploymentBase.href // "" | split("/") | last // ""'
}
installed() {
  for i in $all; do grep -q "Update successful, executing post-update actions" "$tmp/c$i/log" || return 1; done
}
check "all $N swupdate report the update successful" eventually 20 installed

# The artifact as any DDI client may fetch it: a byte range, HEAD, a range past the end.
id=$(action_of 01)
href="$URL/acme/controller/v1/swu-01/softwaremodules/$id/artifacts/update-1.1.swu"
auth="Authorization: TargetToken $(token swu-01)"
code=$(curl -sS -o "$tmp/part" -w '%{http_code}' -r 100-199 -H "$auth" "$href")
check "a byte range of the artifact: 206 with exactly those bytes" \
  bash -c "[ $code = 206 ] && cmp -s '$tmp/part' <(tail -c +101 '$tmp/artifacts/update-1.1.swu' | head -c 100)"
check "HEAD: 200 with the image's length" bash -c "curl -sSI -H '$auth' '$href' | tr -d '\r' |
  grep -qx 'Content-Length: $(stat -c %s "$tmp/artifacts/update-1.1.swu")'"
code=$(curl -sS -o /dev/null -w '%{http_code}' -r 999999- -H "$auth" "$href")
check "a range past the end: 416" test "$code" = 416
health_step() {
  local open=0
  for i in $all; do
    id=$(action_of "$i")
    [ -z "$id" ] && continue
    open=1
    TMPDIR="$tmp/c$i/tmp" swupdate-ipc sendtohawkbit "$id" 2 success closed "health check passed" > /dev/null 2>&1
  done
  [ $open -eq 0 ]
}
check "every health step closed its action" eventually 20 health_step
acknowledged() { [ "$(api GET /v1/rollouts/r-1-1 | jq -r .gate.acknowledged)" = "$N" ]; }
check "the server shows $N acknowledged" eventually 15 acknowledged
completed() { [ "$(api GET /v1/rollouts/r-1-1 | jq -r .status.state)" = completed ]; }
check "rollout of 1.1 completed" eventually 15 completed
# SWUpdate's many proceeding messages are one installing event per action.
kinds=$(api GET /v1/devices/swu-01/events | jq -c '[.events | sort_by(.seq)[] | select(.version == "1.1") | .kind]')
check "swu-01's events for 1.1: installing once, then installed ($kinds)" test "$kinds" = '["installing","installed"]'
check "... no device failed" test "$(api GET '/v1/rollouts/r-1-1/devices?state=failed' | jq '.devices | length')" = 0
check "... swu-$N, killed mid-download, downloaded 1.1 again ($(downloads_of $N 1.1) requests) and counts once" \
  test "$(downloads_of $N 1.1)" -ge 2 -a "$(api GET /v1/rollouts/r-1-1 | jq .gate.exposed_failures)" = 0
check "... its pad file is whole" cmp -s "$tmp/c$N/payload.txt.pad" "$tmp/c01/payload.txt.pad"

# --- 2. bad release 1.2 ---------------------------------------------------------------------
BAD_PLAN='name: bad
on_failure: halt
gate:
  min_acknowledged: 10
  heartbeat_interval: 1s
  silent_after_missed: 30
stages:
  - {name: ring1, percent: 30%, min_devices: 3, bake: 120s, max_failures: 1}
  - {name: all, percent: 100%, bake: 0s}'
# The dry run: the same devices and rollout on a scratch server, where polling
# as each device shows who the first ring is (stages admit devices by a hash of
# the device and rollout ids, the same on any server).
DRY=$(start_server dry)
dry() {
  curl -sS -X "$1" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' ${3:+--data "$3"} "$DRY$2"
}
dry POST /v1/tenants "{\"id\":\"acme\",\"enrollment_key\":\"$KEY\"}" > /dev/null
dry POST /v1/devices/bulk "{\"tenant\":\"acme\",\"devices\":[${devices%,},{\"device_id\":\"gw-1\"}]}" > "$tmp/dry-enrolled"
dry POST /v1/releases '{"channel":"os","version":"1.2","kind":"swu","artifact":"update-1.2.swu"}' > /dev/null
dry POST /v1/rollouts "$(jq -n --arg p "$BAD_PLAN" '{channel:"os",version:"1.2",plan_yaml:$p,id:"r-1-2"}')" > /dev/null
ring_dry=""
for i in $all; do
  t=$(jq -r --arg id "swu-$i" '.devices[] | select(.device_id == $id) | .device_token' "$tmp/dry-enrolled")
  curl -sS -H "Authorization: TargetToken $t" "$DRY/acme/controller/v1/swu-$i" | jq -e '._links.deploymentBase' > /dev/null &&
    ring_dry="$ring_dry $i"
done
held=${ring_dry##* }
check "the dry run finds the first ring (devices:$ring_dry); swu-$held will be down when it is offered" test -n "$held"
stop_client "$held"
api POST /v1/rollouts "$(jq -n --arg p "$BAD_PLAN" '{channel:"os",version:"1.2",plan_yaml:$p,id:"r-1-2"}')" > /dev/null
check "rollout of 1.2 started" test "$(status)" = 201
check "swu-$held is offered 1.2 (polled as the device while its swupdate is down)" test -n "$(action_of "$held")"
halted() { [ "$(api GET /v1/rollouts/r-1-2 | jq -r .status.state)" = halted ]; }
check "the gate halts 1.2" eventually 30 halted
api GET /v1/rollouts/r-1-2 > "$tmp/r12"
echo "halt: $(jq -c '{state: .status.state, reason: .status.reason, failures: .gate.exposed_failures}' "$tmp/r12")"
cancel_link() {
  curl -sS -H "Authorization: TargetToken $(token "swu-$held")" "$URL/acme/controller/v1/swu-$held" |
    jq -r '._links.cancelAction.href // ""'
}
check "the held device's open action becomes cancelAction" test -n "$(cancel_link)"
start_client "$held"
cancelled() { grep -q "ddi: device acme/swu-$held: cancellation of action" "$tmp/data.out" "$tmp/data.err"; }
check "... its swupdate confirms the cancellation" eventually 15 cancelled
check "... and is not offered it again" eventually 5 bash -c "[ -z \"\$(curl -sS -H 'Authorization: TargetToken $(token "swu-$held")' '$URL/acme/controller/v1/swu-$held' | jq -r '._links.cancelAction.href // \"\"')\" ]"
# Clients still polling after the halt must not start it. The ring's reports
# may come after the halt: SWUpdate 2022.12 at times takes its failed install
# for a success, then either reads the failure back and tries once more, or
# waits for a test result that never comes (that device stays exposed, without
# a report: the gate has halted on the others).
sleep 3
ring_failed() {
  api GET '/v1/rollouts/r-1-2/devices?state=failed' > "$tmp/failed"
  [ "$(jq '.devices | length' "$tmp/failed")" -ge "$(($(echo $ring_dry | wc -w) - 1))" ]
}
eventually 10 ring_failed
failed=$(jq -r '.devices[].device' "$tmp/failed" | sort)
nfailed=$(echo "$failed" | grep -c .)
check "the first ring reported closed/failure (failed: $(echo $failed))" test "$nfailed" -ge 2
# SWUpdate forwards its log lines as feedback of their own, and at times sends
# the closed/failure before the line of the script's error: the server adds the
# error lines that came before the close. So every reason says the install
# failed, and the ring's reasons carry the postinstall's own error.
check "... every reason is readable: install_failed with SWUpdate's details" \
  test "$(jq '[.devices[] | select(.cause == "install_failed" and (.reason | test("install_failed 1.2 on os [(].+[)]")))] | length' "$tmp/failed")" = "$nfailed"
check "... and the postinstall's own error is among them" \
  test "$(jq '[.devices[] | select(.reason | test("postinstall: refusing version 1.2"))] | length' "$tmp/failed")" -ge 1
# The first ring: the devices offered 1.2.
ring=$(printf 'swu-%s\n' $ring_dry | sort)
check "... every failed device is of the ring" test -z "$(comm -23 <(echo "$failed") <(echo "$ring"))"
check "... the held device never downloaded it" \
  bash -c "! grep -q 'ddi: device acme/swu-$held downloads os 1.2' '$tmp/data.out' '$tmp/data.err'"
downloaders=$(sed -n 's/.*ddi: device acme\/\(swu-[0-9]*\) downloads os 1.2 .*/\1/p' "$tmp/data.out" "$tmp/data.err" | sort -u)
ndown=$(echo "$downloaders" | grep -c .)
check "only the first ring downloaded 1.2 (downloaded: $(echo $downloaders); ring: $(echo $ring))" \
  test -z "$(comm -23 <(echo "$downloaders") <(echo "$ring"))" -a "$ndown" -ge "$nfailed"
outside=$(comm -23 <(printf 'swu-%s\n' $all) <(echo "$ring"))
nout=$(echo "$outside" | grep -c .)
check "the $nout clients outside it (of $N) never downloaded it and still run 1.1" \
  bash -c "[ $nout -ge 1 ] && [ -z \"$(comm -12 <(echo "$outside") <(echo "$downloaders"))\" ]"
first_out=$(echo "$outside" | head -n 1)
why=$(api GET "/v1/devices/$first_out?version=1.2" | jq -r .why)
check "the why answer of a DDI device ($first_out): $why" bash -c "[[ '$why' == *'does not run 1.2'* ]]"
# shellcheck disable=SC2046
check "... their payload files still hold 1.1" payloads_are "payload 1.1" $(echo "$outside" | sed 's/^swu-//')
metric=$(curl -sS "$URL/metrics" | sed -n 's/^tranche_ddi_artifact_requests_total{channel="os",version="1.2"} //p')
requests=$(server_log | grep -c "ddi: device acme/swu-[0-9]* downloads os 1.2 ")
check "artifact requests for 1.2 counted by the server: ${metric:-none} (each request of the $ndown devices)" \
  test "${metric:-0}" = "$requests" -a "$requests" -ge "$ndown"

# A report sent again (a client that retries, or restarts and reports the
# action it still knows) counts nothing twice: not the failure, not the event,
# not the acknowledgement.
f=$(echo "$failed" | head -n 1)
fid=$(sed -n "s/.*ddi: device acme\/$f: action \([0-9]*\) (os 1.2) closed\/failure.*/\1/p" "$tmp/data.out" "$tmp/data.err" | head -n 1)
failures_before=$(api GET /v1/rollouts/r-1-2 | jq .gate.exposed_failures)
events_before=$(api GET "/v1/devices/$f/events" | jq '.events | length')
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -H "Authorization: TargetToken $(token "$f")" \
  -H 'Content-Type: application/json' \
  --data '{"id":'"$fid"',"status":{"execution":"closed","result":{"finished":"failure"},"details":["again"]}}' \
  "$URL/acme/controller/v1/$f/deploymentBase/$fid/feedback")
check "closed/failure of $f reported again: 200" test "$code" = 200
check "... the gate's failures stay $failures_before" test "$(api GET /v1/rollouts/r-1-2 | jq .gate.exposed_failures)" = "$failures_before"
check "... and $f has no new event" test "$(api GET "/v1/devices/$f/events" | jq '.events | length')" = "$events_before"
gid=$(sed -n "s/.*ddi: device acme\/$first_out: action \([0-9]*\) (os 1.1) closed\/success.*/\1/p" "$tmp/data.out" "$tmp/data.err" | head -n 1)
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -H "Authorization: TargetToken $(token "$first_out")" \
  -H 'Content-Type: application/json' \
  --data '{"id":'"$gid"',"status":{"execution":"closed","result":{"finished":"success"},"details":["again"]}}' \
  "$URL/acme/controller/v1/$first_out/deploymentBase/$gid/feedback")
check "closed/success of $first_out for 1.1 reported again: 200, still $N acknowledged" \
  bash -c "[ $code = 200 ] && [ \"\$(curl -sS -H 'Authorization: Bearer $ADMIN' '$URL/v1/rollouts/r-1-1' | jq .gate.acknowledged)\" = $N ]"

if [ "$fail" -ne 0 ]; then
  echo "--- server log (tail)"; server_log | tail -n 30
  echo "--- client 01 log (tail)"; tail -n 30 "$tmp/c01/log"
fi
exit $fail
