// The data oracle: what each page of each mapping should hold.
//
// Each page has an expected first word (0 until written). Writes by the
// CPU, DMA and devices store stamps (stamp()) derived from the seed and a
// global write counter and record them here; fork copies a private
// mapping's expectations and shares a shared one's; munmap forgets pages;
// MADV_DONTNEED zeroes private ones. verify() compares what the CPU reads
// with it.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "pinmm/base/task.h"
#include "pinmm/scenario/scenario.h"
#include "pinmm/vm/mm.h"

namespace pinmm {

struct StepResult;

// One mapping of one process, and what the oracle expects of each page.
struct Mapping {
  MappingKind kind = MappingKind::kAnon;
  VirtAddr addr;
  uint64_t pages = 0;
  // Expected first word per page (0: never written). Shared between the
  // processes of a fork for shared kinds; each process's own otherwise.
  std::shared_ptr<std::vector<uint64_t>> expect;
  std::vector<bool> mapped;  // this process's view (munmap)

  Mapping(MappingKind k, VirtAddr a, uint64_t nr_pages);
  bool shared() const;
  // The child's copy at fork: shared kinds share the expectations.
  Mapping fork() const;
};

// A scenario's process: the task the runner acts as, its mm and mappings.
struct Process {
  std::unique_ptr<Task> task;
  MmHandle mm;
  std::map<std::string, Mapping> maps;
};

// Pages [first, first + pages) of one mapping of one process.
struct Target {
  Process* proc = nullptr;
  Mapping* map = nullptr;
  uint64_t first = 0;  // page index in the mapping
  uint64_t pages = 0;
  VirtAddr addr() const { return map->addr + first * PAGE_SIZE; }
};

// The stamps of a run: distinct for every write, the same for a seed.
class Stamps {
 public:
  explicit Stamps(uint64_t seed) : seed_(seed) {}
  // The next stamp, for page `page` of its mapping; never 0.
  uint64_t next(uint64_t page);

 private:
  const uint64_t seed_;
  std::atomic<uint64_t> writes_{0};
};

// What verify() does with a page the process no longer maps: a `read`
// step faults on it as a CPU access would; no_data_lost skips it.
enum class Unmapped : uint8_t { kFault, kSkip };

// Reads the first word of each page of `t` as its process and compares
// it with the oracle: EIO naming the first page that differs; the read's
// errno (EFAULT) at a page that cannot be read, with the pages verified
// before it as the value.
StepResult verify(const Target& t, Unmapped unmapped);

}  // namespace pinmm
