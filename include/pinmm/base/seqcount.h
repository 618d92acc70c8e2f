// A sequence counter: even when stable, odd while a writer is inside.
//
// Linux counterpart: seqcount_t (include/linux/seqlock.h), raw_write_seqcount_begin/end,
// raw_read_seqcount and read_seqcount_retry. Writers are serialised by
// something else (mm->write_protect_seq is written under the mmap lock held
// for writing). Readers sample the count, do their lockless work, and retry
// (or give up) if it changed or was odd.
//
// Thread safety: the writer's increments are release stores fenced against
// the data writes; readers load with acquire and re-check with a fence, as
// seqcount's smp_wmb/smp_rmb pairs do.
#pragma once

#include <atomic>
#include <cstdint>

namespace pinmm {

class SeqCount {
 public:
  void write_begin() {
    seq_.store(seq_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
  }
  void write_end() {
    seq_.store(seq_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }
  // raw_read_seqcount: may return an odd value (a writer is inside).
  uint32_t raw_read() const { return seq_.load(std::memory_order_acquire); }
  bool retry(uint32_t start) const {
    std::atomic_thread_fence(std::memory_order_acquire);
    return seq_.load(std::memory_order_relaxed) != start;
  }

 private:
  std::atomic<uint32_t> seq_{0};
};

}  // namespace pinmm
