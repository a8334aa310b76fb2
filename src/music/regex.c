/*
 * regex.c — backtracking matcher for the band/song patterns (see regex.h).
 *
 * The pattern is parsed into a linked list of nodes; a group holds alternatives, each a node
 * list ending in a GROUP_END node that continues after the group. Matching is recursive over
 * nodes (not characters): a quantified single-character node counts how far it can match and
 * then tries the rest from the longest (greedy) or shortest (lazy) count, which is Python's
 * backtracking order for these patterns. Without back-references, whether the rest of the
 * pattern matches from node N at position i does not depend on how we got there, so a failed
 * (N, i) is remembered in a bitmap and never tried again: a search costs at most
 * nodes x positions visits (each counting a quantifier's run) instead of the exponential time
 * plain backtracking takes on patterns like a*a*a*a*b (a fuzzer found one taking 14 s on 64
 * characters). The order of attempts, and so every match and group, is unchanged.
 * Case-insensitivity compares simple lower-case forms (plus U+017F long s = 's'), as Python's
 * re.IGNORECASE on str patterns.
 */
#include "music/regex.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/buf.h"
#include "core/error.h"
#include "music/text.h"

/* Nodes, class items or alternatives in one pattern: the rules' patterns have a few dozen. */
#define RX_MAX_NODES 65536

enum { N_CHAR, N_ANY, N_CLASS, N_BOL, N_EOL, N_WORDB, N_NWORDB, N_GROUP, N_GROUP_END };
enum { C_SPACE = 1, C_NSPACE, C_DIGIT, C_NDIGIT, C_WORD, C_NWORD };

typedef struct cls_item {
    uint32_t lo, hi; /* range; or special kind in lo when hi == 0 */
    int special;
} cls_item;

typedef struct node {
    int type;
    uint32_t ch;     /* N_CHAR; or special class kind for escapes (\s) with type N_CLASS */
    cls_item *items; /* N_CLASS */
    size_t n_items, items_cap;
    int negate;
    int min, max, lazy;
    struct node *next;
    /* groups */
    struct node **alts;
    size_t n_alts, alts_cap;
    int cap;            /* capture index (1..), 0 = non-capturing */
    struct node *group; /* N_GROUP_END -> its group */
    size_t id;          /* index in rx.all: the memo's row */
} node;

struct rx {
    node *root; /* an N_GROUP (non-capturing) whose end continues to NULL (= accept) */
    int icase, multiline, n_caps;
    node **all; /* every node, for freeing */
    size_t n_all, cap_all;
};

typedef struct pstate {
    rx *r;
    const uint32_t *p;
    size_t i, n;
    int err;
} pstate;

static node *new_node(pstate *ps, int type)
{
    rx *r = ps->r;
    if (r->n_all == r->cap_all) {
        node **a = m2p_array_grow(r->all, &r->cap_all, r->n_all + 1, sizeof *a, RX_MAX_NODES);
        if (!a) {
            ps->err = M2P_ENOMEM;
            return NULL;
        }
        r->all = a;
    }
    node *n = calloc(1, sizeof *n);
    if (!n) {
        ps->err = M2P_ENOMEM;
        return NULL;
    }
    n->type = type;
    n->min = n->max = 1;
    n->id = r->n_all;
    r->all[r->n_all++] = n;
    return n;
}

static int add_item(pstate *ps, node *n, uint32_t lo, uint32_t hi, int special)
{
    cls_item *it =
        m2p_array_grow(n->items, &n->items_cap, n->n_items + 1, sizeof *it, RX_MAX_NODES);
    if (!it) {
        ps->err = M2P_ENOMEM;
        return -1;
    }
    n->items = it;
    it[n->n_items++] = (cls_item){lo, hi, special};
    return 0;
}

static int special_of(uint32_t c)
{
    switch (c) {
    case 's':
        return C_SPACE;
    case 'S':
        return C_NSPACE;
    case 'd':
        return C_DIGIT;
    case 'D':
        return C_NDIGIT;
    case 'w':
        return C_WORD;
    case 'W':
        return C_NWORD;
    }
    return 0;
}

static uint32_t escape_char(uint32_t c)
{
    switch (c) {
    case 'n':
        return '\n';
    case 't':
        return '\t';
    case 'r':
        return '\r';
    case 'f':
        return '\f';
    case 'v':
        return '\v';
    }
    return c; /* escaped punctuation or any other character stands for itself */
}

static node *parse_alts(pstate *ps, int cap);

static int parse_class(pstate *ps, node *n)
{
    /* at the character after '[' */
    if (ps->i < ps->n && ps->p[ps->i] == '^') {
        n->negate = 1;
        ps->i++;
    }
    int first = 1;
    while (ps->i < ps->n && (ps->p[ps->i] != ']' || first)) {
        uint32_t c = ps->p[ps->i++];
        int sp = 0;
        first = 0;
        if (c == '\\' && ps->i < ps->n) {
            uint32_t e = ps->p[ps->i++];
            if ((sp = special_of(e))) {
                if (add_item(ps, n, 0, 0, sp))
                    return -1;
                continue;
            }
            c = escape_char(e);
        }
        uint32_t hi = c;
        if (ps->i + 1 < ps->n && ps->p[ps->i] == '-' && ps->p[ps->i + 1] != ']') {
            ps->i++;
            hi = ps->p[ps->i++];
            if (hi == '\\' && ps->i < ps->n)
                hi = escape_char(ps->p[ps->i++]);
        }
        if (add_item(ps, n, c, hi, 0))
            return -1;
    }
    if (ps->i >= ps->n) {
        ps->err = M2P_EFORMAT;
        return -1;
    }
    ps->i++; /* ']' */
    return 0;
}

/* One sequence up to '|' or ')' (or the end); returns its first node, appends `end`. */
static node *parse_seq(pstate *ps, node *end)
{
    node *head = NULL, **tail = &head;
    while (ps->i < ps->n && !ps->err) {
        uint32_t c = ps->p[ps->i];
        if (c == '|' || c == ')')
            break;
        ps->i++;
        node *n = NULL;
        if (c == '(') {
            int capture = 1;
            if (ps->i + 1 < ps->n && ps->p[ps->i] == '?' && ps->p[ps->i + 1] == ':') {
                capture = 0;
                ps->i += 2;
            }
            int idx = capture ? ++ps->r->n_caps : 0;
            if (idx > RX_MAX_GROUPS) {
                ps->err = M2P_EFORMAT;
                return NULL;
            }
            n = parse_alts(ps, idx);
            if (!n)
                return NULL;
            if (ps->i >= ps->n || ps->p[ps->i] != ')') {
                ps->err = M2P_EFORMAT;
                return NULL;
            }
            ps->i++;
        } else if (c == '[') {
            if (!(n = new_node(ps, N_CLASS)) || parse_class(ps, n))
                return NULL;
        } else if (c == '.') {
            n = new_node(ps, N_ANY);
        } else if (c == '^') {
            n = new_node(ps, N_BOL);
        } else if (c == '$') {
            n = new_node(ps, N_EOL);
        } else if (c == '\\') {
            if (ps->i >= ps->n) {
                ps->err = M2P_EFORMAT;
                return NULL;
            }
            uint32_t e = ps->p[ps->i++];
            int sp = special_of(e);
            if (e == 'b' || e == 'B') {
                n = new_node(ps, e == 'b' ? N_WORDB : N_NWORDB);
            } else if (sp) {
                if ((n = new_node(ps, N_CLASS)) && add_item(ps, n, 0, 0, sp))
                    return NULL;
            } else if ((n = new_node(ps, N_CHAR))) {
                n->ch = escape_char(e);
            }
        } else if (c == '*' || c == '+' || c == '?' || c == '{') {
            ps->err = M2P_EFORMAT; /* nothing to repeat */
            return NULL;
        } else if ((n = new_node(ps, N_CHAR))) {
            n->ch = c;
        }
        if (!n)
            return NULL;
        /* quantifier */
        if (ps->i < ps->n) {
            uint32_t q = ps->p[ps->i];
            int mn = -1, mx = -1;
            if (q == '*')
                mn = 0, mx = -2;
            else if (q == '+')
                mn = 1, mx = -2;
            else if (q == '?')
                mn = 0, mx = 1;
            else if (q == '{') {
                size_t j = ps->i + 1;
                int a = 0, b = -1, digits = 0, big = 0;
                /* counts past RX_MAX_REPEAT are refused below (they overflowed int: fuzz_regex) */
                while (j < ps->n && ps->p[j] >= '0' && ps->p[j] <= '9') {
                    a = a * 10 + (int)(ps->p[j++] - '0'), digits++;
                    if (a > RX_MAX_REPEAT)
                        big = 1, a = RX_MAX_REPEAT;
                }
                if (digits && j < ps->n && ps->p[j] == ',') {
                    j++;
                    if (j < ps->n && ps->p[j] >= '0' && ps->p[j] <= '9') {
                        b = 0;
                        while (j < ps->n && ps->p[j] >= '0' && ps->p[j] <= '9') {
                            b = b * 10 + (int)(ps->p[j++] - '0');
                            if (b > RX_MAX_REPEAT)
                                big = 1, b = RX_MAX_REPEAT;
                        }
                    } else {
                        b = -2;
                    }
                } else {
                    b = a;
                }
                if (digits && j < ps->n && ps->p[j] == '}') {
                    if (big) {
                        ps->err = M2P_EFORMAT; /* repetition count too large */
                        return NULL;
                    }
                    mn = a;
                    mx = b;
                    ps->i = j; /* at '}', consumed below */
                }
            }
            if (mn >= 0) {
                if (n->type == N_GROUP || n->type == N_BOL || n->type == N_EOL ||
                    n->type == N_WORDB || n->type == N_NWORDB) {
                    ps->err = M2P_EFORMAT; /* not needed by the rules; refuse clearly */
                    return NULL;
                }
                ps->i++;
                n->min = mn;
                n->max = mx == -2 ? 0x7fffffff : mx;
                if (ps->i < ps->n && ps->p[ps->i] == '?') {
                    n->lazy = 1;
                    ps->i++;
                }
            }
        }
        *tail = n; /* a group's alternatives end in its GROUP_END, which goes on at next */
        tail = &n->next;
    }
    if (ps->err)
        return NULL;
    *tail = end;
    return head;
}

static node *parse_alts(pstate *ps, int cap)
{
    node *g = new_node(ps, N_GROUP);
    node *end = new_node(ps, N_GROUP_END);
    if (!g || !end)
        return NULL;
    g->cap = cap;
    end->group = g;
    for (;;) {
        node *seq = parse_seq(ps, end);
        if (ps->err)
            return NULL;
        node **alts =
            m2p_array_grow(g->alts, &g->alts_cap, g->n_alts + 1, sizeof *alts, RX_MAX_NODES);
        if (!alts) {
            ps->err = M2P_ENOMEM;
            return NULL;
        }
        g->alts = alts;
        g->alts[g->n_alts++] = seq;
        if (ps->i < ps->n && ps->p[ps->i] == '|') {
            ps->i++;
            continue;
        }
        break;
    }
    return g;
}

void rx_free(rx *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_all; i++) {
        free(r->all[i]->items);
        free(r->all[i]->alts);
        free(r->all[i]);
    }
    free(r->all);
    free(r);
}

int rx_compile(const char *pattern, const char *flags, rx **out)
{
    *out = NULL;
    rx *r = calloc(1, sizeof *r);
    if (!r)
        return m2p_error(M2P_ENOMEM, "out of memory");
    r->icase = flags && strchr(flags, 'I');
    r->multiline = flags && strchr(flags, 'M');
    ustr u;
    if (ustr_from_utf8(&u, pattern)) {
        free(r);
        return m2p_error(M2P_ENOMEM, "out of memory");
    }
    pstate ps = {.r = r, .p = u.c, .n = u.n};
    r->root = parse_alts(&ps, 0);
    if (!ps.err && ps.i != ps.n)
        ps.err = M2P_EFORMAT; /* an unmatched ')' */
    ustr_free(&u);
    if (ps.err || !r->root) {
        rx_free(r);
        int code = ps.err ? ps.err : M2P_EFORMAT;
        return m2p_error(code, "regular expression \"%s\": %s", pattern,
                         code == M2P_ENOMEM ? "out of memory" : "unsupported or bad syntax");
    }
    *out = r;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Matching                                                                                 */
/* ---------------------------------------------------------------------------------------- */

typedef struct mstate {
    const rx *r;
    const uint32_t *s;
    size_t n;
    size_t g[2 * (RX_MAX_GROUPS + 1)];
    size_t end;
    uint64_t *failed; /* bit id * (n + 1) + i: match_here(node id, i) returned 0 */
} mstate;

static uint32_t fold(uint32_t c)
{
    if (c == 0x17F) /* LATIN SMALL LETTER LONG S folds with 's' */
        return 's';
    return text_lower_cp(c);
}

static int is_word(uint32_t c)
{
    if (c < 0x80)
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               c == '_';
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
           (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO) ||
           (cat >= UTF8PROC_CATEGORY_MN && cat <= UTF8PROC_CATEGORY_ME);
}

static int is_digit(uint32_t c)
{
    return c < 0x80 ? (c >= '0' && c <= '9')
                    : utf8proc_category((utf8proc_int32_t)c) == UTF8PROC_CATEGORY_ND;
}

static int special_match(int sp, uint32_t c)
{
    switch (sp) {
    case C_SPACE:
        return text_is_space(c);
    case C_NSPACE:
        return !text_is_space(c);
    case C_DIGIT:
        return is_digit(c);
    case C_NDIGIT:
        return !is_digit(c);
    case C_WORD:
        return is_word(c);
    case C_NWORD:
        return !is_word(c);
    }
    return 0;
}

static int in_items(const node *nd, uint32_t c)
{
    for (size_t i = 0; i < nd->n_items; i++) {
        const cls_item *it = &nd->items[i];
        if (it->special ? special_match(it->special, c) : (c >= it->lo && c <= it->hi))
            return 1;
    }
    return 0;
}

static int atom_match(const mstate *m, const node *nd, uint32_t c)
{
    switch (nd->type) {
    case N_CHAR:
        return m->r->icase ? fold(c) == fold(nd->ch) : c == nd->ch;
    case N_ANY:
        return c != '\n';
    case N_CLASS: {
        int in = in_items(nd, c);
        if (!in && m->r->icase) {
            uint32_t lo = fold(c), up = (uint32_t)utf8proc_toupper((utf8proc_int32_t)c);
            in = in_items(nd, lo) || in_items(nd, up);
            for (size_t i = 0; !in && i < nd->n_items; i++) /* a class letter vs folded text */
                if (!nd->items[i].special && nd->items[i].lo == nd->items[i].hi &&
                    fold(nd->items[i].lo) == lo)
                    in = 1;
        }
        return nd->negate ? !in : in;
    }
    }
    return 0;
}

static int match_node(mstate *m, const node *nd, size_t i);

static int match_here(mstate *m, const node *nd, size_t i)
{
    if (!nd) {
        m->end = i;
        return 1;
    }
    size_t bit = nd->id * (m->n + 1) + i;
    if (m->failed[bit / 64] >> (bit % 64) & 1)
        return 0;
    if (match_node(m, nd, i))
        return 1;
    m->failed[bit / 64] |= (uint64_t)1 << (bit % 64);
    return 0;
}

static int match_node(mstate *m, const node *nd, size_t i)
{
    switch (nd->type) {
    case N_BOL:
        if (i == 0 || (m->r->multiline && m->s[i - 1] == '\n'))
            return match_here(m, nd->next, i);
        return 0;
    case N_EOL:
        if (i == m->n || (m->r->multiline && m->s[i] == '\n') ||
            (!m->r->multiline && i + 1 == m->n && m->s[i] == '\n'))
            return match_here(m, nd->next, i);
        return 0;
    case N_WORDB:
    case N_NWORDB: {
        int a = i > 0 && is_word(m->s[i - 1]), b = i < m->n && is_word(m->s[i]);
        if ((a != b) == (nd->type == N_WORDB))
            return match_here(m, nd->next, i);
        return 0;
    }
    case N_GROUP:
        for (size_t k = 0; k < nd->n_alts; k++) {
            size_t old = nd->cap ? m->g[2 * nd->cap] : 0;
            if (nd->cap)
                m->g[2 * nd->cap] = i;
            if (match_here(m, nd->alts[k], i))
                return 1;
            if (nd->cap)
                m->g[2 * nd->cap] = old;
        }
        return 0;
    case N_GROUP_END: {
        int cap = nd->group->cap;
        size_t old = cap ? m->g[2 * cap + 1] : 0;
        if (cap)
            m->g[2 * cap + 1] = i;
        if (match_here(m, nd->group->next, i))
            return 1;
        if (cap)
            m->g[2 * cap + 1] = old;
        return 0;
    }
    default: {
        size_t k = 0, maxk = (size_t)nd->max;
        while (k < maxk && i + k < m->n && atom_match(m, nd, m->s[i + k]))
            k++;
        if (k < (size_t)nd->min)
            return 0;
        if (nd->lazy) {
            for (size_t j = (size_t)nd->min; j <= k; j++)
                if (match_here(m, nd->next, i + j))
                    return 1;
        } else {
            for (size_t j = k + 1; j-- > (size_t)nd->min;)
                if (match_here(m, nd->next, i + j))
                    return 1;
        }
        return 0;
    }
    }
}

int rx_search(const rx *r, const uint32_t *s, size_t n, size_t start, size_t *g)
{
    if (n >= SIZE_MAX / 2 / r->n_all)
        return M2P_ENOMEM;
    size_t bits = r->n_all * (n + 1);
    uint64_t stack_memo[64];
    mstate m = {.r = r, .s = s, .n = n, .failed = stack_memo};
    if (bits <= 64 * 64)
        memset(stack_memo, 0, sizeof stack_memo);
    else if (!(m.failed = calloc(bits / 64 + 1, sizeof *m.failed)))
        return M2P_ENOMEM;
    int found = 0;
    for (size_t st = start; st <= n && !found; st++) {
        for (int k = 0; k < 2 * (RX_MAX_GROUPS + 1); k++)
            m.g[k] = (size_t)-1;
        if (match_here(&m, r->root, st)) {
            m.g[0] = st;
            m.g[1] = m.end;
            if (g)
                memcpy(g, m.g, sizeof m.g);
            found = 1;
        }
    }
    if (m.failed != stack_memo)
        free(m.failed);
    return found;
}
