#include "pinmm/hmm/memremap.h"

#include <cstring>

#include "pinmm/base/rcu.h"
#include "pinmm/phys/folio_lock.h"

namespace pinmm {

namespace {

// The rules of memremap_pages for each type (KERNEL-SPEC 9.4).
bool pgmap_valid(const DevPagemap* pgmap) {
  switch (pgmap->type) {
    case MEMORY_DEVICE_PRIVATE:
      return pgmap->ops != nullptr && pgmap->ops->page_free != nullptr &&
             pgmap->ops->migrate_to_ram != nullptr && pgmap->owner != nullptr;
    case MEMORY_DEVICE_COHERENT:
      return pgmap->ops != nullptr && pgmap->ops->page_free != nullptr && pgmap->owner != nullptr;
    case MEMORY_DEVICE_FS_DAX:
    case MEMORY_DEVICE_GENERIC:
    case MEMORY_DEVICE_PCI_P2PDMA:
      return true;
  }
  return false;  // the kernel WARNs: an invalid type
}

bool starts_free(MemoryType type) {
  return type == MEMORY_DEVICE_PRIVATE || type == MEMORY_DEVICE_COHERENT;
}

}  // namespace

Result<Pfn> memremap_pages(MemorySystem& ms, DevPagemap* pgmap, int nid, PageCount nr) {
  if (pgmap == nullptr || nr.value() == 0 || !pgmap_valid(pgmap)) return Errno(EINVAL);
  if (nid < 0 || nid >= ms.nr_nodes()) return Errno(EINVAL);
  const Pfn start = TRY(ms.reserve_device_range(nid, nr));
  pgmap->start = start;
  pgmap->nr = nr;
  pgmap->nid = nid;
  // memmap_init_zone_device: each page points at its pagemap.
  for (Pfn pfn = start; pfn < start + nr; ++pfn) {
    Page* page = ms.pfn_to_page(pfn);
    set_page_pgmap(page, pgmap);
    folio_set_count(reinterpret_cast<Folio*>(page), starts_free(pgmap->type) ? 0 : 1);
  }
  return start;
}

void memunmap_pages(MemorySystem& ms, DevPagemap* pgmap) {
  pgmap->ref.kill_and_wait();
  for (Pfn pfn = pgmap->start; pfn < pgmap->start + pgmap->nr; ++pfn) {
    Page* page = ms.pfn_to_page(pfn);
    MM_BUG_ON(starts_free(pgmap->type) && page->refcount() != 0, page);  // a page still in use
    set_page_pgmap(page, nullptr);
  }
  ms.release_device_range(pgmap->start, pgmap->nr);
  // Lookups that read the page's pagemap pointer before it was cleared are
  // inside an RCU read section: let them finish before the driver frees it.
  rcu::synchronize();
}

DevPagemap* get_dev_pagemap(MemorySystem& ms, Pfn pfn, DevPagemap* cached) {
  // Only the first (only) range of the cached pagemap is compared.
  if (cached != nullptr && cached->contains(pfn)) return cached;
  put_dev_pagemap(cached);
  if (pfn < ms.device_start_pfn() || !ms.pfn_valid(pfn)) return nullptr;
  rcu::ReadSection rs;
  DevPagemap* pgmap = page_pgmap(ms.pfn_to_page(pfn));
  if (pgmap == nullptr || !pgmap->ref.tryget_live()) return nullptr;
  return pgmap;
}

void put_dev_pagemap(DevPagemap* pgmap) {
  if (pgmap != nullptr) pgmap->ref.put();
}

void zone_device_page_init(Page* page) {
  DevPagemap* pgmap = page_pgmap(page);
  MM_BUG_ON(pgmap == nullptr || !starts_free(pgmap->type), page);
  // The kernel WARNs if the pagemap is being torn down. The page still
  // takes its reference (and holds up memunmap_pages until it is freed),
  // so the put on its free stays balanced.
  if (MM_WARN_ON_ONCE(!pgmap->ref.tryget_live())) pgmap->ref.get();
  MM_BUG_ON(page->refcount() != 0, page);
  folio_set_count(reinterpret_cast<Folio*>(page), 1);
  MM_BUG_ON(!folio_trylock(page_folio(page)), page);
}

}  // namespace pinmm
