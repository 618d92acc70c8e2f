#include "pinmm/base/inject.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

namespace pinmm {
namespace {

TEST(Injector, UnarmedPointsNeverFail) {
  Injector inj;
  for (int i = 0; i < 10; ++i)
    EXPECT_FALSE(inj.should_fail("alloc_pages"));
  EXPECT_EQ(inj.hits("alloc_pages"), 0u);
}

TEST(Injector, FailsExactlyTheNthHit) {
  Injector inj;
  inj.fail_nth("alloc_pages", 3);
  EXPECT_FALSE(inj.should_fail("alloc_pages"));
  EXPECT_FALSE(inj.should_fail("other"));
  EXPECT_FALSE(inj.should_fail("alloc_pages"));
  EXPECT_TRUE(inj.should_fail("alloc_pages"));
  EXPECT_FALSE(inj.should_fail("alloc_pages"));  // once only: disarmed
  EXPECT_EQ(inj.hits("alloc_pages"), 3u);
  EXPECT_EQ(inj.failures("alloc_pages"), 1u);
  EXPECT_TRUE(inj.armed_points().empty());
}

TEST(Injector, FailAlwaysUntilCleared) {
  Injector inj;
  inj.fail_always("p");
  EXPECT_TRUE(inj.should_fail("p"));
  EXPECT_TRUE(inj.should_fail("p"));
  EXPECT_EQ(inj.armed_points(), std::vector<std::string>{"p"});
  inj.clear("p");
  EXPECT_FALSE(inj.should_fail("p"));
  EXPECT_EQ(inj.failures("p"), 2u);
}

TEST(Injector, DelaySleepsAtThePoint) {
  Injector inj;
  inj.delay("window", std::chrono::microseconds(2000));
  const auto t0 = std::chrono::steady_clock::now();
  inj.maybe_delay("window");
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::microseconds(2000));
  inj.clear_all();
  EXPECT_TRUE(inj.armed_points().empty());
}

TEST(Injector, FailsEveryNthHit) {
  Injector inj;
  inj.fail_every("p", 3);
  std::vector<bool> got;
  for (int i = 0; i < 7; ++i)
    got.push_back(inj.should_fail("p"));
  EXPECT_EQ(got, (std::vector<bool>{false, false, true, false, false, true, false}));
  EXPECT_EQ(inj.failures("p"), 2u);
}

// One seed, one order of hits: one outcome. The rate is near the probability.
TEST(Injector, RandomFailuresFollowTheSeed) {
  auto draw = [](uint64_t seed) {
    Injector inj;
    inj.seed(seed);
    inj.fail_random("p", 0.25);
    std::vector<bool> got;
    for (int i = 0; i < 4000; ++i)
      got.push_back(inj.should_fail("p"));
    return got;
  };
  const auto a = draw(7), b = draw(7), c = draw(8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  const auto n = std::count(a.begin(), a.end(), true);
  EXPECT_GT(n, 800);  // 1000 expected; 6 standard deviations is 164
  EXPECT_LT(n, 1200);
}

TEST(Injector, HooksRunAtWindowPointsUntilCleared) {
  Injector inj;
  int calls = 0;
  inj.on_hit("window", [&] { ++calls; });
  inj.maybe_delay("window");
  inj.maybe_delay("other");
  inj.maybe_delay("window");
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(inj.hits("window"), 2u);
  inj.clear("window");
  inj.maybe_delay("window");
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(inj.armed_points().empty());
}

TEST(Injector, TheCatalogueNamesEveryPointOnce) {
  std::set<std::string_view> names;
  for (const InjectPointInfo& p : inject_points()) {
    EXPECT_TRUE(names.insert(p.name).second) << p.name;
    EXPECT_EQ(find_inject_point(p.name), &p);
    EXPECT_FALSE(p.what.empty());
  }
  EXPECT_EQ(find_inject_point("no.such.point"), nullptr);
  EXPECT_EQ(find_inject_point(inject_point::kAllocPages)->kind, InjectKind::kFail);
}

}  // namespace
}  // namespace pinmm
