// sysfs views of memory hotplug and CMA, as text.
//
// Linux counterpart: /sys/devices/system/memory/memoryN/{state,valid_zones,
// phys_index,removable} and block_size_bytes (drivers/base/memory.c), and
// /sys/kernel/mm/cma/<name>/{alloc_pages_success,alloc_pages_fail,
// release_pages_success} (mm/cma_sysfs.c). One line per memory block or
// area, "file=value" pairs in the kernel's value formats.
#pragma once

#include <string>

#include "pinmm/cma/cma.h"
#include "pinmm/hotplug/memory_hotplug.h"

namespace pinmm {

// block_size_bytes, then per present block:
//   memory0 phys_index=00000000 state=online valid_zones=Normal node=0
std::string sysfs_memory_blocks(const MemoryHotplug& hp);
// Per area: cma/reserved count=65536 used=0 alloc_pages_success=0 …
std::string sysfs_cma(const CmaAreas& cma);

}  // namespace pinmm
