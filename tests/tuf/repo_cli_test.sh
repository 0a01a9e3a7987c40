#!/bin/bash
# The repository side of the `tranche` CLI end to end, checked by independent
# tools: every signature in the metadata that `tranche repo init`, `release
# sign`, `repo publish` and `root rotate` write verifies with the openssl
# command line over the canonical bytes (cut out of the file with sed; the file
# is canonical JSON with "signed" as its last member), and tranche-tuf-client
# refreshes from and downloads out of the directory served by a plain HTTP
# server (python3 -m http.server) on 127.0.0.1.
# Usage: repo_cli_test.sh TRANCHE TRANCHE_TUF_CLIENT
set -u
tranche="$(realpath "$1")"
client="$(realpath "$2")"
here="$(cd "$(dirname "$0")/.." && pwd)"
source "$here/cli_lib.sh"
cd "$tmp"

# Verifies every signature of metadata file $1 with openssl; the keys are the
# *.pub.json files in $tmp (ed25519: raw 32-byte key in hex).
verify_with_openssl() {
  local file="$1" ok=0 n=0
  sed -e 's/^.*\],"signed"://' -e 's/}$//' "$file" > signed.bin
  # keyid/sig pairs, one per line
  grep -o '"keyid":"[0-9a-f]*","sig":"[0-9a-f]*"' "$file" | sed 's/"keyid":"\([0-9a-f]*\)","sig":"\([0-9a-f]*\)"/\1 \2/' > sigs.txt
  while read -r keyid sig; do
    n=$((n + 1))
    local found=0
    for pub in *.pub.json; do
      local hex
      hex=$(sed 's/.*"public":"\([0-9a-f]*\)".*/\1/' "$pub")
      printf '302a300506032b6570032100%s' "$hex" | xxd -r -p > key.der
      openssl pkey -pubin -inform DER -in key.der -out key.pem 2>/dev/null || continue
      printf '%s' "$sig" | xxd -r -p > sig.bin
      if openssl pkeyutl -verify -pubin -inkey key.pem -rawin -in signed.bin -sigfile sig.bin >/dev/null 2>&1; then
        found=1
        break
      fi
    done
    [ "$found" = 1 ] && ok=$((ok + 1))
  done < sigs.txt
  echo "  $file: $ok of $n signatures verify with openssl" >&2
  [ "$n" -gt 0 ] && [ "$ok" = "$n" ]
}

for k in root targets snapshot timestamp root2; do
  "$tranche" keys gen --out "$k" > /dev/null
done
check "keys gen: private key is mode 0600" [ "$(stat -c %a root.pem)" = 600 ]
check "keys gen: refuses to overwrite" bash -c "! '$tranche' keys gen --out root 2>/dev/null"

check "repo init" "$tranche" repo init repo --root-key root.pem --targets-key targets.pem \
  --snapshot-key snapshot.pem --timestamp-key timestamp.pem
check "repo init: refuses a second time (exit 1)" bash -c "'$tranche' repo init repo --root-key root.pem \
  --targets-key targets.pem --snapshot-key snapshot.pem --timestamp-key timestamp.pem 2>/dev/null; [ \$? = 1 ]"
echo "release one" > app.bin
check "release sign" "$tranche" release sign repo app.bin --name app/app.bin --targets-key targets.pem
check "release sign: a snapshot key cannot sign targets (exit 1)" bash -c \
  "'$tranche' release sign repo app.bin --targets-key snapshot.pem 2>/dev/null; [ \$? = 1 ]"
check "repo publish" "$tranche" repo publish repo --snapshot-key snapshot.pem --timestamp-key timestamp.pem
sha=$(sha256sum app.bin | cut -d' ' -f1)
check "layout: targets/app/SHA256.app.bin" cmp app.bin "repo/targets/app/$sha.app.bin"
for f in 1.root.json 2.targets.json 2.snapshot.json timestamp.json; do
  check "layout: metadata/$f" [ -f "repo/metadata/$f" ]
  check "openssl verifies every signature of $f" verify_with_openssl "repo/metadata/$f"
done

# Root rotation: the new root key alone cannot sign the new root (5.3.4).
check "root rotate: new key alone is refused (exit 1)" bash -c \
  "'$tranche' root rotate repo --sign-key root2.pem --root-key root2.pub.json 2>/dev/null; [ \$? = 1 ]"
check "root rotate: old and new keys" "$tranche" root rotate repo --sign-key root.pem \
  --sign-key root2.pem --root-key root2.pub.json
check "openssl verifies 2.root.json (old and new key)" verify_with_openssl repo/metadata/2.root.json

# The client against the directory served by a plain HTTP server.
python3 -m http.server --bind 127.0.0.1 0 --directory repo > http.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$tmp"' EXIT
port=""
for _ in $(seq 50); do
  port=$(sed -n 's/.*port \([0-9]*\).*/\1/p' http.log | head -1)
  [ -n "$port" ] && break
  sleep 0.1
done
check "http server started" [ -n "$port" ]
url="http://127.0.0.1:$port"
check "client init" "$client" --metadata-dir md init repo/metadata/1.root.json
check "client download" "$client" --metadata-dir md --metadata-url "$url/metadata/" \
  --target-name app/app.bin --target-base-url "$url/targets/" --target-dir dl download
check "client: downloaded bytes" cmp app.bin dl/app%2Fapp.bin
check "client: followed the root rotation" cmp md/root.json repo/metadata/2.root.json

# A second release: the client replaces the target.
echo "release two" > app.bin
"$tranche" release sign repo app.bin --name app/app.bin --targets-key targets.pem > /dev/null
"$tranche" repo publish repo --snapshot-key snapshot.pem --timestamp-key timestamp.pem > /dev/null
check "client: a new release replaces the target" "$client" --metadata-dir md \
  --metadata-url "$url/metadata/" --target-name app/app.bin --target-base-url "$url/targets/" \
  --target-dir dl download
check "client: new bytes" cmp app.bin dl/app%2Fapp.bin
exit $fail
