#include "pinmm/base/task.h"

#include <gtest/gtest.h>

#include <thread>

namespace pinmm {
namespace {

TEST(Task, EveryThreadHasADefaultTask) {
  Task& main_task = current();
  Task* other = nullptr;
  std::thread t([&] { other = &current(); });
  t.join();
  EXPECT_NE(&main_task, other);
  EXPECT_EQ(main_task.comm(), "host");
}

TEST(Task, CurrentTaskScopesNest) {
  Task a(100, "a"), b(200, "b");
  Task& outer = current();
  {
    CurrentTask sa(a);
    EXPECT_EQ(current().pid(), 100);
    {
      CurrentTask sb(b);
      EXPECT_EQ(current().pid(), 200);
    }
    EXPECT_EQ(current().pid(), 100);
  }
  EXPECT_EQ(&current(), &outer);
}

TEST(Task, MemallocPinScopesNest) {
  Task t(1, "pinner");
  CurrentTask scope(t);
  EXPECT_EQ(t.flags() & PF_MEMALLOC_PIN, 0u);
  const unsigned outer = memalloc_pin_save();
  EXPECT_NE(t.flags() & PF_MEMALLOC_PIN, 0u);
  const unsigned inner = memalloc_pin_save();
  memalloc_pin_restore(inner);
  EXPECT_NE(t.flags() & PF_MEMALLOC_PIN, 0u);  // still inside the outer scope
  memalloc_pin_restore(outer);
  EXPECT_EQ(t.flags() & PF_MEMALLOC_PIN, 0u);
}

TEST(Task, SignalsFatalAndPlain) {
  Task t(1, "t");
  EXPECT_FALSE(t.signal_pending());
  t.send_signal(Signal::kInterrupt);
  EXPECT_TRUE(t.signal_pending());
  EXPECT_FALSE(t.fatal_signal_pending());
  t.send_signal(Signal::kKill);
  EXPECT_TRUE(t.fatal_signal_pending());
  t.clear_signals();
  EXPECT_FALSE(t.signal_pending());
}

}  // namespace
}  // namespace pinmm
