/*
 * fuzz_multipart.c — libFuzzer target for multipart uploads: POST /api/analyze on an
 * in-process server with no job workers (fuzz_server_env.h). CivetWeb's form parser
 * (mg_handle_form_request) feeds our handling around it in src/server/api.c: field routing,
 * the stored file's sanitised name, the UTF-8 and length checks of band/song, duration and
 * prompt_version, the SHA-256 upload cache and the queued analysis.
 *
 * Input: the request body (at most 64 KiB), sent with Content-Type multipart/form-data;
 * boundary=B0und over a loopback socket. Oracle: the server answers every body with a JSON
 * answer of 202, 400 or 413 within 20 s (ASan/UBSan watch the server's threads in-process);
 * a connection reset after an early answer is accepted.
 *
 * fuzz-flags: -detect_leaks=0 (fuzz_server_env.h says why)
 */
#define _GNU_SOURCE /* strcasestr */
#include "fuzz_server_env.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>

static int send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024)
        return 0;
    int port = server_port(fuzz_server());
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        abort();
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* Closed with a reset: no TIME_WAIT, so a long run does not use up the local ports. */
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    int c;
    while ((c = connect(fd, (struct sockaddr *)&a, sizeof a)) != 0 && errno == EINTR)
        ;
    if (c != 0) {
        fprintf(stderr, "fuzz_multipart: cannot connect: %s\n", strerror(errno));
        abort();
    }
    char head[512];
    int hn = snprintf(head, sizeof head,
                      "POST /api/analyze HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                      "Content-Type: multipart/form-data; boundary=B0und\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      port, size);
    /* The server may answer and close before reading everything: a failed send is fine. */
    if (send_all(fd, head, (size_t)hn) == 0)
        send_all(fd, data, size);
    /* Read one whole answer (headers, then Content-Length bytes), whether or not the server
     * closes after it. */
    char resp[8192];
    size_t got = 0, want = 0;
    for (;;) {
        ssize_t r = recv(fd, resp + got, sizeof resp - 1 - got, 0);
        if (r < 0 && errno == EINTR)
            continue; /* libFuzzer's timer signal */
        if (r < 0 && errno == ECONNRESET) {
            /* The server answered and closed before reading all of a body it refused: the
             * kernel's reset may discard its answer. Not a finding. */
            close(fd);
            return 0;
        }
        if (r < 0) {
            resp[got] = '\0';
            fprintf(stderr, "fuzz_multipart: no whole answer within 20 s (%s); got:\n%s\n",
                    strerror(errno), resp);
            abort();
        }
        if (r == 0 || (got += (size_t)r) == sizeof resp - 1)
            break;
        resp[got] = '\0';
        const char *end = strstr(resp, "\r\n\r\n");
        const char *cl = strcasestr(resp, "\r\nContent-Length:");
        if (end && cl && cl < end && !want)
            want = (size_t)(end + 4 - resp) + strtoul(cl + 17, NULL, 10);
        if (want && got >= want)
            break;
    }
    close(fd);
    resp[got] = '\0';
    int status = 0;
    if (sscanf(resp, "HTTP/1.1 %d", &status) != 1 ||
        (status != 202 && status != 400 && status != 413)) {
        fprintf(stderr, "fuzz_multipart: unexpected answer:\n%s\n", resp);
        abort();
    }
    const char *body = strstr(resp, "\r\n\r\n");
    json_t *j = body ? json_loads(body + 4, 0, NULL) : NULL;
    if (!json_is_object(j)) {
        fprintf(stderr, "fuzz_multipart: the answer is not JSON:\n%s\n", resp);
        abort();
    }
    json_decref(j);
    return 0;
}
