/*
 * test_ytdlp_child.c — what a yt-dlp child gets from the one runner (src/audio/ytdlp.c), for
 * both of its users: the download (ytdlp_download) and the server's quick metadata route
 * (jobs/quick_info.c). A fake yt-dlp dumps what it sees:
 *  - its environment: PATH, HOME and the names MUS2PIC_CHILD_ENV adds, never the server's
 *    secrets (OPENAI_API_KEY, HF_TOKEN even when listed, MUS2PIC_TOKEN) nor other variables;
 *  - its signal state: nothing blocked or ignored although this process, like `mus2pic serve`,
 *    blocks SIGTERM and ignores SIGPIPE (else the runner's SIGTERM could not stop it);
 *  - its open pipes: only its stdout and stderr (the runner's pipes are O_CLOEXEC), besides
 *    pipes this test process itself was given without FD_CLOEXEC (by ctest or a shell).
 * And the quick route's bounds: over-long output is refused (M2P_ETOOBIG) and a silent child is
 * stopped at the timeout (M2P_ETIMEOUT).
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/ytdlp.h"
#include "mus2pic.h"
#include "jobs/quick_info.h"
#include "test.h"

static char dir[512], fake[600], dump[600];

static const char *fake_script =
    "#!/bin/sh\n"
    "# fake yt-dlp written by test_ytdlp_child.c: records what it was given, then acts\n"
    "env > \"$FAKE_DUMP.env\"\n"
    /* read by the shell itself: a forked reader would race with dash's fork-time mask */
    "while IFS= read -r l; do case \"$l\" in SigBlk*|SigIgn*) echo \"$l\";; esac; "
    "done < /proc/$$/status > \"$FAKE_DUMP.sig\"\n"
    "ls -l /proc/$$/fd > \"$FAKE_DUMP.fds\"\n"
    "tmpl=''; prev=''\n"
    "for a in \"$@\"; do if [ \"$prev\" = '-o' ]; then tmpl=\"$a\"; fi; prev=\"$a\"; done\n"
    "case \"$FAKE_MODE\" in\n"
    "info) echo '{\"id\": \"abc\", \"title\": \"Queen - Bohemian Rhapsody\", \"duration\": 5}' ;;\n"
    "download) base=\"${tmpl%.*}\"; head -c 5000 /dev/urandom > \"$base.webm\";\n"
    "  echo '{\"id\": \"abc\", \"title\": \"Downloaded\"}' > \"$base.info.json\" ;;\n"
    "big) head -c 3000000 /dev/zero | tr '\\0' ' ' ;;\n"
    "silent) exec sleep 300 ;;\n"
    "esac\n";

/* The fake's record "<dump>.<what>" as a string (caller frees). */
static char *record(const char *what)
{
    char p[700];
    snprintf(p, sizeof p, "%s.%s", dump, what);
    char *s = test_read_file(p, NULL);
    CHECK(s != NULL);
    return s;
}

static int has_var(const char *env, const char *name)
{
    size_t n = strlen(name);
    for (const char *l = env; l && *l;) {
        if (!strncmp(l, name, n) && l[n] == '=')
            return 1;
        const char *e = strchr(l, '\n');
        l = e ? e + 1 : l + strlen(l);
    }
    return 0;
}

/* 1 when this process holds pipe inode (as "pipe:[N]") on an fd a child would inherit. */
static int inherited_here(const char *pipe_name)
{
    for (int fd = 0; fd < 1024; fd++) {
        int fl = fcntl(fd, F_GETFD);
        if (fl < 0 || (fl & FD_CLOEXEC))
            continue;
        char p[64], target[128];
        snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(p, target, sizeof target - 1);
        if (n > 0) {
            target[n] = '\0';
            if (!strcmp(target, pipe_name))
                return 1;
        }
    }
    return 0;
}

/* Distinct pipes in the child's fd listing that it did not inherit through this process. */
static int child_pipes(const char *fds)
{
    char seen[16][64];
    int n = 0;
    for (const char *s = fds; s && (s = strstr(s, "pipe:[")); s++) {
        char name[64];
        size_t len = strcspn(s, "\n");
        snprintf(name, sizeof name, "%.*s", (int)(len < 63 ? len : 63), s);
        int dup = 0;
        for (int i = 0; i < n; i++)
            dup |= !strcmp(seen[i], name);
        if (!dup && !inherited_here(name) && n < 16)
            snprintf(seen[n++], sizeof seen[0], "%s", name);
    }
    return n;
}

static void check_child(const char *who)
{
    fprintf(stderr, "checking what the child of %s saw\n", who);
    char *env = record("env"), *sig = record("sig"), *fds = record("fds");
    CHECK(has_var(env, "PATH"));
    CHECK(has_var(env, "HOME"));
    CHECK(has_var(env, "FAKE_MODE"));
    CHECK(has_var(env, "KEEP_ME"));
    CHECK(!has_var(env, "OPENAI_API_KEY"));
    CHECK(!has_var(env, "HF_TOKEN"));
    CHECK(!has_var(env, "MUS2PIC_TOKEN"));
    CHECK(!has_var(env, "AWS_SECRET_ACCESS_KEY"));
    CHECK(!has_var(env, "M2P_UNRELATED"));
    CHECK(env && !strstr(env, "sk-test-secret"));
    CHECK(sig && strstr(sig, "SigBlk:\t0000000000000000"));
    /* the standard signals 1-31 (glibc's own real-time ones may stay as they were) */
    const char *ign = sig ? strstr(sig, "SigIgn:\t") : NULL;
    unsigned long long ignored = ign ? strtoull(ign + 8, NULL, 16) : ~0ull;
    CHECK((ignored & 0x7fffffffull) == 0);
    if (!sig || !strstr(sig, "SigBlk:\t0000000000000000") || (ignored & 0x7fffffffull))
        fprintf(stderr, "child signal state: %s", sig ? sig : "");
    int pipes = child_pipes(fds); /* its stdout and stderr */
    if (pipes != 2)
        fprintf(stderr, "child fds:\n%s", fds ? fds : "");
    CHECK_INT(pipes, 2);
    free(env);
    free(sig);
    free(fds);
    char p[700];
    snprintf(p, sizeof p, "%s.env", dump);
    unlink(p);
}

int main(void)
{
    char *tmp = test_tmpdir("ytdlp-child");
    snprintf(dir, sizeof dir, "%s", tmp);
    snprintf(fake, sizeof fake, "%s/yt-dlp", dir);
    snprintf(dump, sizeof dump, "%s/seen", dir);
    FILE *f = fopen(fake, "w");
    CHECK(f != NULL);
    if (!f)
        TEST_DONE();
    fputs(fake_script, f);
    fclose(f);
    chmod(fake, 0755);

    /* the server's state: secrets in the environment, SIGTERM blocked, SIGPIPE ignored */
    setenv("OPENAI_API_KEY", "sk-test-secret", 1);
    setenv("HF_TOKEN", "hf_test", 1);
    setenv("MUS2PIC_TOKEN", "tok", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "aws", 1);
    setenv("M2P_UNRELATED", "x", 1);
    setenv("KEEP_ME", "1", 1);
    setenv("FAKE_DUMP", dump, 1);
    setenv("MUS2PIC_CHILD_ENV", "FAKE_*,KEEP_ME,HF_TOKEN", 1);
    setenv("MUS2PIC_YTDLP", fake, 1);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* the quick metadata route */
    setenv("FAKE_MODE", "info", 1);
    m2p_source_info info;
    CHECK_INT(jobs_quick_info("https://youtu.be/abcdefghijk", &info), 0);
    CHECK_STR(info.title, "Queen - Bohemian Rhapsody");
    check_child("quick_info");

    /* the download */
    setenv("FAKE_MODE", "download", 1);
    char work[600], audio[1024];
    snprintf(work, sizeof work, "%s/work", dir);
    mkdir(work, 0700);
    m2p_fetch_params p = m2p_fetch_default_params();
    p.timeout_s = 120;
    memset(&info, 0, sizeof info);
    CHECK_INT(ytdlp_download(fake, "https://youtu.be/abcdefghijk", work, &p, audio, sizeof audio,
                             &info),
              0);
    CHECK(strstr(audio, "audio.webm") != NULL);
    CHECK_STR(info.title, "Downloaded");
    check_child("ytdlp_download");

    /* bounds of the quick route: output over the limit, a child that says nothing */
    setenv("FAKE_MODE", "big", 1);
    CHECK_INT(ytdlp_info(fake, "https://youtu.be/abcdefghijk", 120, 100000, &info), M2P_ETOOBIG);
    CHECK(strstr(m2p_errmsg(), "100000") != NULL);
    setenv("FAKE_MODE", "silent", 1);
    CHECK_INT(ytdlp_info(fake, "https://youtu.be/abcdefghijk", 1, 100000, &info), M2P_ETIMEOUT);
    CHECK(strstr(m2p_errmsg(), "within 1 s") != NULL);

    test_rmtree(tmp);
    free(tmp);
    TEST_DONE();
}
