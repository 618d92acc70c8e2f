// The expect: section (expectations.cc): comparisons, each kind of check
// and what it reports, and the parse errors.
#include "expectations.h"

#include <gtest/gtest.h>

#include "testing/scenario.h"

namespace pinmm {
namespace {

using testing::parse_error;
using testing::run_yaml;

TEST(Expectations, Compare) {
  EXPECT_TRUE(compare(3, CompareOp::kEq, 3));
  EXPECT_FALSE(compare(3, CompareOp::kNe, 3));
  EXPECT_TRUE(compare(2, CompareOp::kLt, 3));
  EXPECT_FALSE(compare(3, CompareOp::kLt, 3));
  EXPECT_TRUE(compare(3, CompareOp::kLe, 3));
  EXPECT_TRUE(compare(4, CompareOp::kGt, 3));
  EXPECT_FALSE(compare(2, CompareOp::kGe, 3));
}

const ExpectationOutcome* find(const RunReport& r, const std::string& what) {
  for (const ExpectationOutcome& e : r.expectations) {
    if (e.what == what) return &e;
  }
  return nullptr;
}

constexpr const char* kRun =
    "scenario: e\n"
    "machine: {memory: 256MiB, movable: 128MiB, block_size: 128MiB, thp: never}\n"
    "processes: [{name: p, mappings: [{name: m, size: 32KiB}]}]\n"
    "steps:\n"
    "  - pin: {mapping: p.m, as: x}\n"
    "  - unpin: {pin: x}\n"
    "expect:\n";

// A counter at the end, and its change over the run (delta:).
TEST(Expectations, CountersAndDeltas) {
  const RunReport r = run_yaml(std::string(kRun) +
                               "  counters:\n"
                               "    delta:nr_foll_pin_acquired: 8\n"
                               "    nr_foll_pin_released: '>= 8'\n"
                               "    delta:pgmigrate_success: '> 0'\n");
  const ExpectationOutcome* acquired = find(r, "delta:nr_foll_pin_acquired == 8");
  ASSERT_NE(acquired, nullptr);
  EXPECT_TRUE(acquired->ok);
  EXPECT_EQ(acquired->detail, "8");
  EXPECT_EQ(acquired->pos.line, 9);
  const ExpectationOutcome* migrated = find(r, "delta:pgmigrate_success > 0");
  ASSERT_NE(migrated, nullptr);
  EXPECT_FALSE(migrated->ok);
  EXPECT_EQ(migrated->detail, "0");
  EXPECT_FALSE(r.passed);
}

// Zones report the value found; block states name the blocks that differ.
TEST(Expectations, ZonesAndBlocks) {
  const RunReport r = run_yaml(std::string(kRun) +
                               "  zones: [{zone: movable, present: 32768, managed: '< 100'}]\n"
                               "  blocks:\n"
                               "    - {blocks: movable, state: offline}\n"
                               "    - {blocks: [0], state: online}\n"
                               "    - {blocks: offline, state: online}\n");
  const ExpectationOutcome* present = find(r, "node 0 Movable present == 32768");
  ASSERT_NE(present, nullptr);
  EXPECT_TRUE(present->ok) << present->detail;
  const ExpectationOutcome* managed = find(r, "node 0 Movable managed < 100");
  ASSERT_NE(managed, nullptr);
  EXPECT_FALSE(managed->ok);
  const ExpectationOutcome* movable = find(r, "blocks movable offline");
  ASSERT_NE(movable, nullptr);
  EXPECT_FALSE(movable->ok);
  EXPECT_EQ(movable->detail, "memory1 is online");
  const ExpectationOutcome* listed = find(r, "blocks (listed) online");
  ASSERT_NE(listed, nullptr);
  EXPECT_TRUE(listed->ok);
  EXPECT_EQ(listed->detail, "1 blocks");
  const ExpectationOutcome* none = find(r, "blocks offline online");
  ASSERT_NE(none, nullptr);
  EXPECT_FALSE(none->ok);
  EXPECT_EQ(none->detail, "no such blocks");
}

// Every run checks its pins and its audit, asked or not; no_data_lost and
// no_pages_leaked only when asked.
TEST(Expectations, TheRunsOwnChecks) {
  const RunReport plain = run_yaml(std::string(kRun) + "  counters: {}\n");
  EXPECT_NE(find(plain, "no pins leaked"), nullptr);
  EXPECT_NE(find(plain, "audit (validate)"), nullptr);
  EXPECT_EQ(find(plain, "no data lost"), nullptr);
  EXPECT_EQ(find(plain, "no pages leaked"), nullptr);
  const RunReport asked =
      run_yaml(std::string(kRun) + "  no_data_lost: true\n  no_pages_leaked: true\n");
  ASSERT_NE(find(asked, "no data lost"), nullptr);
  EXPECT_EQ(find(asked, "no data lost")->detail, "every mapped page holds what was last written");
  ASSERT_NE(find(asked, "no pages leaked"), nullptr);
  EXPECT_EQ(find(asked, "no pages leaked")->detail, "0 pages in use beyond boot after teardown");
  EXPECT_TRUE(asked.passed);
}

TEST(Expectations, ParseErrors) {
  const std::string h = kRun;
  EXPECT_EQ(parse_error(h + "  counters: {nr_bogus: 1}\n"),
            "8:14: 'nr_bogus' is not a /proc/vmstat counter");
  EXPECT_EQ(parse_error(h + "  counters: {nr_free_pages: '~3'}\n"),
            "8:29: 'nr_free_pages' must be a number, optionally after ==, !=, <, <=, >, >=");
  EXPECT_EQ(parse_error(h + "  zones: [{zone: movable}]\n"),
            "8:11: a zone expectation checks free, managed or present");
  EXPECT_EQ(parse_error(h + "  zones: [{zone: dma, free: 1}]\n"),
            "8:18: 'zone' must be one of normal, movable; not 'dma'");
  EXPECT_EQ(parse_error(h + "  blocks: [{blocks: movable}]\n"), "8:12: missing 'state'");
  EXPECT_EQ(parse_error(h + "  no_leaks: true\n"), "8:3: unknown key 'no_leaks' in expect");
}

// A step's expect: carries the checks of the scenario's, made right after
// the step; delta: is the change over that step.
TEST(StepExpectations, ChecksHoldRightAfterTheStep) {
  const RunReport r = run_yaml(
      "scenario: step-checks\n"
      "machine: {memory: 256MiB, movable: 128MiB, block_size: 128MiB, thp: never}\n"
      "processes: [{name: p, mappings: [{name: m, size: 32KiB}]}]\n"
      "steps:\n"
      "  - write: {mapping: p.m}\n"
      "    expect: {no_data_lost: true, counters: {delta:nr_anon_pages: 8}}\n"
      "  - pin: {mapping: p.m, as: x, longterm: true}\n"
      "    expect:\n"
      "      value: 8\n"
      "      counters:\n"
      "        delta:nr_foll_pin_acquired: 16\n"  // pin, migrate out of Movable, pin again
      "        delta:pgmigrate_success: 8\n"
      "        nr_foll_pin_released: 8\n"
      "      zones: [{zone: movable, present: 32768}]\n"
      "  - unpin: {pin: x}\n"
      "    expect: {counters: {delta:nr_foll_pin_released: 8, nr_foll_pin_released: 16}}\n"
      "  - offline: {blocks: movable}\n"
      "    expect: {blocks: [{blocks: [1], state: offline}], no_data_lost: true}\n");
  EXPECT_TRUE(r.passed) << testing::failures(r);
  ASSERT_EQ(r.steps.size(), 4u);
  ASSERT_EQ(r.steps[1].checks.size(), 4u);
  EXPECT_EQ(r.steps[1].checks[0].what, "delta:nr_foll_pin_acquired == 16");
  EXPECT_EQ(r.steps[1].checks[0].detail, "16");
  EXPECT_EQ(r.steps[1].checks[0].pos.line, 11);
  EXPECT_EQ(r.steps[1].checks[3].what, "node 0 Movable present == 32768");
  EXPECT_EQ(r.steps[3].checks[1].what, "no data lost");
}

// A check that does not hold fails its step, and the step says which.
TEST(StepExpectations, ACheckThatFailsFailsTheStep) {
  const RunReport bad = run_yaml(
      "scenario: step-checks\n"
      "machine: {memory: 256MiB, movable: 128MiB, block_size: 128MiB, thp: never}\n"
      "processes: [{name: p, mappings: [{name: m, size: 32KiB}]}]\n"
      "steps:\n"
      "  - pin: {mapping: p.m, as: x}\n"
      "    expect: {counters: {delta:pgmigrate_success: '> 0'}}\n"
      "  - unpin: {pin: x}\n");
  EXPECT_FALSE(bad.passed);
  ASSERT_EQ(bad.steps.size(), 2u);
  EXPECT_FALSE(bad.steps[0].expectation_ok);
  EXPECT_EQ(bad.steps[0].err, 0);
  EXPECT_EQ(bad.steps[0].expectation, "ok, delta:pgmigrate_success > 0 (found 0)");
  EXPECT_TRUE(bad.steps[1].expectation_ok);
  EXPECT_TRUE(bad.steps[1].checks.empty());
}

TEST(StepExpectations, ParseErrors) {
  const std::string h =
      "scenario: e\n"
      "machine: {memory: 256MiB, block_size: 128MiB}\n"
      "processes: [{name: p, mappings: [{name: m, size: 32KiB}]}]\n"
      "steps:\n"
      "  - write: {mapping: p.m}\n";
  EXPECT_EQ(parse_error(h + "    expect: {no_pages_leaked: true}\n"),
            "6:14: no_pages_leaked is checked after teardown: it belongs in the scenario's "
            "expect:");
  EXPECT_EQ(parse_error(h + "    expect: {value: 1, counter: {nr_free_pages: 1}}\n"),
            "6:24: unknown key 'counter' in a step's expect");
  EXPECT_EQ(parse_error(h + "    expect: {counters: {delta:nr_nothing: 1}}\n"),
            "6:25: 'nr_nothing' is not a /proc/vmstat counter");
  EXPECT_EQ(parse_error(h + "    expect: [ok]\n"), "6:13: a step's expect must be a mapping");
}

}  // namespace
}  // namespace pinmm
