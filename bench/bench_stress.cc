// The stress mix's speed: operations per second of one actor with its
// quiescent checks far apart (what `pinmm stress` spends its time on), and
// inputs per second of the operation fuzzer (a check after every
// operation: what bounds how much a fuzzing hour explores).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "pinmm/stress/stress.h"

namespace pinmm::stress {
namespace {

StressOptions machine_for_bench() {
  StressOptions o;
  o.machine = MachineConfig::tiny(Bytes::MiB(128), Bytes::MiB(64));
  o.machine.nodes.push_back({Bytes::MiB(64), Bytes::MiB(32)});
  o.machine.cma.push_back({"reserved", Bytes::MiB(16), 0});
  o.machine.hotplug.space = Bytes::MiB(16);
  o.machine.device_space = Bytes::MiB(32);
  o.machine.thp = ThpMode::kMadvise;
  o.threads = 1;
  o.duration = std::chrono::hours(1);
  o.validate_every = std::chrono::hours(1);  // only the final checks
  return o;
}

void BM_StressOps(benchmark::State& state) {
  StressOptions o = machine_for_bench();
  o.max_ops = static_cast<uint64_t>(state.range(0));
  uint64_t ops = 0;
  for (auto _ : state) {
    const StressResult r = run_stress(o);
    if (!r.ok()) state.SkipWithError(r.summary().c_str());
    ops += r.ops;
  }
  state.counters["ops_per_s"] =
      benchmark::Counter(static_cast<double>(ops), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_StressOps)->Arg(20000)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_OpSequence(benchmark::State& state) {
  std::vector<uint8_t> bytes(static_cast<size_t>(state.range(0)));
  uint64_t x = 88172645463325252ull;
  for (uint8_t& b : bytes) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b = static_cast<uint8_t>(x);
  }
  uint64_t ops = 0;
  for (auto _ : state) {
    const StressResult r = run_op_sequence(bytes);
    if (!r.ok()) state.SkipWithError(r.summary().c_str());
    ops += r.ops;
  }
  state.counters["ops_per_input"] =
      benchmark::Counter(static_cast<double>(ops), benchmark::Counter::kAvgIterations);
}
BENCHMARK(BM_OpSequence)->Arg(256)->Arg(1024)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace pinmm::stress
