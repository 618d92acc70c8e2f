// ZONE_DEVICE page maps: the interface core mm uses to reach a device's
// memory.
//
// Linux counterpart: struct dev_pagemap and dev_pagemap_ops
// (include/linux/memremap.h). A ZONE_DEVICE page points at its pagemap
// (page->pgmap, which overlays the LRU links: device pages are never on an
// LRU list). A CPU fault on a device-private entry calls
// ops->migrate_to_ram; the last reference to a device page calls
// ops->page_free. Registration (memremap_pages), the pagemap's live
// reference and its types' rules belong to hmm/.
#pragma once

#include <cstdint>

#include "pinmm/phys/page.h"

namespace pinmm {

struct VmFaultInfo;  // vm/fault.h
struct DevPagemap;

enum MemoryType : uint8_t {
  MEMORY_DEVICE_PRIVATE = 1,
  MEMORY_DEVICE_COHERENT = 2,
  MEMORY_DEVICE_FS_DAX = 3,
  MEMORY_DEVICE_GENERIC = 4,
  MEMORY_DEVICE_PCI_P2PDMA = 5,
};

struct DevPagemapOps {
  // The page's last reference went away.
  void (*page_free)(Page* page);
  // A CPU faulted on a device-private entry (vmf.page is the device page):
  // migrate it back to system RAM. Returns a vm_fault_t (vm/fault.h) value.
  uint32_t (*migrate_to_ram)(VmFaultInfo& vmf);
};

struct DevPagemap {
  MemoryType type = MEMORY_DEVICE_PRIVATE;
  const DevPagemapOps* ops = nullptr;
  const void* owner = nullptr;  // matched by hmm_range_fault and migrate_vma
  void* driver_data = nullptr;
};

// page->pgmap: meaningful only for ZONE_DEVICE pages.
inline DevPagemap* page_pgmap(const Page* page) {
  return reinterpret_cast<DevPagemap*>(
      page_detail::ref(page->lru.prev).load(std::memory_order_acquire));
}
inline void set_page_pgmap(Page* page, DevPagemap* pgmap) {
  page_detail::ref(page->lru.prev)
      .store(reinterpret_cast<ListHead*>(pgmap), std::memory_order_release);
}

}  // namespace pinmm
