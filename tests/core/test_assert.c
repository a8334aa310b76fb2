/*
 * test_assert.c — M2P_ASSERT (src/core/assert.h) is on in the test builds (scripts/test passes
 * -DM2P_ASSERTIONS=ON; Debug and RelWithDebInfo have it by default), and a violated invariant
 * stops the process with SIGABRT and a message naming the condition and where it is; a holding
 * one does nothing. A plain release build without assertions reports a skip.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/assert.h"
#include "test.h"

int main(void)
{
    if (!m2p_assert_enabled()) {
        test_skip("the library was built without M2P_ASSERTIONS (a plain release build)");
        TEST_DONE();
    }
    int holds = 3;
    M2P_ASSERT(holds == 3);

    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        int cap = 4;
        M2P_ASSERT(cap >= 5);
        _exit(0); /* not reached when assertions are on */
    }
    close(fds[1]);
    char msg[512] = "";
    size_t n = 0;
    ssize_t r;
    while (n < sizeof msg - 1 && (r = read(fds[0], msg + n, sizeof msg - 1 - n)) > 0)
        n += (size_t)r;
    msg[n] = '\0';
    close(fds[0]);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    CHECK(strstr(msg, "assertion failed: cap >= 5") != NULL);
    CHECK(strstr(msg, "test_assert.c:") != NULL);
    TEST_DONE();
}
