/*
 * fuzz_band_song.c — libFuzzer target for the band/song rules on video metadata
 * (src/music/band_song.c: title patterns, 「」, description, clean-ups, band_song_passed).
 *
 * Input: up to six NUL-separated fields (title, uploader, artist, creator, track, description);
 * an empty field is absent. The outputs must be valid malloc'd strings.
 */
#include "music/band_song.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 2048)
        return 0;
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    const char *f[6] = {0};
    char *p = buf, *end = buf + size;
    for (int i = 0; i < 6 && p <= end; i++) {
        f[i] = *p ? p : NULL;
        p += strlen(p) + 1;
    }
    band_song_input in = {f[0], f[1], f[2], f[3], f[4], f[5]};
    char *band = NULL, *song = NULL;
    if (band_song_extract(&in, &band, &song) == 0) {
        if (!band || !song)
            abort();
        (void)strlen(band);
        (void)strlen(song);
    }
    free(band);
    free(song);
    band = song = NULL;
    if (band_song_passed(f[0], f[1], &band, &song) == 1) {
        (void)strlen(band);
        (void)strlen(song);
    }
    free(band);
    free(song);
    free(buf);
    return 0;
}
