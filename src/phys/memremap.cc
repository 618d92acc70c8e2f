#include "pinmm/phys/memremap.h"

#include "pinmm/phys/zone.h"

namespace pinmm {

void PgmapRef::put() {
  if (count_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    // The last reference of a killed pagemap: wake the teardown.
    MutexGuard g(lock_);
    zero_.notify_all();
  }
}

void PgmapRef::kill_and_wait() {
  dying_.store(true, std::memory_order_release);
  put();  // the registration's reference
  MutexGuard g(lock_);
  while (count_.load(std::memory_order_acquire) != 0)
    zero_.wait(lock_);
}

bool is_zone_device_page(const Page* page) {
  const Zone* z = page->zone();
  return z != nullptr && z->type() == ZONE_DEVICE;
}

void free_zone_device_folio(Folio* folio) {
  Page* page = &folio->page;
  DevPagemap* pgmap = page_pgmap(page);
  MM_BUG_ON(pgmap == nullptr, folio);
  page->clear(PG_anon_exclusive);
  page->set_mapping(0);
  if (pgmap->ops != nullptr && pgmap->ops->page_free != nullptr) pgmap->ops->page_free(page);
  if (pgmap->type == MEMORY_DEVICE_PRIVATE || pgmap->type == MEMORY_DEVICE_COHERENT) {
    pgmap->ref.put();  // the page is free again (refcount 0), the driver's
    return;
  }
  // Other types are idle at refcount 1.
  folio_set_count(folio, 1);
}

}  // namespace pinmm
