// ZONE_DEVICE page maps: the interface core mm uses to reach a device's
// memory.
//
// Linux counterpart: struct dev_pagemap and dev_pagemap_ops
// (include/linux/memremap.h). A ZONE_DEVICE page points at its pagemap
// (page->pgmap, which overlays the LRU links: device pages are never on an
// LRU list). A CPU fault on a device-private entry calls
// ops->migrate_to_ram; the last reference to a device page calls
// ops->page_free. The pagemap's live reference is here, since freeing a
// device page drops it; registration (memremap_pages), lookup
// (get_dev_pagemap) and the types' rules are in hmm/memremap.h.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>

#include "pinmm/base/locks.h"
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

// The pagemap's percpu_ref, as one counter: the registration holds the
// first reference; every device page handed out (zone_device_page_init)
// and every get_dev_pagemap holds one more. Killing it (memunmap_pages)
// makes tryget_live fail; the teardown then waits for the count to drop to
// zero (every page freed, every lookup put).
//
// Thread safety: lock-free gets and puts (acq_rel); kill and the wait use a
// mutex and condition variable.
class PgmapRef {
 public:
  // percpu_ref_tryget_live: false once killed.
  bool tryget_live() {
    if (dying_.load(std::memory_order_acquire)) return false;
    count_.fetch_add(1, std::memory_order_acq_rel);
    // A kill that raced with us: undo, the pagemap is going away.
    if (dying_.load(std::memory_order_acquire)) {
      put();
      return false;
    }
    return true;
  }
  // percpu_ref_get: the caller already holds a reference.
  void get() { count_.fetch_add(1, std::memory_order_acq_rel); }
  void put();
  // percpu_ref_kill + drop the initial reference; then wait for zero.
  void kill_and_wait();
  bool dying() const { return dying_.load(std::memory_order_acquire); }
  int64_t count() const { return count_.load(std::memory_order_acquire); }

 private:
  std::atomic<int64_t> count_{1};
  std::atomic<bool> dying_{false};
  Mutex lock_{LockRank::kLeaf};  // orders put()'s wake-up with kill_and_wait()'s check
  std::condition_variable_any zero_;
};

struct DevPagemap {
  MemoryType type = MEMORY_DEVICE_PRIVATE;
  const DevPagemapOps* ops = nullptr;
  const void* owner = nullptr;  // matched by hmm_range_fault and migrate_vma
  void* driver_data = nullptr;
  // The physical range memremap_pages gave it (one range: nr_range 1).
  Pfn start;
  PageCount nr;
  int nid = 0;
  PgmapRef ref;
  bool contains(Pfn pfn) const { return pfn >= start && pfn < start + nr; }
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

bool is_zone_device_page(const Page* page);
inline bool is_device_private_page(const Page* page) {
  return is_zone_device_page(page) && page_pgmap(page)->type == MEMORY_DEVICE_PRIVATE;
}
inline bool is_device_coherent_page(const Page* page) {
  return is_zone_device_page(page) && page_pgmap(page)->type == MEMORY_DEVICE_COHERENT;
}

// free_zone_device_folio: the last reference to a ZONE_DEVICE folio went
// (folio_put calls this): anonymous exclusivity and the mapping go, the
// driver's page_free runs, and a private or coherent page drops its
// pagemap reference (it is free again, refcount 0, until the driver hands
// it out); other types return to refcount 1.
void free_zone_device_folio(Folio* folio);

}  // namespace pinmm
