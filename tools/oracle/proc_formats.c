// Prints /proc/buddyinfo, pagetypeinfo, zoneinfo (first zone blocks) and the
// vmstat key list, each line prefixed ORACLE, to compare layouts with pinmm's.
#include <stdio.h>
#include <string.h>

static void dump(const char* path, int max_lines) {
  FILE* f = fopen(path, "r");
  char line[512];
  int n = 0;
  printf("ORACLE ==== %s\n", path);
  while (f && fgets(line, sizeof line, f) && n++ < max_lines) {
    line[strcspn(line, "\n")] = 0;
    printf("ORACLE|%s|\n", line);
  }
  if (f) fclose(f);
}

int main(void) {
  dump("/proc/buddyinfo", 20);
  dump("/proc/pagetypeinfo", 60);
  dump("/proc/zoneinfo", 400);
  dump("/proc/vmstat", 300);
  dump("/proc/sys/vm/min_free_kbytes", 2);
  return 0;
}
