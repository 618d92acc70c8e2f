// Locks with clang capability annotations and run-time lock-rank checks.
//
// Linux counterpart: struct mutex, spinlock_t, struct rw_semaphore (the mmap
// lock) and lockdep. Mutex wraps std::mutex; SpinLock spins then yields (the
// host may have fewer cores than pinmm has threads); RwSem is a
// writer-preferring reader/writer semaphore with killable acquisition: a
// waiter whose Task has a fatal signal pending gives up (Linux's
// down_read_killable / down_write_killable).
//
// Debug builds (PINMM_DEBUG) record owners, so assert_held() really checks,
// and check lock ranks (lock_order.h) at every blocking acquisition.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "pinmm/base/lock_order.h"
#include "pinmm/base/thread_annotations.h"

namespace pinmm {

// Lock-rank bookkeeping shared by every lock type (and by bit locks such as
// the folio lock). All functions are no-ops unless PINMM_DEBUG is defined.
namespace lockdep {
enum class Acquire : uint8_t { kBlocking, kTry, kNested };
void acquire(const void* lock, LockRank rank, Acquire how);
void release(const void* lock);
// True if the calling thread holds `lock` (always true in release builds, so
// that assertions built on it cost nothing there).
bool held_by_me(const void* lock);
// Number of locks the calling thread holds (0 in release builds).
int depth();
}  // namespace lockdep

class CAPABILITY("mutex") Mutex {
 public:
  explicit Mutex(LockRank rank) : rank_(rank) {}
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() ACQUIRE();
  // Same-rank nesting, e.g. two locks of one class taken in address order.
  void lock_nested() ACQUIRE();
  bool try_lock() TRY_ACQUIRE(true);
  void unlock() RELEASE();
  // Aborts (debug builds) unless the calling thread holds the lock.
  void assert_held() const ASSERT_CAPABILITY(this);

  LockRank rank() const { return rank_; }

 private:
  std::mutex m_;
  const LockRank rank_;
};

class CAPABILITY("spinlock") SpinLock {
 public:
  explicit SpinLock(LockRank rank) : rank_(rank) {}
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  void lock() ACQUIRE();
  void lock_nested() ACQUIRE();
  bool try_lock() TRY_ACQUIRE(true);
  void unlock() RELEASE();
  void assert_held() const ASSERT_CAPABILITY(this);
  // Racy by nature; for debug output and heuristics only.
  bool debug_is_locked() const { return locked_.load(std::memory_order_relaxed); }

 private:
  void spin_acquire();

  // acquire on lock / release on unlock: pairs every critical section with
  // the previous holder's.
  std::atomic<bool> locked_{false};
  const LockRank rank_;
};

class CAPABILITY("rwsem") RwSem {
 public:
  explicit RwSem(LockRank rank) : rank_(rank) {}
  RwSem(const RwSem&) = delete;
  RwSem& operator=(const RwSem&) = delete;

  void down_read() ACQUIRE_SHARED();
  // Gives up, returning false, if the current Task has a fatal signal pending
  // (on entry or while waiting). The kernel returns -EINTR there.
  [[nodiscard]] bool down_read_killable() TRY_ACQUIRE_SHARED(true);
  [[nodiscard]] bool down_read_trylock() TRY_ACQUIRE_SHARED(true);
  void up_read() RELEASE_SHARED();

  void down_write() ACQUIRE();
  // A second lock of the same rank (fork takes the child's mmap lock while
  // holding the parent's).
  void down_write_nested() ACQUIRE();
  [[nodiscard]] bool down_write_killable() TRY_ACQUIRE(true);
  [[nodiscard]] bool down_write_trylock() TRY_ACQUIRE(true);
  void up_write() RELEASE();

  void assert_held_read() const ASSERT_SHARED_CAPABILITY(this);
  void assert_held_write() const ASSERT_CAPABILITY(this);

  // Racy snapshot for debug output.
  bool debug_is_write_locked() const;

 private:
  enum class Wait : uint8_t { kUninterruptible, kKillable };
  bool acquire_read(Wait wait);
  bool acquire_write(Wait wait);

  mutable std::mutex m_;
  std::condition_variable readers_cv_;
  std::condition_variable writers_cv_;
  int readers_ = 0;          // guarded by m_
  bool writer_ = false;      // guarded by m_
  int waiting_writers_ = 0;  // guarded by m_
  const LockRank rank_;
};

// Scoped guards.
class SCOPED_CAPABILITY MutexGuard {
 public:
  explicit MutexGuard(Mutex& m) ACQUIRE(m) : m_(m) { m_.lock(); }
  ~MutexGuard() RELEASE() { m_.unlock(); }
  MutexGuard(const MutexGuard&) = delete;
  MutexGuard& operator=(const MutexGuard&) = delete;

 private:
  Mutex& m_;
};

class SCOPED_CAPABILITY SpinGuard {
 public:
  explicit SpinGuard(SpinLock& l) ACQUIRE(l) : l_(l) { l_.lock(); }
  ~SpinGuard() RELEASE() { l_.unlock(); }
  SpinGuard(const SpinGuard&) = delete;
  SpinGuard& operator=(const SpinGuard&) = delete;

 private:
  SpinLock& l_;
};

class SCOPED_CAPABILITY ReadGuard {
 public:
  explicit ReadGuard(RwSem& s) ACQUIRE_SHARED(s) : s_(s) { s_.down_read(); }
  ~ReadGuard() RELEASE() { s_.up_read(); }
  ReadGuard(const ReadGuard&) = delete;
  ReadGuard& operator=(const ReadGuard&) = delete;

 private:
  RwSem& s_;
};

class SCOPED_CAPABILITY WriteGuard {
 public:
  explicit WriteGuard(RwSem& s) ACQUIRE(s) : s_(s) { s_.down_write(); }
  ~WriteGuard() RELEASE() { s_.up_write(); }
  WriteGuard(const WriteGuard&) = delete;
  WriteGuard& operator=(const WriteGuard&) = delete;

 private:
  RwSem& s_;
};

// Data kept with its lock (Folly's Synchronized, SerenityOS's
// SpinlockProtected): the only way to reach `T` is with(fn), which runs fn
// with the lock held.
template <typename T, typename Lock = Mutex>
class Guarded {
 public:
  template <typename... Args>
  explicit Guarded(LockRank rank, Args&&... args)
      : lock_(rank), data_(std::forward<Args>(args)...) {}

  // The analysis cannot follow the lock into fn; with() is the one place that
  // touches data_, and it always holds lock_ while doing so.
  template <typename Fn>
  decltype(auto) with(Fn&& fn) NO_THREAD_SAFETY_ANALYSIS {
    std::lock_guard<Lock> guard(lock_);
    return fn(data_);
  }

 private:
  Lock lock_;
  T data_ GUARDED_BY(lock_);
};

}  // namespace pinmm
