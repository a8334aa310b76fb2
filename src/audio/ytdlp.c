/*
 * ytdlp.c — yt-dlp as a subprocess: posix_spawnp with an argv (never a shell), "--" before
 * the URL, audio-only formats first ("-f bestaudio/best", as the original), one video only.
 *
 * The child runs in its own process group inside a private temporary folder, so a timeout or
 * an oversize download kills yt-dlp and its ffmpeg together. stdout carries the progress lines
 * ("[download]  42.0% of ..."; --newline puts each on its own line); stderr is kept for the
 * error message. The info JSON (--write-info-json) gives id, title, uploader, artist, creator,
 * track, description, tags, categories and duration; ytdlp_parse_info also reads the cache's
 * trimmed info.json, which keeps those same names.
 *
 * This is the one yt-dlp runner: ytdlp_info (the server's quick metadata route) spawns through
 * the same ytdlp_spawn (O_CLOEXEC pipes, signals reset, own process group, the minimal
 * environment of core/child_env.c without the server's secrets), reads at most a bounded
 * output into a growable buffer (core/buf.c) and stops the group on its deadline.
 */
#define _GNU_SOURCE
#include "audio/ytdlp.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/child_env.h"
#include "core/error.h"

#define YTDLP_HINT                                                                                 \
    "Install a current yt-dlp: `pip install -U yt-dlp`, or download the release binary from "      \
    "https://github.com/yt-dlp/yt-dlp/releases/latest into ~/.local/bin and chmod +x it; "         \
    "then set MUS2PIC_YTDLP=/path/to/yt-dlp if it is not on PATH. (Debian 12's packaged "          \
    "yt-dlp is from 2023 and may no longer read today's YouTube.)"

const char *ytdlp_program(const m2p_fetch_params *p)
{
    if (p && p->ytdlp && *p->ytdlp)
        return p->ytdlp;
    const char *env = getenv("MUS2PIC_YTDLP");
    return env && *env ? env : "yt-dlp";
}

int ytdlp_find(const char *prog)
{
    if (strchr(prog, '/')) {
        struct stat st;
        if (stat(prog, &st) == 0 && S_ISREG(st.st_mode) && access(prog, X_OK) == 0)
            return 0;
        return m2p_error(M2P_ENOTFOUND, "yt-dlp program %s is missing or not executable. %s", prog,
                         YTDLP_HINT);
    }
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    const char *s = path;
    while (*s) {
        const char *e = strchr(s, ':');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        char full[4096];
        if (n && n + strlen(prog) + 2 < sizeof full) {
            snprintf(full, sizeof full, "%.*s/%s", (int)n, s, prog);
            struct stat st;
            if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0)
                return 0;
        }
        s = e ? e + 1 : s + n;
    }
    return m2p_error(M2P_ENOTFOUND, "yt-dlp was not found on PATH (program '%s'). %s", prog,
                     YTDLP_HINT);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Bytes of the regular files in dir (the download so far, .part files included). */
static long long folder_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    long long total = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char p[4096];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (lstat(p, &st) == 0 && S_ISREG(st.st_mode))
            total += st.st_size;
    }
    closedir(d);
    return total;
}

/* "[download]  42.0% of ~3.21MiB at ..." -> 42.0; -1 when the line is not a progress line. */
static double parse_progress(const char *line)
{
    if (strncmp(line, "[download]", 10) != 0)
        return -1;
    const char *s = line + 10;
    while (*s == ' ')
        s++;
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '%' || v < 0 || v > 100)
        return -1;
    return v;
}

typedef struct linebuf {
    char buf[4096];
    size_t n;
    int over_limit;  /* yt-dlp said "File is larger than max-filesize ... Aborting." */
    double last_pct; /* the last percentage yt-dlp printed */
    int canceled;    /* the progress callback asked to stop */
} linebuf;

/* Tell the caller; a nonzero answer cancels the download. */
static void report(linebuf *lb, double pct, const m2p_fetch_params *p)
{
    lb->last_pct = pct;
    if (p->progress && p->progress(pct, p->user_data))
        lb->canceled = 1;
}

static void feed_stdout(linebuf *lb, const char *data, size_t n, const m2p_fetch_params *p)
{
    for (size_t i = 0; i < n; i++) {
        char ch = data[i];
        if (ch == '\n' || ch == '\r' || lb->n == sizeof lb->buf - 1) {
            lb->buf[lb->n] = '\0';
            double pct = parse_progress(lb->buf);
            if (strstr(lb->buf, "max-filesize"))
                lb->over_limit = 1;
            if (pct >= 0)
                report(lb, pct, p);
            lb->n = 0;
            if (ch == '\n' || ch == '\r')
                continue;
        }
        lb->buf[lb->n++] = ch;
    }
}

/* Keep the last bytes of stderr. */
typedef struct tailbuf {
    char buf[8192];
    size_t n;
} tailbuf;

static void feed_tail(tailbuf *t, const char *data, size_t n)
{
    if (n >= sizeof t->buf - 1) {
        data += n - (sizeof t->buf - 1);
        n = sizeof t->buf - 1;
    }
    if (t->n + n > sizeof t->buf - 1) {
        size_t drop = t->n + n - (sizeof t->buf - 1);
        memmove(t->buf, t->buf + drop, t->n - drop);
        t->n -= drop;
    }
    memcpy(t->buf + t->n, data, n);
    t->n += n;
    t->buf[t->n] = '\0';
}

/* The most useful line of stderr: the last "ERROR:" line, else the last non-empty one. */
static void error_line(const tailbuf *t, char *out, size_t len)
{
    const char *best = NULL, *last = NULL;
    size_t best_n = 0, last_n = 0;
    const char *s = t->buf;
    while (*s) {
        const char *e = strchr(s, '\n');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        while (n && (s[n - 1] == '\r' || s[n - 1] == ' '))
            n--;
        if (n) {
            last = s, last_n = n;
            if (!strncmp(s, "ERROR:", 6))
                best = s, best_n = n;
        }
        s = e ? e + 1 : s + strlen(s);
    }
    /* A Python traceback without an ERROR: line is yt-dlp itself failing (usually too old for
     * the site): the user gets the exception line and what to do, not the stack. */
    int crashed = !best && strstr(t->buf, "Traceback (most recent call last)");
    if (!best)
        best = last, best_n = last_n;
    if (!best)
        snprintf(out, len, "(no message on stderr)");
    else if (crashed)
        snprintf(out, len,
                 "yt-dlp itself failed (%.*s); it may be too old for this site: install a "
                 "current yt-dlp and point MUS2PIC_YTDLP at it (see the README)",
                 (int)(best_n > 300 ? 300 : best_n), best);
    else
        snprintf(out, len, "%.*s", (int)(best_n > 600 ? 600 : best_n), best);
    /* control characters from a hostile program never reach a terminal or a log as-is */
    for (char *c = out; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = ' ';
}

/* src into dst, cut on a UTF-8 character boundary when it does not fit. */
static void copy_str(char *dst, size_t len, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= len) {
        n = len - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

static void array_text(json_t *arr, char *dst, size_t len)
{
    json_t *out = json_array();
    size_t i;
    json_t *v;
    if (json_is_array(arr)) {
        json_array_foreach(arr, i, v)
        {
            if (!json_is_string(v))
                continue;
            json_array_append(out, v);
            char *s = json_dumps(out, JSON_COMPACT);
            size_t n = s ? strlen(s) : len;
            free(s);
            if (n >= len) {
                json_array_remove(out, json_array_size(out) - 1);
                break;
            }
        }
    }
    char *s = json_dumps(out, JSON_COMPACT);
    copy_str(dst, len, s ? s : "[]");
    free(s);
    json_decref(out);
}

static const char *str_field(json_t *o, const char *a, const char *b)
{
    const char *v = json_string_value(json_object_get(o, a));
    if ((!v || !*v) && b)
        v = json_string_value(json_object_get(o, b));
    return v;
}

int ytdlp_parse_info(const char *text, m2p_source_info *info)
{
    json_error_t err;
    json_t *o = json_loads(text, 0, &err);
    if (!json_is_object(o)) {
        json_decref(o);
        return m2p_error(M2P_EFORMAT, "yt-dlp info JSON: %s (line %d)", err.text, err.line);
    }
    copy_str(info->id, sizeof info->id, str_field(o, "id", NULL));
    copy_str(info->title, sizeof info->title, str_field(o, "title", "fulltitle"));
    copy_str(info->uploader, sizeof info->uploader, str_field(o, "uploader", "channel"));
    const char *artist = str_field(o, "artist", "creator");
    json_t *artists = json_object_get(o, "artists");
    if ((!artist || !*artist) && json_is_array(artists) && json_array_size(artists))
        artist = json_string_value(json_array_get(artists, 0));
    copy_str(info->artist, sizeof info->artist, artist);
    copy_str(info->track, sizeof info->track, str_field(o, "track", NULL));
    copy_str(info->creator, sizeof info->creator, str_field(o, "creator", NULL));
    copy_str(info->description, sizeof info->description, str_field(o, "description", NULL));
    array_text(json_object_get(o, "tags"), info->tags_json, sizeof info->tags_json);
    array_text(json_object_get(o, "categories"), info->categories_json,
               sizeof info->categories_json);
    json_t *d = json_object_get(o, "duration");
    info->duration = json_is_number(d) && json_number_value(d) > 0 ? json_number_value(d) : 0;
    json_decref(o);
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* After a successful run: the largest finished file that is not the info JSON, and the info. */
static int collect(const char *dir, const m2p_fetch_params *p, char *audio, size_t audio_len,
                   m2p_source_info *info)
{
    DIR *d = opendir(dir);
    if (!d)
        return m2p_error(M2P_EIO, "yt-dlp folder %s: %s", dir, strerror(errno));
    long long best = -1;
    char info_path[4096] = "";
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        char full[4096];
        struct stat st;
        snprintf(full, sizeof full, "%s/%s", dir, n);
        if (n[0] == '.' || lstat(full, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (ends_with(n, ".info.json")) {
            snprintf(info_path, sizeof info_path, "%s", full);
            continue;
        }
        if (ends_with(n, ".part") || ends_with(n, ".ytdl") || ends_with(n, ".temp") ||
            strstr(n, ".part-Frag"))
            continue;
        if ((long long)st.st_size > best) {
            best = st.st_size;
            snprintf(audio, audio_len, "%s", full);
        }
    }
    closedir(d);
    if (best < 0)
        return m2p_error(M2P_EFORMAT, "yt-dlp finished but wrote no audio file");
    if (best == 0)
        return m2p_error(M2P_EFORMAT, "yt-dlp wrote an empty audio file");
    if (p->max_bytes > 0 && best > p->max_bytes)
        return m2p_error(M2P_ETOOBIG, "the download is %lld bytes, over the limit of %lld", best,
                         (long long)p->max_bytes);
    if (!info_path[0])
        return 0; /* no info: the caller keeps what it knows from the URL */
    FILE *f = fopen(info_path, "rb");
    if (!f)
        return m2p_error(M2P_EIO, "cannot read %s: %s", info_path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (sz < 0 || sz > (64L << 20)) {
        fclose(f);
        return m2p_error(M2P_ETOOBIG, "yt-dlp info JSON is too large");
    }
    char *text = malloc((size_t)sz + 1);
    size_t got = text ? fread(text, 1, (size_t)sz, f) : 0;
    fclose(f);
    if (!text)
        return m2p_error(M2P_ENOMEM, "out of memory reading the info JSON");
    text[got] = '\0';
    int rc = ytdlp_parse_info(text, info);
    free(text);
    return rc;
}

/* SIGTERM to the group, up to 1 s to go, then SIGKILL; reaps the child. */
static void kill_group(pid_t pid)
{
    kill(-pid, SIGTERM);
    double until = now_s() + 1.0;
    while (now_s() < until) {
        siginfo_t si = {0};
        if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid)
            break;
        usleep(20000);
    }
    kill(-pid, SIGKILL); /* the zombie still holds the group id, so this hits only our group */
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
}

/* The end of a run: a finished yt-dlp is reaped (its stragglers killed), an unfinished one is
 * stopped with its group (kill_group); the pipes still open in pf[2] are closed. Returns the
 * wait status (0 when it was stopped). */
static int ytdlp_finish(pid_t pid, int finished, struct pollfd pf[2])
{
    int status = 0;
    if (!finished) {
        kill_group(pid);
    } else {
        kill(-pid, SIGKILL); /* stragglers only: the leader is a zombie holding the group id */
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    }
    for (int i = 0; i < 2; i++)
        if (pf[i].fd >= 0)
            close(pf[i].fd);
    return status;
}

/* Start prog with argv (in dir when not NULL): stdin /dev/null, stdout and stderr into
 * O_CLOEXEC pipes (read ends returned non-blocking in out[0], err[0]), default signal handling
 * and an empty signal mask (the server blocks SIGTERM in its threads), its own process group,
 * and the minimal environment of core/child_env.c. */
static int ytdlp_spawn(const char *prog, const char *const *argv, const char *dir, int out[2],
                       int err[2], pid_t *pid_out)
{
    int rc;
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
        rc = m2p_error(M2P_EIO, "yt-dlp: pipe: %s", strerror(errno));
        for (int i = 0; i < 2; i++)
            if (out[i] >= 0)
                close(out[i]);
        return rc;
    }
    char **envp = m2p_child_env();
    if (!envp) {
        for (int i = 0; i < 2; i++) {
            close(out[i]);
            close(err[i]);
        }
        return M2P_ENOMEM;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    if (dir)
        posix_spawn_file_actions_addchdir_np(&fa, dir);
    sigset_t none, defs;
    sigemptyset(&none);
    sigemptyset(&defs);
    int sigs[] = {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGALRM, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(&defs, sigs[i]);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defs);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int se = posix_spawnp(&pid, prog, &fa, &attr, (char *const *)argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    m2p_child_env_free(envp);
    close(out[1]);
    close(err[1]);
    if (se != 0) {
        close(out[0]);
        close(err[0]);
        if (se == ENOENT || se == EACCES)
            return m2p_error(M2P_ENOTFOUND, "cannot run yt-dlp (%s): %s. %s", prog, strerror(se),
                             YTDLP_HINT);
        return m2p_error(M2P_EIO, "cannot run yt-dlp (%s): %s", prog, strerror(se));
    }
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    fcntl(err[0], F_SETFL, O_NONBLOCK);
    *pid_out = pid;
    return 0;
}

int ytdlp_download(const char *prog, const char *url, const char *dir, const m2p_fetch_params *p,
                   char *audio, size_t audio_len, m2p_source_info *info)
{
    int rc = ytdlp_find(prog);
    if (rc)
        return rc;
    char out_tmpl[4096], maxsize[32], sock[16];
    snprintf(out_tmpl, sizeof out_tmpl, "%s/audio.%%(ext)s", dir);
    snprintf(maxsize, sizeof maxsize, "%lld", (long long)(p->max_bytes > 0 ? p->max_bytes : 0));
    int st_s = p->timeout_s > 0 && p->timeout_s < 30 ? p->timeout_s : 30;
    snprintf(sock, sizeof sock, "%d", st_s);
    const char *argv[24];
    int n = 0;
    argv[n++] = prog;
    argv[n++] = "--ignore-config";
    argv[n++] = "--no-playlist";
    argv[n++] = "-f";
    argv[n++] = "bestaudio/best";
    argv[n++] = "--newline";
    argv[n++] = "--no-colors";
    argv[n++] = "--write-info-json";
    argv[n++] = "--no-write-playlist-metafiles";
    argv[n++] = "--socket-timeout";
    argv[n++] = sock;
    if (p->max_bytes > 0) {
        argv[n++] = "--max-filesize";
        argv[n++] = maxsize;
    }
    argv[n++] = "-o";
    argv[n++] = out_tmpl;
    argv[n++] = "--";
    argv[n++] = url;
    argv[n] = NULL;

    int out[2] = {-1, -1}, err[2] = {-1, -1};
    pid_t pid;
    if ((rc = ytdlp_spawn(prog, argv, dir, out, err, &pid)))
        return rc;

    linebuf *lb = calloc(1, sizeof *lb);
    tailbuf *tb = calloc(1, sizeof *tb);
    if (!lb || !tb) {
        kill_group(pid);
        close(out[0]);
        close(err[0]);
        free(lb);
        free(tb);
        return m2p_error(M2P_ENOMEM, "yt-dlp: out of memory");
    }
    double start = now_s();
    double deadline = start + (p->timeout_s > 0 ? p->timeout_s : 300);
    double exited_at = -1, next_size_check = start, next_tick = start + 0.2;
    int open_fds = 2;
    struct pollfd pf[2] = {{.fd = out[0], .events = POLLIN}, {.fd = err[0], .events = POLLIN}};
    enum { RUNNING, DONE, TIMEOUT, TOOBIG, CANCELED } why = RUNNING;
    long long seen = 0;
    while (why == RUNNING) {
        double now = now_s();
        if (now >= deadline) {
            why = TIMEOUT;
            break;
        }
        if (now >= next_tick) { /* a chance to cancel even when yt-dlp prints nothing */
            report(lb, lb->last_pct, p);
            next_tick = now + 0.2;
        }
        if (lb->canceled) {
            why = CANCELED;
            break;
        }
        if (p->max_bytes > 0 && now >= next_size_check) {
            seen = folder_bytes(dir);
            if (seen > p->max_bytes) {
                why = TOOBIG;
                break;
            }
            next_size_check = now + 0.1;
        }
        if (exited_at < 0) {
            siginfo_t si = {0};
            if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid)
                exited_at = now;
        }
        /* yt-dlp has exited: read what is left, but do not wait on a straggling grandchild
         * holding the pipes open for more than half a second */
        if (open_fds == 0 || (exited_at >= 0 && now - exited_at > 0.5)) {
            why = DONE;
            break;
        }
        int wait_ms = (int)((deadline - now) * 1000) + 1;
        if (wait_ms > 100)
            wait_ms = 100;
        int pr = poll(pf, 2, wait_ms);
        if (pr < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2 && pr > 0; i++) {
            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[4096];
            ssize_t r = read(pf[i].fd, buf, sizeof buf);
            if (r > 0) {
                if (i == 0)
                    feed_stdout(lb, buf, (size_t)r, p);
                else
                    feed_tail(tb, buf, (size_t)r);
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(pf[i].fd);
                pf[i].fd = -1;
                open_fds--;
            }
        }
    }
    if (why == DONE && exited_at < 0) {
        /* both pipes closed while yt-dlp runs on: wait for it within the deadline */
        while (now_s() < deadline) {
            siginfo_t si = {0};
            if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid)
                break;
            if (p->max_bytes > 0 && folder_bytes(dir) > p->max_bytes) {
                why = TOOBIG;
                break;
            }
            report(lb, lb->last_pct, p);
            if (lb->canceled) {
                why = CANCELED;
                break;
            }
            usleep(50000);
        }
        if (why == DONE && now_s() >= deadline)
            why = TIMEOUT;
    }
    int status = ytdlp_finish(pid, why == DONE, pf);
    char msg[700];
    error_line(tb, msg, sizeof msg);
    int over_limit = lb->over_limit;
    free(lb);
    free(tb);
    if (why == CANCELED)
        return m2p_error(M2P_ECANCELED, "the download was canceled; yt-dlp was stopped");
    if (why == TIMEOUT)
        return m2p_error(M2P_ETIMEOUT, "yt-dlp took longer than %d s and was stopped",
                         p->timeout_s > 0 ? p->timeout_s : 300);
    if (why == TOOBIG)
        return m2p_error(M2P_ETOOBIG,
                         "the download grew over the limit of %lld bytes and was stopped",
                         (long long)p->max_bytes);
    if (WIFSIGNALED(status))
        return m2p_error(M2P_ENETWORK, "yt-dlp was killed by signal %d: %s", WTERMSIG(status), msg);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        /* yt-dlp's --max-filesize abort says "File is larger than max-filesize" */
        if (strstr(msg, "max-filesize") || strstr(msg, "larger than max"))
            return m2p_error(M2P_ETOOBIG, "yt-dlp: %s", msg);
        return m2p_error(M2P_ENETWORK, "yt-dlp failed (exit status %d): %s",
                         WIFEXITED(status) ? WEXITSTATUS(status) : -1, msg);
    }
    if (p->progress && p->progress(100.0, p->user_data))
        return m2p_error(M2P_ECANCELED, "the download was canceled");
    rc = collect(dir, p, audio, audio_len, info);
    if (rc == M2P_EFORMAT && over_limit)
        return m2p_error(M2P_ETOOBIG, "yt-dlp: the file is larger than the limit of %lld bytes",
                         (long long)p->max_bytes);
    return rc;
}

int ytdlp_info(const char *prog, const char *url, int timeout_s, size_t max_bytes,
               m2p_source_info *info)
{
    int rc = ytdlp_find(prog);
    if (rc)
        return rc;
    const char *argv[] = {prog,     "--ignore-config", "--no-playlist", "--skip-download",
                          "--dump-single-json", "--no-colors", "--socket-timeout", "20",
                          "--",     url,               NULL};
    int out[2] = {-1, -1}, err[2] = {-1, -1};
    pid_t pid;
    if ((rc = ytdlp_spawn(prog, argv, NULL, out, err, &pid)))
        return rc;
    m2p_buf json;
    m2p_buf_init(&json, max_bytes);
    tailbuf *tb = calloc(1, sizeof *tb);
    double deadline = now_s() + (timeout_s > 0 ? timeout_s : 60);
    enum { RUNNING, DONE, TIMEOUT, TOOBIG, NOMEM } why = tb ? RUNNING : NOMEM;
    struct pollfd pf[2] = {{.fd = out[0], .events = POLLIN}, {.fd = err[0], .events = POLLIN}};
    int open_fds = 2;
    while (why == RUNNING) {
        double now = now_s();
        if (now >= deadline) {
            why = TIMEOUT;
            break;
        }
        if (open_fds == 0) {
            why = DONE;
            break;
        }
        int wait_ms = (int)((deadline - now) * 1000) + 1;
        int pr = poll(pf, 2, wait_ms > 1000 ? 1000 : wait_ms);
        if (pr < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2 && pr > 0 && why == RUNNING; i++) {
            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[16384];
            ssize_t r = read(pf[i].fd, buf, sizeof buf);
            if (r > 0) {
                if (i == 1) {
                    feed_tail(tb, buf, (size_t)r);
                } else if ((rc = m2p_buf_append(&json, buf, (size_t)r))) {
                    why = rc == M2P_ETOOBIG ? TOOBIG : NOMEM;
                }
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(pf[i].fd);
                pf[i].fd = -1;
                open_fds--;
            }
        }
    }
    /* Output closed: yt-dlp exits now; wait for that within the deadline, never longer. */
    while (why == DONE) {
        siginfo_t si = {0};
        if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid)
            break;
        if (now_s() >= deadline)
            why = TIMEOUT;
        else
            usleep(10000);
    }
    int status = ytdlp_finish(pid, why == DONE, pf);
    char msg[700] = "";
    if (tb)
        error_line(tb, msg, sizeof msg);
    free(tb);
    if (why == NOMEM)
        rc = m2p_error(M2P_ENOMEM, "out of memory reading yt-dlp's information");
    else if (why == TIMEOUT)
        rc = m2p_error(M2P_ETIMEOUT, "yt-dlp gave no information within %d s and was stopped",
                       timeout_s > 0 ? timeout_s : 60);
    else if (why == TOOBIG)
        rc = m2p_error(M2P_ETOOBIG, "yt-dlp's information is over %zu bytes; it was stopped",
                       max_bytes);
    else if (why == RUNNING) /* poll failed */
        rc = m2p_error(M2P_EIO, "yt-dlp: poll: %s", strerror(errno));
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || json.len == 0)
        rc = m2p_error(M2P_ENETWORK, "yt-dlp could not read %s (exit status %d): %s", url,
                       WIFEXITED(status) ? WEXITSTATUS(status) : -1, msg);
    else {
        memset(info, 0, sizeof *info);
        rc = ytdlp_parse_info(json.data, info);
    }
    m2p_buf_free(&json);
    return rc;
}
