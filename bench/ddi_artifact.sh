#!/usr/bin/env bash
# DDI artifact downloads: what a large .swu costs tranche-server, against nginx
# serving the same file (the anchor).
#
#   bash bench/ddi_artifact.sh [MB] [CLIENTS]    (defaults 256 and 4; from the repo root, after `make build`)
#
# Makes a signed image of MB megabytes (examples/ddi/make_swu.sh), registers it as
# a release of kind swu, starts a one-stage rollout to CLIENTS bulk-enrolled DDI
# devices and downloads it as each of them at once with curl (to /dev/null),
# three rounds. Then nginx (sendfile off, one worker per core) serves the same
# file to CLIENTS curls at once, three rounds. Prints the best wall of each, their
# ratio, and the server's peak RSS (VmHWM) before and after the downloads: the
# image is streamed from disk in 64 KiB chunks, so the peak must not grow with
# the image. Loopback only; everything is under a temporary directory, removed.
set -euo pipefail
MB=${1:-256}
CLIENTS=${2:-4}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SERVER_BIN=${SERVER_BIN:-$ROOT/build/bin/tranche-server}
tmp=$(mktemp -d /tmp/tranche-ddi-bench.XXXXXX)
chmod 755 "$tmp"  # nginx's workers (nobody) read the image
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done; wait 2> /dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
ADMIN=bench-admin-token-0123456789abcdef0123

echo "image: $MB MB, $CLIENTS clients at once"
bash "$ROOT/examples/ddi/make_swu.sh" "$tmp/artifacts" 1.0 "bench" /tmp/unused good $((MB * 1024 * 1024)) > /dev/null
size=$(stat -c %s "$tmp/artifacts/update-1.0.swu")

"$SERVER_BIN" --port 0 --data-dir "$tmp/data" --admin-token "$ADMIN" --artifact-dir "$tmp/artifacts" \
  > "$tmp/server.out" 2> "$tmp/server.err" &
pids+=($!)
server_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$tmp/server.out" && break; sleep 0.1; done
URL=$(sed -n 's/^tranche-server listening on \(http:[^ ]*\).*/\1/p' "$tmp/server.out")
api() { curl -sS -f -X "$1" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' ${3:+--data "$3"} "$URL$2"; }
api POST /v1/tenants '{"id":"acme","enrollment_key":"bench-enrollment-key-0123456789abcdef"}' > /dev/null
devices=$(for i in $(seq "$CLIENTS"); do printf '{"device_id":"d-%s"},' "$i"; done)
api POST /v1/devices/bulk "{\"tenant\":\"acme\",\"devices\":[${devices%,}]}" > "$tmp/enrolled"
api POST /v1/releases '{"channel":"os","version":"1.0","kind":"swu","artifact":"update-1.0.swu"}' > /dev/null
plan=$'name: all\ngate: {min_acknowledged: 1, heartbeat_interval: 60s}\nstages:\n  - {name: all, percent: 100%, bake: 1h}\n'
api POST /v1/rollouts "$(jq -n --arg plan "$plan" '{channel:"os",version:"1.0",id:"r-bench",plan_yaml:$plan}')" > /dev/null
hrefs=()
for i in $(seq "$CLIENTS"); do
  token=$(jq -r --arg id "d-$i" '.devices[] | select(.device_id == $id) | .device_token' "$tmp/enrolled")
  auth="Authorization: TargetToken $token"
  for _ in $(seq 50); do
    base=$(curl -sS -H "$auth" "$URL/acme/controller/v1/d-$i" | jq -r '._links.deploymentBase.href // ""')
    [ -n "$base" ] && break
    sleep 0.2
  done
  href=$(curl -sS -H "$auth" "$base" | jq -r '.deployment.chunks[0].artifacts[0]._links["download-http"].href')
  hrefs+=("$auth|$href")
done
hwm() { awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$server_pid/status"; }
before=$(hwm)

# best_of_3 CMD...: the best wall time in seconds of three runs of CMD.
best_of_3() {
  local best="" t0 t1 dt
  for _ in 1 2 3; do
    t0=$(date +%s.%N); "$@"; t1=$(date +%s.%N)
    dt=$(echo "$t1 - $t0" | bc -l)
    if [ -z "$best" ] || [ "$(echo "$dt < $best" | bc -l)" = 1 ]; then best=$dt; fi
  done
  printf '%.3f' "$best"
}
tranche_round() {
  local jobs=() h
  for h in "${hrefs[@]}"; do
    curl -sS -f -o /dev/null -H "${h%%|*}" "${h#*|}" & jobs+=($!)
  done
  for j in "${jobs[@]}"; do wait "$j"; done
}
t_tranche=$(best_of_3 tranche_round)
after=$(hwm)

mkdir -p "$tmp/nginx/tmp"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$tmp/nginx/nginx.conf" <<CONF
worker_processes $(nproc);
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile off;
  client_body_temp_path $tmp/nginx/tmp/body;
  proxy_temp_path $tmp/nginx/tmp/proxy;
  fastcgi_temp_path $tmp/nginx/tmp/fastcgi;
  uwsgi_temp_path $tmp/nginx/tmp/uwsgi;
  scgi_temp_path $tmp/nginx/tmp/scgi;
  server { listen 127.0.0.1:$port; root $tmp/artifacts; }
}
CONF
nginx -p "$tmp/nginx" -e "$tmp/nginx/error.log" -c "$tmp/nginx/nginx.conf" &
pids+=($!)
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
nginx_round() {
  local jobs=() _
  for _ in "${hrefs[@]}"; do curl -sS -f -o /dev/null "http://127.0.0.1:$port/update-1.0.swu" & jobs+=($!); done
  for j in "${jobs[@]}"; do wait "$j"; done
}
t_nginx=$(best_of_3 nginx_round)

downloads=$(curl -sS "$URL/metrics" | sed -n 's/^tranche_ddi_artifact_requests_total{[^}]*} //p')
echo "image bytes:                   $size"
echo "tranche-server downloads:      $downloads (3 rounds x $CLIENTS)"
echo "tranche-server best round:     $t_tranche s"
echo "nginx best round:              $t_nginx s"
printf "ratio tranche / nginx:         %.2f\n" "$(echo "$t_tranche / $t_nginx" | bc -l)"
echo "tranche-server VmHWM:          $before MB before, $after MB after"
