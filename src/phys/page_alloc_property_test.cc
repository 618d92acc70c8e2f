// Randomised properties of the buddy allocator (RapidCheck), and the
// concurrent allocation test that also runs under ThreadSanitizer.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <atomic>
#include <barrier>
#include <cstring>
#include <map>
#include <random>
#include <thread>
#include <tuple>
#include <vector>

#include "pinmm/phys/kernel_pages.h"
#include "pinmm/phys/page_alloc.h"
#include "pinmm/phys/pageblock.h"
#include "testing/machines.h"

namespace pinmm {
namespace {

// Two nodes of 8 MiB: node 0 half movable, node 1 with a 2 MiB CMA area.
MachineConfig property_machine() {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(8), Bytes::MiB(4));
  c.nodes.push_back({Bytes::MiB(8), Bytes(0)});
  c.cma.push_back({"cma1", Bytes::MiB(2), 1});
  return c;
}

Gfp gfp_of_kind(int kind) {
  switch (kind) {
    case 0:
      return GFP_KERNEL;
    case 1:
      return GFP_KERNEL | __GFP_RECLAIMABLE;
    case 2:
      return GFP_HIGHUSER_MOVABLE;
    case 3:
      return GFP_USER | __GFP_MOVABLE;
    case 4:
      return GFP_HIGHUSER_MOVABLE | __GFP_THISNODE | __GFP_ZERO;
    default:
      return GFP_KERNEL | __GFP_THISNODE;
  }
}

struct ZoneSnapshot {
  std::array<uint64_t, NR_PAGE_ORDERS> nr_free;
  int64_t free_pages;
  int64_t free_cma;
  bool operator==(const ZoneSnapshot&) const = default;
};

std::vector<ZoneSnapshot> snapshot(const MemorySystem& ms) {
  std::vector<ZoneSnapshot> out;
  for (int n = 0; n < ms.nr_nodes(); ++n) {
    for (ZoneType t : {ZONE_NORMAL, ZONE_MOVABLE}) {
      const Zone& z = ms.zone(n, t);
      out.push_back({z.free_counts().nr_free, z.stats().get(NR_FREE_PAGES),
                     z.stats().get(NR_FREE_CMA_PAGES)});
    }
  }
  return out;
}

void assert_valid(const MemorySystem& m) {
  const auto r = m.validate();
  if (!r.ok()) RC_FAIL(r.to_string());
}

// Any sequence of allocations and frees of random orders, migratetypes,
// zones and nodes, mixed with isolating and un-isolating pageblocks, keeps
// validate() true, and freeing everything returns every page: the free
// lists come back to their boot shape.
RC_GTEST_PROP(PageAllocProperty, RandomAllocFreeKeepsInvariantsAndReturnsEveryPage, ()) {
  auto ms = MemorySystem::create(property_machine());
  RC_ASSERT(ms.ok());
  MemorySystem& m = **ms;
  const auto boot_state = snapshot(m);

  struct Held {
    Page* page;
    unsigned order;
    bool kernel;
  };
  std::vector<Held> held;
  // Isolated pageblocks and the type each had before.
  std::map<uint64_t, MigrateType> isolated;
  auto toggle_isolation = [&m, &isolated](int pick) {
    const Pfn pfn(static_cast<uint64_t>(pick) % m.max_pfn().value());
    const Pfn block = pageblock_start_pfn(pfn);
    Zone* z = page_zone(m.pfn_to_page(block));
    if (auto it = isolated.find(block.value()); it != isolated.end()) {
      z->unisolate_pageblock(block, it->second);
      isolated.erase(it);
    } else {
      const MigrateType before = m.pageblock_flags().get(block);
      RC_ASSERT(z->isolate_pageblock(block));
      isolated[block.value()] = before;
    }
  };
  const auto ops = *rc::gen::container<std::vector<std::tuple<int, int, int, int>>>(
      rc::gen::tuple(rc::gen::inRange(0, 5), rc::gen::inRange(0, 11), rc::gen::inRange(0, 6),
                     rc::gen::inRange(0, 1 << 16)));
  size_t step = 0;
  for (const auto& [kind, order, gfp_kind, pick] : ops) {
    RC_LOG() << "op " << kind << " order " << order << " gfp " << gfp_kind << " pick " << pick
             << "\n";
    if (kind == 4) {
      toggle_isolation(pick);
    } else if (kind < 2 || held.empty()) {
      const int nid = pick & 1;
      if (kind == 1 && gfp_kind < 2) {
        Page* p = kmalloc_pages(m, Order(order), "prop", gfp_of_kind(gfp_kind), nid);
        if (p != nullptr) held.push_back({p, static_cast<unsigned>(order), true});
      } else {
        Page* p = alloc_pages_node(m, nid, gfp_of_kind(gfp_kind), Order(order));
        if (p != nullptr) held.push_back({p, static_cast<unsigned>(order), false});
      }
    } else {
      const size_t i = static_cast<size_t>(pick) % held.size();
      if (held[i].kernel) {
        kfree_pages(held[i].page);
      } else {
        __free_pages(held[i].page, Order(held[i].order));
      }
      held[i] = held.back();
      held.pop_back();
    }
    if (++step % 8 == 0) assert_valid(m);
  }
  assert_valid(m);
  for (const auto& [block, mt] : isolated)
    page_zone(m.pfn_to_page(Pfn(block)))->unisolate_pageblock(Pfn(block), mt);
  for (const Held& h : held) {
    if (h.kernel) {
      kfree_pages(h.page);
    } else {
      __free_pages(h.page, Order(h.order));
    }
  }
  assert_valid(m);
  RC_ASSERT(snapshot(m) == boot_state);
}

// Two (and more) threads allocate and free in the same zone. Each writes
// its id and a sequence number into every frame it owns and checks them
// before freeing: a page handed to two owners shows up as a mismatch.
TEST(PageAllocConcurrent, ThreadsAllocAndFreeInOneZone) {
  auto ms = testing::boot_tiny(Bytes::MiB(16));
  const Zone& z = ms->zone(0, ZONE_NORMAL);
  const auto before = z.free_counts();
  constexpr int kThreads = 3;
  constexpr int kRounds = 3000;
  std::atomic<int> corrupt{0};
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t) * 7919u + 1);
      struct Owned {
        Page* page;
        unsigned order;
        uint64_t stamp;
      };
      std::vector<Owned> owned;
      auto stamp_of = [&](uint64_t seq) { return (uint64_t(t) << 48) | seq; };
      auto check_and_free = [&](const Owned& o) {
        const uint64_t nr = uint64_t{1} << o.order;
        for (uint64_t i = 0; i < nr; ++i) {
          uint64_t v;
          std::memcpy(&v, ms->frames().frame(page_to_pfn(o.page) + PageCount(i)), sizeof v);
          if (v != o.stamp) corrupt.fetch_add(1);
        }
        __free_pages(o.page, Order(o.order));
      };
      start.arrive_and_wait();
      for (int i = 0; i < kRounds; ++i) {
        if (owned.size() < 64 && (rng() % 3 != 0 || owned.empty())) {
          const unsigned order = rng() % 4;
          const Gfp gfp = (rng() & 1) ? GFP_KERNEL : GFP_HIGHUSER_MOVABLE;
          Page* p = alloc_pages(*ms, gfp, Order(order));
          if (p == nullptr) continue;
          const uint64_t stamp = stamp_of(static_cast<uint64_t>(i));
          for (uint64_t k = 0; k < (uint64_t{1} << order); ++k) {
            std::memcpy(ms->frames().frame(page_to_pfn(p) + PageCount(k)), &stamp, sizeof stamp);
          }
          owned.push_back({p, order, stamp});
        } else {
          const size_t k = rng() % owned.size();
          check_and_free(owned[k]);
          owned[k] = owned.back();
          owned.pop_back();
        }
      }
      for (const Owned& o : owned)
        check_and_free(o);
    });
  }
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(corrupt.load(), 0);
  EXPECT_VALID(*ms);
  EXPECT_EQ(z.free_counts().nr_free, before.nr_free);
  EXPECT_EQ(z.stats().get(NR_FREE_PAGES), 4096);
}

}  // namespace
}  // namespace pinmm
