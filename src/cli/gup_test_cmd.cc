#include "gup_test_cmd.h"

#include <sys/mman.h>

#include <cstdlib>
#include <memory>
#include <thread>

#include <fmt/format.h>

#include "pinmm/base/host.h"
#include "pinmm/base/locks.h"
#include "pinmm/base/task.h"
#include "pinmm/gup/flags.h"
#include "pinmm/gup/gup_test_module.h"
#include "pinmm/machine/machine.h"
#include "pinmm/vm/access.h"
#include "pinmm/vm/mmap.h"

namespace pinmm::cli {
namespace {

// The stale FOLL_TOUCH gup_test.c defines for -z (bit 1 is FOLL_GET in
// 6.x, so -z makes every call invalid; KERNEL-SPEC 10.1).
constexpr uint32_t kGupTestFollTouch = 0x02;

struct Setup {
  GupTestCmd cmd = GupTestCmd::GUP_FAST_BENCHMARK;
  int thp = -1;  // -1 as the machine has it, 1 MADV_HUGEPAGE, 0 MADV_NOHUGEPAGE
  bool write = true;
  bool shared = false;
  bool hugetlb = false;
  bool touch_in_gup = false;
  GupTest gup;
};

// strtol(s, 0, 0) as gup_test parses numbers (decimal, 0x hex, 0 octal).
std::optional<long> parse_number(const std::string& s) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(s.c_str(), &end, 0);
  if (s.empty() || *end != '\0' || errno != 0) return std::nullopt;
  return v;
}

uint64_t round_up(uint64_t v, uint64_t to) { return (v + to - 1) / to * to; }

// The FOLL_ flags a caller may pass (KERNEL-SPEC 1.1); the internal ones
// and undefined bits make every GUP call fail with -EINVAL.
constexpr Foll kCallerFollFlags = FOLL_WRITE | FOLL_GET | FOLL_DUMP | FOLL_FORCE | FOLL_NOWAIT |
                                  FOLL_NOFAULT | FOLL_HWPOISON | FOLL_ANON | FOLL_LONGTERM |
                                  FOLL_SPLIT_PMD | FOLL_PCI_P2PDMA | FOLL_INTERRUPTIBLE |
                                  FOLL_HONOR_NUMA_FAULT;

// A machine with room for the buffer: the kernel zone holds it (or, with
// --movable, the migration targets of long-term pins) plus 64 MiB; with
// --movable the buffer's own zone is as big plus 16 MiB; -H adds a hugetlb
// pool of the buffer's size.
MachineConfig machine_for(uint64_t size, bool movable, bool hugetlb) {
  const uint64_t buffer = round_up(size, Bytes::MiB(2).value());
  uint64_t normal = buffer + Bytes::MiB(64).value();
  const uint64_t movable_bytes = movable ? buffer + Bytes::MiB(16).value() : 0;
  if (hugetlb) normal += buffer;
  MachineConfig c = MachineConfig::tiny(Bytes(normal + movable_bytes), Bytes(movable_bytes));
  c.thp = ThpMode::kAlways;  // Debian's default
  if (hugetlb) c.hugepages.push_back({Bytes::MiB(2), buffer / Bytes::MiB(2).value(), std::nullopt});
  return c;
}

}  // namespace

GupTestCommand::GupTestCommand(CLI::App& app) {
  cmd_ = app.add_subcommand("gup-test", "Run the kernel's gup_test benchmark on a pinmm machine");
  cmd_->add_flag("-a")->description("PIN_FAST_BENCHMARK (pin_user_pages_fast)");
  cmd_->add_flag("-b")->description("PIN_BASIC_TEST (pin_user_pages)");
  cmd_->add_flag("-L")->description("PIN_LONGTERM_BENCHMARK (pin_user_pages with FOLL_LONGTERM)");
  cmd_->add_flag("-u")->description("GUP_FAST_BENCHMARK (get_user_pages_fast, the default)");
  cmd_->add_flag("-U")->description("GUP_BASIC_TEST (get_user_pages)");
  cmd_->add_flag("-c")->description(
      "DUMP_USER_PAGES_TEST: dump the pages given as arguments (default 0)");
  cmd_->add_flag("-p")->description("Pin instead of get for the dump test");
  cmd_->add_option("-F", gup_flags_, "gup_flags (decimal or 0x hex)");
  cmd_->add_option("-m", size_mib_, "Buffer size in MiB")->capture_default_str();
  cmd_->add_option("-n", nr_pages_, "Pages per call")->capture_default_str();
  cmd_->add_option("-r", repeats_, "Repeats (benchmarks)")->capture_default_str();
  cmd_->add_option("-j", threads_, "Threads, each running the test")->capture_default_str();
  cmd_->add_flag("-t")->description("madvise(MADV_HUGEPAGE) the buffer");
  cmd_->add_flag("-T")->description("madvise(MADV_NOHUGEPAGE) the buffer");
  cmd_->add_flag("-w")->description("FOLL_WRITE (the default)");
  cmd_->add_flag("-W")->description("No FOLL_WRITE");
  cmd_->add_flag("-S")->description("MAP_SHARED instead of MAP_PRIVATE");
  cmd_->add_flag("-H")->description("MAP_HUGETLB (2 MiB pages from a pool sized for the buffer)");
  cmd_->add_flag("-z")->description("Fault in through GUP instead of touching every page first");
  cmd_->add_flag("--movable", movable_,
                 "Put the buffer in ZONE_MOVABLE, so long-term pins migrate it first");
  cmd_->add_flag("--quiet", quiet_, "Print no machine description");
  cmd_->add_flag("--ignore-host-memory", ignore_host_memory_,
                 "Run even if the machine and buffer need more host memory than is available");
  cmd_->add_option("pages", page_indexes_, "Page indexes to dump (-c), 0-based");
}

int GupTestCommand::run() {
  std::vector<std::string> errs;
  Setup s;
  // getopt semantics: options take effect in command-line order.
  for (const CLI::Option* opt : cmd_->parse_order()) {
    const std::string name = opt->get_name();
    if (name == "-a") s.cmd = GupTestCmd::PIN_FAST_BENCHMARK;
    if (name == "-b") s.cmd = GupTestCmd::PIN_BASIC_TEST;
    if (name == "-L") s.cmd = GupTestCmd::PIN_LONGTERM_BENCHMARK;
    if (name == "-u") s.cmd = GupTestCmd::GUP_FAST_BENCHMARK;
    if (name == "-U") s.cmd = GupTestCmd::GUP_BASIC_TEST;
    if (name == "-c") {
      s.cmd = GupTestCmd::DUMP_USER_PAGES_TEST;
      s.gup.which_pages[0] = 1;
    }
    if (name == "-p") s.gup.test_flags |= GUP_TEST_FLAG_DUMP_PAGES_USE_PIN;
    if (name == "-t") s.thp = 1;
    if (name == "-T") s.thp = 0;
    if (name == "-w") s.write = true;
    if (name == "-W") s.write = false;
    if (name == "-S") s.shared = true;
    if (name == "-H") s.hugetlb = true;
    if (name == "-z") s.touch_in_gup = true;
  }
  if (!gup_flags_.empty()) {
    const auto v = parse_number(gup_flags_);
    if (!v || *v < 0 || *v > UINT32_MAX) {
      errs.push_back(fmt::format("-F: '{}' is not a 32-bit flags word", gup_flags_));
    } else if (const Foll bad = Foll(static_cast<uint32_t>(*v)) & ~kCallerFollFlags; any(bad)) {
      // GUP would refuse every call (is_valid_gup_args): say so up front.
      errs.push_back(fmt::format(
          "-F {:#x}: {} cannot be passed by a caller (GUP sets them itself, or they are no FOLL_ "
          "flag); every call would fail with EINVAL",
          *v, foll_flags_to_string(bad)));
    }
    s.gup.gup_flags = static_cast<uint32_t>(v.value_or(0));
  }
  for (size_t i = 0; i < page_indexes_.size() && i < GUP_TEST_MAX_PAGES_TO_DUMP; ++i) {
    const auto v = parse_number(page_indexes_[i]);
    if (!v || *v < 0) {
      errs.push_back(fmt::format("page index '{}' is not a number", page_indexes_[i]));
      continue;
    }
    s.gup.which_pages[i] = static_cast<uint32_t>(*v + 1);  // 1-based in the ioctl
  }
  if (size_mib_ <= 0) errs.push_back(fmt::format("-m: {} MiB is not a buffer size", size_mib_));
  if (size_mib_ > 64 * 1024) errs.push_back("-m: at most 65536 MiB (64 GiB)");
  if (nr_pages_ < 0) errs.push_back(fmt::format("-n: {} pages per call", nr_pages_));
  if (repeats_ < 0) errs.push_back(fmt::format("-r: {} repeats", repeats_));
  if (threads_ < 1 || threads_ > 256) errs.push_back(fmt::format("-j: {} threads", threads_));
  if (!errs.empty()) {
    for (const auto& e : errs)
      fmt::print(stderr, "pinmm gup-test: error: {}\n", e);
    return 2;
  }

  const uint64_t size = static_cast<uint64_t>(size_mib_) << 20;
  const MachineConfig config = machine_for(size, movable_, s.hugetlb);
  if (!ignore_host_memory_) {
    // The buffer is touched in full, so its frames count too.
    if (auto why =
            host_memory_problem(config.host_bytes_at_boot() + size,
                                fmt::format("-m {} (the machine and its buffer)", size_mib_))) {
      fmt::print(stderr, "pinmm gup-test: error: {}\n", *why);
      return 2;
    }
  }
  auto booted = Machine::boot(config);
  if (!booted.ok()) {
    fmt::print(stderr, "pinmm gup-test: cannot boot a machine for {} MiB: {}\n", size_mib_,
               booted.error().name());
    return 1;
  }
  Machine& machine = **booted;
  MmHandle mm = Mm::create(machine.vm());
  Task main_task(1, "gup_test");
  CurrentTask as_main(main_task);
  main_task.set_mm(mm.get());

  int flags = s.shared ? MAP_SHARED : MAP_PRIVATE;
  flags |= MAP_ANONYMOUS;  // /dev/zero
  if (s.hugetlb) flags |= MAP_HUGETLB;
  auto mapped = vm_mmap(*mm, VirtAddr(0), size, PROT_READ | PROT_WRITE, flags);
  if (!mapped.ok()) {
    fmt::print(stderr, "pinmm gup-test: mmap: {}\n", mapped.error().name());
    return 1;
  }
  const VirtAddr p = *mapped;
  if (s.thp >= 0) (void)do_madvise(*mm, p, size, s.thp == 1 ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);

  s.gup.addr = p.value();
  s.gup.nr_pages_per_call = static_cast<uint32_t>(nr_pages_);
  if (s.write) s.gup.gup_flags |= static_cast<uint32_t>(FOLL_WRITE);
  if (s.touch_in_gup) {
    s.gup.gup_flags |= kGupTestFollTouch;
  } else {
    for (uint64_t off = 0; off < size; off += PAGE_SIZE) {
      if (!write_user<uint8_t>(*mm, p + off, 0).ok()) {
        fmt::print(stderr, "pinmm gup-test: touching the buffer failed at offset {:#x}\n", off);
        return 1;
      }
    }
  }
  if (!quiet_) {
    fmt::print(
        "# machine: {} ({} in ZONE_MOVABLE); buffer: {} MiB {} {}{} at {:#x}, "
        "{} page(s) per call, {} thread(s)\n",
        config.total_memory().to_string(), config.nodes[0].movable.to_string(), size_mib_,
        s.shared ? "MAP_SHARED" : "MAP_PRIVATE", s.hugetlb ? "hugetlb" : "anonymous",
        s.thp == 1 ? " MADV_HUGEPAGE" : (s.thp == 0 ? " MADV_NOHUGEPAGE" : ""), p.value(),
        nr_pages_, threads_);
  }

  Mutex print_mutex{LockRank::kLeaf};  // one thread's lines at a time
  std::atomic<int> failures{0};
  const char* name = gup_test_cmd_name(s.cmd);
  auto gup_thread = [&](int id) {
    Task task(1 + id, "gup_test");
    task.set_mm(mm.get());
    CurrentTask as(task);
    GupTest gup = s.gup;
    const auto cmd = static_cast<uint32_t>(s.cmd);
    const int runs = gup_test_is_benchmark(s.cmd) ? repeats_ : 1;
    for (int i = 0; i < runs; ++i) {
      gup.size = size;
      std::string log;
      const int status = gup_test_ioctl(cmd, gup, &log);
      MutexGuard g(print_mutex);
      if (status != 0) {
        fmt::print(stderr, "pinmm gup-test: ioctl {} failed: {}\n", name,
                   Errno::from_neg(status).name());
        ++failures;
        return;
      }
      if (gup_test_is_benchmark(s.cmd)) {
        fmt::print("{}: Time: get:{} put:{} us", name, gup.get_delta_usec, gup.put_delta_usec);
        if (gup.size != size) fmt::print(", truncated (size: {})", gup.size);
        fmt::print("\n");
      } else {
        fmt::print("{}: done\n", name);
        if (gup.size != size) fmt::print("Truncated (size: {})\n", gup.size);
      }
      fmt::print("{}", log);
    }
  };
  std::vector<std::thread> threads;
  for (int i = 1; i < threads_; ++i)
    threads.emplace_back(gup_thread, i);
  gup_thread(0);
  for (std::thread& t : threads)
    t.join();
  std::fflush(stdout);

  // The run must leave a consistent machine: every reference and pin back.
  main_task.set_mm(nullptr);
  mm.reset();
  const ValidationReport report = machine.validate();
  if (!report.ok()) {
    fmt::print(stderr, "pinmm gup-test: the machine is inconsistent afterwards:\n{}",
               report.to_string());
    return 1;
  }
  return failures.load() == 0 ? 0 : 1;
}

}  // namespace pinmm::cli
