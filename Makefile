# tranche — the two commands that matter are `make run` and `make test`.
# Everything else is a step they call.

JOBS ?= 2
BUILD := build
BIN := $(BUILD)/bin
SCENARIO ?= crowdstrike-2024

.PHONY: all deps configure build test fuzz run run-cluster replay bench bench-server asan clean help

all: build

help:
	@echo "make run    install what is missing, build, run \`tranche demo\`: a real server and fleet on"
	@echo "           127.0.0.1, a bad release contained (dashboard URL printed; Ctrl-C ends it)"
	@echo "make run-cluster  the same demo on 3 servers sharing a PostgreSQL, HAProxy in front"
	@echo "make replay build, run the 2024 replay in the simulator (table + plot)"
	@echo "make test   install what is missing, build, run every test (CTest)"
	@echo "make build  configure and build the dev preset into $(BUILD)/"
	@echo "make bench  run the benchmarks recorded in docs/benchmarks.md"
	@echo "make bench-server  only tranche-server's: check-in vs nginx, long-poll propagation, cluster"
	@echo "make asan   build and test under AddressSanitizer + UBSan"
	@echo "make fuzz   only the fuzz tests (libFuzzer, a fixed number of inputs each)"
	@echo "make deps   install the Debian packages the project needs (idempotent)"

deps:
	@bash scripts/deps.sh

configure: deps
	@cmake --preset dev > /dev/null

build: configure
	@cmake --build --preset dev -j $(JOBS)

test: build
	@ctest --preset dev -j $(JOBS) --output-on-failure

fuzz: build
	@ctest --preset dev -L fuzz -j $(JOBS) --output-on-failure

# AGENTS=N for a bigger or smaller fleet; DEMO_FLAGS=--once to exit after the summary.
AGENTS ?= 30
run: build
	@$(BIN)/tranche demo --agents $(AGENTS) --work-dir $(BUILD)/demo $(DEMO_FLAGS)

run-cluster: build
	@$(BIN)/tranche demo --servers 3 --agents $(AGENTS) --work-dir $(BUILD)/demo-cluster $(DEMO_FLAGS)

replay: build
	@$(BIN)/tranche sim --scenario $(SCENARIO) \
	  --json $(BUILD)/$(SCENARIO).json --csv $(BUILD)/$(SCENARIO).csv \
	  --plot $(BUILD)/$(SCENARIO).svg
	@echo "plot: $(BUILD)/$(SCENARIO).svg  json: $(BUILD)/$(SCENARIO).json"

bench: build
	@status=0; bash bench/sim_bench.sh || status=1; \
	  bash bench/checkin.sh || status=1; bash bench/propagation.sh || status=1; \
	  bash bench/cluster.sh || status=1; exit $$status

bench-server: build
	@status=0; bash bench/checkin.sh || status=1; bash bench/propagation.sh || status=1; \
	  bash bench/cluster.sh || status=1; exit $$status

asan: deps
	@cmake --preset asan-ubsan > /dev/null
	@cmake --build --preset asan-ubsan -j $(JOBS)
	@ctest --preset asan-ubsan -j $(JOBS) --output-on-failure

clean:
	rm -rf $(BUILD)
