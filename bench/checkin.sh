#!/usr/bin/env bash
# The check-in benchmark (docs/benchmarks.md, issue 3 section 8): tranche-server
# with 1,000,000 enrolled devices and one active rollout, against nginx returning
# a fixed JSON body of the same size, both driven by the same wrk command on
# loopback (64 keep-alive connections, a different enrolled device per request).
#   bash bench/checkin.sh [path/to/tranche-server]        (after make build)
# Prints requests/s of both, p99 at half of tranche's maximum rate (open loop,
# tranche-loadgen), tranche-server's RSS, and last the ratio: checkin_vs_nginx=0.NN
# Knobs (environment): BENCH_THREADS (server threads = nginx workers, default
# nproc), BENCH_DEVICES (1000000), BENCH_DURATION (15 s), BENCH_WARMUP (3 s),
# BENCH_WRK_THREADS (default nproc), TRANCHE_LOADGEN.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=nginx.sh
source bench/nginx.sh
SERVER=${1:-${TRANCHE_SERVER:-build/bin/tranche-server}}
LOADGEN=${TRANCHE_LOADGEN:-$(dirname "$SERVER")/tranche-loadgen}
THREADS=${BENCH_THREADS:-$(nproc)}
DEVICES=${BENCH_DEVICES:-1000000}
DURATION=${BENCH_DURATION:-15}
WARMUP=${BENCH_WARMUP:-3}
WRK_THREADS=${BENCH_WRK_THREADS:-$(nproc)}
CONNECTIONS=64
OUT=${OUT:-build/bench-results}
for tool in "$SERVER" "$LOADGEN"; do
  [ -x "$tool" ] || { echo "checkin.sh: $tool not found: make build first" >&2; exit 1; }
done
for tool in wrk nginx python3; do
  command -v "$tool" > /dev/null || { echo "checkin.sh: $tool missing: make deps" >&2; exit 1; }
done
mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tranche-checkin.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2> /dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cpu_ticks() {  # utime+stime of a process and its children threads, in clock ticks
  awk '{ print $14 + $15 }' "/proc/$1/stat"
}
wait_idle() {  # until the process burns < 2 ticks per 0.5 s (the batch writer has caught up), at most 30 s
  local pid=$1 a b i
  for i in $(seq 60); do
    a=$(cpu_ticks "$pid"); sleep 0.5; b=$(cpu_ticks "$pid")
    [ $((b - a)) -lt 2 ] && return 0
  done
  return 0
}
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
HZ=$(getconf CLK_TCK)

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo), $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "server: $SERVER ($("$SERVER" --version 2>/dev/null | head -1)), loadgen: $LOADGEN"
echo "threads: tranche-server --threads $THREADS, nginx worker_processes $THREADS, wrk -t$WRK_THREADS -c$CONNECTIONS;" \
     "no pinning: load generator and server share the $(nproc) cores"

# --- tranche-server ---------------------------------------------------------------
ADMIN="tro_bench$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
"$SERVER" --listen 127.0.0.1 --port 0 --threads "$THREADS" --data-dir "$WORK/data" \
  --admin-token "$ADMIN" > "$WORK/server.out" 2> "$WORK/server.log" &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
for _ in $(seq 100); do
  grep -q 'listening on' "$WORK/server.out" 2> /dev/null && break
  kill -0 "$SERVER_PID" 2> /dev/null || { cat "$WORK/server.log" >&2; exit 1; }
  sleep 0.1
done
PORT=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$WORK/server.out" | head -1)
[ -n "$PORT" ] || { echo "checkin.sh: the server did not start" >&2; cat "$WORK/server.log" >&2; exit 1; }

python3 bench/provision.py "$PORT" "$ADMIN" "$DEVICES" "$WORK/tokens" --baseline --rollout bench/plan-canary.yaml \
  --sample "$WORK/answer.json"
ANSWER_BYTES=$(wc -c < "$WORK/answer.json")
echo "typical check-in answer ($ANSWER_BYTES bytes): $(cat "$WORK/answer.json")"
wait_idle "$SERVER_PID"

run_wrk() {  # run_wrk NAME PORT PID... -> prints "NAME rps=..." and sets RPS
  local name=$1 port=$2; shift 2
  echo "$name: load average before the run $(cut -d' ' -f1-3 /proc/loadavg)"
  local url="http://127.0.0.1:$port" pid before=0 after=0
  wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -s bench/checkin.lua "$url" -- "$WORK/tokens" \
    "$WRK_THREADS" > "$WORK/wrk-$name-warmup.txt"
  for pid in "$@"; do before=$((before + $(cpu_ticks "$pid"))); done
  /usr/bin/time -f "%U %S" -o "$WORK/wrk-$name.time" \
    wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/checkin.lua "$url" -- \
    "$WORK/tokens" "$WRK_THREADS" > "$WORK/wrk-$name.txt"
  for pid in "$@"; do after=$((after + $(cpu_ticks "$pid"))); done
  cp "$WORK/wrk-$name.txt" "$OUT/wrk-$name.txt"
  RPS=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$WORK/wrk-$name.txt")
  local bad p50 p99 wrk_cpu server_cpu
  bad=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$WORK/wrk-$name.txt")
  p50=$(awk '$1 == "50%" { print $2 }' "$WORK/wrk-$name.txt")
  p99=$(awk '$1 == "99%" { print $2 }' "$WORK/wrk-$name.txt")
  server_cpu=$(awk -v t=$((after - before)) -v hz="$HZ" -v d="$DURATION" 'BEGIN { printf "%.2f", t / hz / d }')
  wrk_cpu=$(awk -v d="$DURATION" '{ printf "%.2f", ($1 + $2) / d }' "$WORK/wrk-$name.time")
  echo "$name: requests/s=$RPS (wrk latency p50=$p50 p99=$p99 at full load; non-2xx=${bad:-0};" \
       "cores used: server $server_cpu, wrk $wrk_cpu)"
  grep -i 'socket errors' "$WORK/wrk-$name.txt" || true
  if [ -n "$bad" ] && [ "$name" = tranche ]; then
    echo "checkin.sh: tranche answered $bad requests with an error" >&2
    exit 1
  fi
}

run_wrk tranche "$PORT" "$SERVER_PID"
TRANCHE_RPS=$RPS
wait_idle "$SERVER_PID"

# --- nginx: the same body, the same number of workers, its own files ----------------
NGINX_PORT=$(free_port)
start_nginx "$WORK/nginx" "$NGINX_PORT" "$THREADS" "$WORK/answer.json" || { kill "$NGINX_PID" 2> /dev/null; exit 1; }
PIDS+=("$NGINX_PID")
NGINX_PIDS=("$NGINX_PID" $(pgrep -P "$NGINX_PID"))
run_wrk nginx "$NGINX_PORT" "${NGINX_PIDS[@]}"
NGINX_RPS=$RPS
kill "$NGINX_PID"

# --- p99 at half of tranche's maximum rate (open loop) --------------------------------
# (and at a quarter, to show how the tail depends on the load of the shared cores)
HALF=$((TRANCHE_RPS / 2))
for rate in $((TRANCHE_RPS / 4)) "$HALF"; do
  wait_idle "$SERVER_PID"
  echo "open loop at $rate/s: load average before $(cut -d' ' -f1-3 /proc/loadavg)"
  "$LOADGEN" rate --port "$PORT" --tokens "$WORK/tokens" --rate "$rate" --connections "$CONNECTIONS" \
    --warmup-s 2 --duration-s 10 | tee "$WORK/rate.txt"
done
P99=$(sed -n 's/.* p99_ms=\([0-9.]*\).*/\1/p' "$WORK/rate.txt")

RSS_KB=$(awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status")
HWM_KB=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status")
echo "tranche-server RSS with $DEVICES devices after the load: $((RSS_KB / 1024)) MB (peak $((HWM_KB / 1024)) MB)"

status=0
RATIO=$(awk -v a="$TRANCHE_RPS" -v b="$NGINX_RPS" 'BEGIN { printf "%.2f", a / b }')
awk -v r="$RATIO" 'BEGIN { exit !(r >= 0.5) }' || { echo "target missed: ratio $RATIO < 0.5"; status=1; }
awk -v p="$P99" 'BEGIN { exit !(p <= 5) }' || { echo "target missed: p99 $P99 ms > 5 ms at $HALF req/s"; status=1; }
[ "$RSS_KB" -le 1048576 ] || { echo "target missed: RSS $((RSS_KB / 1024)) MB > 1 GB"; status=1; }
echo "summary: tranche=$TRANCHE_RPS/s nginx=$NGINX_RPS/s p99_at_${HALF}/s=${P99}ms rss_mb=$((RSS_KB / 1024))"
echo "checkin_vs_nginx=$RATIO"
exit $status
