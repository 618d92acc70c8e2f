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

unsigned memalloc_pin_save() {
  Task& t = current();
  const unsigned old = t.flags() & PF_MEMALLOC_PIN;
  t.set_flags(PF_MEMALLOC_PIN);
  return old;
}

void memalloc_pin_restore(unsigned flags) {
  Task& t = current();
  t.clear_flags(PF_MEMALLOC_PIN);
  t.set_flags(flags & PF_MEMALLOC_PIN);
}

unsigned memalloc_noreclaim_save() {
  Task& t = current();
  const unsigned old = t.flags() & PF_MEMALLOC;
  t.set_flags(PF_MEMALLOC);
  return old;
}

void memalloc_noreclaim_restore(unsigned flags) {
  Task& t = current();
  t.clear_flags(PF_MEMALLOC);
  t.set_flags(flags & PF_MEMALLOC);
}

}  // namespace pinmm
