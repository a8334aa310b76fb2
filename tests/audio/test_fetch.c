/*
 * test_fetch.c — sources and the download cache, with no network: URL checks, a fake yt-dlp
 * (a shell script this test writes, named by MUS2PIC_YTDLP) that records its argv and then
 * succeeds, fails, hangs, writes nothing or too much; caching by video id (a second fetch runs
 * nothing), LRU eviction by size, concurrent fetches of one video; direct URLs from an
 * in-process HTTP server (200, 404, oversize with and without Content-Length); local files.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audio/cache.h"
#include "httpd.h"
#include "mus2pic.h"
#include "test.h"

#define CHOICE_SHA "ac644f9645e7c15174e4a4f8561e4d1448d7f6e59ff6b0556b310ebbced879bc"

static char *tmp;
static char cache_dir[512], fake[512], runs_file[512], argv_file[512];

static const char *fake_script =
    "#!/bin/sh\n"
    "# fake yt-dlp written by test_fetch.c\n"
    "echo run >> \"$FAKE_DIR/runs.txt\"\n"
    ": > \"$FAKE_DIR/argv.txt\"\n"
    "for a in \"$@\"; do printf '%s\\n' \"$a\" >> \"$FAKE_DIR/argv.txt\"; done\n"
    "tmpl=''; prev=''\n"
    "for a in \"$@\"; do if [ \"$prev\" = '-o' ]; then tmpl=\"$a\"; fi; prev=\"$a\"; done\n"
    "base=\"${tmpl%.*}\"\n"
    "case \"$FAKE_MODE\" in\n"
    "ok)\n"
    "  echo '[download]   0.0% of 134.30KiB'\n"
    "  echo '[download]  42.0% of 134.30KiB at 1.00MiB/s ETA 00:00'\n"
    "  cp \"$FAKE_AUDIO\" \"$base.ogg\"\n"
    "  printf '{\"id\": \"%s\", \"title\": \"Queen - Bohemian Rhapsody (Official Video)\", "
    "\"uploader\": \"Queen Official\", \"artist\": null, \"tags\": [\"rock\", \"queen\", 7], "
    "\"categories\": [\"Music\"], \"duration\": 25.5, \"formats\": [{\"url\": \"x\"}]}' "
    "\"$FAKE_ID\" > \"$base.info.json\"\n"
    "  echo '[download] 100.0% of 134.30KiB'\n"
    "  ;;\n"
    "desc)\n"
    "  cp \"$FAKE_AUDIO\" \"$base.m4a\"\n"
    "  printf '{\"id\": \"%s\", \"title\": \"Nemo\", \"uploader\": \"Music Channel\", "
    "\"creator\": \"Nightwish\", \"description\": \"Provided to YouTube\\\\n\\\\nNemo \\\\u00b7 "
    "Tarja\\\\n\\\\nReleased on: 2004-04-28\"}' \"$FAKE_ID\" > \"$base.info.json\"\n"
    "  ;;\n"
    "fail) echo 'WARNING: something' >&2; echo 'ERROR: [youtube] xyz: Video unavailable' >&2;"
    " exit 1 ;;\n"
    "crash) printf 'Traceback (most recent call last):\\n  File \"/usr/lib/python3/yt_dlp/"
    "YoutubeDL.py\", line 1, in extract\\n    raise KeyError\\nKeyError: formats\\n' >&2;"
    " exit 1 ;;\n"
    "hang) sleep 100 ;;\n"
    "nothing) exit 0 ;;\n"
    "big) head -c 300000 /dev/zero > \"$base.webm\" ;;\n"
    "stream) i=0; while [ $i -lt 400 ]; do head -c 20000 /dev/zero >> \"$base.webm.part\";"
    " sleep 0.05; i=$((i+1)); done ;;\n"
    "partial) head -c 5000 /dev/zero > \"$base.webm.part\"; echo 'ERROR: connection reset' >&2;"
    " exit 1 ;;\n"
    "esac\n";

/* argv.txt -> lines (static storage) */
static char argv_lines[64][2400];
static int read_argv(void)
{
    FILE *f = fopen(argv_file, "r");
    int n = 0;
    if (!f)
        return 0;
    while (n < 64 && fgets(argv_lines[n], sizeof argv_lines[n], f)) {
        argv_lines[n][strcspn(argv_lines[n], "\n")] = '\0';
        n++;
    }
    fclose(f);
    return n;
}

static int count_dir(const char *sub)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", cache_dir, sub);
    DIR *d = opendir(p);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static int entry_exists(const char *key)
{
    char p[700];
    struct stat st;
    snprintf(p, sizeof p, "%s/e/%s", cache_dir, key);
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static long long file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct prog_rec {
    int calls;
    double max;
    int saw42;
    int cancel_after; /* > 0: answer "cancel" from this call on */
} prog_rec;

static int on_progress(double pct, void *ud)
{
    prog_rec *r = ud;
    r->calls++;
    if (pct > r->max)
        r->max = pct;
    if (pct > 41.9 && pct < 42.1)
        r->saw42 = 1;
    return r->cancel_after > 0 && r->calls >= r->cancel_after;
}

static m2p_fetch_params params(void)
{
    m2p_fetch_params p = m2p_fetch_default_params();
    p.cache_dir = cache_dir;
    p.timeout_s = 20;
    return p;
}

static void test_url_check(void)
{
    char why[256];
    CHECK_INT(m2p_url_check("https://www.youtube.com/watch?v=dQw4w9WgXcQ", why, sizeof why), 0);
    CHECK_STR(why, "");
    CHECK_INT(m2p_url_check("HTTP://example.com/a.mp3", why, sizeof why), 0);
    CHECK_INT(m2p_url_check("https://x.org/a?b=$(id);`id`|cat", why, sizeof why), 0);
    CHECK_INT(m2p_url_check("-https://youtu.be/x", why, sizeof why), M2P_EINVAL);
    CHECK(strstr(why, "starts with '-'") != NULL);
    CHECK_INT(m2p_url_check("--exec=touch /tmp/x", why, sizeof why), M2P_EINVAL);
    CHECK(strstr(why, "option") != NULL);
    CHECK_INT(m2p_url_check("ftp://example.com/a.mp3", why, sizeof why), M2P_EINVAL);
    CHECK(strstr(why, "'ftp:'") != NULL);
    CHECK_INT(m2p_url_check("file:///etc/passwd", why, sizeof why), M2P_EINVAL);
    CHECK(strstr(why, "only http and https") != NULL);
    CHECK_INT(m2p_url_check("javascript:alert(1)", why, sizeof why), M2P_EINVAL);
    CHECK_INT(m2p_url_check("https://x.org/a b", why, sizeof why), M2P_EINVAL);
    CHECK(strstr(why, "space") != NULL);
    CHECK_INT(m2p_url_check("https://x.org/a\nb", why, sizeof why), M2P_EINVAL);
    CHECK(strstr(why, "control character") != NULL);
    CHECK_INT(m2p_url_check("https://x.org/\x1b[31m", why, sizeof why), M2P_EINVAL);
    CHECK_INT(m2p_url_check("https://user:pw@x.org/", why, sizeof why), M2P_EINVAL);
    CHECK_INT(m2p_url_check("https:///path", why, sizeof why), M2P_EINVAL);
    CHECK(strstr(why, "no host") != NULL);
    CHECK_INT(m2p_url_check("", why, sizeof why), M2P_EINVAL);
    CHECK_INT(m2p_url_check(NULL, why, sizeof why), M2P_EINVAL);
    char *lng = malloc(3000);
    strcpy(lng, "https://x.org/");
    memset(lng + 14, 'a', 2985);
    lng[2999] = '\0';
    CHECK_INT(m2p_url_check(lng, why, sizeof why), M2P_EINVAL);
    CHECK(strstr(why, "longer than 2048") != NULL);
    free(lng);
    CHECK_INT(m2p_url_check("-x", NULL, 0), M2P_EINVAL); /* why is optional */
}

static void test_rejected_before_running(void)
{
    m2p_fetch_params p = params();
    m2p_source_info info;
    char path[4096];
    setenv("FAKE_MODE", "ok", 1);
    CHECK_INT(m2p_fetch("-o/tmp/x https://youtu.be/dQw4w9WgXcQ", &p, &info, path, sizeof path),
              M2P_EINVAL);
    CHECK(strstr(m2p_errmsg(), "starts with '-'") != NULL);
    CHECK_INT(m2p_fetch("--exec", &p, &info, path, sizeof path), M2P_EINVAL);
    CHECK_INT(m2p_fetch("ftp://example.com/song.mp3", &p, &info, path, sizeof path), M2P_EINVAL);
    CHECK(strstr(m2p_errmsg(), "only http and https") != NULL);
    CHECK_INT(test_count_lines(runs_file), 0); /* nothing was spawned */
}

static void test_ytdlp_ok_and_cached(void)
{
    m2p_fetch_params p = params();
    prog_rec pr = {0};
    p.progress = on_progress;
    p.user_data = &pr;
    m2p_source_info info;
    char path[4096];
    setenv("FAKE_MODE", "ok", 1);
    setenv("FAKE_ID", "dQw4w9WgXcQ", 1);
    const char *url = "https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=PL123&t=42";
    CHECK_INT(m2p_fetch(url, &p, &info, path, sizeof path), 0);
    CHECK_STR(info.id, "dQw4w9WgXcQ");
    CHECK_STR(info.title, "Queen - Bohemian Rhapsody (Official Video)");
    CHECK_STR(info.uploader, "Queen Official");
    CHECK_STR(info.artist, "");
    CHECK_STR(info.tags_json, "[\"rock\",\"queen\"]"); /* the non-string tag is dropped */
    CHECK_STR(info.categories_json, "[\"Music\"]");
    CHECK_NEAR(info.duration, 25.5, 1e-9);
    CHECK_INT(info.from_cache, 0);
    CHECK(strstr(path, "/e/youtube-dQw4w9WgXcQ/audio.ogg") != NULL);
    CHECK_INT(file_size(path), file_size(test_fixture("audio/librosa/choice.ogg")));
    CHECK_INT(test_count_lines(runs_file), 1);
    CHECK(pr.saw42);
    CHECK_NEAR(pr.max, 100.0, 1e-9);
    /* the argv: audio first, one video, a size limit, the URL last after "--" */
    int n = read_argv();
    CHECK(n >= 6);
    CHECK_STR(argv_lines[n - 1], url);
    CHECK_STR(argv_lines[n - 2], "--");
    int has_f = 0, has_pl = 0, has_max = 0, has_info = 0;
    for (int i = 0; i + 1 < n; i++) {
        has_f |= !strcmp(argv_lines[i], "-f") && !strcmp(argv_lines[i + 1], "bestaudio/best");
        has_pl |= !strcmp(argv_lines[i], "--no-playlist");
        has_max |= !strcmp(argv_lines[i], "--max-filesize") &&
                   atoll(argv_lines[i + 1]) == (long long)p.max_bytes;
        has_info |= !strcmp(argv_lines[i], "--write-info-json");
    }
    CHECK(has_f && has_pl && has_max && has_info);
    /* the entry holds the audio and our info.json, nothing else; tmp is empty again */
    char e[700];
    snprintf(e, sizeof e, "%s/e/youtube-dQw4w9WgXcQ/info.json", cache_dir);
    CHECK(file_size(e) > 0);
    CHECK_INT(count_dir("e/youtube-dQw4w9WgXcQ"), 2);
    CHECK_INT(count_dir("tmp"), 0);

    /* the same video by another URL form: from the cache, yt-dlp not run, not even needed */
    m2p_fetch_params p2 = params();
    p2.ytdlp = "/nonexistent/yt-dlp";
    m2p_source_info info2;
    char path2[4096];
    CHECK_INT(m2p_fetch("https://youtu.be/dQw4w9WgXcQ?si=abc", &p2, &info2, path2, sizeof path2),
              0);
    CHECK_INT(info2.from_cache, 1);
    CHECK_STR(path2, path);
    CHECK_STR(info2.id, "dQw4w9WgXcQ");
    CHECK_STR(info2.title, info.title);
    CHECK_STR(info2.tags_json, info.tags_json);
    CHECK_NEAR(info2.duration, 25.5, 1e-9);
    CHECK_INT(
        m2p_fetch("https://m.youtube.com/shorts/dQw4w9WgXcQ", &p2, &info2, path2, sizeof path2), 0);
    CHECK_INT(m2p_fetch("https://music.youtube.com/watch?feature=share&v=dQw4w9WgXcQ", &p2, &info2,
                        path2, sizeof path2),
              0);
    CHECK_INT(test_count_lines(runs_file), 1);
}

/* creator and description reach the band/song rules, also from the cache's info.json */
static void test_ytdlp_creator_description(void)
{
    m2p_fetch_params p = params();
    m2p_source_info info;
    char path[4096], band[256], song[256];
    setenv("FAKE_MODE", "desc", 1);
    setenv("FAKE_ID", "NemoLive001", 1);
    int runs = test_count_lines(runs_file);
    CHECK_INT(m2p_fetch("https://youtu.be/NemoLive001", &p, &info, path, sizeof path), 0);
    CHECK_STR(info.creator, "Nightwish");
    CHECK_STR(info.artist, "Nightwish"); /* artist falls back to creator */
    CHECK_STR(info.description,
              "Provided to YouTube\n\nNemo \u00b7 Tarja\n\nReleased on: 2004-04-28");
    CHECK_INT(m2p_band_song(&info, band, sizeof band, song, sizeof song), 0);
    CHECK_STR(band, "Nightwish");
    CHECK_STR(song, "Nemo"); /* artist without a track: the title is the song */
    CHECK_INT(test_count_lines(runs_file), runs + 1);

    /* from the cache: the trimmed info.json kept both */
    m2p_source_info again;
    CHECK_INT(
        m2p_fetch("https://www.youtube.com/watch?v=NemoLive001", &p, &again, path, sizeof path), 0);
    CHECK_INT(again.from_cache, 1);
    CHECK_STR(again.creator, "Nightwish");
    CHECK_STR(again.description, info.description);
    CHECK_INT(test_count_lines(runs_file), runs + 1);

    /* creator alone names the band; with neither, the description's "Song · Band" line does
     * (its "Released on: 2004-04-28" is a date, not "Band - Song") */
    info.artist[0] = '\0';
    CHECK_INT(m2p_band_song(&info, band, sizeof band, song, sizeof song), 0);
    CHECK_STR(band, "Nightwish");
    CHECK_STR(song, "Nemo");
    info.creator[0] = '\0';
    CHECK_INT(m2p_band_song(&info, band, sizeof band, song, sizeof song), 0);
    CHECK_STR(band, "Tarja");
    CHECK_STR(song, "Nemo");
}

static void test_missing_program(void)
{
    m2p_fetch_params p = params();
    p.ytdlp = "/nonexistent/yt-dlp";
    m2p_source_info info;
    char path[4096];
    CHECK_INT(m2p_fetch("https://youtu.be/AAAAAAAAAAA", &p, &info, path, sizeof path),
              M2P_ENOTFOUND);
    CHECK(strstr(m2p_errmsg(), "/nonexistent/yt-dlp") != NULL);
    CHECK(strstr(m2p_errmsg(), "pip install -U yt-dlp") != NULL);
    CHECK(strstr(m2p_errmsg(), "MUS2PIC_YTDLP") != NULL);
    p.ytdlp = "m2p-no-such-program-xyz";
    CHECK_INT(m2p_fetch("https://youtu.be/AAAAAAAAAAA", &p, &info, path, sizeof path),
              M2P_ENOTFOUND);
    CHECK(strstr(m2p_errmsg(), "not found on PATH") != NULL);
}

/* Run the fake in a failure mode; the cache must be as it was and tmp empty. No wall-clock
 * bound: a stage that failed to stop yt-dlp shows as another code (the 2 s timeout's
 * M2P_ETIMEOUT, or the fake's own end), so the codes alone prove each stop. */
static void failing(const char *mode, int want, const char *msg_part, int64_t max_bytes)
{
    m2p_fetch_params p = params();
    p.timeout_s = 2;
    if (max_bytes)
        p.max_bytes = max_bytes;
    m2p_source_info info;
    char path[4096];
    setenv("FAKE_MODE", mode, 1);
    int entries = count_dir("e");
    int runs = test_count_lines(runs_file);
    double t0 = now_s();
    int rc = m2p_fetch("https://youtu.be/BBBBBBBBBBB", &p, &info, path, sizeof path);
    double dt = now_s() - t0;
    if (rc != want || !strstr(m2p_errmsg(), msg_part))
        fprintf(stderr, "mode %s: rc %d after %.2f s, message: %s\n", mode, rc, dt, m2p_errmsg());
    CHECK_INT(rc, want);
    CHECK(strstr(m2p_errmsg(), msg_part) != NULL);
    CHECK_STR(path, "");
    CHECK_INT(test_count_lines(runs_file), runs + 1);
    CHECK_INT(count_dir("e"), entries);
    CHECK(!entry_exists("youtube-BBBBBBBBBBB"));
    CHECK_INT(count_dir("tmp"), 0);
}

/* the progress callback cancels: a silent, hanging yt-dlp is stopped within a few ticks */
static void test_cancel(void)
{
    m2p_fetch_params p = params();
    prog_rec pr = {.cancel_after = 3};
    p.progress = on_progress;
    p.user_data = &pr;
    m2p_source_info info;
    char path[4096];
    setenv("FAKE_MODE", "hang", 1);
    int entries = count_dir("e"), runs = test_count_lines(runs_file);
    double t0 = now_s();
    CHECK_INT(m2p_fetch("https://youtu.be/CCCCCCCCCCC", &p, &info, path, sizeof path),
              M2P_ECANCELED);
    fprintf(stderr, "canceled after %.2f s\n", now_s() - t0);
    /* No wall-clock bound: without the cancel, the hanging fake ends at the 20 s timeout with
     * M2P_ETIMEOUT, so the code above proves the stop. */
    CHECK(strstr(m2p_errmsg(), "canceled") != NULL);
    CHECK_INT(pr.calls, 3);
    CHECK_INT(test_count_lines(runs_file), runs + 1);
    CHECK_INT(count_dir("e"), entries);
    CHECK(!entry_exists("youtube-CCCCCCCCCCC"));
    CHECK_INT(count_dir("tmp"), 0);
    /* canceled at yt-dlp's first progress line: whatever it wrote is not cached */
    setenv("FAKE_MODE", "ok", 1);
    setenv("FAKE_ID", "EEEEEEEEEEE", 1);
    prog_rec late = {.cancel_after = 1};
    p.user_data = &late;
    CHECK_INT(m2p_fetch("https://youtu.be/EEEEEEEEEEE", &p, &info, path, sizeof path),
              M2P_ECANCELED);
    CHECK(!entry_exists("youtube-EEEEEEEEEEE"));
    CHECK_INT(count_dir("tmp"), 0);
}

static void test_failure_modes(void)
{
    failing("fail", M2P_ENETWORK, "ERROR: [youtube] xyz: Video unavailable", 0);
    CHECK(strstr(m2p_errmsg(), "exit status 1") != NULL);
    /* yt-dlp's own Python error: its last line and what to do, not the stack */
    failing("crash", M2P_ENETWORK, "yt-dlp itself failed (KeyError: formats)", 0);
    CHECK(strstr(m2p_errmsg(), "MUS2PIC_YTDLP") != NULL);
    CHECK(strstr(m2p_errmsg(), "Traceback") == NULL && strstr(m2p_errmsg(), ".py") == NULL);
    failing("hang", M2P_ETIMEOUT, "longer than 2 s", 0);
    failing("nothing", M2P_EFORMAT, "wrote no audio file", 0);
    failing("big", M2P_ETOOBIG, "over the limit of 100000", 100000);
    failing("stream", M2P_ETOOBIG, "grew over the limit of 100000", 100000);
    failing("partial", M2P_ENETWORK, "connection reset", 0);
}

static void test_shell_metacharacters(void)
{
    char url[4096], mark[600];
    snprintf(mark, sizeof mark, "%s/pwned", tmp);
    snprintf(url, sizeof url,
             "https://www.youtube.com/watch?v=CCCCCCCCCCC&a=$(touch${IFS}%s);`touch${IFS}%s2`|"
             "touch${IFS}%s3;touch${IFS}%s4&&x>%s5",
             mark, mark, mark, mark, mark);
    m2p_fetch_params p = params();
    m2p_source_info info;
    char path[4096];
    setenv("FAKE_MODE", "ok", 1);
    setenv("FAKE_ID", "CCCCCCCCCCC", 1);
    CHECK_INT(m2p_fetch(url, &p, &info, path, sizeof path), 0);
    int n = read_argv();
    CHECK(n >= 2);
    if (n >= 2) {
        CHECK_STR(argv_lines[n - 1], url); /* one argument, byte for byte */
        CHECK_STR(argv_lines[n - 2], "--");
    }
    const char *suffix[] = {"", "2", "3", "4", "5"};
    for (int i = 0; i < 5; i++) {
        char m[800];
        snprintf(m, sizeof m, "%s%s", mark, suffix[i]);
        CHECK(access(m, F_OK) != 0);
    }
}

static void test_lru(void)
{
    /* a fresh cache that holds two entries of choice.ogg but not three */
    char dir2[600];
    snprintf(dir2, sizeof dir2, "%s/lru", tmp);
    long long one = file_size(test_fixture("audio/librosa/choice.ogg"));
    m2p_fetch_params p = params();
    p.cache_dir = dir2;
    p.cache_limit = one * 5 / 2;
    m2p_source_info info;
    char path[4096];
    setenv("FAKE_MODE", "ok", 1);
    const char *ids[] = {"DDDDDDDDDD1", "DDDDDDDDDD2", "DDDDDDDDDD1", "DDDDDDDDDD3"};
    int runs = test_count_lines(runs_file);
    for (int i = 0; i < 4; i++) {
        char url[100];
        snprintf(url, sizeof url, "https://youtu.be/%s", ids[i]);
        setenv("FAKE_ID", ids[i], 1);
        CHECK_INT(m2p_fetch(url, &p, &info, path, sizeof path), 0);
        CHECK_INT(info.from_cache, i == 2);
        /* The cache orders entries by mtime (a use touches it): give each use its own second
         * instead of sleeping between fetches, so the order never depends on the clock's grain. */
        char used[800];
        snprintf(used, sizeof used, "%s/e/youtube-%s", dir2, ids[i]);
        struct timespec when[2] = {{time(NULL) - 100 + i, 0}, {time(NULL) - 100 + i, 0}};
        CHECK_INT(utimensat(AT_FDCWD, used, when, AT_SYMLINK_NOFOLLOW), 0);
    }
    CHECK_INT(test_count_lines(runs_file), runs + 3);
    /* 2 was used least recently (1 was touched by the third fetch), so 2 went */
    char e[800];
    struct stat st;
    snprintf(e, sizeof e, "%s/e/youtube-DDDDDDDDDD1", dir2);
    CHECK(stat(e, &st) == 0);
    snprintf(e, sizeof e, "%s/e/youtube-DDDDDDDDDD2", dir2);
    CHECK(stat(e, &st) != 0);
    snprintf(e, sizeof e, "%s/e/youtube-DDDDDDDDDD3", dir2);
    CHECK(stat(e, &st) == 0);
    audio_cache c;
    CHECK_INT(audio_cache_open(&c, dir2, p.cache_limit), 0);
    int64_t total = audio_cache_size(&c);
    CHECK(total <= p.cache_limit && total > 2 * one);
    /* an entry bigger than the whole limit is kept while it is the one in use */
    c.limit = 10;
    CHECK_INT(audio_cache_evict(&c, "youtube-DDDDDDDDDD3"), 0);
    CHECK(stat(e, &st) == 0);
    snprintf(e, sizeof e, "%s/e/youtube-DDDDDDDDDD1", dir2);
    CHECK(stat(e, &st) != 0);
}

struct racer {
    int rc;
    char path[4096];
};

static void *race(void *arg)
{
    struct racer *r = arg;
    m2p_fetch_params p = params();
    m2p_source_info info;
    r->rc = m2p_fetch("https://youtu.be/EEEEEEEEEEE", &p, &info, r->path, sizeof r->path);
    return NULL;
}

static void test_concurrent(void)
{
    setenv("FAKE_MODE", "ok", 1);
    setenv("FAKE_ID", "EEEEEEEEEEE", 1);
    int runs = test_count_lines(runs_file);
    pthread_t th[3];
    struct racer r[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, race, &r[i]);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(r[i].rc, 0);
        CHECK_STR(r[i].path, r[0].path);
    }
    CHECK_INT(test_count_lines(runs_file), runs + 1); /* one download; the others waited and reused it */
}

/* ---- direct URLs ---- */

static char *choice_bytes;
static size_t choice_len;
static int song_hits;

static int h_song(struct mg_connection *c, void *ud)
{
    song_hits++;
    return test_httpd_reply(c, 200, "audio/ogg", choice_bytes, choice_len);
}

static int h_big(struct mg_connection *c, void *ud)
{
    static char zeros[300000];
    return test_httpd_reply(c, 200, "audio/mpeg", zeros, sizeof zeros);
}

static int h_big_nolength(struct mg_connection *c, void *ud)
{
    static char zeros[16384];
    mg_printf(c, "HTTP/1.1 200 OK\r\nContent-Type: audio/mpeg\r\nConnection: close\r\n\r\n");
    for (int i = 0; i < 20; i++)
        if (mg_write(c, zeros, sizeof zeros) <= 0)
            break;
    return 200;
}

static int h_empty(struct mg_connection *c, void *ud)
{
    return test_httpd_reply(c, 200, "audio/mpeg", "", 0);
}

static void test_direct(void)
{
    FILE *f = fopen(test_fixture("audio/librosa/choice.ogg"), "rb");
    CHECK(f != NULL);
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    choice_len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    choice_bytes = malloc(choice_len);
    CHECK(fread(choice_bytes, 1, choice_len, f) == choice_len);
    fclose(f);
    test_httpd *h = test_httpd_start();
    CHECK(h != NULL);
    if (!h)
        return;
    test_httpd_route(h, "/music/choice.ogg", h_song, NULL);
    test_httpd_route(h, "/big.mp3", h_big, NULL);
    test_httpd_route(h, "/chunked.mp3", h_big_nolength, NULL);
    test_httpd_route(h, "/empty.mp3", h_empty, NULL);
    char url[300];
    snprintf(url, sizeof url, "%s/music/choice.ogg?token=1", test_httpd_url(h));
    m2p_fetch_params p = params();
    prog_rec pr = {0};
    p.progress = on_progress;
    p.user_data = &pr;
    m2p_source_info info;
    char path[4096];
    setenv("FAKE_MODE", "fail", 1); /* yt-dlp must not be used for a direct audio URL */
    int runs = test_count_lines(runs_file);
    CHECK_INT(m2p_fetch(url, &p, &info, path, sizeof path), 0);
    CHECK_STR(info.id, "sha256:" CHOICE_SHA);
    CHECK_STR(info.title, "choice");
    CHECK_INT(info.from_cache, 0);
    CHECK(strstr(path, "/e/sha256-" CHOICE_SHA "/audio.ogg") != NULL);
    CHECK_INT(file_size(path), (long long)choice_len);
    CHECK_INT(song_hits, 1);
    CHECK_NEAR(pr.max, 100.0, 1e-9);
    /* again: from the cache, no request */
    CHECK_INT(m2p_fetch(url, &p, &info, path, sizeof path), 0);
    CHECK_INT(info.from_cache, 1);
    CHECK_STR(info.id, "sha256:" CHOICE_SHA);
    CHECK_INT(song_hits, 1);
    CHECK_INT(test_count_lines(runs_file), runs);

    int entries = count_dir("e");
    p.max_bytes = 100000;
    snprintf(url, sizeof url, "%s/missing.mp3", test_httpd_url(h));
    CHECK_INT(m2p_fetch(url, &p, &info, path, sizeof path), M2P_ENETWORK);
    CHECK(strstr(m2p_errmsg(), "HTTP 404") != NULL);
    snprintf(url, sizeof url, "%s/big.mp3", test_httpd_url(h));
    CHECK_INT(m2p_fetch(url, &p, &info, path, sizeof path), M2P_ETOOBIG);
    CHECK(strstr(m2p_errmsg(), "100000") != NULL);
    snprintf(url, sizeof url, "%s/chunked.mp3", test_httpd_url(h));
    CHECK_INT(m2p_fetch(url, &p, &info, path, sizeof path), M2P_ETOOBIG);
    snprintf(url, sizeof url, "%s/empty.mp3", test_httpd_url(h));
    CHECK_INT(m2p_fetch(url, &p, &info, path, sizeof path), M2P_EFORMAT);
    CHECK(strstr(m2p_errmsg(), "empty") != NULL);
    /* a port where nothing listens */
    CHECK_INT(m2p_fetch("http://127.0.0.1:1/x.mp3", &p, &info, path, sizeof path), M2P_ENETWORK);
    CHECK_INT(count_dir("e"), entries);
    CHECK_INT(count_dir("tmp"), 0);
    test_httpd_stop(h);
    free(choice_bytes);
}

static void test_local_files(void)
{
    m2p_fetch_params p = params();
    m2p_source_info info;
    char path[4096];
    CHECK_INT(m2p_fetch(test_fixture("audio/librosa/choice.ogg"), &p, &info, path, sizeof path), 0);
    CHECK_STR(info.id, "sha256:" CHOICE_SHA);
    CHECK_STR(info.title, "choice");
    char real[4096];
    CHECK(realpath(test_fixture("audio/librosa/choice.ogg"), real) != NULL);
    CHECK_STR(path, real); /* used in place */
    char missing[700];
    snprintf(missing, sizeof missing, "%s/nope.mp3", tmp);
    CHECK_INT(m2p_fetch(missing, &p, &info, path, sizeof path), M2P_ENOTFOUND);
    CHECK(strstr(m2p_errmsg(), "no such file") != NULL);
    CHECK_INT(m2p_fetch(tmp, &p, &info, path, sizeof path), M2P_EINVAL);
    CHECK(strstr(m2p_errmsg(), "folder") != NULL);
    char empty[700];
    snprintf(empty, sizeof empty, "%s/empty.wav", tmp);
    FILE *f = fopen(empty, "w");
    if (f)
        fclose(f);
    CHECK_INT(m2p_fetch(empty, &p, &info, path, sizeof path), M2P_EFORMAT);
    CHECK_INT(m2p_fetch("", &p, &info, path, sizeof path), M2P_EINVAL);
    CHECK_INT(m2p_fetch(NULL, &p, &info, path, sizeof path), M2P_EINVAL);
}

int main(void)
{
    tmp = test_tmpdir("fetch");
    CHECK(tmp != NULL);
    if (!tmp)
        TEST_DONE();
    snprintf(cache_dir, sizeof cache_dir, "%s/cache", tmp);
    snprintf(fake, sizeof fake, "%s/fake-yt-dlp", tmp);
    snprintf(runs_file, sizeof runs_file, "%s/runs.txt", tmp);
    snprintf(argv_file, sizeof argv_file, "%s/argv.txt", tmp);
    FILE *f = fopen(fake, "w");
    CHECK(f != NULL);
    fputs(fake_script, f);
    fclose(f);
    chmod(fake, 0700);
    setenv("MUS2PIC_YTDLP", fake, 1);
    setenv("FAKE_DIR", tmp, 1);
    setenv("FAKE_AUDIO", test_fixture("audio/librosa/choice.ogg"), 1);

    test_url_check();
    test_rejected_before_running();
    test_ytdlp_ok_and_cached();
    test_ytdlp_creator_description();
    test_missing_program();
    test_failure_modes();
    test_cancel();
    test_shell_metacharacters();
    test_lru();
    test_concurrent();
    test_direct();
    test_local_files();

    test_rmtree(tmp);
    free(tmp);
    TEST_DONE();
}
