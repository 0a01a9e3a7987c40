# Sourced by the command-line test scripts: a scratch directory removed on exit,
# and check NAME CONDITION... which prints ok/FAIL and remembers a failure in $fail.
# The script ends with `exit $fail`.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() {  # check NAME CONDITION...
  local name="$1"; shift
  if "$@"; then echo "ok: $name"; else echo "FAIL: $name"; fail=1; fi
}

# start_server BIN ARGS...: a tranche-server on a free port of 127.0.0.1 with
# its data in $tmp/data, stopped (and $tmp removed) on exit; sets URL and
# checks that it came up. Its output is in $tmp/server.out and $tmp/server.err.
server_pid=""
cleanup_server() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; fi
  rm -rf "$tmp"
}
start_server() {
  local bin="$1"; shift
  trap cleanup_server EXIT
  "$bin" --port 0 --data-dir "$tmp/data" "$@" > "$tmp/server.out" 2> "$tmp/server.err" &
  server_pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$tmp/server.out" && break; sleep 0.1; done
  URL=$(sed -n 's/^tranche-server listening on \(http:[^ ]*\).*/\1/p' "$tmp/server.out")
  check "server started ($URL)" test -n "$URL"
}

# json FILE EXPR: EXPR evaluated with `j` the file's JSON (node).
json() { node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(eval(process.argv[2]))' "$1" "$2"; }
