#!/bin/bash
# The online TUF roles on tranche-server: the operator signs targets offline
# (tranche release sign); the server, holding only the snapshot and timestamp
# keys, publishes a snapshot for it on its own, and tranche-tuf-client refreshes
# and downloads through the server's /tuf/ on 127.0.0.1.
# Usage: tuf_online_test.sh TRANCHE TRANCHE_SERVER TRANCHE_TUF_CLIENT
set -u
tranche="$(realpath "$1")"
server="$(realpath "$2")"
client="$(realpath "$3")"
here="$(cd "$(dirname "$0")/.." && pwd)"
source "$here/cli_lib.sh"
cd "$tmp"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT

for k in root targets snapshot timestamp; do "$tranche" keys gen --out "$k" > /dev/null; done
"$tranche" repo init repo --root-key root.pem --targets-key targets.pem \
  --snapshot-key snapshot.pem --timestamp-key timestamp.pem > /dev/null

"$server" --port 0 --data-dir data --admin-token online-test-token-0123 --tick-ms 100 \
  --tuf-repo repo --tuf-snapshot-key snapshot.pem --tuf-timestamp-key timestamp.pem \
  > server.out 2> server.log &
pid=$!
for _ in $(seq 50); do grep -q "listening on" server.out 2>/dev/null && break; sleep 0.1; done
url="$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' server.out)/tuf"
check "server started" test -n "$url"

# The server publishes the first snapshot and timestamp by itself.
wait_for() { for _ in $(seq 50); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }
check "server signs snapshot 1 and a timestamp" wait_for repo/metadata/timestamp.json
check "client init" "$client" --metadata-dir md init repo/metadata/1.root.json
check "client refresh through the server" "$client" --metadata-dir md --metadata-url "$url/metadata/" refresh

# A release signed offline; no publish command is run.
echo "release one" > app.bin
"$tranche" release sign repo app.bin --name app.bin --targets-key targets.pem > /dev/null
check "server signs snapshot 2 for the new targets" wait_for repo/metadata/2.snapshot.json
sleep 0.3
check "client downloads the release" "$client" --metadata-dir md --metadata-url "$url/metadata/" \
  --target-name app.bin --target-base-url "$url/targets/" --target-dir dl download
check "client: downloaded bytes" cmp app.bin dl/app.bin
check "the publication is in the audit log" bash -c \
  "curl -s -H 'Authorization: Bearer online-test-token-0123' '${url%/tuf}/v1/audit' | grep -q tuf.publish"
check "server never held the targets key" bash -c "! grep -q targets.pem server.log"

# Publish-time check: a release must name targets the repository signs, as
# signed; else it is refused naming the path (issue 13: the guide's
# content/content-7.yaml, which every agent then failed as "not signed").
api="${url%/tuf}/v1/releases"
auth="Authorization: Bearer online-test-token-0123"
len=$(stat -c %s app.bin)
sha=$(sha256sum app.bin | cut -d' ' -f1)
post() { curl -s -o body.json -w '%{http_code}' -H "$auth" -X POST "$api" -d "$1"; }
code=$(post '{"channel":"app","version":"1.0","targets":[{"path":"content/app.bin","length":'"$len"',"sha256":"'"$sha"'"}]}')
check "an unsigned path is refused 422 (got $code)" test "$code" = 422
check "... as not_signed, naming the path and what is signed" \
  grep -q "not_signed.*target 'content/app.bin' is not signed in the TUF repository repo (it signs: app.bin)" body.json
code=$(post '{"channel":"app","version":"1.0","targets":[{"path":"app.bin","length":1,"sha256":"'"$sha"'"}]}')
check "a signed path with another length is refused 409 (got $code)" test "$code" = 409
check "... naming the signed length" grep -q "is signed (by role targets) with length $len" body.json
code=$(post '{"channel":"app","version":"1.0","targets":[{"path":"app.bin","length":'"$len"',"sha256":"'"$sha"'"}]}')
check "the signed target as signed is registered (got $code)" test "$code" = 201
exit $fail
