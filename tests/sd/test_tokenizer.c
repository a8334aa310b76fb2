/*
 * test_tokenizer.c — CLIP tokenizer against transformers' slow CLIPTokenizer (golden tokens.json
 * of sd-tiny: 13 prompts, ids and untruncated counts), plus invalid UTF-8, empty and very long
 * input, special tokens written in the text; prints (never asserts) the vocabulary's load time.
 */
#define _GNU_SOURCE
#include <jansson.h>
#include <time.h>

#include "mus2pic.h"
#include "sd/clip_tokenizer.h"
#include "test.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void check_ids(const int32_t *got, int n_got, json_t *want, const char *what)
{
    CHECK_INT(n_got, (long long)json_array_size(want));
    size_t n = json_array_size(want) < (size_t)n_got ? json_array_size(want) : (size_t)n_got;
    for (size_t i = 0; i < n; i++) {
        long long w = json_integer_value(json_array_get(want, i));
        if (got[i] != w) {
            fprintf(stderr, "%s: id[%zu] = %d, expected %lld\n", what, i, got[i], w);
            test_failures++;
            break;
        }
    }
}

int main(void)
{
    clip_tokenizer *tok = NULL;
    double t0 = now_s();
    int rc = clip_tokenizer_load(test_fixture("sd-tiny/model/tokenizer"), &tok);
    double load_ms = (now_s() - t0) * 1e3;
    CHECK_INT(rc, 0);
    if (rc) {
        fprintf(stderr, "%s\n", m2p_errmsg());
        TEST_DONE();
    }
    /* Reported, not asserted: timings belong in bench/, a loaded machine must not fail here. */
    printf("tokenizer load: %.1f ms\n", load_ms);
    CHECK_INT(clip_bos_id(tok), 49406);
    CHECK_INT(clip_eos_id(tok), 49407);
    CHECK_STR(clip_token_str(tok, 2368), "cat</w>");

    json_error_t jerr;
    json_t *root = json_load_file(test_fixture("sd-tiny/golden/tokens.json"), 0, &jerr);
    CHECK(root != NULL);
    json_t *prompts = json_object_get(root, "prompts");
    CHECK_INT(json_array_size(prompts), 13);
    for (size_t p = 0; p < json_array_size(prompts); p++) {
        json_t *e = json_array_get(prompts, p);
        const char *text = json_string_value(json_object_get(e, "prompt"));
        int32_t ids[77];
        int n_untr = -1;
        CHECK_INT(clip_tokenize(tok, text, ids, 77, &n_untr), 0);
        check_ids(ids, 77, json_object_get(e, "input_ids"), text);
        CHECK_INT(n_untr, json_integer_value(json_object_get(e, "num_tokens_untruncated")));
        int32_t *all;
        int n_all;
        CHECK_INT(clip_tokenize_full(tok, text, &all, &n_all), 0);
        check_ids(all, n_all, json_object_get(e, "input_ids_untruncated"), text);
        json_t *strs = json_object_get(e, "tokens_untruncated");
        for (int i = 0; i < n_all && (size_t)i < json_array_size(strs); i++)
            CHECK_STR(clip_token_str(tok, all[i]), json_string_value(json_array_get(strs, i)));
        free(all);
    }
    json_decref(root);

    /* Invalid UTF-8 is dropped, never an error: lone continuation bytes, a truncated sequence,
     * an overlong encoding, a surrogate, bytes over U+10FFFF. */
    int32_t a[77], b[77];
    int na, nb;
    CHECK_INT(clip_tokenize(tok,
                            "a \x80photo\xC0\xAF of \xED\xA0\x80"
                            "a\xF5\x80 cat\xE2\x82",
                            a, 77, &na),
              0);
    CHECK_INT(clip_tokenize(tok, "a photo of a cat", b, 77, &nb), 0);
    CHECK_INT(na, nb);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK_INT(clip_tokenize(tok, "\xFF\xFE\xFD", a, 77, &na), 0);
    CHECK_INT(na, 2);
    CHECK_INT(a[0], 49406);
    CHECK_INT(a[1], 49407);
    CHECK_INT(a[76], 49407);
    CHECK_INT(clip_tokenize(tok, NULL, a, 77, &na), 0);
    CHECK_INT(na, 2);

    /* Normalisation: control/format chars dropped, whitespace collapsed, CJK spaced, lower case. */
    char *norm;
    CHECK_INT(clip_normalize("  A\tB\x01\xE2\x80\x8B"
                             "C\xE6\x9D\xB1X  ",
                             &norm),
              0);
    CHECK_STR(norm, "a bc \xE6\x9D\xB1 x");
    free(norm);
    CHECK_INT(clip_normalize("\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3", &norm), 0); /* ΟΔΟΣ -> οδος */
    CHECK_STR(norm, "\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x82");
    free(norm);
    CHECK_INT(clip_normalize("cafe\xCC\x81", &norm), 0); /* NFC: e + U+0301 -> é */
    CHECK_STR(norm, "caf\xC3\xA9");
    free(norm);

    /* Special tokens written in the text become their ids. */
    int32_t *all;
    int n_all;
    CHECK_INT(clip_tokenize_full(tok, "cat<|endoftext|>!!<|startoftext|>", &all, &n_all), 0);
    CHECK_INT(n_all, 6);
    if (n_all == 6) {
        CHECK_INT(all[1], 2368);
        CHECK_INT(all[2], 49407);
        CHECK_INT(all[3], 748); /* "!!</w>" */
        CHECK_INT(all[4], 49406);
    }
    free(all);

    /* The empty text is BOS, EOS (it did pointer arithmetic on NULL, UB under UBSan; found by
     * fuzz_tokenizer). */
    CHECK_INT(clip_tokenize_full(tok, "", &all, &n_all), 0);
    CHECK_INT(n_all, 2);
    if (n_all == 2) {
        CHECK_INT(all[0], 49406);
        CHECK_INT(all[1], 49407);
    }
    free(all);

    /* Very long input: 200,000 words, truncated to BOS + 75 + EOS, quickly. */
    size_t words = 200000;
    char *big = malloc(words * 4 + 1);
    for (size_t i = 0; i < words; i++)
        memcpy(big + i * 4, "cat ", 4);
    big[words * 4] = '\0';
    t0 = now_s();
    CHECK_INT(clip_tokenize(tok, big, a, 77, &na), 0);
    printf("200k words: %.1f ms\n", (now_s() - t0) * 1e3);
    CHECK_INT(na, (int)words + 2);
    CHECK_INT(a[0], 49406);
    CHECK_INT(a[1], 2368);
    CHECK_INT(a[75], 2368);
    CHECK_INT(a[76], 49407);
    free(big);

    /* One huge word with no merges at all (all distinct bytes repeated): bounded work. */
    char *blob = malloc(20001);
    for (int i = 0; i < 20000; i++)
        blob[i] = (char)(0x21 + (i * 7) % 90);
    blob[20000] = '\0';
    CHECK_INT(clip_tokenize(tok, blob, a, 77, &na), 0);
    CHECK(na > 2);
    CHECK_INT(a[76], 49407);
    free(blob);

    /* A folder without the files is an error naming the file. */
    clip_tokenizer *bad = NULL;
    CHECK(clip_tokenizer_load("/nonexistent-m2p", &bad) < 0);
    CHECK(strstr(m2p_errmsg(), "vocab.json") != NULL);
    CHECK(bad == NULL);

    clip_tokenizer_free(tok);
    TEST_DONE();
}
