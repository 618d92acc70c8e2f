// The gup_test module: the kernel's GUP benchmark and test driver.
//
// Linux counterpart: mm/gup_test.c and mm/gup_test.h (CONFIG_GUP_TEST,
// /sys/kernel/debug/gup_test). KERNEL-SPEC 10.1. gup_test_ioctl() is the
// ioctl for the six benchmark/test commands: it walks [addr, addr + size)
// of the calling task's mm in chunks of nr_pages_per_call with the entry
// point of the command, stopping at the first chunk that returns fewer pages
// than asked, times the get loop and the release separately, checks that
// pinned folios are DMA-pinned (and long-term pinnable for
// PIN_LONGTERM_BENCHMARK), and writes back the bytes processed in `size`.
// PinLongtermTest is the state behind PIN_LONGTERM_TEST_START / STOP / READ:
// one open file of the module, keeping long-term pins across calls.
//
// Thread safety: gup_test_ioctl may run on many threads of one mm at once
// (gup_test -j). A PinLongtermTest serialises its own calls.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "pinmm/base/locks.h"
#include "pinmm/gup/flags.h"
#include "pinmm/phys/page.h"

namespace pinmm {

// The ioctl numbers' command part ('g', nr).
enum class GupTestCmd : uint32_t {
  GUP_FAST_BENCHMARK = 1,
  PIN_FAST_BENCHMARK = 2,
  PIN_LONGTERM_BENCHMARK = 3,
  GUP_BASIC_TEST = 4,
  PIN_BASIC_TEST = 5,
  DUMP_USER_PAGES_TEST = 6,
};
// The name gup_test prints ("PIN_FAST_BENCHMARK"), "Unknown command" otherwise.
const char* gup_test_cmd_name(GupTestCmd cmd);
// The benchmark commands, whose runs print timings.
bool gup_test_is_benchmark(GupTestCmd cmd);

inline constexpr unsigned GUP_TEST_MAX_PAGES_TO_DUMP = 8;
inline constexpr uint32_t GUP_TEST_FLAG_DUMP_PAGES_USE_PIN = 0x1;

// struct gup_test.
struct GupTest {
  uint64_t get_delta_usec = 0;  // out
  uint64_t put_delta_usec = 0;  // out
  uint64_t addr = 0;
  uint64_t size = 0;  // in: bytes to walk; out: bytes walked
  uint32_t nr_pages_per_call = 0;
  uint32_t gup_flags = 0;  // FOLL_* bits
  uint32_t test_flags = 0;
  // 1-based page numbers to dump; 0 = unused.
  std::array<uint32_t, GUP_TEST_MAX_PAGES_TO_DUMP> which_pages{};
};

// One ioctl on the calling task's mm. 0, or -EINVAL (unknown command),
// -ENOMEM, -EINTR (killed while waiting for the mmap lock). What the kernel
// would log (DUMP_USER_PAGES_TEST page dumps, verification warnings) is
// appended to `log` if it is not nullptr.
int gup_test_ioctl(uint32_t cmd, GupTest& gup, std::string* log = nullptr);

inline constexpr uint32_t PIN_LONGTERM_TEST_FLAG_USE_WRITE = 1;
inline constexpr uint32_t PIN_LONGTERM_TEST_FLAG_USE_FAST = 2;

// struct pin_longterm_test.
struct PinLongtermTestArgs {
  uint64_t addr = 0;
  uint64_t size = 0;
  uint32_t flags = 0;
};

class PinLongtermTest {
 public:
  PinLongtermTest() = default;
  ~PinLongtermTest();  // the file's release: stop()
  PinLongtermTest(const PinLongtermTest&) = delete;
  PinLongtermTest& operator=(const PinLongtermTest&) = delete;

  // PIN_LONGTERM_TEST_START: pins the whole range FOLL_LONGTERM (and
  // FOLL_WRITE), fast or not, in the calling task's mm, and keeps the pins.
  // -EINVAL if pins are already held, for unknown flags, an unaligned
  // addr/size, or size 0 or beyond LONG_MAX; a failing pin call unpins
  // everything and its error is returned.
  int start(const PinLongtermTestArgs& args) EXCLUDES(lock_);
  // PIN_LONGTERM_TEST_STOP: unpins everything.
  void stop() EXCLUDES(lock_);
  // PIN_LONGTERM_TEST_READ: the pinned pages' contents, read through the
  // pins (not the page tables), into `out` (at least size bytes). -EINVAL
  // without pins, -EFAULT if `out` is too small.
  int read(std::span<std::byte> out) EXCLUDES(lock_);

 private:
  void stop_locked() REQUIRES(lock_);
  // Pins the whole of `args` into pages_ (the caller holds the mmap lock
  // unless `fast`); on a failing call unpins everything and returns its error.
  int pin_range(const PinLongtermTestArgs& args, Foll flags, bool fast) REQUIRES(lock_);

  Mutex lock_{LockRank::kDriver};
  std::vector<Page*> pages_ GUARDED_BY(lock_);
  bool active_ GUARDED_BY(lock_) = false;
};

}  // namespace pinmm
