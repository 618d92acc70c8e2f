#include "pinmm/migrate/move_pages.h"

#include <cerrno>

#include "pinmm/migrate/migrate.h"
#include "pinmm/migrate/target.h"
#include "pinmm/phys/lru.h"
#include "pinmm/phys/memory_system.h"
#include "pinmm/vm/fault.h"
#include "pinmm/vm/mm.h"
#include "pinmm/vm/rmap.h"
#include "pinmm/vm/walk.h"

namespace pinmm {

namespace {

// vma_migratable: no PFN maps and no I/O mappings.
bool vma_migratable(const Vma* vma) { return !any(vma->vm_flags & (VM_IO | VM_PFNMAP)); }

bool folio_likely_mapped_shared(const Folio* folio) {
  const int mapcount = folio_mapcount(folio);
  if (!folio_test_large(folio) || folio_test_hugetlb(folio)) return mapcount > 1;
  if (mapcount <= 1) return false;
  if (folio_entire_mapcount(folio) > 0 || static_cast<uint64_t>(mapcount) > folio_nr_pages(folio))
    return true;
  return folio->page.mapcount() > 1;
}

// Calls fn(folio) with the entry mapping addr locked (folio_walk with
// FW_ZEROPAGE: the zero page is reported too). Returns fn's result, or
// -ENOENT if nothing is mapped there.
template <typename Fn>
int with_folio_at(Vma* vma, VirtAddr addr, Fn&& fn) {
  Mm& mm = vma->vm_mm();
  MemorySystem& ms = mm.ms();
  pmd_t* pmd = pmd_offset(mm, addr);
  if (pmd == nullptr) {
    // No PMD table: nothing, or a 1 GiB leaf at the PUD level.
    pud_t* pud = pud_offset(mm, addr);
    if (pud == nullptr) return -ENOENT;
    SpinLock& ptl = pud_lockptr(mm, pud);
    ptl_lock(&ptl);
    const pud_t v = pudp_get(pud);
    const int rc = pud_leaf(v) ? fn(page_folio(ms.pfn_to_page(pud_pfn(v)))) : -ENOENT;
    ptl_unlock(&ptl);
    return rc;
  }
  if (pmd_leaf(pmdp_get(pmd))) {
    SpinLock& ptl = pmd_lockptr(mm, pmd);
    ptl_lock(&ptl);
    const pmd_t v = pmdp_get(pmd);
    int rc = -ENOENT;
    if (pmd_leaf(v)) rc = fn(page_folio(ms.pfn_to_page(pmd_pfn(v))));
    ptl_unlock(&ptl);
    if (pmd_leaf(v) || !pmd_present(pmdp_get(pmd))) return rc;
  }
  LockedPte lp = pte_offset_map_lock(mm, pmd, addr);
  if (!lp) return -ENOENT;
  const pte_t pte = ptep_get(lp.pte);
  int rc = -ENOENT;
  if (pte_present(pte) && ms.is_zero_pfn(pte_pfn(pte))) {
    rc = fn(page_folio(ms.zero_page()));
  } else if (pte_present(pte) && !pte_special(pte) && ms.pfn_valid(pte_pfn(pte))) {
    rc = fn(page_folio(ms.pfn_to_page(pte_pfn(pte))));
  }
  pte_unmap_unlock(lp);
  return rc;
}

// __add_folio_for_migration: 1 if queued, 0 if already on `node`, or the
// page's status errno.
int __add_folio_for_migration(Folio* folio, int node, ListHead* pagelist, bool migrate_all) {
  MemorySystem& ms = page_memory_system(&folio->page);
  if (is_zero_folio(folio) || ms.is_zero_pfn(folio_pfn(folio))) return -EFAULT;
  if (folio_zone(folio)->type() == ZONE_DEVICE) return -ENOENT;
  if (folio_nid(folio) == node) return 0;
  if (folio_likely_mapped_shared(folio) && !migrate_all) return -EACCES;
  // The locked entry's mapping holds a reference: isolation may take one.
  if (isolate_folio_to_list(folio, pagelist)) {
    // isolate_folio_to_list adds at the head; keep the caller's order.
    list_move_tail(&folio->page.lru, pagelist);
    return 1;
  }
  return -EBUSY;
}

int __add_folio_for_migration(Mm& mm, VirtAddr addr, int node, ListHead* pagelist,
                              bool migrate_all) {
  ReadGuard g(mm.mmap_lock);
  Vma* vma = mm.vma_lookup(addr);
  if (vma == nullptr || !vma_migratable(vma)) return -EFAULT;
  return with_folio_at(vma, addr, [&](Folio* folio) {
    if (mm.vm().is_huge_zero_folio(folio)) return -EFAULT;
    return __add_folio_for_migration(folio, node, pagelist, migrate_all);
  });
}

// do_move_pages_to_node: 0, the number of folios not migrated, or -ENOMEM.
int do_move_pages_to_node(MemorySystem& ms, ListHead* pagelist, int node) {
  MigrationTargetControl mtc;
  mtc.nid = node;
  mtc.gfp_mask = GFP_HIGHUSER_MOVABLE | __GFP_THISNODE;
  mtc.reason = MR_SYSCALL;
  const int err = migrate_pages(ms, pagelist, migration_target(ms, mtc), MIGRATE_SYNC, MR_SYSCALL);
  if (err != 0) putback_movable_pages(pagelist);
  return err;
}

void store_status(std::span<int> status, size_t start, int value, size_t nr) {
  for (size_t i = start; i < start + nr; ++i)
    status[i] = value;
}

long move_pages_and_store_status(MemorySystem& ms, int node, ListHead* pagelist,
                                 std::span<int> status, size_t start, size_t i, size_t nr_pages) {
  if (list_empty(pagelist)) return 0;
  long err = do_move_pages_to_node(ms, pagelist, node);
  if (err != 0) {
    if (err > 0) err += static_cast<long>(nr_pages - i);
    return err;
  }
  store_status(status, start, node, i - start);
  return 0;
}

// do_pages_stat: each page's node, or its errno.
void do_pages_stat_array(Mm& mm, std::span<const VirtAddr> pages, std::span<int> status) {
  ReadGuard g(mm.mmap_lock);
  for (size_t i = 0; i < pages.size(); ++i) {
    Vma* vma = mm.vma_lookup(pages[i]);
    if (vma == nullptr) {
      status[i] = -EFAULT;
      continue;
    }
    status[i] = with_folio_at(vma, pages[i], [&](Folio* folio) {
      if (is_zero_folio(folio) || mm.ms().is_zero_pfn(folio_pfn(folio)) ||
          mm.vm().is_huge_zero_folio(folio))
        return -EFAULT;
      if (folio_zone(folio)->type() == ZONE_DEVICE) return -ENOENT;
      return folio_nid(folio);
    });
  }
}

}  // namespace

Result<long> move_pages(Mm& mm, std::span<const VirtAddr> pages, std::span<const int> nodes,
                        std::span<int> status, int flags) {
  if (flags & ~(MPOL_MF_MOVE | MPOL_MF_MOVE_ALL)) return Errno(EINVAL);
  if (status.size() < pages.size() || (!nodes.empty() && nodes.size() < pages.size()))
    return Errno(EFAULT);
  if (nodes.empty()) {
    do_pages_stat_array(mm, pages, status);
    return 0L;
  }
  MemorySystem& ms = mm.ms();
  ListHead pagelist;
  init_list_head(&pagelist);
  lru_cache_disable(ms);
  const size_t nr_pages = pages.size();
  int current_node = NUMA_NO_NODE;
  size_t start = 0;
  size_t i = 0;
  long err = 0;
  bool flush = true;
  for (; i < nr_pages; ++i) {
    const int node = nodes[i];
    if (node < 0 || node >= ms.nr_nodes() || ms.node(node).node_present_pages() == 0) {
      err = -ENODEV;
      break;
    }
    if (current_node == NUMA_NO_NODE) {
      current_node = node;
      start = i;
    } else if (node != current_node) {
      err = move_pages_and_store_status(ms, current_node, &pagelist, status, start, i, nr_pages);
      if (err != 0) {
        flush = false;
        break;
      }
      start = i;
      current_node = node;
    }
    int rc =
        __add_folio_for_migration(mm, pages[i], current_node, &pagelist, flags & MPOL_MF_MOVE_ALL);
    if (rc > 0) continue;  // queued; its status comes with the move
    if (rc == -EEXIST) rc = -EFAULT;
    status[i] = rc != 0 ? rc : current_node;
    // Flush what is queued so that the statuses stay in order.
    err = move_pages_and_store_status(ms, current_node, &pagelist, status, start, i, nr_pages);
    if (err != 0) {
      if (err > 0) --err;  // this page was not queued
      flush = false;
      break;
    }
    current_node = NUMA_NO_NODE;
  }
  if (flush) {
    const long err1 =
        move_pages_and_store_status(ms, current_node, &pagelist, status, start, i, nr_pages);
    if (err >= 0) err = err1;
  }
  lru_cache_enable(ms);
  if (err < 0) return Errno(static_cast<int>(-err));
  return err;
}

}  // namespace pinmm
