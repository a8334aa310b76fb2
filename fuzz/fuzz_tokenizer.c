/*
 * fuzz_tokenizer.c — libFuzzer target for the CLIP tokenizer (src/sd/clip_tokenizer.c) on
 * prompt text: clean-up, NFC, lower case, the CLIP regex, byte-level BPE with the sd-tiny
 * vocabulary (the fixture's tokenizer/ folder, loaded once).
 *
 * Input: a prompt's bytes (any, not necessarily UTF-8), at most 4 KiB. Checks what the header
 * promises: BOS first, EOS last, every id in the vocabulary, the fixed-length form agreeing with
 * the full one (same untruncated count, same leading ids, padding after EOS).
 */
#include "sd/clip_tokenizer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static clip_tokenizer *fuzz_tok;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (clip_tokenizer_load(M2P_FIXTURES "/sd-tiny/model/tokenizer", &fuzz_tok))
        abort(); /* the fixture is missing: nothing to fuzz */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    int32_t *ids = NULL;
    int n = 0;
    if (clip_tokenize_full(fuzz_tok, text, &ids, &n) == 0) {
        if (n < 2 || ids[0] != clip_bos_id(fuzz_tok) || ids[n - 1] != clip_eos_id(fuzz_tok))
            abort();
        for (int i = 0; i < n; i++)
            if (!clip_token_str(fuzz_tok, ids[i]))
                abort();
        enum { MAX_LEN = 77 };
        int32_t fixed[MAX_LEN];
        int untrunc = -1;
        if (clip_tokenize(fuzz_tok, text, fixed, MAX_LEN, &untrunc) == 0) {
            if (untrunc != n)
                abort();
            int body = n - 1 < MAX_LEN - 1 ? n - 1 : MAX_LEN - 1; /* BOS + tokens kept */
            if (memcmp(fixed, ids, (size_t)body * sizeof *ids) || fixed[body] != clip_eos_id(fuzz_tok))
                abort();
            for (int i = body + 1; i < MAX_LEN; i++)
                if (fixed[i] != clip_pad_id(fuzz_tok))
                    abort();
        }
        free(ids);
    }
    char *norm = NULL;
    if (clip_normalize(text, &norm) == 0)
        free(norm);
    free(text);
    return 0;
}
