// Allocating a memfd's missing folios outside any mapping (mm/memfd.c).
#include "internal.h"
#include "pinmm/phys/folio_lock.h"
#include "pinmm/phys/memory_system.h"
#include "pinmm/vm/filemap.h"

namespace pinmm {

Result<Folio*> memfd_alloc_folio(File& memfd, uint64_t index) {
  if (memfd.is_hugetlbfs()) {
    Folio* folio = alloc_hugetlb_folio_for_file(memfd);
    if (folio == nullptr) return Errno(ENOMEM);
    MemorySystem& ms = memfd.vm().ms();
    ms.frames().zero(folio_pfn(folio), PageCount(folio_nr_pages(folio)));
    folio_set_uptodate(folio);
    folio_lock(folio);
    const uint64_t aligned = index & ~((uint64_t{1} << memfd.huge_order()) - 1);
    const Result<void> added = filemap_add_folio(memfd.mapping(), folio, aligned);
    folio_unlock(folio);
    if (!added.ok()) {
      folio_put(folio);
      return added.error();
    }
    return folio;
  }
  if (!memfd.is_shmem()) return Errno(EINVAL);
  // shmem_read_folio: found or created, returned unlocked with a reference.
  const GetFolioResult r = filemap_get_or_create_locked(memfd, index, GFP_HIGHUSER_MOVABLE);
  if (r.folio == nullptr) return Errno(r.error == VM_FAULT_SIGBUS ? EINVAL : ENOMEM);
  folio_unlock(r.folio);
  return r.folio;
}

}  // namespace pinmm
