#include "pinmm/base/errno.h"

#include <array>
#include <string>

namespace pinmm {
namespace {

struct ErrnoName {
  int code;
  std::string_view name;
};

// The errnos pinmm's interfaces return, plus the common neighbours a kernel
// developer expects to see named.
constexpr std::array<ErrnoName, 29> kNames = {{
    {EPERM, "EPERM"},
    {ENOENT, "ENOENT"},
    {ESRCH, "ESRCH"},
    {EINTR, "EINTR"},
    {EIO, "EIO"},
    {ENXIO, "ENXIO"},
    {E2BIG, "E2BIG"},
    {EBADF, "EBADF"},
    {EAGAIN, "EAGAIN"},
    {ENOMEM, "ENOMEM"},
    {EACCES, "EACCES"},
    {EFAULT, "EFAULT"},
    {EBUSY, "EBUSY"},
    {EEXIST, "EEXIST"},
    {ENODEV, "ENODEV"},
    {EINVAL, "EINVAL"},
    {ENOSPC, "ENOSPC"},
    {EMLINK, "EMLINK"},
    {ERANGE, "ERANGE"},
    {ENOSYS, "ENOSYS"},
    {EOVERFLOW, "EOVERFLOW"},
    {EOPNOTSUPP, "EOPNOTSUPP"},
    {ETIMEDOUT, "ETIMEDOUT"},
    {EREMOTEIO, "EREMOTEIO"},
    {ECANCELED, "ECANCELED"},
    {EHWPOISON, "EHWPOISON"},
    {ENOTSUPP, "ENOTSUPP"},
    {EDEADLK, "EDEADLK"},
    {ENOTEMPTY, "ENOTEMPTY"},
}};

}  // namespace

std::string Errno::name() const {
  for (const auto& n : kNames) {
    if (n.code == code_) return std::string(n.name);
  }
  return "E" + std::to_string(code_);
}

std::optional<Errno> Errno::from_name(std::string_view name) {
  for (const auto& n : kNames) {
    if (n.name == name) return Errno(n.code);
  }
  return std::nullopt;
}

}  // namespace pinmm
