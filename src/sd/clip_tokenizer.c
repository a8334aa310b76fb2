/*
 * clip_tokenizer.c — CLIP BPE tokenizer: text -> token ids, as Hugging Face transformers' slow
 * CLIPTokenizer does it when ftfy is not installed (transformers 4.37, tokenization_clip.py):
 * splits off literal "<|startoftext|>" / "<|endoftext|>" and the pad token when it is another
 * one (the added-token trie; SD 2.x / SDXL's tokenizer_2 pad with "!", from tokenizer_config.json
 * or special_tokens_map.json, so every "!" of a prompt is its own token), normalises each
 * piece (clip_normalize.c), splits it with the CLIP regex
 * 's|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+ and runs byte-level BPE (GPT-2
 * byte-unicode chars, merge rank, </w> on the last symbol) over vocab.json + merges.txt.
 * Symbols are interned once at load (every vocab entry and every merge result), so BPE works on
 * integer pairs in a hash map; loading the real 49408-entry vocabulary takes tens of ms.
 */
#include "sd/clip_tokenizer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/buf.h"
#include "core/error.h"
#include "sd/clip_normalize.h"

/* CLIP's merges.txt is read as lines [1 : 49152 - 256 - 2 + 1] (tokenization_clip.py). */
#define CLIP_MAX_MERGES (49152 - 256 - 2)
#define CLIP_MAX_SYMS (1 << 20) /* vocabulary strings: CLIP has 49408 */

/* ---------------------------------------------------------------------------------------- */
/* Hash maps: interned strings -> symbol index, and (sym a, sym b) -> merge                  */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    char *str; /* owned */
    int len;
    int32_t vocab; /* vocabulary id, or the unknown id when the string is not in vocab.json */
} clip_sym;

typedef struct {
    uint64_t key; /* (a << 32 | b) + 1; 0 = empty */
    int32_t rank, merged;
} merge_slot;

struct clip_tokenizer {
    clip_sym *syms;
    int n_syms;
    size_t cap_syms;
    int32_t *sym_slots; /* open addressing over syms: index + 1, 0 = empty */
    size_t sym_mask;
    merge_slot *merges;
    size_t merge_mask;
    int32_t byte_sym[256], byte_sym_w[256]; /* initial symbols for a byte, plain and with </w> */
    char **id_str;                          /* vocabulary id -> string */
    int32_t n_ids;
    int32_t bos, eos, pad, unk;
    int32_t pad_cp[16]; /* the pad token's code points when it is an extra special token */
    int n_pad_cp;       /* 0: the pad token is <|endoftext|> (or another already split) */
};

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb3fe1a85ec53ull;
    return x ^ (x >> 33);
}

static int sym_find(const clip_tokenizer *t, const char *s, size_t n)
{
    for (size_t i = hash_bytes(s, n) & t->sym_mask;; i = (i + 1) & t->sym_mask) {
        int32_t v = t->sym_slots[i];
        if (!v)
            return -1;
        const clip_sym *y = &t->syms[v - 1];
        if ((size_t)y->len == n && memcmp(y->str, s, n) == 0)
            return v - 1;
    }
}

/* Returns the symbol index, adding the string when new (vocab = -1: not in the vocabulary). */
static int sym_intern(clip_tokenizer *t, const char *s, size_t n, int32_t vocab)
{
    int have = sym_find(t, s, n);
    if (have >= 0) {
        if (vocab >= 0)
            t->syms[have].vocab = vocab;
        return have;
    }
    if ((size_t)(t->n_syms + 1) * 2 > t->sym_mask + 1) {
        size_t cap = (t->sym_mask + 1) * 2;
        int32_t *slots = calloc(cap, sizeof *slots);
        if (!slots)
            return -1;
        for (int k = 0; k < t->n_syms; k++) {
            size_t i = hash_bytes(t->syms[k].str, (size_t)t->syms[k].len) & (cap - 1);
            while (slots[i])
                i = (i + 1) & (cap - 1);
            slots[i] = k + 1;
        }
        free(t->sym_slots);
        t->sym_slots = slots;
        t->sym_mask = cap - 1;
    }
    if ((size_t)t->n_syms == t->cap_syms) {
        clip_sym *ns =
            m2p_array_grow(t->syms, &t->cap_syms, (size_t)t->n_syms + 1, sizeof *ns, CLIP_MAX_SYMS);
        if (!ns)
            return -1;
        t->syms = ns;
    }
    char *copy = malloc(n + 1);
    if (!copy)
        return -1;
    memcpy(copy, s, n);
    copy[n] = '\0';
    int k = t->n_syms++;
    t->syms[k] = (clip_sym){copy, (int)n, vocab};
    size_t i = hash_bytes(s, n) & t->sym_mask;
    while (t->sym_slots[i])
        i = (i + 1) & t->sym_mask;
    t->sym_slots[i] = k + 1;
    return k;
}

static const merge_slot *merge_find(const clip_tokenizer *t, int32_t a, int32_t b)
{
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    for (size_t i = hash_u64(key) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        if (t->merges[i].key == key)
            return &t->merges[i];
        if (!t->merges[i].key)
            return NULL;
    }
}

/* A later duplicate overwrites the rank, like Python's dict(zip(merges, range(...))). */
static void merge_put(clip_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t merged)
{
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t i = hash_u64(key) & t->merge_mask;
    while (t->merges[i].key && t->merges[i].key != key)
        i = (i + 1) & t->merge_mask;
    t->merges[i] = (merge_slot){key, rank, merged};
}

/* ---------------------------------------------------------------------------------------- */
/* Loading                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* GPT-2 / CLIP bytes_to_unicode(): printable bytes map to themselves, the rest to 256 + n. */
static void bytes_to_unicode(int32_t map[256])
{
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        map[b] = printable ? b : 256 + n++;
    }
}

/* A whole text file (merges.txt is ~0.5 MB; a file over 64 MiB is not a tokenizer). NULL with
 * the error set and its code in *rc when it cannot be read or is too big. */
#define CLIP_MAX_FILE (64u << 20)
static char *read_file(const char *path, size_t *len, int *rc_out)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *rc_out = m2p_error(M2P_EIO, "%s: cannot read", path);
        return NULL;
    }
    m2p_buf b;
    m2p_buf_init(&b, CLIP_MAX_FILE);
    char chunk[65536];
    size_t got;
    int rc = 0;
    while (!rc && (got = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = m2p_buf_append(&b, chunk, got);
    int err = ferror(f);
    fclose(f);
    if (rc || err) {
        m2p_buf_free(&b);
        *rc_out =
            err ? m2p_error(M2P_EIO, "%s: cannot read", path) : m2p_error_wrap(rc, "%s", path);
        return NULL;
    }
    *len = b.len;
    return m2p_buf_detach(&b);
}

static int load_vocab(clip_tokenizer *t, const char *path)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        return m2p_error(M2P_EFORMAT, "%s: %s (line %d)", path, jerr.text, jerr.line);
    if (!json_is_object(root)) {
        json_decref(root);
        return m2p_error(M2P_EFORMAT, "%s: not a JSON object", path);
    }
    const char *key;
    json_t *val;
    int32_t max_id = -1;
    json_object_foreach(root, key, val)
    {
        if (!json_is_integer(val) || json_integer_value(val) < 0 ||
            json_integer_value(val) > 10000000) {
            json_decref(root);
            return m2p_error(M2P_EFORMAT, "%s: token '%s' has no valid id", path, key);
        }
        if (json_integer_value(val) > max_id)
            max_id = (int32_t)json_integer_value(val);
    }
    if (max_id < 0) {
        json_decref(root);
        return m2p_error(M2P_EFORMAT, "%s: empty vocabulary", path);
    }
    t->n_ids = max_id + 1;
    t->id_str = calloc((size_t)t->n_ids, sizeof *t->id_str);
    if (!t->id_str) {
        json_decref(root);
        return m2p_error(M2P_ENOMEM, "%s: out of memory", path);
    }
    json_object_foreach(root, key, val)
    {
        int32_t id = (int32_t)json_integer_value(val);
        int s = sym_intern(t, key, strlen(key), id);
        if (s < 0) {
            json_decref(root);
            return m2p_error(M2P_ENOMEM, "%s: out of memory", path);
        }
        t->id_str[id] = t->syms[s].str;
    }
    json_decref(root);
    return 0;
}

static int32_t vocab_id(const clip_tokenizer *t, const char *s, int32_t def)
{
    int k = sym_find(t, s, strlen(s));
    return k >= 0 && t->syms[k].vocab >= 0 ? t->syms[k].vocab : def;
}

static int load_merges(clip_tokenizer *t, const char *path)
{
    size_t len;
    int rc = 0;
    char *text = read_file(path, &len, &rc);
    if (!text)
        return rc;
    size_t cap = 1;
    while (cap < 2 * (size_t)CLIP_MAX_MERGES + 16)
        cap <<= 1;
    t->merges = calloc(cap, sizeof *t->merges);
    if (!t->merges) {
        free(text);
        return m2p_error(M2P_ENOMEM, "%s: out of memory", path);
    }
    t->merge_mask = cap - 1;
    /* content.strip().split("\n")[1 : 48895]: the first line (#version) is skipped. */
    char *p = text;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\v' || *p == '\f')
        p++;
    int line = 0, rank = 0;
    char buf[1024];
    while (*p && rank < CLIP_MAX_MERGES) {
        char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        if (line++ > 0) {
            /* merge.split(): two whitespace-separated parts make a pair */
            const char *parts[3];
            size_t plen[3];
            int np = 0;
            size_t i = 0;
            while (i < n && np < 3) {
                while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r'))
                    i++;
                if (i >= n)
                    break;
                size_t b = i;
                while (i < n && p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
                    i++;
                parts[np] = p + b;
                plen[np++] = i - b;
            }
            if (np == 2 && plen[0] + plen[1] < sizeof buf) {
                int a = sym_intern(t, parts[0], plen[0], -1);
                int b = sym_intern(t, parts[1], plen[1], -1);
                memcpy(buf, parts[0], plen[0]);
                memcpy(buf + plen[0], parts[1], plen[1]);
                int m = sym_intern(t, buf, plen[0] + plen[1], -1);
                if (a < 0 || b < 0 || m < 0) {
                    free(text);
                    return m2p_error(M2P_ENOMEM, "%s: out of memory", path);
                }
                merge_put(t, a, b, rank, m);
            }
            rank++;
        }
        if (!eol)
            break;
        p = eol + 1;
    }
    free(text);
    if (rank == 0)
        return m2p_error(M2P_EFORMAT, "%s: no merges", path);
    return 0;
}

/* pad_token of tokenizer_config.json, else of special_tokens_map.json: a string or an
 * AddedToken object {"content": ...}. *out NULL when neither file names one. Sets *root to the
 * JSON that owns the string (the caller decrefs it). */
static int pad_token_name(const char *dir, json_t **root, const char **out)
{
    static const char *files[] = {"tokenizer_config.json", "special_tokens_map.json"};
    *out = NULL;
    *root = NULL;
    for (int i = 0; i < 2; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        fclose(f);
        json_error_t jerr;
        json_t *r = json_load_file(path, 0, &jerr);
        if (!r)
            return m2p_error(M2P_EFORMAT, "%s: %s (line %d)", path, jerr.text, jerr.line);
        json_t *v = json_object_get(r, "pad_token");
        if (json_is_object(v))
            v = json_object_get(v, "content");
        if (!v || json_is_null(v)) {
            json_decref(r);
            continue;
        }
        if (!json_is_string(v) || json_string_length(v) == 0) {
            json_decref(r);
            return m2p_error(M2P_EFORMAT, "%s: 'pad_token' must be a non-empty string", path);
        }
        *root = r;
        *out = json_string_value(v);
        return 0;
    }
    return 0;
}

/* The pad token: <|endoftext|> unless the folder names another, which must be in the
 * vocabulary and then splits the text like the other special tokens do. */
static int load_pad(clip_tokenizer *t, const char *dir)
{
    json_t *root;
    const char *name;
    int rc = pad_token_name(dir, &root, &name);
    if (rc)
        return rc;
    t->pad = t->eos;
    if (name && strcmp(name, "<|endoftext|>") != 0 && strcmp(name, "<|startoftext|>") != 0) {
        int32_t id = vocab_id(t, name, -1);
        clip_cpbuf cp = {0};
        if (id < 0)
            rc = m2p_error(M2P_EFORMAT,
                           "%s: 'pad_token' \"%s\" is not in vocab.json (use a vocabulary "
                           "token such as \"<|endoftext|>\" or \"!\")",
                           dir, name);
        else if (clip_utf8_decode((const unsigned char *)name, strlen(name), &cp))
            rc = m2p_error(M2P_ENOMEM, "tokenizer: out of memory");
        else if (cp.n == 0 || cp.n > sizeof t->pad_cp / sizeof *t->pad_cp)
            rc = m2p_error(M2P_EUNSUPPORTED, "%s: 'pad_token' \"%s\" longer than %zu characters",
                           dir, name, sizeof t->pad_cp / sizeof *t->pad_cp);
        if (!rc) {
            t->pad = id;
            memcpy(t->pad_cp, cp.v, cp.n * sizeof *cp.v);
            t->n_pad_cp = (int)cp.n;
        }
        free(cp.v);
    } else if (name && strcmp(name, "<|startoftext|>") == 0) {
        t->pad = t->bos;
    }
    json_decref(root);
    return rc;
}

int clip_tokenizer_load(const char *dir, clip_tokenizer **out)
{
    *out = NULL;
    clip_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return m2p_error(M2P_ENOMEM, "tokenizer: out of memory");
    t->sym_mask = (1u << 17) - 1;
    t->sym_slots = calloc(t->sym_mask + 1, sizeof *t->sym_slots);
    if (!t->sym_slots) {
        free(t);
        return m2p_error(M2P_ENOMEM, "tokenizer: out of memory");
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    int rc = load_vocab(t, path);
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/merges.txt", dir);
        rc = load_merges(t, path);
    }
    if (rc) {
        clip_tokenizer_free(t);
        return rc;
    }
    t->eos = vocab_id(t, "<|endoftext|>", -1);
    t->bos = vocab_id(t, "<|startoftext|>", -1);
    if (t->eos < 0 || t->bos < 0) {
        clip_tokenizer_free(t);
        return m2p_error(M2P_EFORMAT, "%s/vocab.json: no <|startoftext|> / <|endoftext|> token",
                         dir);
    }
    /* tokenizer_config.json of CLIP: unk_token is <|endoftext|>; pad_token too, except in
     * SD 2.x and SDXL's second tokenizer ("!"). */
    t->unk = t->eos;
    if ((rc = load_pad(t, dir))) {
        clip_tokenizer_free(t);
        return rc;
    }
    /* Symbols that are not vocabulary entries (vocab < 0) map to unk in bpe_word(), as
     * encoder.get(token, unk) does. */
    int32_t map[256];
    bytes_to_unicode(map);
    for (int b = 0; b < 256; b++) {
        char s[16];
        int n = clip_utf8_put(map[b], s);
        int k1 = sym_intern(t, s, (size_t)n, -1);
        memcpy(s + n, "</w>", 4);
        int k2 = sym_intern(t, s, (size_t)n + 4, -1);
        if (k1 < 0 || k2 < 0) {
            clip_tokenizer_free(t);
            return m2p_error(M2P_ENOMEM, "tokenizer: out of memory");
        }
        t->byte_sym[b] = k1;
        t->byte_sym_w[b] = k2;
    }
    *out = t;
    return 0;
}

void clip_tokenizer_free(clip_tokenizer *t)
{
    if (!t)
        return;
    for (int k = 0; k < t->n_syms; k++)
        free(t->syms[k].str);
    free(t->syms);
    free(t->sym_slots);
    free(t->merges);
    free(t->id_str);
    free(t);
}

const char *clip_token_str(const clip_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_ids ? t->id_str[id] : NULL;
}
int32_t clip_bos_id(const clip_tokenizer *t)
{
    return t->bos;
}
int32_t clip_eos_id(const clip_tokenizer *t)
{
    return t->eos;
}
int32_t clip_pad_id(const clip_tokenizer *t)
{
    return t->pad;
}

/* ---------------------------------------------------------------------------------------- */
/* Regex split and BPE                                                                       */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    int32_t *v;
    int n;
    size_t cap;
} idbuf;

static int id_push(idbuf *b, int32_t id)
{
    if ((size_t)b->n == b->cap) {
        int32_t *nv =
            m2p_array_grow(b->v, &b->cap, (size_t)b->n + 1, sizeof *nv, CLIP_MAX_TEXT_CPS);
        if (!nv)
            return -1;
        b->v = nv;
    }
    b->v[b->n++] = id;
    return 0;
}

static int is_letter(int32_t c)
{
    utf8proc_category_t k = utf8proc_category(c);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

static int is_number(int32_t c)
{
    utf8proc_category_t k = utf8proc_category(c);
    return k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO;
}

/* Python regex \s (White_Space). */
static int is_re_space(int32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

static int32_t ascii_lower(int32_t c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Case-insensitive match of an ASCII literal at v[i]. */
static int match_lit(const int32_t *v, size_t n, size_t i, const char *lit)
{
    size_t k = 0;
    for (; lit[k]; k++)
        if (i + k >= n || ascii_lower(v[i + k]) != lit[k])
            return 0;
    return (int)k;
}

/* BPE of one regex match (its UTF-8 bytes) -> vocabulary ids appended to out. */
static int bpe_word(const clip_tokenizer *t, const unsigned char *bytes, size_t n, idbuf *out,
                    int32_t *work)
{
    int m = (int)n;
    for (int i = 0; i < m; i++)
        work[i] = i == m - 1 ? t->byte_sym_w[bytes[i]] : t->byte_sym[bytes[i]];
    while (m > 1) {
        int32_t best_rank = INT32_MAX, a = -1, b = -1, merged = -1;
        for (int i = 0; i + 1 < m; i++) {
            const merge_slot *s = merge_find(t, work[i], work[i + 1]);
            if (s && s->rank < best_rank) {
                best_rank = s->rank;
                a = work[i];
                b = work[i + 1];
                merged = s->merged;
            }
        }
        if (merged < 0)
            break;
        int w = 0;
        for (int i = 0; i < m;) {
            if (i + 1 < m && work[i] == a && work[i + 1] == b) {
                work[w++] = merged;
                i += 2;
            } else {
                work[w++] = work[i++];
            }
        }
        m = w;
    }
    for (int i = 0; i < m; i++) {
        int32_t id = t->syms[work[i]].vocab;
        if (id_push(out, id >= 0 ? id : t->unk))
            return -1;
    }
    return 0;
}

static int emit_match(const clip_tokenizer *t, const int32_t *v, size_t s, size_t e, idbuf *out)
{
    char *u8;
    size_t len;
    if (clip_cps_to_utf8(v + s, e - s, &u8, &len))
        return -1;
    int32_t *work = malloc((len + 1) * sizeof *work);
    int rc = work ? bpe_word(t, (const unsigned char *)u8, len, out, work) : -1;
    free(work);
    free(u8);
    return rc;
}

/* The CLIP regex over normalised text, tokens appended to out. */
static int split_and_bpe(const clip_tokenizer *t, const int32_t *v, size_t n, idbuf *out)
{
    static const char *contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    size_t i = 0;
    while (i < n) {
        int k;
        if ((k = match_lit(v, n, i, "<|startoftext|>"))) {
            if (id_push(out, t->bos))
                return -1;
            i += (size_t)k;
            continue;
        }
        if ((k = match_lit(v, n, i, "<|endoftext|>"))) {
            if (id_push(out, t->eos))
                return -1;
            i += (size_t)k;
            continue;
        }
        k = 0;
        for (int c = 0; c < 7 && !k; c++)
            k = match_lit(v, n, i, contractions[c]);
        size_t e = i;
        if (k) {
            e = i + (size_t)k;
        } else if (is_letter(v[i])) {
            while (e < n && is_letter(v[e]))
                e++;
        } else if (is_number(v[i])) {
            e = i + 1;
        } else if (!is_re_space(v[i])) {
            while (e < n && !is_re_space(v[e]) && !is_letter(v[e]) && !is_number(v[e]))
                e++;
        } else {
            i++;
            continue;
        }
        if (emit_match(t, v, i, e, out))
            return -1;
        i = e;
    }
    return 0;
}

/* Exact (case-sensitive) special token at v[i]: the added-token trie split. */
static int special_at(const int32_t *v, size_t n, size_t i, const char *lit)
{
    size_t k = 0;
    for (; lit[k]; k++)
        if (i + k >= n || v[i + k] != lit[k])
            return 0;
    return (int)k;
}

static int pad_at(const clip_tokenizer *t, const int32_t *v, size_t n, size_t i)
{
    if (!t->n_pad_cp || i + (size_t)t->n_pad_cp > n)
        return 0;
    for (int k = 0; k < t->n_pad_cp; k++)
        if (v[i + k] != t->pad_cp[k])
            return 0;
    return t->n_pad_cp;
}

int clip_tokenize_full(const clip_tokenizer *t, const char *text, int32_t **ids, int *n)
{
    clip_cpbuf in = {0}, norm = {0};
    idbuf out = {0};
    *ids = NULL;
    *n = 0;
    if (!text)
        text = "";
    int rc = clip_utf8_decode((const unsigned char *)text, strlen(text), &in);
    if (!rc)
        rc = id_push(&out, t->bos);
    size_t start = 0, i = 0;
    while (!rc && i <= in.n) {
        int k = 0, sp = -1;
        if (i < in.n) {
            if ((k = special_at(in.v, in.n, i, "<|startoftext|>")))
                sp = t->bos;
            else if ((k = special_at(in.v, in.n, i, "<|endoftext|>")))
                sp = t->eos;
            else if ((k = pad_at(t, in.v, in.n, i)))
                sp = t->pad;
        }
        if (sp < 0 && i < in.n) {
            i++;
            continue;
        }
        norm.n = 0;
        /* in.v is NULL for an empty text: no pointer arithmetic on it (UB; found by
         * fuzz_tokenizer) */
        rc = i > start ? clip_normalize_piece(in.v + start, i - start, &norm) : 0;
        if (!rc)
            rc = split_and_bpe(t, norm.v, norm.n, &out);
        if (!rc && sp >= 0)
            rc = id_push(&out, sp);
        i += k ? (size_t)k : 1;
        start = i;
    }
    if (!rc)
        rc = id_push(&out, t->eos);
    free(in.v);
    free(norm.v);
    if (rc) {
        free(out.v);
        return m2p_error(M2P_ENOMEM, "tokenizer: out of memory");
    }
    *ids = out.v;
    *n = out.n;
    return 0;
}

int clip_tokenize(const clip_tokenizer *t, const char *text, int32_t *ids, int max_len,
                  int *n_untruncated)
{
    if (max_len < 2)
        return m2p_error(M2P_EINVAL, "tokenizer: max_len %d is below 2", max_len);
    int32_t *all;
    int n;
    int rc = clip_tokenize_full(t, text, &all, &n);
    if (rc)
        return rc;
    if (n_untruncated)
        *n_untruncated = n;
    int keep = n - 2 < max_len - 2 ? n - 2 : max_len - 2;
    ids[0] = all[0];
    memcpy(ids + 1, all + 1, (size_t)keep * sizeof *ids);
    ids[1 + keep] = t->eos;
    for (int i = 2 + keep; i < max_len; i++)
        ids[i] = t->pad;
    free(all);
    return 0;
}
