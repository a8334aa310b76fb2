/*
 * store_api.c — the store's public calls beyond open/close (include/mus2pic.h): where it is
 * (m2p_store_where, for programs' logs), and its cache table as an m2p_cache, the form in which
 * the analysis takes its cache: the music module keeps band/song and genre answers through the
 * two calls and never sees the store (dependencies point one way: jobs and the CLI open the
 * store and hand this over). The table and its expiry are store.c's (store_cache_get/put).
 */
#include "mus2pic.h"
#include "store/store.h"

static int store_cache_get_cb(void *ud, const char *ns, const char *key, char **value)
{
    return store_cache_get(ud, ns, key, value);
}

static int store_cache_put_cb(void *ud, const char *ns, const char *key, const char *value,
                              int64_t ttl_s)
{
    return store_cache_put(ud, ns, key, value, ttl_s);
}

m2p_cache m2p_store_cache(m2p_store *s)
{
    m2p_cache c = {store_cache_get_cb, store_cache_put_cb, s};
    return c;
}

const char *m2p_store_where(m2p_store *s)
{
    return store_where(s);
}
