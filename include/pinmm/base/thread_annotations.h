// Clang thread-safety analysis attributes (-Wthread-safety). No-ops elsewhere.
// Every field guarded by a lock says GUARDED_BY, every function that needs a
// lock says REQUIRES; the clang CI build turns violations into errors.
#pragma once

#if defined(__clang__)
#define PINMM_TSA(x) __attribute__((x))
#else
#define PINMM_TSA(x)
#endif

#define CAPABILITY(x) PINMM_TSA(capability(x))
#define SCOPED_CAPABILITY PINMM_TSA(scoped_lockable)
#define GUARDED_BY(x) PINMM_TSA(guarded_by(x))
#define PT_GUARDED_BY(x) PINMM_TSA(pt_guarded_by(x))
#define ACQUIRED_BEFORE(...) PINMM_TSA(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) PINMM_TSA(acquired_after(__VA_ARGS__))
#define REQUIRES(...) PINMM_TSA(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) PINMM_TSA(requires_shared_capability(__VA_ARGS__))
#define ACQUIRE(...) PINMM_TSA(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) PINMM_TSA(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) PINMM_TSA(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) PINMM_TSA(release_shared_capability(__VA_ARGS__))
#define RELEASE_GENERIC(...) PINMM_TSA(release_generic_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) PINMM_TSA(try_acquire_capability(__VA_ARGS__))
#define TRY_ACQUIRE_SHARED(...) PINMM_TSA(try_acquire_shared_capability(__VA_ARGS__))
#define EXCLUDES(...) PINMM_TSA(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) PINMM_TSA(assert_capability(x))
#define ASSERT_SHARED_CAPABILITY(x) PINMM_TSA(assert_shared_capability(x))
#define RETURN_CAPABILITY(x) PINMM_TSA(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS PINMM_TSA(no_thread_safety_analysis)
