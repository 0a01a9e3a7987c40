#!/usr/bin/env bash
# tranche-agent's idle footprint: RSS and CPU over 60 s of an enrolled agent
# whose service (tranche-demo-sensor) runs committed content and whose server
# has nothing to offer (long poll held, as in production).
# Usage: bench/agent_footprint.sh [BUILD_DIR] [SECONDS]   (default build/h-agent, 60)
set -euo pipefail
build="$(realpath "${1:-build/h-agent}")"; secs="${2:-60}"
src="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"; pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
cd "$tmp"
for k in root targets snapshot timestamp; do "$build/bin/tranche" keys gen --out "$k" >/dev/null; done
"$build/bin/tranche" repo init repo --root-key root.pem --targets-key targets.pem --snapshot-key snapshot.pem --timestamp-key timestamp.pem >/dev/null
"$build/bin/tranche-server" --port 0 --data-dir srv --admin-token bench-admin-token-0123456789 --tuf-repo repo > srv.out 2> srv.err &
pids+=($!)
for _ in $(seq 100); do grep -q "listening on" srv.out && break; sleep 0.1; done
url="http://127.0.0.1:$(sed -n 's/.*:\([0-9]*\)$/\1/p' srv.out | head -1)"
curl -s -o /dev/null -X POST "$url/v1/tenants" -H "Authorization: Bearer bench-admin-token-0123456789" \
  -d '{"id":"acme","enrollment_key":"acme-enrollment-key-0123"}'
mkdir -p data/slots/a
cp "$src/examples/content/good.yaml" data/slots/a/content.yaml
cat > agent.yaml <<YAML
server_url: $url
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
"$build/bin/tranche-agent" --config agent.yaml 2> agent.log &
agent=$!; pids+=($agent)
sleep 5  # enrolled, first check-in held
ticks() { awk '{print $14 + $15}' "/proc/$agent/stat"; }
t0=$(ticks); sleep "$secs"; t1=$(ticks)
hz=$(getconf CLK_TCK)
rss_kb=$(awk "/VmRSS/ {print \$2}" "/proc/$agent/status")
anon_kb=$(awk "/RssAnon/ {print \$2}" "/proc/$agent/status"); file_kb=$(awk "/RssFile/ {print \$2}" "/proc/$agent/status")
hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$agent/status")
cpu_ms=$(( (t1 - t0) * 1000 / hz ))
echo "tranche-agent idle over ${secs}s: RSS ${rss_kb} kB (anonymous ${anon_kb} kB, shared libraries and files ${file_kb} kB; peak ${hwm_kb} kB), CPU ${cpu_ms} ms ($(awk "BEGIN {printf \"%.3f\", $cpu_ms / ($secs * 10)}")% of one core)"
