#include "pinmm/base/inject.h"

#include <algorithm>
#include <array>
#include <thread>

namespace pinmm {

namespace {

// The layers above base name their points in their own headers
// (inject_point_vm, inject_point_migrate); the strings here must match.
constexpr std::array kPoints{
    InjectPointInfo{"alloc_pages", InjectKind::kFail, "phys",
                    "any buddy allocation fails as if the zones were exhausted"},
    InjectPointInfo{"alloc_pages.movable", InjectKind::kFail, "phys",
                    "a movable-migratetype buddy allocation fails"},
    InjectPointInfo{"alloc_pages.unmovable", InjectKind::kFail, "phys",
                    "a non-movable buddy allocation fails (page tables, kernel memory)"},
    InjectPointInfo{"kmalloc_pages", InjectKind::kFail, "phys",
                    "a kernel (kmalloc-style) allocation fails"},
    InjectPointInfo{"vm.split_folio", InjectKind::kFail, "vm",
                    "splitting a large folio fails with -EAGAIN as if it had an extra reference"},
    InjectPointInfo{"vm.anon_vma_prepare", InjectKind::kWindow, "vm",
                    "a fault allocated a VMA's first anon_vma and has not installed it yet"},
    InjectPointInfo{"migration_entry_wait", InjectKind::kWindow, "vm",
                    "a fault that met a migration entry, before it waits for the migration"},
    InjectPointInfo{"migrate.move_folio", InjectKind::kFail, "migrate",
                    "moving a folio fails with -EAGAIN as if someone held a transient reference"},
    InjectPointInfo{"migrate.folio_copy", InjectKind::kFail, "migrate",
                    "the folio copy fails as a machine check would (-EHWPOISON, permanent)"},
    InjectPointInfo{"migrate.after_unmap", InjectKind::kWindow, "migrate",
                    "a batch's migration entries are installed, before the folios move"},
};

}  // namespace

std::span<const InjectPointInfo> inject_points() { return kPoints; }

const InjectPointInfo* find_inject_point(std::string_view name) {
  auto it = std::find_if(kPoints.begin(), kPoints.end(),
                         [&](const InjectPointInfo& p) { return p.name == name; });
  return it == kPoints.end() ? nullptr : &*it;
}

void Injector::fail_nth(std::string_view point, uint64_t n) {
  MutexGuard g(lock_);
  Rule& r = rules_[std::string(point)];
  r.fail_at = r.hits + (n == 0 ? 1 : n);
  recount_armed();
}

void Injector::fail_always(std::string_view point) {
  MutexGuard g(lock_);
  rules_[std::string(point)].fail_all = true;
  recount_armed();
}

void Injector::fail_every(std::string_view point, uint64_t n) {
  MutexGuard g(lock_);
  rules_[std::string(point)].every = n == 0 ? 1 : n;
  recount_armed();
}

void Injector::fail_random(std::string_view point, double probability) {
  MutexGuard g(lock_);
  rules_[std::string(point)].probability = std::clamp(probability, 0.0, 1.0);
  recount_armed();
}

void Injector::seed(uint64_t seed) {
  MutexGuard g(lock_);
  rng_.seed(seed);
}

void Injector::on_hit(std::string_view point, std::function<void()> hook) {
  MutexGuard g(lock_);
  rules_[std::string(point)].hook = std::move(hook);
  recount_armed();
}

void Injector::delay(std::string_view point, std::chrono::microseconds d) {
  MutexGuard g(lock_);
  rules_[std::string(point)].delay = d;
  recount_armed();
}

void Injector::clear(std::string_view point) {
  MutexGuard g(lock_);
  auto it = rules_.find(point);
  if (it != rules_.end()) {
    it->second.fail_at = 0;
    it->second.every = 0;
    it->second.probability = 0;
    it->second.fail_all = false;
    it->second.delay = std::chrono::microseconds(0);
    it->second.hook = nullptr;
  }
  recount_armed();
}

void Injector::clear_all() {
  MutexGuard g(lock_);
  rules_.clear();
  recount_armed();
}

void Injector::recount_armed() {
  uint32_t n = 0;
  for (const auto& [name, rule] : rules_)
    n += rule.armed() ? 1 : 0;
  armed_.store(n, std::memory_order_relaxed);
}

bool Injector::should_fail_slow(std::string_view point) {
  MutexGuard g(lock_);
  auto it = rules_.find(point);
  if (it == rules_.end() || !it->second.armed()) return false;
  Rule& r = it->second;
  ++r.hits;
  bool fail = r.fail_all || (r.every != 0 && r.hits % r.every == 0);
  if (!fail && r.probability > 0)
    fail = std::uniform_real_distribution<double>(0.0, 1.0)(rng_) < r.probability;
  if (r.fail_at != 0 && r.hits == r.fail_at) {
    fail = true;
    r.fail_at = 0;
    recount_armed();
  }
  if (fail) ++r.failures;
  return fail;
}

void Injector::delay_slow(std::string_view point) {
  std::chrono::microseconds d{0};
  std::function<void()> hook;
  {
    MutexGuard g(lock_);
    auto it = rules_.find(point);
    if (it == rules_.end()) return;
    d = it->second.delay;
    hook = it->second.hook;
    if (d.count() != 0 || hook != nullptr) ++it->second.hits;
  }
  if (d.count() != 0) std::this_thread::sleep_for(d);
  if (hook != nullptr) hook();
}

uint64_t Injector::hits(std::string_view point) const {
  MutexGuard g(lock_);
  auto it = rules_.find(point);
  return it == rules_.end() ? 0 : it->second.hits;
}

uint64_t Injector::failures(std::string_view point) const {
  MutexGuard g(lock_);
  auto it = rules_.find(point);
  return it == rules_.end() ? 0 : it->second.failures;
}

std::vector<std::string> Injector::armed_points() const {
  MutexGuard g(lock_);
  std::vector<std::string> out;
  for (const auto& [name, rule] : rules_) {
    if (rule.armed()) out.push_back(name);
  }
  return out;
}

}  // namespace pinmm
