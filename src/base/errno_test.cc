#include "pinmm/base/errno.h"

#include <gtest/gtest.h>

namespace pinmm {
namespace {

TEST(Errno, KernelValuesAndNames) {
  // x86-64 Linux values (include/uapi/asm-generic/errno*.h).
  EXPECT_EQ(Errno(EPERM).code(), 1);
  EXPECT_EQ(Errno(EFAULT).code(), 14);
  EXPECT_EQ(Errno(EBUSY).code(), 16);
  EXPECT_EQ(Errno(EOVERFLOW).code(), 75);
  EXPECT_EQ(Errno(EOPNOTSUPP).code(), 95);
  EXPECT_EQ(Errno(EREMOTEIO).code(), 121);
  EXPECT_EQ(Errno(EHWPOISON).code(), 133);
  EXPECT_EQ(Errno(EFAULT).name(), "EFAULT");
  EXPECT_EQ(Errno(EHWPOISON).name(), "EHWPOISON");
  EXPECT_EQ(Errno(ENOTSUPP).name(), "ENOTSUPP");
  EXPECT_EQ(Errno(4095).name(), "E4095");
  EXPECT_EQ(Errno(ENOMEM).neg(), -12);
  EXPECT_EQ(Errno::from_neg(-EAGAIN), Errno(EAGAIN));
}

Result<int> half(int v) {
  if (v % 2 != 0) return Errno(EINVAL);
  return v / 2;
}

Result<int> quarter(int v) {
  const int h = TRY(half(v));
  return TRY(half(h));
}

Result<void> check_positive(int v) {
  if (v <= 0) return Errno(ERANGE);
  return {};
}

Result<int> checked_quarter(int v) {
  TRY(check_positive(v));
  return quarter(v);
}

TEST(Result, ValueAndErrorPropagateThroughTry) {
  EXPECT_EQ(quarter(8).value(), 2);
  EXPECT_EQ(quarter(6).error(), Errno(EINVAL));  // 3 is odd
  EXPECT_EQ(checked_quarter(-4).error(), Errno(ERANGE));
  EXPECT_EQ(checked_quarter(4).value(), 1);
  EXPECT_EQ(result_to_rc(check_positive(1)), 0);
  EXPECT_EQ(result_to_rc(check_positive(0)), -ERANGE);
  EXPECT_EQ(half(3).value_or(-1), -1);
}

TEST(ResultDeathTest, ValueOfErrorIsABug) { EXPECT_DEATH((void)half(3).value(), "pinmm BUG"); }

}  // namespace
}  // namespace pinmm
