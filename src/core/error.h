/*
 * error.h — library-internal error reporting.
 *
 * Every failing function records a message on the calling thread (m2p_errmsg() reads it) and
 * returns its negative code, so call sites read `return m2p_error(M2P_EINVAL, "steps %d ...", n);`.
 * The message is thread-local, like errno, so worker threads never see each other's errors.
 */
#ifndef M2P_CORE_ERROR_H
#define M2P_CORE_ERROR_H

#include "mus2pic.h"

#if defined(__GNUC__)
#define M2P_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define M2P_PRINTF(a, b)
#endif

/* Record a message for code and return code. */
int m2p_error(int code, const char *fmt, ...) M2P_PRINTF(2, 3);
/* Prefix the current message with more context ("loading unet: <old message>"); returns code. */
int m2p_error_wrap(int code, const char *fmt, ...) M2P_PRINTF(2, 3);
void m2p_error_clear(void);

void m2p_log(int level, const char *fmt, ...) M2P_PRINTF(2, 3);
#define M2P_LOGE(...) m2p_log(M2P_LOG_ERROR, __VA_ARGS__)
#define M2P_LOGW(...) m2p_log(M2P_LOG_WARN, __VA_ARGS__)
#define M2P_LOGI(...) m2p_log(M2P_LOG_INFO, __VA_ARGS__)
#define M2P_LOGD(...) m2p_log(M2P_LOG_DEBUG, __VA_ARGS__)

#endif
