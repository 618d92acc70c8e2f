#include "pinmm/base/inject.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace pinmm
