#!/usr/bin/env bash
# tranche sim's command line: exit codes, messages and files that scripts rely on.
set -u
TRANCHE="$1"
# shellcheck source=../cli_lib.sh
source "$(dirname "$0")/../cli_lib.sh"

# --help explains the command and its options.
"$TRANCHE" sim --help > "$tmp/help" 2>&1
check "--help exits 0" test $? -eq 0
check "--help names --scenario and --set" grep -q -- "--set" "$tmp/help"

# A malformed scenario: exit 2, naming the file, the line and what is wrong.
cp scenarios/crowdstrike-2024.yaml "$tmp/bad.yaml"
sed -i 's/^reboot_cycle: 2m/reboot_cycle: two minutes/' "$tmp/bad.yaml"
sed -i 's#\.\./examples/#'"$PWD"'/examples/#' "$tmp/bad.yaml"
line=$(grep -n '^reboot_cycle' "$tmp/bad.yaml" | cut -d: -f1)
"$TRANCHE" sim --scenario "$tmp/bad.yaml" -q > "$tmp/out" 2> "$tmp/err"
rc=$?
check "malformed scenario exits 2 (got $rc)" test $rc -eq 2
check "error names file and line $line" grep -q "$tmp/bad.yaml:$line: reboot_cycle" "$tmp/err"

# A malformed plan file named by the scenario: exit 2, naming the plan's line.
mkdir -p "$tmp/plans"
printf 'name: x\nstages:\n  - {name: all, percent: 100 percent}\n' > "$tmp/plans/broken.yaml"
sed 's#plan: \.\./examples/plans/rings.yaml#plan: plans/broken.yaml#' scenarios/crowdstrike-2024.yaml |
  sed 's#\.\./examples/#'"$PWD"'/examples/#' > "$tmp/s.yaml"
"$TRANCHE" sim --scenario "$tmp/s.yaml" -q > "$tmp/out" 2> "$tmp/err"
rc=$?
check "malformed plan exits 2 (got $rc)" test $rc -eq 2
check "error names the plan file and its line" grep -q "plans/broken.yaml:3" "$tmp/err"

# A scenario name too long for the file system is bad input, not a crash.
"$TRANCHE" sim --scenario "$(printf 'a%.0s' $(seq 5000))" -q > "$tmp/out" 2> "$tmp/err"
rc=$?
check "overlong scenario name exits 2 (got $rc)" test $rc -eq 2
check "overlong scenario name is not found" grep -q "not_found" "$tmp/err"

# Unknown policy and unknown --set key: exit 2, saying what exists.
"$TRANCHE" sim --devices 1000 --policies A,Z -q > "$tmp/out" 2> "$tmp/err"
check "unknown policy exits 2" test $? -eq 2
check "unknown policy is named" grep -q "no policy 'Z'" "$tmp/err"
"$TRANCHE" sim --devices 1000 --set fleet.nothing=1 -q > "$tmp/out" 2> "$tmp/err"
check "unknown --set key exits 2" test $? -eq 2

# A small run writes JSON, CSV and SVG, and the same seed gives the same JSON.
"$TRANCHE" sim --devices 3000 --seed 5 --set horizon=2d -q --json "$tmp/1.json" --csv "$tmp/1.csv" --plot "$tmp/1.svg" > "$tmp/table"
check "small run exits 0" test $? -eq 0
check "table compares A, B and C" grep -qE '^ +A +B +C$' "$tmp/table"
"$TRANCHE" sim --devices 3000 --seed 5 --set horizon=2d -q --json "$tmp/2.json" > /dev/null
check "same seed, same JSON" cmp -s "$tmp/1.json" "$tmp/2.json"
check "CSV has a row per minute" test "$(wc -l < "$tmp/1.csv")" -eq $((2 * 24 * 60 + 2))
check "SVG is an svg" grep -q '^<svg' "$tmp/1.svg"

# False-halt trials report per 1,000.
"$TRANCHE" sim --devices 2000 --policies B --false-halt-trials 3 -q > "$tmp/fh"
check "false-halt trials report a rate" grep -q "B: [0-9]* halts in 3 good releases" "$tmp/fh"

exit $fail
