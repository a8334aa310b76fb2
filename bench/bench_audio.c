/*
 * bench_audio.c — speed and memory of the audio analysis (numbers go to BENCHMARKS.md).
 *
 *   features for 60 s after decoding (target <= 0.3 s on one core)
 *   decode + features for a 4-minute song (target <= 1.5 s)
 *   peak RSS for decode + features of a 10-minute song (target <= 150 MB; measured in a
 *   child process so that each run starts from a clean heap)
 *   a 3-hour FLAC: decode + features of a 60 s window at 5 s, and decode of 10 s at 2 h (decoding
 *   stops after the window; a long offset seeks; these were wall-clock asserts in
 *   tests/audio/test_audio_badinput.c)
 *
 * Songs are made from the nutcracker fixture with the ffmpeg CLI (44.1 kHz stereo MP3, looped).
 * Usage: bench_audio [--features-only] [fixtures-dir]   (default $M2P_FIXTURES or
 * ../shared/fixtures); --features-only prints the first figure and stops (for comparing two
 * builds, run alternately).
 */
#include "mus2pic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int make_song(const char *src, const char *dst, int seconds)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "ffmpeg -v error -y -stream_loop -1 -i '%s' -t %d -ar 44100 -ac 2 -c:a libmp3lame "
             "-b:a 192k '%s'",
             src, seconds, dst);
    return system(cmd);
}

static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Returns wall seconds for decode + features; *feat_s gets the CPU seconds of the features
 * (one thread: the analysis is single-threaded, so CPU time is time on one core). */
static double analyse(const char *path, double offset, double duration, double *feat_s)
{
    m2p_audio a;
    m2p_features f;
    double t0 = now();
    if (m2p_audio_decode(path, offset, duration, &a) != 0) {
        fprintf(stderr, "decode: %s\n", m2p_errmsg());
        exit(1);
    }
    double c1 = cpu_now();
    if (m2p_features_compute(a.samples, a.n, a.sample_rate, &f) != 0) {
        fprintf(stderr, "features: %s\n", m2p_errmsg());
        exit(1);
    }
    double t2 = now(), c2 = cpu_now();
    if (feat_s)
        *feat_s = c2 - c1;
    m2p_features_free(&f);
    m2p_audio_free(&a);
    return t2 - t0;
}

int main(int argc, char **argv)
{
    int features_only = argc > 1 && !strcmp(argv[1], "--features-only");
    if (features_only) {
        argc--;
        argv++;
    }
    const char *fx = argc > 1 ? argv[1] : getenv("M2P_FIXTURES");
    if (!fx)
        fx = "../shared/fixtures";
    char src[2048], dir[] = "/tmp/m2p-bench-audio-XXXXXX", s4[2100], s10[2100];
    snprintf(src, sizeof src, "%s/audio/librosa/nutcracker.ogg", fx);
    if (!mkdtemp(dir))
        return 1;
    snprintf(s4, sizeof s4, "%s/song4.mp3", dir);
    snprintf(s10, sizeof s10, "%s/song10.mp3", dir);
    if (make_song(src, s4, 240) || (!features_only && make_song(src, s10, 600))) {
        fprintf(stderr, "ffmpeg failed\n");
        return 1;
    }

    /* 1. features for 60 s (offset 5, the default window), best of 5 */
    double best = 1e9, feat;
    for (int i = 0; i < 5; i++) {
        analyse(s4, 5, 60, &feat);
        if (feat < best)
            best = feat;
    }
    printf("features, 60 s of audio:            %.3f s CPU on one core (best of 5)\n", best);
    if (features_only) {
        unlink(s4);
        rmdir(dir);
        return 0;
    }

    /* 2. decode + features for the whole 4-minute song, best of 3 */
    double best4 = 1e9;
    for (int i = 0; i < 3; i++) {
        double t = analyse(s4, 0, 0, &feat);
        if (t < best4)
            best4 = t;
    }
    printf("decode + features, 4-minute MP3:    %.3f s wall (best of 3)\n", best4);

    /* 3. peak RSS, 10-minute song, full duration, in a child */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        double t = analyse(s10, 0, 0, NULL);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("decode + features, 10-minute MP3:   %.3f s, peak RSS %.1f MB\n", t,
               ru.ru_maxrss / 1024.0);
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);

    /* 4. a 3-hour FLAC (220 Hz sine at 8 kHz): a 60 s window at 5 s, then 10 s at 2 h */
    char longf[2100], cmd[4300];
    snprintf(longf, sizeof longf, "%s/long.flac", dir);
    snprintf(cmd, sizeof cmd,
             "ffmpeg -v error -y -f lavfi -i 'sine=frequency=220:sample_rate=8000' -t 10800 "
             "-c:a flac -compression_level 0 '%s'",
             longf);
    if (system(cmd) == 0) {
        printf("3-hour FLAC, decode + features of 60 s at 5 s: %.3f s wall\n",
               analyse(longf, 5, 60, NULL));
        m2p_audio a;
        double t0 = now();
        if (m2p_audio_decode(longf, 7200, 10, &a) == 0) {
            printf("3-hour FLAC, decode of 10 s at 2 h:            %.3f s wall\n", now() - t0);
            m2p_audio_free(&a);
        }
        unlink(longf);
    }
    unlink(s4);
    unlink(s10);
    rmdir(dir);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
