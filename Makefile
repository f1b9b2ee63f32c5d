# The two quick-start commands: `make run` (build and run the service on its embedded defaults) and
# `make test` (build and run every test). Both install missing Debian packages first.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
ARGS ?=

.PHONY: deps build run test bench clean

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

clean:
	rm -rf $(BUILD_DIR)
