// Task context of a host thread acting in the model.
//
// Linux counterpart: `current` (struct task_struct): the mm, PF_* flags such
// as PF_MEMALLOC_PIN set by memalloc_pin_save(), the CPU and NUMA node it
// runs on, and pending signals. A signal here is a cancellation flag: fatal
// (SIGKILL; what killable waits and GUP check) or plain (any signal; what
// memory offlining and FOLL_INTERRUPTIBLE check).
//
// Every host thread has a current Task: a default one created on first use,
// or one installed with CurrentTask for a scope. Thread safety: flags, mm and
// cpu are touched only by the thread running the task; signals may be sent
// from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace pinmm {

class Mm;  // vm/: the address space a task runs in

// Whom the pins a task takes are charged to (phys/pin_owners.h): the task
// itself, or a device whose driver runs in the task's context, with a
// free-form label (a memory region, a buffer name).
enum class PinOwnerKind : uint8_t { kTask, kDevice };
struct PinOwnerTag {
  PinOwnerKind kind = PinOwnerKind::kTask;
  std::string device;  // kDevice only
  std::string label;
};

// Task flags, kernel names and values (include/linux/sched.h).
enum TaskFlag : uint32_t {
  PF_MEMALLOC = 0x00000800,
  PF_MEMALLOC_NOFS = 0x00040000,
  PF_MEMALLOC_NOIO = 0x00080000,
  PF_KTHREAD = 0x00200000,
  PF_MEMALLOC_PIN = 0x10000000,
};

enum class Signal : uint8_t {
  kInterrupt = 1,  // any signal: signal_pending()
  kKill = 2,       // fatal: fatal_signal_pending() and signal_pending()
};

class Task {
 public:
  Task(int pid, std::string comm);
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;

  int pid() const { return pid_; }
  const std::string& comm() const { return comm_; }

  Mm* mm() const { return mm_; }
  void set_mm(Mm* mm) { mm_ = mm; }

  uint32_t flags() const { return flags_; }
  void set_flags(uint32_t f) { flags_ |= f; }
  void clear_flags(uint32_t f) { flags_ &= ~f; }

  // The simulated CPU the task runs on, and that CPU's NUMA node.
  int cpu() const { return cpu_; }
  int numa_node() const { return numa_node_; }
  void set_cpu(int cpu, int numa_node) {
    cpu_ = cpu;
    numa_node_ = numa_node;
  }

  // The pin-owner tag in effect (PinOwnerScope), or nullptr: the task.
  const PinOwnerTag* pin_owner_tag() const { return pin_owner_tag_; }
  void set_pin_owner_tag(const PinOwnerTag* tag) { pin_owner_tag_ = tag; }

  // Signals may be sent from any thread.
  void send_signal(Signal s) {
    signals_.fetch_or(static_cast<uint8_t>(s), std::memory_order_release);
  }
  void clear_signals() { signals_.store(0, std::memory_order_release); }
  bool signal_pending() const { return signals_.load(std::memory_order_acquire) != 0; }
  bool fatal_signal_pending() const {
    return signals_.load(std::memory_order_acquire) & static_cast<uint8_t>(Signal::kKill);
  }

 private:
  const int pid_;
  const std::string comm_;
  Mm* mm_ = nullptr;
  uint32_t flags_ = 0;
  int cpu_ = 0;
  int numa_node_ = 0;
  const PinOwnerTag* pin_owner_tag_ = nullptr;
  std::atomic<uint8_t> signals_{0};
};

// The calling thread's task.
Task& current();

// Installs `task` as the calling thread's current task for a scope.
class CurrentTask {
 public:
  explicit CurrentTask(Task& task);
  ~CurrentTask();
  CurrentTask(const CurrentTask&) = delete;
  CurrentTask& operator=(const CurrentTask&) = delete;

 private:
  Task* saved_;
};

// memalloc scopes (include/linux/sched/mm.h): save returns the previous state
// of the flag, restore puts it back, so scopes nest.
unsigned memalloc_pin_save();
void memalloc_pin_restore(unsigned flags);
unsigned memalloc_noreclaim_save();
void memalloc_noreclaim_restore(unsigned flags);

}  // namespace pinmm
