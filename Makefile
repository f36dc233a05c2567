# The README's commands. Everything real lives in CMake and the scripts it names.
#   make run    install what is missing, build, start a local broker + the agent + the simulator
#   make test   install what is missing, build, run every test
#   make fuzz   build the libFuzzer targets with clang and run each for FUZZ_SECONDS

SHELL := /bin/bash
BUILD ?= build
BUILD_ASAN ?= build-asan
BUILD_TSAN ?= build-tsan
BUILD_FUZZ ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_PARALLEL ?= 2
FUZZ_TARGETS := decode rule_file expr config engine table
JOBS ?= $(shell nproc)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

# Debian 12 packages the build, the tests and the demo need.
DEPS := build-essential cmake ninja-build pkg-config python3 \
	libpaho-mqttpp-dev libpaho-mqtt-dev libsqlite3-dev nlohmann-json3-dev \
	libcurl4-openssl-dev zlib1g-dev libcpp-httplib-dev libgtest-dev libgmock-dev libbenchmark-dev \
	mosquitto mosquitto-clients openssl prometheus-alertmanager influxdb \
	dpkg-dev lintian prometheus faketime
# What `make fuzz` needs besides: clang and its sanitizer and libFuzzer runtimes.
FUZZ_DEPS := clang libclang-rt-dev
# What `make tidy` needs besides.
TIDY_DEPS := clang-tidy

.PHONY: all deps fuzz-deps build test test-sanitize fuzz run package bench format format-check tidy test-tsan clean

all: build

# Installs the Debian packages of $(1) that are missing.
define install_missing
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	  | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

deps:
	$(call install_missing,$(DEPS))

fuzz-deps:
	$(call install_missing,$(FUZZ_DEPS))

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The whole suite under AddressSanitizer and UndefinedBehaviorSanitizer (tests/lsan.supp: leaks
# inside third-party libraries that LeakSanitizer is told to ignore). The engine's differential
# test runs 1 000 of its 3 000 random streams here (`make test` runs them all): 200 s under ASan
# for all of them, most of CI's time.
test-sanitize: deps
	cmake -S . -B $(BUILD_ASAN) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DVIGIL_SANITIZE=ON -DVIGIL_BENCH=OFF
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	cd $(BUILD_ASAN) && LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	  VIGIL_PROPERTY_CASES=1000 ctest --output-on-failure -j $(JOBS)

# The integration tests (the agent's threads under real load, faults and reloads) under
# ThreadSanitizer; any report fails the test (the agent exits 66). tests/tsan.supp: races
# inside Paho's token objects, which ThreadSanitizer cannot see synchronised. Not
# test_fault_clock: libfaketime's own pthread_cond_timedwait hides the unlock inside the wait
# from ThreadSanitizer, which then reports Paho's next lock of that mutex as a double lock.
test-tsan: deps
	cmake -S . -B $(BUILD_TSAN) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIGIL_TSAN=ON -DVIGIL_BENCH=OFF
	cmake --build $(BUILD_TSAN) -j $(JOBS) --target vigil
	cd $(BUILD_TSAN) && TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp" \
	  ctest --output-on-failure -j $(JOBS) -L integration -E test_fault_clock

# libFuzzer targets (tests/fuzz/README.md) under ASan and UBSan, FUZZ_SECONDS each,
# FUZZ_PARALLEL at a time; fails on any crash, leak, UB, timeout or memory blow-up.
fuzz: deps fuzz-deps
	cmake -S . -B $(BUILD_FUZZ) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
	  -DCMAKE_CXX_COMPILER=clang++ -DVIGIL_FUZZ=ON -DVIGIL_TESTS=OFF -DVIGIL_WERROR=OFF
	cmake --build $(BUILD_FUZZ) -j $(JOBS) --target fuzzers
	tests/fuzz/run.sh $(BUILD_FUZZ) $(FUZZ_SECONDS) $(FUZZ_PARALLEL) $(FUZZ_TARGETS)

run: build
	packaging/demo.sh $(BUILD)/agent/vigil

# Benchmarks that print figures (README, Performance): the parts, the engine, the detectors,
# end to end (E2E: options of tests/bench/e2e.py).
E2E ?= --rate 20000 --seconds 60
bench: build
	$(BUILD)/tests/bench/micro_bench --benchmark_min_time=0.5
	$(BUILD)/tests/bench/engine_bench --benchmark_min_time=2
	$(BUILD)/tests/bench/detector_bench
	python3 tests/bench/e2e.py --build $(BUILD) $(E2E)

# The Debian package, in $(BUILD)/ (packaging/README.md).
package: build
	cd $(BUILD) && cpack -G DEB

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.cpp' '*.h')

# clang-tidy with the repo's .clang-tidy over every source file of the five modules (their
# headers through them); fails on any finding.
tidy: build
	$(call install_missing,$(TIDY_DEPS))
	run-clang-tidy -p $(BUILD) -quiet -j $(JOBS) '$(CURDIR)/(agent|rules|store|uplink|config)/'

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN) $(BUILD_FUZZ) .run
