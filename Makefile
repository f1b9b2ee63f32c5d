# The two quick-start commands: `make run` (build and run the service on its embedded defaults) and
# `make test` (build and run every test). Both install missing Debian packages first.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
ARGS ?=

.PHONY: deps build run test bench sim clean

deps:
	./scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD_DIR) -j$(JOBS)

run: build
	./$(BUILD_DIR)/bin/gpuorch serve $(ARGS)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j$(JOBS) --timeout 300

bench: build
	./scripts/bench.sh

# The scheduling simulator: the scheduler against strict FIFO on a generated mixed trace
# (`make sim ARGS="--preemption"` passes flags).
sim: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD_DIR) --target sched_sim -j$(JOBS)
	./$(BUILD_DIR)/bin/sched_sim $(ARGS)

clean:
	rm -rf $(BUILD_DIR)

# libFuzzer targets (fuzz/), built with clang-14 into build-fuzz/ and run FUZZ_SECONDS each.
FUZZ_SECONDS ?= 60
.PHONY: fuzz
fuzz: deps
	./scripts/fuzz.sh $(FUZZ_SECONDS)
