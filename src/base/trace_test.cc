#include "pinmm/base/trace.h"

#include <gtest/gtest.h>

#include "pinmm/base/task.h"

namespace pinmm {
namespace {

TEST(Tracer, DisabledEventsRecordNothing) {
  Tracer t;
  PINMM_TRACE(t, mm_page_alloc, "page={}", 1);
  EXPECT_TRUE(t.records().empty());
  t.enable(TraceEvent::mm_page_free);
  PINMM_TRACE(t, mm_page_alloc, "page={}", 1);
  EXPECT_TRUE(t.records().empty());
}

TEST(Tracer, FtraceTextLayout) {
  Tracer t(16, 2);
  Task task(4242, "pinner");
  CurrentTask scope(task);
  task.set_cpu(1, 0);
  t.enable(TraceEvent::mm_page_free);
  PINMM_TRACE(t, mm_page_free, "page={:#x} pfn={:#x} order={}", 0xffffea0000001000, 0x40, 0);
  const auto recs = t.records();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].pid, 4242);
  EXPECT_EQ(recs[0].cpu, 1);
  const std::string text = t.to_ftrace_text();
  EXPECT_NE(text.find("# tracer: nop\n"), std::string::npos);
  EXPECT_NE(text.find("# entries-in-buffer/entries-written: 1/1   #P:2\n"), std::string::npos);
  // "          pinner-4242    [001] .....     0.000012: mm_page_free: ..."
  const std::string prefix = "\n          pinner-4242    [001] ..... ";
  const size_t at = text.find(prefix);
  ASSERT_NE(at, std::string::npos) << text;
  const std::string rest = text.substr(at + prefix.size());
  // Timestamp: "%5lu.%06lu", then the event.
  ASSERT_GE(rest.size(), 13u);
  EXPECT_EQ(rest[5], '.');
  EXPECT_EQ(rest.substr(12), ": mm_page_free: page=0xffffea0000001000 pfn=0x40 order=0\n");
}

TEST(Tracer, BoundedBufferDropsOldestButCountsWritten) {
  Tracer t(3, 1);
  t.enable_all();
  for (int i = 0; i < 5; ++i)
    PINMM_TRACE(t, mm_page_alloc, "n={}", i);
  const auto recs = t.records();
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs.front().text, "n=2");
  EXPECT_NE(t.to_ftrace_text().find("entries-in-buffer/entries-written: 3/5"), std::string::npos);
  EXPECT_EQ(trace_event_lookup("mm_page_alloc_extfrag"), TraceEvent::mm_page_alloc_extfrag);
  EXPECT_FALSE(trace_event_lookup("nope"));
}

}  // namespace
}  // namespace pinmm
