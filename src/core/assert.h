/*
 * assert.h — M2P_ASSERT(cond): an invariant the code relies on (a buffer's size, a bound that
 * an earlier check guarantees), after SQLite's assert(): it documents what must hold and, in
 * debug and test builds (M2P_ASSERTIONS, CMakeLists.txt), stops the program at the first
 * violation with the condition, file and line, instead of corrupting memory later. In release
 * builds it compiles to nothing and cond is not evaluated, so cond must have no side effects.
 */
#ifndef M2P_CORE_ASSERT_H
#define M2P_CORE_ASSERT_H

/* Print "mus2pic: assertion failed: ..." to stderr and abort(). */
void m2p_assert_fail(const char *cond, const char *file, int line, const char *func)
    __attribute__((noreturn));
/* 1 when the library was built with assertions on. */
int m2p_assert_enabled(void);

#if defined(M2P_ASSERTIONS) && M2P_ASSERTIONS
#define M2P_ASSERT(cond)                                                                           \
    ((cond) ? (void)0 : m2p_assert_fail(#cond, __FILE__, __LINE__, __func__))
#else
#define M2P_ASSERT(cond) ((void)sizeof(!(cond)))
#endif

#endif
