/*
 * test_analysis.c — m2p_analyze as the web app calls it: the progress callback sees the stages
 * in order with fractions from inside decoding and the feature frames, and a nonzero answer
 * cancels at every stage and inside those loops (M2P_ECANCELED, the analysis freed).
 * Local fixture file, genre offline: nothing reaches the network.
 */
#include <string.h>

#include "mus2pic.h"
#include "test.h"

static const char *stage_names[] = {"downloading", "decoding", "analysing", "genre", "prompts"};

typedef struct rec {
    int calls;
    int order_ok;             /* stages never go back */
    int last_stage;           /* index into stage_names */
    int mid_decoding;         /* saw 0 < fraction < 1 while decoding */
    int mid_frames;           /* saw 0 < fraction < 0.9 while analysing */
    const char *cancel_stage; /* cancel on this stage ... */
    int cancel_mid;           /* ... only at a fraction strictly inside (0, 0.9) */
} rec;

static int stage_index(const char *s)
{
    for (int i = 0; i < 5; i++)
        if (!strcmp(s, stage_names[i]))
            return i;
    return -1;
}

static int on_progress(const char *stage, double fraction, void *ud)
{
    rec *r = ud;
    r->calls++;
    int i = stage_index(stage);
    if (i < r->last_stage)
        r->order_ok = 0;
    if (i > r->last_stage)
        r->last_stage = i;
    int mid = fraction > 0 && fraction < 0.9;
    if (i == 1 && mid)
        r->mid_decoding = 1;
    if (i == 2 && mid)
        r->mid_frames = 1;
    return r->cancel_stage && !strcmp(stage, r->cancel_stage) && (!r->cancel_mid || mid);
}

static char cache_dir[600];

static int analyze(rec *r, m2p_analysis *a)
{
    m2p_fetch_params fp = m2p_fetch_default_params();
    fp.cache_dir = cache_dir;
    m2p_analysis_params ap = m2p_analysis_default_params();
    ap.progress = on_progress;
    ap.user_data = r;
    m2p_genre_params gp = m2p_genre_default_params();
    gp.offline = 1;
    r->order_ok = 1;
    r->last_stage = -1;
    return m2p_analyze(test_fixture("audio/librosa/choice.ogg"), &fp, &ap, &gp, NULL, a);
}

static void test_stages(void)
{
    rec r = {0};
    m2p_analysis a;
    CHECK_INT(analyze(&r, &a), 0);
    CHECK(r.order_ok);
    CHECK_INT(r.last_stage, 4);
    CHECK(r.mid_decoding);
    CHECK(r.mid_frames);
    CHECK(r.calls >= 12); /* 0 and 1 per stage, plus the ticks */
    CHECK(a.features.tempo > 0);
    CHECK(a.prompt_v4 != NULL);
    m2p_analysis_free(&a);
}

static void test_cancel(void)
{
    for (int i = 0; i < 5; i++) {
        rec r = {.cancel_stage = stage_names[i]};
        m2p_analysis a;
        CHECK_INT(analyze(&r, &a), M2P_ECANCELED);
        CHECK(strstr(m2p_errmsg(), "canceled") != NULL);
        CHECK_INT(r.last_stage, i); /* nothing ran after the stage that said stop */
        CHECK(a.features.beats == NULL && a.features.envelope == NULL);
        CHECK(a.prompt_v1 == NULL && a.prompt_v4 == NULL);
        m2p_analysis_free(&a); /* harmless after a failure */
    }
    /* inside the loops, not only between stages */
    const char *loops[] = {"decoding", "analysing"};
    for (int i = 0; i < 2; i++) {
        rec r = {.cancel_stage = loops[i], .cancel_mid = 1};
        m2p_analysis a;
        CHECK_INT(analyze(&r, &a), M2P_ECANCELED);
        CHECK(i == 0 ? r.mid_decoding : r.mid_frames);
        CHECK_INT(r.last_stage, i + 1);
        CHECK(a.features.envelope == NULL);
    }
}

int main(void)
{
    char *tmp = test_tmpdir("analysis");
    CHECK(tmp != NULL);
    if (!tmp)
        TEST_DONE();
    snprintf(cache_dir, sizeof cache_dir, "%s/cache", tmp);
    test_stages();
    test_cancel();
    test_rmtree(tmp);
    free(tmp);
    TEST_DONE();
}
