// Page-table entries and table pages: x86-64 4-level paging.
//
// Linux counterpart: arch/x86/include/asm/pgtable*.h, include/linux/pgtable.h,
// include/linux/swapops.h and the ptdesc/ptlock helpers of mm.h. Tables are
// real 4 KiB pages of simulated memory (GFP_PGTABLE_USER, unmovable, counted
// in nr_page_table_pages) holding 512 8-byte entries; a table page is
// PageType kTable and carries its split lock (PMD and PTE tables) in
// page->private. Leaves exist at PTE, PMD (2 MiB: THP, hugetlb) and PUD
// (1 GiB hugetlb) level.
//
// Entry layout: present (bit 0), write (1), user (2), accessed/young (5),
// dirty (6), PSE = huge leaf (7), PROTNONE (8, present-but-inaccessible, as
// x86's _PAGE_PROTNONE), special (9, software: no struct page refcounting,
// e.g. the zero page), PFN in bits 12..51. A non-present, non-none,
// non-protnone entry is a swap-type entry: type in bits 1..5 with the
// kernel's numbering (migration read 24, read-exclusive 25, write 26, device
// private write 27 / read 28, device exclusive write 29 / read 30, hwpoison
// 23), offset in bits 10..63 (a PFN, plus young and dirty bits above it for
// migration entries).
//
// Thread safety: entries are read and written with atomic_ref. Writers hold
// the table's lock (PTE lock, PMD lock, or mm->page_table_lock for PUDs);
// lockless readers (the CPU model, GUP-fast) read inside an RCU read section
// and must re-check what they found. Table pages are freed through RCU.
// An entry is stored with release and loaded with acquire, so a reader that
// sees an entry sees the table or frame contents written before it.
#pragma once

#include <atomic>
#include <cstdint>

#include "pinmm/base/types.h"
#include "pinmm/phys/memory_system.h"

namespace pinmm {

inline constexpr unsigned PTRS_PER_TABLE = 512;
inline constexpr unsigned PMD_SHIFT = 21;
inline constexpr unsigned PUD_SHIFT = 30;
inline constexpr unsigned PGDIR_SHIFT = 39;
inline constexpr uint64_t PMD_SIZE = uint64_t{1} << PMD_SHIFT;
inline constexpr uint64_t PUD_SIZE = uint64_t{1} << PUD_SHIFT;
inline constexpr uint64_t PGDIR_SIZE = uint64_t{1} << PGDIR_SHIFT;
inline constexpr uint64_t PMD_MASK = ~(PMD_SIZE - 1);
inline constexpr uint64_t PUD_MASK = ~(PUD_SIZE - 1);
inline constexpr uint64_t HPAGE_PMD_SIZE = PMD_SIZE;
inline constexpr uint64_t HPAGE_PMD_MASK = PMD_MASK;
// The top of user space: 47-bit addresses minus the guard page.
inline constexpr uint64_t TASK_SIZE = (uint64_t{1} << 47) - PAGE_SIZE;

inline constexpr uint64_t _PAGE_PRESENT = uint64_t{1} << 0;
inline constexpr uint64_t _PAGE_RW = uint64_t{1} << 1;
inline constexpr uint64_t _PAGE_USER = uint64_t{1} << 2;
inline constexpr uint64_t _PAGE_ACCESSED = uint64_t{1} << 5;
inline constexpr uint64_t _PAGE_DIRTY = uint64_t{1} << 6;
inline constexpr uint64_t _PAGE_PSE = uint64_t{1} << 7;
inline constexpr uint64_t _PAGE_PROTNONE = uint64_t{1} << 8;
inline constexpr uint64_t _PAGE_SPECIAL = uint64_t{1} << 9;
inline constexpr uint64_t PTE_PFN_MASK = 0x000ffffffffff000ull;
// Entry bits of a table pointer (upper levels).
inline constexpr uint64_t _PAGE_TABLE =
    _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY;

// Protection bits a VMA's mappings get (vm_page_prot).
struct pgprot_t {
  uint64_t val;
};

struct pte_t {
  uint64_t val;
  bool operator==(const pte_t&) const = default;
};
struct pmd_t {
  uint64_t val;
  bool operator==(const pmd_t&) const = default;
};
struct pud_t {
  uint64_t val;
  bool operator==(const pud_t&) const = default;
};
struct pgd_t {
  uint64_t val;
  bool operator==(const pgd_t&) const = default;
};

// ---- leaf entries: the same bit layout at every level ----

template <typename E>
constexpr bool entry_none(E e) {
  return e.val == 0;
}
template <typename E>
constexpr bool entry_present(E e) {
  return e.val & (_PAGE_PRESENT | _PAGE_PROTNONE);
}
template <typename E>
constexpr Pfn entry_pfn(E e) {
  return Pfn((e.val & PTE_PFN_MASK) >> PAGE_SHIFT);
}

constexpr bool pte_none(pte_t p) { return entry_none(p); }
constexpr bool pte_present(pte_t p) { return entry_present(p); }
constexpr bool pte_protnone(pte_t p) {
  return (p.val & (_PAGE_PRESENT | _PAGE_PROTNONE)) == _PAGE_PROTNONE;
}
constexpr bool pte_write(pte_t p) { return p.val & _PAGE_RW; }
constexpr bool pte_dirty(pte_t p) { return p.val & _PAGE_DIRTY; }
constexpr bool pte_young(pte_t p) { return p.val & _PAGE_ACCESSED; }
constexpr bool pte_special(pte_t p) { return p.val & _PAGE_SPECIAL; }
constexpr Pfn pte_pfn(pte_t p) { return entry_pfn(p); }
constexpr pte_t pte_mkwrite(pte_t p) { return {p.val | _PAGE_RW}; }
constexpr pte_t pte_wrprotect(pte_t p) { return {p.val & ~_PAGE_RW}; }
constexpr pte_t pte_mkdirty(pte_t p) { return {p.val | _PAGE_DIRTY}; }
constexpr pte_t pte_mkclean(pte_t p) { return {p.val & ~_PAGE_DIRTY}; }
constexpr pte_t pte_mkyoung(pte_t p) { return {p.val | _PAGE_ACCESSED}; }
constexpr pte_t pte_mkold(pte_t p) { return {p.val & ~_PAGE_ACCESSED}; }
constexpr pte_t pte_mkspecial(pte_t p) { return {p.val | _PAGE_SPECIAL}; }
constexpr pte_t pfn_pte(Pfn pfn, pgprot_t prot) { return {(pfn.value() << PAGE_SHIFT) | prot.val}; }
// Changes the protection bits, keeping PFN, dirty, young and special.
constexpr pte_t pte_modify(pte_t p, pgprot_t prot) {
  constexpr uint64_t keep = PTE_PFN_MASK | _PAGE_DIRTY | _PAGE_ACCESSED | _PAGE_SPECIAL;
  return {(p.val & keep) | prot.val};
}

constexpr bool pmd_none(pmd_t p) { return entry_none(p); }
constexpr bool pmd_present(pmd_t p) { return entry_present(p); }
constexpr bool pmd_leaf(pmd_t p) { return entry_present(p) && (p.val & _PAGE_PSE); }
constexpr bool pmd_write(pmd_t p) { return p.val & _PAGE_RW; }
constexpr bool pmd_dirty(pmd_t p) { return p.val & _PAGE_DIRTY; }
constexpr bool pmd_young(pmd_t p) { return p.val & _PAGE_ACCESSED; }
constexpr Pfn pmd_pfn(pmd_t p) { return entry_pfn(p); }
constexpr pmd_t pmd_mkwrite(pmd_t p) { return {p.val | _PAGE_RW}; }
constexpr pmd_t pmd_wrprotect(pmd_t p) { return {p.val & ~_PAGE_RW}; }
constexpr pmd_t pmd_mkdirty(pmd_t p) { return {p.val | _PAGE_DIRTY}; }
constexpr pmd_t pmd_mkyoung(pmd_t p) { return {p.val | _PAGE_ACCESSED}; }
constexpr pmd_t pmd_mkold(pmd_t p) { return {p.val & ~_PAGE_ACCESSED}; }
constexpr pmd_t pfn_pmd(Pfn pfn, pgprot_t prot) {
  return {(pfn.value() << PAGE_SHIFT) | prot.val | _PAGE_PSE};
}
constexpr pmd_t pmd_modify(pmd_t p, pgprot_t prot) {
  constexpr uint64_t keep = PTE_PFN_MASK | _PAGE_DIRTY | _PAGE_ACCESSED | _PAGE_SPECIAL | _PAGE_PSE;
  return {(p.val & keep) | prot.val};
}
// A PMD that points at a PTE table.
constexpr pmd_t pmd_table(Pfn table) { return {(table.value() << PAGE_SHIFT) | _PAGE_TABLE}; }

constexpr bool pud_none(pud_t p) { return entry_none(p); }
constexpr bool pud_present(pud_t p) { return entry_present(p); }
constexpr bool pud_leaf(pud_t p) { return entry_present(p) && (p.val & _PAGE_PSE); }
constexpr bool pud_write(pud_t p) { return p.val & _PAGE_RW; }
constexpr Pfn pud_pfn(pud_t p) { return entry_pfn(p); }
constexpr pud_t pfn_pud(Pfn pfn, pgprot_t prot) {
  return {(pfn.value() << PAGE_SHIFT) | prot.val | _PAGE_PSE};
}
constexpr pud_t pud_table(Pfn table) { return {(table.value() << PAGE_SHIFT) | _PAGE_TABLE}; }

constexpr bool pgd_none(pgd_t p) { return entry_none(p); }
constexpr bool pgd_present(pgd_t p) { return entry_present(p); }
constexpr pgd_t pgd_table(Pfn table) { return {(table.value() << PAGE_SHIFT) | _PAGE_TABLE}; }

// ---- swap-type entries (include/linux/swap.h, swapops.h) ----

struct swp_entry_t {
  uint64_t val;
  bool operator==(const swp_entry_t&) const = default;
};

inline constexpr unsigned MAX_SWAPFILES = 23;
inline constexpr unsigned SWP_HWPOISON = MAX_SWAPFILES;
inline constexpr unsigned SWP_MIGRATION_READ = MAX_SWAPFILES + 1;
inline constexpr unsigned SWP_MIGRATION_READ_EXCLUSIVE = MAX_SWAPFILES + 2;
inline constexpr unsigned SWP_MIGRATION_WRITE = MAX_SWAPFILES + 3;
inline constexpr unsigned SWP_DEVICE_WRITE = MAX_SWAPFILES + 4;
inline constexpr unsigned SWP_DEVICE_READ = MAX_SWAPFILES + 5;
inline constexpr unsigned SWP_DEVICE_EXCLUSIVE_WRITE = MAX_SWAPFILES + 6;
inline constexpr unsigned SWP_DEVICE_EXCLUSIVE_READ = MAX_SWAPFILES + 7;
inline constexpr unsigned SWP_PTE_MARKER = MAX_SWAPFILES + 8;

inline constexpr unsigned SWP_PFN_BITS = 40;  // MAX_PHYSMEM_BITS 52 - PAGE_SHIFT
inline constexpr uint64_t SWP_PFN_MASK = (uint64_t{1} << SWP_PFN_BITS) - 1;
inline constexpr uint64_t SWP_MIG_YOUNG = uint64_t{1} << SWP_PFN_BITS;
inline constexpr uint64_t SWP_MIG_DIRTY = uint64_t{1} << (SWP_PFN_BITS + 1);

namespace swp_detail {
inline constexpr unsigned kTypeShift = 1;
inline constexpr uint64_t kTypeMask = 0x1f;
inline constexpr unsigned kOffsetShift = 10;
}  // namespace swp_detail

constexpr swp_entry_t swp_entry(unsigned type, uint64_t offset) {
  return {(offset << swp_detail::kOffsetShift) | (uint64_t{type} << swp_detail::kTypeShift)};
}
constexpr unsigned swp_type(swp_entry_t e) {
  return static_cast<unsigned>((e.val >> swp_detail::kTypeShift) & swp_detail::kTypeMask);
}
constexpr uint64_t swp_offset(swp_entry_t e) { return e.val >> swp_detail::kOffsetShift; }
constexpr Pfn swp_offset_pfn(swp_entry_t e) { return Pfn(swp_offset(e) & SWP_PFN_MASK); }

// A non-present, non-none, non-protnone entry holds a swap-type entry.
constexpr bool is_swap_pte(pte_t p) { return !pte_none(p) && !pte_present(p); }
constexpr swp_entry_t pte_to_swp_entry(pte_t p) { return {p.val}; }
constexpr pte_t swp_entry_to_pte(swp_entry_t e) { return {e.val}; }
constexpr bool is_swap_pmd(pmd_t p) { return !pmd_none(p) && !pmd_present(p); }
constexpr swp_entry_t pmd_to_swp_entry(pmd_t p) { return {p.val}; }
constexpr pmd_t swp_entry_to_pmd(swp_entry_t e) { return {e.val}; }

constexpr bool is_migration_entry(swp_entry_t e) {
  const unsigned t = swp_type(e);
  return t == SWP_MIGRATION_READ || t == SWP_MIGRATION_READ_EXCLUSIVE || t == SWP_MIGRATION_WRITE;
}
constexpr bool is_writable_migration_entry(swp_entry_t e) {
  return swp_type(e) == SWP_MIGRATION_WRITE;
}
constexpr bool is_readable_migration_entry(swp_entry_t e) {
  return swp_type(e) == SWP_MIGRATION_READ;
}
constexpr bool is_readable_exclusive_migration_entry(swp_entry_t e) {
  return swp_type(e) == SWP_MIGRATION_READ_EXCLUSIVE;
}
constexpr swp_entry_t make_readable_migration_entry(Pfn pfn) {
  return swp_entry(SWP_MIGRATION_READ, pfn.value());
}
constexpr swp_entry_t make_readable_exclusive_migration_entry(Pfn pfn) {
  return swp_entry(SWP_MIGRATION_READ_EXCLUSIVE, pfn.value());
}
constexpr swp_entry_t make_writable_migration_entry(Pfn pfn) {
  return swp_entry(SWP_MIGRATION_WRITE, pfn.value());
}
constexpr bool is_migration_entry_young(swp_entry_t e) { return swp_offset(e) & SWP_MIG_YOUNG; }
constexpr bool is_migration_entry_dirty(swp_entry_t e) { return swp_offset(e) & SWP_MIG_DIRTY; }
constexpr swp_entry_t make_migration_entry_young(swp_entry_t e) {
  return swp_entry(swp_type(e), swp_offset(e) | SWP_MIG_YOUNG);
}
constexpr swp_entry_t make_migration_entry_dirty(swp_entry_t e) {
  return swp_entry(swp_type(e), swp_offset(e) | SWP_MIG_DIRTY);
}

constexpr bool is_device_private_entry(swp_entry_t e) {
  return swp_type(e) == SWP_DEVICE_WRITE || swp_type(e) == SWP_DEVICE_READ;
}
constexpr bool is_writable_device_private_entry(swp_entry_t e) {
  return swp_type(e) == SWP_DEVICE_WRITE;
}
constexpr swp_entry_t make_readable_device_private_entry(Pfn pfn) {
  return swp_entry(SWP_DEVICE_READ, pfn.value());
}
constexpr swp_entry_t make_writable_device_private_entry(Pfn pfn) {
  return swp_entry(SWP_DEVICE_WRITE, pfn.value());
}

constexpr bool is_device_exclusive_entry(swp_entry_t e) {
  return swp_type(e) == SWP_DEVICE_EXCLUSIVE_WRITE || swp_type(e) == SWP_DEVICE_EXCLUSIVE_READ;
}
constexpr bool is_writable_device_exclusive_entry(swp_entry_t e) {
  return swp_type(e) == SWP_DEVICE_EXCLUSIVE_WRITE;
}
constexpr swp_entry_t make_readable_device_exclusive_entry(Pfn pfn) {
  return swp_entry(SWP_DEVICE_EXCLUSIVE_READ, pfn.value());
}
constexpr swp_entry_t make_writable_device_exclusive_entry(Pfn pfn) {
  return swp_entry(SWP_DEVICE_EXCLUSIVE_WRITE, pfn.value());
}

constexpr bool is_hwpoison_entry(swp_entry_t e) { return swp_type(e) == SWP_HWPOISON; }
constexpr swp_entry_t make_hwpoison_entry(Pfn pfn) { return swp_entry(SWP_HWPOISON, pfn.value()); }

// Entries that carry a PFN (migration, device private/exclusive, hwpoison).
constexpr bool is_pfn_swap_entry(swp_entry_t e) {
  return is_migration_entry(e) || is_device_private_entry(e) || is_device_exclusive_entry(e) ||
         is_hwpoison_entry(e);
}

// ---- atomic access to entries in table frames ----

template <typename E>
inline E entry_get(const E* p) {
  return {std::atomic_ref<uint64_t>(const_cast<uint64_t&>(p->val)).load(std::memory_order_acquire)};
}
template <typename E>
inline void entry_set(E* p, E v) {
  std::atomic_ref<uint64_t>(p->val).store(v.val, std::memory_order_release);
}
template <typename E>
inline E entry_get_and_clear(E* p) {
  return {std::atomic_ref<uint64_t>(p->val).exchange(0, std::memory_order_acq_rel)};
}
// Compare-and-exchange, as the hardware's accessed/dirty updates need.
template <typename E>
inline bool entry_cmpxchg(E* p, E expected, E desired) {
  return std::atomic_ref<uint64_t>(p->val).compare_exchange_strong(expected.val, desired.val,
                                                                   std::memory_order_acq_rel);
}

inline pte_t ptep_get(const pte_t* p) { return entry_get(p); }
inline void set_pte(pte_t* p, pte_t v) { entry_set(p, v); }
inline pte_t ptep_get_and_clear(pte_t* p) { return entry_get_and_clear(p); }
inline pmd_t pmdp_get(const pmd_t* p) { return entry_get(p); }
inline void set_pmd(pmd_t* p, pmd_t v) { entry_set(p, v); }
inline pud_t pudp_get(const pud_t* p) { return entry_get(p); }
inline void set_pud(pud_t* p, pud_t v) { entry_set(p, v); }
inline pgd_t pgdp_get(const pgd_t* p) { return entry_get(p); }
inline void set_pgd(pgd_t* p, pgd_t v) { entry_set(p, v); }
// Clears the write bit atomically (hardware may be setting A/D meanwhile).
inline void ptep_set_wrprotect(pte_t* p) {
  std::atomic_ref<uint64_t>(p->val).fetch_and(~_PAGE_RW, std::memory_order_acq_rel);
}
inline bool ptep_test_and_clear_young(pte_t* p) {
  return std::atomic_ref<uint64_t>(p->val).fetch_and(~_PAGE_ACCESSED, std::memory_order_acq_rel) &
         _PAGE_ACCESSED;
}

// ---- table pages ----

inline uint64_t pgd_index(VirtAddr a) { return (a.value() >> PGDIR_SHIFT) & (PTRS_PER_TABLE - 1); }
inline uint64_t pud_index(VirtAddr a) { return (a.value() >> PUD_SHIFT) & (PTRS_PER_TABLE - 1); }
inline uint64_t pmd_index(VirtAddr a) { return (a.value() >> PMD_SHIFT) & (PTRS_PER_TABLE - 1); }
inline uint64_t pte_index(VirtAddr a) { return (a.value() >> PAGE_SHIFT) & (PTRS_PER_TABLE - 1); }

// A new, zeroed table page on node `nid`: PageType kTable, with a split lock
// of `rank` in private, counted in nr_page_table_pages. nullptr on failure.
Page* pagetable_alloc(MemorySystem& ms, int nid, LockRank rank);
// Frees a table page after an RCU grace period (lockless walkers may still
// be reading it); its lock goes with it.
void pagetable_free_rcu(Page* table);
// The split lock of a table page.
SpinLock& ptlock_of(const Page* table);

// The entries of a table page.
template <typename E>
inline E* table_entries(const MemorySystem& ms, Pfn table) {
  return reinterpret_cast<E*>(ms.frames().frame(table));
}
// The table page an entry pointer lies in.
inline Page* table_page_of(const MemorySystem& ms, const void* entry) {
  return ms.pfn_to_page(ms.frames().pfn_of(entry));
}

}  // namespace pinmm
