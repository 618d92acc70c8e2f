# pinmm — top-level commands. See README.md.
#   make run    install missing packages, build (release), run the default job
#   make test   the same, then the sanitizer builds and every test
#   make bench  release build, then the Google Benchmark programs
#   make fuzz   both libFuzzer targets for FUZZ_SECONDS each (default 600)
#   make soak   pinmm stress for SOAK_SECONDS (default 600) on the release build

JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 600
SOAK_SECONDS ?= 600

.PHONY: deps build run test test-asan test-tsan test-fuzz fuzz-build fuzz soak bench format clean

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

# The concurrency tests (and 20 s of pinmm stress) under ThreadSanitizer;
# this clang build also enforces -Wthread-safety -Werror.
test-tsan: deps
	@cmake --preset tsan >/dev/null
	@cmake --build --preset tsan -j $(JOBS)
	ctest --test-dir build/tsan --output-on-failure -j $(JOBS) -R 'Concurrent'

# The libFuzzer targets (clang, ASan + UBSan, coverage from the whole
# engine): the scenario parser and operation sequences, 20 s each.
fuzz-build: deps
	@cmake --preset fuzz >/dev/null
	@cmake --build --preset fuzz -j $(JOBS)

test-fuzz: fuzz-build
	ctest --test-dir build/fuzz --output-on-failure -j $(JOBS)

fuzz: fuzz-build
	@for f in scenario_parser_fuzz:corpus stress_ops_fuzz:ops-corpus; do \
	  name=$${f%%:*}; seeds=tests/fuzz/$${f##*:}; \
	  echo "== $$name for $(FUZZ_SECONDS) s"; \
	  build/fuzz/tests/fuzz/$$name -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	    -print_final_stats=1 -artifact_prefix=build/fuzz/tests/fuzz/$$name- \
	    build/fuzz/tests/fuzz/$$name-corpus $$seeds || exit 1; \
	done

soak: build
	build/release/pinmm stress --seconds $(SOAK_SECONDS) --threads 2

test: run
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory test-tsan
	@$(MAKE) --no-print-directory test-fuzz

bench: build
	@for b in build/release/bench/bench_*; do echo "== $$b"; $$b --benchmark_min_time=0.2; done

format:
	@git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf build
