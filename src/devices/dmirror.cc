// dmirror (lib/test_hmm.c): device memory, the mirror's page table and the
// driver's ioctls over hmm_range_fault, migrate_vma and device-exclusive
// access.
#include "pinmm/devices/dmirror.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "pinmm/base/check.h"
#include "pinmm/hmm/device_exclusive.h"
#include "pinmm/hmm/memremap.h"
#include "pinmm/phys/folio_lock.h"
#include "pinmm/phys/memory_system.h"
#include "pinmm/phys/page_alloc.h"
#include "pinmm/vm/fault.h"

namespace pinmm {

namespace {

// Pages per hmm_range_fault / migrate_vma / exclusive call (the driver's
// on-stack arrays).
constexpr uint64_t kBatch = 64;

uint64_t vpn(VirtAddr a) { return a.value() >> PAGE_SHIFT; }

void copy_frame(MemorySystem& ms, Page* dst, const Page* src) {
  ms.frames().copy(page_to_pfn(dst), page_to_pfn(src), PageCount(1));
}

// A freshly allocated destination page: nobody else can hold its lock.
void lock_new_page(Page* page) { MM_BUG_ON(!folio_trylock(page_folio(page)), page); }

// mmget_not_zero / mmput around a command on the mirrored mm.
class MmUser {
 public:
  explicit MmUser(Mm& mm) : mm_(mm), ok_(mm.mmget_not_zero()) {}
  ~MmUser() {
    if (ok_) mm_.mmput();
  }
  MmUser(const MmUser&) = delete;
  MmUser& operator=(const MmUser&) = delete;
  bool ok() const { return ok_; }

 private:
  Mm& mm_;
  bool ok_;
};

// The temporary subscription of a snapshot: any invalidation of its range
// spoils the whole snapshot, so it only records the sequence.
class SnapshotNotifier : public MmuIntervalNotifierOps {
 public:
  explicit SnapshotNotifier(Mutex& lock) : lock_(lock) {}
  bool invalidate(MmuIntervalNotifier* sub, const MmuNotifierRange& range,
                  uint64_t cur_seq) override {
    if (mmu_notifier_range_blockable(range)) {
      lock_.lock();
    } else if (!lock_.try_lock()) {
      return false;
    }
    mmu_interval_set_seq(sub, cur_seq);
    lock_.unlock();
    return true;
  }

 private:
  Mutex& lock_;
};

}  // namespace

// ---- DmirrorDevice ----

const DevPagemapOps DmirrorDevice::kOps{&DmirrorDevice::dmirror_devmem_free,
                                        &DmirrorDevice::dmirror_devmem_fault};

DmirrorDevice::DmirrorDevice(MemorySystem& ms, DmirrorMemory type, int id, int nid, PageCount chunk)
    : ms_(ms),
      type_(type),
      id_(id),
      nid_(nid),
      chunk_pages_(chunk.value() != 0 ? chunk : ms.section_pages()) {
  // dmirror_device_init builds the first chunk's free list at once.
  MutexGuard g(devmem_lock_);
  (void)dmirror_allocate_chunk();
}

DmirrorDevice::~DmirrorDevice() { dmirror_device_remove_chunks(); }

DmirrorDevice::Chunk* DmirrorDevice::chunk_of(const Page* page) const {
  return static_cast<Chunk*>(page_pgmap(page)->driver_data);
}

bool DmirrorDevice::owns(const Page* page) const {
  return is_zone_device_page(page) && page_pgmap(page)->owner == owner();
}

void DmirrorDevice::set_page_mirror(const Page* page, Dmirror* mirror) {
  Chunk* c = chunk_of(page);
  c->mirrors[(page_to_pfn(page) - c->pagemap.start).value()].store(mirror,
                                                                   std::memory_order_release);
}

Dmirror* DmirrorDevice::page_mirror(const Page* page) const {
  const Chunk* c = chunk_of(page);
  return c->mirrors[(page_to_pfn(page) - c->pagemap.start).value()].load(std::memory_order_acquire);
}

Result<void> DmirrorDevice::dmirror_allocate_chunk() {
  auto chunk = std::make_unique<Chunk>();
  chunk->device = this;
  chunk->pagemap.type =
      type_ == DmirrorMemory::kPrivate ? MEMORY_DEVICE_PRIVATE : MEMORY_DEVICE_COHERENT;
  chunk->pagemap.ops = &kOps;
  chunk->pagemap.owner = owner();
  chunk->pagemap.driver_data = chunk.get();
  chunk->mirrors = std::vector<std::atomic<Dmirror*>>(chunk_pages_.value());
  auto start = memremap_pages(ms_, &chunk->pagemap, nid_, chunk_pages_);
  if (!start.ok()) return start.error();
  {
    SpinGuard g(lock_);
    // Lowest PFN handed out first.
    for (uint64_t i = chunk_pages_.value(); i-- > 0;)
      free_pages_.push_back(ms_.pfn_to_page(*start + PageCount(i)));
  }
  chunks_.push_back(std::move(chunk));
  return {};
}

Page* DmirrorDevice::dmirror_devmem_alloc_page() {
  for (;;) {
    {
      SpinGuard g(lock_);
      if (!free_pages_.empty()) {
        Page* page = free_pages_.back();
        free_pages_.pop_back();
        ++calloc_;
        zone_device_page_init(page);
        return page;
      }
    }
    MutexGuard g(devmem_lock_);
    if (!dmirror_allocate_chunk().ok()) return nullptr;
  }
}

void DmirrorDevice::dmirror_devmem_free(Page* page) {
  Chunk* chunk = static_cast<Chunk*>(page_pgmap(page)->driver_data);
  DmirrorDevice* d = chunk->device;
  d->set_page_mirror(page, nullptr);
  SpinGuard g(d->lock_);
  // Back to the allocator unless its chunk is being removed.
  if (!chunk->remove.load(std::memory_order_acquire)) {
    ++d->cfree_;
    d->free_pages_.push_back(page);
  } else {
    ++d->freed_on_removal_;
  }
}

uint32_t DmirrorDevice::dmirror_devmem_fault(VmFaultInfo& vmf) {
  Chunk* chunk = static_cast<Chunk*>(page_pgmap(vmf.page)->driver_data);
  DmirrorDevice* d = chunk->device;
  uint64_t src = 0, dst = 0;
  MigrateVma args;
  args.vma = vmf.vma;
  args.start = vmf.address;
  args.end = vmf.address + PAGE_SIZE;
  args.src = &src;
  args.dst = &dst;
  args.pgmap_owner = d->owner();
  args.flags = d->select_flags();
  args.fault_page = vmf.page;
  if (migrate_vma_setup(&args) != 0) return static_cast<uint32_t>(VM_FAULT_SIGBUS);
  Dmirror* mirror = d->page_mirror(vmf.page);
  auto ret = static_cast<uint32_t>(VM_FAULT_NONE);
  for (uint64_t i = 0; i < args.npages; ++i) {
    Page* spage = migrate_pfn_to_page(d->ms_, args.src[i]);
    if (spage == nullptr || !(args.src[i] & MIGRATE_PFN_MIGRATE)) continue;
    Folio* folio = folio_alloc(d->ms_, GFP_HIGHUSER_MOVABLE, Order(0));
    if (folio == nullptr) {
      // VM_FAULT_OOM, as lib/test_hmm.c answers: the CPU access (or GUP)
      // fails with ENOMEM instead of retrying a fault that cannot succeed.
      // Linux's driver returns before finalizing; pinmm restores the
      // entries it collected first.
      ret = static_cast<uint32_t>(VM_FAULT_OOM);
      break;
    }
    lock_new_page(&folio->page);
    if (mirror != nullptr) mirror->erase(args.start + i * PAGE_SIZE);
    copy_frame(d->ms_, &folio->page, spage);
    args.dst[i] = migrate_pfn(folio_pfn(folio)) | (args.src[i] & MIGRATE_PFN_WRITE);
  }
  migrate_vma_pages(&args);
  migrate_vma_finalize(&args);
  return ret;
}

void DmirrorDevice::dmirror_device_evict_chunk(Chunk& chunk) {
  const uint64_t n = chunk.pagemap.nr.value();
  std::vector<uint64_t> src(n, 0), dst(n, 0);
  migrate_device_range(ms_, src.data(), chunk.pagemap.start, n);
  for (uint64_t i = 0; i < n; ++i) {
    Page* spage = migrate_pfn_to_page(ms_, src[i]);
    if (spage == nullptr || !(src[i] & MIGRATE_PFN_MIGRATE)) continue;
    MM_BUG_ON(!owns(spage), spage);
    // Eviction cannot fail (the device memory goes): as Linux's test driver,
    // with __GFP_NOFAIL.
    Folio* folio = folio_alloc(ms_, GFP_HIGHUSER_MOVABLE | __GFP_NOFAIL, Order(0));
    if (folio == nullptr) {
      MM_WARN_ON_ONCE(true, spage);  // pinmm has no reclaim to wait for
      continue;
    }
    lock_new_page(&folio->page);
    copy_frame(ms_, &folio->page, spage);
    dst[i] = migrate_pfn(folio_pfn(folio)) | (src[i] & MIGRATE_PFN_WRITE);
  }
  migrate_device_pages(ms_, src.data(), dst.data(), n);
  migrate_device_finalize(ms_, src.data(), dst.data(), n);
}

void DmirrorDevice::evict_all() {
  MutexGuard g(devmem_lock_);
  for (auto& c : chunks_)
    dmirror_device_evict_chunk(*c);
}

void DmirrorDevice::dmirror_device_remove_chunks() {
  MutexGuard g(devmem_lock_);
  for (auto& c : chunks_) {
    {
      SpinGuard s(lock_);
      c->remove.store(true, std::memory_order_release);
      std::erase_if(free_pages_, [&](Page* p) { return c->pagemap.contains(page_to_pfn(p)); });
    }
    dmirror_device_evict_chunk(*c);
    memunmap_pages(ms_, &c->pagemap);
  }
  chunks_.clear();
  SpinGuard s(lock_);
  free_pages_.clear();
}

ValidationReport DmirrorDevice::validate() const {
  ValidationReport r;
  MutexGuard g(devmem_lock_);
  SpinGuard s(lock_);
  std::set<const Page*> free(free_pages_.begin(), free_pages_.end());
  if (free.size() != free_pages_.size()) r.fail("dmirror{}: a page is on the free list twice", id_);
  uint64_t in_use = 0;
  for (const auto& c : chunks_) {
    for (uint64_t i = 0; i < c->pagemap.nr.value(); ++i) {
      const Page* page = ms_.pfn_to_page(c->pagemap.start + PageCount(i));
      const bool listed = free.erase(page) != 0;
      const int refs = folio_ref_count(page_folio(page));
      if (listed && refs != 0)
        r.fail("dmirror{}: free-list pfn {:#x} has refcount {}", id_, page_to_pfn(page).value(),
               refs);
      if (!listed && refs == 0)
        r.fail("dmirror{}: pfn {:#x} is free but not on the free list", id_,
               page_to_pfn(page).value());
      in_use += !listed;
    }
  }
  if (!free.empty()) r.fail("dmirror{}: {} free-list pages belong to no chunk", id_, free.size());
  if (in_use != calloc_ - cfree_ - freed_on_removal_)
    r.fail("dmirror{}: {} pages in use, but {} allocated and {} + {} freed", id_, in_use, calloc_,
           cfree_, freed_on_removal_);
  return r;
}

uint64_t DmirrorDevice::nr_allocated() const {
  SpinGuard g(lock_);
  return calloc_;
}

uint64_t DmirrorDevice::nr_freed() const {
  SpinGuard g(lock_);
  return cfree_;
}

size_t DmirrorDevice::nr_chunks() const {
  MutexGuard g(devmem_lock_);
  return chunks_.size();
}

// ---- Dmirror: the open file ----

Dmirror::Dmirror(DmirrorDevice& device, Mm& mm) : device_(device), mm_(mm) {
  insert_rc_ = mmu_interval_notifier_insert(&notifier_, mm, 0, ~uint64_t{0} & PAGE_MASK, this);
}

Dmirror::~Dmirror() {
  if (insert_rc_ == 0) mmu_interval_notifier_remove(&notifier_);
  device_.evict_all();
}

bool Dmirror::invalidate(MmuIntervalNotifier* sub, const MmuNotifierRange& range,
                         uint64_t cur_seq) {
  // Our own migrations handle the device's page table themselves.
  if (range.event == MMU_NOTIFY_MIGRATE && range.owner == device_.owner()) return true;
  if (mmu_notifier_range_blockable(range)) {
    mutex_.lock();
  } else if (!mutex_.try_lock()) {
    return false;
  }
  mmu_interval_set_seq(sub, cur_seq);
  pt_.erase(pt_.lower_bound(vpn(range.start)), pt_.lower_bound(vpn(range.end)));
  invalidations_.fetch_add(1, std::memory_order_relaxed);
  mutex_.unlock();
  return true;
}

void Dmirror::erase(VirtAddr addr) {
  MutexGuard g(mutex_);
  pt_.erase(vpn(addr));
}

size_t Dmirror::nr_mirrored() const {
  MutexGuard g(mutex_);
  return pt_.size();
}

int Dmirror::ioctl(unsigned command, HmmDmirrorCmd* cmd) {
  if (cmd->addr & ~PAGE_MASK) return -EINVAL;
  if (cmd->npages > (~uint64_t{0} >> PAGE_SHIFT) ||
      cmd->addr >= cmd->addr + (cmd->npages << PAGE_SHIFT))
    return -EINVAL;
  cmd->cpages = 0;
  cmd->faults = 0;
  switch (command) {
    case HMM_DMIRROR_READ:
      return dmirror_read(cmd);
    case HMM_DMIRROR_WRITE:
      return dmirror_write(cmd);
    case HMM_DMIRROR_MIGRATE_TO_DEV:
      return dmirror_migrate_to_device(cmd);
    case HMM_DMIRROR_MIGRATE_TO_SYS:
      return dmirror_migrate_to_system(cmd);
    case HMM_DMIRROR_SNAPSHOT:
      return dmirror_snapshot(cmd);
    case HMM_DMIRROR_EXCLUSIVE:
      return dmirror_exclusive(cmd);
    case HMM_DMIRROR_CHECK_EXCLUSIVE:
      return dmirror_check_atomic(*cmd);
    case HMM_DMIRROR_RELEASE:
      device_.dmirror_device_remove_chunks();
      return 0;
    default:
      return -EINVAL;
  }
}

// ---- faulting the mirror in ----

int Dmirror::dmirror_range_fault(HmmRange* range) {
  const auto deadline = std::chrono::steady_clock::now() + HMM_RANGE_DEFAULT_TIMEOUT;
  for (;;) {
    if (std::chrono::steady_clock::now() > deadline) return -EBUSY;
    range->notifier_seq = mmu_interval_read_begin(range->notifier);
    int rc = 0;
    {
      ReadGuard g(mm_.mmap_lock);
      rc = hmm_range_fault(range);
    }
    if (rc == -EBUSY) continue;
    if (rc != 0) return rc;
    MutexGuard g(mutex_);
    if (mmu_interval_read_retry(range->notifier, range->notifier_seq)) continue;
    // dmirror_do_fault: the device's page table takes the results.
    const uint64_t n = (range->end - range->start) >> PAGE_SHIFT;
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t e = range->hmm_pfns[i];
      MM_WARN_ON_ONCE((e & HMM_PFN_ERROR) || !(e & HMM_PFN_VALID));
      if (!(e & HMM_PFN_WRITE) && (range->default_flags & HMM_PFN_REQ_WRITE)) return -EFAULT;
      pt_[vpn(range->start) + i] =
          Entry{device_.ms().pfn_to_page(hmm_pfn_to_pfn(e)), (e & HMM_PFN_WRITE) ? kWrite : kRead};
    }
    return 0;
  }
}

int Dmirror::dmirror_fault(VirtAddr start, VirtAddr end, bool write) {
  MmUser user(mm_);
  if (!user.ok()) return -EFAULT;
  uint64_t pfns[kBatch];
  HmmRange range;
  range.notifier = &notifier_;
  range.hmm_pfns = pfns;
  range.default_flags = HMM_PFN_REQ_FAULT | (write ? HMM_PFN_REQ_WRITE : 0);
  range.dev_private_owner = device_.owner();
  for (VirtAddr addr = start; addr < end; addr = range.end) {
    range.start = addr;
    range.end = std::min(end, addr + kBatch * PAGE_SIZE);
    if (const int rc = dmirror_range_fault(&range); rc != 0) return rc;
  }
  return 0;
}

// ---- device access ----

int Dmirror::dmirror_do_read(VirtAddr start, VirtAddr end, std::byte* buf, uint64_t* done) {
  for (VirtAddr a = start; a < end; a = a + PAGE_SIZE) {
    auto it = pt_.find(vpn(a));
    if (it == pt_.end()) return -ENOENT;
    std::memcpy(buf + *done * PAGE_SIZE, device_.ms().frames().frame(page_to_pfn(it->second.page)),
                PAGE_SIZE);
    ++*done;
  }
  return 0;
}

int Dmirror::dmirror_do_write(VirtAddr start, VirtAddr end, const std::byte* buf, uint64_t* done) {
  for (VirtAddr a = start; a < end; a = a + PAGE_SIZE) {
    auto it = pt_.find(vpn(a));
    if (it == pt_.end() || it->second.tag != kWrite) return -ENOENT;
    std::memcpy(device_.ms().frames().frame(page_to_pfn(it->second.page)), buf + *done * PAGE_SIZE,
                PAGE_SIZE);
    ++*done;
  }
  return 0;
}

int Dmirror::dmirror_read(HmmDmirrorCmd* cmd) {
  const VirtAddr first(cmd->addr);
  const VirtAddr end = first + cmd->npages * PAGE_SIZE;
  std::vector<std::byte> bounce(cmd->npages * PAGE_SIZE);
  uint64_t done = 0;
  int rc = 0;
  for (;;) {
    const VirtAddr start = first + done * PAGE_SIZE;
    {
      MutexGuard g(mutex_);
      rc = dmirror_do_read(start, end, bounce.data(), &done);
    }
    if (rc != -ENOENT) break;
    rc = dmirror_fault(first + done * PAGE_SIZE, end, false);
    if (rc != 0) break;
    ++cmd->faults;
  }
  if (rc == 0) std::memcpy(cmd->ptr, bounce.data(), bounce.size());
  cmd->cpages = done;
  return rc;
}

int Dmirror::dmirror_write(HmmDmirrorCmd* cmd) {
  const VirtAddr first(cmd->addr);
  const VirtAddr end = first + cmd->npages * PAGE_SIZE;
  std::vector<std::byte> bounce(cmd->npages * PAGE_SIZE);
  std::memcpy(bounce.data(), cmd->ptr, bounce.size());
  uint64_t done = 0;
  int rc = 0;
  for (;;) {
    const VirtAddr start = first + done * PAGE_SIZE;
    {
      MutexGuard g(mutex_);
      rc = dmirror_do_write(start, end, bounce.data(), &done);
    }
    if (rc != -ENOENT) break;
    rc = dmirror_fault(first + done * PAGE_SIZE, end, true);
    if (rc != 0) break;
    ++cmd->faults;
  }
  cmd->cpages = done;
  return rc;
}

int Dmirror::read_back(HmmDmirrorCmd* cmd) {
  const VirtAddr start(cmd->addr);
  std::vector<std::byte> bounce(cmd->npages * PAGE_SIZE);
  uint64_t done = 0;
  int rc = 0;
  {
    MutexGuard g(mutex_);
    rc = dmirror_do_read(start, start + cmd->npages * PAGE_SIZE, bounce.data(), &done);
  }
  if (rc == 0) std::memcpy(cmd->ptr, bounce.data(), bounce.size());
  cmd->cpages = done;
  return rc;
}

// ---- migration ----

void Dmirror::dmirror_migrate_alloc_and_copy(MigrateVma& args) {
  MemorySystem& ms = device_.ms();
  for (uint64_t i = 0; i < args.npages; ++i) {
    if (!(args.src[i] & MIGRATE_PFN_MIGRATE)) continue;
    // No PFN: a hole or the zero page; the device page starts zeroed.
    Page* spage = migrate_pfn_to_page(ms, args.src[i]);
    if (spage != nullptr && is_zone_device_page(spage)) {
      MM_WARN_ON_ONCE(true, spage);  // already in a device
      continue;
    }
    Page* dpage = device_.dmirror_devmem_alloc_page();
    if (dpage == nullptr) continue;
    if (spage != nullptr) {
      copy_frame(ms, dpage, spage);
    } else {
      ms.frames().zero(page_to_pfn(dpage), PageCount(1));
    }
    device_.set_page_mirror(dpage, this);
    args.dst[i] = migrate_pfn(page_to_pfn(dpage));
    if ((args.src[i] & MIGRATE_PFN_WRITE) ||
        (spage == nullptr && any(args.vma->vm_flags & VM_WRITE)))
      args.dst[i] |= MIGRATE_PFN_WRITE;
  }
}

void Dmirror::dmirror_migrate_finalize_and_map(const MigrateVma& args) {
  MutexGuard g(mutex_);
  for (uint64_t i = 0; i < args.npages; ++i) {
    if (!(args.src[i] & MIGRATE_PFN_MIGRATE)) continue;
    Page* dpage = migrate_pfn_to_page(device_.ms(), args.dst[i]);
    if (dpage == nullptr) continue;
    pt_[vpn(args.start) + i] = Entry{dpage, (args.dst[i] & MIGRATE_PFN_WRITE) ? kWrite : kRead};
  }
}

void Dmirror::dmirror_devmem_fault_alloc_and_copy(MigrateVma& args) {
  MemorySystem& ms = device_.ms();
  for (uint64_t i = 0; i < args.npages; ++i) {
    Page* spage = migrate_pfn_to_page(ms, args.src[i]);
    if (spage == nullptr || !(args.src[i] & MIGRATE_PFN_MIGRATE)) continue;
    MM_BUG_ON(!is_zone_device_page(spage), spage);
    Folio* folio = folio_alloc(ms, GFP_HIGHUSER_MOVABLE, Order(0));
    if (folio == nullptr) continue;
    lock_new_page(&folio->page);
    erase(args.start + i * PAGE_SIZE);
    copy_frame(ms, &folio->page, spage);
    args.dst[i] = migrate_pfn(folio_pfn(folio)) | (args.src[i] & MIGRATE_PFN_WRITE);
  }
}

int Dmirror::migrate_batches(const HmmDmirrorCmd& cmd, unsigned select,
                             const std::function<void(MigrateVma&)>& between) {
  const VirtAddr start(cmd.addr);
  const VirtAddr end = start + cmd.npages * PAGE_SIZE;
  MmUser user(mm_);
  if (!user.ok()) return -EINVAL;
  ReadGuard g(mm_.mmap_lock);
  uint64_t src[kBatch], dst[kBatch];
  for (VirtAddr addr = start; addr < end;) {
    Vma* vma = mm_.vma_lookup(addr);
    if (vma == nullptr || !any(vma->vm_flags & VM_READ)) return -EINVAL;
    const VirtAddr next = std::min({end, addr + kBatch * PAGE_SIZE, vma->vm_end});
    MigrateVma args;
    args.vma = vma;
    args.src = src;
    args.dst = dst;
    args.start = addr;
    args.end = next;
    args.pgmap_owner = device_.owner();
    args.flags = select;
    if (const int rc = migrate_vma_setup(&args); rc != 0) return rc;
    between(args);
    migrate_vma_finalize(&args);
    addr = next;
  }
  return 0;
}

int Dmirror::dmirror_migrate_to_device(HmmDmirrorCmd* cmd) {
  const int rc = migrate_batches(*cmd, MIGRATE_VMA_SELECT_SYSTEM, [this](MigrateVma& args) {
    dmirror_migrate_alloc_and_copy(args);
    migrate_vma_pages(&args);
    dmirror_migrate_finalize_and_map(args);
  });
  if (rc != 0) return rc;
  // The migrated data, for verification (only what is in device memory
  // is in the mirror now).
  return read_back(cmd);
}

int Dmirror::dmirror_migrate_to_system(HmmDmirrorCmd* cmd) {
  return migrate_batches(*cmd, device_.select_flags(), [this, cmd](MigrateVma& args) {
    dmirror_devmem_fault_alloc_and_copy(args);
    migrate_vma_pages(&args);
    for (uint64_t i = 0; i < args.npages; ++i)
      cmd->cpages += (args.src[i] & MIGRATE_PFN_VALID) && (args.src[i] & MIGRATE_PFN_MIGRATE);
  });
}

// ---- snapshot ----

uint8_t Dmirror::dmirror_mkentry(uint64_t e) const {
  if (e & HMM_PFN_ERROR) return HMM_DMIRROR_PROT_ERROR;
  if (!(e & HMM_PFN_VALID)) return HMM_DMIRROR_PROT_NONE;
  MemorySystem& ms = device_.ms();
  const Pfn pfn = hmm_pfn_to_pfn(e);
  const Page* page = ms.pfn_to_page(pfn);
  uint8_t perm = HMM_DMIRROR_PROT_NONE;
  const bool local = device_.owns(page);
  if (is_device_private_page(page)) {
    perm = local ? HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL : HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE;
  } else if (is_device_coherent_page(page)) {
    perm = local ? HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL : HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE;
  } else if (ms.is_zero_pfn(pfn)) {
    perm = HMM_DMIRROR_PROT_ZERO;
  }
  perm |= (e & HMM_PFN_WRITE) ? HMM_DMIRROR_PROT_WRITE : HMM_DMIRROR_PROT_READ;
  const unsigned order = hmm_pfn_to_map_order(e);
  if (order + PAGE_SHIFT == PMD_SHIFT) {
    perm |= HMM_DMIRROR_PROT_PMD;
  } else if (order + PAGE_SHIFT == PUD_SHIFT) {
    perm |= HMM_DMIRROR_PROT_PUD;
  }
  return perm;
}

int Dmirror::dmirror_snapshot(HmmDmirrorCmd* cmd) {
  MmUser user(mm_);
  if (!user.ok()) return -EINVAL;
  const VirtAddr start(cmd->addr);
  const VirtAddr end = start + cmd->npages * PAGE_SIZE;
  auto* out = static_cast<uint8_t*>(cmd->ptr);
  uint64_t pfns[kBatch];
  for (VirtAddr addr = start; addr < end;) {
    const VirtAddr next = std::min(end, addr + kBatch * PAGE_SIZE);
    // A subscription of its own notices invalidations even where other
    // subscriptions overlap.
    SnapshotNotifier ops(mutex_);
    MmuIntervalNotifier sub;
    if (const int rc = mmu_interval_notifier_insert(&sub, mm_, addr.value(), (next - addr), &ops);
        rc != 0)
      return rc;
    HmmRange range;
    range.notifier = &sub;
    range.start = addr;
    range.end = next;
    range.hmm_pfns = pfns;
    range.dev_private_owner = device_.owner();
    const uint64_t n = (next - addr) >> PAGE_SHIFT;
    const auto deadline = std::chrono::steady_clock::now() + HMM_RANGE_DEFAULT_TIMEOUT;
    int rc = 0;
    for (;;) {
      if (std::chrono::steady_clock::now() > deadline) {
        rc = -EBUSY;
        break;
      }
      std::fill_n(pfns, n, 0);
      range.notifier_seq = mmu_interval_read_begin(&sub);
      {
        ReadGuard g(mm_.mmap_lock);
        rc = hmm_range_fault(&range);
      }
      if (rc == -EBUSY) continue;
      if (rc != 0) break;
      MutexGuard g(mutex_);
      if (mmu_interval_read_retry(&sub, range.notifier_seq)) continue;
      for (uint64_t i = 0; i < n; ++i)
        out[cmd->cpages + i] = dmirror_mkentry(pfns[i]);
      break;
    }
    mmu_interval_notifier_remove(&sub);
    if (rc != 0) return rc;
    cmd->cpages += n;
    addr = next;
  }
  return 0;
}

// ---- device-exclusive access ----

int Dmirror::dmirror_exclusive(HmmDmirrorCmd* cmd) {
  const VirtAddr start(cmd->addr);
  const VirtAddr end = start + cmd->npages * PAGE_SIZE;
  {
    MmUser user(mm_);
    if (!user.ok()) return -EINVAL;
    ReadGuard g(mm_.mmap_lock);
    Page* pages[kBatch];
    for (VirtAddr addr = start; addr < end;) {
      const VirtAddr next = std::min(end, addr + kBatch * PAGE_SIZE);
      const long got = make_device_exclusive_range(mm_, addr, next, pages, nullptr);
      uint64_t mapped = 0;
      // Map only when every page was made exclusive.
      if (got == static_cast<long>((next - addr) >> PAGE_SHIFT)) {
        MutexGuard m(mutex_);
        for (long i = 0; i < got; ++i) {
          if (pages[i] == nullptr) continue;
          pt_[vpn(addr) + static_cast<uint64_t>(i)] = Entry{pages[i], kAtomic};
          ++mapped;
        }
      }
      for (long i = 0; i < got; ++i) {
        if (pages[i] == nullptr) continue;
        folio_unlock(page_folio(pages[i]));
        put_page(pages[i]);
      }
      if (addr + mapped * PAGE_SIZE < next) return -EBUSY;
      addr = next;
    }
  }
  return read_back(cmd);
}

int Dmirror::dmirror_check_atomic(const HmmDmirrorCmd& cmd) {
  MutexGuard g(mutex_);
  const uint64_t first = cmd.addr >> PAGE_SHIFT;
  for (auto it = pt_.lower_bound(first); it != pt_.end() && it->first < first + cmd.npages; ++it) {
    if (it->second.tag == kAtomic) return -EPERM;
  }
  return 0;
}

}  // namespace pinmm
