// The composition root (machine.h).
#include "pinmm/machine/machine.h"

#include "pinmm/migrate/validate.h"
#include "pinmm/vm/validate.h"

namespace pinmm {

Result<std::unique_ptr<Machine>> Machine::boot(const MachineConfig& config) {
  std::unique_ptr<MemorySystem> ms = TRY(MemorySystem::create(config));
  return std::unique_ptr<Machine>(new Machine(std::move(ms)));
}

Machine::Machine(std::unique_ptr<MemorySystem> ms)
    : ms_(std::move(ms)), vm_(*ms_), hotplug_(*ms_), cma_(*ms_) {}

Machine::~Machine() = default;

int64_t Machine::used_pages() const {
  int64_t managed = 0;
  for (int nid = 0; nid < ms_->nr_nodes(); ++nid) {
    for (ZoneType t : {ZONE_NORMAL, ZONE_MOVABLE})
      managed += static_cast<int64_t>(ms_->zone(nid, t).managed_pages());
  }
  const VmStat v = ms_->vmstat();
  return managed - v[NR_FREE_PAGES] - v[NR_MEMMAP_PAGES];
}

ValidationReport Machine::validate() {
  ValidationReport r = validate_vm(vm_);  // phys's validate() too
  r.merge(validate_migrate(*ms_, /*quiescent=*/true));
  r.merge(hotplug_.validate());
  r.merge(cma_.validate());
  return r;
}

}  // namespace pinmm
