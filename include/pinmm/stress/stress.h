// Stress: a seeded random mix of everything pinmm models, on real threads,
// checked the whole time.
//
// Linux counterpart: none in one place; what the mm selftests, LTP's
// memory tests and syzkaller do to a kernel between them. Each of T
// threads is an actor with processes of its own (faults, writes and reads
// through a data oracle, fork, exit, munmap, mprotect, madvise), pins
// (get/pin, fast and slow, long-term, unpins, DMA through pins), devices
// of its own (an RDMA NIC that registers and DMAs, an HMM mirror that
// faults, writes, and migrates to device memory and back, O_DIRECT), and
// machine-wide operations it shares with the others (move_pages,
// migrate_pages, offline/online with deadlines, hot-add, cma_alloc and
// cma_release, kernel allocations). Every actor owns its data, so its
// oracle knows what every page it maps must hold; the others only move
// that data around. At quiescent points all actors stop and every layer's
// validate() runs, with the pins the table records checked against the
// pins the actors hold; at the end everything is torn down and the
// machine must have every page back.
//
// The same actors run single-threaded from a fuzzer's bytes
// (run_op_sequence): every choice an actor makes comes from a Choices
// source, random or decoded.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "pinmm/phys/config.h"

namespace pinmm {
class MemorySystem;
}

namespace pinmm::stress {

struct StressOptions {
  MachineConfig machine;
  unsigned threads = 2;
  uint64_t seed = 1;
  // The run ends after `duration`, or after `max_ops` operations in all if
  // that is not 0 (tests use ops: they do not depend on speed).
  std::chrono::milliseconds duration{10'000};
  uint64_t max_ops = 0;
  // Actors stop for a full validate() this often (and at least once).
  std::chrono::milliseconds validate_every{1000};
  // Called after each quiescent check, no actor running, with the machine
  // and the ops done so far (progress; tests use it to break the machine
  // behind the actors' backs and see the checks notice).
  std::function<void(MemorySystem& ms, uint64_t ops)> on_check;
};

struct StressResult {
  uint64_t ops = 0;
  double seconds = 0;
  uint64_t checks = 0;        // quiescent validations run
  uint64_t violations = 0;    // failed invariants (validate(), pin accounting)
  uint64_t lost_writes = 0;   // pages that did not hold what the oracle expected
  uint64_t leaked_pages = 0;  // pages in use beyond boot after teardown
  std::map<std::string, uint64_t> ops_by_kind;
  std::vector<std::string> problems;  // the first few, in order
  bool ok() const { return violations == 0 && lost_writes == 0 && leaked_pages == 0; }
  // "stress: N ops in S s, V invariant violations, L lost writes, P leaked pages"
  std::string summary() const;
};

// Boots opts.machine and runs the actors. The machine must be valid
// (MachineConfig::check()).
StressResult run_stress(const StressOptions& opts);

// One actor, single-threaded, every choice decoded from `bytes`: the first
// bytes pick the machine (a few small shapes), the rest the operations.
// The pins are counted after every operation and every layer's validate()
// runs after every eighth (it walks every page); the data oracle checks
// every read; at the end everything is read back, torn down and checked
// for leaks.
StressResult run_op_sequence(std::span<const uint8_t> bytes);

}  // namespace pinmm::stress
