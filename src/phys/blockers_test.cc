// The records of "who blocks" (phys/blockers.h): an operation's blockers
// across retries, how they read, and the machine's log.
#include "pinmm/phys/blockers.h"

#include <gtest/gtest.h>

namespace pinmm {
namespace {

PageBlocker pinned(uint64_t pfn, uint64_t folio_pfn) {
  PageBlocker b;
  b.pfn = Pfn(pfn);
  b.folio_pfn = Pfn(folio_pfn);
  b.reason = BlockReason::kPinned;
  b.kind = "anon";
  b.refcount = 1025;
  b.mapcount = 1;
  b.expected_refs = 1;
  b.pins = 1;
  PinOwner o;
  o.pid = 7;
  o.name = "app";
  o.label = "rdma mr0";
  o.entry = "pin_user_pages_fast";
  o.longterm = true;
  o.seq = 3;
  o.pins = 1;
  b.owners.push_back(o);
  return b;
}

// A folio met again on a retry is named once but counted again; past
// kMaxBlockers folios only the count grows.
TEST(Blockers, AnOperationNamesEachFolioOnce) {
  BlockedOperation op;
  op.add(pinned(0x100, 0x100));
  op.add(pinned(0x101, 0x100));  // the same folio
  op.add(pinned(0x200, 0x200));
  EXPECT_EQ(op.blockers.size(), 2u);
  EXPECT_EQ(op.nr_blockers, 2u);
  for (uint64_t i = 0; i < BlockedOperation::kMaxBlockers; ++i)
    op.add(pinned(0x1000 + i, 0x1000 + i));
  EXPECT_EQ(op.blockers.size(), BlockedOperation::kMaxBlockers);
  EXPECT_EQ(op.nr_blockers, 2 + BlockedOperation::kMaxBlockers);
  op.clear_blockers();
  EXPECT_TRUE(op.blockers.empty());
  EXPECT_EQ(op.nr_blockers, 0u);
}

TEST(Blockers, HowTheyRead) {
  BlockedOperation op;
  op.operation = "offline_pages";
  op.detail = "retry limit";
  op.err = -EBUSY;
  op.add(pinned(0x1234, 0x1234));
  const std::vector<std::string> lines = op.lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "offline_pages: retry limit (EBUSY), 1 blocking folio(s)");
  EXPECT_EQ(lines[1],
            "  pfn 0x1234 (anon, 1 page): pinned x1 refcount 1025 mapcount 1 (expected 1); task 7 "
            "'app' [rdma mr0] x1 via pin_user_pages_fast longterm seq 3");
}

// since(last_seq()) taken before an operation is what it recorded; the
// log keeps the newest kCapacity records.
TEST(Blockers, TheLogTellsWhatAnOperationRecorded) {
  BlockerLog log;
  EXPECT_EQ(log.last_seq(), 0u);
  BlockedOperation a;
  a.operation = "a";
  EXPECT_EQ(log.add(a), 1u);
  const uint64_t before = log.last_seq();
  BlockedOperation b;
  b.operation = "b";
  log.add(b);
  log.add(b);
  const std::vector<BlockedOperation> after = log.since(before);
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0].operation, "b");
  EXPECT_EQ(after[0].seq, 2u);
  for (size_t i = 0; i < BlockerLog::kCapacity; ++i)
    log.add(b);
  EXPECT_EQ(log.since(0).size(), BlockerLog::kCapacity);
  EXPECT_EQ(log.last_seq(), 3 + BlockerLog::kCapacity);
  log.clear();
  EXPECT_TRUE(log.since(0).empty());
}

}  // namespace
}  // namespace pinmm
