/*
 * error.c — thread-local error messages and leveled logging to stderr.
 *
 * Messages are kept per thread (like errno) so that the server's workers and the CLI share one
 * mechanism without locks; m2p_errmsg() returns the last message recorded on this thread.
 */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define M2P_ERRMSG_MAX 1024

static _Thread_local char errmsg[M2P_ERRMSG_MAX];
static int log_level = M2P_LOG_WARN;

const char *m2p_strerror(int code)
{
    switch (code) {
    case M2P_OK: return "ok";
    case M2P_EINVAL: return "invalid argument";
    case M2P_ENOMEM: return "out of memory";
    case M2P_EIO: return "input/output error";
    case M2P_EFORMAT: return "malformed data";
    case M2P_ENOTFOUND: return "not found";
    case M2P_ECANCELED: return "canceled";
    case M2P_EUNSUPPORTED: return "unsupported";
    case M2P_ENETWORK: return "network error";
    case M2P_ETIMEOUT: return "timed out";
    case M2P_EDECODE: return "audio could not be decoded";
    case M2P_ETOOBIG: return "over a limit";
    case M2P_EINTERNAL: return "internal error";
    case M2P_EBUSY: return "busy";
    default: return "unknown error";
    }
}

const char *m2p_errmsg(void) { return errmsg; }

void m2p_error_clear(void) { errmsg[0] = '\0'; }

int m2p_error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    va_end(ap);
    return code;
}

int m2p_error_wrap(int code, const char *fmt, ...)
{
    char old[M2P_ERRMSG_MAX];
    memcpy(old, errmsg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof errmsg && old[0])
        snprintf(errmsg + n, sizeof errmsg - (size_t)n, ": %s", old);
    return code;
}

void m2p_log_set_level(int level) { log_level = level; }

void m2p_log(int level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    static const char *names[] = {"error", "warn", "info", "debug"};
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "mus2pic %s: %s\n", names[level < 0 ? 0 : level > 3 ? 3 : level], line);
}
