/*
 * decode.c — any audio file FFmpeg reads -> mono float at 22,050 Hz (m2p_audio_decode).
 *
 * libavformat demuxes, libavcodec decodes, libswresample converts to float, mixes every channel
 * with equal weight (the mean of the channels, as librosa.to_mono) and resamples. Offsets are
 * counted in input samples (round(offset * rate), as librosa.load with offset=), so a short
 * offset is sample exact; offsets over 60 s seek first and trim by timestamp. Decoding stops
 * once the window is full, so a 3-hour file costs only the window. A full-length decode is
 * capped at M2P_DECODE_MAX_S (30 min): longer audio is cut there with a warning.
 * Non-finite samples (NaN or infinity in float files) become silence, and samples beyond
 * +-DECODE_CLIP are clipped there.
 * Container tags artist/title/genre are copied into meta_*. Every FFmpeg object is freed on
 * every path (one cleanup label).
 */
#include "audio/audio.h"
#include "core/buf.h"
#include "core/error.h"

#include <assert.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/mem.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define M2P_DECODE_MAX_S (30.0 * 60.0) /* documented cap for a full-length decode */
#define SEEK_OVER_S 60.0               /* offsets over this seek instead of decoding through */

/* No single FFmpeg allocation may pass this (its own default is INT_MAX). A header can make
 * a decoder size its buffers from what it claims (rate, channels, frame length), and a
 * libFuzzer campaign of fuzz_audio once saw the process grow from 412 MB to 2.3 GB between
 * two inputs of at most 256 KiB. Audio decoding needs far less: packets and frames of a few
 * MB, a probe buffer, cover art. */
#define DECODE_MAX_ALLOC ((size_t)128 << 20)

/* Once per process: FFmpeg would print warnings about damaged input to stderr (the library
 * reports errors through m2p_errmsg() instead and never prints unasked), and its allocations
 * are capped. */
static pthread_once_t quiet_once = PTHREAD_ONCE_INIT;
static void quiet_ffmpeg(void)
{
    av_log_set_level(AV_LOG_QUIET);
    av_max_alloc(DECODE_MAX_ALLOC);
}

/* The output samples go to a growable array (core/buf.c) of at most want + DECODE_SLACK floats,
 * want being where decoding stops: the last frame may run past want and is cut there. */
#define DECODE_SLACK 8192

static void copy_tag(AVDictionary *md, const char *key, char *dst, size_t len)
{
    if (dst[0] || !md)
        return;
    AVDictionaryEntry *e = av_dict_get(md, key, NULL, 0);
    if (e && e->value) {
        snprintf(dst, len, "%s", e->value);
    }
}

/* What a resampler was built for: a frame with another format, rate or layout needs another. */
typedef struct resampler_input {
    AVChannelLayout layout;
    int format, rate;
} resampler_input;

static int resampler_matches(const resampler_input *in, const AVFrame *f)
{
    return f->format == in->format && f->sample_rate == in->rate &&
           av_channel_layout_compare(&f->ch_layout, &in->layout) == 0;
}

/* Sample rates a file may have: telephone audio (8 kHz) has room below, DXD and 768 kHz
 * studio files fit above. */
#define DECODE_MIN_RATE 1000
#define DECODE_MAX_RATE 768000

/* Channels the mix to mono reads at most (resampler_open's matrix) */
#define DECODE_MAX_CHANNELS 64

/* 0 for a channel count the mix takes, else an error */
static int check_channels(const char *path, int n)
{
    if (n <= DECODE_MAX_CHANNELS)
        return 0;
    return m2p_error(M2P_EDECODE, "decode: '%s' has %d channels; at most %d are read", path, n,
                     DECODE_MAX_CHANNELS);
}

/* 0 for a sample rate audio files have, else an error that says what to do */
static int check_rate(int rate)
{
    if (rate >= DECODE_MIN_RATE && rate <= DECODE_MAX_RATE)
        return 0;
    return m2p_error(M2P_EDECODE,
                     "decode: the file says its sample rate is %d Hz, outside what audio files "
                     "use (%d-%d Hz): it is damaged or not audio; convert it with ffmpeg -i FILE "
                     "-ar 44100 out.wav if it plays elsewhere",
                     rate, DECODE_MIN_RATE, DECODE_MAX_RATE);
}

/* A resampler for frames like f: equal-weight mix of all channels (librosa.to_mono) to mono
 * float at M2P_SAMPLE_RATE. Records what it was built for in *in. */
static int resampler_open(SwrContext **swr, AVFrame *f, resampler_input *in)
{
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
    int fch = f->ch_layout.nb_channels;
    if (fch <= 0 || f->sample_rate <= 0)
        return m2p_error(M2P_EDECODE, "decode: a frame without channels or sample rate");
    /* A header may claim any rate, and swresample's filter grows with the ratio: a 195-byte
     * WAV claiming 1 GHz cost seconds of CPU and ~1 GB in swr_init (found by fuzz_audio). */
    int err = check_rate(f->sample_rate);
    if (err)
        return err;
    err = swr_alloc_set_opts2(swr, &mono, AV_SAMPLE_FMT_FLT, M2P_SAMPLE_RATE, &f->ch_layout,
                              f->format, f->sample_rate, 0, NULL);
    if (err < 0 || !*swr)
        return m2p_error(M2P_EDECODE, "decode: cannot set up the resampler: %s", av_err2str(err));
    double matrix[DECODE_MAX_CHANNELS];
    assert(fch <= DECODE_MAX_CHANNELS); /* the caller refuses wider frames */
    for (int c = 0; c < fch; c++)
        matrix[c] = 1.0 / fch;
    av_opt_set_int(*swr, "filter_size", 32, 0);
    av_opt_set_int(*swr, "phase_shift", 10, 0);
    av_opt_set_double(*swr, "cutoff", 0.97, 0);
    if (swr_set_matrix(*swr, matrix, fch) < 0 || (err = swr_init(*swr)) < 0)
        return m2p_error(M2P_EDECODE, "decode: cannot start the resampler (%d channels, %d Hz)",
                         fch, f->sample_rate);
    av_channel_layout_uninit(&in->layout);
    if (av_channel_layout_copy(&in->layout, &f->ch_layout) < 0)
        return m2p_error(M2P_ENOMEM, "decode: out of memory");
    in->format = f->format;
    in->rate = f->sample_rate;
    return 0;
}

/* Full scale is 1; 80 dB over it no recording reaches, and a 2048-point spectrum of it stays
 * far inside float's range. */
#define DECODE_CLIP 10000.0f

/* Resample what swr holds (in may be NULL to flush) into b, up to its limit (what swr holds past
 * it lies past want and is dropped). */
static int convert(SwrContext *swr, const uint8_t **in, int in_n, m2p_vec *b)
{
    int out_max = swr_get_out_samples(swr, in_n);
    if (out_max < 0)
        return m2p_error(M2P_EDECODE, "decode: resampler failed");
    if ((size_t)out_max > b->limit - b->n)
        out_max = (int)(b->limit - b->n);
    if (out_max == 0)
        return 0;
    int rc = m2p_vec_reserve(b, (size_t)out_max);
    if (rc)
        return m2p_error_wrap(rc, "decode");
    float *o = (float *)b->data + b->n;
    uint8_t *out = (uint8_t *)o;
    int got = swr_convert(swr, &out, out_max, in, in_n);
    if (got < 0)
        return m2p_error(M2P_EDECODE, "decode: resampler failed (%s)", av_err2str(got));
    /* Float files may hold NaN or infinity, which the resampler spreads to its neighbours:
     * those samples become silence, so features stay numbers (found by fuzz_audio). Finite
     * values near FLT_MAX overflowed the spectra to infinity and the features to NaN (also
     * found by fuzz_audio): samples are clipped to +-DECODE_CLIP. */
    for (int i = 0; i < got; i++) {
        float v = o[i];
        o[i] = !isfinite(v)       ? 0.0f
               : v > DECODE_CLIP  ? DECODE_CLIP
               : v < -DECODE_CLIP ? -DECODE_CLIP
                                  : v;
    }
    b->n += (size_t)got;
    return 0;
}

/* allow_seek 0: decode from the start and count samples (the fallback when a demuxer's seek
 * lands nowhere, as FFmpeg's ADPCM WAV seeking does in long files). *seeked tells whether a
 * seek was used. */
static int decode_impl(const char *path, AVIOContext *pb, double offset_s, double duration_s,
                       m2p_audio *out, int allow_seek, int *seeked, const audio_tick *tick)
{
    if (!out)
        return m2p_error(M2P_EINVAL, "decode: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path || !*path)
        return m2p_error(M2P_EINVAL, "decode: no path given");
    if (!(offset_s >= 0) || !(duration_s >= 0) || !isfinite(offset_s) || !isfinite(duration_s))
        return m2p_error(M2P_EINVAL, "decode: offset %g and duration %g must be >= 0", offset_s,
                         duration_s);

    pthread_once(&quiet_once, quiet_ffmpeg);
    AVFormatContext *fmt = NULL;
    AVCodecContext *dec = NULL;
    SwrContext *swr = NULL;
    resampler_input swr_in = {0}; /* before the first goto done: freed there */
    AVPacket *pkt = NULL;
    AVFrame *frame = NULL;
    m2p_vec buf = {0};
    int rc = 0, err;

    double max_s = duration_s > 0 ? duration_s : M2P_DECODE_MAX_S;
    if (max_s > M2P_DECODE_MAX_S)
        max_s = M2P_DECODE_MAX_S;
    size_t want = (size_t)llround(max_s * M2P_SAMPLE_RATE);
    m2p_vec_init(&buf, sizeof(float), want + DECODE_SLACK);

    struct stat sb;
    if (!pb && stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == 0) {
        rc = m2p_error(M2P_EDECODE, "decode: '%s' is an empty file", path);
        goto done;
    }
    if (pb) { /* audio_decode_memory: the bytes come through pb, path only names them */
        if (!(fmt = avformat_alloc_context())) {
            rc = m2p_error(M2P_ENOMEM, "decode: out of memory");
            goto done;
        }
        fmt->pb = pb;
        fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    }
    if ((err = avformat_open_input(&fmt, pb ? NULL : path, NULL, NULL)) < 0) {
        if (err == AVERROR(ENOENT))
            rc = m2p_error(M2P_ENOTFOUND, "decode: '%s' does not exist", path);
        else
            rc = m2p_error(M2P_EDECODE, "decode: '%s' is not an audio file FFmpeg can read (%s)",
                           path, av_err2str(err));
        goto done;
    }
    if ((err = avformat_find_stream_info(fmt, NULL)) < 0) {
        rc = m2p_error(M2P_EDECODE, "decode: '%s': cannot read stream info: %s", path,
                       av_err2str(err));
        goto done;
    }
    const AVCodec *codec = NULL;
    int si = av_find_best_stream(fmt, AVMEDIA_TYPE_AUDIO, -1, -1, &codec, 0);
    if (si < 0 || !codec) {
        rc = m2p_error(M2P_EDECODE, "decode: '%s' has no audio stream%s", path,
                       si == AVERROR_DECODER_NOT_FOUND ? " FFmpeg can decode" : "");
        goto done;
    }
    AVStream *st = fmt->streams[si];
    copy_tag(fmt->metadata, "artist", out->meta_artist, sizeof out->meta_artist);
    copy_tag(fmt->metadata, "title", out->meta_title, sizeof out->meta_title);
    copy_tag(fmt->metadata, "genre", out->meta_genre, sizeof out->meta_genre);
    copy_tag(st->metadata, "artist", out->meta_artist, sizeof out->meta_artist);
    copy_tag(st->metadata, "title", out->meta_title, sizeof out->meta_title);
    copy_tag(st->metadata, "genre", out->meta_genre, sizeof out->meta_genre);
    if (fmt->duration > 0 && fmt->duration != AV_NOPTS_VALUE)
        out->source_duration = fmt->duration / (double)AV_TIME_BASE;
    else if (st->duration > 0 && st->duration != AV_NOPTS_VALUE)
        out->source_duration = st->duration * av_q2d(st->time_base);

    if (!(dec = avcodec_alloc_context3(codec)) ||
        avcodec_parameters_to_context(dec, st->codecpar) < 0) {
        rc = m2p_error(M2P_ENOMEM, "decode: cannot set up the %s decoder", codec->name);
        goto done;
    }
    dec->pkt_timebase = st->time_base;
    /* What the header claims, checked before the decoder sizes its buffers from it */
    if ((rc = check_channels(path, dec->ch_layout.nb_channels)) ||
        (dec->sample_rate > 0 && (rc = check_rate(dec->sample_rate))))
        goto done;
    if ((err = avcodec_open2(dec, codec, NULL)) < 0) {
        rc = m2p_error(M2P_EDECODE, "decode: cannot open the %s decoder: %s", codec->name,
                       av_err2str(err));
        goto done;
    }
    int in_rate = dec->sample_rate;
    int nch = dec->ch_layout.nb_channels;
    if (in_rate <= 0 || nch <= 0) {
        rc = m2p_error(M2P_EDECODE, "decode: '%s': audio stream without sample rate or channels",
                       path);
        goto done;
    }

    /* Seek for long offsets; short ones decode through and count samples (exact). */
    int by_pts = 0;
    if (allow_seek && offset_s > SEEK_OVER_S) {
        int64_t ts = (int64_t)((offset_s - 1.0) * AV_TIME_BASE);
        if (av_seek_frame(fmt, -1, ts, AVSEEK_FLAG_BACKWARD) >= 0) {
            by_pts = 1;
            *seeked = 1;
            avcodec_flush_buffers(dec);
        }
    }
    int64_t skip = llround(offset_s * in_rate); /* input samples still to drop */

    pkt = av_packet_alloc();
    frame = av_frame_alloc();
    if (!pkt || !frame) {
        rc = m2p_error(M2P_ENOMEM, "decode: out of memory");
        goto done;
    }

    int swr_ready = 0;
    int eof = 0, errors = 0, frames_ok = 0, last_bad = 0;
    /* what this decode will cover, for the progress fraction */
    double span_s = duration_s > 0 ? duration_s : out->source_duration - offset_s;
    int64_t span = span_s > 0 ? (int64_t)llround(span_s * M2P_SAMPLE_RATE) : -1;
    for (unsigned packets = 0; !eof && buf.n < want; packets++) {
        if (packets % 64 == 63 &&
            audio_tick_canceled(tick,
                                span > 0 && (int64_t)buf.n < span ? (double)buf.n / span : -1)) {
            rc = M2P_ECANCELED;
            goto done;
        }
        err = av_read_frame(fmt, pkt);
        if (err < 0) {
            eof = 1;
            avcodec_send_packet(dec, NULL); /* drain */
        } else if (pkt->stream_index != si) {
            av_packet_unref(pkt);
            continue;
        } else {
            /* A damaged last packet means the file was cut short (checked at the end). */
            last_bad = (pkt->flags & AV_PKT_FLAG_CORRUPT) != 0;
            err = avcodec_send_packet(dec, pkt);
            av_packet_unref(pkt);
            if (err < 0 && err != AVERROR(EAGAIN)) {
                errors++;
                last_bad = 1;
                if (errors > 50 && frames_ok == 0) {
                    rc = m2p_error(M2P_EDECODE, "decode: '%s': the %s stream does not decode: %s",
                                   path, codec->name, av_err2str(err));
                    goto done;
                }
                continue;
            }
        }
        while ((err = avcodec_receive_frame(dec, frame)) >= 0) {
            frames_ok++;
            int nin = frame->nb_samples, first = 0;
            if (by_pts) {
                int64_t pts = frame->best_effort_timestamp;
                if (pts != AV_NOPTS_VALUE) {
                    double t = pts * av_q2d(st->time_base);
                    if (st->start_time != AV_NOPTS_VALUE)
                        t -= st->start_time * av_q2d(st->time_base);
                    int64_t drop = llround((offset_s - t) * frame->sample_rate);
                    first = drop <= 0 ? 0 : drop >= nin ? nin : (int)drop;
                }
                by_pts = first >= nin; /* keep trimming until the window starts */
                skip = 0;
            } else if (skip > 0) {
                int64_t d = skip < nin ? skip : nin;
                first = (int)d;
                skip -= d;
            }
            if (first >= nin) {
                av_frame_unref(frame);
                continue;
            }
            if ((rc = check_channels(path, frame->ch_layout.nb_channels)))
                goto done;
            /* The input's format, rate or channel layout may change mid-stream (concatenated
             * files, broadcast streams): the resampler was built for the old one, so drain it
             * and build another, as FFmpeg's own tools reconfigure their filter graphs. */
            if (swr_ready && !resampler_matches(&swr_in, frame)) {
                rc = convert(swr, NULL, 0, &buf);
                if (rc)
                    goto done;
                swr_free(&swr);
                swr_ready = 0;
            }
            if (!swr_ready) {
                rc = resampler_open(&swr, frame, &swr_in);
                if (rc)
                    goto done;
                swr_ready = 1;
            }
            int bps = av_get_bytes_per_sample(frame->format);
            int planar = av_sample_fmt_is_planar(frame->format);
            const uint8_t *in[64];
            int np = planar ? frame->ch_layout.nb_channels : 1;
            for (int p = 0; p < np; p++)
                in[p] = frame->extended_data[p] +
                        (size_t)first * bps * (planar ? 1 : frame->ch_layout.nb_channels);
            rc = convert(swr, in, nin - first, &buf);
            av_frame_unref(frame);
            if (rc)
                goto done;
        }
        if (err != AVERROR(EAGAIN) && err != AVERROR_EOF && err < 0) {
            errors++;
        }
        if (err == AVERROR_EOF)
            eof = 1;
    }
    if (swr_ready && buf.n < want) {
        rc = convert(swr, NULL, 0, &buf);
        if (rc)
            goto done;
    }
    if (buf.n > want)
        buf.n = want;

    if (frames_ok == 0) {
        rc = m2p_error(M2P_EDECODE, "decode: '%s': no audio could be decoded%s", path,
                       errors ? " (the stream is damaged or truncated)" : "");
        goto done;
    }
    double got_s = (double)buf.n / M2P_SAMPLE_RATE;
    if (buf.n == 0) {
        if (out->source_duration > 0 && offset_s >= out->source_duration)
            rc = m2p_error(M2P_EINVAL, "decode: offset %.1f s is past the end (%.1f s)", offset_s,
                           out->source_duration);
        else
            rc = m2p_error(M2P_EDECODE, "decode: '%s': no audio samples after %.1f s", path,
                           offset_s);
        goto done;
    }
    if (eof && last_bad && buf.n < want) {
        rc = m2p_error(M2P_EDECODE,
                       "decode: '%s' is truncated or damaged: its last packet is incomplete "
                       "(%.1f s decoded)",
                       path, offset_s + got_s);
        goto done;
    }
    /* Truncated file: the container promised more than the stream held. A duration guessed
     * from the bit rate promises nothing (joined MP3s of different rates, VBR without a
     * header): there only a damaged last packet, above, says truncated. */
    if (out->source_duration > 0 &&
        fmt->duration_estimation_method != AVFMT_DURATION_FROM_BITRATE) {
        double expect_end = out->source_duration;
        if (offset_s + max_s < expect_end)
            expect_end = offset_s + max_s;
        double got_end = offset_s + got_s;
        double slack = 0.5 + 0.02 * expect_end;
        if (got_end + slack < expect_end) {
            rc = m2p_error(M2P_EDECODE,
                           "decode: '%s' is truncated or damaged: the container says %.1f s, "
                           "only %.1f s decode",
                           path, out->source_duration, got_end);
            goto done;
        }
    }
    if (duration_s <= 0 && buf.n >= want && !eof)
        M2P_LOGW("decode: '%s' is longer than %.0f min; analysing the first %.0f min only", path,
                 M2P_DECODE_MAX_S / 60, M2P_DECODE_MAX_S / 60);

    out->n = buf.n;
    out->samples = m2p_vec_detach(&buf, NULL);
    out->sample_rate = M2P_SAMPLE_RATE;

done:
    m2p_vec_free(&buf);
    av_frame_free(&frame);
    av_packet_free(&pkt);
    swr_free(&swr);
    av_channel_layout_uninit(&swr_in.layout);
    avcodec_free_context(&dec);
    avformat_close_input(&fmt);
    if (rc)
        memset(out, 0, sizeof *out);
    return rc;
}

int audio_tick_canceled(const audio_tick *tick, double fraction)
{
    if (!tick || !tick->fn || !tick->fn(fraction, tick->user_data))
        return 0;
    m2p_error(M2P_ECANCELED, "canceled by request");
    return 1;
}

int audio_decode_ticked(const char *path, double offset_s, double duration_s, m2p_audio *out,
                        const audio_tick *tick)
{
    int seeked = 0;
    int rc = decode_impl(path, NULL, offset_s, duration_s, out, 1, &seeked, tick);
    if (rc == M2P_EDECODE && seeked)
        rc = decode_impl(path, NULL, offset_s, duration_s, out, 0, &seeked, tick);
    return rc;
}

/* ---- decoding from memory (audio_decode_memory, for fuzz_audio) ---- */

typedef struct mem_input {
    const uint8_t *data;
    size_t size, pos;
} mem_input;

static int mem_read(void *opaque, uint8_t *buf, int n)
{
    mem_input *m = opaque;
    size_t left = m->size - m->pos;
    if (left == 0)
        return AVERROR_EOF;
    size_t k = (size_t)n < left ? (size_t)n : left;
    memcpy(buf, m->data + m->pos, k);
    m->pos += k;
    return (int)k;
}

static int64_t mem_seek(void *opaque, int64_t offset, int whence)
{
    mem_input *m = opaque;
    int64_t base;
    switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE:
        return (int64_t)m->size;
    case SEEK_SET:
        base = 0;
        break;
    case SEEK_CUR:
        base = (int64_t)m->pos;
        break;
    case SEEK_END:
        base = (int64_t)m->size;
        break;
    default:
        return AVERROR(EINVAL);
    }
    if (offset < -base || offset > (int64_t)m->size - base)
        return AVERROR(EINVAL);
    m->pos = (size_t)(base + offset);
    return (int64_t)m->pos;
}

int audio_decode_memory(const uint8_t *data, size_t size, double duration_s, m2p_audio *out)
{
    if (!out)
        return m2p_error(M2P_EINVAL, "decode: out is NULL");
    memset(out, 0, sizeof *out);
    if (!data || size == 0)
        return m2p_error(M2P_EDECODE, "decode: no bytes given");
    mem_input m = {data, size, 0};
    enum { AVIO_BUF = 16384 };
    unsigned char *buf = av_malloc(AVIO_BUF);
    AVIOContext *pb =
        buf ? avio_alloc_context(buf, AVIO_BUF, 0, &m, mem_read, NULL, mem_seek) : NULL;
    if (!pb) {
        av_free(buf);
        return m2p_error(M2P_ENOMEM, "decode: out of memory");
    }
    int seeked = 0;
    int rc = decode_impl("(memory)", pb, 0, duration_s, out, 0, &seeked, NULL);
    av_freep(&pb->buffer); /* the context may have replaced the buffer */
    avio_context_free(&pb);
    return rc;
}

int m2p_audio_decode(const char *path, double offset_s, double duration_s, m2p_audio *out)
{
    return audio_decode_ticked(path, offset_s, duration_s, out, NULL);
}

void m2p_audio_free(m2p_audio *a)
{
    if (!a)
        return;
    free(a->samples);
    a->samples = NULL;
    a->n = 0;
}
