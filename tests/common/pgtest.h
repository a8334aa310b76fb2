/*
 * pgtest.h — a throwaway PostgreSQL cluster for tests: initdb into a temporary folder, pg_ctl
 * start listening only on a Unix socket in that folder (and a free port number, which names the
 * socket), stopped and removed by pgtest_stop. Run as the postgres user when the test runs as
 * root (CI), as the current user otherwise. Needs Debian's postgresql package
 * (scripts/install-deps --test); no system-wide service is used.
 */
#ifndef M2P_PGTEST_H
#define M2P_PGTEST_H

#include <stddef.h>

typedef struct pgtest {
    char dir[256]; /* the cluster's folder: data/, the socket, log */
    char bin[256]; /* PostgreSQL's bin folder */
    int port;
    char url[512]; /* postgresql:///postgres?host=DIR&port=PORT&user=... */
    char user[64];
} pgtest;

/* 0 when the cluster runs (the message on stderr otherwise). */
int pgtest_start(pgtest *c);
/* A new empty database on the cluster and its URL (out, n bytes). */
int pgtest_createdb(pgtest *c, const char *name, char *out, size_t n);
/* pg_ctl restart -m fast (clients see their connections drop). */
int pgtest_restart(pgtest *c);
/* pg_ctl stop -m fast, and start again (the cluster and its data stay). */
int pgtest_pause(pgtest *c);
int pgtest_resume(pgtest *c);
void pgtest_stop(pgtest *c);

#endif
