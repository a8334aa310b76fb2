/*
 * test_alloc_analysis.c — a whole analysis (m2p_analyze of a 10 s window of the choice.ogg
 * fixture: fetch of the file, decode, features, band/song, genre offline, prompts, with a SQLite
 * store for band/song) with its Nth allocation failing, N walked over every call site
 * (tests/inject/inject.h). Each run must fail with a message or give the clean run's JSON; the
 * store must pass integrity_check afterwards; LeakSanitizer (the ASan build) checks every
 * failure path freed what it had.
 */
#include "core/error.h"
#include "inject.h"
#include "mus2pic.h"
#include "store/store.h"

typedef struct an_case {
    const char *clip;
    char cache[1100];
    m2p_store *store;
    m2p_analysis a;
    char *want; /* the clean run's JSON */
} an_case;

static int an_run(void *ud)
{
    an_case *c = ud;
    m2p_fetch_params fp = m2p_fetch_default_params();
    fp.cache_dir = c->cache;
    m2p_analysis_params ap = m2p_analysis_default_params();
    ap.offset_s = 2;
    ap.duration_s = 5;
    m2p_genre_params gp = m2p_genre_default_params();
    gp.offline = 1;
    m2p_cache cache = m2p_store_cache(c->store);
    return m2p_analyze(c->clip, &fp, &ap, &gp, &cache, &c->a);
}

static int an_check(void *ud)
{
    an_case *c = ud;
    inject_exempt = 1;
    char *js = m2p_analysis_to_json(&c->a);
    int same = js && c->want && !strcmp(js, c->want);
    if (js && !c->want)
        c->want = js, same = 1;
    else if (!same && getenv("M2P_INJECT_AT"))
        fprintf(stderr, "got  %s\nwant %s\n", js ? js : "(null)", c->want);
    if (js != c->want)
        free(js);
    inject_exempt = 0;
    return same ? 0 : 1;
}

static void an_cleanup(void *ud)
{
    an_case *c = ud;
    m2p_analysis_free(&c->a);
}

int main(void)
{
    char *tmp = test_tmpdir("alloc-analysis");
    an_case c = {.clip = test_fixture("audio/librosa/choice.ogg")};
    snprintf(c.cache, sizeof c.cache, "%s/cache", tmp);
    char db[1100];
    snprintf(db, sizeof db, "%s/data", tmp);
    CHECK_INT(m2p_store_open(db, &c.store), 0);
    if (!c.store)
        TEST_DONE();

    inject_scenario sc = {"analysis", an_run, an_check, an_cleanup, &c, 100};
    inject_stats st = inject_walk(&sc);
    CHECK(st.allocations > 100);
    CHECK(st.sites > 20);
    CHECK(st.runs >= st.sites);
    CHECK(st.failed_clean > 0);

    /* the store is whole and still answers */
    int64_t ok = 0;
    CHECK_INT(store_scalar(c.store,
                           "SELECT COUNT(*) FROM pragma_integrity_check WHERE "
                           "integrity_check = 'ok'",
                           &ok),
              0);
    CHECK_INT(ok, 1);
    /* after all that, an analysis still works and says the same */
    CHECK_INT(an_run(&c), 0);
    CHECK_INT(an_check(&c), 0);
    an_cleanup(&c);

    free(c.want);
    m2p_store_close(c.store);
    test_rmtree(tmp);
    free(tmp);
    TEST_DONE();
}
