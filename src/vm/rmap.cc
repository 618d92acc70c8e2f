#include "pinmm/vm/rmap.h"

#include <algorithm>
#include <atomic>

#include "pinmm/base/rcu.h"
#include "pinmm/phys/hugetlb.h"
#include "pinmm/vm/filemap.h"
#include "pinmm/vm/walk.h"

namespace pinmm {

// ---- AnonVma ----

AnonVma* AnonVma::create() { return new AnonVma(); }

void AnonVma::put() {
  if (refcount_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    // Folios may still point at us until they are unmapped and freed; readers
    // look us up under RCU, so free after a grace period.
    rcu::call([this] { delete this; });
  }
}

bool AnonVma::try_get() {
  int r = refcount_.load(std::memory_order_relaxed);
  do {
    if (r == 0) return false;
  } while (!refcount_.compare_exchange_weak(r, r + 1, std::memory_order_acquire,
                                            std::memory_order_relaxed));
  return true;
}

// Thread safety: faults call this under the mmap read lock, so the
// VMA's anon_vma may be installed by a racing fault at any time. The install
// is a release store under mm->page_table_lock; the lockless first check is
// an acquire load that pairs with it (the kernel's unlocked read of
// vma->anon_vma), so a fault that sees the family also sees it linked.
// Everyone else reads the field under the mmap write lock, or after their
// own anon_vma_prepare.
Result<void> anon_vma_prepare(Vma* vma) {
  std::atomic_ref<AnonVma*> installed(vma->anon_vma);
  if (installed.load(std::memory_order_acquire) != nullptr) return {};
  Mm& mm = vma->vm_mm();
  AnonVma* av = AnonVma::create();  // its first reference is the VMA's
  mm.ms().injector().maybe_delay(inject_point_vm::kAnonVmaPrepare);
  bool won = false;
  {
    WriteGuard g(av->rwsem);
    SpinGuard pt(mm.page_table_lock);
    if (installed.load(std::memory_order_relaxed) == nullptr) {
      av->vmas.push_back(vma);
      installed.store(av, std::memory_order_release);
      won = true;
    }
  }
  if (!won) av->put();  // a racing fault installed its family first
  return {};
}

void anon_vma_clone(Vma* child, const Vma* src) {
  AnonVma* av = src->anon_vma;
  if (av == nullptr) return;
  av->get();
  {
    WriteGuard g(av->rwsem);
    av->vmas.push_back(child);
  }
  child->anon_vma = av;
}

void unlink_anon_vmas(Vma* vma) {
  AnonVma* av = vma->anon_vma;
  if (av == nullptr) return;
  {
    WriteGuard g(av->rwsem);
    av->vmas.erase(std::remove(av->vmas.begin(), av->vmas.end(), vma), av->vmas.end());
  }
  vma->anon_vma = nullptr;
  av->put();
}

AnonVma* folio_anon_vma(const Folio* folio) {
  const uintptr_t m = folio->page.mapping();
  if ((m & PAGE_MAPPING_FLAGS) != PAGE_MAPPING_ANON) return nullptr;
  return reinterpret_cast<AnonVma*>(m - PAGE_MAPPING_ANON);
}

// ---- mapcounts ----
//
// Thread safety: mappings of one folio may come and go under different
// page-table locks (different mms). Increments are relaxed; decrements are
// releases and readers load with acquire, so a thread that sees itself as
// the last mapper (COW reuse) also sees everything the others did before
// they unmapped (e.g. copying the page).

namespace {

std::atomic_ref<int32_t> mapcount_ref(Page* p) { return page_detail::ref(p->mapcount_); }
std::atomic_ref<int32_t> entire_ref(Folio* f) {
  return page_detail::ref(folio_page(f, 1)->entire_mapcount_);
}
std::atomic_ref<int32_t> large_ref(Folio* f) {
  return page_detail::ref(folio_page(f, 1)->large_mapcount_);
}
std::atomic_ref<int32_t> nr_mapped_ref(Folio* f) {
  return page_detail::ref(folio_page(f, 1)->nr_pages_mapped_);
}

// page[1]'s "partially mapped" mark (the kernel's PG_partially_mapped):
// set once a PMD-sized anon folio loses part of its mappings.
constexpr unsigned kPartiallyMappedBit = PG_reclaim;

bool folio_is_pmd_mappable(const Folio* f) { return folio_order(f) >= HPAGE_PMD_ORDER; }

void mod_mapped_stat(Folio* folio, int64_t nr) {
  if (nr == 0) return;
  MemorySystem& ms = page_memory_system(&folio->page);
  const NodeStatItem item = folio_test_anon(folio) ? NR_ANON_MAPPED : NR_FILE_MAPPED;
  ms.node(folio_nid(folio)).stats().add(item, nr);
}

void mod_pmd_stat(Folio* folio, int64_t nr) {
  MemorySystem& ms = page_memory_system(&folio->page);
  NodeStatItem item = NR_ANON_THPS;
  if (!folio_test_anon(folio))
    item = folio_test_swapbacked(folio) ? NR_SHMEM_PMDMAPPED : NR_FILE_PMDMAPPED;
  ms.node(folio_nid(folio)).stats().add(item, nr);
}

// Adds `nr` PTE mappings of consecutive pages; returns how many pages went
// from unmapped to mapped.
int add_rmap_ptes(Folio* folio, Page* page, int nr) {
  int first = 0;
  const bool large = folio_test_large(folio);
  const bool entire = large && entire_ref(folio).load(std::memory_order_relaxed) > 0;
  for (int i = 0; i < nr; ++i) {
    if (mapcount_ref(page + i).fetch_add(1, std::memory_order_relaxed) == 0) {
      if (large) nr_mapped_ref(folio).fetch_add(1, std::memory_order_relaxed);
      if (!entire) ++first;
    }
  }
  if (large) large_ref(folio).fetch_add(nr, std::memory_order_relaxed);
  return first;
}

int remove_rmap_ptes(Folio* folio, Page* page, int nr) {
  int last = 0;
  const bool large = folio_test_large(folio);
  const bool entire = large && entire_ref(folio).load(std::memory_order_relaxed) > 0;
  for (int i = 0; i < nr; ++i) {
    const int old = mapcount_ref(page + i).fetch_sub(1, std::memory_order_release);
    MM_BUG_ON(old <= 0, page + i);
    if (old == 1) {
      if (large) nr_mapped_ref(folio).fetch_sub(1, std::memory_order_relaxed);
      if (!entire) ++last;
    }
  }
  if (large) large_ref(folio).fetch_sub(nr, std::memory_order_release);
  return last;
}

// Adds a PMD (or PUD) mapping of the whole folio; returns the pages that
// became mapped.
int add_rmap_entire(Folio* folio) {
  large_ref(folio).fetch_add(1, std::memory_order_relaxed);
  if (entire_ref(folio).fetch_add(1, std::memory_order_relaxed) != 0) return 0;
  return static_cast<int>(folio_nr_pages(folio)) -
         nr_mapped_ref(folio).load(std::memory_order_relaxed);
}

int remove_rmap_entire(Folio* folio) {
  large_ref(folio).fetch_sub(1, std::memory_order_release);
  const int old = entire_ref(folio).fetch_sub(1, std::memory_order_release);
  MM_BUG_ON(old <= 0, folio);
  if (old != 1) return 0;
  return static_cast<int>(folio_nr_pages(folio)) -
         nr_mapped_ref(folio).load(std::memory_order_relaxed);
}

void set_anon(Folio* folio, Vma* vma, VirtAddr addr) {
  MM_BUG_ON(vma->anon_vma == nullptr, folio);
  folio->page.set_index(linear_page_index(vma, addr));
  folio->page.set_mapping(reinterpret_cast<uintptr_t>(vma->anon_vma) | PAGE_MAPPING_ANON);
}

// A PMD-sized anon folio mapped only partly is queued for a deferred split
// (which pinmm does not perform; the event is counted once).
void maybe_deferred_split(Folio* folio) {
  if (!folio_test_anon(folio) || !folio_is_pmd_mappable(folio)) return;
  if (entire_ref(folio).load(std::memory_order_relaxed) != 0) return;
  const int mapped = nr_mapped_ref(folio).load(std::memory_order_relaxed);
  if (mapped == 0 || mapped == static_cast<int>(folio_nr_pages(folio))) return;
  if (!folio_page(folio, 1)->test_and_set(kPartiallyMappedBit)) {
    page_memory_system(&folio->page).events().inc(THP_DEFERRED_SPLIT_PAGE);
  }
}

}  // namespace

bool folio_test_partially_mapped(const Folio* folio) {
  return folio_test_large(folio) && folio_page(folio, 1)->test(kPartiallyMappedBit);
}

void folio_add_new_anon_rmap(Folio* folio, Vma* vma, VirtAddr addr, RmapFlags flags) {
  const bool exclusive = flags & RMAP_EXCLUSIVE;
  folio_set_swapbacked(folio);
  set_anon(folio, vma, addr);
  int nr;
  if (!folio_test_large(folio)) {
    mapcount_ref(&folio->page).store(1, std::memory_order_relaxed);
    if (exclusive) folio->page.set(PG_anon_exclusive);
    nr = 1;
  } else if (!folio_is_pmd_mappable(folio)) {
    nr = static_cast<int>(folio_nr_pages(folio));
    for (int i = 0; i < nr; ++i) {
      mapcount_ref(folio_page(folio, i)).store(1, std::memory_order_relaxed);
      if (exclusive) folio_page(folio, i)->set(PG_anon_exclusive);
    }
    large_ref(folio).store(nr, std::memory_order_relaxed);
    nr_mapped_ref(folio).store(nr, std::memory_order_relaxed);
  } else {
    // A PMD-sized folio is mapped by a PMD: the whole folio once.
    entire_ref(folio).store(1, std::memory_order_relaxed);
    large_ref(folio).store(1, std::memory_order_relaxed);
    if (exclusive) folio->page.set(PG_anon_exclusive);
    nr = static_cast<int>(folio_nr_pages(folio));
    mod_pmd_stat(folio, nr);
  }
  mod_mapped_stat(folio, nr);
}

void folio_add_anon_rmap_ptes(Folio* folio, Page* page, int nr, Vma* vma, VirtAddr addr,
                              RmapFlags flags) {
  (void)vma;
  (void)addr;
  MM_DCHECK(folio_test_anon(folio), folio);
  mod_mapped_stat(folio, add_rmap_ptes(folio, page, nr));
  if (flags & RMAP_EXCLUSIVE) {
    for (int i = 0; i < nr; ++i)
      page[i].set(PG_anon_exclusive);
  }
}

void folio_add_anon_rmap_pmd(Folio* folio, Page* page, Vma* vma, VirtAddr addr, RmapFlags flags) {
  (void)vma;
  (void)addr;
  MM_DCHECK(folio_test_anon(folio) && page == &folio->page, folio);
  const int first = add_rmap_entire(folio);
  if (entire_ref(folio).load(std::memory_order_relaxed) == 1)
    mod_pmd_stat(folio, static_cast<int64_t>(folio_nr_pages(folio)));
  mod_mapped_stat(folio, first);
  if (flags & RMAP_EXCLUSIVE) page->set(PG_anon_exclusive);
}

void folio_add_file_rmap_ptes(Folio* folio, Page* page, int nr, Vma* vma) {
  (void)vma;
  mod_mapped_stat(folio, add_rmap_ptes(folio, page, nr));
}

void folio_add_file_rmap_pmd(Folio* folio, Page* page, Vma* vma) {
  (void)vma;
  (void)page;
  const int first = add_rmap_entire(folio);
  if (entire_ref(folio).load(std::memory_order_relaxed) == 1)
    mod_pmd_stat(folio, static_cast<int64_t>(folio_nr_pages(folio)));
  mod_mapped_stat(folio, first);
}

void folio_remove_rmap_ptes(Folio* folio, Page* page, int nr, Vma* vma) {
  (void)vma;
  mod_mapped_stat(folio, -remove_rmap_ptes(folio, page, nr));
  if (folio_test_large(folio)) maybe_deferred_split(folio);
}

void folio_remove_rmap_pmd(Folio* folio, Page* page, Vma* vma) {
  (void)vma;
  (void)page;
  const int last = remove_rmap_entire(folio);
  if (entire_ref(folio).load(std::memory_order_relaxed) == 0)
    mod_pmd_stat(folio, -static_cast<int64_t>(folio_nr_pages(folio)));
  mod_mapped_stat(folio, -last);
  maybe_deferred_split(folio);
}

void hugetlb_add_new_anon_rmap(Folio* folio, Vma* vma, VirtAddr addr) {
  set_anon(folio, vma, addr);
  folio_set_hugetlb_migratable(folio);
  entire_ref(folio).store(1, std::memory_order_relaxed);
  large_ref(folio).store(1, std::memory_order_relaxed);
  folio->page.set(PG_anon_exclusive);
}

void hugetlb_add_anon_rmap(Folio* folio, Vma* vma, VirtAddr addr, RmapFlags flags) {
  (void)vma;
  (void)addr;
  entire_ref(folio).fetch_add(1, std::memory_order_relaxed);
  large_ref(folio).fetch_add(1, std::memory_order_relaxed);
  if (flags & RMAP_EXCLUSIVE) folio->page.set(PG_anon_exclusive);
}

void hugetlb_add_file_rmap(Folio* folio) {
  entire_ref(folio).fetch_add(1, std::memory_order_relaxed);
  large_ref(folio).fetch_add(1, std::memory_order_relaxed);
}

void hugetlb_remove_rmap(Folio* folio) {
  MM_BUG_ON(entire_ref(folio).fetch_sub(1, std::memory_order_release) <= 0, folio);
  large_ref(folio).fetch_sub(1, std::memory_order_release);
}

bool folio_needs_cow_for_dma(const Vma* vma, const Folio* folio) {
  if (!vma->vm_mm().test_flag(MMF_HAS_PINNED)) return false;
  return folio_maybe_dma_pinned(folio);
}

int folio_try_dup_anon_rmap_ptes(Folio* folio, Page* page, int nr, Vma* src_vma) {
  // A folio the parent may have pinned must not be shared with the child:
  // the caller copies the page for the child instead.
  const bool maybe_pinned = folio_needs_cow_for_dma(src_vma, folio);
  if (maybe_pinned) {
    for (int i = 0; i < nr; ++i) {
      if (PageAnonExclusive(page + i)) return -EBUSY;
    }
  }
  for (int i = 0; i < nr; ++i)
    page[i].clear(PG_anon_exclusive);
  mod_mapped_stat(folio, add_rmap_ptes(folio, page, nr));
  return 0;
}

int folio_try_dup_anon_rmap_pmd(Folio* folio, Page* page, Vma* src_vma) {
  if (PageAnonExclusive(page)) {
    if (folio_needs_cow_for_dma(src_vma, folio)) return -EBUSY;
    page->clear(PG_anon_exclusive);
  }
  add_rmap_entire(folio);  // already mapped: no page becomes newly mapped
  return 0;
}

void folio_dup_file_rmap_ptes(Folio* folio, Page* page, int nr) {
  mod_mapped_stat(folio, add_rmap_ptes(folio, page, nr));
}

int folio_try_share_anon_rmap_pte(Folio* folio, Page* page) {
  // The entry was cleared and flushed. The full barrier pairs with the one
  // GUP-fast issues after raising the pin count (KERNEL-SPEC 3.4, 3.6):
  // either GUP sees the cleared entry and backs off, or we see its pin.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (folio_maybe_dma_pinned(folio)) return -EBUSY;
  page->clear(PG_anon_exclusive);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return 0;
}

int folio_try_share_anon_rmap_pmd(Folio* folio, Page* page) {
  return folio_try_share_anon_rmap_pte(folio, page);
}

void folio_move_anon_rmap(Folio* folio, Vma* vma) {
  MM_BUG_ON(vma->anon_vma == nullptr, folio);
  folio->page.set_mapping(reinterpret_cast<uintptr_t>(vma->anon_vma) | PAGE_MAPPING_ANON);
}

int folio_mapcount(const Folio* folio) {
  if (!folio_test_large(folio)) return folio->page.mapcount();
  return folio_large_mapcount(folio);
}

// ---- walking ----

namespace {

// The pages of `folio` that `vma` may map: [first, last) page indexes
// within the folio.
bool folio_range_in_vma(const Folio* folio, const Vma* vma, uint64_t* first, uint64_t* last) {
  const uint64_t index = folio->page.index();
  const uint64_t nr = folio_nr_pages(folio);
  const uint64_t vstart = vma->vm_pgoff;
  const uint64_t vend = vma->vm_pgoff + vma->pages();
  const uint64_t lo = std::max(index, vstart);
  const uint64_t hi = std::min(index + nr, vend);
  if (lo >= hi) return false;
  *first = lo - index;
  *last = hi - index;
  return true;
}

bool entry_maps_folio_page(const MemorySystem& ms, pte_t pte, Pfn want, bool migration) {
  if (pte_present(pte)) return !pte_special(pte) && pte_pfn(pte) == want;
  if (!is_swap_pte(pte)) return false;
  const swp_entry_t e = pte_to_swp_entry(pte);
  if (is_device_private_entry(e) || is_device_exclusive_entry(e)) return swp_offset_pfn(e) == want;
  if (migration && is_migration_entry(e)) return swp_offset_pfn(e) == want;
  (void)ms;
  return false;
}

}  // namespace

bool page_vma_mapped_walk(Folio* folio, Vma* vma, bool migration,
                          const std::function<bool(PageVmaMapped&)>& fn) {
  Mm& mm = vma->vm_mm();
  const MemorySystem& ms = mm.ms();
  uint64_t first = 0, last = 0;
  if (!folio_range_in_vma(folio, vma, &first, &last)) return true;
  const Pfn base = folio_pfn(folio);

  if (folio_test_hugetlb(folio)) {
    // hugetlb folios are mapped by one PMD (2 MiB) or PUD (1 GiB) leaf.
    const VirtAddr addr = vma_address(vma, folio->page.index());
    pud_t* pud = pud_offset(mm, addr);
    if (pud == nullptr) return true;
    if (folio_order(folio) == HPAGE_PUD_ORDER) {
      SpinLock* ptl = &pud_lockptr(mm, pud);
      ptl_lock(ptl);
      const pud_t v = pudp_get(pud);
      bool keep_going = true;
      if (pud_leaf(v) && pud_pfn(v) == base) {
        PageVmaMapped m{vma, addr, nullptr, nullptr, pud, ptl};
        keep_going = fn(m);
      }
      ptl_unlock(ptl);
      return keep_going;
    }
    pmd_t* pmd = pmd_offset(mm, addr);
    if (pmd == nullptr) return true;
    SpinLock* ptl = &pmd_lockptr(mm, pmd);
    ptl_lock(ptl);
    const pmd_t v = pmdp_get(pmd);
    bool keep_going = true;
    const bool maps = (pmd_leaf(v) && pmd_pfn(v) == base) ||
                      (migration && is_swap_pmd(v) && is_migration_entry(pmd_to_swp_entry(v)) &&
                       swp_offset_pfn(pmd_to_swp_entry(v)) == base);
    if (maps) {
      PageVmaMapped m{vma, addr, nullptr, pmd, nullptr, ptl};
      keep_going = fn(m);
    }
    ptl_unlock(ptl);
    return keep_going;
  }

  uint64_t i = first;
  while (i < last) {
    const VirtAddr addr = vma_address(vma, folio->page.index() + i);
    pmd_t* pmd = pmd_offset(mm, addr);
    const uint64_t to_pmd_end = ((addr.value() | (PMD_SIZE - 1)) + 1 - addr.value()) >> PAGE_SHIFT;
    if (pmd == nullptr) {
      i += to_pmd_end;
      continue;
    }
    const pmd_t pmdval = pmdp_get(pmd);
    if (pmd_leaf(pmdval) || (migration && is_swap_pmd(pmdval))) {
      // A PMD mapping of the whole (PMD-sized) folio.
      SpinLock* ptl = &pmd_lockptr(mm, pmd);
      ptl_lock(ptl);
      const pmd_t v = pmdp_get(pmd);
      const bool maps = (pmd_leaf(v) && pmd_pfn(v) == base) ||
                        (migration && is_swap_pmd(v) && is_migration_entry(pmd_to_swp_entry(v)) &&
                         swp_offset_pfn(pmd_to_swp_entry(v)) == base);
      bool keep_going = true;
      if (maps) {
        PageVmaMapped m{vma, VirtAddr(addr.value() & PMD_MASK), nullptr, pmd, nullptr, ptl};
        keep_going = fn(m);
      }
      ptl_unlock(ptl);
      if (!keep_going) return false;
      if (maps) return true;  // the folio is mapped here by the PMD only
      i += to_pmd_end;
      continue;
    }
    LockedPte lp = pte_offset_map_lock(mm, pmd, addr);
    if (!lp) {
      i += to_pmd_end;
      continue;
    }
    const uint64_t stop = std::min(last, i + to_pmd_end);
    for (uint64_t j = i; j < stop; ++j) {
      pte_t* ptep = lp.pte + (j - i);
      if (!entry_maps_folio_page(ms, ptep_get(ptep), base + PageCount(j), migration)) continue;
      PageVmaMapped m{vma,   vma_address(vma, folio->page.index() + j), ptep, nullptr, nullptr,
                      lp.ptl};
      if (!fn(m)) {
        pte_unmap_unlock(lp);
        return false;
      }
    }
    pte_unmap_unlock(lp);
    i = stop;
  }
  return true;
}

void rmap_walk(Folio* folio, const std::function<bool(Vma*, VirtAddr)>& rmap_one) {
  if (folio_test_anon(folio)) {
    AnonVma* av = nullptr;
    {
      // The caller keeps the AnonVma alive (see rmap.h); its last unmap may
      // still race with us, so take a reference only while it has users.
      rcu::ReadSection rs;
      av = folio_anon_vma(folio);
      if (av == nullptr || !av->try_get()) return;
    }
    {
      ReadGuard g(av->rwsem);
      for (Vma* vma : av->vmas) {
        uint64_t first = 0, last = 0;
        if (!folio_range_in_vma(folio, vma, &first, &last)) continue;
        if (!rmap_one(vma, vma_address(vma, folio->page.index() + first))) break;
      }
    }
    av->put();
    return;
  }
  AddressSpace* mapping = folio_mapping(folio);
  if (mapping == nullptr) return;
  ReadGuard g(mapping->i_mmap_rwsem);
  for (Vma* vma : mapping->i_mmap) {
    uint64_t first = 0, last = 0;
    if (!folio_range_in_vma(folio, vma, &first, &last)) continue;
    if (!rmap_one(vma, vma_address(vma, folio->page.index() + first))) break;
  }
}

}  // namespace pinmm
