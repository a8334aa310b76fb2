/*
 * child_env.h — the environment a child program (yt-dlp and what it starts) gets: what a
 * program needs to run, never the server's secrets.
 */
#ifndef M2P_CORE_CHILD_ENV_H
#define M2P_CORE_CHILD_ENV_H

/* A NULL-terminated copy of the allowed part of this process's environment, for posix_spawn:
 *   PATH, HOME, USER, LOGNAME, SHELL, LANG, LANGUAGE, LC_*, TZ, TMPDIR, TERM, XDG_CACHE_HOME,
 *   PYTHONUSERBASE, the proxy variables (http_proxy, https_proxy, no_proxy, all_proxy in either
 *   case) and the CA settings (SSL_CERT_FILE, SSL_CERT_DIR, REQUESTS_CA_BUNDLE),
 *   plus the names in MUS2PIC_CHILD_ENV (comma-separated; "PREFIX*" matches a prefix).
 * A name that looks like a secret (MUS2PIC_TOKEN, OPENAI_API_KEY, HF_TOKEN, anything containing
 * TOKEN, SECRET, PASSWORD or ending in _KEY) is never passed, even when listed.
 * NULL when out of memory (with the error set); free with m2p_child_env_free. */
char **m2p_child_env(void);
void m2p_child_env_free(char **env);

#endif
