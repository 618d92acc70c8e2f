// The gup_test module (mm/gup_test.c): benchmark and test ioctls.
#include "pinmm/gup/gup_test_module.h"

#include <chrono>
#include <climits>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "pinmm/base/task.h"
#include "pinmm/gup/gup.h"
#include "pinmm/gup/pin.h"
#include "pinmm/phys/memory_system.h"
#include "pinmm/vm/mm.h"

namespace pinmm {

namespace {

// dump_page() as the kernel log shows it: the description, then the reason.
std::string dump_page(const Page* page, const char* reason) {
  std::string text = mm_describe(page);
  if (!text.empty() && text.back() != '\n') text += '\n';
  return text + fmt::format("page dumped because: {}\n", reason);
}

using Clock = std::chrono::steady_clock;

uint64_t usec_between(Clock::time_point a, Clock::time_point b) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(b - a).count());
}

bool is_pin_cmd(GupTestCmd cmd) {
  return cmd == GupTestCmd::PIN_FAST_BENCHMARK || cmd == GupTestCmd::PIN_BASIC_TEST ||
         cmd == GupTestCmd::PIN_LONGTERM_BENCHMARK;
}

bool uses_pin(GupTestCmd cmd, uint32_t test_flags) {
  return is_pin_cmd(cmd) || (cmd == GupTestCmd::DUMP_USER_PAGES_TEST &&
                             (test_flags & GUP_TEST_FLAG_DUMP_PAGES_USE_PIN) != 0);
}

// One chunk through the command's entry point.
long gup_chunk(GupTestCmd cmd, const GupTest& gup, unsigned long addr, unsigned long nr,
               Page** pages) {
  const Foll flags = static_cast<Foll>(gup.gup_flags);
  switch (cmd) {
    case GupTestCmd::GUP_FAST_BENCHMARK:
      return get_user_pages_fast(addr, nr, flags, pages);
    case GupTestCmd::GUP_BASIC_TEST:
      return get_user_pages(addr, nr, flags, pages);
    case GupTestCmd::PIN_FAST_BENCHMARK:
      return pin_user_pages_fast(addr, nr, flags, pages);
    case GupTestCmd::PIN_BASIC_TEST:
      return pin_user_pages(addr, nr, flags, pages);
    case GupTestCmd::PIN_LONGTERM_BENCHMARK:
      return pin_user_pages(addr, nr, flags | FOLL_LONGTERM, pages);
    case GupTestCmd::DUMP_USER_PAGES_TEST:
      if (gup.test_flags & GUP_TEST_FLAG_DUMP_PAGES_USE_PIN)
        return pin_user_pages(addr, nr, flags, pages);
      return get_user_pages(addr, nr, flags, pages);
  }
  return -EINVAL;
}

void put_back_pages(GupTestCmd cmd, std::span<Page* const> pages, uint32_t test_flags) {
  if (uses_pin(cmd, test_flags)) {
    unpin_user_pages(pages);
    return;
  }
  for (Page* p : pages)
    put_page(p);
}

// verify_dma_pinned: what the kernel WARNs about, logged.
void verify_dma_pinned(GupTestCmd cmd, std::span<Page* const> pages, std::string* log) {
  if (!is_pin_cmd(cmd)) return;
  for (size_t i = 0; i < pages.size(); ++i) {
    const Folio* folio = page_folio(pages[i]);
    const char* problem = nullptr;
    // As the kernel: a pin of the shared zero page is not counted, so it
    // is reported here too.
    if (!folio_maybe_dma_pinned(folio)) {
      problem = "is NOT dma-pinned";
    } else if (cmd == GupTestCmd::PIN_LONGTERM_BENCHMARK && !folio_is_longterm_pinnable(folio)) {
      problem = "is NOT pinnable but pinned";
    }
    if (problem == nullptr) continue;
    if (log != nullptr) {
      *log += fmt::format("WARNING: pages[{}] {}\n{}", i, problem,
                          dump_page(pages[i], "gup_test failure"));
    }
    return;
  }
}

void dump_pages_test(GupTest& gup, std::span<Page* const> pages, std::string* log) {
  for (unsigned i = 0; i < GUP_TEST_MAX_PAGES_TO_DUMP; ++i) {
    if (gup.which_pages[i] > pages.size()) {
      if (log != nullptr) {
        *log += fmt::format("ZEROING due to out of range: .which_pages[{}]: {}\n", i,
                            gup.which_pages[i]);
      }
      gup.which_pages[i] = 0;
    }
  }
  if (log == nullptr) return;
  for (unsigned i = 0; i < GUP_TEST_MAX_PAGES_TO_DUMP; ++i) {
    if (gup.which_pages[i] == 0) continue;
    const uint32_t index = gup.which_pages[i] - 1;  // 1-based in the struct
    *log += fmt::format("---- page #{}, starting from user virt addr: {:#x}\n", index, gup.addr);
    *log += dump_page(pages[index], "gup_test: dump_pages() test");
  }
}

}  // namespace

const char* gup_test_cmd_name(GupTestCmd cmd) {
  switch (cmd) {
    case GupTestCmd::GUP_FAST_BENCHMARK:
      return "GUP_FAST_BENCHMARK";
    case GupTestCmd::PIN_FAST_BENCHMARK:
      return "PIN_FAST_BENCHMARK";
    case GupTestCmd::PIN_LONGTERM_BENCHMARK:
      return "PIN_LONGTERM_BENCHMARK";
    case GupTestCmd::GUP_BASIC_TEST:
      return "GUP_BASIC_TEST";
    case GupTestCmd::PIN_BASIC_TEST:
      return "PIN_BASIC_TEST";
    case GupTestCmd::DUMP_USER_PAGES_TEST:
      return "DUMP_USER_PAGES_TEST";
  }
  return "Unknown command";
}

bool gup_test_is_benchmark(GupTestCmd cmd) {
  return cmd == GupTestCmd::GUP_FAST_BENCHMARK || cmd == GupTestCmd::PIN_FAST_BENCHMARK ||
         cmd == GupTestCmd::PIN_LONGTERM_BENCHMARK;
}

namespace {

// The body of gup_test_ioctl, with the mmap lock held for the commands that
// need it (a split so that the lock is taken unconditionally where it is).
int gup_test_run(GupTestCmd cmd, GupTest& gup, std::string* log) {
  const unsigned long nr_pages = gup.size / PAGE_SIZE;
  std::vector<Page*> pages;
  try {
    pages.resize(nr_pages);
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }

  unsigned long i = 0;
  long nr = gup.nr_pages_per_call;
  unsigned long addr = gup.addr;
  const unsigned long end = gup.addr + gup.size;
  const Clock::time_point get_start = Clock::now();
  for (unsigned long next = 0; addr < end; addr = next) {
    if (nr != static_cast<long>(gup.nr_pages_per_call)) break;
    next = addr + static_cast<unsigned long>(nr) * PAGE_SIZE;
    if (next > end) {
      next = end;
      nr = static_cast<long>((next - addr) / PAGE_SIZE);
    }
    nr = gup_chunk(cmd, gup, addr, static_cast<unsigned long>(nr), pages.data() + i);
    if (nr <= 0) break;
    i += static_cast<unsigned long>(nr);
  }
  const Clock::time_point get_end = Clock::now();
  gup.get_delta_usec = usec_between(get_start, get_end);
  gup.size = addr - gup.addr;

  const std::span<Page* const> got(pages.data(), i);
  verify_dma_pinned(cmd, got, log);
  if (cmd == GupTestCmd::DUMP_USER_PAGES_TEST) dump_pages_test(gup, got, log);

  const Clock::time_point put_start = Clock::now();
  put_back_pages(cmd, got, gup.test_flags);
  gup.put_delta_usec = usec_between(put_start, Clock::now());
  return 0;
}

}  // namespace

int gup_test_ioctl(uint32_t raw_cmd, GupTest& gup, std::string* log) {
  if (raw_cmd < 1 || raw_cmd > 6) return -EINVAL;
  const auto cmd = static_cast<GupTestCmd>(raw_cmd);
  Mm* mm = current().mm();
  if (mm == nullptr) return -EFAULT;
  if (cmd == GupTestCmd::GUP_FAST_BENCHMARK || cmd == GupTestCmd::PIN_FAST_BENCHMARK)
    return gup_test_run(cmd, gup, log);
  if (!mm->mmap_lock.down_read_killable()) return -EINTR;
  const int ret = gup_test_run(cmd, gup, log);
  mm->mmap_lock.up_read();
  return ret;
}

PinLongtermTest::~PinLongtermTest() { stop(); }

void PinLongtermTest::stop_locked() {
  if (!active_) return;
  unpin_user_pages(pages_);
  pages_.clear();
  active_ = false;
}

void PinLongtermTest::stop() {
  MutexGuard g(lock_);
  stop_locked();
}

int PinLongtermTest::start(const PinLongtermTestArgs& args) {
  MutexGuard g(lock_);
  if (active_) return -EINVAL;
  if (args.flags & ~(PIN_LONGTERM_TEST_FLAG_USE_WRITE | PIN_LONGTERM_TEST_FLAG_USE_FAST))
    return -EINVAL;
  if (((args.addr | args.size) & (PAGE_SIZE - 1)) != 0) return -EINVAL;
  if (args.size > static_cast<uint64_t>(LONG_MAX)) return -EINVAL;
  const uint64_t nr_pages = args.size / PAGE_SIZE;
  if (nr_pages == 0) return -EINVAL;
  Mm* mm = current().mm();
  if (mm == nullptr) return -EFAULT;

  Foll flags = FOLL_LONGTERM;
  if (args.flags & PIN_LONGTERM_TEST_FLAG_USE_WRITE) flags |= FOLL_WRITE;
  if (args.flags & PIN_LONGTERM_TEST_FLAG_USE_FAST) return pin_range(args, flags, /*fast=*/true);
  if (!mm->mmap_lock.down_read_killable()) return -EINTR;
  const int ret = pin_range(args, flags, /*fast=*/false);
  mm->mmap_lock.up_read();
  return ret;
}

int PinLongtermTest::pin_range(const PinLongtermTestArgs& args, Foll flags, bool fast) {
  const uint64_t nr_pages = args.size / PAGE_SIZE;
  pages_.reserve(nr_pages);
  active_ = true;
  std::vector<Page*> chunk(nr_pages);
  while (pages_.size() < nr_pages) {
    const uint64_t remaining = nr_pages - pages_.size();
    const unsigned long addr = args.addr + pages_.size() * PAGE_SIZE;
    const long got = fast ? pin_user_pages_fast(addr, remaining, flags, chunk.data())
                          : pin_user_pages(addr, remaining, flags, chunk.data());
    if (got < 0) {
      stop_locked();
      return static_cast<int>(got);
    }
    pages_.insert(pages_.end(), chunk.begin(), chunk.begin() + got);
  }
  return 0;
}

int PinLongtermTest::read(std::span<std::byte> out) {
  MutexGuard g(lock_);
  if (!active_) return -EINVAL;
  if (out.size() < pages_.size() * PAGE_SIZE) return -EFAULT;
  for (size_t i = 0; i < pages_.size(); ++i) {
    const FrameStore& frames = page_memory_system(pages_[i]).frames();
    std::memcpy(out.data() + i * PAGE_SIZE, frames.frame(page_to_pfn(pages_[i])), PAGE_SIZE);
  }
  return 0;
}

}  // namespace pinmm
