// Typed reads of scenario YAML (reader.h): each value or the error at its
// node, and the names a step may use.
#include "reader.h"

#include <gtest/gtest.h>

#include <functional>

namespace pinmm {
namespace {

// "line:column: message" of what `fn` throws, or "" if it throws nothing.
std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ScenarioError& e) {
    return std::to_string(e.pos().line) + ":" + std::to_string(e.pos().column) + ": " + e.message();
  }
  return "";
}

TEST(Reader, Scalars) {
  const ScenarioReader r("r.yaml");
  const YAML::Node n = YAML::Load("{a: 64KiB, b: 100, c: yes, d: -3, e: '>= 7', f: 0.25}");
  EXPECT_EQ(r.size(n["a"], "a"), 65536u);
  EXPECT_EQ(r.page_size(n["a"], "a"), 65536u);
  EXPECT_EQ(r.unsigned_int(n["b"], "b"), 100u);
  EXPECT_TRUE(r.boolean(n["c"], "c"));
  EXPECT_EQ(r.signed_int(n["d"], "d"), -3);
  EXPECT_EQ(r.comparison(n["e"], "e"), std::make_pair(CompareOp::kGe, int64_t{7}));
  EXPECT_EQ(r.comparison(n["b"], "b"), std::make_pair(CompareOp::kEq, int64_t{100}));
  EXPECT_DOUBLE_EQ(r.probability(n["f"], "f"), 0.25);
}

TEST(Reader, ErrorsPointAtTheNode) {
  const ScenarioReader r("r.yaml");
  const YAML::Node n = YAML::Load("a: 100\nb: [1]\nc: maybe\nd: 7\ne: x.y\nf: 1.5\n");
  EXPECT_EQ(error_of([&] { r.page_size(n["a"], "a"); }), "1:4: 'a' must be a multiple of 4KiB");
  EXPECT_EQ(error_of([&] { r.str(n["b"], "b"); }), "2:4: 'b' must be a string");
  EXPECT_EQ(error_of([&] { r.boolean(n["c"], "c"); }),
            "3:4: 'c' must be true or false, not 'maybe'");
  EXPECT_EQ(error_of([&] { r.small_int(n["d"], "d", 0, 3); }), "4:4: 'd' must be between 0 and 3");
  EXPECT_EQ(error_of([&] { r.name_of(n["e"], "process"); }),
            "5:4: a process name must be non-empty, without dots or spaces");
  EXPECT_EQ(error_of([&] {
              r.one_of(n["c"], "c", {"yes", "no"});
            }),
            "3:4: 'c' must be one of yes, no; not 'maybe'");
  EXPECT_EQ(error_of([&] { r.probability(n["f"], "f"); }),
            "6:4: 'f' is a number from 0 to 1, not '1.5'");
  EXPECT_EQ(error_of([&] { r.need(n, "g"); }), "1:1: missing 'g'");
  EXPECT_EQ(error_of([&] {
              r.check_keys(n, {"a", "b"}, "the test");
            }),
            "3:1: unknown key 'c' in the test");
}

TEST(Reader, ARepeatedKeyIsAnError) {
  const ScenarioReader r("r.yaml");
  const YAML::Node n = YAML::Load("{a: 1, a: 2}");
  EXPECT_EQ(error_of([&] { r.check_keys(n, {"a"}, "x"); }), "1:8: 'a' appears twice in x");
}

TEST(Reader, BlockSelections) {
  const ScenarioReader r("r.yaml");
  const BlockSelect ids = r.blocks(YAML::Load("{blocks: [3, 1]}"));
  EXPECT_EQ(ids.ids, (std::vector<uint64_t>{3, 1}));
  const BlockSelect zone = r.blocks(YAML::Load("{blocks: movable, last: 2}"));
  EXPECT_EQ(zone.zone, "movable");
  EXPECT_EQ(zone.last, 2u);
  EXPECT_EQ(error_of([&] { r.blocks(YAML::Load("{blocks: []}")); }),
            "1:10: an empty list of blocks");
}

// A step's names resolve against what the scenario defined before it.
TEST(Reader, StepNames) {
  ScenarioReader r("r.yaml");
  r.processes["p"] = {"m"};
  r.devices["nic"] = DeviceType::kRdmaNic;
  r.nodes = 2;
  const StepReader ok(r, YAML::Load("{mapping: p.m, offset: 8KiB, size: 4KiB, device: nic, "
                                    "node: 1, as: h}"));
  const RangeRef range = ok.range();
  EXPECT_EQ(range.process, "p");
  EXPECT_EQ(range.mapping, "m");
  EXPECT_EQ(range.offset, 8192u);
  EXPECT_EQ(range.size, 4096u);
  EXPECT_EQ(ok.device({DeviceType::kRdmaNic}), "nic");
  EXPECT_EQ(ok.node(), 1);
  EXPECT_EQ(ok.define("pin"), "h");
  EXPECT_EQ(r.handles.at("h"), "pin");
  const StepReader use(r, YAML::Load("{pin: h, region: h}"));
  EXPECT_EQ(use.use("pin", "pin"), "h");
  EXPECT_EQ(error_of([&] { use.use("region", "region"); }), "1:18: 'h' is a pin, not a region");
  EXPECT_EQ(error_of([&] { ok.device({DeviceType::kGpu}); }),
            "1:50: device 'nic' is a rdma_nic, which cannot do this");
  EXPECT_EQ(error_of([&] { ok.define("pin"); }), "1:68: 'h' is already defined");
  EXPECT_EQ(error_of([&] { StepReader(r, YAML::Load("{mapping: q.m}")).range(); }),
            "1:11: no process 'q'");
}

}  // namespace
}  // namespace pinmm
