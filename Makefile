# Thin wrapper over CMake so a new user needs only `make bench` and
# `make test`. Both install missing Debian packages first.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build test bench microbench clean asan

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The performance validation suite (docs/BENCH.md): generates 1M events
# into a fresh store, runs every scenario, writes bench-results/report.md,
# report.json and the plots. EVS_BENCH_ARGS: more options (e.g. --quick).
bench: build
	EVS_BENCH_LABEL="$${EVS_BENCH_LABEL:-evstore $$(git rev-parse --short HEAD 2>/dev/null || echo 'no commit')$$(GIT_OPTIONAL_LOCKS=0 git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo ' + uncommitted changes')}" \
	  $(BUILD)/evs bench --out bench-results $(EVS_BENCH_ARGS)

# The micro-benchmarks of the engine, DCB, tracking and the command
# executor (tools/bench/micro/*_bench.c, tools/bench/micro/run.sh).
microbench: build
	bash tools/bench/micro/run.sh $(BUILD)

# The suite under AddressSanitizer and UndefinedBehaviorSanitizer.
asan: deps
	cmake -S . -B build-asan -DEVS_SANITIZE=address,undefined
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ctest --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD) build-asan
