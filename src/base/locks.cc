#include "pinmm/base/locks.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "pinmm/base/task.h"

namespace pinmm {

const char* lock_rank_name(LockRank rank) {
  switch (rank) {
    case LockRank::kScenario:
      return "scenario tables";
    case LockRank::kDeviceHotplug:
      return "device_hotplug_lock";
    case LockRank::kMemHotplug:
      return "mem_hotplug_lock";
    case LockRank::kDriver:
      return "driver mutex";
    case LockRank::kCmaMutex:
      return "cma_mutex";
    case LockRank::kMmapLock:
      return "mmap_lock";
    case LockRank::kFolioLock:
      return "folio_lock";
    case LockRank::kDevmemLock:
      return "devmem_lock";
    case LockRank::kIMmap:
      return "i_mmap_rwsem";
    case LockRank::kAnonVma:
      return "anon_vma_rwsem";
    case LockRank::kNotifierLock:
      return "notifier_lock";
    case LockRank::kPudLock:
      return "page_table_lock";
    case LockRank::kPmdLock:
      return "pmd_lock";
    case LockRank::kPteLock:
      return "pte_lock";
    case LockRank::kMappingPages:
      return "i_pages_lock";
    case LockRank::kLruBatch:
      return "lru_add_batch_lock";
    case LockRank::kLruLock:
      return "lru_lock";
    case LockRank::kHugetlbLock:
      return "hugetlb_lock";
    case LockRank::kZoneLock:
      return "zone_lock";
    case LockRank::kPinTable:
      return "pin_table_lock";
    case LockRank::kCmaBitmap:
      return "cma_lock";
    case LockRank::kLeaf:
      return "leaf_lock";
    case LockRank::kWaitQueue:
      return "wait_queue_lock";
  }
  return "unknown";
}

namespace lockdep {

#ifdef PINMM_DEBUG
namespace {

struct Held {
  const void* lock;
  LockRank rank;
};

// Locks held by this thread, in acquisition order.
thread_local std::vector<Held> t_held;

[[noreturn]] void report(const char* what, const Held& holding, LockRank wanted, const void* lock) {
  std::fprintf(stderr,
               "pinmm lockdep: %s: acquiring %s (rank %u) at %p while holding %s (rank %u) at %p\n",
               what, lock_rank_name(wanted), static_cast<unsigned>(wanted), lock,
               lock_rank_name(holding.rank), static_cast<unsigned>(holding.rank), holding.lock);
  std::fflush(stderr);
  std::abort();
}

}  // namespace

void acquire(const void* lock, LockRank rank, Acquire how) {
  if (how != Acquire::kTry) {
    for (const Held& h : t_held) {
      if (h.lock == lock) report("recursive locking", h, rank, lock);
      if (h.rank > rank) report("lock order inversion", h, rank, lock);
      if (h.rank == rank && how != Acquire::kNested)
        report("same-rank nesting without *_nested()", h, rank, lock);
    }
  }
  t_held.push_back({lock, rank});
}

void release(const void* lock) {
  for (auto it = t_held.rbegin(); it != t_held.rend(); ++it) {
    if (it->lock == lock) {
      t_held.erase(std::next(it).base());
      return;
    }
  }
  std::fprintf(stderr, "pinmm lockdep: releasing %p, which this thread does not hold\n", lock);
  std::abort();
}

bool held_by_me(const void* lock) {
  for (const Held& h : t_held) {
    if (h.lock == lock) return true;
  }
  return false;
}

int depth() { return static_cast<int>(t_held.size()); }

#else
void acquire(const void*, LockRank, Acquire) {}
void release(const void*) {}
bool held_by_me(const void*) { return true; }
int depth() { return 0; }
#endif

}  // namespace lockdep

namespace {
[[noreturn]] void not_held(const char* kind, const void* lock) {
  std::fprintf(stderr, "pinmm: %s %p is not held by this thread\n", kind, lock);
  std::abort();
}
}  // namespace

// ---- Mutex ----

void Mutex::lock() {
  lockdep::acquire(this, rank_, lockdep::Acquire::kBlocking);
  m_.lock();
}

void Mutex::lock_nested() {
  lockdep::acquire(this, rank_, lockdep::Acquire::kNested);
  m_.lock();
}

bool Mutex::try_lock() {
  if (!m_.try_lock()) return false;
  lockdep::acquire(this, rank_, lockdep::Acquire::kTry);
  return true;
}

void Mutex::unlock() {
  lockdep::release(this);
  m_.unlock();
}

void Mutex::assert_held() const {
  if (!lockdep::held_by_me(this)) not_held("mutex", this);
}

// ---- SpinLock ----

void SpinLock::spin_acquire() {
  // Test-and-test-and-set; yield after a short spin because pinmm may run
  // more threads than the host has cores.
  for (unsigned spins = 0;; ++spins) {
    if (!locked_.load(std::memory_order_relaxed) &&
        !locked_.exchange(true, std::memory_order_acquire)) {
      return;
    }
    if (spins >= 64) {
      std::this_thread::yield();
    } else {
      __builtin_ia32_pause();
    }
  }
}

void SpinLock::lock() {
  lockdep::acquire(this, rank_, lockdep::Acquire::kBlocking);
  spin_acquire();
}

void SpinLock::lock_nested() {
  lockdep::acquire(this, rank_, lockdep::Acquire::kNested);
  spin_acquire();
}

bool SpinLock::try_lock() {
  if (locked_.load(std::memory_order_relaxed) ||
      locked_.exchange(true, std::memory_order_acquire)) {
    return false;
  }
  lockdep::acquire(this, rank_, lockdep::Acquire::kTry);
  return true;
}

void SpinLock::unlock() {
  lockdep::release(this);
  locked_.store(false, std::memory_order_release);
}

void SpinLock::assert_held() const {
  if (!locked_.load(std::memory_order_relaxed) || !lockdep::held_by_me(this))
    not_held("spinlock", this);
}

// ---- RwSem ----

namespace {
// Killable sleeps re-check the task's signals at this interval: a signal is a
// flag, not a wakeup, so a sleeper polls it.
constexpr auto kKillablePoll = std::chrono::milliseconds(1);
}  // namespace

bool RwSem::acquire_read(Wait wait) {
  std::unique_lock<std::mutex> g(m_);
  // Writer preference: new readers queue behind waiting writers, so a stream
  // of readers cannot starve a writer (as Linux's rwsem hands off to writers).
  while (writer_ || waiting_writers_ > 0) {
    if (wait == Wait::kKillable) {
      if (current().fatal_signal_pending()) return false;
      readers_cv_.wait_for(g, kKillablePoll);
    } else {
      readers_cv_.wait(g);
    }
  }
  ++readers_;
  return true;
}

bool RwSem::acquire_write(Wait wait) {
  std::unique_lock<std::mutex> g(m_);
  ++waiting_writers_;
  while (writer_ || readers_ > 0) {
    if (wait == Wait::kKillable) {
      if (current().fatal_signal_pending()) {
        --waiting_writers_;
        if (waiting_writers_ == 0) readers_cv_.notify_all();
        return false;
      }
      writers_cv_.wait_for(g, kKillablePoll);
    } else {
      writers_cv_.wait(g);
    }
  }
  --waiting_writers_;
  writer_ = true;
  return true;
}

void RwSem::down_read() {
  lockdep::acquire(this, rank_, lockdep::Acquire::kBlocking);
  acquire_read(Wait::kUninterruptible);
}

bool RwSem::down_read_killable() {
  if (current().fatal_signal_pending()) return false;
  lockdep::acquire(this, rank_, lockdep::Acquire::kBlocking);
  if (!acquire_read(Wait::kKillable)) {
    lockdep::release(this);
    return false;
  }
  return true;
}

bool RwSem::down_read_trylock() {
  {
    std::lock_guard<std::mutex> g(m_);
    if (writer_ || waiting_writers_ > 0) return false;
    ++readers_;
  }
  lockdep::acquire(this, rank_, lockdep::Acquire::kTry);
  return true;
}

void RwSem::up_read() {
  lockdep::release(this);
  std::lock_guard<std::mutex> g(m_);
  if (--readers_ == 0) writers_cv_.notify_one();
}

void RwSem::down_write() {
  lockdep::acquire(this, rank_, lockdep::Acquire::kBlocking);
  acquire_write(Wait::kUninterruptible);
}

void RwSem::down_write_nested() {
  lockdep::acquire(this, rank_, lockdep::Acquire::kNested);
  acquire_write(Wait::kUninterruptible);
}

bool RwSem::down_write_killable() {
  if (current().fatal_signal_pending()) return false;
  lockdep::acquire(this, rank_, lockdep::Acquire::kBlocking);
  if (!acquire_write(Wait::kKillable)) {
    lockdep::release(this);
    return false;
  }
  return true;
}

bool RwSem::down_write_trylock() {
  {
    std::lock_guard<std::mutex> g(m_);
    if (writer_ || readers_ > 0) return false;
    writer_ = true;
  }
  lockdep::acquire(this, rank_, lockdep::Acquire::kTry);
  return true;
}

void RwSem::up_write() {
  lockdep::release(this);
  std::lock_guard<std::mutex> g(m_);
  writer_ = false;
  if (waiting_writers_ > 0) {
    writers_cv_.notify_one();
  } else {
    readers_cv_.notify_all();
  }
}

void RwSem::assert_held_read() const {
  std::lock_guard<std::mutex> g(m_);
  if ((readers_ == 0 && !writer_) || !lockdep::held_by_me(this)) not_held("rwsem (read)", this);
}

void RwSem::assert_held_write() const {
  std::lock_guard<std::mutex> g(m_);
  if (!writer_ || !lockdep::held_by_me(this)) not_held("rwsem (write)", this);
}

bool RwSem::debug_is_write_locked() const {
  std::lock_guard<std::mutex> g(m_);
  return writer_;
}

}  // namespace pinmm
