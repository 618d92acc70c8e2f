// ZONE_DEVICE memory: registering a device's pages with core mm.
//
// Linux counterpart: memremap_pages / memunmap_pages, get_dev_pagemap /
// put_dev_pagemap and zone_device_page_init (mm/memremap.c). KERNEL-SPEC
// 9.4 is the reference. A driver describes its memory with a DevPagemap
// (phys/memremap.h: type, ops, owner) and memremap_pages gives it a range
// of the machine's device space (MachineConfig::device_space): struct
// pages in node nid's ZONE_DEVICE, pointing at the pagemap. Device-private
// and device-coherent pages start free (refcount 0); the driver hands one
// out with zone_device_page_init (refcount 1, locked, holding a pagemap
// reference) and gets it back through ops->page_free when its last
// reference goes. Other types idle at refcount 1.
//
// The pagemap's live reference: get_dev_pagemap takes one, and fails once
// memunmap_pages has started tearing the pagemap down; memunmap_pages waits
// until every page is free and every lookup put. A pagemap must not be used
// after its reference is dropped, and the driver frees the DevPagemap only
// after memunmap_pages returns.
//
// Device pages have frames in the frame store like RAM, so a simulated
// device can keep its memory's contents there; they are never online
// (pfn_to_online_page is nullptr) and never counted as present or managed.
//
// Thread safety: get_dev_pagemap is lock-free (RCU plus the live reference);
// memremap_pages and memunmap_pages of one pagemap are the driver's to
// serialise.
#pragma once

#include "pinmm/base/errno.h"
#include "pinmm/phys/memory_system.h"
#include "pinmm/phys/memremap.h"

namespace pinmm {

// -EINVAL: nr 0; an unknown type; DEVICE_PRIVATE without ops.page_free,
// ops.migrate_to_ram or an owner; DEVICE_COHERENT without ops.page_free or
// an owner; a node that does not exist. ENOMEM: no room left in the device
// space. On success pgmap->start/nr/nid describe the range.
Result<Pfn> memremap_pages(MemorySystem& ms, DevPagemap* pgmap, int nid, PageCount nr);
// Kills the live reference, waits for every page and lookup to let go, and
// gives the range back.
void memunmap_pages(MemorySystem& ms, DevPagemap* pgmap);

// The pagemap of `pfn` with a live reference, or nullptr (not device
// memory, or being torn down). `cached`, if it covers pfn, is returned as
// is (the caller already holds its reference); otherwise its reference is
// dropped first.
DevPagemap* get_dev_pagemap(MemorySystem& ms, Pfn pfn, DevPagemap* cached = nullptr);
// Drops a reference from get_dev_pagemap (nullptr is fine).
void put_dev_pagemap(DevPagemap* pgmap);

// A free private or coherent device page goes to the driver: refcount 1,
// locked, holding a pagemap reference.
void zone_device_page_init(Page* page);

}  // namespace pinmm
