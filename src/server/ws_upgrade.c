/*
 * ws_upgrade.c — the WebSocket opening handshake of /ws/progress (RFC 6455 4.2), for ws.c: the
 * upgrade request's checks and Sec-WebSocket-Accept, the refusals (JSON bodies, as the API's),
 * and the connection's socket found by its TCP addresses, since CivetWeb 1.15 gives a request
 * handler no other way to it. References: RFC 6455 1.3 and 4.2.1-4.2.2, RFC 9110 15.5.22 (426).
 */
#include <dirent.h>
#include <netdb.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "server/server_internal.h"
#include "server/ws_upgrade.h"

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key (4.2.2: base64 of the SHA-1 of the key and the
 * protocol's GUID) into out; -1 when the key is not base64 of 16 bytes, -2 when libcrypto failed
 * (out of memory). */
static int upgrade_accept_key(const char *key, char out[29])
{
    /* 4.2.1: the key is base64 of 16 random bytes: 22 characters and "==" */
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (!key || strlen(key) != 24 || strcmp(key + 22, "=="))
        return -1;
    for (int i = 0; i < 22; i++)
        if (!strchr(b64, key[i]))
            return -1;
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"; /* RFC 6455 1.3 */
    char in[24 + sizeof guid];
    memcpy(in, key, 24);
    memcpy(in + 24, guid, sizeof guid - 1);
    unsigned char dig[EVP_MAX_MD_SIZE];
    unsigned dl = 0;
    if (!EVP_Digest(in, 24 + sizeof guid - 1, dig, &dl, EVP_sha1(), NULL) || dl != 20)
        return -2;
    EVP_EncodeBlock((unsigned char *)out, dig, 20); /* 28 characters, then a NUL */
    return 0;
}

/* Does a comma-separated header value hold token (any case)? */
static int upgrade_has_token(const char *v, const char *token)
{
    size_t n = strlen(token);
    while (v && *v) {
        v += strspn(v, " \t,");
        size_t k = strcspn(v, ",");
        size_t e = k;
        while (e && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e == n && !strncasecmp(v, token, n))
            return 1;
        v += k;
    }
    return 0;
}

int ws_upgrade_socket(const struct mg_request_info *ri)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int found = -1;
    struct dirent *e;
    while (found < 0 && (e = readdir(d))) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        struct stat st;
        if (*end || end == e->d_name || fd < 0 || fd == dirfd(d) || fstat((int)fd, &st) ||
            !S_ISSOCK(st.st_mode))
            continue;
        struct sockaddr_storage la, pa;
        socklen_t ll = sizeof la, pl = sizeof pa;
        if (getsockname((int)fd, (struct sockaddr *)&la, &ll) ||
            getpeername((int)fd, (struct sockaddr *)&pa, &pl))
            continue;
        int lport, pport;
        if (la.ss_family == AF_INET && pa.ss_family == AF_INET) {
            lport = ntohs(((struct sockaddr_in *)&la)->sin_port);
            pport = ntohs(((struct sockaddr_in *)&pa)->sin_port);
        } else if (la.ss_family == AF_INET6 && pa.ss_family == AF_INET6) {
            lport = ntohs(((struct sockaddr_in6 *)&la)->sin6_port);
            pport = ntohs(((struct sockaddr_in6 *)&pa)->sin6_port);
        } else {
            continue;
        }
        if (lport != ri->server_port || pport != ri->remote_port)
            continue;
        char host[64]; /* written as CivetWeb writes remote_addr */
        if (getnameinfo((struct sockaddr *)&pa, pl, host, sizeof host, NULL, 0, NI_NUMERICHOST))
            continue;
        if (!strcmp(host, ri->remote_addr))
            found = (int)fd;
    }
    closedir(d);
    return found;
}

int ws_upgrade_refuse(struct mg_connection *c, int status, const char *headers, const char *msg)
{
    json_t *o = json_pack("{s:b, s:s, s:s}", "success", 0, "error", msg, "detail", msg);
    char *txt = http_dumps(o);
    json_decref(o);
    static const char oom[] = "{\"success\":false,\"error\":\"out of memory\"}";
    http_send(c, status, "application/json", txt ? txt : oom, txt ? strlen(txt) : sizeof oom - 1,
              headers);
    free(txt);
    return status;
}

/* RFC 6455 4.2.1 (what the client sends), 4.2.2 (426 with the versions we speak) */
int ws_upgrade_check(struct mg_connection *c, const struct mg_request_info *ri, char accept[29])
{
    static const char upgrade[] = "Upgrade: websocket\r\nConnection: Upgrade\r\n";
    if (strcmp(ri->request_method, "GET"))
        return ws_upgrade_refuse(c, 405, "Allow: GET\r\n",
                                 WS_PATH
                                 " is a WebSocket: open it with GET and Upgrade: websocket");
    if (!upgrade_has_token(mg_get_header(c, "Upgrade"), "websocket") ||
        !upgrade_has_token(mg_get_header(c, "Connection"), "upgrade"))
        return ws_upgrade_refuse(c, 426, upgrade,
                                 WS_PATH " is a WebSocket: connect with a WebSocket client "
                                         "(Upgrade: websocket, Connection: Upgrade)");
    if (strcmp(ri->http_version, "1.1"))
        return ws_upgrade_refuse(c, 400, NULL, "a WebSocket upgrade needs HTTP/1.1");
    const char *v = mg_get_header(c, "Sec-WebSocket-Version");
    if (!v || strcmp(v, "13"))
        return ws_upgrade_refuse(c, 426, "Sec-WebSocket-Version: 13\r\n",
                                 "this server speaks WebSocket version 13 (RFC 6455): send "
                                 "Sec-WebSocket-Version: 13");
    if (ri->content_length > 0 || mg_get_header(c, "Transfer-Encoding"))
        return ws_upgrade_refuse(c, 400, NULL, "a WebSocket upgrade carries no body");
    int rc = upgrade_accept_key(mg_get_header(c, "Sec-WebSocket-Key"), accept);
    if (rc == -2)
        return ws_upgrade_refuse(c, 503, "Retry-After: 5\r\n", "out of memory; retry later");
    if (rc)
        return ws_upgrade_refuse(
            c, 400, NULL, "Sec-WebSocket-Key must be base64 of 16 random bytes (RFC 6455 4.1)");
    return 0;
}
