#!/usr/bin/env bash
# The cluster benchmark (docs/benchmarks.md, docs/scale.md): tranche-servers on
# one PostgreSQL behind HAProxy (packaging/haproxy/tranche.cfg), devices that
# check in and change nothing (idle), on loopback.
#   bash bench/cluster.sh [path/to/tranche-server]        (after make build)
# Phases, each after a warm-up in which every device checks in once (so every
# device is owned by a server of the phase), then a measured wrk run:
#   one    1 server behind HAProxy (all three backend lines name it)
#   three  3 servers behind HAProxy
#   hb60   3 servers, --last-seen-every-s 10 times the period at which wrk
#          brings each device back (as 600 s is to a 60 s heartbeat)
#   every0 3 servers with --last-seen-every-s 0 (each check-in writes its
#          device's row: the behaviour before coarse last contacts)
#   nginx  nginx answering the same body, directly (the anchor)
# Prints per phase: check-ins/s, PostgreSQL rows written per check-in
# (pg_stat_database inserted + updated + deleted over the run, engine ticks
# included) and each server's RSS; then the ratios to nginx.
# Knobs (environment): BENCH_DEVICES (50000), BENCH_DURATION (10 s),
# BENCH_THREADS (each server's --threads, 1), BENCH_WRK_THREADS (nproc).
# 2 cores: PostgreSQL, HAProxy, the servers and wrk share them, so the
# 3-server throughput says what one machine gives, not what 3 machines would.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=nginx.sh
source bench/nginx.sh
SERVER=${1:-${TRANCHE_SERVER:-build/bin/tranche-server}}
DEVICES=${BENCH_DEVICES:-50000}
DURATION=${BENCH_DURATION:-10}
THREADS=${BENCH_THREADS:-1}
WRK_THREADS=${BENCH_WRK_THREADS:-$(nproc)}
CONNECTIONS=64
PG_BIN=${TRANCHE_PG_BIN:-/usr/lib/postgresql/15/bin}
[ -x "$SERVER" ] || { echo "cluster.sh: $SERVER not found: make build first" >&2; exit 1; }
for tool in wrk nginx haproxy python3 "$PG_BIN/psql"; do
  command -v "$tool" > /dev/null || { echo "cluster.sh: $tool missing: make deps" >&2; exit 1; }
done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tranche-cluster-bench.XXXXXX")
PIDS=()
stop_pids() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2> /dev/null || true; done
  PIDS=()
}
cleanup() {
  stop_pids
  bash tests/pg/pg_cluster.sh stop "$WORK/pg" > /dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo), $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "server: $SERVER ($("$SERVER" --version 2>/dev/null | head -1)); $DEVICES devices; wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s;" \
     "each server --threads $THREADS; PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'), HAProxy $(haproxy -v | awk 'NR==1 {print $3}')"

bash tests/pg/pg_cluster.sh start "$WORK/pg" > /dev/null
URL=$(cat "$WORK/pg/url")
PG_ROOT=$(cat "$WORK/pg/cluster")
PG_PORT=$(sed -E 's|.*:([0-9]+)/.*|\1|' <<< "$URL")
psql_q() {
  local cmd=("$PG_BIN/psql" -X -q -t -A -h "$PG_ROOT" -p "$PG_PORT" -U postgres -d tranche_test -c "$1")
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "${cmd[@]}"; else "${cmd[@]}"; fi
}
rows_written() {
  psql_q "SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = 'tranche_test'"
}
ADMIN="tro_bench$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"

# start_servers PREFIX N [ARGS...]: N servers on the store; sets SERVER_PIDS, SERVER_PORTS.
start_servers() {
  local prefix=$1 n=$2 i port; shift 2
  SERVER_PIDS=(); SERVER_PORTS=()
  for i in $(seq 1 "$n"); do
    port=$(free_port)
    "$SERVER" --listen 127.0.0.1 --port "$port" --threads "$THREADS" --data-dir "$WORK/$prefix-$i" \
      --store "$URL" --server-id "$prefix-$i" --admin-token "$ADMIN" "$@" \
      > "$WORK/$prefix-$i.out" 2> "$WORK/$prefix-$i.log" &
    PIDS+=("$!"); SERVER_PIDS+=("$!"); SERVER_PORTS+=("$port")
  done
  for i in "${!SERVER_PORTS[@]}"; do
    for _ in $(seq 100); do
      curl -fs "http://127.0.0.1:${SERVER_PORTS[$i]}/healthz" > /dev/null 2>&1 && break
      kill -0 "${SERVER_PIDS[$i]}" 2> /dev/null || { tail -20 "$WORK/$prefix-$((i + 1)).log" >&2; exit 1; }
      sleep 0.1
    done
  done
}
# start_haproxy PORT...: HAProxy with the checked-in configuration, backend lines
# s1..s3 on these ports (repeated when fewer); sets HAPROXY_PORT.
start_haproxy() {
  local ports=("$@")
  while [ "${#ports[@]}" -lt 3 ]; do ports+=("${ports[0]}"); done
  HAPROXY_PORT=$(free_port)
  TRANCHE_HAPROXY_PORT=$HAPROXY_PORT TRANCHE_SERVER_1=127.0.0.1:${ports[0]} \
    TRANCHE_SERVER_2=127.0.0.1:${ports[1]} TRANCHE_SERVER_3=127.0.0.1:${ports[2]} \
    haproxy -db -f packaging/haproxy/tranche.cfg > "$WORK/haproxy.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$HAPROXY_PORT/healthz" > /dev/null 2>&1 && return 0
    sleep 0.1
  done
  cat "$WORK/haproxy.log" >&2; exit 1
}
# warm_up PREFIX: wrk runs until every device is owned by a server of PREFIX
# (its first check-in there claimed it), at most 180 s.
warm_up() {
  local prefix=$1 owned=0 t0=$SECONDS
  while [ $((SECONDS - t0)) -lt 180 ]; do
    wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d5s -s bench/checkin.lua "http://127.0.0.1:$HAPROXY_PORT" -- \
      "$WORK/tokens" "$WRK_THREADS" > /dev/null
    owned=$(psql_q "SELECT count(*) FROM device_states WHERE owner LIKE '$prefix-%'")
    [ "$owned" -ge "$DEVICES" ] && break
  done
  echo "$prefix: warm-up $((SECONDS - t0)) s, $owned of $DEVICES devices owned by its servers"
}
# measure NAME: the measured run through HAProxy; prints and sets RPS, ROWS_PER.
measure() {
  local name=$1 before after
  sleep 11  # PostgreSQL flushes a session's counters at most every 10 s when idle
  before=$(rows_written)
  wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/checkin.lua \
    "http://127.0.0.1:$HAPROXY_PORT" -- "$WORK/tokens" "$WRK_THREADS" > "$WORK/wrk-$name.txt"
  sleep 11
  after=$(rows_written)
  local requests bad p99
  requests=$(awk '/requests in/ { print $1 }' "$WORK/wrk-$name.txt")
  bad=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$WORK/wrk-$name.txt")
  p99=$(awk '$1 == "99%" { print $2 }' "$WORK/wrk-$name.txt")
  RPS=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$WORK/wrk-$name.txt")
  ROWS_PER=$(awk -v r=$((after - before)) -v n="$requests" 'BEGIN { printf "%.4f", r / n }')
  local rss="" pid
  for pid in "${SERVER_PIDS[@]}"; do
    rss+="$(awk '/^VmRSS:/ { printf "%d", $2 / 1024 }' "/proc/$pid/status") "
  done
  echo "$name: check-ins/s=$RPS (p99 $p99, non-2xx ${bad:-0}); PostgreSQL rows written=$((after - before))" \
       "for $requests check-ins (+22 s of ticks) = $ROWS_PER per check-in; server RSS MB: ${rss% }"
  [ -z "$bad" ] || { echo "cluster.sh: $name: $bad requests answered with an error" >&2; exit 1; }
}

# --- one server ---------------------------------------------------------------------
start_servers one 1
python3 bench/provision.py "${SERVER_PORTS[0]}" "$ADMIN" "$DEVICES" "$WORK/tokens" --baseline \
  --rollout bench/plan-canary.yaml --sample "$WORK/answer.json"
start_haproxy "${SERVER_PORTS[0]}"
warm_up one
measure one
ONE_RPS=$RPS; ONE_ROWS=$ROWS_PER
stop_pids

# --- three servers ------------------------------------------------------------------
start_servers three 3
start_haproxy "${SERVER_PORTS[@]}"
warm_up three
measure three
THREE_RPS=$RPS; THREE_ROWS=$ROWS_PER
stop_pids

# --- three servers, as with 60 s heartbeats ---------------------------------------------
# wrk brings each device back every DEVICES / rate seconds (about 2 s), far more
# often than the default --last-seen-every-s 600, so "three" shows almost no row
# writes. Here the interval is 10 times the devices' period, as 600 s is to a
# 60 s heartbeat, over a run of 3 intervals or more: the rows per check-in a
# fleet on 60 s heartbeats costs, through the real write path.
PERIOD_MS=$(awk -v n="$DEVICES" -v r="$THREE_RPS" 'BEGIN { printf "%d", 1000 * n / r }')
EVERY_S=$(( (10 * PERIOD_MS + 999) / 1000 ))
HB_DURATION=$(( DURATION > 3 * EVERY_S ? DURATION : 3 * EVERY_S ))
echo "hb60: devices come back every ${PERIOD_MS} ms; --last-seen-every-s $EVERY_S; a ${HB_DURATION} s run"
start_servers hb60 3 --last-seen-every-s "$EVERY_S"
start_haproxy "${SERVER_PORTS[@]}"
warm_up hb60
SAVED_DURATION=$DURATION; DURATION=$HB_DURATION
measure hb60
DURATION=$SAVED_DURATION
HB60_ROWS=$ROWS_PER
stop_pids

# --- three servers, a write per check-in (the anchor for rows per check-in) ------------
start_servers every0 3 --last-seen-every-s 0
start_haproxy "${SERVER_PORTS[@]}"
warm_up every0
measure every0
EVERY0_ROWS=$ROWS_PER
stop_pids

# --- nginx: the same body, directly ---------------------------------------------------
NGINX_PORT=$(free_port)
start_nginx "$WORK/nginx" "$NGINX_PORT" "$(nproc)" "$WORK/answer.json" || { kill "$NGINX_PID" 2> /dev/null; exit 1; }
PIDS+=("$NGINX_PID")
wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -s bench/checkin.lua "http://127.0.0.1:$NGINX_PORT" -- \
  "$WORK/tokens" "$WRK_THREADS" > "$WORK/wrk-nginx.txt"
NGINX_RPS=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$WORK/wrk-nginx.txt")
echo "nginx: check-ins/s=$NGINX_RPS (the same answer body, no proxy)"
stop_pids

awk -v one="$ONE_RPS" -v three="$THREE_RPS" -v nginx="$NGINX_RPS" -v r1="$ONE_ROWS" -v r3="$THREE_ROWS" \
    -v r0="$EVERY0_ROWS" -v hb="$HB60_ROWS" 'BEGIN {
  printf "summary: one_vs_nginx=%.2f three_vs_nginx=%.2f three_vs_one=%.2f rows_per_idle_checkin: one=%s three=%s hb60=%s every0=%s\n",
         one / nginx, three / nginx, three / one, r1, r3, hb, r0 }'
awk -v r="$HB60_ROWS" 'BEGIN { exit !(r <= 0.1) }' || { echo "target missed: $HB60_ROWS rows per idle check-in > 0.1 (hb60)"; exit 1; }
