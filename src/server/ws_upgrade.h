/*
 * ws_upgrade.h — the WebSocket opening handshake of /ws/progress (ws_upgrade.c), for ws.c.
 */
#ifndef M2P_WS_UPGRADE_H
#define M2P_WS_UPGRADE_H

#include <civetweb.h>

#define WS_PATH "/ws/progress"

/* Is the request a WebSocket opening handshake we take (GET, HTTP/1.1, Upgrade: websocket,
 * Connection: Upgrade, Sec-WebSocket-Version: 13, a Sec-WebSocket-Key, no body)? 0 with accept
 * (Sec-WebSocket-Accept) filled, or the status of the refusal it sent (405, 426, 400, 503). */
int ws_upgrade_check(struct mg_connection *c, const struct mg_request_info *ri, char accept[29]);

/* Refuse the upgrade: {success:false, error, detail} with status and extra header lines (each
 * ending in CRLF, or NULL); returns status. */
int ws_upgrade_refuse(struct mg_connection *c, int status, const char *headers, const char *msg);

/* The request's socket: the one of this process whose local port is the server's and whose peer
 * is the request's remote address and port (a TCP connection's addresses are unique); -1 when
 * none is (Linux: /proc/net/tcp, /proc/self/fd). */
int ws_upgrade_socket(const struct mg_request_info *ri);

#endif
