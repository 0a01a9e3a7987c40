#!/usr/bin/env bash
# tranche-agent's idle footprint: RSS and CPU over 60 s of an enrolled agent
# whose service (tranche-demo-sensor) runs committed content and whose server
# has nothing to offer (long poll held, as in production).
# Usage: bench/agent_footprint.sh [BUILD_DIR] [SECONDS]   (default build/h-agent, 60)
# Then RSS, PSS and private memory, and the per-mapping breakdown of
# bench/agent_smaps.sh (TOP=N rows, 0 for all; SMAPS_COPY=FILE keeps /proc/PID/smaps).
# TLS=1: the server speaks HTTPS (a certificate made here for 127.0.0.1 and
# localhost) and the agent runs in its own mount namespace (unshare -m, root)
# where /etc/ssl/certs/ca-certificates.crt is the system bundle plus that
# certificate: the agent's default trust store, as in production, only larger by
# one. NAME=1: the server URL names a host, tranche-bench.test, that a copy of
# /etc/hosts mounted the same way resolves to 127.0.0.1 (getaddrinfo in libcurl's
# resolver thread for every connection, as with a real name; "localhost" would
# not do, libcurl answers that one itself).
set -euo pipefail
build="$(realpath "${1:-build/h-agent}")"; secs="${2:-60}"
src="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"; pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
cd "$tmp"
for k in root targets snapshot timestamp; do "$build/bin/tranche" keys gen --out "$k" >/dev/null; done
"$build/bin/tranche" repo init repo --root-key root.pem --targets-key targets.pem --snapshot-key snapshot.pem --timestamp-key timestamp.pem >/dev/null
tls_args=(); scheme=http; curl_ca=()
if [ "${TLS:-0}" = 1 ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1,DNS:tranche-bench.test -keyout tls.key -out tls.crt 2> /dev/null
  cat /etc/ssl/certs/ca-certificates.crt tls.crt > ca-bundle.crt
  tls_args=(--tls-cert tls.crt --tls-key tls.key); scheme=https; curl_ca=(--cacert tls.crt)
fi
"$build/bin/tranche-server" --port 0 --data-dir srv --admin-token bench-admin-token-0123456789 --tuf-repo repo \
  "${tls_args[@]}" > srv.out 2> srv.err &
pids+=($!)
for _ in $(seq 100); do grep -q "listening on" srv.out && break; sleep 0.1; done
port="$(sed -n 's/.*listening on [a-z]*:\/\/[^ ]*:\([0-9]*\).*/\1/p' srv.out | head -1)"
url="$scheme://127.0.0.1:$port"; agent_url="$url"
binds=""
if [ "${TLS:-0}" = 1 ]; then binds="mount --bind ca-bundle.crt /etc/ssl/certs/ca-certificates.crt && "; fi
if [ "${NAME:-0}" = 1 ]; then
  { cat /etc/hosts; echo "127.0.0.1 tranche-bench.test"; } > hosts
  binds="$binds mount --bind hosts /etc/hosts && "; agent_url="$scheme://tranche-bench.test:$port"
fi
curl -s "${curl_ca[@]}" -o /dev/null -X POST "$url/v1/tenants" -H "Authorization: Bearer bench-admin-token-0123456789" \
  -d '{"id":"acme","enrollment_key":"acme-enrollment-key-0123"}'
mkdir -p data/slots/a
cp "$src/examples/content/good.yaml" data/slots/a/content.yaml
cat > agent.yaml <<YAML
server_url: $agent_url
tenant: acme
enrollment_key: acme-enrollment-key-0123
device_id: bench-1
data_dir: $tmp/data
tuf: {root: $tmp/repo/metadata/1.root.json}
service:
  command: ["$build/bin/tranche-demo-sensor", "{slot}", "--heartbeat", "{data}/heartbeat"]
  shipped_slot: $tmp/data/slots/a
interface: $src/examples/content/interface.yaml
YAML
if [ -n "$binds" ]; then
  unshare -m sh -c "$binds exec \"\$0\" --config agent.yaml" "$build/bin/tranche-agent" 2> agent.log &
else
  "$build/bin/tranche-agent" --config agent.yaml 2> agent.log &
fi
agent=$!; pids+=($agent)
sleep 5  # enrolled, first check-in held
ticks() { awk '{print $14 + $15}' "/proc/$agent/stat"; }
t0=$(ticks); sleep "$secs"; t1=$(ticks)
hz=$(getconf CLK_TCK)
rss_kb=$(awk "/VmRSS/ {print \$2}" "/proc/$agent/status")
anon_kb=$(awk "/RssAnon/ {print \$2}" "/proc/$agent/status"); file_kb=$(awk "/RssFile/ {print \$2}" "/proc/$agent/status")
hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$agent/status")
pss_kb=$(awk '/^Pss:/ {print $2}' "/proc/$agent/smaps_rollup")
priv_kb=$(awk '/^Private_(Clean|Dirty):/ {s += $2} END {print s}' "/proc/$agent/smaps_rollup")
threads=$(awk '/^Threads:/ {print $2}' "/proc/$agent/status")
cpu_ms=$(( (t1 - t0) * 1000 / hz ))
echo "tranche-agent idle over ${secs}s: RSS ${rss_kb} kB (anonymous ${anon_kb} kB, shared libraries and files ${file_kb} kB; peak ${hwm_kb} kB), CPU ${cpu_ms} ms ($(awk "BEGIN {printf \"%.3f\", $cpu_ms / ($secs * 10)}")% of one core)"
echo "  PSS ${pss_kb} kB, private ${priv_kb} kB, ${threads} threads"
# The protected service shares pages with the agent (libc; in a dynamic build also
# libstdc++ and yaml-cpp): PSS of both is what the pair costs the device.
svc=$(pgrep -P "$agent" | head -1 || true)
if [ -n "$svc" ]; then
  svc_rss=$(awk '/VmRSS/ {print $2}' "/proc/$svc/status"); svc_pss=$(awk '/^Pss:/ {print $2}' "/proc/$svc/smaps_rollup")
  echo "  service (pid $svc): RSS ${svc_rss} kB, PSS ${svc_pss} kB; agent + service PSS $((pss_kb + svc_pss)) kB"
fi
echo "  breakdown (bench/agent_smaps.sh):"
bash "$src/bench/agent_smaps.sh" "$agent" "${TOP:-25}"
if [ -n "${LOG_COPY:-}" ]; then cp agent.log "$LOG_COPY"; curl -s "${curl_ca[@]}" -H "Authorization: Bearer bench-admin-token-0123456789" "$url/v1/fleet" >> "$LOG_COPY"; fi
if [ -n "${SMAPS_COPY:-}" ]; then cat "/proc/$agent/smaps" > "$SMAPS_COPY"; fi
