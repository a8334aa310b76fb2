/*
 * test_assert.c — M2P_ASSERT (src/core/assert.h) is on in the test builds (scripts/test passes
 * -DM2P_ASSERTIONS=ON; Debug and RelWithDebInfo have it by default), and a violated invariant
 * stops the process with SIGABRT and a message naming the condition and where it is; a holding
 * one does nothing. Both in this file and in the library's own objects: m2p_array_grow
 * (src/core/buf.c) asked for zero elements of zero bytes stops in buf.c, so the library was
 * compiled with its assertions too. A plain release build without assertions reports a skip.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/assert.h"
#include "core/buf.h"
#include "test.h"

/* Run fn in a child; its stderr in msg; 1 when it died of SIGABRT. */
static int aborts(void (*fn)(void), char *msg, size_t len)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        fn();
        _exit(0); /* not reached when assertions are on */
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while (n < len - 1 && (r = read(fds[0], msg + n, len - 1 - n)) > 0)
        n += (size_t)r;
    msg[n] = '\0';
    close(fds[0]);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

static void violate_here(void)
{
    int cap = 4;
    M2P_ASSERT(cap >= 5);
}

static void violate_in_library(void)
{
    size_t cap = 0;
    (void)m2p_array_grow(NULL, &cap, 0, 0, 0);
}

int main(void)
{
    if (!m2p_assert_enabled()) {
        test_skip("the library was built without M2P_ASSERTIONS (a plain release build)");
        TEST_DONE();
    }
    int holds = 3;
    M2P_ASSERT(holds == 3);

    char msg[512];
    CHECK(aborts(violate_here, msg, sizeof msg));
    CHECK(strstr(msg, "assertion failed: cap >= 5") != NULL);
    CHECK(strstr(msg, "test_assert.c:") != NULL);

    CHECK(aborts(violate_in_library, msg, sizeof msg));
    CHECK(strstr(msg, "assertion failed: elem > 0 && need > 0") != NULL);
    CHECK(strstr(msg, "buf.c:") != NULL && strstr(msg, "m2p_array_grow") != NULL);
    TEST_DONE();
}
