#include "pinmm/vm/validate.h"

#include <map>
#include <set>
#include <tuple>

#include "pinmm/base/rcu.h"
#include "pinmm/phys/lru.h"
#include "pinmm/vm/fault.h"
#include "pinmm/vm/filemap.h"
#include "pinmm/vm/mm.h"
#include "pinmm/vm/pagewalk.h"
#include "pinmm/vm/rmap.h"
#include "pinmm/vm/walk.h"

namespace pinmm {
namespace {

struct FolioSeen {
  std::map<uint64_t, int> pte_maps;          // page index in folio -> PTE mappings
  int entire_maps = 0;                       // PMD/PUD mappings
  int refs_held = 0;                         // references the mappings hold
  std::set<std::pair<int, uint64_t>> where;  // (mm id, address)
};

struct WalkState {
  const MemorySystem& ms;
  ValidationReport& r;
  std::map<Folio*, FolioSeen>& folios;
  std::set<const File*>& files;
  uint64_t tables = 0;
};

const Vma* vma_at(const std::vector<Vma*>& vmas, uint64_t addr) {
  for (const Vma* v : vmas) {
    if (addr >= v->vm_start.value() && addr < v->vm_end.value()) return v;
  }
  return nullptr;
}

void note_rss(std::array<int64_t, NR_MM_COUNTERS>& rss, const Folio* folio, int64_t nr) {
  if (folio_test_hugetlb(folio)) return;  // hugetlb pages are not in RSS
  if (folio_test_anon(folio))
    rss[MM_ANONPAGES] += nr;
  else if (folio_test_swapbacked(folio))
    rss[MM_SHMEMPAGES] += nr;
  else
    rss[MM_FILEPAGES] += nr;
}

void check_pte(WalkState& st, Mm& mm, const Vma* vma, uint64_t addr, pte_t pte,
               std::array<int64_t, NR_MM_COUNTERS>& rss) {
  if (pte_none(pte)) return;
  if (vma == nullptr) {
    st.r.fail("mm {}: entry {:#x} at {:#x} lies outside every VMA", mm.id(), pte.val, addr);
    return;
  }
  if (pte_present(pte)) {
    const Pfn pfn = pte_pfn(pte);
    if (st.ms.is_zero_pfn(pfn)) {
      if (pte_write(pte))
        st.r.fail("mm {}: the zero page is mapped writable at {:#x}", mm.id(), addr);
      return;
    }
    if (!st.ms.pfn_valid(pfn)) {
      st.r.fail("mm {}: {:#x} maps pfn {:#x} beyond memory", mm.id(), addr, pfn.value());
      return;
    }
    if (pte_special(pte)) {
      if (!any(vma->vm_flags & (VM_PFNMAP | VM_MIXEDMAP))) {
        st.r.fail("mm {}: special entry at {:#x} in a normal VMA", mm.id(), addr);
      }
      return;
    }
    Page* page = st.ms.pfn_to_page(pfn);
    Folio* folio = page_folio(page);
    if (folio_ref_count(folio) <= 0 || PageBuddy(&folio->page)) {
      st.r.fail("mm {}: {:#x} maps pfn {:#x}, which is free", mm.id(), addr, pfn.value());
      return;
    }
    if (pte_write(pte) && folio_test_anon(folio) && !PageAnonExclusive(page)) {
      st.r.fail("mm {}: anon pfn {:#x} is mapped writable at {:#x} but not exclusive", mm.id(),
                pfn.value(), addr);
    }
    FolioSeen& s = st.folios[folio];
    ++s.pte_maps[(pfn - folio_pfn(folio)).value()];
    ++s.refs_held;
    s.where.emplace(mm.id(), addr);
    note_rss(rss, folio, 1);
    return;
  }
  const swp_entry_t e = pte_to_swp_entry(pte);
  if (!is_pfn_swap_entry(e)) {
    st.r.fail("mm {}: unknown swap entry {:#x} at {:#x}", mm.id(), pte.val, addr);
    return;
  }
  if (is_hwpoison_entry(e)) return;
  Page* page = st.ms.pfn_to_page(swp_offset_pfn(e));
  Folio* folio = page_folio(page);
  note_rss(rss, folio, 1);
  if (is_migration_entry(e)) {
    // Quiescent: every migration has removed its entries (a fault on one
    // would wait for the folio lock forever).
    st.r.fail("mm {}: migration entry at {:#x} for pfn {:#x} with no migration in flight{}",
              mm.id(), addr, swp_offset_pfn(e).value(),
              folio_test_locked(folio) ? "" : ", on an unlocked folio");
    return;
  }
  // Device private / exclusive: a mapping of the device page.
  FolioSeen& s = st.folios[folio];
  if (is_device_private_entry(e)) ++s.pte_maps[(page_to_pfn(page) - folio_pfn(folio)).value()];
  ++s.refs_held;
  s.where.emplace(mm.id(), addr);
}

void check_huge_leaf(WalkState& st, Mm& mm, const Vma* vma, uint64_t addr, uint64_t val,
                     unsigned order, std::array<int64_t, NR_MM_COUNTERS>& rss) {
  if (vma == nullptr) {
    st.r.fail("mm {}: huge entry at {:#x} lies outside every VMA", mm.id(), addr);
    return;
  }
  if (!(val & (_PAGE_PRESENT | _PAGE_PROTNONE))) {
    const swp_entry_t e{val};
    if (is_migration_entry(e)) {
      Folio* f = page_folio(st.ms.pfn_to_page(swp_offset_pfn(e)));
      st.r.fail("mm {}: huge migration entry at {:#x} with no migration in flight{}", mm.id(), addr,
                folio_test_locked(f) ? "" : ", on an unlocked folio");
      note_rss(rss, f, static_cast<int64_t>(folio_nr_pages(f)));
    }
    return;
  }
  Page* page = st.ms.pfn_to_page(entry_pfn(pte_t{val}));
  Folio* folio = page_folio(page);
  if (mm.vm().is_huge_zero_folio(folio)) return;
  if (&folio->page != page || folio_order(folio) != order) {
    st.r.fail("mm {}: huge entry at {:#x} does not map a whole folio of order {}", mm.id(), addr,
              order);
    return;
  }
  if ((val & _PAGE_RW) && folio_test_anon(folio) && !PageAnonExclusive(page)) {
    st.r.fail("mm {}: anon huge folio {:#x} mapped writable at {:#x} but not exclusive", mm.id(),
              folio_pfn(folio).value(), addr);
  }
  FolioSeen& s = st.folios[folio];
  ++s.entire_maps;
  ++s.refs_held;
  s.where.emplace(mm.id(), addr);
  note_rss(rss, folio, static_cast<int64_t>(folio_nr_pages(folio)));
}

// One Mm's part of the walk: its VMAs and the RSS its entries add up to.
struct MmCheck {
  WalkState& st;
  Mm& mm;
  std::vector<Vma*> vmas;
  std::array<int64_t, NR_MM_COUNTERS> rss{};
};

MmCheck& check_of(MmWalk* walk) { return *static_cast<MmCheck*>(walk->priv); }

// A present PGD entry: a PUD table.
int validate_pgd_entry(pgd_t*, VirtAddr, VirtAddr, MmWalk* walk) {
  ++check_of(walk).st.tables;
  return 0;
}

int validate_pud_entry(pud_t* pud, VirtAddr addr, VirtAddr, MmWalk* walk) {
  MmCheck& c = check_of(walk);
  const pud_t v = pudp_get(pud);
  if (pud_leaf(v) || !pud_present(v)) {
    check_huge_leaf(c.st, c.mm, vma_at(c.vmas, addr.value()), addr.value(), v.val, HPAGE_PUD_ORDER,
                    c.rss);
    walk->action = ACTION_CONTINUE;
    return 0;
  }
  // A PMD table, and the PTE tables deposited with its huge PMDs.
  ++c.st.tables;
  for (auto* dep = reinterpret_cast<Page*>(c.st.ms.pfn_to_page(pud_pfn(v))->index());
       dep != nullptr; dep = reinterpret_cast<Page*>(dep->index())) {
    ++c.st.tables;
  }
  return 0;
}

int validate_pmd_entry(pmd_t* pmd, VirtAddr addr, VirtAddr, MmWalk* walk) {
  MmCheck& c = check_of(walk);
  const pmd_t v = pmdp_get(pmd);
  if (pmd_leaf(v) || !pmd_present(v)) {
    check_huge_leaf(c.st, c.mm, vma_at(c.vmas, addr.value()), addr.value(), v.val, HPAGE_PMD_ORDER,
                    c.rss);
    walk->action = ACTION_CONTINUE;
    return 0;
  }
  ++c.st.tables;  // a PTE table
  return 0;
}

int validate_pte_entry(pte_t* pte, VirtAddr addr, VirtAddr, MmWalk* walk) {
  MmCheck& c = check_of(walk);
  if (const pte_t v = ptep_get(pte); !pte_none(v))
    check_pte(c.st, c.mm, vma_at(c.vmas, addr.value()), addr.value(), v, c.rss);
  return 0;
}

constexpr MmWalkOps validate_walk_ops{
    .pgd_entry = validate_pgd_entry,
    .pud_entry = validate_pud_entry,
    .pmd_entry = validate_pmd_entry,
    .pte_entry = validate_pte_entry,
};

// Every entry of mm's page tables, whatever the VMAs say (an entry outside
// every VMA is one of the problems to find).
void walk_mm(WalkState& st, Mm& mm) NO_THREAD_SAFETY_ANALYSIS {
  ReadGuard g(mm.mmap_lock);
  MmCheck c{st, mm, mm.all_vmas()};
  for (const Vma* v : c.vmas) {
    if (v->vm_file) st.files.insert(v->vm_file.get());
  }
  ++st.tables;  // the PGD
  walk_page_range_novma(mm, VirtAddr(0), VirtAddr(uint64_t{PTRS_PER_TABLE} << PGDIR_SHIFT),
                        &validate_walk_ops, &c);
  for (unsigned i = 0; i < NR_MM_COUNTERS; ++i) {
    if (i == MM_SWAPENTS) continue;
    const auto counter = static_cast<MmCounter>(i);
    if (c.rss[i] != mm.get_mm_counter(counter)) {
      st.r.fail("mm {}: RSS counter {} is {} but the page tables hold {}", mm.id(), i,
                mm.get_mm_counter(counter), c.rss[i]);
    }
  }
}

// References the per-CPU LRU batches hold, per folio.
std::map<Folio*, int> batch_refs(const MemorySystem& ms) {
  std::map<Folio*, int> out;
  for (int cpu = 0; cpu < ms.config().cpus; ++cpu) {
    const LruAddBatch& b = ms.lru_add_batch(cpu);
    SpinGuard g(b.lock);
    for (unsigned i = 0; i < b.nr; ++i)
      ++out[b.folios[i]];
  }
  return out;
}

void check_folios(WalkState& st, const std::map<Folio*, int>& batches) {
  for (auto& entry : st.folios) {
    Folio* folio = entry.first;  // (clang 14 cannot capture structured bindings)
    FolioSeen& seen = entry.second;
    // Mapcounts.
    if (folio_test_large(folio)) {
      if (folio_entire_mapcount(folio) != seen.entire_maps) {
        st.r.fail("folio {:#x}: entire_mapcount {} but {} PMD/PUD mappings found",
                  folio_pfn(folio).value(), folio_entire_mapcount(folio), seen.entire_maps);
      }
      int total = seen.entire_maps;
      int mapped_pages = 0;
      for (uint64_t i = 0; i < folio_nr_pages(folio); ++i) {
        const auto it = seen.pte_maps.find(i);
        const int n = it == seen.pte_maps.end() ? 0 : it->second;
        total += n;
        mapped_pages += n > 0 ? 1 : 0;
        if (folio_page(folio, i)->mapcount() != n && !folio_test_hugetlb(folio)) {
          st.r.fail("folio {:#x} page {}: mapcount {} but {} PTE mappings found",
                    folio_pfn(folio).value(), i, folio_page(folio, i)->mapcount(), n);
        }
      }
      if (folio_large_mapcount(folio) != total) {
        st.r.fail("folio {:#x}: large_mapcount {} but {} mappings found", folio_pfn(folio).value(),
                  folio_large_mapcount(folio), total);
      }
      if (!folio_test_hugetlb(folio) && folio_nr_pages_mapped(folio) != mapped_pages) {
        st.r.fail("folio {:#x}: nr_pages_mapped {} but {} pages mapped by PTEs",
                  folio_pfn(folio).value(), folio_nr_pages_mapped(folio), mapped_pages);
      }
    } else {
      const int n = seen.pte_maps.empty() ? 0 : seen.pte_maps.begin()->second;
      if (folio->page.mapcount() != n) {
        st.r.fail("folio {:#x}: mapcount {} but {} mappings found", folio_pfn(folio).value(),
                  folio->page.mapcount(), n);
      }
    }
    // An exclusive anonymous page is mapped once at most (KERNEL-SPEC 3.6).
    if (folio_test_anon(folio)) {
      for (uint64_t i = 0; i < folio_nr_pages(folio); ++i) {
        const auto it = seen.pte_maps.find(i);
        const int n = seen.entire_maps + (it == seen.pte_maps.end() ? 0 : it->second);
        if (n > 1 && PageAnonExclusive(folio_page(folio, i))) {
          st.r.fail("folio {:#x} page {}: anon exclusive but mapped {} times",
                    folio_pfn(folio).value(), i, n);
        }
      }
    }
    // References.
    int expected = seen.refs_held;
    if (folio_mapping(folio) != nullptr) expected += static_cast<int>(folio_nr_pages(folio));
    if (const auto it = batches.find(folio); it != batches.end()) expected += it->second;
    if (folio_ref_count(folio) < expected) {
      st.r.fail("folio {:#x}: refcount {} below the {} references its mappings and caches hold",
                folio_pfn(folio).value(), folio_ref_count(folio), expected);
    }
    // rmap finds exactly these entries (a driver's own pages, inserted with
    // vm_insert_page, have neither anon_vma nor mapping: rmap cannot find
    // them, in Linux too).
    if (!folio_test_anon(folio) && folio_mapping(folio) == nullptr) continue;
    std::set<std::pair<int, uint64_t>> found;
    rmap_walk(folio, [&](Vma* vma, VirtAddr) {
      page_vma_mapped_walk(folio, vma, false, [&](PageVmaMapped& m) {
        found.emplace(vma->vm_mm().id(), m.address.value());
        return true;
      });
      return true;
    });
    if (found != seen.where) {
      st.r.fail("folio {:#x}: rmap finds {} mappings, the page tables hold {}",
                folio_pfn(folio).value(), found.size(), seen.where.size());
    }
  }
}

void check_files(WalkState& st) {
  for (const File* file : st.files) {
    const AddressSpace& mapping = file->mapping();
    SpinGuard g(mapping.i_pages_lock);
    uint64_t pages = 0;
    for (const auto& [index, folio] : mapping.i_pages) {
      pages += folio_nr_pages(folio);
      if (folio_mapping(folio) != &mapping || folio->page.index() != index) {
        st.r.fail("file {}: page-cache folio at index {} does not point back at the file",
                  file->name(), index);
      }
      if (folio_ref_count(folio) < static_cast<int>(folio_nr_pages(folio))) {
        st.r.fail("file {}: folio at index {} has refcount {} below its cache references",
                  file->name(), index, folio_ref_count(folio));
      }
    }
    if (pages != mapping.nrpages) {
      st.r.fail("file {}: page cache holds {} pages, nrpages says {}", file->name(), pages,
                mapping.nrpages);
    }
  }
}

}  // namespace

ValidationReport validate_vm(VmContext& vm) {
  rcu::barrier();  // page tables freed through RCU must be gone before counting
  MemorySystem& ms = vm.ms();
  ValidationReport r = ms.validate();
  std::map<Folio*, FolioSeen> folios;
  std::set<const File*> files;
  WalkState st{ms, r, folios, files};
  for (Mm* mm : vm.mms())
    walk_mm(st, *mm);
  check_folios(st, batch_refs(ms));
  check_files(st);
  int64_t counted = 0;
  for (int n = 0; n < ms.nr_nodes(); ++n)
    counted += ms.node(n).stats().get(NR_PAGETABLE);
  if (static_cast<int64_t>(st.tables) != counted) {
    r.fail("page tables: {} reachable from the mms, nr_page_table_pages says {}", st.tables,
           counted);
  }
  return r;
}

}  // namespace pinmm
