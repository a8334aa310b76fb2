/*
 * tokenizer_api.c — the public CLIP tokenizer (m2p_tokenizer_*, include/mus2pic.h) over
 * clip_tokenizer.c, for callers that count or show tokens without loading a model's networks:
 * the server's token counter (server/api_ux.c) and `mus2pic tokenize`. Only the handle and the
 * names are here; the tokenizing is clip_tokenizer.c's.
 */
#include <stdlib.h>

#include "core/error.h"
#include "mus2pic.h"
#include "sd/clip_tokenizer.h"

struct m2p_tokenizer {
    clip_tokenizer *clip;
};

int m2p_tokenizer_load(const char *dir, m2p_tokenizer **out)
{
    if (!out)
        return m2p_error(M2P_EINVAL, "tokenizer: out is NULL");
    *out = NULL;
    if (!dir || !*dir)
        return m2p_error(M2P_EINVAL, "tokenizer: no folder given (a model's tokenizer/)");
    m2p_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return m2p_error(M2P_ENOMEM, "tokenizer: out of memory");
    int rc = clip_tokenizer_load(dir, &t->clip);
    if (rc) {
        free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void m2p_tokenizer_free(m2p_tokenizer *t)
{
    if (!t)
        return;
    clip_tokenizer_free(t->clip);
    free(t);
}

int m2p_tokenizer_encode(const m2p_tokenizer *t, const char *text, int32_t ids[M2P_CLIP_MAX_TOKENS],
                         int *n_untruncated)
{
    if (!t || !text || !ids)
        return m2p_error(M2P_EINVAL, "tokenizer: tokenizer, text and ids are required");
    return clip_tokenize(t->clip, text, ids, M2P_CLIP_MAX_TOKENS, n_untruncated);
}

int m2p_tokenizer_encode_all(const m2p_tokenizer *t, const char *text, int32_t **ids, int *n)
{
    if (!t || !text || !ids || !n)
        return m2p_error(M2P_EINVAL, "tokenizer: tokenizer, text, ids and n are required");
    return clip_tokenize_full(t->clip, text, ids, n);
}

const char *m2p_token_text(const m2p_tokenizer *t, int32_t id)
{
    return t ? clip_token_str(t->clip, id) : NULL;
}
