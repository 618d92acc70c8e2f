// The scenario JSON report: its layout, and determinism (one seed, one
// report, once the "timing" keys are set aside).
#include "pinmm/report/json_report.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace pinmm {
namespace {

using Json = nlohmann::ordered_json;

// Removes every member named "timing", recursively.
void drop_timing(Json& j) {
  if (j.is_object()) {
    j.erase("timing");
    for (auto& [k, v] : j.items())
      drop_timing(v);
  } else if (j.is_array()) {
    for (Json& v : j)
      drop_timing(v);
  }
}

Json run_json(const char* builtin, uint64_t seed) {
  const Scenario s = parse_scenario(find_builtin_scenario(builtin)->yaml, builtin);
  RunOptions o;
  o.seed = seed;
  return Json::parse(scenario_report_json(run_scenario(s, o)));
}

TEST(JsonReport, OneSeedOneReport) {
  for (const char* b : {"cow-and-pins", "longterm-off"}) {
    SCOPED_TRACE(b);
    Json a = run_json(b, 7);
    Json c = run_json(b, 7);
    ASSERT_TRUE(a["steps"][0].contains("timing"));
    drop_timing(a);
    drop_timing(c);
    EXPECT_EQ(a.dump(), c.dump());
    EXPECT_TRUE(a["passed"].get<bool>());
    EXPECT_EQ(a["seed"], 7);
  }
  // Another seed writes other stamps: the same outcome, other values.
  Json a = run_json("cow-and-pins", 7);
  Json d = run_json("cow-and-pins", 8);
  EXPECT_TRUE(d["passed"].get<bool>());
  EXPECT_EQ(a["steps"].size(), d["steps"].size());
}

TEST(JsonReport, Layout) {
  const Json j = run_json("longterm-off", 1);
  for (const char* key : {"scenario", "description", "file", "seed", "passed", "machine", "steps",
                          "snapshots", "expectations", "counters", "timing"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["scenario"], "longterm-off");
  EXPECT_EQ(j["machine"]["longterm_pin_policy"], "in-place");
  const Json& offline = j["steps"][3];
  EXPECT_EQ(offline["kind"], "offline");
  EXPECT_EQ(offline["result"], "EBUSY");
  EXPECT_EQ(offline["expected"], "EBUSY");
  EXPECT_TRUE(offline["expectation_ok"].get<bool>());
  ASSERT_FALSE(offline["blockers"].empty());
  EXPECT_NE(offline["blockers"][1].get<std::string>().find("device 'rdma0' [mr1]"),
            std::string::npos);
  EXPECT_TRUE(offline["counters"].contains("pgmigrate_fail"));
  ASSERT_EQ(j["snapshots"].size(), 1u);
  const Json& snap = j["snapshots"][0];
  EXPECT_EQ(snap["label"], "pinned in place");
  EXPECT_GT(snap["pageblocks_by_state"]["long-term pinned"].get<int>(), 0);
  EXPECT_FALSE(snap["pageblocks"].empty());
  EXPECT_TRUE(snap["pageblocks"][0].contains("migratetype"));
}

}  // namespace
}  // namespace pinmm
