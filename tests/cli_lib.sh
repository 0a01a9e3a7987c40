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
