// The stress run (stress.h): actors on threads, quiescent checks, the
// final audit; and the fuzzer's single-threaded op sequences.
#include "pinmm/stress/stress.h"

#include <atomic>
#include <barrier>
#include <thread>

#include <fmt/format.h>

#include "actor.h"
#include "pinmm/phys/lru.h"
#include "pinmm/phys/pin_owners.h"

namespace pinmm::stress {

namespace {

void record(std::vector<std::string>& failed, StressResult& r) {
  r.violations += failed.size();
  for (std::string& f : failed) {
    if (r.problems.size() < 20) r.problems.push_back(std::move(f));
  }
}

// The cheap check of a quiescent point: the pins the pin-owner table
// records against the pins the actors hold.
void check_pins(Shared& s, const std::vector<std::unique_ptr<Actor>>& actors, StressResult& r) {
  uint64_t held = 0;
  for (const auto& a : actors)
    held += a->pins_held();
  const uint64_t recorded = s.ms.pin_owners().total_pins();
  if (held == recorded) return;
  std::vector<std::string> failed{
      fmt::format("pins: the actors hold {}, the pin-owner table records {}", held, recorded)};
  record(failed, r);
}

// The full check of a quiescent point (no actor is running): every
// layer's validate() and the devices', then the pins. True if all held.
bool check_quiescent(Shared& s, const std::vector<std::unique_ptr<Actor>>& actors,
                     StressResult& r) {
  const uint64_t violations = r.violations;
  lru_add_drain_all(s.ms);
  std::vector<std::string> failed;
  if (auto v = s.machine.validate(); !v.ok()) failed.push_back(v.to_string());
  for (const auto& a : actors)
    a->validate_devices(failed);
  ++r.checks;
  record(failed, r);
  check_pins(s, actors, r);
  return r.violations == violations;
}

// Everything goes; then the machine must have every page back.
void final_audit(Shared& s, std::vector<std::unique_ptr<Actor>>& actors, int64_t used_at_boot,
                 StressResult& r) {
  s.ms.injector().clear_all();  // no failure injected into the audit
  // A broken machine can block the audit's reads (a migration entry left
  // behind waits for its folio forever): it is reported, not read.
  if (check_quiescent(s, actors, r)) {
    for (auto& a : actors)
      a->verify_all();
    check_quiescent(s, actors, r);
  }
  for (auto& a : actors)
    a->teardown();
  check_quiescent(s, actors, r);
  // The huge zero folio is a cache: drop it as the shrinker would, now
  // that no process maps it.
  (void)s.vm.shrink_huge_zero_folio();
  const int64_t leaked = s.machine.used_pages() - used_at_boot;
  if (leaked != 0) {
    r.leaked_pages = static_cast<uint64_t>(std::max<int64_t>(leaked, 0));
    if (leaked < 0) {
      ++r.violations;
      r.problems.push_back(fmt::format("{} more pages free after teardown than at boot", -leaked));
    } else {
      r.problems.push_back(fmt::format("{} pages in use beyond boot after teardown", leaked));
    }
  }
}

void add_tallies(const std::vector<std::unique_ptr<Actor>>& actors, StressResult& r) {
  for (const auto& a : actors) {
    Tally& t = a->tally();
    r.ops += t.ops;
    r.lost_writes += t.lost_writes;
    r.violations += t.violations;
    for (const auto& [kind, n] : t.ops_by_kind)
      r.ops_by_kind[kind] += n;
    for (const std::string& p : t.problems) {
      if (r.problems.size() < 20) r.problems.push_back(p);
    }
  }
}

}  // namespace

std::string StressResult::summary() const {
  return fmt::format(
      "stress: {} ops in {:.1f} s, {} invariant violations, {} lost writes, {} "
      "leaked pages",
      ops, seconds, violations, lost_writes, leaked_pages);
}

StressResult run_stress(const StressOptions& opts) {
  StressResult r;
  const auto t0 = std::chrono::steady_clock::now();
  auto booted = Machine::boot(opts.machine);
  if (!booted.ok()) {
    ++r.violations;
    r.problems.push_back(fmt::format("the machine does not boot: {}", booted.error().name()));
    return r;
  }
  Shared shared(**booted, /*threaded=*/true);
  MemorySystem& ms = shared.ms;
  const int64_t used_at_boot = shared.machine.used_pages();
  std::vector<std::unique_ptr<Actor>> actors;
  for (unsigned i = 0; i < opts.threads; ++i)
    actors.push_back(std::make_unique<Actor>(shared, static_cast<int>(i)));

  // Actors run until asked to pause; at a pause every actor and this
  // thread meet, this thread checks, and they meet again to go on.
  std::atomic<bool> pause{false}, stop{false};
  std::atomic<uint64_t> ops{0};
  std::barrier sync(static_cast<std::ptrdiff_t>(opts.threads) + 1);
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < opts.threads; ++i) {
    threads.emplace_back([&, i] {
      RandomChoices choices(opts.seed * 1000003 + i);
      Actor& a = *actors[i];
      while (true) {
        if (pause.load(std::memory_order_acquire)) {
          sync.arrive_and_wait();  // stopped
          sync.arrive_and_wait();  // checked
          if (stop.load(std::memory_order_acquire)) return;
          continue;
        }
        if (a.step(choices)) ops.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  const auto deadline = t0 + opts.duration;
  auto done = [&] {
    return opts.max_ops != 0 ? ops.load(std::memory_order_relaxed) >= opts.max_ops
                             : std::chrono::steady_clock::now() >= deadline;
  };
  while (true) {
    const auto next_check = std::chrono::steady_clock::now() + opts.validate_every;
    while (!done() && std::chrono::steady_clock::now() < next_check)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const bool last = done();
    pause.store(true, std::memory_order_release);
    sync.arrive_and_wait();
    check_quiescent(shared, actors, r);
    if (opts.on_check) opts.on_check(ms, ops.load());
    pause.store(false, std::memory_order_release);
    stop.store(last, std::memory_order_release);
    sync.arrive_and_wait();
    if (last) break;
  }
  for (std::thread& t : threads)
    t.join();
  final_audit(shared, actors, used_at_boot, r);
  add_tallies(actors, r);
  actors.clear();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

StressResult run_op_sequence(std::span<const uint8_t> bytes) {
  StressResult r;
  ByteChoices choices(bytes);
  // A few small machines (validate() after every operation walks every
  // page): one or two nodes, with or without movable memory, CMA, hot-add
  // space and device memory. Small enough that mappings run it out of
  // memory too.
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(16), Bytes::MiB(choices.below(2) * 8));
  if (choices.below(2) == 1) c.nodes.push_back({Bytes::MiB(8), Bytes(0)});
  static constexpr ThpMode kThp[] = {ThpMode::kNever, ThpMode::kMadvise, ThpMode::kAlways};
  c.thp = kThp[choices.below(3)];
  if (choices.below(2) == 1) c.cma.push_back({"fuzz", Bytes::MiB(2), 0});
  c.hotplug.space = Bytes::MiB(choices.below(2) * 4);
  c.device_space = Bytes::MiB(choices.below(2) * 4);
  auto booted = Machine::boot(c);
  if (!booted.ok()) {
    ++r.violations;
    r.problems.push_back(fmt::format("a fuzz machine does not boot: {}", booted.error().name()));
    return r;
  }
  Shared shared(**booted, /*threaded=*/false);
  const int64_t used_at_boot = shared.machine.used_pages();
  std::vector<std::unique_ptr<Actor>> actors;
  actors.push_back(std::make_unique<Actor>(shared, 0));
  // The pins after every operation; every layer's validate() after every
  // kFullCheckEvery-th (it walks every page: after each one, an input ran
  // at a fraction of the speed, and a broken invariant stays broken until
  // the next check finds it).
  constexpr uint64_t kFullCheckEvery = 8;
  uint64_t done = 0;
  while (choices.more()) {
    if (!actors[0]->step(choices)) continue;
    if (++done % kFullCheckEvery == 0) {
      check_quiescent(shared, actors, r);
    } else {
      check_pins(shared, actors, r);
    }
  }
  final_audit(shared, actors, used_at_boot, r);
  add_tallies(actors, r);
  return r;
}

}  // namespace pinmm::stress
