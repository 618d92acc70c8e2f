# pinmm — top-level commands. See README.md.
#   make run    install missing packages, build (release), run the default job
#   make test   the same, then the sanitizer builds and every test
#   make bench  release build, then the Google Benchmark programs

JOBS ?= $(shell nproc)

.PHONY: deps build run test test-asan test-tsan bench format clean

deps:
	@scripts/deps.sh

build: deps
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)

run: build
	build/release/pinmm run

# Unit and cross-layer tests under AddressSanitizer + UBSan with debug checks on.
test-asan: deps
	@cmake --preset debug-asan >/dev/null
	@cmake --build --preset debug-asan -j $(JOBS)
	ctest --test-dir build/debug-asan --output-on-failure -j $(JOBS)

# The concurrency tests under ThreadSanitizer, and a short run of the scenario
# parser fuzzer; this clang build also enforces -Wthread-safety -Werror.
test-tsan: deps
	@cmake --preset tsan >/dev/null
	@cmake --build --preset tsan -j $(JOBS)
	ctest --test-dir build/tsan --output-on-failure -j $(JOBS) -R 'Concurrent|Fuzz'

test: run
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory test-tsan

bench: build
	@for b in build/release/bench/bench_*; do echo "== $$b"; $$b --benchmark_min_time=0.2; done

format:
	@git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf build
