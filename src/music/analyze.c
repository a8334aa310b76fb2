/*
 * analyze.c — the whole analysis of one song, and its JSON form.
 *
 *   source -> m2p_fetch -> m2p_audio_decode(offset, duration) -> m2p_features_compute
 *          -> band/song (yt-dlp info; container tags fill gaps; cached by id in the caller's
 *             m2p_cache, namespace "band_song") -> m2p_genre_find -> m2p_prompt_build (V1, V3, V4)
 *
 * Progress goes to params->progress by stage: "downloading" (fraction of the download, -1 when
 * unknown), "decoding", "analysing", "genre", "prompts"; a nonzero answer, between stages or
 * from the ticks inside download, decoding and the feature frames, cancels (M2P_ECANCELED).
 * The JSON uses the original analyser's feature names (prompt.c's feature map) so its prompt
 * rules and the web page read it unchanged.
 */
#define _GNU_SOURCE
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audio/audio.h"
#include "audio/cache.h"
#include "core/error.h"
#include "music/band_song.h"
#include "music/prompt.h"

/* The caller's progress callback, the stage running now, and whether it asked to stop. */
typedef struct stage_ctx {
    const m2p_analysis_params *ap;
    const char *stage;
    int canceled;
} stage_ctx;

/* Report (stage, fraction); nonzero once the callback has asked to cancel. */
static int stage(stage_ctx *c, const char *name, double fraction)
{
    c->stage = name;
    if (!c->canceled && c->ap->progress && c->ap->progress(name, fraction, c->ap->user_data))
        c->canceled = 1;
    if (c->canceled)
        m2p_error(M2P_ECANCELED, "analysis canceled by request (while %s)", name);
    return c->canceled;
}

static int on_download(double percent, void *ud)
{
    return stage(ud, "downloading", percent < 0 ? -1 : percent / 100.0);
}

/* ticks from inside decoding and the feature frames (audio.h) */
static int on_tick(double fraction, void *ud)
{
    stage_ctx *c = ud;
    return stage(c, c->stage, fraction);
}

static void copy_str(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

int m2p_analyze(const char *source, const m2p_fetch_params *fetch,
                const m2p_analysis_params *params, const m2p_genre_params *genre,
                const m2p_cache *cache, m2p_analysis *out)
{
    if (!out)
        return m2p_error(M2P_EINVAL, "analyze: out is NULL");
    memset(out, 0, sizeof *out);
    if (!source || !*source)
        return m2p_error(M2P_EINVAL, "analyze: no source (give a URL or a file)");
    m2p_analysis_params ap = params ? *params : m2p_analysis_default_params();
    if (!(ap.offset_s >= 0) || !isfinite(ap.offset_s) || !(ap.duration_s >= 0) ||
        !isfinite(ap.duration_s))
        return m2p_error(M2P_EINVAL, "analyze: offset %g s and duration %g s must be >= 0",
                         ap.offset_s, ap.duration_s);
    m2p_fetch_params fp = fetch ? *fetch : m2p_fetch_default_params();
    stage_ctx sc = {.ap = &ap};
    audio_tick tick = {on_tick, &sc};
    if (!fp.progress && ap.progress) {
        fp.progress = on_download;
        fp.user_data = &sc;
    }

    char path[4096];
    if (stage(&sc, "downloading", 0))
        return M2P_ECANCELED;
    int rc = m2p_fetch(source, &fp, &out->info, path, sizeof path);
    if (rc)
        return rc;
    if (stage(&sc, "downloading", 1) || stage(&sc, "decoding", 0))
        return M2P_ECANCELED;
    m2p_audio audio;
    memset(&audio, 0, sizeof audio);
    rc = audio_decode_ticked(path, ap.offset_s, ap.duration_s, &audio, &tick);
    if (rc == M2P_EINVAL && ap.offset_s > 0) {
        /* Shorter than the offset (a 3-second clip with the default 5 s skip): analyse it
         * from the start rather than fail. */
        M2P_LOGI("analyze: %s is shorter than the %.1f s offset; analysing from 0 s", source,
                 ap.offset_s);
        rc = audio_decode_ticked(path, 0, ap.duration_s, &audio, &tick);
    }
    if (rc) {
        if (rc != M2P_ECANCELED)
            m2p_error_wrap(rc, "%s", source);
        goto fail;
    }

    /* container tags fill what yt-dlp did not say; for files they are all we have */
    m2p_source_info *in = &out->info;
    if (!in->artist[0] && audio.meta_artist[0])
        copy_str(in->artist, sizeof in->artist, audio.meta_artist);
    if (!in->track[0] && audio.meta_title[0])
        copy_str(in->track, sizeof in->track, audio.meta_title);
    if (!strncmp(in->id, "sha256:", 7) && audio.meta_title[0])
        copy_str(in->title, sizeof in->title, audio.meta_title);
    copy_str(in->meta_genre, sizeof in->meta_genre, audio.meta_genre);
    if (in->duration <= 0 && audio.source_duration > 0)
        in->duration = audio.source_duration;

    if (stage(&sc, "decoding", 1) || stage(&sc, "analysing", 0)) {
        m2p_audio_free(&audio);
        rc = M2P_ECANCELED;
        goto fail;
    }
    rc = audio_features_ticked(audio.samples, audio.n, audio.sample_rate, &out->features, &tick);
    m2p_audio_free(&audio);
    if (rc) {
        if (rc != M2P_ECANCELED)
            m2p_error_wrap(rc, "analysing %s", source);
        goto fail;
    }
    if (stage(&sc, "analysing", 1)) {
        rc = M2P_ECANCELED;
        goto fail;
    }

    /* band/song: from the cache when this video was seen before, else the rules (stored) */
    rc = band_song_find(cache, &out->info, out->band, sizeof out->band, out->song, sizeof out->song,
                        NULL);
    if (rc)
        goto fail;

    if (stage(&sc, "genre", 0)) {
        rc = M2P_ECANCELED;
        goto fail;
    }
    rc = m2p_genre_find(&out->info, out->band, &out->features, genre, cache, out->genre_raw,
                        sizeof out->genre_raw, out->genre_source, sizeof out->genre_source);
    if (rc)
        goto fail;
    copy_str(out->genre, sizeof out->genre, m2p_genre_normalize(out->genre_raw));
    if (stage(&sc, "genre", 1) || stage(&sc, "prompts", 0)) {
        rc = M2P_ECANCELED;
        goto fail;
    }
    const int versions[3] = {M2P_PROMPT_V1, M2P_PROMPT_V3, M2P_PROMPT_V4};
    char **prompts[3] = {&out->prompt_v1, &out->prompt_v3, &out->prompt_v4};
    char **negs[3] = {&out->negative_v1, &out->negative_v3, &out->negative_v4};
    for (int i = 0; i < 3; i++) {
        rc = m2p_prompt_build(versions[i], &out->features, out->band, out->song, out->genre_raw,
                              prompts[i], negs[i]);
        if (rc) {
            m2p_error_wrap(rc, "prompt v%d", versions[i]);
            goto fail;
        }
    }
    if (stage(&sc, "prompts", 1)) {
        rc = M2P_ECANCELED;
        goto fail;
    }
    return 0;
fail:
    m2p_analysis_free(out);
    return rc;
}

void m2p_analysis_free(m2p_analysis *a)
{
    if (!a)
        return;
    m2p_features_free(&a->features);
    free(a->prompt_v1);
    free(a->prompt_v3);
    free(a->prompt_v4);
    free(a->negative_v1);
    free(a->negative_v3);
    free(a->negative_v4);
    a->prompt_v1 = a->prompt_v3 = a->prompt_v4 = NULL;
    a->negative_v1 = a->negative_v3 = a->negative_v4 = NULL;
}

/* JSON has no NaN or infinity: such a value is written as null. */
static json_t *num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *prompt_pair(const char *p, const char *n)
{
    return json_pack("{s:s, s:s}", "prompt", p ? p : "", "negative_prompt", n ? n : "");
}

static json_t *features_json(const m2p_features *f)
{
    json_t *o = prompt_features_json(f); /* the original's scalar names */
    if (!o)
        return NULL;
    json_object_del(o, "spectral_centroid"); /* the builders' aliases: brightness, */
    json_object_del(o, "zcr");               /* zero_crossing_rate */
    json_object_set_new(o, "duration_analyzed", num(f->duration_analyzed));
    json_object_set_new(o, "envelope_hop_s", num(f->envelope_hop_s));
    json_t *mm = json_array(), *ms = json_array();
    for (int i = 0; i < M2P_N_MFCC; i++) {
        json_array_append_new(mm, num(f->mfcc_mean[i]));
        json_array_append_new(ms, num(f->mfcc_std[i]));
    }
    json_object_set_new(o, "mfcc_mean", mm);
    json_object_set_new(o, "mfcc_std", ms);
    json_object_set_new(o, "key_major", json_boolean(f->key_major));
    const char *key = f->key_tonic >= 0 ? m2p_key_name(f->key_tonic) : "";
    json_object_set_new(o, "key", key && *key ? json_string(key) : json_null());
    json_object_set_new(o, "key_pitch_class", json_integer(f->key_tonic));
    json_object_set_new(
        o, "mode", f->key_tonic >= 0 ? json_string(f->key_major ? "major" : "minor") : json_null());
    json_t *beats = json_array();
    for (int i = 0; i < f->n_beats && f->beats; i++)
        json_array_append_new(beats, num(round(f->beats[i] * 1000.0) / 1000.0));
    json_object_set_new(o, "beats", beats);
    json_t *down = json_array();
    for (int i = 0; i < f->n_downbeats && f->downbeats; i++)
        json_array_append_new(down, num(round(f->downbeats[i] * 1000.0) / 1000.0));
    json_object_set_new(o, "downbeats", down);
    json_object_set_new(o, "beat_confidence", num(round(f->beat_confidence * 1000.0) / 1000.0));
    json_object_set_new(o, "beats_per_bar", json_integer(f->beats_per_bar));
    json_t *env = json_array();
    for (int i = 0; i < f->n_envelope && f->envelope; i++)
        json_array_append_new(env, num(round((double)f->envelope[i] * 10000.0) / 10000.0));
    json_object_set_new(o, "envelope", env);
    json_object_set_new(o, "undetermined", json_boolean(f->undetermined));
    return o;
}

char *m2p_analysis_to_json(const m2p_analysis *a)
{
    if (!a)
        return NULL;
    const m2p_source_info *in = &a->info;
    json_t *src = audio_info_json(in);
    json_object_set_new(src, "meta_genre", json_string(in->meta_genre));
    json_object_set_new(src, "from_cache", json_boolean(in->from_cache));

    const m2p_features *f = &a->features;
    json_t *o = json_object();
    json_object_set_new(o, "band", json_string(a->band));
    json_object_set_new(o, "song", json_string(a->song));
    json_object_set_new(o, "genre", json_string(a->genre));
    json_object_set_new(o, "genre_raw", json_string(a->genre_raw));
    json_object_set_new(o, "genre_source", json_string(a->genre_source));
    /* the headline numbers at the top as well, for readers that want only those */
    const char *key = f->key_tonic >= 0 ? m2p_key_name(f->key_tonic) : "";
    json_object_set_new(o, "tempo", num(f->tempo));
    json_object_set_new(o, "key", key && *key ? json_string(key) : json_null());
    json_object_set_new(
        o, "mode", f->key_tonic >= 0 ? json_string(f->key_major ? "major" : "minor") : json_null());
    json_object_set_new(o, "features", features_json(f));
    json_object_set_new(o, "source", src);
    json_t *pr = json_object();
    json_object_set_new(pr, "v1", prompt_pair(a->prompt_v1, a->negative_v1));
    json_object_set_new(pr, "v3", prompt_pair(a->prompt_v3, a->negative_v3));
    json_object_set_new(pr, "v4", prompt_pair(a->prompt_v4, a->negative_v4));
    json_object_set_new(o, "prompts", pr);
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(o);
    return s;
}
