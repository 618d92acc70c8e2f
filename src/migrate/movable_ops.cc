#include "pinmm/migrate/movable_ops.h"

#include "pinmm/phys/folio_lock.h"

namespace pinmm {

void set_page_movable(Page* page, MovableOperations* ops) {
  page->set_mapping(reinterpret_cast<uintptr_t>(ops) | PAGE_MAPPING_MOVABLE);
}

void clear_page_movable(Page* page) {
  // Keeps the flag: a racing isolation sees a movable page whose driver
  // has let go of it, as in the kernel.
  page->set_mapping(PAGE_MAPPING_MOVABLE);
}

MovableOperations* page_movable_ops(const Page* page) {
  const uintptr_t m = page->mapping();
  if ((m & PAGE_MAPPING_FLAGS) != PAGE_MAPPING_MOVABLE) return nullptr;
  return reinterpret_cast<MovableOperations*>(m & ~PAGE_MAPPING_FLAGS);
}

bool isolate_movable_page(Page* page) {
  Folio* folio = page_folio(page);
  // The page may be freed under us: only a live one is worth a reference.
  if (!folio_try_get(folio)) return false;
  bool isolated = false;
  if (!PageSlab(page) && __folio_test_movable(folio) && folio_trylock(folio)) {
    MovableOperations* ops = page_movable_ops(page);
    if (ops != nullptr && !folio_test_isolated(folio) && ops->isolate_page(page)) {
      folio_set_isolated(folio);
      isolated = true;
    }
    folio_unlock(folio);
  }
  if (!isolated) folio_put(folio);
  return isolated;
}

}  // namespace pinmm
