# Thin wrapper over CMake so a new user needs only `make bench` and
# `make test`. Each target first installs the Debian packages it is missing
# (scripts/install-deps.sh: `make build` the library's and the tool's only,
# `make test` also the test suite's, `make bench` also gnuplot).
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
# make install: the prefix the build was configured with (CMake's default
# /usr/local, or CMAKE_FLAGS=-DCMAKE_INSTALL_PREFIX=...), unless PREFIX is
# given; DESTDIR stages the files under a directory, as usual.
PREFIX =

# What install-deps.sh installs: the packages of the target asked for
# (its prerequisites see the same value). The test suite is configured in
# only for `make test` (it needs cmocka, which `make build` does not
# install); CMAKE_FLAGS=-DEVS_BUILD_TESTS=ON overrides.
DEPS_FOR = build
TESTS = OFF
test asan: DEPS_FOR = test
test: TESTS = ON
bench: DEPS_FOR = bench

.PHONY: all deps build install test bench microbench clean asan

all: build

deps:
	@bash scripts/install-deps.sh $(DEPS_FOR)

# `make test` turns the suite on; the other targets turn it off only in a
# build directory that is not configured yet (so `make bench` after
# `make test` does not drop the suite from build/).
TESTS_FLAG = $(if $(filter ON,$(TESTS)),-DEVS_BUILD_TESTS=ON,$(if $(wildcard $(BUILD)/CMakeCache.txt),,-DEVS_BUILD_TESTS=OFF))

build: deps
	cmake -S . -B $(BUILD) $(TESTS_FLAG) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

# The library, its headers, evstore.pc, the CMake package and `evs`
# (README, "Build, install, link").
install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) $(if $(PREFIX),--prefix "$(PREFIX)")

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

# The suite under AddressSanitizer and UndefinedBehaviorSanitizer, in a
# Debug build: the engine's invariant asserts are on there (the default
# RelWithDebInfo build defines NDEBUG).
asan: deps
	cmake -S . -B build-asan -DEVS_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=Debug
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ctest --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD) build-asan
