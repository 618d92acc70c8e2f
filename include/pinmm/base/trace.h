// Trace events in ftrace's text format.
//
// Linux counterpart: the tracepoints of include/trace/events/{kmem,migrate,
// …}.h and the text of /sys/kernel/tracing/trace. Each MemorySystem owns a
// Tracer; every event is off by default and costs one relaxed load when off.
// Records carry the emitting Task's comm, pid and CPU and a timestamp since
// the tracer's creation; to_ftrace_text() renders the kernel's header and
// line layout, which Perfetto and trace-cmd-style tools load.
//
// Thread safety: enable/disable and emit may race freely; records are
// appended under a leaf lock into a bounded buffer (the oldest records are
// dropped when full, and counted as written but not kept, as ftrace does).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/core.h>

#include "pinmm/base/locks.h"

namespace pinmm {

// Event names and text formats are the kernel's (6.12): kmem (page
// allocator, rss_stat, mm_alloc_contig_migrate_range_info), pagemap (LRU),
// filemap, tlb, exceptions, migrate, page_isolation, cma.
enum class TraceEvent : uint8_t {
  mm_page_alloc,
  mm_page_free,
  mm_page_alloc_zone_locked,
  mm_page_alloc_extfrag,
  mm_lru_insertion,
  mm_lru_activate,
  mm_filemap_add_to_page_cache,
  mm_filemap_delete_from_page_cache,
  tlb_flush,
  rss_stat,
  page_fault_user,
  mm_migrate_pages,
  mm_migrate_pages_start,
  test_pages_isolated,
  cma_alloc_start,
  cma_alloc_finish,
  cma_alloc_busy_retry,
  cma_release,
  mm_alloc_contig_migrate_range_info,
  kNrEvents
};

std::string_view trace_event_name(TraceEvent e);
std::optional<TraceEvent> trace_event_lookup(std::string_view name);

struct TraceRecord {
  uint64_t ts_ns = 0;
  int pid = 0;
  int cpu = 0;
  std::string comm;
  TraceEvent event{};
  std::string text;
};

class Tracer {
 public:
  explicit Tracer(size_t capacity = size_t{1} << 20, int nr_cpus = 1);

  void enable(TraceEvent e);
  void disable(TraceEvent e);
  void enable_all();
  void disable_all();
  bool enabled(TraceEvent e) const {
    return mask_.load(std::memory_order_relaxed) & (uint64_t{1} << static_cast<unsigned>(e));
  }

  // Formats and records an event. Callers check enabled() first (use
  // PINMM_TRACE), so that the arguments cost nothing while it is off.
  template <typename... Args>
  void emit(TraceEvent e, fmt::format_string<Args...> format, Args&&... args) {
    record(e, fmt::format(format, std::forward<Args>(args)...));
  }

  std::vector<TraceRecord> records() const EXCLUDES(lock_);
  // The whole buffer as /sys/kernel/tracing/trace prints it.
  std::string to_ftrace_text() const EXCLUDES(lock_);
  void clear() EXCLUDES(lock_);

 private:
  void record(TraceEvent e, std::string text) EXCLUDES(lock_);

  const size_t capacity_;
  const int nr_cpus_;
  const std::chrono::steady_clock::time_point epoch_;
  std::atomic<uint64_t> mask_{0};
  mutable Mutex lock_{LockRank::kLeaf};
  std::deque<TraceRecord> buffer_ GUARDED_BY(lock_);
  uint64_t written_ GUARDED_BY(lock_) = 0;
};

}  // namespace pinmm

// PINMM_TRACE(tracer, event, "format", args...): records `event` if it is
// enabled; neither the format nor the arguments are evaluated otherwise.
#define PINMM_TRACE(tracer, event, ...)                            \
  do {                                                             \
    ::pinmm::Tracer& pinmm_tracer_ = (tracer);                     \
    if (pinmm_tracer_.enabled(::pinmm::TraceEvent::event)) {       \
      pinmm_tracer_.emit(::pinmm::TraceEvent::event, __VA_ARGS__); \
    }                                                              \
  } while (0)
