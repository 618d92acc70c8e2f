#include "pinmm/base/check.h"

#include <gtest/gtest.h>

namespace pinmm {

struct Widget {
  int id;
};
std::string mm_describe(const Widget& w) { return "widget " + std::to_string(w.id); }

namespace {

bool warn_if(bool cond) { return MM_WARN_ON_ONCE(cond); }

TEST(Check, WarnOnceReturnsConditionAndCountsEveryHit) {
  const uint64_t before = mm_warn_count();
  EXPECT_FALSE(warn_if(false));
  EXPECT_EQ(mm_warn_count(), before);
  EXPECT_TRUE(warn_if(true));
  EXPECT_TRUE(warn_if(true));
  EXPECT_EQ(mm_warn_count(), before + 2);
}

TEST(CheckDeathTest, BugOnPrintsConditionAndObjectState) {
  Widget w{42};
  EXPECT_DEATH(MM_BUG_ON(w.id == 42, w), "BUG at .*w.id == 42.*widget 42");
}

TEST(CheckDeathTest, DcheckIsActiveOnlyInDebugBuilds) {
  if (kPinmmDebug) {
    EXPECT_DEATH(MM_DCHECK(1 + 1 == 3), "BUG");
  } else {
    MM_DCHECK(1 + 1 == 3);  // compiled out
  }
}

}  // namespace
}  // namespace pinmm
