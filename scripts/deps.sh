#!/usr/bin/env bash
# Installs exactly the Debian packages tranche needs to build and test, and
# nothing when they are all present: `apt-get update` runs only when something is
# missing. Run as root (or with sudo available).
set -euo pipefail

PACKAGES=(
  # toolchain
  cmake make g++ pkg-config
  clang libclang-rt-14-dev   # libFuzzer, ASan and UBSan runtimes for fuzz/ (docs/fuzzing.md)
  # libraries
  libyaml-cpp-dev      # plan and scenario files
  libcli11-dev         # command lines
  libspdlog-dev        # server and agent logs
  libboost-json1.81-dev  # JSON (Boost 1.81: Boost.JSON is not in 1.74)
  libssl-dev           # signatures and hashes (tuf/), HTTPS (server)
  libboost1.81-dev     # Beast and Asio (server, test HTTP servers)
  libcurl4-openssl-dev # HTTP client (tranche-tuf-client, agent, CLI)
  libsqlite3-dev       # embedded store (server default)
  libpq-dev            # PostgreSQL store
  postgresql           # a real PostgreSQL 15 server for the tests (label postgres)
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  time                 # /usr/bin/time in bench/
  wrk nginx-light      # bench/checkin.sh: load generator and the nginx anchor
  nodejs npm           # tests/openapi: the API's conformance to docs/openapi.yaml
  chromium             # tests/browser: headless Chromium driven by playwright-core
  haproxy              # tests/cluster: packaging/haproxy/tranche.cfg in front of a server cluster
  swupdate cpio        # tests/ddi: real SWUpdate clients of the DDI API, and signed .swu images
  curl jq              # tests/ddi: the test speaks DDI and the API as a client would
)

missing=()
for p in "${PACKAGES[@]}"; do
  # NodeSource's nodejs bundles npm and conflicts with Debian's: a working npm counts.
  if [ "$p" = npm ] && command -v npm >/dev/null; then continue; fi
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
