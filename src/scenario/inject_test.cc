// Every fault-injection point (base/inject.h's catalogue) armed from a
// scenario: the failure is handled as the kernel handles it (the step gets
// the kernel's errno or does less), nothing leaks (no page, no pin), the
// audit is clean and no data is lost; after clearing, the same step works.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "pinmm/base/inject.h"
#include "pinmm/scenario/runner.h"
#include "pinmm/scenario/scenario.h"

namespace pinmm {
namespace {

struct InjectCase {
  const char* point;
  const char* yaml;
};

// Each scenario ends with the standard expectations; its steps state the
// errno (or value) the injected failure must produce.
constexpr const char* kTail = "expect: {no_data_lost: true, no_pages_leaked: true}\n";

const InjectCase kCases[] = {
    {"alloc_pages",
     "scenario: alloc_pages\n"
     "machine: {memory: 128MiB, block_size: 128MiB, thp: never}\n"
     "processes: [{name: p, mappings: [{name: m, size: 64KiB}]}]\n"
     "steps:\n"
     "  - inject: {point: alloc_pages, every: 1}\n"
     "  - write: {mapping: p.m}\n"
     "    expect: ENOMEM\n"
     "  - inject: {point: alloc_pages, clear: true}\n"
     "    expect: {value: 1}\n"
     "  - write: {mapping: p.m}\n"
     "  - read: {mapping: p.m}\n"},
    {"alloc_pages.movable",
     "scenario: alloc_pages.movable\n"
     "machine: {memory: 128MiB, block_size: 128MiB, thp: never}\n"
     "processes: [{name: p, mappings: [{name: m, size: 64KiB}]}]\n"
     "steps:\n"
     "  - write: {mapping: p.m, size: 4KiB}\n"
     "  - inject: {point: alloc_pages.movable, nth: 2}\n"
     "  - name: the second page's allocation fails; the first was written\n"
     "    write: {mapping: p.m, offset: 4KiB}\n"
     "    expect: ENOMEM\n"
     "  - inject: {point: alloc_pages.movable, clear: true}\n"
     "    expect: {value: 1}\n"
     "  - write: {mapping: p.m, offset: 4KiB}\n"
     "  - read: {mapping: p.m}\n"},
    {"alloc_pages.unmovable",
     "scenario: alloc_pages.unmovable\n"
     "machine: {memory: 128MiB, block_size: 128MiB, thp: never}\n"
     "processes: [{name: p, mappings: [{name: m, size: 64KiB}]}]\n"
     "steps:\n"
     "  - name: the first fault needs page tables, which are unmovable\n"
     "    inject: {point: alloc_pages.unmovable, every: 1}\n"
     "  - write: {mapping: p.m}\n"
     "    expect: ENOMEM\n"
     "  - inject: {point: alloc_pages.unmovable, clear: true}\n"
     "  - write: {mapping: p.m}\n"
     "  - read: {mapping: p.m}\n"},
    {"kmalloc_pages",
     "scenario: kmalloc_pages\n"
     "machine: {memory: 128MiB, block_size: 128MiB}\n"
     "steps:\n"
     "  - inject: {point: kmalloc_pages, nth: 1}\n"
     "  - kernel_alloc: {size: 64KiB, as: k1}\n"
     "    expect: ENOMEM\n"
     "  - kernel_alloc: {size: 64KiB, as: k2}\n"
     "    expect: {value: 16}\n"
     "  - kernel_free: {alloc: k2}\n"
     "  - inject: {point: kmalloc_pages, clear: true}\n"
     "    expect: {value: 1}\n"},
    {"vm.split_folio",
     "scenario: vm.split_folio\n"
     "machine: {memory: 256MiB, nodes: 2, block_size: 128MiB, thp: always}\n"
     "processes: [{name: p, mappings: [{name: m, size: 2MiB}]}]\n"
     "steps:\n"
     "  - write: {mapping: p.m}\n"
     "  - name: half the THP goes, the rest is a partially mapped folio\n"
     "    munmap: {mapping: p.m, offset: 1MiB}\n"
     "  - inject: {point: vm.split_folio, every: 1}\n"
     "  - name: the split fails, so the folio moves whole (page 1 reports EBUSY, as on\n"
     "      Linux - page 0 isolated the folio and page 1 cannot)\n"
     "    move_pages: {mapping: p.m, size: 1MiB, node: 1}\n"
     "    expect: {value: 255}\n"
     "  - inject: {point: vm.split_folio, clear: true}\n"
     "    expect: {value: 1}\n"
     "  - read: {mapping: p.m, size: 1MiB}\n"},
    {"migrate.move_folio",
     "scenario: migrate.move_folio\n"
     "machine: {memory: 256MiB, nodes: 2, block_size: 128MiB, thp: never}\n"
     "processes: [{name: p, mappings: [{name: m, size: 16KiB}]}]\n"
     "steps:\n"
     "  - write: {mapping: p.m}\n"
     "  - inject: {point: migrate.move_folio, every: 1}\n"
     "  - name: every pass meets a transient reference; nothing moves\n"
     "    move_pages: {mapping: p.m, node: 1}\n"
     "    expect: {value: 0}\n"
     "  - inject: {point: migrate.move_folio, clear: true}\n"
     "  - move_pages: {mapping: p.m, node: 1}\n"
     "    expect: {value: 4}\n"
     "  - read: {mapping: p.m}\n"},
    {"migrate.folio_copy",
     "scenario: migrate.folio_copy\n"
     "machine: {memory: 256MiB, nodes: 2, block_size: 128MiB, thp: never}\n"
     "processes: [{name: p, mappings: [{name: m, size: 16KiB}]}]\n"
     "steps:\n"
     "  - write: {mapping: p.m}\n"
     "  - inject: {point: migrate.folio_copy, every: 2}\n"
     "  - name: copies 2 and 4 fail as a machine check would; the SYNC retry of\n"
     "      each (copies 5 and 6) saves the first, not the second. One page of the\n"
     "      batch failed, so no status is stored (do_pages_move), as on Linux\n"
     "    move_pages: {mapping: p.m, node: 1}\n"
     "    expect: {value: 0}\n"
     "  - inject: {point: migrate.folio_copy, clear: true}\n"
     "    expect: {value: 3}\n"
     "  - move_pages: {mapping: p.m, node: 1}\n"
     "    expect: {value: 4}\n"
     "  - read: {mapping: p.m}\n"},
    {"migrate.after_unmap",
     "scenario: migrate.after_unmap\n"
     "machine: {memory: 256MiB, nodes: 2, block_size: 128MiB, thp: never}\n"
     "processes: [{name: p, mappings: [{name: m, size: 16KiB}]}]\n"
     "steps:\n"
     "  - write: {mapping: p.m}\n"
     "  - inject: {point: migrate.after_unmap, delay_us: 200}\n"
     "  - move_pages: {mapping: p.m, node: 1}\n"
     "    expect: {value: 4}\n"
     "  - name: one batch, one window\n"
     "    inject: {point: migrate.after_unmap, clear: true}\n"
     "    expect: {value: 1}\n"
     "  - read: {mapping: p.m}\n"},
    {"migration_entry_wait",
     "scenario: migration_entry_wait\n"
     "machine: {memory: 256MiB, nodes: 2, block_size: 128MiB, thp: never}\n"
     "processes: [{name: p, mappings: [{name: m, size: 256KiB}]}]\n"
     "steps:\n"
     "  - write: {mapping: p.m}\n"
     "  - inject: {point: migration_entry_wait, delay_us: 100}\n"
     "  - inject: {point: migrate.after_unmap, delay_us: 1000}\n"
     "  - name: reads that meet migration entries wait longer, and still see the data\n"
     "    concurrent:\n"
     "      - move_pages: {mapping: p.m, node: 1}\n"
     "      - read: {mapping: p.m}\n"
     "  - inject: {point: migration_entry_wait, clear: true}\n"
     "  - inject: {point: migrate.after_unmap, clear: true}\n"
     "  - read: {mapping: p.m}\n"},
    {"vm.anon_vma_prepare",
     "scenario: vm.anon_vma_prepare\n"
     "machine: {memory: 128MiB, block_size: 128MiB, thp: never}\n"
     "processes: [{name: p, mappings: [{name: m, size: 64KiB}]}]\n"
     "steps:\n"
     "  - inject: {point: vm.anon_vma_prepare, delay_us: 100}\n"
     "  - write: {mapping: p.m}\n"
     "  - name: only the VMA's first fault allocates its anon_vma\n"
     "    inject: {point: vm.anon_vma_prepare, clear: true}\n"
     "    expect: {value: 1}\n"
     "  - read: {mapping: p.m}\n"},
};

class InjectPoints : public ::testing::TestWithParam<InjectCase> {};

TEST_P(InjectPoints, FailureIsHandledAndNothingLeaks) {
  const InjectCase& c = GetParam();
  const Scenario s = parse_scenario(std::string(c.yaml) + kTail, c.point);
  const RunReport r = run_scenario(s);
  for (const StepOutcome& o : r.steps) {
    EXPECT_TRUE(o.expectation_ok) << o.id << " " << o.title << ": " << o.detail << " (expected "
                                  << o.expectation << ", got " << o.err << " value " << o.value
                                  << ")";
  }
  for (const ExpectationOutcome& e : r.expectations)
    EXPECT_TRUE(e.ok) << e.what << ": " << e.detail;
}

INSTANTIATE_TEST_SUITE_P(Scenario, InjectPoints, ::testing::ValuesIn(kCases),
                         [](const auto& param_info) {
                           std::string name = param_info.param.point;
                           for (char& ch : name)
                             if (ch == '.') ch = '_';
                           return name;
                         });

// The table above covers the whole catalogue: a new point needs a case.
TEST(InjectPoints, EveryPointHasACase) {
  std::set<std::string> covered;
  for (const InjectCase& c : kCases)
    covered.insert(c.point);
  for (const InjectPointInfo& p : inject_points())
    EXPECT_TRUE(covered.contains(std::string(p.name))) << p.name << " has no scenario case";
}

TEST(InjectPoints, BadInjectStepsAreScenarioErrors) {
  const auto error_of = [](const std::string& step) {
    try {
      (void)parse_scenario(
          "scenario: x\nmachine: {memory: 128MiB, block_size: 128MiB}\nsteps:\n  - " + step + "\n",
          "bad.yaml");
    } catch (const ScenarioError& e) {
      return std::string(e.what());
    }
    return std::string("parsed");
  };
  EXPECT_EQ(error_of("inject: {point: nope, every: 1}").substr(0, 44),
            "bad.yaml:4:21: no injection point 'nope' (th");
  EXPECT_EQ(error_of("inject: {point: alloc_pages, delay_us: 5}"),
            "bad.yaml:4:44: 'alloc_pages' is a failure point: it takes every, nth or probability");
  EXPECT_EQ(error_of("inject: {point: migrate.after_unmap, every: 1}"),
            "bad.yaml:4:49: 'migrate.after_unmap' is a window point: it takes delay_us");
  EXPECT_EQ(error_of("inject: {point: alloc_pages, every: 1, nth: 2}"),
            "bad.yaml:4:13: an inject step takes one of every, nth, probability, delay_us, clear");
  EXPECT_EQ(error_of("inject: {point: alloc_pages, probability: 1.5}"),
            "bad.yaml:4:47: 'probability' is a number from 0 to 1, not '1.5'");
}

// probability: the run's seed decides which hits fail, so one seed gives
// one outcome.
TEST(InjectPoints, ProbabilityFollowsTheSeed) {
  const std::string yaml =
      "scenario: p\n"
      "machine: {memory: 128MiB, block_size: 128MiB, thp: never}\n"
      "processes: [{name: p, mappings: [{name: m, size: 4MiB}]}]\n"
      "steps:\n"
      "  - inject: {point: alloc_pages.movable, probability: 0.01}\n"
      "  - write: {mapping: p.m}\n"
      "    expect: ENOMEM\n"
      "  - inject: {point: alloc_pages.movable, clear: true}\n"
      "expect: {no_pages_leaked: true}\n";
  const Scenario s = parse_scenario(yaml, "p.yaml");
  RunOptions a, b, c;
  a.seed = b.seed = 5;
  c.seed = 6;
  const RunReport ra = run_scenario(s, a), rb = run_scenario(s, b), rc = run_scenario(s, c);
  EXPECT_EQ(ra.steps[1].detail, rb.steps[1].detail);
  EXPECT_NE(ra.steps[1].detail, rc.steps[1].detail) << "another seed fails another page";
  EXPECT_TRUE(ra.passed);
}

}  // namespace
}  // namespace pinmm
