// Memory hot-unplug and pins on Linux 6.12 (a cold-plugged 1 GiB DIMM
// onlined movable: memory32 and up). Settles: the errno of writing a
// block's current state; valid_zones text of online and offline blocks; a
// short-term reference (vmsplice's FOLL_GET pages in a pipe) in the block
// makes offlining spin until a signal (EINTR); io_uring's FOLL_LONGTERM
// registration migrates out of ZONE_MOVABLE so offlining then succeeds.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int write_state(int block, const char* s, int* err) {
  char path[128];
  snprintf(path, sizeof path, "/sys/devices/system/memory/memory%d/state", block);
  int fd = open(path, O_WRONLY);
  if (fd < 0) {
    *err = errno;
    return -1;
  }
  int rc = (int)write(fd, s, strlen(s));
  *err = rc < 0 ? errno : 0;
  close(fd);
  return rc < 0 ? -1 : 0;
}

static void read_file(int block, const char* file, char* out, size_t n) {
  char path[128];
  snprintf(path, sizeof path, "/sys/devices/system/memory/memory%d/%s", block, file);
  FILE* f = fopen(path, "r");
  out[0] = 0;
  if (f && fgets(out, (int)n, f)) out[strcspn(out, "\n")] = 0;
  if (f) fclose(f);
}

static long vmstat(const char* key) {
  FILE* f = fopen("/proc/vmstat", "r");
  char name[128];
  long value, found = -1;
  while (fscanf(f, "%127s %ld", name, &value) == 2)
    if (!strcmp(name, key)) found = value;
  fclose(f);
  return found;
}

// The memory block holding the page at p (from /proc/self/pagemap).
static int block_of(void* p, long block_bytes) {
  int fd = open("/proc/self/pagemap", O_RDONLY);
  unsigned long long entry = 0;
  pread(fd, &entry, 8, ((unsigned long)p / 4096) * 8);
  close(fd);
  unsigned long long pfn = entry & ((1ull << 55) - 1);
  return (int)((pfn * 4096) / (unsigned long long)block_bytes);
}

static void on_alarm(int sig) { (void)sig; }

int main(void) {
  char buf[256];
  FILE* f = fopen("/sys/devices/system/memory/block_size_bytes", "r");
  long block_bytes = 0;
  fscanf(f, "%lx", &block_bytes);
  fclose(f);

  // The DIMM's blocks start at 4 GiB's worth of boot address space (memory32).
  const int b = 32;
  read_file(b, "state", buf, sizeof buf);
  printf("ORACLE memory%d state=%s\n", b, buf);
  read_file(b, "valid_zones", buf, sizeof buf);
  printf("ORACLE memory%d valid_zones(online)=%s\n", b, buf);
  int err = 0;
  int rc = write_state(b, "online", &err);
  printf("ORACLE write online to online block rc=%d errno=%d (%s)\n", rc, err, strerror(err));
  rc = write_state(b, "online_movable", &err);
  printf("ORACLE write online_movable to online block rc=%d errno=%d\n", rc, err);
  rc = write_state(b, "bogus", &err);
  printf("ORACLE write bogus rc=%d errno=%d\n", rc, err);
  rc = write_state(b, "offline", &err);
  printf("ORACLE offline free movable block rc=%d errno=%d\n", rc, err);
  read_file(b, "valid_zones", buf, sizeof buf);
  printf("ORACLE memory%d valid_zones(offline)=%s\n", b, buf);
  rc = write_state(b, "offline", &err);
  printf("ORACLE write offline to offline block rc=%d errno=%d\n", rc, err);
  rc = write_state(b, "online_movable", &err);
  printf("ORACLE online_movable again rc=%d errno=%d\n", rc, err);

  // Fill the DIMM's blocks with user memory, then hold FOLL_GET references
  // to a page of one block in a pipe (vmsplice).
  size_t bytes = 512 << 20;
  char* mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  madvise(mem, bytes, MADV_NOHUGEPAGE);
  for (size_t i = 0; i < bytes; i += 4096) mem[i] = (char)(i >> 12);
  char* target = NULL;
  int tb = -1;
  for (size_t i = 0; i < bytes; i += 4096) {
    int blk = block_of(mem + i, block_bytes);
    if (blk >= 32) {
      target = mem + i;
      tb = blk;
      break;
    }
  }
  printf("ORACLE user page in memory%d\n", tb);
  if (target == NULL) return 0;
  int pipefd[2];
  pipe(pipefd);
  struct iovec iov = {target, 4096};
  long spliced = vmsplice(pipefd[1], &iov, 1, 0);
  printf("ORACLE vmsplice=%ld\n", spliced);
  signal(SIGALRM, on_alarm);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  alarm(2);
  long migrated0 = vmstat("pgmigrate_fail");
  rc = write_state(tb, "offline", &err);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("ORACLE offline with a GET reference rc=%d errno=%d (%s) after %.1fs pgmigrate_fail+%ld\n",
         rc, err, strerror(err), (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
         vmstat("pgmigrate_fail") - migrated0);
  read_file(tb, "state", buf, sizeof buf);
  printf("ORACLE memory%d state after the failure=%s\n", tb, buf);
  close(pipefd[0]);
  close(pipefd[1]);
  rc = write_state(tb, "offline", &err);
  printf("ORACLE offline after the pipe is closed rc=%d errno=%d\n", rc, err);
  write_state(tb, "online_movable", &err);

  // io_uring registration: a FOLL_LONGTERM pin migrates out of ZONE_MOVABLE.
  struct io_uring_params params;
  memset(&params, 0, sizeof params);
  int ring = (int)syscall(__NR_io_uring_setup, 8, &params);
  for (size_t i = 0; i < bytes; i += 4096) mem[i] = (char)(i >> 12);
  int before = block_of(target, block_bytes);
  struct iovec reg = {mem, 64 << 20};
  long m0 = vmstat("pgmigrate_success");
  rc = (int)syscall(__NR_io_uring_register, ring, IORING_REGISTER_BUFFERS, &reg, 1);
  printf("ORACLE io_uring register rc=%d migrated=%ld first page block %d -> %d\n", rc,
         vmstat("pgmigrate_success") - m0, before, block_of(mem, block_bytes));
  int all_ok = 1;
  for (int blk = 32; blk < 40; ++blk) {
    rc = write_state(blk, "offline", &err);
    if (rc != 0) {
      all_ok = 0;
      printf("ORACLE offline memory%d with io_uring pins rc=%d errno=%d\n", blk, rc, err);
    }
  }
  printf("ORACLE offline every DIMM block with the long-term pins held: %s\n",
         all_ok ? "ok" : "failed");
  int intact = 1;
  for (size_t i = 0; i < bytes; i += 4096) intact &= mem[i] == (char)(i >> 12);
  printf("ORACLE contents intact=%d\n", intact);
  return 0;
}
