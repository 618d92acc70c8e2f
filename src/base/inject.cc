#include "pinmm/base/inject.h"

#include <thread>

namespace pinmm {

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
    it->second.fail_all = false;
    it->second.delay = std::chrono::microseconds(0);
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
  bool fail = r.fail_all;
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
  {
    MutexGuard g(lock_);
    auto it = rules_.find(point);
    if (it == rules_.end()) return;
    d = it->second.delay;
    if (d.count() != 0) ++it->second.hits;
  }
  if (d.count() != 0) std::this_thread::sleep_for(d);
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
