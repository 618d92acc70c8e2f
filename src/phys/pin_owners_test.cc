// The pin-owner table on its own: records, release order, snapshots and
// validation, with pins taken by hand (gup/pin_owners_test.cc covers the
// table as GUP fills it).
#include "pinmm/phys/pin_owners.h"

#include <gtest/gtest.h>

#include "pinmm/phys/gfp.h"
#include "pinmm/phys/page_alloc.h"
#include "testing/machines.h"

namespace pinmm {
namespace {

class PinOwnerTable : public ::testing::Test {
 protected:
  PinOwnerTable()
      : ms(testing::boot_tiny(Bytes::MiB(16))), table(ms->mem_map(), ms->max_pfn().value()) {}
  // A small folio holding `pins` pins the way GUP counts them.
  Folio* pinned_small(int pins) {
    Folio* f = folio_alloc(*ms, GFP_KERNEL, Order(0));
    folio_ref_add(f, pins * GUP_PIN_COUNTING_BIAS);
    return f;
  }
  void drop(Folio* f, int pins) {
    folio_put_refs(f, pins * GUP_PIN_COUNTING_BIAS);
    folio_put(f);
  }
  std::unique_ptr<MemorySystem> ms;
  PinOwners table;
};

TEST_F(PinOwnerTable, RecordsRunsAndReleasesOwnPinsFirst) {
  Folio* a = pinned_small(3);
  Folio* b = pinned_small(1);
  Folio* const call1[] = {a, a, b};
  table.record(call1, "test_pin", true);
  {
    PinOwnerScope s(PinOwnerKind::kDevice, "nic", "mr");
    Folio* const call2[] = {a};
    table.record(call2, "test_pin", false);
  }
  auto rec = table.owners_of(a);
  ASSERT_EQ(rec.size(), 2u);
  EXPECT_EQ(rec[0].pins, 2u);
  EXPECT_TRUE(rec[0].longterm);
  EXPECT_EQ(rec[1].name, "nic");
  EXPECT_EQ(rec[0].seq + 1, rec[1].seq);
  EXPECT_EQ(table.nr_folios(), 2u);
  EXPECT_TRUE(table.validate().ok()) << table.validate().to_string();
  {
    PinOwnerScope s(PinOwnerKind::kDevice, "nic", "mr");
    table.release(a, 1);
  }
  rec = table.owners_of(a);
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_EQ(rec[0].kind, PinOwnerKind::kTask);
  const auto snap = table.snapshot();
  ASSERT_EQ(snap.size(), 2u);
  EXPECT_LT(snap[0].first, snap[1].first);
  Folio* const rest[] = {a, a, b};
  table.release(rest);
  EXPECT_EQ(table.nr_folios(), 0u);
  drop(a, 3);
  drop(b, 1);
}

TEST_F(PinOwnerTable, ReleasingUnrecordedPinsIsHarmless) {
  Folio* a = pinned_small(1);
  table.release(a, 5);
  Folio* const one[] = {a};
  table.record(one, "test_pin", false);
  table.release(a, 5);  // more than recorded: the record goes, nothing else
  EXPECT_EQ(table.nr_folios(), 0u);
  drop(a, 1);
}

TEST_F(PinOwnerTable, ValidateComparesRecordsWithPinCounts) {
  Folio* a = pinned_small(1);
  Folio* const twice[] = {a, a};
  table.record(twice, "test_pin", false);
  const auto report = table.validate();
  EXPECT_FALSE(report.ok());
  EXPECT_NE(report.to_string().find("records hold 2 pins, the folio has 1"), std::string::npos);
  table.release(a, 2);
  drop(a, 1);
}

}  // namespace
}  // namespace pinmm
