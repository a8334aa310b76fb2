/*
 * test_alloc_generate.c — a whole generation on the tiny model (../shared/fixtures/sd-tiny) with
 * its Nth allocation failing, N walked over every call site (tests/inject/inject.h), in two walks:
 * m2p_model_load (configs, the tokenizer's ~50,000 allocations, safetensors), then, on a loaded
 * model, m2p_generate of 2 variations at 64x64, 2 LCM steps with the latent preview on, and the
 * PNG encoding of the first image. Each run must fail with a message or give the clean run's
 * outcome (a model that generates the same image; the same PNG bytes); LeakSanitizer (the ASan
 * build) checks that every failure path freed what it had.
 */
#include "core/error.h"
#include "inject.h"
#include "mus2pic.h"

typedef struct gen_case {
    const char *model_dir;
    m2p_model *model;
    m2p_image img[2];
    int have_img;
    uint8_t *png;
    size_t png_len;
    uint8_t *want_png;
    size_t want_len;
    int previews;
} gen_case;

static int on_step(const m2p_step_info *info, void *ud)
{
    gen_case *c = ud;
    if (info->preview_rgb)
        c->previews++;
    return 0;
}

static int load(gen_case *c)
{
    m2p_model_params mp = m2p_model_default_params();
    mp.n_threads = 2;
    return m2p_model_load(c->model_dir, &mp, &c->model);
}

static int gen_only(gen_case *c)
{
    m2p_gen_params p = m2p_gen_default_params();
    p.prompt = "a poster of a quiet lake, synthwave";
    p.steps = 2;
    p.width = p.height = 64;
    p.variations = 2;
    p.seed = 42;
    p.preview = M2P_PREVIEW_LATENT_RGB;
    p.callback = on_step;
    p.user_data = c;
    int rc = m2p_generate(c->model, &p, c->img);
    if (rc)
        return rc;
    c->have_img = 1;
    return m2p_png_encode(c->img[0].rgb, c->img[0].width, c->img[0].height, &c->png, &c->png_len);
}

static int gen_run(void *ud)
{
    return gen_only(ud);
}

static int gen_check(void *ud)
{
    gen_case *c = ud;
    if (!c->png || c->img[1].width != 64 || !c->img[1].rgb)
        return 1;
    if (!c->want_png) {
        inject_exempt = 1;
        c->want_png = malloc(c->png_len);
        inject_exempt = 0;
        if (!c->want_png)
            return 1;
        memcpy(c->want_png, c->png, c->png_len);
        c->want_len = c->png_len;
        return 0;
    }
    return c->png_len != c->want_len || memcmp(c->png, c->want_png, c->png_len) != 0;
}

static void gen_cleanup(void *ud)
{
    gen_case *c = ud;
    if (c->have_img) {
        m2p_image_free(&c->img[0]);
        m2p_image_free(&c->img[1]);
    }
    c->have_img = 0;
    free(c->png);
    c->png = NULL;
}

/* The load walk: a loaded model must generate the clean run's image. */
static int load_run(void *ud)
{
    return load(ud);
}

static int load_check(void *ud)
{
    gen_case *c = ud;
    inject_exempt = 1;
    int rc = gen_only(c) || gen_check(c);
    gen_cleanup(c);
    inject_exempt = 0;
    return rc;
}

static void load_cleanup(void *ud)
{
    gen_case *c = ud;
    m2p_model_free(c->model);
    c->model = NULL;
}

int main(void)
{
    gen_case c = {.model_dir = test_fixture("sd-tiny/model")};
    /* the reference image, from a clean load and generation */
    CHECK_INT(load(&c), 0);
    if (!c.model)
        TEST_DONE();
    CHECK_INT(gen_only(&c), 0);
    CHECK_INT(gen_check(&c), 0);
    gen_cleanup(&c);
    CHECK(c.previews > 0);

    inject_scenario gen = {"generation", gen_run, gen_check, gen_cleanup, &c, 300};
    inject_stats st = inject_walk(&gen);
    CHECK(st.allocations > 50);
    CHECK(st.sites > 10);
    CHECK(st.runs >= st.sites);
    CHECK(st.failed_clean > 0);
    load_cleanup(&c);

    inject_scenario ld = {"model load", load_run, load_check, load_cleanup, &c, 40};
    st = inject_walk(&ld);
    CHECK(st.allocations > 1000);
    CHECK(st.sites > 10);
    CHECK(st.runs >= st.sites);
    CHECK(st.failed_clean > 0);

    /* and once more, cleanly */
    CHECK_INT(load(&c), 0);
    CHECK_INT(gen_only(&c), 0);
    CHECK_INT(gen_check(&c), 0);
    gen_cleanup(&c);
    load_cleanup(&c);
    free(c.want_png);
    TEST_DONE();
}
