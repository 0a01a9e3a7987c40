#!/usr/bin/env bash
# The floor under tranche-agent's RSS: a program with no tranche code that only loads
# Debian's libcurl and OpenSSL the way tranche-agent does (GnuTLS's implicit init
# skipped, OpenSSL error strings not loaded), step by step, RSS after each step.
# Usage: bench/agent_floor.sh   (needs g++ and libcurl4-openssl-dev, libssl-dev)
set -euo pipefail
tmp="$(mktemp -d)"; pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
cd "$tmp"
cat > floor.cpp <<'CPP'
#include <curl/curl.h>
#include <openssl/ssl.h>
#include <unistd.h>
#include <cstdlib>
extern "C" int _gnutls_global_init_skip() { return 1; }  // as agent/gnutls_skip_init.cpp
int main(int argc, char** argv) {
  const int step = std::atoi(argv[1]);
  if (step >= 1) OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_SSL_STRINGS | OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS, nullptr);
  if (step >= 2) curl_global_init(CURL_GLOBAL_DEFAULT);
  if (step >= 3) {
    CURL* c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, argv[2]);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, +[](char*, size_t n, size_t m, void*) { return n * m; });
    curl_easy_perform(c);
    curl_easy_cleanup(c);
  }
  pause();
}
CPP
g++ -O2 floor.cpp -o floor -lcurl -lssl -lcrypto -Wl,--export-dynamic-symbol=_gnutls_global_init_skip
python3 -m http.server 0 --bind 127.0.0.1 > http.out 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q "port" http.out && break; sleep 0.1; done
url="http://127.0.0.1:$(sed -n 's/.*port \([0-9]*\).*/\1/p' http.out | head -1)/"
names=("libcurl, libssl, libcrypto and their dependencies loaded, nothing called"
  "+ OPENSSL_init_ssl without error strings" "+ curl_global_init" "+ one plain HTTP GET")
for step in 0 1 2 3; do
  ./floor "$step" "$url" & p=$!
  sleep 1
  echo "$(awk '/VmRSS/ {print $2}' "/proc/$p/status") kB RSS  ${names[$step]}"
  kill "$p"; wait "$p" 2>/dev/null || true
done
