/*
 * clip_tokenizer.h — CLIP BPE tokenizer (vocab.json + merges.txt), with the semantics of
 * Hugging Face transformers' slow CLIPTokenizer without ftfy: BasicTokenizer clean-up, the CLIP
 * regex, byte-level mapping, BPE with </w>, BOS/EOS, truncation and padding.
 */
#ifndef M2P_SD_CLIP_TOKENIZER_H
#define M2P_SD_CLIP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct clip_tokenizer clip_tokenizer;

/* dir: a tokenizer/ folder with vocab.json and merges.txt. Errors name the file. */
int clip_tokenizer_load(const char *dir, clip_tokenizer **out);
void clip_tokenizer_free(clip_tokenizer *t);

/* text -> every id, BOS and EOS included, no truncation. *ids is malloc'd (caller frees).
 * Never fails on bad UTF-8 (invalid bytes are dropped); fails only on allocation. */
int clip_tokenize_full(const clip_tokenizer *t, const char *text, int32_t **ids, int *n);

/* text -> exactly max_len ids: BOS, the first max_len-2 tokens, EOS, then padding.
 * n_untruncated (optional) gets the count before truncation, BOS and EOS included. */
int clip_tokenize(const clip_tokenizer *t, const char *text, int32_t *ids, int max_len,
                  int *n_untruncated);

/* The vocabulary string of an id ("cat</w>"), NULL when unknown. */
const char *clip_token_str(const clip_tokenizer *t, int32_t id);
int32_t clip_bos_id(const clip_tokenizer *t);
int32_t clip_eos_id(const clip_tokenizer *t);
int32_t clip_pad_id(const clip_tokenizer *t);

/* BasicTokenizer pre-normalisation only (for tests): clean-up, CJK spacing, NFC, lower case,
 * whitespace split/join. *out is malloc'd UTF-8. */
int clip_normalize(const char *text, char **out);

#endif
