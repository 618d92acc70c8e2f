// The composition root: one booted machine, built in one place.
//
// A Machine owns what every whole-machine user needs — physical memory
// (MemorySystem), the address-space world (VmContext), memory hotplug
// (MemoryHotplug) and the CMA areas (CmaAreas) — built from one
// MachineConfig in the order they depend on each other, and torn down in
// the reverse. The scenario runner, stress, the CLI and the benchmarks
// boot through it; a layer's own unit tests boot only the layers they test
// (src/testing/machines.h, vm.h), since they sit below this one.
//
// Linux counterpart: start_kernel()'s init order, as far as pinmm models
// it (mm_core_init for the page allocator, then memory blocks, CMA areas
// at their initcall).
#pragma once

#include <cstdint>
#include <memory>

#include "pinmm/base/errno.h"
#include "pinmm/base/validate.h"
#include "pinmm/cma/cma.h"
#include "pinmm/hotplug/memory_hotplug.h"
#include "pinmm/phys/config.h"
#include "pinmm/phys/memory_system.h"
#include "pinmm/vm/vm_context.h"

namespace pinmm {

class Machine {
 public:
  // Boots `config`: MemorySystem::create's errors (EINVAL for a layout
  // MachineConfig::check() refuses, ENOMEM when the host cannot back it).
  static Result<std::unique_ptr<Machine>> boot(const MachineConfig& config);

  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;
  ~Machine();

  const MachineConfig& config() const { return ms_->config(); }
  MemorySystem& ms() { return *ms_; }
  const MemorySystem& ms() const { return *ms_; }
  VmContext& vm() { return vm_; }
  MemoryHotplug& hotplug() { return hotplug_; }
  const MemoryHotplug& hotplug() const { return hotplug_; }
  CmaAreas& cma() { return cma_; }
  const CmaAreas& cma() const { return cma_; }

  // Pages in use by anything: managed minus free, less the page
  // descriptors of hot-added memory. What was in use at boot, and still
  // is after everything is torn down, is not a leak.
  int64_t used_pages() const;

  // Every layer's invariants, at a quiescent point (no operation in
  // flight): vm and phys first (validate_vm waits for RCU-deferred
  // page-table frees), then migrate, hotplug and CMA.
  ValidationReport validate();

 private:
  explicit Machine(std::unique_ptr<MemorySystem> ms);

  std::unique_ptr<MemorySystem> ms_;
  VmContext vm_;
  MemoryHotplug hotplug_;
  CmaAreas cma_;
};

}  // namespace pinmm
