// The built-in scenarios (`pinmm scenarios`; `pinmm run` runs "default").
#include <algorithm>

#include "pinmm/scenario/scenario.h"

namespace pinmm {

namespace {

constexpr const char* kDefault = R"yaml(
scenario: default
description: >-
  An RDMA NIC long-term pins a process's buffers on a machine with movable
  memory; then every movable memory block is offlined and the whole CMA area
  allocated. Everything succeeds because FOLL_LONGTERM migrated the pinned
  pages out of ZONE_MOVABLE and CMA before pinning them.
seed: 1
machine:
  memory: 1GiB
  movable: 512MiB
  block_size: 128MiB
  cma: [{name: reserved, size: 64MiB}]
  thp: always
processes:
  - name: app
    mappings:
      - {name: buffers, kind: anon, size: 64MiB, thp: false}
      - {name: heap, kind: anon, size: 128MiB}
devices:
  - {name: rdma0, type: rdma_nic}
steps:
  - name: the application fills its buffers and its heap
    write: {mapping: app.buffers}
  - write: {mapping: app.heap}
  - snapshot: {label: before registration}
  - name: rdma0 registers the buffers (ib_umem_get, FOLL_LONGTERM | FOLL_WRITE)
    register: {device: rdma0, mapping: app.buffers, as: mr1}
    expect: {result: ok, value: 16384}
  - name: the NIC DMAs into the registered buffers
    dma: {region: mr1, rounds: 2}
  - snapshot: {label: after registration}
  - name: every movable memory block goes offline
    offline: {blocks: movable, retries: 100}
    expect: {result: ok, value: 4}
  - name: a driver allocates the whole CMA area
    cma_alloc: {area: reserved, count: all, as: frame_buffer}
    expect: {result: ok, value: 16384}
  - snapshot: {label: 'movable memory offline, CMA allocated'}
  - name: DMA still lands where the CPU looks
    dma: {region: mr1}
  - read: {mapping: app.heap}
  - read: {mapping: app.buffers}
  - cma_release: {alloc: frame_buffer}
  - online: {blocks: offline, zone: online_movable}
  - deregister: {region: mr1}
expect:
  no_data_lost: true
  no_pages_leaked: true
  counters:
    delta:pgmigrate_success: ">= 16384"
    delta:pgmigrate_fail: 0
    delta:cma_alloc_success: 1
  zones:
    - {node: 0, zone: movable, managed: 131072}
  blocks:
    - {blocks: movable, state: online}
)yaml";

constexpr const char* kLongtermOff = R"yaml(
scenario: longterm-off
description: >-
  The default scenario with the long-term pin policy off (pins stay where
  the pages lie, as before Linux 5.13): the NIC's pins sit in ZONE_MOVABLE,
  so offlining the movable blocks fails and the report
  names the pinner (the kernel would retry until a signal; the scenario
  gives up after 3 attempts); once the region is deregistered, offlining
  succeeds.
seed: 1
machine:
  memory: 1GiB
  movable: 512MiB
  block_size: 128MiB
  thp: always
  longterm_pin_policy: in-place
processes:
  - name: app
    mappings:
      - {name: buffers, kind: anon, size: 64MiB, thp: false}
devices:
  - {name: rdma0, type: rdma_nic}
steps:
  - write: {mapping: app.buffers}
  - name: rdma0 registers the buffers; nothing is migrated first
    register: {device: rdma0, mapping: app.buffers, as: mr1}
  - snapshot: {label: pinned in place}
  - name: offlining the movable blocks gives up after 3 migration attempts
    offline: {blocks: movable, retries: 3}
    expect: EBUSY
  - online: {blocks: offline, zone: online_movable}
  - deregister: {region: mr1}
  - name: without the pins every movable block goes offline
    offline: {blocks: movable, retries: 100}
    expect: {result: ok, value: 4}
  - online: {blocks: offline, zone: online_movable}
  - read: {mapping: app.buffers}
expect:
  no_data_lost: true
  no_pages_leaked: true
  blocks:
    - {blocks: movable, state: online}
)yaml";

constexpr const char* kCmaVsPins = R"yaml(
scenario: cma-vs-pins
description: >-
  User memory fills a CMA area. A short-term pin over it makes cma_alloc
  fail and the report names the pinner; after the unpin the allocation
  succeeds. A long-term pin of the same memory migrates it out of CMA
  first, so cma_alloc succeeds with the pin held.
seed: 2
machine:
  memory: 128MiB
  block_size: 128MiB
  cma: [{name: reserved, size: 48MiB}]
  thp: never
processes:
  - name: app
    mappings:
      - {name: data, kind: anon, size: 64MiB}
steps:
  - write: {mapping: app.data}
  - name: an O_DIRECT-style short-term pin of all of it
    pin: {mapping: app.data, as: short, write: true, label: O_DIRECT read}
  - name: cma_alloc meets the pinned pages
    cma_alloc: {area: reserved, count: all, as: c1}
    expect: ENOMEM
  - unpin: {pin: short}
  - cma_alloc: {area: reserved, count: all, as: c2}
  - cma_release: {alloc: c2}
  - name: a long-term pin migrates the pages out of CMA first
    pin: {mapping: app.data, as: long, longterm: true, label: vfio map}
  - cma_alloc: {area: reserved, count: all, as: c3}
  - snapshot: {label: 'long-term pinned, CMA allocated'}
  - cma_release: {alloc: c3}
  - unpin: {pin: long}
  - read: {mapping: app.data}
expect:
  no_data_lost: true
  no_pages_leaked: true
  counters:
    delta:cma_alloc_success: 2
    delta:cma_alloc_fail: 1
)yaml";

constexpr const char* kHmmMirror = R"yaml(
scenario: hmm-mirror
description: >-
  A GPU works on a process's memory without pinning it: it mirrors the
  address space with hmm_range_fault and migrates hot ranges into its
  device-private memory with migrate_vma; CPU faults bring pages back, and
  the CPU and the GPU keep working on the data at the same time.
seed: 3
machine:
  memory: 512MiB
  block_size: 128MiB
  device_space: 128MiB
  thp: never
processes:
  - name: app
    mappings:
      - {name: tensors, kind: anon, size: 16MiB}
      - {name: scratch, kind: anon, size: 8MiB}
devices:
  - {name: gpu0, type: gpu, hot_threshold: 2}
steps:
  - write: {mapping: app.tensors}
  - name: the GPU reads the tensors (mirrored)
    mirror: {device: gpu0, mapping: app.tensors, op: read}
  - name: the second pass makes them hot; they move into device memory
    mirror: {device: gpu0, mapping: app.tensors, op: read}
  - snapshot: {label: tensors in device memory}
  - name: the GPU updates the tensors in its memory
    mirror: {device: gpu0, mapping: app.tensors, op: write}
  - name: the CPU reads them back (device-private faults migrate them to RAM)
    read: {mapping: app.tensors}
  - concurrent:
      - name: the GPU works on the tensors
        mirror: {device: gpu0, mapping: app.tensors, op: write}
      - name: the CPU fills its scratch space
        write: {mapping: app.scratch}
  - read: {mapping: app.tensors}
  - read: {mapping: app.scratch}
expect:
  no_data_lost: true
  no_pages_leaked: true
  counters:
    delta:pgmigrate_fail: 0
)yaml";

constexpr const char* kCowAndPins = R"yaml(
scenario: cow-and-pins
description: >-
  fork() and pins: pages a parent has pinned for DMA are copied for the
  child at fork time, so an O_DIRECT read into the parent's pinned buffer
  after the fork reaches the parent only, and the child's writes never
  reach the parent (no leak in either direction, as the kernel's cow
  selftests require).
seed: 4
machine:
  memory: 256MiB
  block_size: 128MiB
  thp: always
processes:
  - name: parent
    mappings:
      - {name: buf, kind: anon, size: 4MiB, thp: false}
      - {name: thp, kind: anon, size: 4MiB, thp: true}
      - {name: shared, kind: shared-anon, size: 1MiB}
devices:
  - {name: disk0, type: direct_io}
steps:
  - write: {mapping: parent.buf}
  - write: {mapping: parent.thp}
  - write: {mapping: parent.shared}
  - name: the parent pins 1MiB of its buffer for DMA
    pin: {mapping: parent.buf, size: 1MiB, as: dma, write: true, label: io_uring fixed buffer}
  - fork: {process: parent, child: child}
  - name: the child writes everything (COW breaks, shared memory stays shared)
    write: {mapping: child.buf}
  - write: {mapping: child.thp}
  - write: {mapping: child.shared}
  - name: an O_DIRECT read into the parent's pinned buffer
    direct_io: {device: disk0, mapping: parent.buf, size: 1MiB, direction: read}
  - read: {mapping: parent.buf}
  - read: {mapping: child.buf}
  - read: {mapping: parent.thp}
  - read: {mapping: parent.shared}
  - unpin: {pin: dma}
  - exit: {process: child}
  - read: {mapping: parent.buf}
expect:
  no_data_lost: true
  no_pages_leaked: true
)yaml";

constexpr const char* kFoundation = R"yaml(
scenario: foundation
description: >-
  The whole stack at once (it was `pinmm demo`): unmovable kernel
  allocations of mixed orders; four processes fault in their heaps (THPs
  where aligned) and shared memory; one forks and its child breaks
  copy-on-write; heaps are half unmapped, the child exits, some kernel
  memory is freed. Then an RDMA NIC long-term pins one process's memory
  (FOLL_LONGTERM migrates it out of ZONE_MOVABLE first) while an O_DIRECT
  read holds a short-term pin on another's. Offlining the movable blocks
  stops at the short-term pin and names it; the CMA area is allocated
  whole; once the read completes every movable block goes offline, and no
  data is lost.
seed: 5
machine:
  memory: 1GiB
  movable: 512MiB
  block_size: 128MiB
  cma: [{name: reserved, size: 64MiB}]
  thp: always
processes:
  - name: p0
    mappings:
      - {name: heap, size: 64MiB}
      - {name: shared, kind: shared-anon, size: 8MiB}
  - {name: p1, mappings: [{name: heap, size: 64MiB}]}
  - {name: p2, mappings: [{name: heap, size: 64MiB}]}
  - {name: p3, mappings: [{name: heap, size: 64MiB}]}
devices:
  - {name: rdma0, type: rdma_nic}
steps:
  - name: 'kernel memory: a receive ring, a queue, caches, a BPF map'
    kernel_alloc: {size: 2MiB, as: rx_ring, label: net-rx-ring}
  - kernel_alloc: {size: 64KiB, as: sq, label: nvme-sq}
  - kernel_alloc: {size: 16KiB, as: dentries, label: dentry-cache}
  - kernel_alloc: {size: 4KiB, as: inodes, label: inode-cache}
  - kernel_alloc: {size: 4MiB, as: bpf, label: bpf-map}
  - name: four processes fault in their heaps
    write: {mapping: p0.heap}
  - write: {mapping: p1.heap}
  - write: {mapping: p2.heap}
  - write: {mapping: p3.heap}
  - write: {mapping: p0.shared}
  - name: p0 forks; the child writes half its heap (COW) and the shared memory
    fork: {process: p0, child: child}
  - write: {mapping: child.heap, size: 32MiB}
  - write: {mapping: child.shared}
  - name: every process unmaps half its heap
    munmap: {mapping: p0.heap, offset: 32MiB}
  - munmap: {mapping: p1.heap, offset: 32MiB}
  - munmap: {mapping: p2.heap, offset: 32MiB}
  - munmap: {mapping: p3.heap, offset: 32MiB}
  - exit: {process: child}
  - kernel_free: {alloc: sq}
  - kernel_free: {alloc: inodes}
  - snapshot: {label: before the pins}
  - name: rdma0 registers p1's heap (ib_umem_get, FOLL_LONGTERM | FOLL_WRITE)
    register: {device: rdma0, mapping: p1.heap, size: 32MiB, as: mr1}
    expect: {value: 8192}
  - dma: {region: mr1}
  - name: an O_DIRECT read into p2's heap holds a short-term pin
    pin: {mapping: p2.heap, size: 4KiB, as: dio, label: O_DIRECT read}
  - snapshot: {label: pinned}
  - name: offlining the movable blocks stops at the short-term pin, and names it
    offline: {blocks: movable, retries: 10}
    expect: EBUSY
  - name: a driver allocates the whole CMA area
    cma_alloc: {area: reserved, count: all, as: frame_buffer}
    expect: {value: 16384}
  - cma_release: {alloc: frame_buffer}
  - name: the read completes
    unpin: {pin: dio}
  - name: now every movable block goes offline
    offline: {blocks: movable, retries: 10}
  - snapshot: {label: movable memory offline}
  - dma: {region: mr1}
  - read: {mapping: p0.heap, size: 32MiB}
  - read: {mapping: p0.shared}
  - read: {mapping: p1.heap, size: 32MiB}
  - read: {mapping: p2.heap, size: 32MiB}
  - read: {mapping: p3.heap, size: 32MiB}
  - online: {blocks: offline}
  - deregister: {region: mr1}
  - kernel_free: {alloc: rx_ring}
  - kernel_free: {alloc: dentries}
  - kernel_free: {alloc: bpf}
expect:
  no_data_lost: true
  no_pages_leaked: true
  counters:
    delta:pgmigrate_success: ">= 8192"
  blocks: [{blocks: movable, state: online}]
)yaml";

constexpr BuiltinScenario kBuiltins[] = {
    {"default", "RDMA long-term pins, then offlining and CMA succeed (pins migrated first)",
     kDefault},
    {"longterm-off",
     "the same with the long-term pin policy off: offlining fails, names the pinner", kLongtermOff},
    {"cma-vs-pins", "short-term pins block cma_alloc; long-term pins migrate out of CMA first",
     kCmaVsPins},
    {"hmm-mirror", "a GPU mirrors and migrates a process's memory while the CPU faults",
     kHmmMirror},
    {"cow-and-pins", "fork, COW and pinned pages: no leak in either direction", kCowAndPins},
    {"foundation",
     "kernel and user memory, fork, unmap; pins against offlining and CMA, who pins named",
     kFoundation},
};

}  // namespace

std::span<const BuiltinScenario> builtin_scenarios() { return kBuiltins; }

const BuiltinScenario* find_builtin_scenario(std::string_view name) {
  auto it = std::find_if(std::begin(kBuiltins), std::end(kBuiltins),
                         [&](const BuiltinScenario& b) { return name == b.name; });
  return it == std::end(kBuiltins) ? nullptr : it;
}

}  // namespace pinmm
