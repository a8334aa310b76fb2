/*
 * mus2pic.h — the one public API of libmus2pic.
 *
 * A song goes in, poster art comes out:
 *
 *   source (URL | file) -> fetch -> decode -> features -> band/song -> genre -> prompt
 *   prompt -> tokenize -> text encoder -> UNet x steps (LCM) -> VAE -> images
 *
 * Conventions (after SQLite and whisper.cpp):
 *   - Every function that can fail returns an int: 0 (M2P_OK) or a negative M2P_E* code.
 *     The human-readable message of the last failure on the calling thread is m2p_errmsg().
 *   - Handles are opaque; each has exactly one create and one free function.
 *   - Params structs are filled by *_default_params() and then edited by the caller.
 *   - The library never calls exit() and never prints unless asked to (m2p_log_set_level).
 *
 * Threading: a model handle may be shared by threads for reading, but m2p_generate() on one
 * model must not run concurrently with itself (it uses every core anyway). Analysis functions
 * are reentrant.
 */
#ifndef MUS2PIC_H
#define MUS2PIC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What this header declares is the library's interface: the library is built with hidden
 * visibility and its installed archive prelinked, so these m2p_ names are the only ones it
 * exports (CMakeLists.txt, "the installed library"). */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* M2P_VERSION ("MAJOR.MINOR.PATCH") and its parts, generated from CMakeLists.txt's project(). */
#include "mus2pic_version.h"
/* The library's version as built (M2P_VERSION of the library, which a program compiled against
 * another header may differ from). */
const char *m2p_version(void);

/* ------------------------------------------------------------------------------------------ */
/* Errors and logging                                                                         */
/* ------------------------------------------------------------------------------------------ */

enum {
    M2P_OK = 0,
    M2P_EINVAL = -1,       /* a parameter is out of range; the message names it */
    M2P_ENOMEM = -2,       /* allocation failed or the request would not fit in memory */
    M2P_EIO = -3,          /* a file could not be read or written */
    M2P_EFORMAT = -4,      /* a file is malformed: bad safetensors header, bad JSON, not audio */
    M2P_ENOTFOUND = -5,    /* a model, file, tensor or row does not exist */
    M2P_ECANCELED = -6,    /* a callback asked to stop */
    M2P_EUNSUPPORTED = -7, /* valid input this version cannot handle (e.g. an SDXL model) */
    M2P_ENETWORK = -8,     /* a download or remote API call failed */
    M2P_ETIMEOUT = -9,     /* a subprocess or request took too long */
    M2P_EDECODE = -10,     /* audio could not be decoded */
    M2P_ETOOBIG = -11,     /* input over a configured limit (download size, body size, ...) */
    M2P_EINTERNAL = -12,   /* a bug: an invariant did not hold */
    M2P_EBUSY = -13,       /* a queue is full; try again later */
};

/* A static description of an error code ("invalid argument", ...). */
const char *m2p_strerror(int code);
/* The message of the last failure on this thread ("" when none). Valid until the next call. */
const char *m2p_errmsg(void);

enum { M2P_LOG_ERROR = 0, M2P_LOG_WARN = 1, M2P_LOG_INFO = 2, M2P_LOG_DEBUG = 3 };
/* Messages at or below level go to stderr (default: M2P_LOG_WARN). */
void m2p_log_set_level(int level);

/* What this machine offers the engine (src/tensor/cpu/system_info.c). */
typedef struct m2p_system_info {
    int bf16;            /* 1: bf16 matmuls/convs run natively (AVX512-BF16 or AMX, as oneDNN
                            sees it; ONEDNN_MAX_CPU_ISA lowers it), 0: they would be slow */
    const char *kernels; /* the vector kernels that run: "avx512", "avx2", "generic" or
                            "native" */
    int threads;         /* compute threads (a model's params set them, else OpenMP's) */
} m2p_system_info;
m2p_system_info m2p_system_info_get(void);

/* ------------------------------------------------------------------------------------------ */
/* Image engine                                                                               */
/* ------------------------------------------------------------------------------------------ */

typedef struct m2p_model m2p_model;

enum { M2P_DTYPE_F32 = 0, M2P_DTYPE_BF16 = 1 };

typedef struct m2p_model_params {
    int n_threads;      /* compute threads; 0 = all cores */
    int compute_dtype;  /* M2P_DTYPE_F32 (default) or M2P_DTYPE_BF16 where the CPU has it */
    int load_vae;       /* 1 (default): load the full VAE decoder */
    const char *taesd;  /* folder with TAESD decoder weights (fast decoder, previews); NULL
                         * (default): madebyollin/taesd (taesdxl for SDXL) from the hub cache
                         * when it is there (`models fetch` brings it); "": none */
    const char *unet_file; /* optional .safetensors replacing the folder's UNet weights (same
                            * config; e.g. SDXL-Lightning's UNet over the SDXL base folder) */
    int weight_cache;      /* 1 (default): weights are prepared once into a cache file
                            * ($M2P_WEIGHT_CACHE_DIR, else $XDG_CACHE_HOME/mus2pic/weights, else
                            * ~/.cache/mus2pic/weights) that later loads map; 0: convert each time */
    int release_text_encoder; /* 1: free the text encoders' weights once the prompts are
                               * encoded (a one-shot generate: -0.46 GiB at f32 for SD 1.5);
                               * the next generate loads them again. 0 (default): keep them */
    int release_unet; /* 1: free the UNet's weights after its last step, before the decoder
                       * runs (a one-shot generate: -0.35 GiB of f32 peak at 512^2 for SD 1.5);
                       * the next generate loads them again. 0 (default): keep them */
} m2p_model_params;

m2p_model_params m2p_model_default_params(void);

/* Resolve a model reference to a diffusers folder: an existing folder, a hub id
 * ("SimianLuo/LCM_Dreamshaper_v7", looked up in $HF_HOME/hub or ~/.cache/huggingface/hub,
 * then ./models), or a registry name ("lcm"). Writes the folder path into out. */
int m2p_model_resolve(const char *ref, char *out, size_t out_len);

/* diffusers folder -> validated, strictly checked weights (mmap'd safetensors).
 * On failure the message names the file and the tensor. */
int m2p_model_load(const char *ref, const m2p_model_params *params, m2p_model **out);
void m2p_model_free(m2p_model *model);
/* The folder the model was loaded from. */
const char *m2p_model_path(const m2p_model *model);
/* Approximate bytes the loaded model holds in memory (weights in compute dtype). */
size_t m2p_model_memory(const m2p_model *model);

/* Write a description of a model folder: parts, dtypes, parameter counts, skipped tensors. */
int m2p_model_inspect(const char *ref, FILE *out);

#define M2P_CLIP_MAX_TOKENS 77
/* CLIP BPE: text -> 77 ids (BOS, tokens truncated to 75, EOS, padding). Never fails on bad
 * UTF-8 (invalid bytes are dropped). n_untruncated (optional) gets the count before
 * truncation, BOS and EOS included. */
int m2p_tokenize(const m2p_model *model, const char *text, int32_t ids[M2P_CLIP_MAX_TOKENS],
                 int *n_untruncated);

/* A CLIP tokenizer on its own, without the networks (token counters, `mus2pic tokenize`):
 * dir is a tokenizer folder (a model's tokenizer/, or SDXL's tokenizer_2/) with vocab.json and
 * merges.txt; errors name the file. A loaded tokenizer may be shared by threads. */
typedef struct m2p_tokenizer m2p_tokenizer;
int m2p_tokenizer_load(const char *dir, m2p_tokenizer **out);
void m2p_tokenizer_free(m2p_tokenizer *t);
/* text -> 77 ids, as m2p_tokenize. */
int m2p_tokenizer_encode(const m2p_tokenizer *t, const char *text,
                         int32_t ids[M2P_CLIP_MAX_TOKENS], int *n_untruncated);
/* text -> every id, BOS and EOS included, no truncation; *ids is malloc'd (caller frees). */
int m2p_tokenizer_encode_all(const m2p_tokenizer *t, const char *text, int32_t **ids, int *n);
/* The vocabulary text of an id ("cat</w>"), NULL when unknown. */
const char *m2p_token_text(const m2p_tokenizer *t, int32_t id);

/* What a step callback is told. */
enum {
    M2P_STAGE_ENCODE = 0, /* encoding the prompt */
    M2P_STAGE_STEP = 1,   /* a UNet step finished */
    M2P_STAGE_DECODE = 2, /* decoding latents to pixels */
};
enum { M2P_PREVIEW_NONE = 0, M2P_PREVIEW_LATENT_RGB = 1, M2P_PREVIEW_TAESD = 2 };
/* TAESD previews when the model has a TAESD decoder (m2p_model_params.taesd), else latent RGB */
enum { M2P_PREVIEW_AUTO = 3 };

typedef struct m2p_step_info {
    int stage;              /* M2P_STAGE_* */
    int variation_first;    /* 0-based index of the first variation this report covers */
    int variation_count;    /* the variations advance together (one batch) */
    int step;               /* 1-based step that just finished (STAGE_STEP), else 0 */
    int steps;              /* total steps */
    double elapsed_s;       /* seconds since m2p_generate started */
    /* Optional preview for each variation in the batch: variation_count RGB8 images,
     * preview_w x preview_h each, packed one after another. NULL when previews are off. */
    const uint8_t *preview_rgb;
    int preview_w, preview_h;
} m2p_step_info;

/* Return nonzero to cancel the generation (m2p_generate then returns M2P_ECANCELED). */
typedef int (*m2p_step_callback)(const m2p_step_info *info, void *user_data);

typedef struct m2p_gen_params {
    const char *prompt;
    const char *negative_prompt; /* used with classifier-free guidance (guidance > 1 on a UNet
                                  * without a guidance embedding); NULL or "" = none: "" is
                                  * encoded, SDXL uses zeros (force_zeros_for_empty_prompt) */
    int steps;                   /* 1..50; 0 = the model's default (8 for LCM, else 50) */
    float guidance;              /* CFG scale (> 1 turns CFG on; 0 and 1 off), or LCM's
                                  * w-embedding scale on a UNet with time_cond_proj_dim;
                                  * default 8.5 */
    const char *scheduler;        /* NULL = the config's class, or lcm|ddim|pndm|euler|euler_a */
    const char *scheduler_config; /* a diffusers scheduler_config.json; NULL = the model's own */
    int width, height;           /* multiples of 8, 64..2048; default 512 */
    uint64_t seed;               /* variation i uses seed + i (Philox4x32-10 stream) */
    int variations;              /* 1..8 */
    int preview;                 /* M2P_PREVIEW_* (default NONE) */
    int use_taesd;               /* decode final images with TAESD instead of the full VAE */
    int vae_tile;                /* VAE decoder tiles, latents per edge: 0 = default (64, so
                                  * images above 512x512 decode in overlapping tiles, in
                                  * bounded memory), 8..256 = that size, -1 = never tiled */
    /* Reproduce another tool's run: optional, owned by the caller. */
    const float *latents;        /* [variations,4,H/8,W/8] initial latents, or NULL */
    const float *noise;          /* [K,variations,4,H/8,W/8]: every random tensor the scheduler
                                  * draws, in order (LCM steps-1, Euler / Euler ancestral steps,
                                  * DDIM / PNDM none), or NULL */
    int n_noise;                 /* K when noise is given (checked); 0 = not checked */
    int want_raw;                /* fill m2p_image.raw with the float image */
    m2p_step_callback callback;
    void *user_data;
} m2p_gen_params;

m2p_gen_params m2p_gen_default_params(void);

typedef struct m2p_image {
    int width, height;
    uint8_t *rgb;   /* width*height*3, row-major RGB */
    float *raw;     /* NULL unless want_raw: 3*height*width floats, CHW, in [0,1] */
    uint64_t seed;  /* the seed that reproduces this image alone */
    double seconds; /* this variation's share of the generation time */
    int steps;      /* the steps it took (num_inference_steps; the model's default when 0) */
    const char *sampler; /* static: the sampler as image tools name it ("Euler a", "DDIM",
                          * "PLMS", "PNDM", "Euler", "LCM") */
} m2p_image;

/* The latents one width x height image has with this model: channels, h = height / f and
 * w = width / f with f the VAE's scale factor (8 for SD and SDXL; TAESD is always 8).
 * M2P_EINVAL when the size is not a multiple of f. */
int m2p_model_latent_shape(const m2p_model *model, int width, int height, int *channels, int *h,
                           int *w);

/* 1 when generating at this guidance runs classifier-free guidance, i.e. honours the negative
 * prompt (guidance > 1 and the UNet has no guidance embedding, unlike LCM's). */
int m2p_model_uses_negative_prompt(const m2p_model *model, float guidance);

/* prompt -> tokenize -> text encoder(s) -> UNet x scheduler steps (all variations, and the
 * negative prompt with CFG, as one batch) -> VAE decoder -> images. out must hold
 * params->variations images; free each with m2p_image_free. Not thread safe for the same
 * model. */
int m2p_generate(m2p_model *model, const m2p_gen_params *params, m2p_image *out);
void m2p_image_free(m2p_image *img);

/* The schedulers m2p_gen_params.scheduler names: 1 for "lcm", "ddim", "pndm", "euler" or
 * "euler_a", else 0. */
int m2p_scheduler_known(const char *name);
/* Read a diffusers scheduler_config.json as m2p_generate would with params->scheduler (NULL: the
 * file's class), so a bad file is found before a model loads; errors name the key
 * (M2P_EUNSUPPORTED for options this engine cannot honour). */
int m2p_scheduler_config_check(const char *path, const char *scheduler);

/* Float32 tensors in safetensors files, to exchange latents, noise and images with other tools
 * (diffusers): the tensor `name` of the file, copied into *data (malloc'd, numel floats);
 * shape gets its dimensions (at most 8, *ndim of them). M2P_ENOTFOUND when absent,
 * M2P_EFORMAT when it is not float32. */
int m2p_tensor_read_f32(const char *path, const char *name, int *ndim, int64_t shape[8],
                        float **data);
/* One float32 tensor into a new safetensors file (written beside it, then renamed). */
int m2p_tensor_write_f32(const char *path, const char *name, int ndim, const int64_t *shape,
                         const float *data);

/* Write an RGB8 image as PNG (to a temporary name, then renamed: never a partial file). */
int m2p_png_write(const char *path, const uint8_t *rgb, int width, int height);
/* Encode an RGB8 image as PNG in memory; *out is malloc'd. */
int m2p_png_encode(const uint8_t *rgb, int width, int height, uint8_t **out, size_t *out_len);

/* What a poster PNG says about itself, in text chunks: "parameters" (the infotext of
 * AUTOMATIC1111's web UI, which image tools and galleries read: prompt, "Negative prompt:",
 * then Steps, Sampler, CFG scale, Seed, Size, Model, Song), "Title" (artist – song) and
 * "Software". ASCII text goes in tEXt, anything else in iTXt (UTF-8). Unset fields (NULL, "",
 * 0) are left out. */
typedef struct m2p_png_meta {
    const char *prompt, *negative_prompt;
    const char *model;   /* the name the user chose ("lcm") */
    const char *sampler; /* default "LCM" */
    const char *artist, *song;
    uint64_t seed;
    int steps, width, height;
    double guidance; /* CFG scale; 0 = not written */
} m2p_png_meta;
/* m2p_png_encode / m2p_png_write with the text chunks of meta (NULL: none). */
int m2p_png_encode_meta(const uint8_t *rgb, int width, int height, const m2p_png_meta *meta,
                        uint8_t **out, size_t *out_len);
int m2p_png_write_meta(const char *path, const uint8_t *rgb, int width, int height,
                       const m2p_png_meta *meta);
/* Encode with n_text text chunks keys[i] = values[i] (UTF-8; at most 16). */
int m2p_png_encode_text(const uint8_t *rgb, int width, int height, const char *const *keys,
                        const char *const *values, int n_text, uint8_t **out, size_t *out_len);
/* The "parameters" text of meta (malloc'd). */
int m2p_png_parameters(const m2p_png_meta *meta, char **out);
/* A download name that says what the file is: "artist-song-SEED.png" (accents dropped, lower
 * case ASCII letters and digits, anything else folded into one '-'), "mus2pic-SEED.png"
 * without artist and song. Either may be NULL. */
void m2p_poster_filename(const char *artist, const char *song, uint64_t seed, char *out,
                         size_t len);

/* Poster text: the song and the artist set on the image as a poster carries them. */
enum { M2P_TEXT_NONE = 0, M2P_TEXT_TOP = 1, M2P_TEXT_BOTTOM = 2, M2P_TEXT_BAND = 3 };
typedef struct m2p_poster_text {
    const char *title;  /* the song (the larger line); NULL or "" for none */
    const char *artist; /* below it, smaller */
    int layout;         /* M2P_TEXT_TOP, _BOTTOM or _BAND (across the lower third) */
} m2p_poster_text;
/* Draw t on rgb (width x height RGB8) in place, legible whatever the pixels under it (a scrim
 * until the text has 4.5:1 contrast), in any script an installed font covers (fontconfig,
 * HarfBuzz, FreeType). box (optional) gets x, y, w, h of the only region that changed; keep a
 * copy for the plain image. Thread safe. */
int m2p_poster_draw_text(uint8_t *rgb, int width, int height, const m2p_poster_text *t,
                         int box[4]);
/* Release fontconfig's caches (FcFini) at the end of a process that drew text, when no other
 * thread draws; a later draw sets them up again. */
void m2p_poster_cleanup(void);
/* "top", "bottom", "band" -> M2P_TEXT_*, or -1. */
int m2p_poster_layout(const char *name);

/* The registry of known models (the original's six): name -> hub id, default steps. */
typedef struct m2p_registry_entry {
    const char *name;          /* "lcm" */
    const char *hub_id;        /* "SimianLuo/LCM_Dreamshaper_v7" */
    const char *title;         /* "LCM (Latent Consistency Model)" */
    const char *description;
    const char *expected_time, *memory, *quality, *speed;
    int default_steps;
    int supported;             /* 1 when this version can run it */
    /* The original's defaults (ORIGINAL.md, model-registry.json "scheduler"): */
    float default_guidance;    /* 7.5 with classifier-free guidance; 1.0 LCM; 0.0 Turbo/Lightning */
    int default_width, default_height;
    const char *scheduler;     /* diffusers _class_name the original ran: "LCMScheduler" ... */
    const char *timestep_spacing; /* "trailing" where the original overrode the repo, else NULL */
} m2p_registry_entry;

/* 1 when the model's default guidance runs classifier-free guidance (> 1), i.e. the negative
 * prompt changes the image; LCM (w-embedding, 1.0) and Turbo/Lightning (0.0) ignore it. */
int m2p_registry_uses_negative(const m2p_registry_entry *e);

/* The entries, count in *n. Static storage. */
const m2p_registry_entry *m2p_registry(int *n);
const m2p_registry_entry *m2p_registry_find(const char *name_or_hub_id);

/* Download progress: bytes done and total (-1 when unknown) of the current file. */
typedef void (*m2p_fetch_progress)(const char *file, int64_t done, int64_t total, void *user_data);
/* Download a model (registry name or hub id) into the Hugging Face cache layout, resuming a
 * partial download and checking sha256 where the hub gives one. HF_ENDPOINT and HF_TOKEN are
 * honoured. Writes the snapshot folder into out. */
int m2p_model_fetch(const char *name_or_hub_id, m2p_fetch_progress progress, void *user_data,
                    char *out, size_t out_len);

/* ------------------------------------------------------------------------------------------ */
/* Music analysis                                                                             */
/* ------------------------------------------------------------------------------------------ */

/* Where audio comes from. */
typedef struct m2p_fetch_params {
    const char *cache_dir;     /* default: $XDG_CACHE_HOME/mus2pic/audio or ./data/cache */
    int64_t cache_limit;       /* bytes; default 2 GiB; least recently used goes first */
    const char *ytdlp;         /* program; default $MUS2PIC_YTDLP or "yt-dlp" on PATH */
    int timeout_s;             /* default 300 */
    int64_t max_bytes;         /* default 200 MiB */
    /* progress: percent 0..100 (-1 unknown) while downloading, also called about every 0.2 s
     * while yt-dlp runs. Return nonzero to cancel: m2p_fetch then stops the download, caches
     * nothing and returns M2P_ECANCELED. */
    int (*progress)(double percent, void *user_data);
    void *user_data;
    /* A second cache level shared by many machines (a PostgreSQL store; NULL: none), asked
     * after this machine's cache and before downloading. shared_get: write the entry key's
     * audio into the folder dir (*file gets its path, a name of its choosing) and its
     * m2p_source_info JSON into *info_json (malloc'd); M2P_ENOTFOUND when it is not there.
     * shared_put: offer an entry this machine just downloaded. Their failures never fail a
     * fetch: it downloads, or keeps its download to itself. */
    int (*shared_get)(void *shared_ud, const char *key, const char *dir, char *file,
                      size_t file_len, char **info_json);
    int (*shared_put)(void *shared_ud, const char *key, const char *file, const char *info_json);
    void *shared_ud;
} m2p_fetch_params;

m2p_fetch_params m2p_fetch_default_params(void);

/* What we know about a source before analysing its audio. Strings are "" when unknown. */
typedef struct m2p_source_info {
    char id[128];        /* video id, or "sha256:<hex>" for files and direct URLs */
    char title[512];
    char uploader[256];
    char artist[256];
    char track[256];
    char creator[256];    /* yt-dlp's "creator" (the band/song rules read it after artist) */
    char description[4096]; /* yt-dlp's description, cut on a character boundary */
    char meta_genre[128]; /* the container's genre tag */
    char tags_json[4096]; /* yt-dlp tags as a JSON array of strings */
    char categories_json[1024];
    double duration;      /* seconds, 0 when unknown */
    int from_cache;       /* 1 when nothing was downloaded */
} m2p_source_info;

/* source (URL or local path) -> a local audio file path in the cache + info. */
int m2p_fetch(const char *source, const m2p_fetch_params *params, m2p_source_info *info,
              char *path_out, size_t path_len);

/* Is this a URL we will hand to yt-dlp / fetch directly? Rejects non-http(s) schemes and
 * anything starting with '-'. Writes the reason into why on rejection. */
int m2p_url_check(const char *url, char *why, size_t why_len);

#define M2P_N_MFCC 13

/* The original's features, same names and scales, plus what it lacked. */
typedef struct m2p_features {
    double tempo;                 /* BPM, a real estimate (no doubling) */
    double raw_energy, energy;
    double brightness;            /* mean spectral centroid, Hz */
    double spectral_rolloff, spectral_bandwidth, spectral_contrast, zero_crossing_rate;
    double chroma_std;
    double mfcc_mean[M2P_N_MFCC], mfcc_std[M2P_N_MFCC];
    double rhythm_stability, attack_sharpness;
    double harmonicity, hp_ratio;
    double mode_confidence;
    int is_major_key;
    int key_tonic;                /* pitch class 0..11 (C=0), -1 undetermined */
    int key_major;                /* the reported key's mode (1 major), with key_tonic */
    double spectral_flux;
    double onset_density, onset_density_raw;
    double dynamic_range, dynamic_range_db;
    double pitch_register;
    double valence_scientific, arousal_scientific;
    double duration_analyzed;     /* seconds */
    /* beat times in seconds */
    double *beats;
    int n_beats;
    /* downbeats (first beat of each bar, seconds; a subset of beats), beats a bar (3 or 4, 0 =
     * unknown), and how clearly the onsets pulse on the beats (0..1) */
    double *downbeats;
    int n_downbeats;
    int beats_per_bar;
    double beat_confidence;
    /* energy envelope (RMS, 0..1) short enough to plot, one value per envelope_hop_s */
    float *envelope;
    int n_envelope;
    double envelope_hop_s;
    int undetermined;             /* 1 for silence or too little audio: values are defaults */
} m2p_features;

enum { M2P_DURATION_FULL = 0 };

typedef struct m2p_analysis_params {
    double offset_s;    /* default 5 */
    double duration_s;  /* default 60; M2P_DURATION_FULL (0) = to the end */
    /* By stage ("downloading", "decoding", "analysing", "genre", "prompts") with the fraction
     * done (0..1, -1 unknown): between stages and every few hundred packets or frames inside
     * them. Return nonzero to cancel: m2p_analyze then returns M2P_ECANCELED. */
    int (*progress)(const char *stage, double fraction, void *user_data);
    void *user_data;
} m2p_analysis_params;

m2p_analysis_params m2p_analysis_default_params(void);

/* Decoded audio: mono float at 22,050 Hz. */
typedef struct m2p_audio {
    float *samples;
    int64_t n;
    int sample_rate;          /* 22050 */
    char meta_artist[256], meta_title[256], meta_genre[128];
    double source_duration;   /* seconds in the file, 0 if unknown */
} m2p_audio;

#define M2P_SAMPLE_RATE 22050
/* Any file FFmpeg reads -> mono float 22,050 Hz from offset_s for duration_s (0 = to end). */
int m2p_audio_decode(const char *path, double offset_s, double duration_s, m2p_audio *out);
void m2p_audio_free(m2p_audio *a);

/* samples -> features. Silence or too little audio gives undetermined = 1, not an error. */
int m2p_features_compute(const float *samples, int64_t n, int sample_rate, m2p_features *out);
void m2p_features_free(m2p_features *f);
/* The tonic's name ("C", "C#", ... "B"), or "" when undetermined. */
const char *m2p_key_name(int pitch_class);

/* Band and song from source info (the spec's band_song rules). */
int m2p_band_song(const m2p_source_info *info, char *band, size_t band_len, char *song,
                  size_t song_len);

/* Raw genre text -> one of the normalised genres ("abstract" when nothing matches). */
const char *m2p_genre_normalize(const char *raw);

typedef struct m2p_genre_params {
    const char *musicbrainz_url;  /* default https://musicbrainz.org (or $MUS2PIC_MUSICBRAINZ_URL) */
    const char *spotify_auth_url; /* default https://accounts.spotify.com/api/token */
    const char *spotify_api_url;  /* default https://api.spotify.com/v1 */
    int offline;                  /* 1: no network sources */
} m2p_genre_params;

m2p_genre_params m2p_genre_default_params(void);

/* Where the analysis keeps small answers between runs (a video's band/song, a band's genre
 * lookups): namespaced text values ("band_song", "genre:spotify", ...). get: 0 with *value
 * malloc'd (caller frees), nonzero when absent or expired. put: keep value for ttl_s seconds
 * (0 = no expiry); 0 or an M2P_E* code (a failed put is only logged). m2p_store_cache gives
 * one over a store; a program may give its own. */
typedef struct m2p_cache {
    int (*get)(void *user_data, const char *ns, const char *key, char **value);
    int (*put)(void *user_data, const char *ns, const char *key, const char *value,
               int64_t ttl_s);
    void *user_data;
} m2p_cache;

/* First source that answers: metadata, youtube, spotify, musicbrainz, inferred, default.
 * genre_raw gets the raw genre text, source the source's name. cache (optional) keeps the
 * network sources' answers. */
int m2p_genre_find(const m2p_source_info *info, const char *band, const m2p_features *features,
                   const m2p_genre_params *params, const m2p_cache *cache, char *genre_raw,
                   size_t genre_len, char *source, size_t source_len);

enum { M2P_PROMPT_V1 = 1, M2P_PROMPT_V3 = 3, M2P_PROMPT_V4 = 4, M2P_PROMPT_LLM = 100 };

/* Features as the prompt rules read them: a name -> number map. See src/music/prompt.h for the
 * builder on a feature map; this entry point takes the struct. Writes malloc'd strings. */
int m2p_prompt_build(int version, const m2p_features *f, const char *band, const char *song,
                     const char *raw_genre, char **prompt, char **negative_prompt);

typedef struct m2p_llm_params {
    const char *base_url;  /* default $MUS2PIC_LLM_URL or https://api.openai.com/v1 */
    const char *model;     /* default $MUS2PIC_LLM_MODEL or gpt-4o-mini */
    const char *api_key;   /* default $OPENAI_API_KEY */
    double temperature;    /* 0..1, default 0.7 */
    const char *additional_context;
    int timeout_s;         /* default 30 */
} m2p_llm_params;

m2p_llm_params m2p_llm_default_params(void);
/* 1 when key can go into an Authorization header (printable ASCII: no CR, LF or controls). */
int m2p_llm_key_ok(const char *key);
/* Does the endpoint (p->base_url) accept key? It lists its models with it (GET {base}/models, a
 * read that costs nothing): *valid = 1 on 200, 0 on 401/403. Any other answer or none is the
 * endpoint's failure (M2P_ENETWORK, M2P_ETIMEOUT), not an answer about the key; a key that
 * cannot go into a header is M2P_EINVAL. */
int m2p_llm_key_check(const m2p_llm_params *p, const char *key, int *valid);
int m2p_prompt_llm(const m2p_llm_params *p, const char *song, const char *artist,
                   const char *genre, char **prompt, int *tokens_used);

/* The whole analysis: source -> fetch -> decode -> features -> band/song -> genre -> prompts.
 * cache (optional, m2p_store_cache) keeps the band/song and genre answers between runs. */
typedef struct m2p_analysis {
    m2p_source_info info;
    m2p_features features;
    char band[256], song[256];
    char genre_raw[256], genre[64], genre_source[32];
    char *prompt_v1, *prompt_v3, *prompt_v4;
    char *negative_v1, *negative_v3, *negative_v4;
} m2p_analysis;

int m2p_analyze(const char *source, const m2p_fetch_params *fetch,
                const m2p_analysis_params *params, const m2p_genre_params *genre,
                const m2p_cache *cache, m2p_analysis *out);
void m2p_analysis_free(m2p_analysis *a);
/* The analysis as a JSON object (malloc'd string): every feature, band, song, genre,
 * genre_source, key, mode, beats, envelope, prompts. */
char *m2p_analysis_to_json(const m2p_analysis *a);

/* ------------------------------------------------------------------------------------------ */
/* Store: SQLite (default) or PostgreSQL. The schema: src/store/migrations.c, one list each.  */
/* ------------------------------------------------------------------------------------------ */

typedef struct m2p_store m2p_store;
/* Open the store and run the migrations. url: a data folder (FOLDER/mus2pic.db, SQLite in WAL
 * mode, created), sqlite:FILE, or a libpq URI postgresql://... (see src/store/store.h). */
int m2p_store_open(const char *url, m2p_store **out);
void m2p_store_close(m2p_store *s);
/* Where the store is, for logs and status: the database file, or the URL without its
 * password. */
const char *m2p_store_where(m2p_store *s);
/* The store's cache table as the analysis' cache (m2p_analyze, m2p_genre_find); valid while s
 * is open. */
m2p_cache m2p_store_cache(m2p_store *s);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* MUS2PIC_H */
