/*
 * pgtest.c — the throwaway PostgreSQL cluster of pgtest.h. Commands run through /bin/sh with
 * runuser when root; every argument that comes from here is a fixed word or a path under the
 * cluster folder.
 */
#define _GNU_SOURCE
#include "pgtest.h"

#include <arpa/inet.h>
#include <glob.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

static int pick_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Run a command line as the cluster's owner. */
static int as_owner(const pgtest *c, const char *cmd)
{
    char line[2048];
    if (geteuid() == 0)
        snprintf(line, sizeof line, "runuser -u postgres -- sh -c '%s'", cmd);
    else
        snprintf(line, sizeof line, "sh -c '%s'", cmd);
    (void)c;
    return system(line);
}

int pgtest_start(pgtest *c)
{
    memset(c, 0, sizeof *c);
    glob_t g;
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) != 0 || g.gl_pathc == 0) {
        fprintf(stderr, "pgtest: PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/"
                        "initdb); run scripts/install-deps --test\n");
        return -1;
    }
    snprintf(c->bin, sizeof c->bin, "%s", g.gl_pathv[g.gl_pathc - 1]);
    globfree(&g);
    *strrchr(c->bin, '/') = 0;
    snprintf(c->dir, sizeof c->dir, "/tmp/m2p-pg-XXXXXX");
    if (!mkdtemp(c->dir)) {
        perror("pgtest: mkdtemp");
        return -1;
    }
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw || chown(c->dir, pw->pw_uid, pw->pw_gid) != 0) {
            fprintf(stderr, "pgtest: no postgres user to run the cluster as\n");
            return -1;
        }
        snprintf(c->user, sizeof c->user, "postgres");
    } else {
        struct passwd *pw = getpwuid(geteuid());
        snprintf(c->user, sizeof c->user, "%s", pw ? pw->pw_name : "postgres");
    }
    chmod(c->dir, 0755);
    c->port = pick_port();
    char cmd[1500];
    snprintf(cmd, sizeof cmd,
             "%s/initdb -D %s/data -U %s --auth=trust -E UTF8 --no-instructions >%s/initdb.log "
             "2>&1",
             c->bin, c->dir, c->user, c->dir);
    if (as_owner(c, cmd) != 0) {
        fprintf(stderr, "pgtest: initdb failed; see %s/initdb.log\n", c->dir);
        return -1;
    }
    snprintf(cmd, sizeof cmd,
             "%s/pg_ctl -D %s/data -l %s/log -w -t 60 -o \"-k %s -p %d -c listen_addresses= "
             "-c fsync=off -c max_connections=60\" start >/dev/null",
             c->bin, c->dir, c->dir, c->dir, c->port);
    if (as_owner(c, cmd) != 0) {
        fprintf(stderr, "pgtest: pg_ctl start failed; see %s/log\n", c->dir);
        return -1;
    }
    snprintf(c->url, sizeof c->url, "postgresql:///postgres?host=%s&port=%d&user=%s", c->dir,
             c->port, c->user);
    return 0;
}

int pgtest_createdb(pgtest *c, const char *name, char *out, size_t n)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/createdb -h %s -p %d -U %s %s", c->bin, c->dir, c->port, c->user,
             name);
    if (as_owner(c, cmd) != 0) {
        fprintf(stderr, "pgtest: createdb %s failed\n", name);
        return -1;
    }
    snprintf(out, n, "postgresql:///%s?host=%s&port=%d&user=%s", name, c->dir, c->port, c->user);
    return 0;
}

int pgtest_restart(pgtest *c)
{
    char cmd[1500];
    snprintf(cmd, sizeof cmd,
             "%s/pg_ctl -D %s/data -l %s/log -w -t 60 -m fast -o \"-k %s -p %d -c "
             "listen_addresses= -c fsync=off -c max_connections=60\" restart >/dev/null",
             c->bin, c->dir, c->dir, c->dir, c->port);
    return as_owner(c, cmd) == 0 ? 0 : -1;
}

int pgtest_pause(pgtest *c)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/pg_ctl -D %s/data -w -t 60 -m fast stop >/dev/null", c->bin,
             c->dir);
    return as_owner(c, cmd) == 0 ? 0 : -1;
}

int pgtest_resume(pgtest *c)
{
    char cmd[1500];
    snprintf(cmd, sizeof cmd,
             "%s/pg_ctl -D %s/data -l %s/log -w -t 60 -o \"-k %s -p %d -c listen_addresses= -c "
             "fsync=off -c max_connections=60\" start >/dev/null",
             c->bin, c->dir, c->dir, c->dir, c->port);
    return as_owner(c, cmd) == 0 ? 0 : -1;
}

void pgtest_stop(pgtest *c)
{
    if (!c->dir[0] || !c->bin[0])
        return;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/pg_ctl -D %s/data -w -t 60 -m immediate stop >/dev/null 2>&1",
             c->bin, c->dir);
    as_owner(c, cmd);
    test_rmtree(c->dir);
}
