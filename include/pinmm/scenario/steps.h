// The steps of a scenario: one struct per step kind, and `StepOp`, the
// variant of them all.
//
// Each kind is its YAML key (kName), its operands, and two functions
// defined beside the others of its domain (memory_steps.cc,
// device_steps.cc, machine_steps.cc): parse(), which reads and checks the
// operands, and run(), which carries the step out on a running scenario.
// Adding a kind is its struct here, its alternative in StepOp (the one
// registration: the parser finds a kind by its kName, the runner by its
// type), and its two functions. docs/scenarios.md lists them for users.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "pinmm/scenario/expect.h"

namespace pinmm {

class StepReader;   // src/scenario/reader.h: a step's YAML operands
class ScenarioRun;  // src/scenario/run.h: the machine and tables of a run
struct StepResult;  // src/scenario/run.h: err, value, detail, blockers

enum class DeviceType : uint8_t { kRdmaNic, kDmirror, kGpu, kDirectIo };
const char* device_type_name(DeviceType t);

// A range of a mapping: "process.mapping" plus offset and size.
struct RangeRef {
  std::string process;
  std::string mapping;
  uint64_t offset = 0;
  std::optional<uint64_t> size;  // default: to the end of the mapping
};

// Declares what every step kind has besides its operands.
#define PINMM_STEP_KIND(Type, key)          \
  static constexpr const char* kName = key; \
  static Type parse(StepReader& in);        \
  StepResult run(ScenarioRun& run, const std::string& step_id) const

// ---- memory steps (memory_steps.cc) ----

struct WriteStep {  // the CPU writes a stamp into each page
  PINMM_STEP_KIND(WriteStep, "write");
  RangeRef range;
};
struct ReadStep {  // the CPU reads each page and checks it against the oracle
  PINMM_STEP_KIND(ReadStep, "read");
  RangeRef range;
};
struct ForkStep {
  PINMM_STEP_KIND(ForkStep, "fork");
  std::string process, child;
};
struct ExitStep {
  PINMM_STEP_KIND(ExitStep, "exit");
  std::string process;
};
struct MunmapStep {
  PINMM_STEP_KIND(MunmapStep, "munmap");
  RangeRef range;
};
struct MprotectStep {
  PINMM_STEP_KIND(MprotectStep, "mprotect");
  RangeRef range;
  std::string prot;  // "none", "r", "rw"
};
struct MadviseStep {
  PINMM_STEP_KIND(MadviseStep, "madvise");
  RangeRef range;
  std::string advice;  // "dontneed", "hugepage", "nohugepage", "populate_write"
};
struct MovePagesStep {
  PINMM_STEP_KIND(MovePagesStep, "move_pages");
  RangeRef range;
  int node = 0;
};

// ---- pin and device steps (device_steps.cc) ----

struct PinStep {
  PINMM_STEP_KIND(PinStep, "pin");
  RangeRef range;
  std::string as;      // the handle unpin names
  std::string label;   // the pin owner's label ("" : "<comm> pin")
  std::string device;  // the owner, if a device ("": the process)
  bool longterm = false, fast = false, write = true;
};
struct UnpinStep {
  PINMM_STEP_KIND(UnpinStep, "unpin");
  std::string pin;
};
struct RegisterStep {  // ib_umem_get on an RDMA NIC
  PINMM_STEP_KIND(RegisterStep, "register");
  std::string device;
  RangeRef range;
  std::string as, label;
};
struct DeregisterStep {
  PINMM_STEP_KIND(DeregisterStep, "deregister");
  std::string region;
};
struct DmaStep {
  PINMM_STEP_KIND(DmaStep, "dma");
  std::string region;
  unsigned rounds = 1;
};
struct DirectIoStep {
  PINMM_STEP_KIND(DirectIoStep, "direct_io");
  std::string device;
  RangeRef range;
  bool to_memory = true;  // direction: read (disk to memory) or write
};
struct MirrorStep {  // device access through HMM
  PINMM_STEP_KIND(MirrorStep, "mirror");
  std::string device;
  RangeRef range;
  std::string op;  // read, write, migrate_to_device, migrate_to_system, snapshot
};

// ---- machine steps (machine_steps.cc) ----

struct OfflineStep {
  PINMM_STEP_KIND(OfflineStep, "offline");
  BlockSelect blocks;
  int timeout_ms = 0;    // a signal at this time (0: none; the kernel retries until one)
  unsigned retries = 0;  // give up (-EBUSY) after this many migration attempts (0: never)
};
struct OnlineStep {
  PINMM_STEP_KIND(OnlineStep, "online");
  BlockSelect blocks;
  std::string zone = "online_movable";  // the memoryN/state value written
};
struct HotAddStep {
  PINMM_STEP_KIND(HotAddStep, "hot_add");
  uint64_t bytes = 0;
  int node = 0;
};
struct CmaAllocStep {
  PINMM_STEP_KIND(CmaAllocStep, "cma_alloc");
  std::string area;
  uint64_t count = 0;  // pages; 0: the whole area
  std::string as;
};
struct CmaReleaseStep {
  PINMM_STEP_KIND(CmaReleaseStep, "cma_release");
  std::string alloc;
};
struct KernelAllocStep {  // unmovable pages
  PINMM_STEP_KIND(KernelAllocStep, "kernel_alloc");
  uint64_t bytes = 0;  // a power of two, 4 KiB to 4 MiB
  int node = 0;
  std::string as;
  std::string label = "scenario";
};
struct KernelFreeStep {
  PINMM_STEP_KIND(KernelFreeStep, "kernel_free");
  std::string alloc;
};
struct SnapshotStep {  // the physical memory map, into the report
  PINMM_STEP_KIND(SnapshotStep, "snapshot");
  std::string label;
};
// Arms or clears one fault-injection point (base/inject.h's catalogue).
struct InjectStep {
  PINMM_STEP_KIND(InjectStep, "inject");
  enum class Mode : uint8_t { kEvery, kNth, kProbability, kDelay, kClear };
  std::string point;
  Mode mode = Mode::kEvery;
  uint64_t n = 1;          // every / nth; delay in microseconds
  double probability = 0;  // probability
};

#undef PINMM_STEP_KIND

// ---- groups (parse.cc; the runner runs them) ----

struct Step;
// Steps that run at once, each on its own thread; groups do not nest.
struct ConcurrentStep {
  static constexpr const char* kName = "concurrent";
  std::vector<Step> group;
};

using StepOp = std::variant<WriteStep, ReadStep, ForkStep, ExitStep, MunmapStep, MprotectStep,
                            MadviseStep, PinStep, UnpinStep, RegisterStep, DeregisterStep, DmaStep,
                            DirectIoStep, MirrorStep, MovePagesStep, OfflineStep, OnlineStep,
                            HotAddStep, CmaAllocStep, CmaReleaseStep, KernelAllocStep,
                            KernelFreeStep, SnapshotStep, InjectStep, ConcurrentStep>;

struct Step {
  StepOp op;
  std::string title;  // "name:" or the kind's name
  SourcePos pos;
  std::optional<StepExpect> expect;
  const char* kind() const;  // the YAML key: "write", "move_pages" …
};

}  // namespace pinmm
