// Who pins each folio: a side table of pin owners, keyed by folio.
//
// Linux counterpart: none; the kernel cannot say who holds a pin (a pin is
// only a count: GUP_PIN_COUNTING_BIAS references or a pincount), which is why
// a failed memory offline or alloc_contig_range leaves a developer guessing.
// The closest relative is page_owner (mm/page_owner.c), which keeps an
// allocation record per page in page_ext. pinmm keeps one record per folio
// run per pinning call instead: the owner (the calling task, or a device its
// driver acts for, from PinOwnerScope), a label, the entry point used
// ("pin_user_pages_fast" …), whether it was FOLL_LONGTERM, a sequence number
// and the time since boot, and how many pins it holds.
//
// gup/ records after a pinning call succeeds and releases on unpin: pins of a
// folio are taken back from the unpinning owner's own records first, then
// from the oldest. Pins taken without a record (a bare try_grab_folio) are
// not tracked, and their unpin finds nothing to release.
//
// Cost: nothing for folios that are not pinned (no per-page field); one lock
// acquisition per pinning or unpinning call and one hash-table update per
// folio run.
//
// Thread safety: every member takes the table's lock (rank kPinTable), so
// the table may be used under any lock of lower rank, including page-table
// locks and zone->lock.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "pinmm/base/locks.h"
#include "pinmm/base/task.h"
#include "pinmm/base/validate.h"
#include "pinmm/phys/page.h"

namespace pinmm {

// One owner's pins on one folio, as reports show it.
struct PinOwner {
  PinOwnerKind kind = PinOwnerKind::kTask;
  int pid = 0;       // the task that made the call
  std::string name;  // the task's comm, or the device's name
  std::string label;
  std::string entry;  // the pinning entry point
  bool longterm = false;
  uint64_t seq = 0;      // the machine's pin-call sequence number (deterministic)
  uint64_t when_ns = 0;  // wall time since the table was created
  uint64_t pins = 0;     // pins this record still holds on the folio
};

class PinOwners {
 public:
  PinOwners();
  PinOwners(const PinOwners&) = delete;
  PinOwners& operator=(const PinOwners&) = delete;

  // One call's pins by the current task's owner through `entry` (a string
  // literal): each run of consecutive entries of one folio adds one record
  // holding that many pins. Null entries and the zero page are skipped.
  void record(std::span<Page* const> pages, const char* entry, bool longterm) EXCLUDES(lock_);
  void record(std::span<Folio* const> folios, const char* entry, bool longterm) EXCLUDES(lock_);

  // One unpinning call by the current task's owner: per folio run, `n` pins
  // come off that folio's records, the owner's own first, then the oldest.
  void release(std::span<Page* const> pages) EXCLUDES(lock_);
  void release(std::span<Folio* const> folios) EXCLUDES(lock_);
  void release(Folio* folio, uint64_t pins) EXCLUDES(lock_);

  // The records of `folio`, oldest first (empty if none).
  std::vector<PinOwner> owners_of(const Folio* folio) const EXCLUDES(lock_);
  // Folios with at least one record.
  size_t nr_folios() const EXCLUDES(lock_);
  // Every folio with records and its records, in PFN order.
  std::vector<std::pair<const Folio*, std::vector<PinOwner>>> snapshot() const EXCLUDES(lock_);

  // Each recorded folio still has at least as many pins as its records hold
  // (exact for large folios, via the pin bias for small ones), and no record
  // is empty. At a quiescent point.
  ValidationReport validate() const EXCLUDES(lock_);

 private:
  struct Record {
    uint32_t holder;  // index into holders_
    int32_t pid;
    uint64_t pins;
    const char* entry;
    bool longterm;
    uint64_t seq;
    uint64_t when_ns;
  };
  // Who is charged: a task (its pid and comm) or a device (its name), and
  // the label. Unpins match records by holder.
  struct Holder {
    PinOwnerKind kind;
    int pid;  // tasks only; 0 for devices
    std::string name;
    std::string label;
    bool operator==(const Holder&) const = default;
  };
  // The current task's holder and call details, computed once per call.
  struct Call {
    uint32_t holder;
    int32_t pid;
  };

  Call current_call() REQUIRES(lock_);
  void add(Folio* folio, uint64_t pins, const Call& call, const char* entry, bool longterm,
           uint64_t seq, uint64_t now) REQUIRES(lock_);
  void take(Folio* folio, uint64_t pins, uint32_t holder) REQUIRES(lock_);
  PinOwner describe(const Record& r) const REQUIRES(lock_);

  const uint64_t created_ns_;
  mutable Mutex lock_{LockRank::kPinTable};
  std::vector<Holder> holders_ GUARDED_BY(lock_);
  std::unordered_map<const Folio*, std::vector<Record>> records_ GUARDED_BY(lock_);
  uint64_t next_seq_ GUARDED_BY(lock_) = 1;
};

// Charges the current task's pins to `tag` for a scope: a label for the
// task's own pins, or a device the task's driver code acts for. Scopes nest.
class PinOwnerScope {
 public:
  explicit PinOwnerScope(std::string label);
  PinOwnerScope(PinOwnerKind kind, std::string device, std::string label);
  ~PinOwnerScope();
  PinOwnerScope(const PinOwnerScope&) = delete;
  PinOwnerScope& operator=(const PinOwnerScope&) = delete;

 private:
  PinOwnerTag tag_;
  const PinOwnerTag* saved_;
};

const char* pin_owner_kind_name(PinOwnerKind kind);  // "task", "device"

}  // namespace pinmm
