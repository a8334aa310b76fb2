/*
 * quick_info.c — what yt-dlp knows about a URL without downloading its audio, for the original's
 * POST /api/extract-metadata-quick: runs `yt-dlp --ignore-config --no-playlist --skip-download
 * --dump-single-json --socket-timeout 20 -- URL` (argv, never a shell; the URL after "--"),
 * reads at most 16 MiB of JSON within 60 s, and parses it with the fetch module's parser.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audio/ytdlp.h"
#include "core/error.h"
#include "server/quick_info.h"

extern char **environ;

#define MAX_JSON (16u << 20)
#define TIMEOUT_S 60

int quick_info(const char *url, m2p_source_info *info)
{
    m2p_fetch_params fp = m2p_fetch_default_params();
    const char *prog = ytdlp_program(&fp);
    int rc = ytdlp_find(prog);
    if (rc)
        return rc;
    int out[2];
    if (pipe(out) != 0)
        return m2p_error(M2P_EIO, "pipe: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&at, 0);
    char *argv[] = {(char *)prog,
                    "--ignore-config",
                    "--no-playlist",
                    "--skip-download",
                    "--dump-single-json",
                    "--socket-timeout",
                    "20",
                    "--",
                    (char *)url,
                    NULL};
    pid_t pid;
    int sr = posix_spawnp(&pid, prog, &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(out[1]);
    if (sr != 0) {
        close(out[0]);
        return m2p_error(M2P_EIO, "cannot run %s: %s", prog, strerror(sr));
    }
    char *buf = malloc(MAX_JSON + 1);
    size_t n = 0;
    int timed_out = 0, too_big = 0;
    time_t end = time(NULL) + TIMEOUT_S;
    while (buf) {
        int left = (int)(end - time(NULL));
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        struct pollfd p = {out[0], POLLIN, 0};
        int pr = poll(&p, 1, left * 1000);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            timed_out = pr == 0;
            break;
        }
        ssize_t r = read(out[0], buf + n, MAX_JSON - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n >= MAX_JSON) {
            too_big = 1;
            break;
        }
    }
    close(out[0]);
    if (timed_out || too_big || !buf)
        kill(-pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!buf)
        return m2p_error(M2P_ENOMEM, "out of memory");
    buf[n] = 0;
    if (timed_out)
        rc = m2p_error(M2P_ETIMEOUT, "yt-dlp gave no information within %d s", TIMEOUT_S);
    else if (too_big)
        rc = m2p_error(M2P_ETOOBIG, "yt-dlp's information is over %u bytes", MAX_JSON);
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || n == 0)
        rc = m2p_error(M2P_ENETWORK, "yt-dlp could not read %s (exit status %d)", url,
                       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    else {
        memset(info, 0, sizeof *info);
        rc = ytdlp_parse_info(buf, info);
    }
    free(buf);
    return rc;
}
