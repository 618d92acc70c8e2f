// Compiled with pinmm_gup's include paths: gup sits above vm, but vm's
// private header is vm's alone. tests/CMakeLists.txt expects the include to
// fail.
#include "pinmm/gup/gup.h"
#include "vm/internal.h"
