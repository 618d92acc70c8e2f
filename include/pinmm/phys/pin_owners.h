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
// Cost: no per-page field. The table is a two-level directory indexed by
// the folio's PFN: one pointer per pageblock (512 pages), and a leaf of 512
// record heads allocated only while some folio in that pageblock has pins;
// records live in a pool with a free list. So a pin costs one lock
// acquisition per call and, per folio run, two array lookups and a 12-byte
// record taken from a pool — no hashing, no allocation in the steady state.
// Who, how and when are kept once per call.
//
// Thread safety: every member takes the table's lock (rank kPinTable), so
// the table may be used under any lock of lower rank, including page-table
// locks and zone->lock.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
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
  // A table for the PFNs [0, nr_pfns) of the machine whose page
  // descriptors start at mem_map.
  PinOwners(const Page* mem_map, uint64_t nr_pfns);
  ~PinOwners();
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
  // The pins the records of `folio` hold (0 if none); no strings built.
  uint64_t recorded_pins(const Folio* folio) const EXCLUDES(lock_);
  // Folios with at least one record.
  size_t nr_folios() const EXCLUDES(lock_);
  // The pins all records hold: at a quiescent point, every pin that was
  // taken through a recording entry point and not yet released.
  uint64_t total_pins() const EXCLUDES(lock_);
  // The PFNs of folios with at least one FOLL_LONGTERM record, in order
  // (cheap: no strings; for memory maps).
  std::vector<uint64_t> longterm_folio_pfns() const EXCLUDES(lock_);
  // Every folio with records and its records, in PFN order.
  std::vector<std::pair<const Folio*, std::vector<PinOwner>>> snapshot() const EXCLUDES(lock_);

  // Each recorded folio still has at least as many pins as its records hold
  // (exact for large folios, via the pin bias for small ones), no record is
  // empty, and the directory's counts agree. At a quiescent point.
  ValidationReport validate() const EXCLUDES(lock_);

 private:
  static constexpr unsigned kLeafShift = 9;  // a pageblock of PFNs per leaf
  static constexpr uint64_t kLeafSize = uint64_t{1} << kLeafShift;
  static constexpr uint32_t kNone = 0;  // record indexes are 1-based

  // What one pinning call recorded: who, how, when. Shared by the records
  // it left on each folio; freed when the last of them goes.
  struct CallRecord {
    uint32_t holder;  // index into holders_
    int32_t pid;
    bool longterm;
    const char* entry;
    uint64_t seq;
    uint64_t when_ns;
    uint32_t records;  // live Records of this call
  };
  // One call's pins on one folio, in the folio's list (oldest first).
  struct Record {
    uint32_t next;  // the folio's next (younger) record, or kNone
    uint32_t call;  // index into calls_
    uint32_t pins;
  };
  // The record lists of one pageblock's PFNs (a folio's at its head PFN).
  struct Leaf {
    std::array<uint32_t, kLeafSize> head{};
    uint32_t folios = 0;  // non-empty lists
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

  // The holder of the current task's pins, found or added.
  uint32_t current_holder() REQUIRES(lock_);
  // A CallRecord for the current task's call through `entry`.
  uint32_t new_call(const char* entry, bool longterm, uint64_t now) REQUIRES(lock_);
  uint64_t index_of(const Folio* folio) const {
    return static_cast<uint64_t>(&folio->page - mem_map_);
  }
  // The head of folio's list, allocating its leaf if `create`; nullptr if
  // there is no leaf and !create, or for PFNs outside the table (the zero
  // page, never recorded).
  uint32_t* head_slot(const Folio* folio, bool create) REQUIRES(lock_);
  uint32_t new_record(uint32_t call, uint32_t pins) REQUIRES(lock_);
  void free_record(uint32_t i) REQUIRES(lock_);
  Record& rec(uint32_t i) REQUIRES(lock_) { return records_[i - 1]; }
  const Record& rec(uint32_t i) const REQUIRES(lock_) { return records_[i - 1]; }
  void add(const Folio* folio, uint64_t pins, uint32_t call) REQUIRES(lock_);
  void end_call(uint32_t call) REQUIRES(lock_);
  void take(const Folio* folio, uint64_t pins, uint32_t holder) REQUIRES(lock_);
  std::vector<PinOwner> describe_list(uint32_t head) const REQUIRES(lock_);

  const Page* const mem_map_;
  const uint64_t nr_pfns_;
  const uint64_t created_ns_;
  mutable Mutex lock_{LockRank::kPinTable};
  std::vector<Holder> holders_ GUARDED_BY(lock_);
  std::vector<std::unique_ptr<Leaf>> leaves_ GUARDED_BY(lock_);
  std::vector<Record> records_ GUARDED_BY(lock_);
  uint32_t free_records_ GUARDED_BY(lock_) = kNone;  // chained through Record::next
  std::vector<CallRecord> calls_ GUARDED_BY(lock_);
  std::vector<uint32_t> free_calls_ GUARDED_BY(lock_);
  size_t nr_folios_ GUARDED_BY(lock_) = 0;
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
