// Non-LRU movable pages: a balloon-like driver whose pages migration moves
// through its movable_operations.
#include <gtest/gtest.h>

#include <set>

#include "pinmm/migrate/movable_ops.h"
#include "pinmm/phys/folio_lock.h"
#include "pinmm/phys/page_alloc.h"
#include "testing/migrate.h"

namespace pinmm {
namespace {

// Holds movable pages (like virtio-balloon) and stamps each with its slot.
class Balloon : public MovableOperations {
 public:
  explicit Balloon(MemorySystem& ms) : ms_(ms) {}
  ~Balloon() override {
    for (Page* p : pages_) {
      clear_page_movable(p);
      p->set_mapping(0);
      put_page(p);
    }
  }
  Page* inflate(uint8_t stamp) {
    Page* p = alloc_pages(ms_, GFP_HIGHUSER_MOVABLE, Order(0));
    std::memset(ms_.frames().frame(page_to_pfn(p)), stamp, PAGE_SIZE);
    set_page_movable(p, this);
    pages_.insert(p);
    return p;
  }
  bool isolate_page(Page* page) override {
    ++isolations;
    return pages_.count(page) != 0;
  }
  int migrate_page(Page* dst, Page* src, MigrateMode) override {
    if (transient_failures > 0) {
      --transient_failures;
      return -EAGAIN;
    }
    ms_.frames().copy(page_to_pfn(dst), page_to_pfn(src), PageCount(1));
    pages_.erase(src);
    pages_.insert(dst);
    folio_get(page_folio(dst));  // the balloon's reference moves to dst
    set_page_movable(dst, this);
    clear_page_movable(src);
    put_page(src);
    return MIGRATEPAGE_SUCCESS;
  }
  void putback_page(Page*) override { ++putbacks; }
  bool holds(Page* p) const { return pages_.count(p) != 0; }
  uint8_t byte_of(Page* p) const {
    return static_cast<uint8_t>(*ms_.frames().frame(page_to_pfn(p)));
  }
  int isolations = 0;
  int putbacks = 0;
  int transient_failures = 0;

 private:
  MemorySystem& ms_;
  std::set<Page*> pages_;
};

class MovableOps : public ::testing::Test {
 protected:
  MovableOps() : m(testing::two_node_machine()), balloon(*m.ms) {}
  testing::VmMachine m;
  Balloon balloon;
};

TEST_F(MovableOps, DriverPageMigratesThroughItsOps) {
  Page* p = balloon.inflate(0xb1);
  ASSERT_EQ(page_to_nid(p), 0);
  testing::FolioList list;
  ASSERT_TRUE(isolate_folio_to_list(page_folio(p), &list.head));
  EXPECT_TRUE(folio_test_isolated(page_folio(p)));
  EXPECT_EQ(
      m.ms->node(0).stats().get(NR_ISOLATED_FILE) + m.ms->node(0).stats().get(NR_ISOLATED_ANON),
      0);  // movable_ops pages are not counted as isolated LRU pages
  // Already isolated: a second isolation is refused.
  EXPECT_FALSE(isolate_movable_page(p));
  balloon.transient_failures = 2;  // retried like any -EAGAIN
  EXPECT_EQ(testing::migrate_to(*m.ms, list, 1), 0);
  EXPECT_FALSE(balloon.holds(p));
  EXPECT_EQ(m.ms->events().get(PGMIGRATE_SUCCESS), 1);
  Page* moved = nullptr;
  for (Pfn pfn{0}; pfn < m.ms->max_pfn(); pfn += PageCount(1)) {
    Page* q = m.ms->pfn_to_page(pfn);
    if (balloon.holds(q)) moved = q;
  }
  ASSERT_NE(moved, nullptr);
  EXPECT_EQ(page_to_nid(moved), 1);
  EXPECT_EQ(balloon.byte_of(moved), 0xb1);
  EXPECT_EQ(p->refcount(), 0);  // the old page went back to the allocator
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
}

TEST_F(MovableOps, FailedPageGoesBackToTheDriver) {
  Page* p = balloon.inflate(0xb2);
  testing::FolioList list;
  ASSERT_TRUE(isolate_folio_to_list(page_folio(p), &list.head));
  balloon.transient_failures = 1000;
  EXPECT_EQ(testing::migrate_to(*m.ms, list, 1), 1);
  putback_movable_pages(&list.head);
  EXPECT_EQ(balloon.putbacks, 1);
  EXPECT_FALSE(folio_test_isolated(page_folio(p)));
  EXPECT_TRUE(balloon.holds(p));
  EXPECT_EQ(p->refcount(), 1);
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
}

TEST_F(MovableOps, ValidateFindsAStrayIsolatedPage) {
  Page* p = balloon.inflate(1);
  folio_set_isolated(page_folio(p));
  const auto r = validate_migrate(*m.ms, true);
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.to_string().find("still isolated"), std::string::npos);
  folio_clear_isolated(page_folio(p));
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
}

TEST_F(MovableOps, DriverMayRefuseIsolation) {
  Page* p = alloc_pages(*m.ms, GFP_HIGHUSER_MOVABLE, Order(0));
  set_page_movable(p, &balloon);  // movable, but not one of the balloon's pages
  EXPECT_FALSE(isolate_movable_page(p));
  EXPECT_EQ(balloon.isolations, 1);
  EXPECT_EQ(p->refcount(), 1);
  p->set_mapping(0);
  put_page(p);
}

}  // namespace
}  // namespace pinmm
