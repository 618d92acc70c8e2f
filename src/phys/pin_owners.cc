#include "pinmm/phys/pin_owners.h"

#include <algorithm>
#include <chrono>

namespace pinmm {

namespace {

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

bool tracked(const Folio* folio) { return folio != nullptr && !is_zero_folio(folio); }

// Calls fn(folio, n) for each run of n consecutive entries of one folio.
template <typename Fn>
void for_each_page_run(std::span<Page* const> pages, Fn fn) {
  for (size_t i = 0; i < pages.size();) {
    if (pages[i] == nullptr) {
      ++i;
      continue;
    }
    Folio* folio = page_folio(pages[i]);
    size_t n = 1;
    while (i + n < pages.size() && pages[i + n] != nullptr && page_folio(pages[i + n]) == folio)
      ++n;
    fn(folio, n);
    i += n;
  }
}

template <typename Fn>
void for_each_folio_run(std::span<Folio* const> folios, Fn fn) {
  for (size_t i = 0; i < folios.size();) {
    size_t n = 1;
    while (i + n < folios.size() && folios[i + n] == folios[i])
      ++n;
    if (folios[i] != nullptr) fn(folios[i], n);
    i += n;
  }
}

}  // namespace

const char* pin_owner_kind_name(PinOwnerKind kind) {
  return kind == PinOwnerKind::kDevice ? "device" : "task";
}

PinOwners::PinOwners() : created_ns_(now_ns()) {}

PinOwners::Call PinOwners::current_call() {
  const Task& task = current();
  const PinOwnerTag* tag = task.pin_owner_tag();
  Holder h{PinOwnerKind::kTask, task.pid(), task.comm(), {}};
  if (tag != nullptr) {
    h.kind = tag->kind;
    h.label = tag->label;
    if (tag->kind == PinOwnerKind::kDevice) {
      // A device's pins are its own whichever task its driver ran in.
      h.pid = 0;
      h.name = tag->device;
    }
  }
  // Few distinct holders exist; the newest is the likeliest.
  for (size_t i = holders_.size(); i-- > 0;) {
    if (holders_[i] == h) return {static_cast<uint32_t>(i), task.pid()};
  }
  holders_.push_back(std::move(h));
  return {static_cast<uint32_t>(holders_.size() - 1), task.pid()};
}

void PinOwners::add(Folio* folio, uint64_t pins, const Call& call, const char* entry, bool longterm,
                    uint64_t seq, uint64_t now) {
  std::vector<Record>& recs = records_[folio];
  // The same folio again in one call (a folio run split by another folio,
  // or mapped twice): one record per call.
  if (!recs.empty() && recs.back().seq == seq) {
    recs.back().pins += pins;
    return;
  }
  recs.push_back(Record{call.holder, call.pid, pins, entry, longterm, seq, now});
}

void PinOwners::record(std::span<Page* const> pages, const char* entry, bool longterm) {
  const uint64_t now = now_ns() - created_ns_;
  MutexGuard g(lock_);
  const Call call = current_call();
  const uint64_t seq = next_seq_++;
  for_each_page_run(pages, [&](Folio* folio, size_t n) {
    if (tracked(folio)) add(folio, n, call, entry, longterm, seq, now);
  });
}

void PinOwners::record(std::span<Folio* const> folios, const char* entry, bool longterm) {
  const uint64_t now = now_ns() - created_ns_;
  MutexGuard g(lock_);
  const Call call = current_call();
  const uint64_t seq = next_seq_++;
  for_each_folio_run(folios, [&](Folio* folio, size_t n) {
    if (tracked(folio)) add(folio, n, call, entry, longterm, seq, now);
  });
}

void PinOwners::take(Folio* folio, uint64_t pins, uint32_t holder) {
  auto it = records_.find(folio);
  if (it == records_.end()) return;
  std::vector<Record>& recs = it->second;
  auto take_from = [&](Record& r) {
    const uint64_t n = std::min(pins, r.pins);
    r.pins -= n;
    pins -= n;
  };
  for (Record& r : recs) {
    if (pins == 0) break;
    if (r.holder == holder) take_from(r);
  }
  for (Record& r : recs) {  // oldest first
    if (pins == 0) break;
    take_from(r);
  }
  std::erase_if(recs, [](const Record& r) { return r.pins == 0; });
  if (recs.empty()) records_.erase(it);
}

void PinOwners::release(std::span<Page* const> pages) {
  MutexGuard g(lock_);
  if (records_.empty()) return;
  const uint32_t holder = current_call().holder;
  for_each_page_run(pages, [&](Folio* folio, size_t n) { take(folio, n, holder); });
}

void PinOwners::release(std::span<Folio* const> folios) {
  MutexGuard g(lock_);
  if (records_.empty()) return;
  const uint32_t holder = current_call().holder;
  for_each_folio_run(folios, [&](Folio* folio, size_t n) { take(folio, n, holder); });
}

void PinOwners::release(Folio* folio, uint64_t pins) {
  MutexGuard g(lock_);
  if (records_.empty()) return;
  take(folio, pins, current_call().holder);
}

PinOwner PinOwners::describe(const Record& r) const {
  const Holder& h = holders_[r.holder];
  return PinOwner{h.kind, r.pid, h.name, h.label, r.entry, r.longterm, r.seq, r.when_ns, r.pins};
}

std::vector<PinOwner> PinOwners::owners_of(const Folio* folio) const {
  MutexGuard g(lock_);
  std::vector<PinOwner> out;
  auto it = records_.find(folio);
  if (it == records_.end()) return out;
  for (const Record& r : it->second)
    out.push_back(describe(r));
  return out;
}

size_t PinOwners::nr_folios() const {
  MutexGuard g(lock_);
  return records_.size();
}

std::vector<std::pair<const Folio*, std::vector<PinOwner>>> PinOwners::snapshot() const {
  MutexGuard g(lock_);
  std::vector<std::pair<const Folio*, std::vector<PinOwner>>> out;
  out.reserve(records_.size());
  for (const auto& [folio, recs] : records_) {
    std::vector<PinOwner> owners;
    for (const Record& r : recs)
      owners.push_back(describe(r));
    out.emplace_back(folio, std::move(owners));
  }
  // Folio descriptors lie in one array in PFN order.
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

ValidationReport PinOwners::validate() const {
  ValidationReport report;
  MutexGuard g(lock_);
  for (const auto& [folio, recs] : records_) {
    const Pfn pfn = folio_pfn(folio);
    uint64_t recorded = 0;
    for (const Record& r : recs) {
      if (r.pins == 0) report.fail("pin owners: pfn {}: an empty record", pfn.value());
      if (r.holder >= holders_.size())
        report.fail("pin owners: pfn {}: unknown holder {}", pfn.value(), r.holder);
      recorded += r.pins;
    }
    if (recs.empty()) report.fail("pin owners: pfn {}: a folio without records", pfn.value());
    const uint64_t held =
        folio_test_large(folio)
            ? static_cast<uint64_t>(std::max(folio_pincount(folio), 0))
            : static_cast<uint64_t>(std::max(folio_ref_count(folio), 0)) / GUP_PIN_COUNTING_BIAS;
    if (recorded > held) {
      report.fail("pin owners: pfn {}: records hold {} pins, the folio has {}", pfn.value(),
                  recorded, held);
    }
  }
  return report;
}

PinOwnerScope::PinOwnerScope(std::string label)
    : PinOwnerScope(PinOwnerKind::kTask, {}, std::move(label)) {}

PinOwnerScope::PinOwnerScope(PinOwnerKind kind, std::string device, std::string label)
    : tag_{kind, std::move(device), std::move(label)}, saved_(current().pin_owner_tag()) {
  current().set_pin_owner_tag(&tag_);
}

PinOwnerScope::~PinOwnerScope() { current().set_pin_owner_tag(saved_); }

}  // namespace pinmm
