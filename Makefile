# The README's commands. Everything real lives in CMake and the scripts it names.
#   make run    install what is missing, build, start a local broker + the agent + the simulator
#   make test   install what is missing, build, run every test

SHELL := /bin/bash
BUILD ?= build
BUILD_ASAN ?= build-asan
JOBS ?= $(shell nproc)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

# Debian 12 packages the build, the tests and the demo need.
DEPS := build-essential cmake ninja-build pkg-config python3 \
	libpaho-mqttpp-dev libpaho-mqtt-dev libsqlite3-dev nlohmann-json3-dev \
	libcurl4-openssl-dev zlib1g-dev libcpp-httplib-dev libgtest-dev libgmock-dev libbenchmark-dev \
	mosquitto mosquitto-clients openssl prometheus-alertmanager influxdb \
	dpkg-dev lintian prometheus

.PHONY: all deps build test test-sanitize run package bench format format-check clean

all: build

deps:
	@missing=$$(for p in $(DEPS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	  | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The whole suite under AddressSanitizer and UndefinedBehaviorSanitizer.
test-sanitize: deps
	cmake -S . -B $(BUILD_ASAN) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DVIGIL_SANITIZE=ON
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	cd $(BUILD_ASAN) && ctest --output-on-failure -j $(JOBS)

run: build
	packaging/demo.sh $(BUILD)/agent/vigil

# Benchmarks that print figures (README, Performance): the engine, the detectors, end to end.
bench: build
	$(BUILD)/tests/bench/engine_bench --benchmark_min_time=2
	$(BUILD)/tests/bench/detector_bench
	python3 tests/bench/e2e.py --build $(BUILD)

# The Debian package, in $(BUILD)/ (packaging/README.md).
package: build
	cd $(BUILD) && cpack -G DEB

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) .run
