#include "pinmm/report/sysfs.h"

#include <fmt/format.h>

namespace pinmm {

std::string sysfs_memory_blocks(const MemoryHotplug& hp) {
  const MemorySystem& ms = hp.ms();
  std::string out = fmt::format("block_size_bytes={:x}\n", ms.block_pages().value() << PAGE_SHIFT);
  for (const MemoryBlock& b : ms.memory_blocks()) {
    if (!b.present) continue;
    // phys_index is the first section number, in hex with 8 digits.
    out += fmt::format("memory{} phys_index={:08x} state={} valid_zones={} node={}\n", b.id,
                       b.start_pfn.value() / ms.section_pages().value(), hp.state_show(b.id),
                       hp.valid_zones(b.id), b.nid);
  }
  return out;
}

std::string sysfs_cma(const CmaAreas& cma) {
  std::string out;
  for (size_t i = 0; i < cma.size(); ++i) {
    const Cma& a = cma.area(i);
    const CmaAreaStats s = a.stats();
    out += fmt::format(
        "cma/{} base_pfn={:#x} count={} used={} largest_free={} alloc_pages_success={} "
        "alloc_pages_fail={} release_pages_success={}\n",
        a.name(), a.base_pfn().value(), a.count(), a.used_pages(), a.largest_free_pages(),
        s.alloc_pages_success, s.alloc_pages_fail, s.release_pages_success);
  }
  return out;
}

}  // namespace pinmm
