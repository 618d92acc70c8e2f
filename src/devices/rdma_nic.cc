// RdmaNic (ib_umem_get / ib_umem_release and a DMA engine) and direct_io.
#include "pinmm/devices/rdma_nic.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "pinmm/base/task.h"
#include "pinmm/gup/gup.h"
#include "pinmm/gup/pin.h"
#include "pinmm/phys/memory_system.h"
#include "pinmm/phys/pin_owners.h"
#include "pinmm/vm/mm.h"

namespace pinmm {

RdmaNic::RdmaNic(MemorySystem& ms, std::string name) : ms_(ms), name_(std::move(name)) {}

RdmaNic::~RdmaNic() {
  stop_engine();
  std::vector<uint32_t> keys;
  {
    MutexGuard g(lock_);
    for (const auto& [key, r] : regions_)
      keys.push_back(key);
  }
  for (uint32_t key : keys)
    (void)dereg_mr(key);
}

Result<uint32_t> RdmaNic::reg_mr(Mm& mm, VirtAddr addr, uint64_t len, std::string label) {
  if (len == 0 || !addr.is_page_aligned() || len % PAGE_SIZE != 0) return Errno(EINVAL);
  const uint64_t n = len / PAGE_SIZE;
  std::vector<Page*> pages(n, nullptr);
  long got = 0;
  {
    PinOwnerScope owner(PinOwnerKind::kDevice, name_, label);
    ReadGuard g(mm.mmap_lock);
    got = pin_user_pages_remote(mm, addr.value(), n, FOLL_LONGTERM | FOLL_WRITE, pages.data(),
                                nullptr);
  }
  if (got < 0) return Errno(static_cast<int>(-got));
  if (static_cast<uint64_t>(got) != n) {
    unpin_user_pages(std::span<Page* const>(pages.data(), static_cast<size_t>(got)));
    return Errno(EFAULT);
  }
  MutexGuard g(lock_);
  const uint32_t key = next_key_++;
  regions_.emplace(key, Region{std::move(label), std::move(pages)});
  return key;
}

Result<void> RdmaNic::dereg_mr(uint32_t key) {
  Region r;
  {
    MutexGuard g(lock_);
    auto it = regions_.find(key);
    if (it == regions_.end()) return Errno(ENOENT);
    r = std::move(it->second);
    regions_.erase(it);
  }
  // The device may have written any page.
  PinOwnerScope owner(PinOwnerKind::kDevice, name_, r.label);
  unpin_user_pages_dirty_lock(r.pages, true);
  return {};
}

template <typename Fn>
Result<void> RdmaNic::for_each_chunk(uint32_t key, uint64_t offset, uint64_t n, Fn fn) {
  MutexGuard g(lock_);
  auto it = regions_.find(key);
  if (it == regions_.end()) return Errno(ENOENT);
  const std::vector<Page*>& pages = it->second.pages;
  if (offset > pages.size() * PAGE_SIZE || n > pages.size() * PAGE_SIZE - offset)
    return Errno(EINVAL);
  uint64_t done = 0;
  while (done < n) {
    const uint64_t at = offset + done;
    const uint64_t in_page = at % PAGE_SIZE;
    const uint64_t len = std::min(n - done, PAGE_SIZE - in_page);
    fn(ms_.frames().frame(page_to_pfn(pages[at / PAGE_SIZE])) + in_page, done, len);
    done += len;
  }
  return {};
}

Result<void> RdmaNic::dma_write(uint32_t key, uint64_t offset, std::span<const std::byte> data) {
  return for_each_chunk(key, offset, data.size(), [&](std::byte* frame, uint64_t at, uint64_t n) {
    std::memcpy(frame, data.data() + at, n);
  });
}

Result<void> RdmaNic::dma_read(uint32_t key, uint64_t offset, std::span<std::byte> out) {
  return for_each_chunk(key, offset, out.size(), [&](std::byte* frame, uint64_t at, uint64_t n) {
    std::memcpy(out.data() + at, frame, n);
  });
}

std::vector<Page*> RdmaNic::region_pages(uint32_t key) const {
  MutexGuard g(lock_);
  auto it = regions_.find(key);
  return it == regions_.end() ? std::vector<Page*>{} : it->second.pages;
}

size_t RdmaNic::nr_regions() const {
  MutexGuard g(lock_);
  return regions_.size();
}

ValidationReport RdmaNic::validate() const {
  ValidationReport r;
  const bool migrate = ms_.longterm_pin_policy() == LongtermPinPolicy::kMigrate;
  MutexGuard g(lock_);
  for (const auto& [key, region] : regions_) {
    for (size_t i = 0; i < region.pages.size(); ++i) {
      const Folio* folio = page_folio(region.pages[i]);
      if (!folio_maybe_dma_pinned(folio))
        r.fail("{}: region {} ('{}') page {} is not pinned", name_, key, region.label, i);
      if (migrate && !folio_is_longterm_pinnable(folio))
        r.fail("{}: region {} ('{}') page {} lies in ZONE_MOVABLE or CMA", name_, key, region.label,
               i);
    }
  }
  return r;
}

// ---- the DMA engine ----

void RdmaNic::start_engine() {
  if (engine_.joinable()) return;
  {
    MutexGuard g(queue_lock_);
    stopping_ = false;
  }
  engine_ = std::thread([this] { engine_loop(); });
}

void RdmaNic::engine_loop() {
  // The engine is a kernel thread of its own.
  Task task(0, name_);
  task.set_flags(PF_KTHREAD);
  CurrentTask as(task);
  for (;;) {
    std::function<void()> work;
    {
      MutexGuard g(queue_lock_);
      while (!stopping_ && queue_.empty())
        queue_cv_.wait(queue_lock_);
      if (queue_.empty()) return;  // stopping, and nothing left
      work = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
    }
    work();
    {
      MutexGuard g(queue_lock_);
      --running_;
    }
    queue_cv_.notify_all();
  }
}

void RdmaNic::submit(std::function<void()> work) {
  {
    MutexGuard g(queue_lock_);
    queue_.push_back(std::move(work));
  }
  queue_cv_.notify_all();
}

void RdmaNic::drain() {
  MutexGuard g(queue_lock_);
  while (!queue_.empty() || running_ != 0)
    queue_cv_.wait(queue_lock_);
}

void RdmaNic::stop_engine() {
  {
    MutexGuard g(queue_lock_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (engine_.joinable()) engine_.join();
}

// ---- O_DIRECT ----

Result<uint64_t> direct_io(MemorySystem& ms, VirtAddr addr, std::span<std::byte> buf,
                           bool to_memory, const std::string& label) {
  if (buf.empty()) return uint64_t{0};
  const uint64_t first = addr.value() & PAGE_MASK;
  const uint64_t n = (addr.value() + buf.size() - first + PAGE_SIZE - 1) / PAGE_SIZE;
  std::vector<Page*> pages(n, nullptr);
  long got = 0;
  {
    PinOwnerScope owner(label);
    got = pin_user_pages_fast(first, n, to_memory ? FOLL_WRITE : FOLL_NONE, pages.data());
  }
  if (got < 0) return Errno(static_cast<int>(-got));
  const std::span<Page* const> pinned(pages.data(), static_cast<size_t>(got));
  if (static_cast<uint64_t>(got) != n) {
    unpin_user_pages(pinned);
    return Errno(EFAULT);
  }
  uint64_t done = 0;
  while (done < buf.size()) {
    const uint64_t at = addr.value() + done;
    const uint64_t in_page = at % PAGE_SIZE;
    const uint64_t len = std::min<uint64_t>(buf.size() - done, PAGE_SIZE - in_page);
    std::byte* frame = ms.frames().frame(page_to_pfn(pages[(at - first) / PAGE_SIZE])) + in_page;
    if (to_memory) {
      std::memcpy(frame, buf.data() + done, len);
    } else {
      std::memcpy(buf.data() + done, frame, len);
    }
    done += len;
  }
  // bio_release_pages: a read into memory dirtied the pages.
  PinOwnerScope owner(label);
  unpin_user_pages_dirty_lock(pinned, to_memory);
  return done;
}

}  // namespace pinmm
