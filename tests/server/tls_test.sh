#!/bin/bash
# HTTPS on tranche-server (--tls-cert/--tls-key, OpenSSL) with a certificate made
# here by the openssl command line, and the refusal of plain HTTP beyond
# loopback. Everything listens on 127.0.0.1; the refused start never listens.
# Usage: tls_test.sh TRANCHE_SERVER
set -u
server="$(realpath "$1")"
here="$(cd "$(dirname "$0")/.." && pwd)"
source "$here/cli_lib.sh"
cd "$tmp"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -keyout key.pem -out cert.pem 2> /dev/null
check "certificate made" test -s cert.pem

"$server" --port 0 --data-dir data --admin-token tls-test-admin-token-0123456789 \
  --tls-cert cert.pem --tls-key key.pem > server.out 2> server.log &
pid=$!
for _ in $(seq 50); do grep -q "listening on" server.out 2>/dev/null && break; sleep 0.1; done
url="$(sed -n 's/.*listening on \(https:[^ ]*\).*/\1/p' server.out)"
check "listens on https" test -n "$url"
check "healthz over TLS, certificate verified" bash -c "curl -sf --cacert cert.pem '$url/healthz' | grep -q ok"
check "an operator call over TLS" bash -c \
  "curl -sf --cacert cert.pem -H 'Authorization: Bearer tls-test-admin-token-0123456789' '$url/v1/fleet' | grep -q devices"
check "an untrusted certificate is refused by the client" bash -c "! curl -sf '$url/healthz' 2>/dev/null"
check "plain HTTP to the TLS port gets no answer" bash -c "! curl -sf --max-time 3 '${url/https/http}/healthz' 2>/dev/null"
kill "$pid"; wait "$pid"; status=$?; pid=""
check "SIGTERM: clean exit" test "$status" = 0

# Tokens in clear text beyond loopback: refused before listening.
"$server" --listen 0.0.0.0 --port 0 --data-dir data2 > out2 2> err2
status=$?
check "plain HTTP beyond loopback is refused as a usage error (exit 2)" test "$status" = 2
check "the refusal says why and what to do" grep -q "tls-cert" err2
check "wrong key for the certificate is named" bash -c \
  "openssl genpkey -algorithm ed25519 -out other.pem 2>/dev/null; \
   ! '$server' --port 0 --data-dir data3 --tls-cert cert.pem --tls-key other.pem > /dev/null 2> err3; grep -q tls-key err3"
exit $fail
