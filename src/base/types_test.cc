#include "pinmm/base/types.h"

#include <gtest/gtest.h>

namespace pinmm {
namespace {

TEST(Bytes, ParsesBinaryUnits) {
  EXPECT_EQ(Bytes::parse("4096")->value(), 4096u);
  EXPECT_EQ(Bytes::parse("4KiB")->value(), 4096u);
  EXPECT_EQ(Bytes::parse("4K")->value(), 4096u);
  EXPECT_EQ(Bytes::parse("2MiB")->value(), 2u << 20);
  EXPECT_EQ(Bytes::parse("1GiB")->value(), 1u << 30);
  EXPECT_EQ(Bytes::parse("256m")->value(), 256u << 20);
  EXPECT_EQ(Bytes::parse("1T")->value(), uint64_t{1} << 40);
  EXPECT_EQ(Bytes::parse("7B")->value(), 7u);
}

TEST(Bytes, RejectsMalformedInput) {
  EXPECT_FALSE(Bytes::parse(""));
  EXPECT_FALSE(Bytes::parse("GiB"));
  EXPECT_FALSE(Bytes::parse("-4K"));
  EXPECT_FALSE(Bytes::parse("4X"));
  EXPECT_FALSE(Bytes::parse("4KB"));
  EXPECT_FALSE(Bytes::parse("4 K"));
  EXPECT_FALSE(Bytes::parse("99999999999999999999"));
  EXPECT_FALSE(Bytes::parse("99999999999T"));  // overflows when scaled
}

TEST(Bytes, PrintsLargestExactUnit) {
  EXPECT_EQ(Bytes::KiB(4).to_string(), "4KiB");
  EXPECT_EQ(Bytes::MiB(2).to_string(), "2MiB");
  EXPECT_EQ(Bytes::GiB(1).to_string(), "1GiB");
  EXPECT_EQ(Bytes::MiB(1536).to_string(), "1536MiB");
  EXPECT_EQ(Bytes(100).to_string(), "100B");
  EXPECT_EQ(Bytes(0).to_string(), "0B");
  EXPECT_EQ(Bytes::parse(Bytes::GiB(3).to_string())->value(), Bytes::GiB(3).value());
}

TEST(StrongTypes, PfnArithmeticAndAlignment) {
  const Pfn p(1000);
  EXPECT_EQ((p + PageCount(24)).value(), 1024u);
  EXPECT_EQ((Pfn(1024) - p).value(), 24u);
  EXPECT_EQ(p.align_down(Order(9)).value(), 512u);
  EXPECT_EQ(p.align_up(Order(9)).value(), 1024u);
  EXPECT_TRUE(Pfn(1024).is_aligned(Order(10)));
  EXPECT_FALSE(Pfn(1536).is_aligned(Order(10)));
  EXPECT_EQ(Pfn(3).phys().value(), 3u * 4096);
  EXPECT_EQ(PhysAddr(8192 + 5).pfn(), Pfn(2));
  EXPECT_EQ(Order(9).nr_pages().value(), 512u);
  EXPECT_EQ(Bytes::MiB(2).pages(), PageCount(512));
  EXPECT_TRUE(VirtAddr(0x1000).is_page_aligned());
  EXPECT_EQ(VirtAddr(0x1234).page_align_down(), VirtAddr(0x1000));
}

}  // namespace
}  // namespace pinmm
