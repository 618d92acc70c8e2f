// memfd_pin_folios (KERNEL-SPEC 2.6): long-term pins of a memfd's folios
// without any mapping, as udmabuf takes them.
#include <vector>

#include "internal.h"
#include "pinmm/base/task.h"
#include "pinmm/gup/gup.h"
#include "pinmm/gup/pin.h"
#include "pinmm/phys/memory_system.h"
#include "pinmm/phys/pin_owners.h"
#include "pinmm/vm/filemap.h"

namespace pinmm {

namespace {

// One pass over [start_idx, end_idx]: pins each distinct folio once, in
// index order, allocating what is missing, until max_folios. Returns the
// number pinned, or -errno with nothing left pinned.
long pin_folio_range(File& memfd, uint64_t start_idx, uint64_t end_idx, int64_t start,
                     std::span<Folio*> folios, uint64_t* offset) {
  std::vector<Folio*> batch;
  batch.reserve(kFolioBatchSize);
  Folio* allocated = nullptr;  // the reference memfd_alloc_folio returned
  size_t nr = 0;
  while (start_idx <= end_idx && nr < folios.size()) {
    const unsigned found = filemap_get_folios_contig(memfd.mapping(), &start_idx, end_idx, batch);
    if (allocated != nullptr) {
      folio_put(allocated);
      allocated = nullptr;
    }
    uint64_t next_idx = 0;
    for (Folio* folio : batch) {
      if (next_idx != 0 && next_idx != folio->page.index()) continue;
      if (try_grab_folio(folio, 1, FOLL_PIN) != 0) {
        for (Folio* f : batch)
          folio_put(f);
        unpin_folios_untracked(folios.first(nr));
        return -EINVAL;
      }
      if (nr == 0) *offset = static_cast<uint64_t>(start) & (folio_size(folio) - 1);
      folios[nr++] = folio;
      next_idx = folio->page.index() + folio_nr_pages(folio);
      if (nr == folios.size()) break;
    }
    for (Folio* f : batch)
      folio_put(f);
    if (found == 0) {
      Result<Folio*> r = memfd_alloc_folio(memfd, start_idx);
      if (r.ok()) {
        allocated = *r;
      } else if (r.error() != Errno(EEXIST)) {
        unpin_folios_untracked(folios.first(nr));
        return r.error().neg();
      }
    }
  }
  return static_cast<long>(nr);
}

}  // namespace

long memfd_pin_folios(File* memfd, int64_t start, int64_t end, Folio** folios, unsigned max_folios,
                      uint64_t* offset) {
  if (start < 0 || start > end || max_folios == 0) return -EINVAL;
  if (memfd == nullptr) return -EINVAL;
  if (!memfd->is_shmem() && !memfd->is_hugetlbfs()) return -EINVAL;
  if (static_cast<uint64_t>(end) >= memfd->size()) return -EINVAL;

  unsigned pgshift = PAGE_SHIFT;
  if (memfd->is_hugetlbfs()) pgshift += memfd->huge_order();
  const std::span<Folio*> out(folios, max_folios);
  const unsigned scope = memalloc_pin_save();
  long ret = 0;
  long nr = 0;
  do {
    // Indexes of the first page of the huge pages for hugetlbfs.
    const uint64_t start_idx = (static_cast<uint64_t>(start) >> pgshift) << (pgshift - PAGE_SHIFT);
    const uint64_t end_idx = (static_cast<uint64_t>(end) >> pgshift) << (pgshift - PAGE_SHIFT);
    nr = pin_folio_range(*memfd, start_idx, end_idx, start, out, offset);
    if (nr < 0) {
      ret = nr;
      break;
    }
    ret = check_and_migrate_movable_folios(memfd->vm().ms(), out.first(static_cast<size_t>(nr)));
  } while (ret == -EAGAIN);
  memalloc_pin_restore(scope);
  if (ret != 0) return ret;
  memfd->vm().ms().pin_owners().record(std::span<Folio* const>(folios, static_cast<size_t>(nr)),
                                       "memfd_pin_folios", true);
  return nr;
}

}  // namespace pinmm
