/*
 * fuzz_input_file.h — for fuzz targets whose parser reads a file: one temporary file per
 * process (created once under $TMPDIR or /tmp with the given suffix, removed at exit),
 * rewritten with each input.
 */
#ifndef M2P_FUZZ_INPUT_FILE_H
#define M2P_FUZZ_INPUT_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_path[512];

static void fuzz_remove(void)
{
    if (fuzz_path[0])
        unlink(fuzz_path);
}

/* The path holding exactly data[0..size), or NULL when the file cannot be written. */
static const char *fuzz_input_file(const uint8_t *data, size_t size, const char *suffix)
{
    if (!fuzz_path[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(fuzz_path, sizeof fuzz_path, "%s/m2p-fuzz-XXXXXX%s", tmp && *tmp ? tmp : "/tmp",
                 suffix);
        int fd = mkstemps(fuzz_path, (int)strlen(suffix));
        if (fd < 0) {
            fuzz_path[0] = '\0';
            return NULL;
        }
        close(fd);
        atexit(fuzz_remove);
    }
    FILE *f = fopen(fuzz_path, "wb");
    if (!f)
        return NULL;
    size_t w = fwrite(data, 1, size, f);
    if (fclose(f) != 0 || w != size)
        return NULL;
    return fuzz_path;
}

#endif
