/*
 * test_analyze.c — `mus2pic analyze` and `mus2pic prompt` as a user runs them ($M2P_BIN):
 * JSON with every key on a fixture file, durations and offsets, a clip shorter than the offset,
 * silence (undetermined), a fake yt-dlp URL (band/song from the title, cached: the second run
 * downloads nothing and reads band/song from the store), and the errors: not audio, empty,
 * missing, bad URLs, a failing yt-dlp (exit 1 with a message), usage errors (exit 2); the
 * progress line on a terminal (a pty) and none into a file.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "httpd.h"
#include "store/store.h"
#include "test.h"

#define CHOICE_SHA "ac644f9645e7c15174e4a4f8561e4d1448d7f6e59ff6b0556b310ebbced879bc"

static char *tmp;
static char out_file[600], err_file[600], data_dir[600], cache_dir[600], runs_file[600];
static char *out_text, *err_text;

/* A file's text, "" when it is missing. */
static char *slurp(const char *path)
{
    char *t = test_read_file(path, NULL);
    return t ? t : strdup("");
}

/* Run $M2P_BIN with args (NULL-terminated); stdout/stderr into out_text/err_text. */
static int run(const char *const *args)
{
    const char *bin = test_env("M2P_BIN", "./mus2pic");
    const char *argv[40];
    int n = 0;
    argv[n++] = bin;
    for (int i = 0; args[i] && n < 39; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int o = open(out_file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(err_file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(o, 1);
        dup2(e, 2);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    free(out_text);
    free(err_text);
    out_text = slurp(out_file);
    err_text = slurp(err_file);
    /* under ASan/UBSan the child's reports land in its stderr: they fail the test */
    if (strstr(err_text, "Sanitizer") || strstr(err_text, "runtime error")) {
        fprintf(stderr, "%s %s: sanitizer report:\n%s\n", argv[1], argv[2] ? argv[2] : "",
                err_text);
        test_failures++;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static const char *top_keys[] = {"band", "song", "genre",    "genre_raw", "genre_source", "tempo",
                                 "key",  "mode", "features", "source",    "prompts"};
static const char *feature_keys[] = {"tempo",
                                     "raw_energy",
                                     "energy",
                                     "brightness",
                                     "spectral_rolloff",
                                     "spectral_bandwidth",
                                     "spectral_contrast",
                                     "zero_crossing_rate",
                                     "chroma_std",
                                     "mfcc_mean",
                                     "mfcc_std",
                                     "rhythm_stability",
                                     "attack_sharpness",
                                     "harmonicity",
                                     "hp_ratio",
                                     "mode_confidence",
                                     "is_major_key",
                                     "spectral_flux",
                                     "onset_density",
                                     "onset_density_raw",
                                     "dynamic_range",
                                     "dynamic_range_db",
                                     "pitch_register",
                                     "valence_scientific",
                                     "arousal_scientific",
                                     "key",
                                     "mode",
                                     "beats",
                                     "downbeats",
                                     "beat_confidence",
                                     "beats_per_bar",
                                     "envelope",
                                     "envelope_hop_s",
                                     "duration_analyzed",
                                     "undetermined"};
static const char *source_keys[] = {"id",   "title",      "uploader", "artist",    "track",
                                    "tags", "categories", "duration", "from_cache"};

static json_t *parse_out(void)
{
    json_error_t e;
    json_t *j = json_loads(out_text, 0, &e);
    if (!json_is_object(j))
        fprintf(stderr, "not JSON (%s): %.300s\n", e.text, out_text);
    return j;
}

static void check_all_keys(json_t *j)
{
    for (size_t i = 0; i < sizeof top_keys / sizeof *top_keys; i++)
        if (!json_object_get(j, top_keys[i])) {
            fprintf(stderr, "missing key %s\n", top_keys[i]);
            test_failures++;
        }
    json_t *f = json_object_get(j, "features");
    for (size_t i = 0; i < sizeof feature_keys / sizeof *feature_keys; i++)
        if (!json_object_get(f, feature_keys[i])) {
            fprintf(stderr, "missing feature %s\n", feature_keys[i]);
            test_failures++;
        }
    json_t *s = json_object_get(j, "source");
    for (size_t i = 0; i < sizeof source_keys / sizeof *source_keys; i++)
        if (!json_object_get(s, source_keys[i])) {
            fprintf(stderr, "missing source.%s\n", source_keys[i]);
            test_failures++;
        }
    const char *vs[] = {"v1", "v3", "v4"};
    for (int i = 0; i < 3; i++) {
        json_t *p = json_object_get(json_object_get(j, "prompts"), vs[i]);
        const char *pr = json_string_value(json_object_get(p, "prompt"));
        const char *ng = json_string_value(json_object_get(p, "negative_prompt"));
        CHECK(pr && strlen(pr) > 20);
        CHECK(ng && strlen(ng) > 5);
    }
    CHECK_INT(json_array_size(json_object_get(f, "mfcc_mean")), 13);
    CHECK_INT(json_array_size(json_object_get(f, "mfcc_std")), 13);
}

static double fnum(json_t *j, const char *k)
{
    json_t *v = json_object_get(json_object_get(j, "features"), k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static void test_fixture_json(void)
{
    const char *choice = test_fixture("audio/librosa/choice.ogg");
    const char *args[] = {"analyze", choice,   "--json",  "--offline", "--quiet",
                          "--data",  data_dir, "--cache", cache_dir,   NULL};
    CHECK_INT(run(args), 0);
    json_t *j = parse_out();
    CHECK(j != NULL);
    if (!j)
        return;
    check_all_keys(j);
    json_t *src = json_object_get(j, "source");
    CHECK_STR(json_string_value(json_object_get(src, "id")), "sha256:" CHOICE_SHA);
    CHECK_STR(json_string_value(json_object_get(src, "title")), "choice");
    /* 25.0 s file, default offset 5 s and duration 60 s: 20 s analysed */
    CHECK_NEAR(fnum(j, "duration_analyzed"), 20.0, 0.1);
    double tempo = json_number_value(json_object_get(j, "tempo"));
    CHECK(tempo > 60 && tempo < 250);
    CHECK_NEAR(fnum(j, "tempo"), tempo, 1e-9);
    const char *key = json_string_value(json_object_get(j, "key"));
    const char *names[] = {"C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"};
    int key_ok = 0;
    for (int i = 0; key && i < 12; i++)
        key_ok |= !strcmp(key, names[i]);
    CHECK(key_ok);
    const char *mode = json_string_value(json_object_get(j, "mode"));
    CHECK(mode && (!strcmp(mode, "major") || !strcmp(mode, "minor")));
    CHECK_INT(!strcmp(mode ? mode : "", "major"),
              json_is_true(json_object_get(json_object_get(j, "features"), "key_major")));
    json_t *beats = json_object_get(json_object_get(j, "features"), "beats");
    CHECK(json_array_size(beats) > 10);
    for (size_t i = 1; i < json_array_size(beats); i++)
        CHECK(json_number_value(json_array_get(beats, i)) >
              json_number_value(json_array_get(beats, i - 1)));
    /* downbeats: every 3rd or 4th beat, each one of the beats; a confidence in [0, 1] */
    json_t *down = json_object_get(json_object_get(j, "features"), "downbeats");
    CHECK(json_array_size(down) >= json_array_size(beats) / 5);
    for (size_t i = 0; i < json_array_size(down); i++) {
        int found = 0;
        for (size_t k = 0; k < json_array_size(beats) && !found; k++)
            found = json_number_value(json_array_get(beats, k)) ==
                    json_number_value(json_array_get(down, i));
        CHECK(found);
    }
    double bc =
        json_number_value(json_object_get(json_object_get(j, "features"), "beat_confidence"));
    CHECK(bc > 0 && bc <= 1);
    CHECK(json_is_false(json_object_get(json_object_get(j, "features"), "undetermined")));
    const char *gs = json_string_value(json_object_get(j, "genre_source"));
    CHECK(gs && *gs);
    CHECK(json_string_value(json_object_get(j, "genre")) &&
          *json_string_value(json_object_get(j, "genre")));
    CHECK(json_is_string(json_object_get(j, "band")));

    /* prompt --version v1 gives the same V1 prompt */
    const char *pargs[] = {"prompt",    choice,    "--version", "v1",     "--json",
                           "--offline", "--quiet", "--data",    data_dir, NULL};
    CHECK_INT(run(pargs), 0);
    json_t *p = parse_out();
    CHECK_STR(json_string_value(json_object_get(p, "prompt")),
              json_string_value(
                  json_object_get(json_object_get(json_object_get(j, "prompts"), "v1"), "prompt")));
    CHECK_STR(json_string_value(json_object_get(p, "version")), "v1");
    json_decref(p);
    /* plain output: the prompt line and the negative line */
    const char *pargs2[] = {"prompt", choice, "--offline", "--data", data_dir, NULL};
    CHECK_INT(run(pargs2), 0);
    const char *v4 = json_string_value(
        json_object_get(json_object_get(json_object_get(j, "prompts"), "v4"), "prompt"));
    CHECK(v4 && !strncmp(out_text, v4, strlen(v4)));
    CHECK(strstr(out_text, "\nnegative: ") != NULL);
    json_decref(j);

    /* --offset 0 --duration 30 covers the whole 25 s; full from 10 s gives 15 s */
    const char *a2[] = {"analyze",    choice, "--json", "--offline", "--offset", "0",
                        "--duration", "30",   "--data", data_dir,    NULL};
    CHECK_INT(run(a2), 0);
    j = parse_out();
    CHECK_NEAR(fnum(j, "duration_analyzed"), 25.0, 0.1);
    json_decref(j);
    const char *a3[] = {"analyze",    choice, "--json", "--offline", "--offset", "10",
                        "--duration", "full", "--data", data_dir,    NULL};
    CHECK_INT(run(a3), 0);
    j = parse_out();
    CHECK_NEAR(fnum(j, "duration_analyzed"), 15.0, 0.1);
    json_decref(j);

    /* human-readable summary */
    const char *a4[] = {"analyze", choice, "--offline", "--data", data_dir, NULL};
    CHECK_INT(run(a4), 0);
    CHECK(strstr(out_text, "Tempo") && strstr(out_text, "BPM"));
    CHECK(strstr(out_text, "Prompt v4"));
}

static void test_short_and_silent(void)
{
    char wav[700];
    snprintf(wav, sizeof wav, "%s/short.wav", tmp);
    CHECK_INT(test_write_wav(wav, 3.0, 0),
              0); /* shorter than the 5 s default offset: analysed from 0 */
    const char *a[] = {"analyze", wav, "--json", "--offline", "--data", data_dir, NULL};
    CHECK_INT(run(a), 0);
    json_t *j = parse_out();
    CHECK_NEAR(fnum(j, "duration_analyzed"), 3.0, 0.1);
    json_decref(j);
    snprintf(wav, sizeof wav, "%s/silence.wav", tmp);
    CHECK_INT(test_write_wav(wav, 12.0, 1), 0);
    CHECK_INT(run(a), 0);
    j = parse_out();
    CHECK(json_is_true(json_object_get(json_object_get(j, "features"), "undetermined")));
    json_decref(j);
}

static void test_errors(void)
{
    char bad[700];
    snprintf(bad, sizeof bad, "%s/notes.mp3", tmp);
    FILE *f = fopen(bad, "w");
    fputs("these are not the droids you are looking for\n", f);
    fclose(f);
    const char *a1[] = {"analyze", bad, "--data", data_dir, NULL};
    CHECK_INT(run(a1), 1);
    CHECK(strstr(err_text, "mus2pic analyze:") && strstr(err_text, "notes.mp3"));
    CHECK_STR(out_text, "");
    snprintf(bad, sizeof bad, "%s/empty.ogg", tmp);
    f = fopen(bad, "w");
    fclose(f);
    CHECK_INT(run(a1), 1);
    CHECK(strstr(err_text, "empty") != NULL);
    snprintf(bad, sizeof bad, "%s/missing.ogg", tmp);
    CHECK_INT(run(a1), 1);
    CHECK(strstr(err_text, "no such file") != NULL);
    const char *a2[] = {"analyze", "--", "-https://youtu.be/x", NULL};
    CHECK_INT(run(a2), 1);
    CHECK(strstr(err_text, "starts with '-'") != NULL);
    const char *a3[] = {"analyze", "ftp://example.com/a.mp3", NULL};
    CHECK_INT(run(a3), 1);
    CHECK(strstr(err_text, "only http and https") != NULL);
    /* usage errors */
    const char *u1[] = {"analyze", NULL};
    CHECK_INT(run(u1), 2);
    CHECK(strstr(err_text, "usage: mus2pic analyze") != NULL);
    const char *u2[] = {"analyze", "x.mp3", "--duration", "soon", NULL};
    CHECK_INT(run(u2), 2);
    CHECK(strstr(err_text, "--duration") != NULL);
    const char *u3[] = {"analyze", "x.mp3", "--no-such-option", NULL};
    CHECK_INT(run(u3), 2);
    const char *u4[] = {"prompt", "x.mp3", "--version", "v9", NULL};
    CHECK_INT(run(u4), 2);
    CHECK(strstr(err_text, "v1, v3, v4 or llm") != NULL);
    const char *u5[] = {"analyze", "a.mp3", "b.mp3", NULL};
    CHECK_INT(run(u5), 2);
    const char *u6[] = {"analyze", "--help", NULL};
    CHECK_INT(run(u6), 0);
    CHECK(strstr(out_text, "--offset") != NULL);
}

static void test_ytdlp_url(void)
{
    char fake[700];
    snprintf(fake, sizeof fake, "%s/fake-yt-dlp", tmp);
    FILE *f = fopen(fake, "w");
    fputs(
        "#!/bin/sh\n"
        "echo run >> \"$FAKE_DIR/runs.txt\"\n"
        "if [ \"$FAKE_MODE\" = fail ]; then echo 'ERROR: [youtube] FFFFFFFFFFF: Private video' >&2;"
        " exit 1; fi\n"
        "tmpl=''; prev=''\n"
        "for a in \"$@\"; do if [ \"$prev\" = '-o' ]; then tmpl=\"$a\"; fi; prev=\"$a\"; done\n"
        "base=\"${tmpl%.*}\"\n"
        "cp \"$FAKE_AUDIO\" \"$base.ogg\"\n"
        "printf '{\"id\": \"FFFFFFFFFFF\", \"title\": \"Queen - Bohemian Rhapsody (Official "
        "Video)\", \"uploader\": \"Queen Official\", \"tags\": [\"rock\"], \"categories\": "
        "[\"Music\"], \"duration\": 25.0}' > \"$base.info.json\"\n",
        f);
    fclose(f);
    chmod(fake, 0700);
    setenv("MUS2PIC_YTDLP", fake, 1);
    setenv("FAKE_DIR", tmp, 1);
    setenv("FAKE_AUDIO", test_fixture("audio/librosa/choice.ogg"), 1);

    setenv("FAKE_MODE", "fail", 1);
    const char *a[] = {"analyze", "https://www.youtube.com/watch?v=FFFFFFFFFFF",
                       "--json",  "--offline",
                       "--data",  data_dir,
                       "--cache", cache_dir,
                       NULL};
    CHECK_INT(run(a), 1);
    CHECK(strstr(err_text, "Private video") != NULL);
    CHECK_INT(test_count_lines(runs_file), 1);

    setenv("FAKE_MODE", "ok", 1);
    CHECK_INT(run(a), 0);
    CHECK_INT(test_count_lines(runs_file), 2);
    json_t *j = parse_out();
    check_all_keys(j);
    CHECK_STR(json_string_value(json_object_get(j, "band")), "Queen");
    CHECK_STR(json_string_value(json_object_get(j, "song")), "Bohemian Rhapsody");
    json_t *src = json_object_get(j, "source");
    CHECK_STR(json_string_value(json_object_get(src, "id")), "FFFFFFFFFFF");
    CHECK_STR(json_string_value(json_object_get(src, "uploader")), "Queen Official");
    CHECK(json_is_false(json_object_get(src, "from_cache")));
    json_decref(j);

    /* band/song were stored by video id */
    m2p_store *s = NULL;
    CHECK_INT(m2p_store_open(data_dir, &s), 0);
    char *v = NULL;
    CHECK_INT(store_cache_get(s, "band_song", "FFFFFFFFFFF", &v), 0);
    CHECK(v && strstr(v, "\"Queen\"") && strstr(v, "Bohemian Rhapsody"));
    free(v);
    m2p_store_close(s);

    /* again, by the short URL: nothing downloaded, yt-dlp not run */
    const char *b[] = {"analyze", "https://youtu.be/FFFFFFFFFFF",
                       "--json",  "--offline",
                       "--data",  data_dir,
                       "--cache", cache_dir,
                       NULL};
    CHECK_INT(run(b), 0);
    CHECK_INT(test_count_lines(runs_file), 2);
    j = parse_out();
    CHECK(json_is_true(json_object_get(json_object_get(j, "source"), "from_cache")));
    CHECK_STR(json_string_value(json_object_get(j, "band")), "Queen");
    json_decref(j);
}

/* An OpenAI-compatible endpoint: checks the key and that the song's name reached it. */
static int llm_calls;
static int h_llm(struct mg_connection *c, void *ud)
{
    char body[8192];
    test_httpd_body(c, body, sizeof body);
    const char *auth = mg_get_header(c, "Authorization");
    llm_calls++;
    if (!auth || strcmp(auth, "Bearer test-key") != 0)
        return test_httpd_reply(c, 401, "application/json", "{\"error\":\"bad key\"}", 19);
    const char *ans = strstr(body, "choice")
                          ? "{\"choices\":[{\"message\":{\"content\":\"neon drum and bass "
                            "cityscape at night\"}}],\"usage\":{\"total_tokens\":57}}"
                          : "{\"choices\":[{\"message\":{\"content\":\"wrong song\"}}]}";
    return test_httpd_reply(c, 200, "application/json", ans, strlen(ans));
}

static void test_llm(void)
{
    test_httpd *h = test_httpd_start();
    CHECK(h != NULL);
    if (!h)
        return;
    test_httpd_route(h, "/v1/chat/completions", h_llm, NULL);
    char base[300];
    snprintf(base, sizeof base, "%s/v1", test_httpd_url(h));
    const char *choice = test_fixture("audio/librosa/choice.ogg");
    const char *a[] = {"prompt", choice,      "--version", "llm",         "--llm-url",
                       base,     "--llm-key", "test-key",  "--llm-model", "test-model",
                       "--json", "--offline", "--data",    data_dir,      NULL};
    CHECK_INT(run(a), 0);
    json_t *j = parse_out();
    const char *lp = json_string_value(json_object_get(j, "prompt"));
    CHECK(lp && !strncmp(lp, "neon drum and bass cityscape at night", 37)); /* the model's text */
    CHECK_STR(json_string_value(json_object_get(j, "version")), "llm");
    CHECK_INT(json_integer_value(json_object_get(j, "tokens_used")), 57);
    CHECK(json_string_value(json_object_get(j, "negative_prompt")) &&
          *json_string_value(json_object_get(j, "negative_prompt")));
    json_decref(j);
    CHECK_INT(llm_calls, 1);
    const char *b[] = {"prompt",    choice,  "--version", "llm",    "--llm-url", base,
                       "--llm-key", "wrong", "--offline", "--data", data_dir,    NULL};
    CHECK_INT(run(b), 1);
    CHECK(strstr(err_text, "mus2pic prompt:") != NULL);
    test_httpd_stop(h);
}

/* On a terminal (a pty from util-linux `script`) a progress line names the stages with a
 * percentage; into a file (every other test here) there is none. */
static void test_progress_line(void)
{
    const char *choice = test_fixture("audio/librosa/choice.ogg");
    const char *args[] = {"analyze", choice, "--offline", "--data", data_dir, NULL};
    CHECK_INT(run(args), 0);
    CHECK(strstr(err_text, "analysing") == NULL && strstr(err_text, "%") == NULL);
    if (access("/usr/bin/script", X_OK) != 0) {
        fprintf(stderr, "note: no /usr/bin/script; the terminal progress line is not tested\n");
        return;
    }
    char cmd[3000], log[700];
    snprintf(log, sizeof log, "%s/pty.log", tmp);
    snprintf(cmd, sizeof cmd,
             "/usr/bin/script -qec '%s analyze %s --offline --data %s' %s >/dev/null 2>&1",
             test_env("M2P_BIN", "./mus2pic"), choice, data_dir, log);
    CHECK_INT(system(cmd), 0);
    char *text = slurp(log);
    CHECK(text != NULL);
    if (!text)
        return;
    CHECK(strstr(text, "decoding") != NULL);
    CHECK(strstr(text, "analysing") != NULL);
    CHECK(strstr(text, "prompts") != NULL);
    CHECK(strstr(text, "100%") != NULL);
    CHECK(strstr(text, "Prompt v4") != NULL); /* and the summary after it */
    CHECK(strstr(text, "Sanitizer") == NULL && strstr(text, "runtime error") == NULL);
    free(text);
}

int main(void)
{
    tmp = test_tmpdir("cli-analyze");
    CHECK(tmp != NULL);
    if (!tmp)
        TEST_DONE();
    snprintf(out_file, sizeof out_file, "%s/out.txt", tmp);
    snprintf(err_file, sizeof err_file, "%s/err.txt", tmp);
    snprintf(data_dir, sizeof data_dir, "%s/data", tmp);
    snprintf(cache_dir, sizeof cache_dir, "%s/cache", tmp);
    snprintf(runs_file, sizeof runs_file, "%s/runs.txt", tmp);
    setenv("MUS2PIC_YTDLP", "/nonexistent/yt-dlp", 1); /* no test reaches the network */
    setenv("XDG_CACHE_HOME", tmp, 1);

    test_fixture_json();
    test_short_and_silent();
    test_errors();
    test_ytdlp_url();
    test_llm();
    test_progress_line();

    free(out_text);
    free(err_text);
    test_rmtree(tmp);
    free(tmp);
    TEST_DONE();
}
