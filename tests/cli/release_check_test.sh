#!/usr/bin/env bash
# tranche release check's command line: exit codes 0/1/2 and messages that name the
# template, the instance and the field (docs/content.md).
set -u
TRANCHE="$1"
# shellcheck source=../cli_lib.sh
source "$(dirname "$0")/../cli_lib.sh"
I=examples/content/interface.yaml

"$TRANCHE" release check --help > "$tmp/help" 2>&1
check "--help exits 0" test $? -eq 0
check "--help names --interface and --json" grep -q -- "--json" "$tmp/help"

# Clean content: exit 0.
"$TRANCHE" release check examples/content/good.yaml --interface "$I" > "$tmp/out" 2> "$tmp/err"
rc=$?
check "good bundle exits 0 (got $rc)" test $rc -eq 0
check "good bundle says ok" grep -q "^ok: " "$tmp/out"
"$TRANCHE" release check examples/content/good.yaml --interface "$I" --json > "$tmp/out"
check "good bundle --json exits 0" test $? -eq 0
check "good bundle --json is ok with no violations" grep -q '^{"ok": true, "violations": \[\]}$' "$tmp/out"

# The 2024 bundle: exit 1, naming the template, the instance and field 21.
"$TRANCHE" release check examples/content/channel-291.yaml --interface "$I" > "$tmp/out" 2> "$tmp/err"
rc=$?
check "channel-291 exits 1 (got $rc)" test $rc -eq 1
line=$(grep -n 'id: channel-291-ipc-new' examples/content/channel-291.yaml | cut -d: -f1)
check "channel-291 violation names template, instance (line $line) and field 21" \
  grep -q "^examples/content/channel-291.yaml:$line: field_not_supplied: template 'ChannelFile291Ipc' instance 'channel-291-ipc-new': field 21 is not supplied (consumer supplies 20 fields)" "$tmp/out"
check "one violation, no more" test "$(grep -c 'field_not_supplied' "$tmp/out")" -eq 1
"$TRANCHE" release check examples/content/channel-291.yaml --interface "$I" --json > "$tmp/out"
rc=$?
check "channel-291 --json exits 1 (got $rc)" test $rc -eq 1
check "--json names kind, template, instance and field" grep -q \
  '{"kind": "field_not_supplied", "template_type": "ChannelFile291Ipc", "instance": "channel-291-ipc-new", "field": 21, ' "$tmp/out"
check "--json says not ok" grep -q '^{"ok": false, ' "$tmp/out"
if command -v python3 > /dev/null; then
  check "--json is valid JSON" python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["ok"] is False and len(d["violations"]) == 1' "$tmp/out"
fi

# Every kind of violation is reported, not only the first.
cat > "$tmp/many.yaml" <<'YAML'
format: tranche-content/1
templates:
  - id: a
    template_type: NoSuchTemplate
    criteria: [{field: 1, type: string, value: x}]
  - id: b
    template_type: ChannelFile291Ipc
    criteria:
      - {field: 11, type: string, value: x}
      - {field: 0, type: string, value: x}
      - {field: 22, type: string, value: x}
YAML
"$TRANCHE" release check "$tmp/many.yaml" --interface "$I" > "$tmp/out"
rc=$?
check "several violations exit 1 (got $rc)" test $rc -eq 1
check "unknown template reported" grep -q "unknown_template: template 'NoSuchTemplate' instance 'a'" "$tmp/out"
check "type mismatch reported" grep -q "type_mismatch: template 'ChannelFile291Ipc' instance 'b': field 11" "$tmp/out"
check "field 0 reported" grep -q "bad_field_number: .* instance 'b'" "$tmp/out"
check "field 22 reported" grep -q "field_not_supplied: .* instance 'b': field 22" "$tmp/out"
check "summary counts 4" grep -q "^refused: 4 violations" "$tmp/out"

# Malformed input: exit 2, naming the file and the line.
cp examples/content/channel-291.yaml "$tmp/bad.yaml"
sed -i 's/field: 21, type: wildcard/field: 21, type: wildcrd/' "$tmp/bad.yaml"
line=$(grep -n 'wildcrd' "$tmp/bad.yaml" | cut -d: -f1)
"$TRANCHE" release check "$tmp/bad.yaml" --interface "$I" > "$tmp/out" 2> "$tmp/err"
rc=$?
check "malformed bundle exits 2 (got $rc)" test $rc -eq 2
check "error names bundle file, line $line and field" \
  grep -q "$tmp/bad.yaml:$line: templates\[1\].criteria\[2\].type" "$tmp/err"

printf 'format: tranche-interface/1\ntemplates:\n  T: {fields: [string, strng]}\n' > "$tmp/iface.yaml"
"$TRANCHE" release check examples/content/good.yaml --interface "$tmp/iface.yaml" > "$tmp/out" 2> "$tmp/err"
rc=$?
check "malformed interface exits 2 (got $rc)" test $rc -eq 2
check "error names interface file, line 3 and field 2" \
  grep -q "$tmp/iface.yaml:3: templates.T.fields\[1\] (field 2)" "$tmp/err"

"$TRANCHE" release check "$tmp/nothing.yaml" --interface "$I" > "$tmp/out" 2> "$tmp/err"
rc=$?
check "missing bundle exits 2 (got $rc)" test $rc -eq 2
check "missing bundle is named" grep -q "not_found: $tmp/nothing.yaml" "$tmp/err"

"$TRANCHE" release check examples/content/good.yaml > "$tmp/out" 2> "$tmp/err"
check "--interface is required (exit 2)" test $? -eq 2

exit $fail
