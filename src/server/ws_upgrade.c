/*
 * ws_upgrade.c — the WebSocket opening handshake of /ws/progress (RFC 6455 4.2), for ws.c: the
 * upgrade request's checks and Sec-WebSocket-Accept, the refusals (JSON bodies, as the API's),
 * and the connection's socket found by its TCP addresses (/proc/net/tcp), since CivetWeb 1.15
 * gives a request handler no other way to it. References: RFC 6455 1.3 and 4.2.1-4.2.2, RFC
 * 9110 15.5.22 (426).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

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

/* The inode of the TCP socket with local port lport and peer raddr:rport, from the kernel's
 * table of the connections (/proc/net/tcp or tcp6: addresses as the kernel's 32-bit words in hex,
 * ports in hex); 0 when not there. */
static unsigned long upgrade_inode(const char *table, int v6, const unsigned char *raddr, int lport,
                                   int rport)
{
    char want[33] = "";
    for (int i = 0; i < (v6 ? 4 : 1); i++) {
        uint32_t word;
        memcpy(&word, raddr + 4 * i, 4);
        snprintf(want + 8 * i, 9, "%08X", (unsigned)word);
    }
    FILE *f = fopen(table, "r");
    if (!f)
        return 0;
    char line[512], local[64], remote[64];
    unsigned long inode = 0, ino;
    while (!inode && fgets(line, sizeof line, f)) {
        if (sscanf(line, " %*d: %63s %63s %*x %*s %*s %*s %*d %*d %lu", local, remote, &ino) != 3)
            continue;
        char *lp = strchr(local, ':'), *rp = strchr(remote, ':');
        if (!lp || !rp || strtol(lp + 1, NULL, 16) != lport || strtol(rp + 1, NULL, 16) != rport)
            continue;
        *rp = 0;
        if (!strcasecmp(remote, want))
            inode = ino;
    }
    fclose(f);
    return inode;
}

/* The socket is found through /proc: its inode from the connection table, then the descriptor
 * whose link names that inode. Other connections' descriptors are never touched (fstat or
 * getpeername on them would race with their worker closing them). */
int ws_upgrade_socket(const struct mg_request_info *ri)
{
    unsigned char addr[16];
    int v6 = strchr(ri->remote_addr, ':') != NULL;
    if (inet_pton(v6 ? AF_INET6 : AF_INET, ri->remote_addr, addr) != 1)
        return -1;
    unsigned long inode = upgrade_inode(v6 ? "/proc/net/tcp6" : "/proc/net/tcp", v6, addr,
                                        ri->server_port, ri->remote_port);
    if (!inode)
        return -1;
    char link[64], want[64];
    snprintf(want, sizeof want, "socket:[%lu]", inode);
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int found = -1;
    struct dirent *e;
    while (found < 0 && (e = readdir(d))) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end || end == e->d_name || fd < 0)
            continue;
        ssize_t n = readlinkat(dirfd(d), e->d_name, link, sizeof link - 1);
        if (n <= 0)
            continue;
        link[n] = 0;
        if (!strcmp(link, want))
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
