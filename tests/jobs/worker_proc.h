/*
 * worker_proc.h — `mus2pic worker` processes for the tests of many machines (included after
 * ../server/harness.h): start one on a store with the tiny fixture model (generate jobs, one
 * compute thread, -v, its log in DIR/NAME.log), or any command, signal and reap it, read its
 * log.
 */
#ifndef M2P_TEST_JOBS_WORKER_PROC_H
#define M2P_TEST_JOBS_WORKER_PROC_H

typedef struct proc {
    pid_t pid;
    char name[16];
    char log[700];
} proc;

/* Run argv (argv[0] the binary) as NAME with stdout and stderr appended to log. */
static __attribute__((unused)) int proc_spawn(proc *w, const char *name, const char *log,
                                              const char *const *argv)
{
    snprintf(w->name, sizeof w->name, "%s", name);
    snprintf(w->log, sizeof w->log, "%s", log);
    w->pid = fork();
    if (w->pid == 0) {
        FILE *f = freopen(w->log, "a", stdout);
        (void)f;
        dup2(1, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return w->pid > 0 ? 0 : -1;
}

/* Start NAME on store with leases of lease_s seconds; its data folder is DIR/NAME-data. */
static __attribute__((unused)) int worker_start(proc *w, const char *dir, const char *store,
                                                const char *name, const char *lease_s)
{
    char model[700], data[700], log[700];
    snprintf(model, sizeof model, "lcm=%s", test_fixture("sd-tiny/model"));
    snprintf(data, sizeof data, "%s/%s-data", dir, name);
    snprintf(log, sizeof log, "%s/%s.log", dir, name);
    const char *bin = test_env("M2P_BIN", "./mus2pic");
    const char *argv[] = {bin,      "worker", "--store",           store,   "--model", model,
                          "--name", name,     "--lease-s",         lease_s, "--kinds", "generate",
                          "--data", data,     "--compute-threads", "1",     "-v",      NULL};
    return proc_spawn(w, name, log, argv);
}

/* Send sig (0: none, only wait) and reap; returns the exit status (or 128 + signal), -1 when it
 * was not running. */
static __attribute__((unused)) int proc_stop(proc *w, int sig)
{
    if (w->pid <= 0)
        return -1;
    kill(w->pid, sig);
    int status = 0;
    waitpid(w->pid, &status, 0);
    w->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* 1 when the log holds needle. */
static __attribute__((unused)) int log_has(const proc *w, const char *needle)
{
    char *t = test_read_file(w->log, NULL);
    int has = t && strstr(t, needle) != NULL;
    free(t);
    return has;
}

static __attribute__((unused)) void dump(const char *path)
{
    char *t = test_read_file(path, NULL);
    fprintf(stderr, "---- %s ----\n%s\n", path, t ? t : "(none)");
    free(t);
}

#endif
