// Memory steps (memory_steps.cc): each kind's value, detail and errno,
// and the checks its parse() makes.
#include <gtest/gtest.h>

#include "testing/scenario.h"

namespace pinmm {
namespace {

using testing::failures;
using testing::parse_error;
using testing::run_yaml;

// One process with a 64 KiB private and a 64 KiB shared mapping, no THP.
constexpr const char* kMachine =
    "scenario: memory\n"                                                             // 1
    "machine: {memory: 256MiB, block_size: 128MiB, nodes: 2, thp: never}\n"          // 2
    "processes:\n"                                                                   // 3
    "  - name: p\n"                                                                  // 4
    "    mappings: [{name: m, size: 64KiB}, {name: s, kind: shmem, size: 64KiB}]\n"  // 5
    "steps:\n";                                                                      // 6

TEST(MemorySteps, WriteAndReadCountTheirPages) {
  const RunReport r = run_yaml(std::string(kMachine) +
                               "  - write: {mapping: p.m, offset: 8KiB, size: 16KiB}\n"
                               "  - read: {mapping: p.m}\n"
                               "expect: {no_data_lost: true}\n");
  ASSERT_EQ(r.steps.size(), 2u);
  EXPECT_EQ(r.steps[0].kind, "write");
  EXPECT_EQ(r.steps[0].value, 4);
  EXPECT_EQ(r.steps[0].detail, "4 pages written");
  EXPECT_EQ(r.steps[1].value, 16);  // the whole mapping: 12 zero pages, 4 stamped
  EXPECT_EQ(r.steps[1].detail, "16 pages read and verified");
  EXPECT_TRUE(r.passed) << failures(r);
}

// A range that runs past its mapping is EINVAL, before anything is touched.
TEST(MemorySteps, ARangePastTheMappingIsEinval) {
  const RunReport r = run_yaml(std::string(kMachine) +
                               "  - write: {mapping: p.m, offset: 60KiB, size: 8KiB}\n"
                               "    expect: EINVAL\n"
                               "  - read: {mapping: p.m, offset: 64KiB}\n"
                               "    expect: EINVAL\n");
  EXPECT_TRUE(r.passed) << failures(r);
  EXPECT_EQ(r.steps[0].detail, "no such range");
}

// fork's value is the child's pid (processes are numbered from 100); the
// child's private pages are its own after a write, its shared pages are
// its parent's. An exited process's ranges are ESRCH, and so is a second exit.
TEST(MemorySteps, ForkAndExit) {
  const RunReport r = run_yaml(std::string(kMachine) +
                               "  - write: {mapping: p.m}\n"
                               "  - write: {mapping: p.s}\n"
                               "  - fork: {process: p, child: c}\n"
                               "  - write: {mapping: c.m, size: 4KiB}\n"
                               "  - write: {mapping: c.s, size: 4KiB}\n"
                               "  - read: {mapping: p.m}\n"
                               "  - read: {mapping: p.s}\n"
                               "  - exit: {process: c}\n"
                               "  - read: {mapping: c.m}\n"
                               "    expect: ESRCH\n"
                               "  - exit: {process: c}\n"
                               "    expect: ESRCH\n"
                               "expect: {no_data_lost: true, no_pages_leaked: true}\n");
  EXPECT_TRUE(r.passed) << failures(r);
  EXPECT_EQ(r.steps[2].value, 101);
  EXPECT_EQ(r.steps[2].detail, "p forked c (pid 101)");
  EXPECT_EQ(r.steps[7].detail, "c exited");
  EXPECT_EQ(r.steps[9].detail, "already exited");
}

// munmap forgets pages: a read over them faults, a write to them faults
// too, and mprotect over a hole is ENOMEM, as do_mprotect_pkey answers.
TEST(MemorySteps, MunmapLeavesAHole) {
  const RunReport r = run_yaml(std::string(kMachine) +
                               "  - munmap: {mapping: p.m, offset: 16KiB, size: 16KiB}\n"
                               "  - write: {mapping: p.m}\n"
                               "    expect: {result: EFAULT}\n"
                               "  - mprotect: {mapping: p.m, prot: r}\n"
                               "    expect: ENOMEM\n"
                               "expect: {no_pages_leaked: true}\n");
  EXPECT_TRUE(r.passed) << failures(r);
  EXPECT_EQ(r.steps[0].value, 4);
  EXPECT_EQ(r.steps[0].detail, "4 pages unmapped");
  EXPECT_EQ(r.steps[1].detail, "writing page 4");
}

// A read-only mapping cannot be written by the CPU; making it writable
// again lets the write through.
TEST(MemorySteps, MprotectDecidesWhatTheCpuMayDo) {
  const RunReport r = run_yaml(std::string(kMachine) +
                               "  - mprotect: {mapping: p.m, prot: r}\n"
                               "  - write: {mapping: p.m}\n"
                               "    expect: EFAULT\n"
                               "  - read: {mapping: p.m}\n"
                               "  - mprotect: {mapping: p.m, prot: none}\n"
                               "  - read: {mapping: p.m}\n"
                               "    expect: EFAULT\n"
                               "  - mprotect: {mapping: p.m, prot: rw}\n"
                               "  - write: {mapping: p.m}\n"
                               "expect: {no_data_lost: true}\n");
  EXPECT_TRUE(r.passed) << failures(r);
  EXPECT_EQ(r.steps[0].detail, "prot r");
}

// MADV_DONTNEED zeroes private memory and leaves shared memory alone;
// populate_write faults every page in.
TEST(MemorySteps, MadviseDontneedAndPopulate) {
  const RunReport r = run_yaml(std::string(kMachine) +
                               "  - madvise: {mapping: p.m, advice: populate_write}\n"
                               "  - write: {mapping: p.m}\n"
                               "  - write: {mapping: p.s}\n"
                               "  - madvise: {mapping: p.m, advice: dontneed}\n"
                               "  - madvise: {mapping: p.s, advice: dontneed}\n"
                               "  - read: {mapping: p.m}\n"
                               "  - read: {mapping: p.s}\n"
                               "expect: {no_data_lost: true, no_pages_leaked: true}\n");
  EXPECT_TRUE(r.passed) << failures(r);
  EXPECT_EQ(r.steps[0].detail, "MADV_populate_write");
  bool faulted = false;
  for (const CounterChange& c : r.steps[0].counters)
    faulted |= c.name == "nr_anon_pages" && c.after - c.before == 16;
  EXPECT_TRUE(faulted) << "populate_write did not fault the 16 pages in";
}

// move_pages moves every page to the node; its value is the pages there
// afterwards, and pgmigrate_success counts them.
TEST(MemorySteps, MovePagesToTheOtherNode) {
  const RunReport r = run_yaml(std::string(kMachine) +
                               "  - write: {mapping: p.m}\n"
                               "  - move_pages: {mapping: p.m, node: 1}\n"
                               "    expect: {value: 16}\n"
                               "  - move_pages: {mapping: p.m, size: 8KiB, node: 0}\n"
                               "    expect: {value: 2}\n"
                               "expect:\n"
                               "  no_data_lost: true\n"
                               "  counters: {delta:pgmigrate_success: 18}\n");
  EXPECT_TRUE(r.passed) << failures(r);
  EXPECT_EQ(r.steps[1].detail, "16 of 16 pages on node 1 (0 not migrated)");
}

TEST(MemorySteps, ParseChecksNamesAndOperands) {
  const std::string h = kMachine;
  EXPECT_EQ(parse_error(h + "  - fork: {process: p, child: p}\n"),
            "7:31: process 'p' already exists");
  EXPECT_EQ(parse_error(h + "  - fork: {process: q, child: c}\n"), "7:21: no process 'q'");
  EXPECT_EQ(parse_error(h + "  - fork: {process: p, child: c}\n  - write: {mapping: c.s}\n"), "");
  EXPECT_EQ(parse_error(h + "  - exit: {process: c}\n"), "7:21: no process 'c'");
  EXPECT_EQ(parse_error(h + "  - mprotect: {mapping: p.m, prot: x}\n"),
            "7:36: 'prot' must be one of none, r, rw; not 'x'");
  EXPECT_EQ(parse_error(h + "  - madvise: {mapping: p.m}\n"), "7:14: missing 'advice'");
  EXPECT_EQ(parse_error(h + "  - move_pages: {mapping: p.m, node: 2}\n"),
            "7:38: 'node' must be between 0 and 1");
  EXPECT_EQ(parse_error(h + "  - munmap: {mapping: p.m, size: 0}\n"), "7:34: 'size' cannot be 0");
}

}  // namespace
}  // namespace pinmm
