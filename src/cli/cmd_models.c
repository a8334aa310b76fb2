/*
 * cmd_models.c — `mus2pic models list`: the original app's six models (registry.c) with hub id,
 * whether this version can run them, the original's defaults (steps, guidance, size, negative
 * prompt used), what each needs (download or bytes on disk, memory in f32 / bf16: model_info_of)
 * and where each is installed (HF cache or ./models), and
 * `mus2pic models fetch NAME|HUB_ID`: download into the Hugging Face cache with a progress bar
 * and resume (src/model/fetch.c).
 */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/progress.h"
#include "jobs/models.h"
#include "mus2pic.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mus2pic models list\n"
            "       mus2pic models fetch NAME|HUB_ID   (e.g. lcm, SimianLuo/LCM_Dreamshaper_v7)\n"
            "a NAME also fetches its TAESD and, for sdxl_lightning, the Lightning 4-step UNet.\n"
            "fetch honours HF_ENDPOINT, HF_TOKEN and HF_HOME / HF_HUB_CACHE.\n");
}

static int list(void)
{
    int n;
    const m2p_registry_entry *e = m2p_registry(&n);
    printf("%-15s %-42s %-9s %5s %8s %-9s %-8s %-18s %-17s %s\n", "NAME", "HUB ID", "RUNNABLE",
           "STEPS", "GUIDANCE", "SIZE", "NEGATIVE", "DISK", "RAM F32, BF16", "INSTALLED");
    for (int i = 0; i < n; i++) {
        char path[4096], size[24], disk[48], ram[48], a[24], b[24];
        int have = m2p_model_resolve(e[i].name, path, sizeof path) == 0;
        snprintf(size, sizeof size, "%dx%d", e[i].default_width, e[i].default_height);
        /* installed: what its folder takes; else what `models fetch` downloads */
        model_info mi;
        model_info_of(e[i].name, have ? path : NULL, &mi); /* unknown sizes stay -1 */
        if (have)
            snprintf(disk, sizeof disk, "%s here",
                     model_info_fmt_bytes(mi.disk_bytes, a, sizeof a));
        else
            snprintf(disk, sizeof disk, "~%s download",
                     model_info_fmt_bytes(mi.download_bytes, a, sizeof a));
        snprintf(ram, sizeof ram, "~%s, %s", model_info_fmt_bytes(mi.ram_f32, a, sizeof a),
                 model_info_fmt_bytes(mi.ram_bf16, b, sizeof b));
        printf("%-15s %-42s %-9s %5d %8.1f %-9s %-8s %-18s %-17s %s\n", e[i].name, e[i].hub_id,
               e[i].supported ? "yes" : "no", e[i].default_steps, (double)e[i].default_guidance,
               size, m2p_registry_uses_negative(&e[i]) ? "yes" : "no", disk, ram,
               have ? path : "no");
    }
    return 0;
}

typedef struct {
    progress *bar;
    char file[256];
} fetch_ctx;

static void on_progress(const char *file, int64_t done, int64_t total, void *ud)
{
    fetch_ctx *c = ud;
    if (strcmp(c->file, file) != 0) {
        if (c->bar)
            progress_finish(c->bar);
        snprintf(c->file, sizeof c->file, "%s", file);
        c->bar = progress_start(stderr, file, total, PROGRESS_BYTES, 1);
    }
    progress_update(c->bar, done, total, NULL);
}

static int fetch(const char *what)
{
    const m2p_registry_entry *e = m2p_registry_find(what);
    if (e && !e->supported)
        fprintf(stderr, "note: %s (%s) cannot be run by this version; fetching it anyway\n",
                e->name, e->hub_id);
    fetch_ctx ctx = {0};
    char out[4096];
    int rc = m2p_model_fetch(what, on_progress, &ctx, out, sizeof out);
    if (ctx.bar)
        progress_finish(ctx.bar);
    if (rc) {
        fprintf(stderr, "mus2pic models fetch: %s\n", m2p_errmsg());
        return rc == M2P_EINVAL ? 2 : 1;
    }
    printf("%s\n", out);
    return 0;
}

int cmd_models(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    if (argc == 2 && !strcmp(argv[1], "list"))
        return list();
    if (argc == 3 && !strcmp(argv[1], "fetch"))
        return fetch(argv[2]);
    usage(stderr);
    return 2;
}
