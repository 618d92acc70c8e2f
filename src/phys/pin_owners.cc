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

template <typename Fn>
void for_each_folio_entry_run(std::span<Folio* const> folios, Fn fn) {
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

PinOwners::PinOwners(const Page* mem_map, uint64_t nr_pfns)
    : mem_map_(mem_map), nr_pfns_(nr_pfns), created_ns_(now_ns()) {
  MutexGuard g(lock_);
  leaves_.resize((nr_pfns + kLeafSize - 1) >> kLeafShift);
}

PinOwners::~PinOwners() = default;

uint32_t PinOwners::current_holder() {
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
    if (holders_[i] == h) return static_cast<uint32_t>(i);
  }
  holders_.push_back(std::move(h));
  return static_cast<uint32_t>(holders_.size() - 1);
}

uint32_t PinOwners::new_call(const char* entry, bool longterm, uint64_t now) {
  const CallRecord c{current_holder(), current().pid(), longterm, entry, next_seq_++, now, 0};
  if (!free_calls_.empty()) {
    const uint32_t i = free_calls_.back();
    free_calls_.pop_back();
    calls_[i] = c;
    return i;
  }
  calls_.push_back(c);
  return static_cast<uint32_t>(calls_.size() - 1);
}

// A call that left no records (all its pins were of the zero page) or whose
// last record went.
void PinOwners::end_call(uint32_t call) {
  if (calls_[call].records == 0) free_calls_.push_back(call);
}

uint32_t* PinOwners::head_slot(const Folio* folio, bool create) {
  const uint64_t i = index_of(folio);
  if (i >= nr_pfns_) return nullptr;
  std::unique_ptr<Leaf>& leaf = leaves_[i >> kLeafShift];
  if (leaf == nullptr) {
    if (!create) return nullptr;
    leaf = std::make_unique<Leaf>();
  }
  return &leaf->head[i & (kLeafSize - 1)];
}

uint32_t PinOwners::new_record(uint32_t call, uint32_t pins) {
  ++calls_[call].records;
  const Record r{kNone, call, pins};
  if (free_records_ != kNone) {
    const uint32_t i = free_records_;
    free_records_ = rec(i).next;
    rec(i) = r;
    return i;
  }
  records_.push_back(r);
  return static_cast<uint32_t>(records_.size());
}

void PinOwners::free_record(uint32_t i) {
  const uint32_t call = rec(i).call;
  rec(i) = Record{free_records_, 0, 0};
  free_records_ = i;
  --calls_[call].records;
  end_call(call);
}

void PinOwners::add(const Folio* folio, uint64_t pins, uint32_t call) {
  uint32_t* head = head_slot(folio, /*create=*/true);
  if (head == nullptr) return;  // the zero page
  if (*head == kNone) {
    *head = new_record(call, static_cast<uint32_t>(pins));
    ++leaves_[index_of(folio) >> kLeafShift]->folios;
    ++nr_folios_;
    return;
  }
  uint32_t tail = *head;
  while (rec(tail).next != kNone)
    tail = rec(tail).next;
  // The same folio again in one call (a folio run split by another folio,
  // or mapped twice): one record per call.
  if (rec(tail).call == call) {
    rec(tail).pins += static_cast<uint32_t>(pins);
    return;
  }
  const uint32_t r = new_record(call, static_cast<uint32_t>(pins));
  rec(tail).next = r;
}

void PinOwners::record(std::span<Page* const> pages, const char* entry, bool longterm) {
  const uint64_t now = now_ns() - created_ns_;
  MutexGuard g(lock_);
  const uint32_t call = new_call(entry, longterm, now);
  for_each_folio_run(pages, [&](Folio* folio, size_t n) {
    lock_.assert_held();  // the analysis does not follow the lambda
    add(folio, n, call);
  });
  end_call(call);
}

void PinOwners::record(std::span<Folio* const> folios, const char* entry, bool longterm) {
  const uint64_t now = now_ns() - created_ns_;
  MutexGuard g(lock_);
  const uint32_t call = new_call(entry, longterm, now);
  for_each_folio_entry_run(folios, [&](Folio* folio, size_t n) {
    lock_.assert_held();  // the analysis does not follow the lambda
    add(folio, n, call);
  });
  end_call(call);
}

void PinOwners::take(const Folio* folio, uint64_t pins, uint32_t holder) {
  uint32_t* head = head_slot(folio, /*create=*/false);
  if (head == nullptr || *head == kNone) return;
  auto take_from = [&](Record& r) {
    const uint64_t n = std::min<uint64_t>(pins, r.pins);
    r.pins -= static_cast<uint32_t>(n);
    pins -= n;
  };
  for (uint32_t i = *head; i != kNone && pins != 0; i = rec(i).next) {
    if (calls_[rec(i).call].holder == holder) take_from(rec(i));
  }
  for (uint32_t i = *head; i != kNone && pins != 0; i = rec(i).next)  // oldest first
    take_from(rec(i));
  // Unlink the emptied records.
  uint32_t* link = head;
  while (*link != kNone) {
    const uint32_t i = *link;
    if (rec(i).pins != 0) {
      link = &rec(i).next;
      continue;
    }
    *link = rec(i).next;
    free_record(i);
  }
  if (*head != kNone) return;
  --nr_folios_;
  std::unique_ptr<Leaf>& leaf = leaves_[index_of(folio) >> kLeafShift];
  if (--leaf->folios == 0) leaf.reset();
}

void PinOwners::release(std::span<Page* const> pages) {
  MutexGuard g(lock_);
  if (nr_folios_ == 0) return;
  const uint32_t holder = current_holder();
  for_each_folio_run(pages, [&](Folio* folio, size_t n) {
    lock_.assert_held();  // the analysis does not follow the lambda
    take(folio, n, holder);
  });
}

void PinOwners::release(std::span<Folio* const> folios) {
  MutexGuard g(lock_);
  if (nr_folios_ == 0) return;
  const uint32_t holder = current_holder();
  for_each_folio_entry_run(folios, [&](Folio* folio, size_t n) {
    lock_.assert_held();  // the analysis does not follow the lambda
    take(folio, n, holder);
  });
}

void PinOwners::release(Folio* folio, uint64_t pins) {
  MutexGuard g(lock_);
  if (nr_folios_ == 0) return;
  take(folio, pins, current_holder());
}

std::vector<PinOwner> PinOwners::describe_list(uint32_t head) const {
  std::vector<PinOwner> out;
  for (uint32_t i = head; i != kNone; i = rec(i).next) {
    const CallRecord& c = calls_[rec(i).call];
    const Holder& h = holders_[c.holder];
    out.push_back(PinOwner{h.kind, c.pid, h.name, h.label, c.entry, c.longterm, c.seq, c.when_ns,
                           rec(i).pins});
  }
  return out;
}

std::vector<PinOwner> PinOwners::owners_of(const Folio* folio) const {
  MutexGuard g(lock_);
  const uint64_t i = index_of(folio);
  if (i >= nr_pfns_) return {};
  const Leaf* leaf = leaves_[i >> kLeafShift].get();
  if (leaf == nullptr) return {};
  return describe_list(leaf->head[i & (kLeafSize - 1)]);
}

uint64_t PinOwners::recorded_pins(const Folio* folio) const {
  MutexGuard g(lock_);
  const uint64_t i = index_of(folio);
  if (i >= nr_pfns_) return 0;
  const Leaf* leaf = leaves_[i >> kLeafShift].get();
  if (leaf == nullptr) return 0;
  uint64_t pins = 0;
  for (uint32_t r = leaf->head[i & (kLeafSize - 1)]; r != kNone; r = rec(r).next)
    pins += rec(r).pins;
  return pins;
}

uint64_t PinOwners::total_pins() const {
  MutexGuard g(lock_);
  uint64_t pins = 0;
  for (const auto& leaf : leaves_) {
    if (leaf == nullptr) continue;
    for (uint64_t j = 0; j < kLeafSize; ++j) {
      for (uint32_t r = leaf->head[j]; r != kNone; r = rec(r).next)
        pins += rec(r).pins;
    }
  }
  return pins;
}

size_t PinOwners::nr_folios() const {
  MutexGuard g(lock_);
  return nr_folios_;
}

std::vector<std::pair<const Folio*, std::vector<PinOwner>>> PinOwners::snapshot() const {
  MutexGuard g(lock_);
  std::vector<std::pair<const Folio*, std::vector<PinOwner>>> out;
  out.reserve(nr_folios_);
  for (uint64_t l = 0; l < leaves_.size(); ++l) {
    const Leaf* leaf = leaves_[l].get();
    if (leaf == nullptr) continue;
    for (uint64_t j = 0; j < kLeafSize; ++j) {
      if (leaf->head[j] == kNone) continue;
      const auto* folio = reinterpret_cast<const Folio*>(mem_map_ + (l << kLeafShift) + j);
      out.emplace_back(folio, describe_list(leaf->head[j]));
    }
  }
  return out;
}

std::vector<uint64_t> PinOwners::longterm_folio_pfns() const {
  MutexGuard g(lock_);
  std::vector<uint64_t> out;
  for (uint64_t l = 0; l < leaves_.size(); ++l) {
    const Leaf* leaf = leaves_[l].get();
    if (leaf == nullptr) continue;
    for (uint64_t j = 0; j < kLeafSize; ++j) {
      for (uint32_t i = leaf->head[j]; i != kNone; i = rec(i).next) {
        if (calls_[rec(i).call].longterm) {
          out.push_back((l << kLeafShift) + j);
          break;
        }
      }
    }
  }
  return out;
}

ValidationReport PinOwners::validate() const {
  ValidationReport report;
  MutexGuard g(lock_);
  size_t folios = 0;
  for (uint64_t l = 0; l < leaves_.size(); ++l) {
    const Leaf* leaf = leaves_[l].get();
    if (leaf == nullptr) continue;
    uint32_t in_leaf = 0;
    for (uint64_t j = 0; j < kLeafSize; ++j) {
      if (leaf->head[j] == kNone) continue;
      ++in_leaf;
      const uint64_t pfn = (l << kLeafShift) + j;
      const auto* folio = reinterpret_cast<const Folio*>(mem_map_ + pfn);
      uint64_t recorded = 0;
      for (uint32_t i = leaf->head[j]; i != kNone; i = rec(i).next) {
        if (rec(i).pins == 0) report.fail("pin owners: pfn {:#x}: an empty record", pfn);
        if (rec(i).call >= calls_.size() || calls_[rec(i).call].records == 0)
          report.fail("pin owners: pfn {:#x}: a record of an unknown call", pfn);
        recorded += rec(i).pins;
      }
      if (page_folio(&folio->page) != folio)
        report.fail("pin owners: pfn {:#x}: records on a page that is not a folio head", pfn);
      const uint64_t held =
          folio_test_large(folio)
              ? static_cast<uint64_t>(std::max(folio_pincount(folio), 0))
              : static_cast<uint64_t>(std::max(folio_ref_count(folio), 0)) / GUP_PIN_COUNTING_BIAS;
      if (recorded > held) {
        report.fail("pin owners: pfn {:#x}: records hold {} pins, the folio has {}", pfn, recorded,
                    held);
      }
    }
    if (in_leaf != leaf->folios || in_leaf == 0) {
      report.fail("pin owners: pageblock {:#x}: {} folios with records, the leaf counts {}",
                  l << kLeafShift, in_leaf, leaf->folios);
    }
    folios += in_leaf;
  }
  if (folios != nr_folios_)
    report.fail("pin owners: {} folios with records, the table counts {}", folios, nr_folios_);
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
