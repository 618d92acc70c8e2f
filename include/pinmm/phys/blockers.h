// Who or what keeps memory from moving: the records behind "who pins what".
//
// Linux counterpart: none as such. When offline_pages, alloc_contig_range or
// a long-term pin's migration fails, the kernel at most dump_page()s a
// rate-limited sample to the log ("migrating pfn … failed", "isolation
// failed"); it cannot say who holds a pin. pinmm describes every page that
// blocked an operation — why (pinned, extra references, an unmovable kernel
// allocation, isolation or migration failure), its counts, and for pins
// every owner from the pin-owner table — and keeps the latest failed
// operations in a log on the machine, so a failure deep inside GUP can be
// explained after the fact.
//
// This is the home of "who blocks": the records, how an operation collects
// them across its retries (add, clear_blockers), how they read (format_*),
// and the machine's log of them. The mechanisms that fail (offline_pages,
// alloc_contig_range, the long-term pin's migration) feed it; describing
// one page (migrate/blockers.h's describe_blocker) is the one part that
// lives higher, since telling extra references from expected ones needs
// the vm layer's mapcounts.
//
// Thread safety: BlockerLog is internally locked (a leaf lock).
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "pinmm/base/locks.h"
#include "pinmm/base/types.h"
#include "pinmm/phys/pin_owners.h"

namespace pinmm {

enum class BlockReason : uint8_t {
  kPinned,           // folio_maybe_dma_pinned(): FOLL_PIN holders, named below
  kReferenced,       // more references than its mappings and caches explain (FOLL_GET …)
  kUnmovable,        // a kernel allocation or reserved memory: never movable
  kIsolationFailed,  // could not be taken off its list (not on the LRU, already isolated)
  kMigrationFailed,  // migration failed for another reason (err says which)
  kBusy,             // still in use when checked again, for no reason pinmm can name
};
const char* block_reason_name(BlockReason r);  // "pinned", "extra references", …

// One page that blocked an operation.
struct PageBlocker {
  Pfn pfn;        // the page that blocked
  Pfn folio_pfn;  // the head of its folio
  uint64_t nr_pages = 1;
  BlockReason reason = BlockReason::kBusy;
  std::string kind;  // "anon", "file", "shmem", "hugetlb", "slab", "page table", "reserved", …
  int refcount = 0;
  int mapcount = 0;
  int expected_refs = 0;         // what mappings, caches and an isolation account for
  uint64_t pins = 0;             // pincount, or the pins the small-folio bias implies
  int err = 0;                   // the migration or isolation errno, if any
  std::string kernel_owner;      // kmalloc_pages owner tag
  std::vector<PinOwner> owners;  // from the pin-owner table, oldest first
};

// One line per blocker, as the CLI prints it:
//   pfn 0x1234 (anon, 1 page): pinned x1 refcount 1025 (expected 1): task 7 'app' [rdma mr0] via
//   pin_user_pages_fast longterm seq 3
std::string format_blocker(const PageBlocker& b);

// A failed operation and what blocked it.
struct BlockedOperation {
  uint64_t seq = 0;       // the log's sequence number (deterministic)
  std::string operation;  // "offline_pages", "alloc_contig_range", "pin_user_pages" …
  std::string detail;     // the reason string (offline_pages' "signal backoff" …)
  int err = 0;            // what the operation returned
  Pfn start, end;         // the range it worked on, if any
  std::vector<PageBlocker> blockers;
  // Distinct folios found blocking; `blockers` keeps the first kMaxBlockers
  // (past those, a folio met twice counts twice).
  uint64_t nr_blockers = 0;
  static constexpr size_t kMaxBlockers = 64;

  // Records `blocker` unless its folio is named already (an operation
  // retrying the same folio reports it once); counts it either way.
  void add(PageBlocker blocker);
  // Forgets the blockers collected so far: a retry reports only its own
  // (the latest attempt's are the ones to report), a success none.
  void clear_blockers();
  // The operation's line ("offline_pages: retry limit (EBUSY), 1 blocking
  // folio(s)") and then one indented line per blocker.
  std::vector<std::string> lines() const;
};

// The latest failed operations of a machine, oldest first.
class BlockerLog {
 public:
  static constexpr size_t kCapacity = 64;
  // Appends `op` (its seq is assigned) and returns the seq.
  uint64_t add(BlockedOperation op) EXCLUDES(lock_);
  // The seq of the newest record (0: none yet); the records after `seq`.
  // A caller takes last_seq() before an operation and asks since() after
  // it, to learn what that operation recorded.
  uint64_t last_seq() const EXCLUDES(lock_);
  std::vector<BlockedOperation> since(uint64_t seq) const EXCLUDES(lock_);
  // The newest record, if any.
  bool last(BlockedOperation* out) const EXCLUDES(lock_);
  void clear() EXCLUDES(lock_);

 private:
  mutable Mutex lock_{LockRank::kLeaf};
  std::deque<BlockedOperation> ops_ GUARDED_BY(lock_);
  uint64_t next_seq_ GUARDED_BY(lock_) = 1;
};

}  // namespace pinmm
