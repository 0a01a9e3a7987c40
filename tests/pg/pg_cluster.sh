#!/usr/bin/env bash
# pg_cluster.sh start|stop DIR — a throwaway PostgreSQL 15 server for the tests.
# pg_cluster.sh replica DIR PRIMARY_DIR — a streaming replica of the server that
# `start PRIMARY_DIR` runs; pg_cluster.sh promote DIR — make it the primary.
#
# start: initdb into a fresh temporary directory (/tmp/tranche-pg.XXXXXX), run
# the server on 127.0.0.1 at a free port and on a unix socket in that directory
# (trust authentication: nothing else listens), create the database
# tranche_test, and write its URL to DIR/url and the temporary directory's path
# to DIR/cluster. A cluster left behind by an earlier start on DIR is stopped
# first. stop: stop the server (immediate) and delete the temporary directory.
#
# initdb and postgres refuse to run as root: as root, both run as the
# `postgres` user (Debian's postgresql package creates it); otherwise as the
# caller. TRANCHE_PG_BIN overrides /usr/lib/postgresql/15/bin.
#
# replica: pg_basebackup (-R: it follows the primary over streaming
# replication) into a fresh temporary directory, started at a free port; DIR/url
# and DIR/cluster as for start. The primary is then made to wait for it at every
# commit (synchronous_standby_names = '*'), so a commit the primary answered is
# on the replica too: after a failover to it, nothing acknowledged is lost.
# `stop DIR` stops it as it stops a primary.
set -euo pipefail

usage() { echo "usage: $0 start|stop|promote DIR | replica DIR PRIMARY_DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
action=$1
dir=$2
if [ "$action" = replica ]; then [ $# -eq 3 ] || usage; else [ $# -eq 2 ] || usage; fi
bin=${TRANCHE_PG_BIN:-/usr/lib/postgresql/15/bin}

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

stop_cluster() {
  [ -f "$dir/cluster" ] || return 0
  local root
  root=$(cat "$dir/cluster")
  # Only ever delete a directory this script made.
  case "$root" in
    /tmp/tranche-pg.*) ;;
    *) echo "pg_cluster: $dir/cluster names '$root', not a tranche-pg directory" >&2; return 1 ;;
  esac
  if [ -f "$root/data/postmaster.pid" ]; then
    as_owner "$bin/pg_ctl" -D "$root/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$root"
  rm -f "$dir/cluster" "$dir/url"
}

port_in_use() {
  command -v ss >/dev/null 2>&1 || return 1
  [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
}

# new_root: a fresh directory for a server (its data, socket and logs), owned by
# the user the server runs as, named in DIR/cluster; its path on stdout.
new_root() {
  local root
  root=$(mktemp -d /tmp/tranche-pg.XXXXXX)
  echo "$root" > "$dir/cluster"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$root"; fi
  echo "$root"
}

# start_at_free_port ROOT: pg_ctl start of ROOT/data at a free port (8 tries),
# its URL in DIR/url; sets PORT.
start_at_free_port() {
  local root=$1 attempt
  for attempt in 1 2 3 4 5 6 7 8; do
    PORT=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    port_in_use "$PORT" && continue
    if as_owner "$bin/pg_ctl" -D "$root/data" -l "$root/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories=$root" \
        start > /dev/null; then
      echo "postgresql://postgres@127.0.0.1:$PORT/tranche_test" > "$dir/url"
      return 0
    fi
    echo "pg_cluster: start on port $PORT failed (attempt $attempt):" >&2
    tail -n 5 "$root/server.log" >&2 || true
  done
  echo "pg_cluster: could not start PostgreSQL" >&2
  return 1
}

start_cluster() {
  mkdir -p "$dir"
  stop_cluster
  local root
  root=$(new_root)
  # --no-sync: a cluster that lives for one test run need not survive a power cut
  # at its creation; the server itself runs with fsync on, as in production.
  if ! as_owner "$bin/initdb" -D "$root/data" -U postgres -A trust -E UTF8 --no-locale \
      --no-sync > "$root/initdb.log" 2>&1; then
    cat "$root/initdb.log" >&2
    echo "pg_cluster: initdb failed" >&2
    return 1
  fi
  start_at_free_port "$root" || return 1
  as_owner "$bin/createdb" -h "$root" -p "$PORT" -U postgres tranche_test
  echo "pg_cluster: PostgreSQL on 127.0.0.1:$PORT ($root), url in $dir/url"
}

start_replica() {
  local primary_dir=$1
  [ -f "$primary_dir/url" ] && [ -f "$primary_dir/cluster" ] || {
    echo "pg_cluster: no primary started in $primary_dir" >&2; return 1; }
  local primary_root primary_port
  primary_root=$(cat "$primary_dir/cluster")
  primary_port=$(sed -E 's|.*:([0-9]+)/.*|\1|' "$primary_dir/url")
  mkdir -p "$dir"
  stop_cluster
  local root
  root=$(new_root)
  if ! as_owner "$bin/pg_basebackup" -h "$primary_root" -p "$primary_port" -U postgres \
      -D "$root/data" -R -X stream --checkpoint=fast --no-sync > "$root/basebackup.log" 2>&1; then
    cat "$root/basebackup.log" >&2
    echo "pg_cluster: pg_basebackup from $primary_root:$primary_port failed" >&2
    return 1
  fi
  start_at_free_port "$root" || return 1
  local port=$PORT
  # Streaming before the primary waits for it: else its commits would hang.
  local psql=("$bin/psql" -X -q -t -A -h "$primary_root" -p "$primary_port" -U postgres -d postgres)
  local i
  for i in $(seq 1 100); do
    [ "$(as_owner "${psql[@]}" -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" -ge 1 ] && break
    sleep 0.1
  done
  as_owner "${psql[@]}" -c "ALTER SYSTEM SET synchronous_standby_names = '*'" \
    -c "SELECT pg_reload_conf()" > /dev/null
  for i in $(seq 1 100); do
    [ "$(as_owner "${psql[@]}" -c "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'")" -ge 1 ] && {
      echo "pg_cluster: synchronous replica on 127.0.0.1:$port ($root), url in $dir/url"
      return 0; }
    sleep 0.1
  done
  echo "pg_cluster: the replica on port $port did not become synchronous" >&2
  return 1
}

promote_cluster() {
  [ -f "$dir/cluster" ] || { echo "pg_cluster: nothing started in $dir" >&2; return 1; }
  as_owner "$bin/pg_ctl" -D "$(cat "$dir/cluster")/data" -w -t 60 promote > /dev/null
}

case "$action" in
  start) start_cluster || { stop_cluster; exit 1; } ;;
  replica) start_replica "$3" || { stop_cluster; exit 1; } ;;
  promote) promote_cluster ;;
  stop) stop_cluster ;;
  *) usage ;;
esac
