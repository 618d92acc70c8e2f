// The pin-related cases of the kernel selftest cow.c (KERNEL-SPEC 10.5): a
// long-term pin must stay reliable — what the process later writes through
// its page table is what the pin reads — across fork(), R/O mappings and
// shared pages. Anonymous memory as a base page, a PMD-mapped THP, a
// PTE-mapped THP, a single PTE of a THP and a 2 MiB hugetlb page; then
// private file mappings (memfd, tmpfile on ext4, hugetlb memfd) and the
// shared zero page, each pinned with GUP and with GUP-fast.
//
// cow.c's io_uring fixed-buffer cases are run with what io_uring's
// registration does (a R/W long-term GUP-fast pin through
// PIN_LONGTERM_TEST_START), and read back through the pin instead of an
// io_uring write; its swap and partial-mremap variants need swap and
// mremap, which pinmm does not model, and its soft-dirty clearing has no
// counterpart (pinmm does not track soft-dirty).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pinmm/base/task.h"
#include "pinmm/gup/gup_test_module.h"
#include "testing/cow.h"

namespace pinmm {
namespace {

using testing::overwrite;
using testing::Region;
using testing::snapshot;
using testing::ThpRun;

enum class Anon { kBase, kThpPmd, kThpPte, kThpSinglePte, kHugetlb };
enum class PinCase {
  kRoPinShared,            // R/O GUP pin on R/O-mapped shared page
  kRoPinPreviouslyShared,  // ... on a R/O-mapped previously shared page
  kRoPinRoExclusive,       // ... on a R/O-mapped exclusive page
  kFixedBufferRoMapping,   // R/O-mapping a page registered as a fixed buffer
  kFixedBufferFork,        // fork() with a fixed buffer
};

struct AnonCell {
  Anon anon;
  PinCase pin_case;
  bool fast;
};

std::string anon_cell_name(const ::testing::TestParamInfo<AnonCell>& info) {
  static const char* const kAnon[] = {"BasePage", "ThpPmd", "ThpPte", "ThpSinglePte", "Hugetlb2M"};
  static const char* const kCase[] = {"RoPinShared", "RoPinPreviouslyShared", "RoPinRoExclusive",
                                      "FixedBufferRoMapping", "FixedBufferFork"};
  return std::string(kAnon[static_cast<int>(info.param.anon)]) +
         kCase[static_cast<int>(info.param.pin_case)] + (info.param.fast ? "Fast" : "");
}

class CowPinTest {
 protected:
  CowPinTest() : m(config()), mm(Mm::create(m.vm)) { current().set_mm(mm.get()); }
  ~CowPinTest() { current().set_mm(nullptr); }
  static MachineConfig config() {
    MachineConfig c = MachineConfig::tiny(Bytes::MiB(64));
    c.thp = ThpMode::kAlways;
    c.hugepages.push_back({Bytes::MiB(2), 4, std::nullopt});
    return c;
  }
  // Modifies the region through the page table and checks that the pin
  // reads the same bytes ("Longterm R/O pin is reliable").
  void expect_pin_sees_writes(PinLongtermTest& pin, Region r) {
    overwrite(*mm, r);
    std::vector<std::byte> via_pin(r.size);
    ASSERT_EQ(pin.read(via_pin), 0);
    EXPECT_TRUE(via_pin == snapshot(*mm, r)) << "the pin does not see the process's writes";
  }
  void expect_balanced_pins() {
    EXPECT_EQ(m.ms->node(0).stats().get(NR_FOLL_PIN_ACQUIRED),
              m.ms->node(0).stats().get(NR_FOLL_PIN_RELEASED));
  }
  testing::VmMachine m;
  MmHandle mm;
};

class CowPinAnon : public CowPinTest, public ::testing::TestWithParam<AnonCell> {
 protected:
  Region prepare(Anon anon) {
    switch (anon) {
      case Anon::kBase: {
        const VirtAddr a = testing::map_anon(*mm, PAGE_SIZE);
        EXPECT_TRUE(copy_to_user(*mm, a, testing::pattern(PAGE_SIZE)).ok());
        return {a, PAGE_SIZE};
      }
      case Anon::kThpPmd:
        return testing::prepare_thp(*mm, ThpRun::kPmd);
      case Anon::kThpPte:
        return testing::prepare_thp(*mm, ThpRun::kPte);
      case Anon::kThpSinglePte:
        return testing::prepare_thp(*mm, ThpRun::kSinglePte);
      case Anon::kHugetlb: {
        const VirtAddr a = testing::map_anon(*mm, HPAGE_PMD_SIZE, PROT_READ | PROT_WRITE,
                                             MAP_PRIVATE | MAP_HUGETLB);
        EXPECT_TRUE(copy_to_user(*mm, a, testing::pattern(HPAGE_PMD_SIZE)).ok());
        return {a, HPAGE_PMD_SIZE};
      }
    }
    return {};
  }
};

TEST_P(CowPinAnon, PinIsReliable) {
  const AnonCell c = GetParam();
  const Region r = prepare(c.anon);
  ASSERT_FALSE(HasFailure());
  const uint32_t fast = c.fast ? PIN_LONGTERM_TEST_FLAG_USE_FAST : 0;
  PinLongtermTest pin;
  MmHandle child;
  switch (c.pin_case) {
    case PinCase::kRoPinShared:
    case PinCase::kRoPinPreviouslyShared: {
      auto forked = dup_mm(*mm);
      ASSERT_TRUE(forked.ok());
      child = std::move(*forked);
      if (c.pin_case == PinCase::kRoPinPreviouslyShared) child.reset();  // the child exits
      ASSERT_EQ(pin.start({r.mem.value(), r.size, fast}), 0);
      break;
    }
    case PinCase::kRoPinRoExclusive:
      ASSERT_TRUE(do_mprotect(*mm, r.mem, r.size, PROT_READ).ok());
      ASSERT_TRUE(do_mprotect(*mm, r.mem, r.size, PROT_READ | PROT_WRITE).ok());
      ASSERT_EQ(pin.start({r.mem.value(), r.size, fast}), 0);
      break;
    case PinCase::kFixedBufferRoMapping:
      ASSERT_EQ(pin.start({r.mem.value(), r.size, fast | PIN_LONGTERM_TEST_FLAG_USE_WRITE}), 0);
      ASSERT_TRUE(do_mprotect(*mm, r.mem, r.size, PROT_READ).ok());
      ASSERT_TRUE(do_mprotect(*mm, r.mem, r.size, PROT_READ | PROT_WRITE).ok());
      break;
    case PinCase::kFixedBufferFork: {
      ASSERT_EQ(pin.start({r.mem.value(), r.size, fast | PIN_LONGTERM_TEST_FLAG_USE_WRITE}), 0);
      const std::vector<std::byte> before = snapshot(*mm, r);
      auto forked = dup_mm(*mm);
      ASSERT_TRUE(forked.ok());
      child = std::move(*forked);
      // The pinned pages stayed with the parent: the child got copies.
      EXPECT_NE(testing::page_at(*child, r.mem), testing::page_at(*mm, r.mem));
      expect_pin_sees_writes(pin, r);
      EXPECT_TRUE(snapshot(*child, r) == before) << "the parent's writes leaked into the child";
      break;
    }
  }
  expect_pin_sees_writes(pin, r);
  pin.stop();
  child.reset();
  expect_balanced_pins();
  EXPECT_VM_VALID(m.vm);
}

std::vector<AnonCell> anon_cells() {
  std::vector<AnonCell> cells;
  for (Anon a : {Anon::kBase, Anon::kThpPmd, Anon::kThpPte, Anon::kThpSinglePte, Anon::kHugetlb}) {
    for (PinCase p :
         {PinCase::kRoPinShared, PinCase::kRoPinPreviouslyShared, PinCase::kRoPinRoExclusive,
          PinCase::kFixedBufferRoMapping, PinCase::kFixedBufferFork}) {
      for (bool fast : {false, true})
        cells.push_back({a, p, fast});
    }
  }
  return cells;
}

INSTANTIATE_TEST_SUITE_P(Cow, CowPinAnon, ::testing::ValuesIn(anon_cells()), anon_cell_name);

// Non-anonymous pages mapped R/O into a private mapping: a R/O long-term pin
// must unshare (COW) first, or the pin would keep reading the file's page
// (or the zero page) after the process writes.
enum class NonAnon { kZeroPage, kMemfd, kTmpfileExt4, kMemfdHugetlb };

struct NonAnonCell {
  NonAnon backing;
  bool fast;
};

std::string non_anon_cell_name(const ::testing::TestParamInfo<NonAnonCell>& info) {
  static const char* const kNames[] = {"ZeroPage", "Memfd", "TmpfileExt4", "MemfdHugetlb2M"};
  return std::string(kNames[static_cast<int>(info.param.backing)]) +
         (info.param.fast ? "RoLongtermFastPin" : "RoLongtermPin");
}

class CowPinNonAnon : public CowPinTest, public ::testing::TestWithParam<NonAnonCell> {};

TEST_P(CowPinNonAnon, RoLongtermPinUnsharesFirst) {
  const NonAnonCell c = GetParam();
  const uint64_t size = c.backing == NonAnon::kMemfdHugetlb ? HPAGE_PMD_SIZE : PAGE_SIZE;
  std::shared_ptr<File> file;
  VirtAddr mem;
  if (c.backing == NonAnon::kZeroPage) {
    mem = testing::map_anon(*mm, size);
  } else {
    const FsType type = c.backing == NonAnon::kMemfd         ? FsType::kTmpfs
                        : c.backing == NonAnon::kTmpfileExt4 ? FsType::kExt4
                                                             : FsType::kHugetlbfs;
    file = File::create(m.vm, type, "test", size);
    // fallocate(), as cow.c does: the page cache holds the page before the
    // mapping faults on it.
    if (type == FsType::kExt4) {
      ASSERT_TRUE(file->pwrite(std::vector<std::byte>(size), 0).ok());
    } else {
      auto folio = memfd_alloc_folio(*file, 0);
      ASSERT_TRUE(folio.ok());
      folio_put(*folio);
    }
    auto mapped = vm_mmap(*mm, VirtAddr(0), size, PROT_READ | PROT_WRITE, MAP_PRIVATE, file);
    ASSERT_TRUE(mapped.ok());
    mem = *mapped;
  }
  // Read-fault the page in: the zero page or the file's page, mapped R/O.
  ASSERT_EQ(testing::read_byte(*mm, mem), 0);
  const Page* shared_page = testing::page_at(*mm, mem);
  ASSERT_FALSE(folio_test_anon(page_folio(shared_page)));

  PinLongtermTest pin;
  ASSERT_EQ(pin.start({mem.value(), size, c.fast ? PIN_LONGTERM_TEST_FLAG_USE_FAST : 0u}), 0);
  EXPECT_NE(testing::page_at(*mm, mem), shared_page) << "the pin did not unshare";
  EXPECT_TRUE(folio_test_anon(page_folio(testing::page_at(*mm, mem))));
  expect_pin_sees_writes(pin, {mem, size});
  if (c.backing == NonAnon::kMemfd || c.backing == NonAnon::kTmpfileExt4) {
    // The write went to the private copy, not to the file.
    std::byte first{0xee};
    ASSERT_TRUE(file->pread(std::span<std::byte>(&first, 1), 0).ok());
    EXPECT_EQ(first, std::byte{0});
  }
  pin.stop();
  expect_balanced_pins();
  EXPECT_VM_VALID(m.vm);
}

INSTANTIATE_TEST_SUITE_P(Cow, CowPinNonAnon,
                         ::testing::Values(NonAnonCell{NonAnon::kZeroPage, false},
                                           NonAnonCell{NonAnon::kZeroPage, true},
                                           NonAnonCell{NonAnon::kMemfd, false},
                                           NonAnonCell{NonAnon::kMemfd, true},
                                           NonAnonCell{NonAnon::kTmpfileExt4, false},
                                           NonAnonCell{NonAnon::kTmpfileExt4, true},
                                           NonAnonCell{NonAnon::kMemfdHugetlb, false},
                                           NonAnonCell{NonAnon::kMemfdHugetlb, true}),
                         non_anon_cell_name);

}  // namespace
}  // namespace pinmm
