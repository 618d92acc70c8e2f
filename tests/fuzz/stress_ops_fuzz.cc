// libFuzzer target for operation sequences: the input is decoded into a
// small machine and a sequence of the stress mix's operations, run on one
// thread (stress/stress.h, run_op_sequence). After every operation every
// layer's validate() runs and the pins are counted; at the end the data
// oracle is read back and everything is torn down. Any violation, lost
// write or leaked page aborts with the run's problems, so libFuzzer keeps
// the input as a crash.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "pinmm/stress/stress.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const pinmm::stress::StressResult r = pinmm::stress::run_op_sequence(std::span(data, size));
  if (r.ok()) return 0;
  std::fprintf(stderr, "%s\n", r.summary().c_str());
  for (const auto& p : r.problems)
    std::fprintf(stderr, "  %s\n", p.c_str());
  std::abort();
}
