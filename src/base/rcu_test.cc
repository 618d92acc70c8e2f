#include "pinmm/base/rcu.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace pinmm {
namespace {

struct Payload {
  explicit Payload(uint64_t g) : generation(g), check(~g) {}
  uint64_t generation;
  uint64_t check;  // ~generation: a torn or freed object shows up here
};

TEST(Rcu, ReadSectionNesting) {
  EXPECT_FALSE(rcu::in_read_section());
  {
    rcu::ReadSection outer;
    {
      rcu::ReadSection inner;
      EXPECT_TRUE(rcu::in_read_section());
    }
    EXPECT_TRUE(rcu::in_read_section());
  }
  EXPECT_FALSE(rcu::in_read_section());
}

TEST(Rcu, CallbacksRunAfterBarrier) {
  std::atomic<int> ran{0};
  for (int i = 0; i < 10; ++i)
    rcu::call([&] { ran.fetch_add(1); });
  rcu::barrier();
  EXPECT_EQ(ran.load(), 10);
}

TEST(Rcu, SynchronizeWaitsForPreexistingReaders) {
  std::atomic<bool> reader_in{false}, release_reader{false}, reader_done{false};
  std::thread reader([&] {
    rcu::ReadSection rs;
    reader_in = true;
    while (!release_reader)
      std::this_thread::yield();
    reader_done = true;
  });
  while (!reader_in)
    std::this_thread::yield();
  std::thread sync([&] {
    rcu::synchronize();
    EXPECT_TRUE(reader_done.load());
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  release_reader = true;
  sync.join();
  reader.join();
}

// Readers dereference a published object while a writer keeps replacing it
// and freeing the old one after a grace period (synchronously or through
// call()). Readers check the object's self-consistency; a use-after-free
// shows up under AddressSanitizer or ThreadSanitizer.
TEST(RcuConcurrent, ReplaceAndReclaimUnderReaders) {
  rcu::RcuPointer<Payload> ptr(new Payload(0));
  std::atomic<bool> stop{false};
  std::atomic<bool> torn{false};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      uint64_t last = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        rcu::ReadSection rs;
        const Payload* p = ptr.load();
        if (p->check != ~p->generation || p->generation < last) torn = true;
        last = p->generation;
      }
    });
  }
  for (uint64_t g = 1; g <= 300; ++g) {
    Payload* old = ptr.exchange(new Payload(g));
    if (g % 2 == 0) {
      rcu::synchronize();
      delete old;
    } else {
      rcu::call([old] { delete old; });
    }
  }
  stop = true;
  for (auto& t : readers)
    t.join();
  rcu::barrier();
  delete ptr.load();
  EXPECT_FALSE(torn.load());
}

}  // namespace
}  // namespace pinmm
