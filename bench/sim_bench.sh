#!/usr/bin/env bash
# The simulator's benchmark (docs/benchmarks.md): the reference scenario at
# 1,000,000 devices with policies A, B and C — wall time (target <= 60 s) and peak
# RSS per device (target <= 200 bytes) — then at full scale, 13,400,000 devices.
#   bash bench/sim_bench.sh            both
#   BENCH_FULL=0 bash bench/sim_bench.sh   only the 1M run
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin/tranche}
OUT=${OUT:-build/bench-results}
mkdir -p "$OUT"
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }

run() {  # run DEVICES LABEL
  local devices=$1 label=$2
  /usr/bin/time -f "%e %M" -o "$OUT/$label.time" \
    "$BIN" sim --scenario crowdstrike-2024 --devices "$devices" --policies A,B,C --seed 1 -q \
    --json "$OUT/$label.json" > "$OUT/$label.table"
  read -r wall rss_kb < "$OUT/$label.time"
  local per_device
  per_device=$(awk -v kb="$rss_kb" -v n="$devices" 'BEGIN { printf "%.1f", kb * 1024 / n }')
  echo "$label: devices=$devices wall_s=$wall peak_rss_mb=$((rss_kb / 1024)) bytes_per_device=$per_device"
  echo "$wall $per_device"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo), $(date -u +%Y-%m-%d)"
read -r wall per_device < <(run 1000000 sim-1m | tee /dev/stderr | tail -1)
status=0
awk -v w="$wall" 'BEGIN { exit !(w <= 60) }' || { echo "1M: wall $wall s > 60 s" >&2; status=1; }
awk -v b="$per_device" 'BEGIN { exit !(b <= 200) }' || { echo "1M: $per_device bytes/device > 200" >&2; status=1; }
echo "sim_1m_wall_s=$wall sim_1m_bytes_per_device=$per_device"

if [ "${BENCH_FULL:-1}" != "0" ]; then
  read -r fwall fper < <(run 13400000 sim-full | tee /dev/stderr | tail -1)
  echo "sim_full_wall_s=$fwall sim_full_bytes_per_device=$fper"
  grep -E 'devices crashed|needed a person|time to halt' "$OUT/sim-full.table"
fi
exit $status
