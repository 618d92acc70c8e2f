// Entry encoding (KERNEL-SPEC 6.3): present leaves keep their PFN through
// every bit operation, and each swap-type entry round-trips, is never taken
// for a present, none or PROT_NONE entry, and is classified as exactly one
// kind.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <vector>

#include "pinmm/vm/pgtable.h"

namespace pinmm {
namespace {

// Every kind of PFN-carrying entry, made for `pfn`.
std::vector<swp_entry_t> all_kinds(Pfn pfn) {
  return {make_readable_migration_entry(pfn),        make_readable_exclusive_migration_entry(pfn),
          make_writable_migration_entry(pfn),        make_readable_device_private_entry(pfn),
          make_writable_device_private_entry(pfn),   make_readable_device_exclusive_entry(pfn),
          make_writable_device_exclusive_entry(pfn), make_hwpoison_entry(pfn)};
}

int kinds_matching(swp_entry_t e) {
  return int{is_readable_migration_entry(e)} + int{is_readable_exclusive_migration_entry(e)} +
         int{is_writable_migration_entry(e)} + int{is_device_private_entry(e)} +
         int{is_device_exclusive_entry(e)} + int{is_hwpoison_entry(e)};
}

TEST(EntryEncoding, KernelTypeNumbers) {
  // include/linux/swap.h with CONFIG_MIGRATION, CONFIG_DEVICE_PRIVATE,
  // CONFIG_MEMORY_FAILURE and CONFIG_PTE_MARKER: MAX_SWAPFILES = 32 - 9.
  EXPECT_EQ(MAX_SWAPFILES, 23u);
  EXPECT_EQ(swp_type(make_hwpoison_entry(Pfn(1))), 23u);
  EXPECT_EQ(swp_type(make_readable_migration_entry(Pfn(1))), 24u);
  EXPECT_EQ(swp_type(make_readable_exclusive_migration_entry(Pfn(1))), 25u);
  EXPECT_EQ(swp_type(make_writable_migration_entry(Pfn(1))), 26u);
  EXPECT_EQ(swp_type(make_writable_device_private_entry(Pfn(1))), 27u);
  EXPECT_EQ(swp_type(make_readable_device_private_entry(Pfn(1))), 28u);
  EXPECT_EQ(swp_type(make_writable_device_exclusive_entry(Pfn(1))), 29u);
  EXPECT_EQ(swp_type(make_readable_device_exclusive_entry(Pfn(1))), 30u);
}

TEST(EntryEncoding, SpecialPresentEntries) {
  const pgprot_t prot{_PAGE_PRESENT | _PAGE_USER | _PAGE_RW};
  const pte_t zero = pte_mkspecial(pfn_pte(Pfn(77), prot));
  EXPECT_TRUE(pte_present(zero) && pte_special(zero) && pte_write(zero));
  EXPECT_FALSE(is_swap_pte(zero));
  // PROT_NONE: present to the kernel, inaccessible to the CPU.
  const pte_t none = pfn_pte(Pfn(77), pgprot_t{_PAGE_PROTNONE});
  EXPECT_TRUE(pte_present(none) && pte_protnone(none));
  EXPECT_FALSE(is_swap_pte(none));
  EXPECT_TRUE(pte_none(pte_t{0}));
  // A huge leaf is a PMD with PSE; a table pointer is not a leaf.
  EXPECT_TRUE(pmd_leaf(pfn_pmd(Pfn(512), prot)));
  EXPECT_FALSE(pmd_leaf(pmd_table(Pfn(3))));
  EXPECT_TRUE(pud_leaf(pfn_pud(Pfn(262144), prot)));
}

RC_GTEST_PROP(EntryEncoding, PresentEntriesKeepTheirPfn, ()) {
  const Pfn pfn(*rc::gen::inRange<uint64_t>(0, uint64_t{1} << SWP_PFN_BITS));
  const uint64_t bits = *rc::gen::arbitrary<uint64_t>();
  const pgprot_t prot{(bits & ~PTE_PFN_MASK & ~_PAGE_PSE) | _PAGE_PRESENT};
  pte_t pte = pfn_pte(pfn, prot);
  RC_ASSERT(pte_pfn(pte) == pfn);
  RC_ASSERT(pte_present(pte));
  for (auto op : {pte_mkwrite, pte_wrprotect, pte_mkdirty, pte_mkclean, pte_mkyoung, pte_mkold,
                  pte_mkspecial}) {
    pte = op(pte);
    RC_ASSERT(pte_pfn(pte) == pfn);
  }
  const pte_t modified = pte_modify(pte, pgprot_t{_PAGE_PRESENT | _PAGE_USER});
  RC_ASSERT(pte_pfn(modified) == pfn);
  RC_ASSERT(pte_dirty(modified) == pte_dirty(pte));
  RC_ASSERT(pte_young(modified) == pte_young(pte));
  RC_ASSERT(pte_special(modified) == pte_special(pte));
  RC_ASSERT(!pte_write(modified));
}

RC_GTEST_PROP(EntryEncoding, SwapEntriesRoundTripAndAreOneKind, ()) {
  const Pfn pfn(*rc::gen::inRange<uint64_t>(0, uint64_t{1} << SWP_PFN_BITS));
  for (const swp_entry_t e : all_kinds(pfn)) {
    const pte_t pte = swp_entry_to_pte(e);
    RC_ASSERT(!pte_none(pte));
    RC_ASSERT(!pte_present(pte));
    RC_ASSERT(!pte_protnone(pte));
    RC_ASSERT(is_swap_pte(pte));
    RC_ASSERT(pte_to_swp_entry(pte) == e);
    RC_ASSERT(swp_offset_pfn(e) == pfn);
    RC_ASSERT(is_pfn_swap_entry(e));
    RC_ASSERT(kinds_matching(e) == 1);
    RC_ASSERT(swp_type(e) >= MAX_SWAPFILES);
    // The same entry in a PMD is a non-present, non-leaf swap PMD.
    const pmd_t pmd = swp_entry_to_pmd(e);
    RC_ASSERT(is_swap_pmd(pmd) && !pmd_leaf(pmd) && pmd_to_swp_entry(pmd) == e);
  }
}

RC_GTEST_PROP(EntryEncoding, MigrationEntriesCarryYoungAndDirty, (bool young, bool dirty)) {
  const Pfn pfn(*rc::gen::inRange<uint64_t>(0, uint64_t{1} << SWP_PFN_BITS));
  for (swp_entry_t e :
       {make_readable_migration_entry(pfn), make_readable_exclusive_migration_entry(pfn),
        make_writable_migration_entry(pfn)}) {
    const unsigned type = swp_type(e);
    if (young) e = make_migration_entry_young(e);
    if (dirty) e = make_migration_entry_dirty(e);
    RC_ASSERT(swp_type(e) == type);
    RC_ASSERT(swp_offset_pfn(e) == pfn);
    RC_ASSERT(is_migration_entry_young(e) == young);
    RC_ASSERT(is_migration_entry_dirty(e) == dirty);
    RC_ASSERT(pte_to_swp_entry(swp_entry_to_pte(e)) == e);
  }
}

}  // namespace
}  // namespace pinmm
