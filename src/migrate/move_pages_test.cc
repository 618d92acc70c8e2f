// move_pages(2), and the kernel's tools/testing/selftests/mm/migration.c
// cases (KERNEL-SPEC 10.4) on a two-node machine: one thread moves a page
// back and forth between the nodes while readers (threads of the same
// process, or of forked processes) keep reading it; also writers whose
// every last write must survive.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <deque>
#include <thread>
#include <vector>

#include "pinmm/migrate/move_pages.h"
#include "testing/concurrency.h"
#include "testing/migrate.h"

namespace pinmm {
namespace {

using testing::nid_at;

class MovePages : public ::testing::Test {
 protected:
  MovePages() : m(testing::two_node_machine()), mm(Mm::create(m.vm)) {}
  testing::VmMachine m;
  MmHandle mm;
};

TEST_F(MovePages, MovesAndReportsStatusPerPage) {
  const VirtAddr a = testing::map_anon(*mm, 4 * PAGE_SIZE);
  testing::fill_pages(*mm, a, 3 * PAGE_SIZE, 0x42);  // the 4th page stays unpopulated
  const std::array<VirtAddr, 5> pages{a, a + PAGE_SIZE, a + 2 * PAGE_SIZE, a + 3 * PAGE_SIZE,
                                      VirtAddr(0x1000)};
  const std::array<int, 5> nodes{1, 1, 0, 1, 1};
  std::array<int, 5> status{};
  auto r = move_pages(*mm, pages, nodes, status, MPOL_MF_MOVE);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 0);
  EXPECT_EQ(status[0], 1);
  EXPECT_EQ(status[1], 1);
  EXPECT_EQ(status[2], 0);        // already there
  EXPECT_EQ(status[3], -ENOENT);  // nothing mapped
  EXPECT_EQ(status[4], -EFAULT);  // no VMA
  EXPECT_EQ(nid_at(*mm, a), 1);
  EXPECT_EQ(testing::read_byte(*mm, a + PAGE_SIZE), 0x42);
  // Without nodes: only the status.
  std::array<int, 5> where{};
  ASSERT_TRUE(move_pages(*mm, pages, {}, where, 0).ok());
  EXPECT_EQ(where[0], 1);
  EXPECT_EQ(where[2], 0);
  EXPECT_EQ(where[3], -ENOENT);
  EXPECT_EQ(where[4], -EFAULT);
  EXPECT_VM_VALID(m.vm);
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
}

TEST_F(MovePages, CallErrors) {
  const VirtAddr a = testing::map_anon(*mm, PAGE_SIZE);
  testing::fill_pages(*mm, a, PAGE_SIZE, 1);
  const std::array<VirtAddr, 1> pages{a};
  std::array<int, 1> status{};
  const std::array<int, 1> bad_node{2};
  EXPECT_EQ(move_pages(*mm, pages, bad_node, status, MPOL_MF_MOVE).error().code(), ENODEV);
  const std::array<int, 1> node1{1};
  EXPECT_EQ(move_pages(*mm, pages, node1, status, 1 << 5).error().code(), EINVAL);
  EXPECT_EQ(nid_at(*mm, a), 0);
}

TEST_F(MovePages, ZeroPageAndSharedPages) {
  const VirtAddr a = testing::map_anon(*mm, 2 * PAGE_SIZE);
  (void)testing::read_byte(*mm, a);  // maps the shared zero page
  testing::fill_pages(*mm, a + PAGE_SIZE, PAGE_SIZE, 5);
  auto child = dup_mm(*mm);
  ASSERT_TRUE(child.ok());
  const std::array<VirtAddr, 2> pages{a, a + PAGE_SIZE};
  const std::array<int, 2> nodes{1, 1};
  std::array<int, 2> status{};
  ASSERT_TRUE(move_pages(*mm, pages, nodes, status, MPOL_MF_MOVE).ok());
  EXPECT_EQ(status[0], -EFAULT);
  EXPECT_EQ(status[1], -EACCES);  // mapped by the child too
  ASSERT_TRUE(move_pages(*mm, pages, nodes, status, MPOL_MF_MOVE_ALL).ok());
  EXPECT_EQ(status[1], 1);
  EXPECT_EQ(nid_at(**child, a + PAGE_SIZE), 1);
  EXPECT_VM_VALID(m.vm);
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
}

TEST_F(MovePages, PinnedPageIsReportedNotMigrated) {
  const VirtAddr a = testing::map_anon(*mm, 2 * PAGE_SIZE);
  testing::fill_pages(*mm, a, 2 * PAGE_SIZE, 9);
  lru_add_drain_all(*m.ms);
  Folio* pinned = page_folio(testing::page_at(*mm, a));
  folio_ref_add(pinned, GUP_PIN_COUNTING_BIAS);
  const std::array<VirtAddr, 2> pages{a, a + PAGE_SIZE};
  const std::array<int, 2> nodes{1, 1};
  std::array<int, 2> status{};
  auto r = move_pages(*mm, pages, nodes, status, MPOL_MF_MOVE);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 1);  // best effort: one page not migrated
  EXPECT_EQ(nid_at(*mm, a), 0);
  EXPECT_EQ(nid_at(*mm, a + PAGE_SIZE), 1);
  EXPECT_FALSE(folio_ref_sub_and_test(pinned, GUP_PIN_COUNTING_BIAS));
  EXPECT_VM_VALID(m.vm);
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
}

// ---- migration.c ----

constexpr int kRounds = 150;
constexpr int kMaxRetries = 100;  // MAX_RETRIES

// Readers: one thread per entry of `mms` reading addr in a tight loop
// through that Mm (the same one for threads of one process), checking the
// value. Each counts its reads.
struct Readers {
  // Returns once every reader has read at least once.
  Readers(std::vector<Mm*> mms, VirtAddr addr, uint64_t expect) : reads(mms.size()) {
    for (size_t r = 0; r < mms.size(); ++r) {
      threads.spawn([this, r, mm = mms[r], addr, expect](std::stop_token stop) {
        while (!stop.stop_requested()) {
          auto v = read_user<uint64_t>(*mm, addr);
          if (!v.ok() || *v != expect) bad.fetch_add(1);
          reads[r].advance();
        }
      });
    }
    for (const testing::Progress& p : reads)
      EXPECT_TRUE(p.wait_for(1)) << "a reader never started";
  }
  // Waits until every reader has finished a read it started after now: a
  // transient reference any of them held is gone.
  bool each_read_again() const {
    std::vector<uint64_t> now;
    for (const testing::Progress& p : reads)
      now.push_back(p.get() + 2);
    for (size_t r = 0; r < reads.size(); ++r)
      if (!reads[r].wait_for(now[r])) return false;
    return true;
  }
  uint64_t total_reads() const {
    uint64_t n = 0;
    for (const testing::Progress& p : reads)
      n += p.get();
    return n;
  }
  void join() { threads.stop_and_join(); }

  std::atomic<uint64_t> bad{0};
  std::deque<testing::Progress> reads;
  testing::ScopedThreads threads;  // last: stopped before the counters go
};

// migrate(): moves the page at `addr` between nodes 0 and 1 for kRounds
// successful moves; a positive return is retried up to kMaxRetries times in
// a row. Returns 0 like the selftest's helper, -1 on failure.
//
// A reader may hold a transient reference: a fault that found the entry
// cleared for a moment (between the clear and the migration entry) goes to
// the page cache and waits for the folio lock with a reference, failing
// every pass until the migration gives up and unlocks. As in the kernel;
// the selftest's syscall latency lets the reader finish. Here a failed
// attempt waits until every reader has finished a read since (progress, not
// time), so MAX_RETRIES failures in a row mean a real livelock.
int migrate_back_and_forth(Mm& mm, VirtAddr addr, const Readers& readers) {
  int retries = 0;
  for (int done = 0; done < kRounds;) {
    const int target = nid_at(mm, addr) == 0 ? 1 : 0;
    const std::array<VirtAddr, 1> pages{addr};
    const std::array<int, 1> nodes{target};
    std::array<int, 1> status{};
    auto r = move_pages(mm, pages, nodes, status, MPOL_MF_MOVE_ALL);
    if (!r.ok()) return -1;
    if (*r > 0) {
      if (++retries > kMaxRetries) return -1;
      if (!readers.each_read_again()) return -1;
      continue;
    }
    retries = 0;
    ++done;
  }
  return 0;
}

class MigrationSelftest : public MovePages {
 protected:
  // Runs the selftest body: readers in `mms`, the move loop in mm. Each
  // reader has touched the page before the loop starts, as the selftest's
  // children have by the time its parent starts migrating.
  void run(VirtAddr addr, std::vector<Mm*> reader_mms) {
    ASSERT_TRUE(write_user<uint64_t>(*mm, addr, 0x600dcafeull).ok());
    for (Mm* r : reader_mms)
      ASSERT_EQ(*read_user<uint64_t>(*r, addr), 0x600dcafeull);
    const int64_t success_before = m.ms->events().get(PGMIGRATE_SUCCESS);
    Readers readers(std::move(reader_mms), addr, 0x600dcafeull);
    EXPECT_EQ(migrate_back_and_forth(*mm, addr, readers), 0);
    readers.join();
    EXPECT_EQ(readers.bad.load(), 0u);
    EXPECT_GT(readers.total_reads(), 0u);
    // Every successful move was counted: kRounds folios of this size.
    Page* page = testing::page_at(*mm, addr);
    ASSERT_NE(page, nullptr);
    EXPECT_EQ(m.ms->events().get(PGMIGRATE_SUCCESS) - success_before,
              int64_t{kRounds} * static_cast<int64_t>(folio_nr_pages(page_folio(page))));
    EXPECT_VM_VALID(m.vm);
    EXPECT_MIGRATE_QUIESCENT(*m.ms);
  }
};

TEST_F(MigrationSelftest, ConcurrentPrivateAnon) {
  const VirtAddr a = testing::map_anon(*mm, PAGE_SIZE);
  run(a, {mm.get(), mm.get()});
}

TEST_F(MigrationSelftest, ConcurrentSharedAnon) {
  const VirtAddr a = testing::map_anon(*mm, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED);
  ASSERT_TRUE(write_user<uint64_t>(*mm, a, 0x600dcafeull).ok());
  auto c1 = dup_mm(*mm);
  auto c2 = dup_mm(*mm);
  ASSERT_TRUE(c1.ok() && c2.ok());
  run(a, {c1->get(), c2->get()});
}

TEST_F(MigrationSelftest, ConcurrentPrivateAnonThp) {
  const VirtAddr raw = testing::map_anon(*mm, 2 * HPAGE_PMD_SIZE);
  const VirtAddr a((raw.value() + HPAGE_PMD_SIZE - 1) & HPAGE_PMD_MASK);
  ASSERT_TRUE(do_madvise(*mm, a, HPAGE_PMD_SIZE, MADV_HUGEPAGE).ok());
  ASSERT_TRUE(write_user<uint64_t>(*mm, a, 0x600dcafeull).ok());
  ASSERT_TRUE(pmd_leaf(testing::pmd_at(*mm, a)));
  run(a, {mm.get(), mm.get()});
  EXPECT_TRUE(pmd_leaf(testing::pmd_at(*mm, a)));
  EXPECT_EQ(m.ms->events().get(THP_MIGRATION_SUCCESS), kRounds);
}

TEST_F(MigrationSelftest, ConcurrentSharedAnonThp) {
  // MAP_SHARED anonymous memory is shmem: with shmem THP off (the default)
  // it is made of small pages, as on the kernel the selftest runs on.
  const VirtAddr raw =
      testing::map_anon(*mm, 2 * HPAGE_PMD_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED);
  const VirtAddr a((raw.value() + HPAGE_PMD_SIZE - 1) & HPAGE_PMD_MASK);
  ASSERT_TRUE(do_madvise(*mm, a, HPAGE_PMD_SIZE, MADV_HUGEPAGE).ok());
  ASSERT_TRUE(write_user<uint64_t>(*mm, a, 0x600dcafeull).ok());
  auto c1 = dup_mm(*mm);
  ASSERT_TRUE(c1.ok());
  run(a, {c1->get()});
}

TEST_F(MigrationSelftest, ConcurrentPrivateAnonHtlb) {
  auto r = vm_mmap(*mm, VirtAddr(0), HPAGE_PMD_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB);
  ASSERT_TRUE(r.ok());
  run(*r, {mm.get(), mm.get()});
}

TEST_F(MigrationSelftest, ConcurrentSharedAnonHtlb) {
  auto r = vm_mmap(*mm, VirtAddr(0), HPAGE_PMD_SIZE, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(write_user<uint64_t>(*mm, *r, 0x600dcafeull).ok());
  auto c1 = dup_mm(*mm);
  ASSERT_TRUE(c1.ok());
  run(*r, {c1->get()});
}

// Writers keep writing known patterns while every page moves back and
// forth; afterwards each page holds, in every byte, the last value its
// writer wrote.
TEST_F(MovePages, ConcurrentWritersLoseNoWrite) {
  constexpr int kWriters = 2;
  constexpr uint64_t kPagesPerWriter = 16;
  constexpr uint64_t kPages = kWriters * kPagesPerWriter;
  const VirtAddr a = testing::map_anon(*mm, kPages * PAGE_SIZE);
  testing::fill_pages(*mm, a, kPages * PAGE_SIZE, 0);
  std::array<std::array<uint8_t, kPagesPerWriter>, kWriters> last{};
  std::atomic<int> failed_writes{0};
  testing::ScopedThreads writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.spawn([&, w](std::stop_token stop) {
      std::vector<std::byte> buf(PAGE_SIZE);
      for (uint64_t round = 1; !stop.stop_requested(); ++round) {
        for (uint64_t i = 0; i < kPagesPerWriter; ++i) {
          const auto value = static_cast<uint8_t>(round * 31 + i);
          std::fill(buf.begin(), buf.end(), std::byte{value});
          const VirtAddr p = a + (w * kPagesPerWriter + i) * PAGE_SIZE;
          if (!copy_to_user(*mm, p, buf).ok()) failed_writes++;
          last[w][i] = value;
        }
      }
    });
  }
  std::vector<VirtAddr> pages;
  for (uint64_t i = 0; i < kPages; ++i)
    pages.push_back(a + i * PAGE_SIZE);
  std::vector<int> status(kPages);
  const int64_t migrated0 = m.ms->events().get(PGMIGRATE_SUCCESS);
  // At least 40 passes, and until pages have moved under the writers.
  const uint64_t rounds = testing::repeat_until(
      40, [&] { return m.ms->events().get(PGMIGRATE_SUCCESS) > migrated0; },
      [&](uint64_t round) {
        const std::vector<int> nodes(kPages, static_cast<int>((round + 1) % 2));
        ASSERT_TRUE(move_pages(*mm, pages, nodes, status, MPOL_MF_MOVE).ok());
      });
  writers.stop_and_join();
  ASSERT_NE(rounds, 0u) << "no page moved before the hang bound";
  EXPECT_EQ(failed_writes.load(), 0);
  std::vector<std::byte> back(PAGE_SIZE);
  for (int w = 0; w < kWriters; ++w) {
    for (uint64_t i = 0; i < kPagesPerWriter; ++i) {
      ASSERT_TRUE(copy_from_user(*mm, back, a + (w * kPagesPerWriter + i) * PAGE_SIZE).ok());
      for (std::byte b : back)
        ASSERT_EQ(b, std::byte{last[w][i]}) << "writer " << w << " page " << i;
    }
  }
  EXPECT_VM_VALID(m.vm);
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
}

}  // namespace
}  // namespace pinmm
