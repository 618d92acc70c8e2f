// The vm layer's trace events, in the kernel's text formats: page_fault_user
// (x86 exceptions), rss_stat (kmem), tlb_flush, mm_lru_insertion and
// mm_lru_activate (pagemap), mm_filemap_add_to_page_cache and
// mm_filemap_delete_from_page_cache.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "testing/vm.h"

namespace pinmm {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using testing::map_anon;
using testing::VmMachine;

std::vector<std::string> texts(const Tracer& tracer, TraceEvent event) {
  std::vector<std::string> out;
  for (const TraceRecord& r : tracer.records()) {
    if (r.event == event) out.push_back(r.text);
  }
  return out;
}

TEST(VmTraceEvents, FaultsRssAndTlbFlushes) {
  VmMachine m;
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a(0x40000000);
  ASSERT_TRUE(vm_mmap(*mm, a, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
                  .ok());
  Tracer& tracer = m.ms->tracer();
  tracer.enable(TraceEvent::page_fault_user);
  tracer.enable(TraceEvent::rss_stat);
  tracer.enable(TraceEvent::tlb_flush);
  ASSERT_EQ(testing::read_byte(*mm, a), 0);          // not present, read
  ASSERT_TRUE(write_user<uint8_t>(*mm, a, 1).ok());  // present zero page, write
  ASSERT_TRUE(vm_munmap(*mm, a, 2 * PAGE_SIZE).ok());
  const auto faults = texts(tracer, TraceEvent::page_fault_user);
  ASSERT_EQ(faults.size(), 2u);
  EXPECT_EQ(faults[0], "address=0x40000000 ip=0x0 error_code=0x4");
  EXPECT_EQ(faults[1], "address=0x40000000 ip=0x0 error_code=0x7");
  const auto rss = texts(tracer, TraceEvent::rss_stat);
  ASSERT_EQ(rss.size(), 2u);  // the COW fault's +1, munmap's -1
  EXPECT_EQ(rss[0], fmt::format("mm_id={} curr=0 type=MM_ANONPAGES size=4096B", mm->id()));
  EXPECT_EQ(rss[1], fmt::format("mm_id={} curr=0 type=MM_ANONPAGES size=0B", mm->id()));
  const auto flushes = texts(tracer, TraceEvent::tlb_flush);
  ASSERT_FALSE(flushes.empty());
  EXPECT_EQ(flushes[0], "pages:-1 reason:remote shootdown (1)");
  EXPECT_THAT(tracer.to_ftrace_text(), HasSubstr(" tlb_flush: pages:-1"));
}

TEST(VmTraceEvents, PageCacheAndLru) {
  VmMachine m;
  Tracer& tracer = m.ms->tracer();
  tracer.enable(TraceEvent::mm_filemap_add_to_page_cache);
  tracer.enable(TraceEvent::mm_filemap_delete_from_page_cache);
  tracer.enable(TraceEvent::mm_lru_insertion);
  tracer.enable(TraceEvent::mm_lru_activate);
  auto file = File::create(m.vm, FsType::kExt4, "data", 0);
  const std::vector<std::byte> bytes(100, std::byte{7});
  ASSERT_TRUE(file->pwrite(bytes, 3 * PAGE_SIZE).ok());
  lru_add_drain_all(*m.ms);
  Folio* folio = filemap_get_folio(file->mapping(), 3);
  ASSERT_NE(folio, nullptr);
  const uint64_t pfn = folio_pfn(folio).value();
  folio_mark_accessed(folio);
  folio_mark_accessed(folio);  // the second access activates it
  folio_put(folio);
  ASSERT_TRUE(file->truncate(0).ok());

  const auto adds = texts(tracer, TraceEvent::mm_filemap_add_to_page_cache);
  ASSERT_EQ(adds.size(), 1u);
  // ext4 is FsType 2: dev 0:3.
  EXPECT_EQ(adds[0], fmt::format("dev 0:3 ino {:x} pfn={:#x} ofs=12288 order=0", file->ino(), pfn));
  const auto dels = texts(tracer, TraceEvent::mm_filemap_delete_from_page_cache);
  ASSERT_EQ(dels.size(), 1u);
  EXPECT_EQ(dels[0], adds[0]);
  const auto inserts = texts(tracer, TraceEvent::mm_lru_insertion);
  ASSERT_EQ(inserts.size(), 1u);
  // An unmapped file folio on the inactive file list (2).
  EXPECT_THAT(inserts[0], ContainsRegex(fmt::format(
                              "^folio=[0-9a-f]{{16}} pfn={:#x} lru=2 flags= f    $", pfn)));
  const auto activates = texts(tracer, TraceEvent::mm_lru_activate);
  ASSERT_EQ(activates.size(), 1u);
  EXPECT_THAT(activates[0], HasSubstr(fmt::format("pfn={:#x}", pfn)));
}

}  // namespace
}  // namespace pinmm
