#!/usr/bin/env bash
# pg_cluster.sh start|stop DIR — a throwaway PostgreSQL 15 server for the tests.
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
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
dir=$2
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

start_cluster() {
  mkdir -p "$dir"
  stop_cluster
  local root
  root=$(mktemp -d /tmp/tranche-pg.XXXXXX)
  echo "$root" > "$dir/cluster"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$root"; fi
  # --no-sync: a cluster that lives for one test run need not survive a power cut
  # at its creation; the server itself runs with fsync on, as in production.
  if ! as_owner "$bin/initdb" -D "$root/data" -U postgres -A trust -E UTF8 --no-locale \
      --no-sync > "$root/initdb.log" 2>&1; then
    cat "$root/initdb.log" >&2
    echo "pg_cluster: initdb failed" >&2
    return 1
  fi
  local port attempt
  for attempt in 1 2 3 4 5 6 7 8; do
    port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    port_in_use "$port" && continue
    if as_owner "$bin/pg_ctl" -D "$root/data" -l "$root/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$root" \
        start > /dev/null; then
      as_owner "$bin/createdb" -h "$root" -p "$port" -U postgres tranche_test
      echo "postgresql://postgres@127.0.0.1:$port/tranche_test" > "$dir/url"
      echo "pg_cluster: PostgreSQL on 127.0.0.1:$port ($root), url in $dir/url"
      return 0
    fi
    echo "pg_cluster: start on port $port failed (attempt $attempt):" >&2
    tail -n 5 "$root/server.log" >&2 || true
  done
  echo "pg_cluster: could not start PostgreSQL" >&2
  return 1
}

case "$action" in
  start) start_cluster || { stop_cluster; exit 1; } ;;
  stop) stop_cluster ;;
  *) usage ;;
esac
