// The stress mix: a clean machine gives a clean run, one input gives one
// run, and each of the run's counters notices what it counts (a write lost
// behind the oracle's back, a pin nobody recorded, a page never freed).
#include "pinmm/stress/stress.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "pinmm/gup/pin.h"
#include "pinmm/phys/memory_system.h"
#include "pinmm/phys/page_alloc.h"
#include "pinmm/vm/rmap.h"

namespace pinmm::stress {
namespace {

StressOptions small(uint64_t ops) {
  StressOptions o;
  o.machine = MachineConfig::tiny(Bytes::MiB(64), Bytes::MiB(32));
  o.machine.nodes.push_back({Bytes::MiB(32), Bytes::MiB(16)});
  o.machine.cma.push_back({"reserved", Bytes::MiB(8), 0});
  o.machine.hotplug.space = Bytes::MiB(8);
  o.machine.device_space = Bytes::MiB(16);
  o.machine.thp = ThpMode::kMadvise;
  o.threads = 2;
  o.seed = 3;
  o.max_ops = ops;
  o.duration = std::chrono::hours(1);  // bounded by ops, not time
  o.validate_every = std::chrono::milliseconds(200);
  return o;
}

// Under ThreadSanitizer too: two actors, every kind of operation.
TEST(StressConcurrent, AShortRunOfEveryOperationIsClean) {
  const StressResult r = run_stress(small(3000));
  for (const std::string& p : r.problems)
    ADD_FAILURE() << p;
  EXPECT_TRUE(r.ok()) << r.summary();
  EXPECT_GE(r.ops, 3000u);
  EXPECT_GE(r.checks, 2u) << "at least one quiescent check and the final ones";
  EXPECT_EQ(r.ops_by_kind.size(), 27u) << "every kind of operation ran";
}

TEST(Stress, TheSummaryIsTheDocumentedLine) {
  StressResult r;
  r.ops = 12;
  r.seconds = 1.25;
  r.violations = 1;
  r.lost_writes = 2;
  r.leaked_pages = 3;
  EXPECT_EQ(r.summary(),
            "stress: 12 ops in 1.2 s, 1 invariant violations, 2 lost writes, 3 "
            "leaked pages");
}

// The first small anonymous page a process maps: what a stray DMA or a
// lost migration copy would corrupt.
Page* some_user_page(MemorySystem& ms) {
  for (uint64_t pfn = 0; pfn < ms.boot_end_pfn().value(); ++pfn) {
    Page* p = ms.pfn_to_page(Pfn(pfn));
    if (p->refcount() > 0 && !PageReserved(p) && !p->is_tail() &&
        !folio_test_large(page_folio(p)) && folio_test_anon(page_folio(p)) && p->mapcount() > 0)
      return p;
  }
  return nullptr;
}

// Corrupted at the last quiescent check, the page is read back by the
// final audit before anything could write it again.
TEST(Stress, ALostWriteIsCounted) {
  StressOptions o = small(2000);
  bool corrupted = false;
  o.on_check = [&](MemorySystem& ms, uint64_t ops) {
    if (corrupted || ops < o.max_ops) return;
    if (Page* p = some_user_page(ms)) {
      const uint64_t garbage = 0xdeadbeefdeadbeefull;  // stamps are odd, this is too
      std::memcpy(ms.frames().frame(ms.page_to_pfn(p)), &garbage, sizeof garbage);
      corrupted = true;
    }
  };
  const StressResult r = run_stress(o);
  ASSERT_TRUE(corrupted);
  EXPECT_GE(r.lost_writes, 1u) << r.summary();
  EXPECT_FALSE(r.ok());
}

TEST(Stress, APinNobodyRecordedIsAViolation) {
  StressOptions o = small(500);
  Folio* leaked = nullptr;
  o.on_check = [&](MemorySystem& ms, uint64_t) {
    if (leaked != nullptr) return;
    if (Page* p = some_user_page(ms);
        p != nullptr && try_grab_folio(page_folio(p), 1, FOLL_PIN) == 0)
      leaked = page_folio(p);
  };
  const StressResult r = run_stress(o);
  ASSERT_NE(leaked, nullptr);
  EXPECT_GE(r.violations, 1u) << r.summary();
  EXPECT_GE(r.leaked_pages, 1u) << "the pinned page never went back";
}

TEST(Stress, APageNeverFreedIsALeak) {
  StressOptions o = small(500);
  bool taken = false;
  // __GFP_NOFAIL: the actors arm injected allocation failures, and which
  // of them is still armed at a check depends on the threads' timing.
  o.on_check = [&](MemorySystem& ms, uint64_t) {
    if (!taken) taken = alloc_pages(ms, GFP_KERNEL | __GFP_NOFAIL, Order(2)) != nullptr;
  };
  const StressResult r = run_stress(o);
  ASSERT_TRUE(taken);
  EXPECT_EQ(r.leaked_pages, 4u) << r.summary();
  EXPECT_EQ(r.lost_writes, 0u);
}

// The fuzzer's entry: one input, one run, every time.
TEST(Stress, AnOpSequenceIsDeterministic) {
  std::vector<uint8_t> bytes(1024);
  uint64_t x = 88172645463325252ull;
  for (uint8_t& b : bytes) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b = static_cast<uint8_t>(x);
  }
  const StressResult a = run_op_sequence(bytes);
  const StressResult b = run_op_sequence(bytes);
  for (const std::string& p : a.problems)
    ADD_FAILURE() << p;
  EXPECT_TRUE(a.ok()) << a.summary();
  EXPECT_GT(a.ops, 100u);
  EXPECT_EQ(a.ops, b.ops);
  EXPECT_EQ(a.ops_by_kind, b.ops_by_kind);
  EXPECT_EQ(a.checks, a.ops / 8 + 3)
      << "a full check every eighth operation, three at the end (before and after the reads, "
         "after the teardown)";
}

// The fuzzer's seeds, each a clean run: the regress-* inputs are the ones
// that once found a bug (regress-migration-entry-left: migrate_vma
// collected a PTE-mapped THP's page as "not migrating" but still turned its
// PTE into a migration entry, so the final read waited forever).
TEST(Stress, EverySeedOfTheOpsCorpusIsClean) {
  size_t seeds = 0;
  for (const auto& entry : std::filesystem::directory_iterator(PINMM_OPS_CORPUS_DIR)) {
    std::ifstream in(entry.path(), std::ios::binary);
    const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in), {}};
    const StressResult r = run_op_sequence(bytes);
    EXPECT_TRUE(r.ok()) << entry.path().filename() << ": " << r.summary();
    for (const std::string& p : r.problems)
      ADD_FAILURE() << entry.path().filename() << ": " << p;
    ++seeds;
  }
  EXPECT_GE(seeds, 9u);
}

TEST(Stress, AnEmptyInputIsAnEmptyRun) {
  const StressResult r = run_op_sequence({});
  EXPECT_TRUE(r.ok()) << r.summary();
  EXPECT_EQ(r.ops, 0u);
}

}  // namespace
}  // namespace pinmm::stress
