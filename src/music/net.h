/*
 * net.h — the small libcurl client the music sources use (MusicBrainz, Spotify, LLM).
 * One request, whole response in memory (capped), a timeout on every request.
 */
#ifndef M2P_MUSIC_NET_H
#define M2P_MUSIC_NET_H

#include <stddef.h>

typedef struct net_request {
    const char *method;           /* "GET" (default) or "POST" */
    const char *url;
    const char *const *headers;   /* NULL-terminated "Name: value" lines, or NULL */
    const char *body;             /* POST body, or NULL */
    const char *userpwd;          /* "user:password" for HTTP Basic auth, or NULL */
    long timeout_s;               /* whole request; default 10 */
} net_request;

/* Performs the request. 0 with *status and a malloc'd NUL-terminated *body on any HTTP
 * answer (also 4xx/5xx); M2P_ENETWORK / M2P_ETIMEOUT when no answer came. */
int net_fetch(const net_request *rq, long *status, char **body, size_t *body_len);
/* Percent-encode for a query string (malloc'd) or NULL. */
char *net_escape(const char *s);

#endif
