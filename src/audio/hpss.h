/*
 * hpss.h — streaming harmonic/percussive separation energies (internal).
 */
#ifndef M2P_AUDIO_HPSS_H
#define M2P_AUDIO_HPSS_H

#include <stdint.h>

typedef struct hpss hpss;

/* n_frames magnitude frames of nb bins will be pushed in order; for each frame t, eh[t] and
 * ep[t] receive the energy (sum of squares) of the harmonic and percussive parts. */
hpss *hpss_new(int nb, int64_t n_frames, double *eh, double *ep);
void hpss_push(hpss *h, const float *mag);
void hpss_finish(hpss *h);
void hpss_free(hpss *h);

#endif
