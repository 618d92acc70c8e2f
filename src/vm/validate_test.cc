// validate_vm() catches each kind of broken vm state it promises to catch:
// every case corrupts one thing, expects the matching problem, repairs it
// and expects a clean report again.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "pinmm/base/rcu.h"
#include "pinmm/phys/folio_lock.h"
#include "pinmm/vm/migrate_entries.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

using ::testing::HasSubstr;
using testing::page_at;
using testing::VmMachine;

// The PTE slot for addr (its page tables must exist).
pte_t* pte_slot(Mm& mm, VirtAddr addr) {
  return pte_offset_map(mm, pmdp_get(pmd_offset(mm, addr)), addr);
}

std::string problems(VmContext& vm) { return validate_vm(vm).to_string(); }

constexpr pgprot_t kUserReadOnly{_PAGE_PRESENT | _PAGE_USER};

class ValidateVm : public ::testing::Test {
 protected:
  void SetUp() override {
    // Fixed and PMD-aligned: both pages share one PTE table.
    ASSERT_TRUE(vm_mmap(*mm, a, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
                    .ok());
    ASSERT_TRUE(write_user<uint8_t>(*mm, a, 1).ok());
    lru_add_drain_all(*m.ms);
    ASSERT_TRUE(validate_vm(m.vm).ok()) << problems(m.vm);
  }

  VmMachine m;
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a{0x40000000};
};

TEST_F(ValidateVm, AnUnaccountedSecondMapping) {
  pte_t* second = pte_slot(*mm, a + PAGE_SIZE);
  set_pte(second, ptep_get(pte_slot(*mm, a)));
  const std::string p = problems(m.vm);
  EXPECT_THAT(p, HasSubstr("mapcount 1 but 2 mappings found"));
  EXPECT_THAT(p, HasSubstr("refcount 1 below the 2 references"));
  EXPECT_THAT(p, HasSubstr("rmap finds 1 mappings, the page tables hold 2"));
  EXPECT_THAT(p, HasSubstr("RSS counter"));
  EXPECT_THAT(p, HasSubstr("anon exclusive but mapped 2 times"));
  set_pte(second, pte_t{0});
  EXPECT_VM_VALID(m.vm);
}

TEST_F(ValidateVm, AnEntryForAFreePage) {
  Page* page = alloc_pages(*m.ms, GFP_HIGHUSER_MOVABLE, Order(0));
  ASSERT_NE(page, nullptr);
  const Pfn pfn = m.ms->page_to_pfn(page);
  free_page(page);
  pte_t* slot = pte_slot(*mm, a + PAGE_SIZE);
  set_pte(slot, pfn_pte(pfn, kUserReadOnly));
  EXPECT_THAT(problems(m.vm), HasSubstr("which is free"));
  set_pte(slot, pte_t{0});
  EXPECT_VM_VALID(m.vm);
}

TEST_F(ValidateVm, AWritableAnonPageThatIsNotExclusive) {
  Page* page = page_at(*mm, a);
  page->clear(PG_anon_exclusive);
  EXPECT_THAT(problems(m.vm), HasSubstr("mapped writable"));
  page->set(PG_anon_exclusive);
  EXPECT_VM_VALID(m.vm);
}

TEST_F(ValidateVm, ACacheReferenceTooFew) {
  auto file = File::create(m.vm, FsType::kTmpfs, "f", PAGE_SIZE);
  auto f = vm_mmap(*mm, VirtAddr(0), PAGE_SIZE, PROT_READ, MAP_SHARED, file);
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(testing::read_byte(*mm, *f), 0);
  lru_add_drain_all(*m.ms);
  Folio* folio = page_folio(page_at(*mm, *f));
  ASSERT_EQ(folio_ref_count(folio), 2);  // the cache's and the mapping's
  folio_ref_add(folio, -1);
  EXPECT_THAT(problems(m.vm), HasSubstr("refcount 1 below the 2 references"));
  folio_ref_add(folio, 1);
  EXPECT_VM_VALID(m.vm);
}

TEST_F(ValidateVm, RssAndPageTableCounters) {
  mm->add_mm_counter(MM_ANONPAGES, 1);
  EXPECT_THAT(problems(m.vm), HasSubstr("RSS counter"));
  mm->add_mm_counter(MM_ANONPAGES, -1);
  m.ms->node(0).stats().add(NR_PAGETABLE, 1);
  EXPECT_THAT(problems(m.vm), HasSubstr("nr_page_table_pages says"));
  m.ms->node(0).stats().add(NR_PAGETABLE, -1);
  EXPECT_VM_VALID(m.vm);
}

TEST_F(ValidateVm, AnEntryOutsideEveryVma) {
  pte_t* slot = pte_slot(*mm, a);
  const pte_t saved = ptep_get(slot);
  ASSERT_TRUE(vm_munmap(*mm, a + PAGE_SIZE, PAGE_SIZE).ok());
  // The page tables stay (the first page is still mapped): plant an entry
  // in the unmapped second slot.
  pte_t* stray = slot + 1;
  set_pte(stray, pte_mkspecial(pfn_pte(m.ms->zero_pfn(), kUserReadOnly)));
  EXPECT_THAT(problems(m.vm), HasSubstr("lies outside every VMA"));
  set_pte(stray, pte_t{0});
  EXPECT_EQ(ptep_get(slot), saved);
  EXPECT_VM_VALID(m.vm);
}

// A migration that returned without removing its entries leaves a fault
// waiting on the folio lock forever; at a quiescent point every entry is
// a bug, whether or not its folio is still locked.
TEST_F(ValidateVm, AMigrationEntryLeftBehind) {
  Folio* folio = page_folio(page_at(*mm, a));
  folio_get(folio);  // the migration's own reference (the mapping's goes)
  folio_lock(folio);
  try_to_migrate(folio, 0);
  EXPECT_THAT(problems(m.vm), HasSubstr("migration entry at 0x40000000 for pfn"));
  remove_migration_ptes(folio, folio);
  folio_unlock(folio);
  folio_put(folio);
  EXPECT_VM_VALID(m.vm);
}

}  // namespace
}  // namespace pinmm
