#include "pinmm/base/trace.h"

#include <array>

#include <fmt/format.h>

#include "pinmm/base/task.h"

namespace pinmm {
namespace {

constexpr std::array<std::string_view, static_cast<size_t>(TraceEvent::kNrEvents)> kEventNames = {
    "mm_page_alloc",
    "mm_page_free",
    "mm_page_alloc_zone_locked",
    "mm_page_alloc_extfrag",
    "mm_lru_insertion",
    "mm_lru_activate",
    "mm_filemap_add_to_page_cache",
    "mm_filemap_delete_from_page_cache",
    "tlb_flush",
    "rss_stat",
    "page_fault_user",
    "mm_migrate_pages",
    "mm_migrate_pages_start",
    "test_pages_isolated",
    "cma_alloc_start",
    "cma_alloc_finish",
    "cma_alloc_busy_retry",
    "cma_release",
    "mm_alloc_contig_migrate_range_info",
};

}  // namespace

std::string_view trace_event_name(TraceEvent e) { return kEventNames[static_cast<size_t>(e)]; }

std::optional<TraceEvent> trace_event_lookup(std::string_view name) {
  for (size_t i = 0; i < kEventNames.size(); ++i) {
    if (kEventNames[i] == name) return static_cast<TraceEvent>(i);
  }
  return std::nullopt;
}

Tracer::Tracer(size_t capacity, int nr_cpus)
    : capacity_(capacity), nr_cpus_(nr_cpus), epoch_(std::chrono::steady_clock::now()) {}

void Tracer::enable(TraceEvent e) {
  mask_.fetch_or(uint64_t{1} << static_cast<unsigned>(e), std::memory_order_relaxed);
}

void Tracer::disable(TraceEvent e) {
  mask_.fetch_and(~(uint64_t{1} << static_cast<unsigned>(e)), std::memory_order_relaxed);
}

void Tracer::enable_all() {
  mask_.store((uint64_t{1} << static_cast<unsigned>(TraceEvent::kNrEvents)) - 1,
              std::memory_order_relaxed);
}

void Tracer::disable_all() { mask_.store(0, std::memory_order_relaxed); }

void Tracer::record(TraceEvent e, std::string text) {
  const Task& task = current();
  TraceRecord rec;
  rec.ts_ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now() - epoch_)
                                        .count());
  rec.pid = task.pid();
  rec.cpu = task.cpu();
  rec.comm = task.comm();
  rec.event = e;
  rec.text = std::move(text);

  MutexGuard g(lock_);
  ++written_;
  if (buffer_.size() == capacity_) buffer_.pop_front();
  buffer_.push_back(std::move(rec));
}

std::vector<TraceRecord> Tracer::records() const {
  MutexGuard g(lock_);
  return {buffer_.begin(), buffer_.end()};
}

void Tracer::clear() {
  MutexGuard g(lock_);
  buffer_.clear();
  written_ = 0;
}

std::string Tracer::to_ftrace_text() const {
  MutexGuard g(lock_);
  fmt::memory_buffer out;
  auto it = std::back_inserter(out);
  // The header of /sys/kernel/tracing/trace with irq-info on (the default).
  fmt::format_to(it, "# tracer: nop\n#\n");
  fmt::format_to(it, "# entries-in-buffer/entries-written: {}/{}   #P:{}\n#\n", buffer_.size(),
                 written_, nr_cpus_);
  fmt::format_to(it,
                 "#                                _-----=> irqs-off/BH-disabled\n"
                 "#                               / _----=> need-resched\n"
                 "#                              | / _---=> hardirq/softirq\n"
                 "#                              || / _--=> preempt-depth\n"
                 "#                              ||| / _-=> migrate-disable\n"
                 "#                              |||| /     delay\n"
                 "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION\n"
                 "#              | |         |   |||||     |         |\n");
  for (const TraceRecord& r : buffer_) {
    const uint64_t secs = r.ts_ns / 1000000000;
    const uint64_t usecs = (r.ts_ns % 1000000000) / 1000;
    std::string comm = r.comm.substr(0, 15);  // TASK_COMM_LEN - 1
    fmt::format_to(it, "{:>16}-{:<7} [{:03}] ..... {:5}.{:06}: {}: {}\n", comm, r.pid, r.cpu, secs,
                   usecs, trace_event_name(r.event), r.text);
  }
  return fmt::to_string(out);
}

}  // namespace pinmm
