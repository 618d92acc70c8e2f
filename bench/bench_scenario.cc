// The scenario layer's hot paths: parsing a scenario file (the built-in
// default) and a whole small run (cow-and-pins: boot, 12 MiB of writes,
// fork, pin, O_DIRECT, reads, teardown and the audit).
#include <benchmark/benchmark.h>

#include "pinmm/scenario/runner.h"

namespace pinmm {
namespace {

void BM_ParseDefaultScenario(benchmark::State& state) {
  const BuiltinScenario* b = find_builtin_scenario("default");
  for (auto _ : state)
    benchmark::DoNotOptimize(parse_scenario(b->yaml, "default"));
}
BENCHMARK(BM_ParseDefaultScenario)->Unit(benchmark::kMicrosecond);

void BM_RunCowAndPins(benchmark::State& state) {
  const Scenario s = parse_scenario(find_builtin_scenario("cow-and-pins")->yaml, "cow-and-pins");
  for (auto _ : state) {
    const RunReport r = run_scenario(s);
    if (!r.passed) state.SkipWithError("the scenario failed");
  }
}
BENCHMARK(BM_RunCowAndPins)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace pinmm
