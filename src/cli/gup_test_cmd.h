// `pinmm gup-test`: the kernel's tools/testing/selftests/mm/gup_test
// against a machine pinmm builds for it.
//
// Options as gup_test has them (later ones win, as with getopt): -a
// PIN_FAST_BENCHMARK, -b PIN_BASIC_TEST, -L PIN_LONGTERM_BENCHMARK, -u
// GUP_FAST_BENCHMARK (default), -U GUP_BASIC_TEST, -c DUMP_USER_PAGES_TEST
// (page indexes as extra arguments, default page 0), -p pin for the dump,
// -F gup_flags, -m MiB (default 128), -n pages per call (default 1), -r
// repeats, -j threads, -t/-T MADV_HUGEPAGE/MADV_NOHUGEPAGE, -w/-W write on
// (default)/off, -S MAP_SHARED, -H MAP_HUGETLB, -z fault in through GUP;
// plus --movable: the buffer lives in ZONE_MOVABLE, so long-term pins must
// migrate it first. -f (another file than /dev/zero) is not offered.
//
// Output: per thread and repeat, exactly gup_test's messages without
// kselftest's "# " prefix and TAP lines: `<CMD>: Time: get:<us> put:<us> us`
// (", truncated (size: N)" when the walk stopped early) for the benchmarks,
// `<CMD>: done` otherwise; what the module logged (page dumps, pin warnings)
// follows. A line starting with "# " describes the machine first.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace pinmm::cli {

class GupTestCommand {
 public:
  // Adds the `gup-test` subcommand to `app`.
  explicit GupTestCommand(CLI::App& app);
  bool parsed() const { return cmd_->parsed(); }
  // Runs it: 0 when every ioctl succeeded, 1 when one failed, 2 for bad
  // arguments.
  int run();

 private:
  CLI::App* cmd_;
  int size_mib_ = 128;
  int repeats_ = 1;
  int nr_pages_ = 1;
  int threads_ = 1;
  std::string gup_flags_;
  std::vector<std::string> page_indexes_;
  bool movable_ = false;
  bool quiet_ = false;
  bool ignore_host_memory_ = false;
};

}  // namespace pinmm::cli
