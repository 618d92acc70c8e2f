// Scenarios: a corpus of malformed files (each a ScenarioError at the
// right line and column, never a crash), the built-in scenarios passing
// their own expectations, and expectations that do not hold.
#include "pinmm/scenario/scenario.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "pinmm/scenario/runner.h"

namespace pinmm {
namespace {

// A small valid scenario; the corpus below breaks it one way at a time.
constexpr const char* kHeader =
    "scenario: t\n"                                                         // 1
    "machine: {memory: 256MiB, block_size: 128MiB, cma: [{size: 8MiB}]}\n"  // 2
    "processes:\n"                                                          // 3
    "  - name: p\n"                                                         // 4
    "    mappings:\n"                                                       // 5
    "      - {name: m, size: 1MiB}\n"                                       // 6
    "devices:\n"                                                            // 7
    "  - {name: nic, type: rdma_nic}\n"                                     // 8
    "steps:\n";                                                             // 9

struct BadCase {
  const char* what;
  std::string yaml;
  int line;
  int column;  // 0: not checked
  const char* message;
};

std::vector<BadCase> corpus() {
  const std::string h = kHeader;
  return {
      {"yaml syntax", "scenario: [t\n", 2, 0, ""},
      {"not a mapping", "- a\n", 1, 1, "a scenario is a mapping"},
      {"unknown top-level key", "scenario: t\nmachin: {}\n", 2, 1, "unknown key 'machin'"},
      {"missing machine", "scenario: t\nsteps: []\n", 1, 1, "missing 'machine'"},
      {"wrong type", "scenario: t\nmachine: {memory: [1]}\nsteps: []\n", 2, 19,
       "'memory' must be a string"},
      {"bad size", "scenario: t\nmachine: {memory: 12XB}\nsteps: []\n", 2, 19, "is not a size"},
      {"impossible machine", "scenario: t\nmachine: {memory: 100MiB}\nsteps: []\n", 2, 10,
       "multiple of the memory block size"},
      {"steps not a list", h.substr(0, h.size() - 7) + "steps: {a: 1}\n", 9, 8, "is a list"},
      {"unknown step kind", h + "  - wrte: {mapping: p.m}\n", 10, 5, "unknown step kind 'wrte'"},
      {"step not a mapping", h + "  - write\n", 10, 5, "a step is a mapping"},
      {"two step kinds", h + "  - {write: {mapping: p.m}, read: {mapping: p.m}}\n", 10, 29,
       "exactly one step kind"},
      {"unknown operand", h + "  - write: {mapping: p.m, bytes: 3}\n", 10, 27,
       "unknown key 'bytes' in a 'write' step"},
      {"mapping without a process", h + "  - write: {mapping: m}\n", 10, 22,
       "named 'process.mapping'"},
      {"undefined process", h + "  - write: {mapping: q.m}\n", 10, 22, "no process 'q'"},
      {"undefined mapping", h + "  - write: {mapping: p.x}\n", 10, 22, "has no mapping 'x'"},
      {"unaligned offset", h + "  - write: {mapping: p.m, offset: 100}\n", 10, 35,
       "multiple of 4KiB"},
      {"undefined pin", h + "  - unpin: {pin: zz}\n", 10, 18, "no pin 'zz' defined before"},
      {"handle defined twice",
       h + "  - pin: {mapping: p.m, as: a}\n  - pin: {mapping: p.m, as: a}\n", 11, 29,
       "already defined"},
      {"handle of another kind",
       h + "  - pin: {mapping: p.m, as: a}\n  - deregister: {region: a}\n", 11, 26,
       "is a pin, not a region"},
      {"bad errno", h + "  - write: {mapping: p.m}\n    expect: EWHAT\n", 11, 13,
       "neither 'ok' nor an errno"},
      {"bad boolean", h + "  - pin: {mapping: p.m, as: a, longterm: maybe}\n", 10, 42,
       "must be true or false"},
      {"node out of range", h + "  - move_pages: {mapping: p.m, node: 3}\n", 10, 38,
       "between 0 and 0"},
      {"lonely concurrent", h + "  - concurrent: [{write: {mapping: p.m}}]\n", 10, 17,
       "at least two steps"},
      {"nested concurrent",
       h + "  - concurrent:\n    - concurrent: [{write: {mapping: p.m}}, {read: {mapping: p.m}}]\n"
           "    - read: {mapping: p.m}\n",
       11, 7, "do not nest"},
      {"unknown device", h + "  - register: {device: nope, mapping: p.m, as: r}\n", 10, 24,
       "no device 'nope'"},
      {"device of the wrong type", h + "  - direct_io: {device: nic, mapping: p.m}\n", 10, 25,
       "cannot do this"},
      {"gpu without device memory",
       "scenario: t\nmachine: {memory: 256MiB, block_size: 128MiB}\ndevices:\n"
       "  - {name: g, type: gpu}\nsteps: []\n",
       4, 5, "needs device memory"},
      {"unknown CMA area", h + "  - cma_alloc: {area: big, as: c}\n", 10, 23, "no CMA area 'big'"},
      {"hugetlb size",
       "scenario: t\nmachine: {memory: 256MiB, block_size: 128MiB}\nprocesses:\n"
       "  - {name: p, mappings: [{name: h, kind: hugetlb, size: 1MiB}]}\nsteps: []\n",
       4, 57, "multiple of 2MiB"},
      {"process defined twice",
       "scenario: t\nmachine: {memory: 256MiB, block_size: 128MiB}\nprocesses:\n"
       "  - {name: p}\n  - {name: p}\nsteps: []\n",
       5, 12, "defined twice"},
      {"kernel allocation size", h + "  - kernel_alloc: {size: 12KiB, as: k}\n", 10, 26,
       "power of two"},
      {"unknown counter", h + "  - write: {mapping: p.m}\nexpect:\n  counters: {pgfoo: 1}\n", 12,
       14, "not a /proc/vmstat counter"},
      {"bad counter value",
       h + "  - write: {mapping: p.m}\nexpect:\n  counters: {pgmigrate_success: '> x'}\n", 12, 33,
       "must be a number"},
      {"unknown zone", h + "  - write: {mapping: p.m}\nexpect:\n  zones: [{zone: dma, free: 1}]\n",
       12, 18, "must be one of normal, movable"},
      {"unknown thp mode",
       "scenario: t\nmachine: {memory: 256MiB, block_size: 128MiB, thp: yes}\n"
       "steps: []\n",
       2, 52, "must be one of always, madvise, never"},
  };
}

TEST(ScenarioParse, MalformedFilesAreErrorsAtTheirNode) {
  const auto cases = corpus();
  ASSERT_GE(cases.size(), 20u);
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.what);
    try {
      (void)parse_scenario(c.yaml, "bad.yaml");
      ADD_FAILURE() << "parsed";
    } catch (const ScenarioError& e) {
      EXPECT_EQ(e.pos().file, "bad.yaml");
      EXPECT_EQ(e.pos().line, c.line) << e.what();
      if (c.column != 0) {
        EXPECT_EQ(e.pos().column, c.column) << e.what();
      } else {
        EXPECT_GT(e.pos().column, 0) << e.what();
      }
      EXPECT_NE(e.message().find(c.message), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).rfind(e.pos().to_string() + ": ", 0), 0u) << e.what();
    }
  }
}

TEST(ScenarioParse, AValidFileKeepsWhatItSays) {
  const Scenario s =
      parse_scenario(std::string(kHeader) +
                         "  - name: pin it\n"
                         "    pin: {mapping: p.m, size: 8KiB, as: a, longterm: true}\n"
                         "    expect: {result: ok, value: 2}\n"
                         "  - offline: {blocks: movable, last: 1, timeout_ms: 10}\n"
                         "    expect: EBUSY\n"
                         "expect:\n"
                         "  no_data_lost: true\n"
                         "  counters: {delta:pgmigrate_success: '>= 3'}\n",
                     "ok.yaml");
  EXPECT_EQ(s.name, "t");
  EXPECT_EQ(s.machine.total_memory(), Bytes::MiB(256));
  ASSERT_EQ(s.machine.cma.size(), 1u);
  EXPECT_EQ(s.machine.cma[0].name, "reserved");
  ASSERT_EQ(s.steps.size(), 2u);
  EXPECT_STREQ(s.steps[0].kind(), "pin");
  EXPECT_EQ(s.steps[0].title, "pin it");
  const auto& pin = std::get<PinStep>(s.steps[0].op);
  EXPECT_EQ(*pin.range.size, 8192u);
  EXPECT_TRUE(pin.longterm);
  EXPECT_EQ(s.steps[0].expect->value, 2);
  const auto& offline = std::get<OfflineStep>(s.steps[1].op);
  EXPECT_EQ(offline.blocks.zone, "movable");
  EXPECT_EQ(*offline.blocks.last, 1u);
  EXPECT_EQ(s.steps[1].expect->err, EBUSY);
  ASSERT_EQ(s.expect.counters.size(), 1u);
  EXPECT_EQ(s.expect.counters[0].op, CompareOp::kGe);
  EXPECT_EQ(s.expect.counters[0].value, 3);
  EXPECT_EQ(s.expect.counters[0].pos.line, 17);
}

// Every built-in, by name (a name, not builtin_scenarios(), so a built-in
// that goes missing fails here).
std::vector<std::string> builtin_names() {
  return {"default", "longterm-off", "cma-vs-pins", "hmm-mirror", "cow-and-pins", "foundation"};
}

TEST(BuiltinScenarioList, EveryBuiltinIsTested) {
  std::vector<std::string> listed;
  for (const BuiltinScenario& b : builtin_scenarios())
    listed.push_back(b.name);
  EXPECT_EQ(listed, builtin_names());
}

class BuiltinScenarios : public ::testing::TestWithParam<std::string> {};

TEST_P(BuiltinScenarios, PassTheirOwnExpectations) {
  const BuiltinScenario* b = find_builtin_scenario(GetParam());
  ASSERT_NE(b, nullptr);
  const Scenario s = parse_scenario(b->yaml, b->name);
  const RunReport r = run_scenario(s);
  for (const StepOutcome& o : r.steps)
    EXPECT_TRUE(o.expectation_ok) << "step " << o.id << " " << o.title << ": " << o.detail;
  for (const ExpectationOutcome& e : r.expectations)
    EXPECT_TRUE(e.ok) << e.what << ": " << e.detail;
  EXPECT_TRUE(r.passed);
}

INSTANTIATE_TEST_SUITE_P(Scenario, BuiltinScenarios, ::testing::ValuesIn(builtin_names()),
                         [](const auto& param_info) {
                           std::string n = param_info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

// Expectations that do not hold fail the run and say why.
TEST(ScenarioRun, WrongExpectationsFail) {
  const Scenario s = parse_scenario(std::string(kHeader) +
                                        "  - write: {mapping: p.m}\n"
                                        "  - name: pinning a range that is not there\n"
                                        "    pin: {mapping: p.m, offset: 2MiB, as: a}\n"
                                        "  - read: {mapping: p.m}\n"
                                        "    expect: {result: ok, value: 7}\n"
                                        "expect:\n"
                                        "  counters: {nr_foll_pin_acquired: 5}\n"
                                        "  zones: [{zone: normal, present: '< 10'}]\n",
                                    "wrong.yaml");
  const RunReport r = run_scenario(s);
  EXPECT_FALSE(r.passed);
  ASSERT_EQ(r.steps.size(), 3u);
  EXPECT_TRUE(r.steps[0].expectation_ok);
  EXPECT_FALSE(r.steps[1].expectation_ok);
  EXPECT_EQ(r.steps[1].err, EINVAL);
  EXPECT_EQ(r.steps[1].expectation, "ok");
  EXPECT_FALSE(r.steps[2].expectation_ok);
  EXPECT_EQ(r.steps[2].value, 256);
  ASSERT_FALSE(r.expectations.empty());
  EXPECT_EQ(r.expectations[0].what, "nr_foll_pin_acquired == 5");
  EXPECT_FALSE(r.expectations[0].ok);
  EXPECT_EQ(r.expectations[0].detail, "0");
  EXPECT_EQ(r.expectations[0].pos.line, 16);
  ASSERT_GE(r.expectations.size(), 2u);
  EXPECT_EQ(r.expectations[1].what, "node 0 Normal present < 10");
  EXPECT_FALSE(r.expectations[1].ok);
  EXPECT_EQ(r.expectations[1].detail, "65536");
}

// The oracle notices data that is not what was last written: a private
// mapping's pages read as zeros after MADV_DONTNEED, a shared one keeps
// them; and a fork's child sees its parent's data, then only its own.
TEST(ScenarioRun, TheOracleFollowsDontneedAndFork) {
  const Scenario s = parse_scenario(
      "scenario: oracle\n"
      "machine: {memory: 256MiB, block_size: 128MiB, thp: never}\n"
      "processes:\n"
      "  - name: p\n"
      "    mappings:\n"
      "      - {name: priv, size: 64KiB}\n"
      "      - {name: shm, kind: shmem, size: 64KiB}\n"
      "steps:\n"
      "  - write: {mapping: p.priv}\n"
      "  - write: {mapping: p.shm}\n"
      "  - fork: {process: p, child: c}\n"
      "  - read: {mapping: c.priv}\n"
      "  - write: {mapping: c.shm, size: 4KiB}\n"
      "  - read: {mapping: p.shm}\n"
      "  - madvise: {mapping: p.priv, advice: dontneed}\n"
      "  - madvise: {mapping: p.shm, advice: dontneed}\n"
      "  - read: {mapping: p.priv}\n"
      "  - read: {mapping: p.shm}\n"
      "  - read: {mapping: c.priv}\n"
      "  - exit: {process: c}\n"
      "expect: {no_data_lost: true, no_pages_leaked: true}\n",
      "oracle.yaml");
  const RunReport r = run_scenario(s);
  for (const StepOutcome& o : r.steps)
    EXPECT_TRUE(o.expectation_ok) << o.id << ": " << o.detail;
  for (const ExpectationOutcome& e : r.expectations)
    EXPECT_TRUE(e.ok) << e.what << ": " << e.detail;
}

// A read verifies what it says it verified: a page the process no longer
// maps fails the read with EFAULT, as a CPU access would (it used to be
// skipped while the step reported the whole range as verified).
TEST(ScenarioRun, AReadOfUnmappedPagesFailsWithEfault) {
  const Scenario s = parse_scenario(
      "scenario: read-unmapped\n"
      "machine: {memory: 128MiB, block_size: 128MiB, thp: never}\n"
      "processes: [{name: p, mappings: [{name: m, size: 64KiB}]}]\n"
      "steps:\n"
      "  - write: {mapping: p.m}\n"
      "  - munmap: {mapping: p.m, offset: 32KiB}\n"
      "  - read: {mapping: p.m}\n"
      "    expect: {result: EFAULT, value: 8}\n"
      "  - read: {mapping: p.m, size: 32KiB}\n"
      "    expect: {value: 8}\n"
      "expect: {no_data_lost: true, no_pages_leaked: true}\n",
      "read.yaml");
  const RunReport r = run_scenario(s);
  ASSERT_EQ(r.steps.size(), 4u);
  EXPECT_EQ(r.steps[2].detail, "reading page 8 (8 pages verified before it)");
  EXPECT_EQ(r.steps[3].detail, "8 pages read and verified");
  EXPECT_TRUE(r.passed);
}

// A concurrent group's members run on threads of their own (ThreadSanitizer
// runs this): the GPU writing one mapping while the CPU writes another.
TEST(ScenarioConcurrent, GroupMembersRunAtOnce) {
  const Scenario s = parse_scenario(
      "scenario: group\n"
      "machine: {memory: 256MiB, block_size: 128MiB, device_space: 128MiB, thp: never}\n"
      "processes: [{name: p, mappings: [{name: a, size: 2MiB}, {name: b, size: 2MiB}]}]\n"
      "devices: [{name: gpu0, type: gpu, hot_threshold: 2}]\n"
      "steps:\n"
      "  - write: {mapping: p.a}\n"
      "  - concurrent:\n"
      "      - mirror: {device: gpu0, mapping: p.a, op: write}\n"
      "      - write: {mapping: p.b}\n"
      "  - read: {mapping: p.a}\n"
      "  - read: {mapping: p.b}\n"
      "expect: {no_data_lost: true, no_pages_leaked: true}\n",
      "group.yaml");
  const RunReport r = run_scenario(s);
  ASSERT_EQ(r.steps.size(), 5u);
  EXPECT_EQ(r.steps[1].id, "2.1");
  EXPECT_EQ(r.steps[2].id, "2.2");
  EXPECT_TRUE(r.passed);
}

}  // namespace
}  // namespace pinmm
