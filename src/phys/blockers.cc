#include "pinmm/phys/blockers.h"

#include <fmt/format.h>

#include "pinmm/base/errno.h"

namespace pinmm {

const char* block_reason_name(BlockReason r) {
  switch (r) {
    case BlockReason::kPinned:
      return "pinned";
    case BlockReason::kReferenced:
      return "extra references";
    case BlockReason::kUnmovable:
      return "unmovable kernel allocation";
    case BlockReason::kIsolationFailed:
      return "isolation failed";
    case BlockReason::kMigrationFailed:
      return "migration failed";
    case BlockReason::kBusy:
      return "busy";
  }
  return "?";
}

std::string format_blocker(const PageBlocker& b) {
  std::string s =
      fmt::format("pfn {:#x} ({}, {} page{}): {}", b.pfn.value(), b.kind.empty() ? "page" : b.kind,
                  b.nr_pages, b.nr_pages == 1 ? "" : "s", block_reason_name(b.reason));
  if (b.reason == BlockReason::kPinned) s += fmt::format(" x{}", b.pins);
  if (!b.kernel_owner.empty()) s += fmt::format(" by '{}'", b.kernel_owner);
  s += fmt::format(" refcount {} mapcount {} (expected {})", b.refcount, b.mapcount,
                   b.expected_refs);
  if (b.err != 0) s += fmt::format(" err {}", b.err);
  for (const PinOwner& o : b.owners) {
    s += fmt::format("; {} ", pin_owner_kind_name(o.kind));
    if (o.kind == PinOwnerKind::kTask) s += fmt::format("{} ", o.pid);
    s += fmt::format("'{}'", o.name);
    if (!o.label.empty()) s += fmt::format(" [{}]", o.label);
    s += fmt::format(" x{} via {}{} seq {}", o.pins, o.entry, o.longterm ? " longterm" : "", o.seq);
  }
  return s;
}

void BlockedOperation::add(PageBlocker blocker) {
  for (const PageBlocker& b : blockers) {
    if (b.folio_pfn == blocker.folio_pfn) return;
  }
  ++nr_blockers;
  if (blockers.size() < kMaxBlockers) blockers.push_back(std::move(blocker));
}

void BlockedOperation::clear_blockers() {
  blockers.clear();
  nr_blockers = 0;
}

std::vector<std::string> BlockedOperation::lines() const {
  std::vector<std::string> out;
  out.push_back(fmt::format("{}: {} ({}), {} blocking folio(s)", operation, detail,
                            Errno(err < 0 ? -err : err).name(), nr_blockers));
  for (const PageBlocker& b : blockers)
    out.push_back("  " + format_blocker(b));
  return out;
}

uint64_t BlockerLog::add(BlockedOperation op) {
  MutexGuard g(lock_);
  op.seq = next_seq_++;
  const uint64_t seq = op.seq;
  ops_.push_back(std::move(op));
  while (ops_.size() > kCapacity)
    ops_.pop_front();
  return seq;
}

uint64_t BlockerLog::last_seq() const {
  MutexGuard g(lock_);
  return ops_.empty() ? 0 : ops_.back().seq;
}

std::vector<BlockedOperation> BlockerLog::since(uint64_t seq) const {
  MutexGuard g(lock_);
  std::vector<BlockedOperation> out;
  for (const BlockedOperation& op : ops_) {
    if (op.seq > seq) out.push_back(op);
  }
  return out;
}

bool BlockerLog::last(BlockedOperation* out) const {
  MutexGuard g(lock_);
  if (ops_.empty()) return false;
  *out = ops_.back();
  return true;
}

void BlockerLog::clear() {
  MutexGuard g(lock_);
  ops_.clear();
}

}  // namespace pinmm
