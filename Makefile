# The two commands of the README:
#   make demo   build, then run Moxie on a model bundled in the repository
#   make test   build, then run every test (also under ASan+UBSan); what CI runs
# Both install the Debian packages they need first (scripts/install-deps.sh).
JOBS ?= $(shell nproc)

.PHONY: demo test deps build build-asan test-release test-asan clean

deps:
	@bash scripts/install-deps.sh

build: deps
	cmake --preset release -DMOXIE_WERROR=ON >/dev/null
	cmake --build build -j $(JOBS)

build-asan: deps
	cmake --preset asan >/dev/null
	cmake --build build-asan -j $(JOBS)

demo: build
	@bash scripts/demo.sh

test-release: build
	ctest --test-dir build --output-on-failure -j $(JOBS)

# Tests labelled "heavy" (whole-corpus evaluations) run in the release build only: under the
# sanitizers they would take tens of minutes without checking anything the others do not.
test-asan: build-asan
	ctest --test-dir build-asan --output-on-failure -j $(JOBS) -LE heavy

test: test-release test-asan

clean:
	rm -rf build build-asan build-dev
