#include "pinmm/base/task.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <memory>

namespace pinmm {
namespace {

thread_local Task* t_current = nullptr;
thread_local std::unique_ptr<Task> t_default;

}  // namespace

Task::Task(int pid, std::string comm) : pid_(pid), comm_(std::move(comm)) {}

Task& current() {
  if (t_current != nullptr) return *t_current;
  if (!t_default) {
    // A host thread that never installed a task: give it one named like a
    // kernel thread's comm, with the host thread id as its pid.
    t_default = std::make_unique<Task>(static_cast<int>(::syscall(SYS_gettid)), "host");
  }
  return *t_default;
}

CurrentTask::CurrentTask(Task& task) : saved_(t_current) { t_current = &task; }
CurrentTask::~CurrentTask() { t_current = saved_; }

namespace {

// Sets `flag` on the current task; returns whether it was set before.
unsigned task_flag_save(uint32_t flag) {
  Task& t = current();
  const unsigned old = t.flags() & flag;
  t.set_flags(flag);
  return old;
}

void task_flag_restore(uint32_t flag, unsigned saved) {
  Task& t = current();
  t.clear_flags(flag);
  t.set_flags(saved & flag);
}

}  // namespace

unsigned memalloc_pin_save() { return task_flag_save(PF_MEMALLOC_PIN); }
void memalloc_pin_restore(unsigned flags) { task_flag_restore(PF_MEMALLOC_PIN, flags); }
unsigned memalloc_noreclaim_save() { return task_flag_save(PF_MEMALLOC); }
void memalloc_noreclaim_restore(unsigned flags) { task_flag_restore(PF_MEMALLOC, flags); }

}  // namespace pinmm
