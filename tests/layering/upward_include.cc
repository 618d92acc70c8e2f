// Compiled as part of pinmm_phys's users only: phys may use its own headers
// (the first include compiles) but not vm's, a layer above it (the second
// must fail). tests/CMakeLists.txt expects exactly that failure.
#include "pinmm/phys/page_alloc.h"
#include "pinmm/vm/mm.h"
