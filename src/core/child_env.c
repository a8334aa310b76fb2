/*
 * child_env.c — builds the environment for child programs (child_env.h): an allow-list over
 * this process's environ, extended by MUS2PIC_CHILD_ENV, with secret-looking names refused
 * after the allow-list so no configuration can pass OPENAI_API_KEY, HF_TOKEN or MUS2PIC_TOKEN
 * to yt-dlp. The strings are copied, so a later setenv() in another thread cannot free them
 * under the spawn.
 */
#define _GNU_SOURCE
#include "core/child_env.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

extern char **environ;

static const char *const child_env_allowed[] = {
    "PATH",       "HOME",          "USER",        "LOGNAME",        "SHELL",
    "LANG",       "LANGUAGE",      "LC_*",        "TZ",             "TMPDIR",
    "TERM",       "XDG_CACHE_HOME", "PYTHONUSERBASE", "http_proxy", "https_proxy",
    "no_proxy",   "all_proxy",     "HTTP_PROXY",  "HTTPS_PROXY",    "NO_PROXY",
    "ALL_PROXY",  "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
};

/* name (n bytes) matches pattern ("NAME" exactly, or "PREFIX*"). */
static int child_env_match(const char *pat, size_t plen, const char *name, size_t n)
{
    if (plen && pat[plen - 1] == '*')
        return n >= plen - 1 && !strncmp(pat, name, plen - 1);
    return plen == n && !strncmp(pat, name, n);
}

static int child_env_secret(const char *name, size_t n)
{
    char up[256];
    if (n >= sizeof up)
        return 1; /* an odd, long name is not worth the risk */
    for (size_t i = 0; i < n; i++)
        up[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
    up[n] = '\0';
    return strstr(up, "TOKEN") || strstr(up, "SECRET") || strstr(up, "PASSWORD") ||
           strstr(up, "PASSWD") || (n >= 4 && !strcmp(up + n - 4, "_KEY")) ||
           strstr(up, "API_KEY") || strstr(up, "CREDENTIAL");
}

static int child_env_listed(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof child_env_allowed / sizeof child_env_allowed[0]; i++)
        if (child_env_match(child_env_allowed[i], strlen(child_env_allowed[i]), name, n))
            return 1;
    const char *extra = getenv("MUS2PIC_CHILD_ENV");
    for (const char *s = extra; s && *s;) {
        size_t len = strcspn(s, ",");
        if (len && child_env_match(s, len, name, n))
            return 1;
        s += len + (s[len] == ',');
    }
    return 0;
}

char **m2p_child_env(void)
{
    size_t total = 0;
    for (char **e = environ; e && *e; e++)
        total++;
    char **out = calloc(total + 1, sizeof *out);
    if (!out) {
        m2p_error(M2P_ENOMEM, "out of memory (child environment)");
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < total; i++) {
        const char *kv = environ[i];
        const char *eq = strchr(kv, '=');
        if (!eq || eq == kv)
            continue;
        size_t n = (size_t)(eq - kv);
        if (!child_env_listed(kv, n) || child_env_secret(kv, n))
            continue;
        if (!(out[k] = strdup(kv))) {
            m2p_child_env_free(out);
            m2p_error(M2P_ENOMEM, "out of memory (child environment)");
            return NULL;
        }
        k++;
    }
    return out;
}

void m2p_child_env_free(char **env)
{
    for (char **e = env; e && *e; e++)
        free(*e);
    free(env);
}
