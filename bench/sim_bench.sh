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

run() {  # run DEVICES LABEL -> sets WALL and PER_DEVICE, prints one line
  local devices=$1 label=$2 rss_kb
  /usr/bin/time -f "%e %M" -o "$OUT/$label.time" \
    "$BIN" sim --scenario crowdstrike-2024 --devices "$devices" --policies A,B,C --seed 1 -q \
    --json "$OUT/$label.json" > "$OUT/$label.table"
  read -r WALL rss_kb < "$OUT/$label.time"
  PER_DEVICE=$(awk -v kb="$rss_kb" -v n="$devices" 'BEGIN { printf "%.1f", kb * 1024 / n }')
  echo "$label: devices=$devices wall_s=$WALL peak_rss_mb=$((rss_kb / 1024)) bytes_per_device=$PER_DEVICE"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo), $(date -u +%Y-%m-%d)"
run 1000000 sim-1m
status=0
awk -v w="$WALL" 'BEGIN { exit !(w <= 60) }' || { echo "1M: wall $WALL s > 60 s"; status=1; }
awk -v b="$PER_DEVICE" 'BEGIN { exit !(b <= 200) }' || { echo "1M: $PER_DEVICE bytes/device > 200"; status=1; }

if [ "${BENCH_FULL:-1}" != "0" ]; then
  run 13400000 sim-full
  grep -E 'devices crashed|needed a person|time to halt' "$OUT/sim-full.table"
fi
exit $status
