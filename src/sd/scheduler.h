/*
 * scheduler.h — the samplers of a diffusers pipeline behind one interface: LCMScheduler,
 * DDIMScheduler, PNDMScheduler (PLMS, with or without the Runge-Kutta warm-up),
 * EulerDiscreteScheduler and EulerAncestralDiscreteScheduler (diffusers 0.26), picked by
 * `_class_name` of a scheduler_config.json or by name ("lcm", "ddim", "pndm", "euler", "euler_a")
 * over a model's config, as `Scheduler.from_config` does.
 *
 * Use: sched_config_load -> sched_init -> sched_set_timesteps(steps); the pipeline multiplies the
 * initial latents by init_noise_sigma, and for each call i < n_calls feeds the UNet
 * sched_scale_model_input(i, sample) at timestep timesteps[i], then sched_step(i, ...).
 */
#ifndef M2P_SD_SCHEDULER_H
#define M2P_SD_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "sd/scheduler_lcm.h"

typedef enum {
    SCHED_LCM = 0,
    SCHED_DDIM,
    SCHED_PNDM,
    SCHED_EULER,
    SCHED_EULER_A,
    SCHED_N_KINDS
} sched_kind;

enum { SCHED_SPACING_LEADING = 0, SCHED_SPACING_TRAILING, SCHED_SPACING_LINSPACE };

typedef struct sched_config {
    sched_kind kind;
    int num_train_timesteps;
    float beta_start, beta_end;
    int scaled_linear;   /* beta_schedule "scaled_linear" (1) or "linear" (0) */
    int prediction_type; /* LCM_PRED_EPSILON / _SAMPLE / _V (shared by every class) */
    int timestep_spacing;
    int steps_offset;
    int set_alpha_to_one;
    int skip_prk_steps; /* PNDM: PLMS only (1) or 12 Runge-Kutta calls first (0) */
    int clip_sample;    /* DDIM, LCM */
    float clip_sample_range;
    int original_inference_steps; /* LCM */
    float timestep_scaling;       /* LCM */
} sched_config;

/* "lcm" | "ddim" | "pndm" | "euler" | "euler_a" -> kind; -1 when unknown. */
int sched_kind_from_name(const char *name);
/* The diffusers class name of a kind ("DDIMScheduler") and back (-1 when unknown). */
const char *sched_class_name(sched_kind kind);
int sched_kind_from_class(const char *class_name);
/* The sampler's name in AUTOMATIC1111's infotext ("Euler a", "DDIM", "PLMS" = PNDM with
 * skip_prk_steps, "PNDM", "Euler", "LCM"). */
const char *sched_display_name(const sched_config *c);

/* Reads a diffusers scheduler_config.json. kind < 0: the class is the file's `_class_name`;
 * otherwise that class is built from the file's keys it shares (Scheduler.from_config), the
 * others keeping the class defaults. Options this engine cannot honour (thresholding,
 * rescale_betas_zero_snr, trained_betas, use_karras_sigmas, ...)
 * are M2P_EUNSUPPORTED errors naming the key. */
int sched_config_load(const char *path, int kind, sched_config *c);
/* The same from JSON text; `what` names it in messages. */
int sched_config_parse(const char *json_text, const char *what, int kind, sched_config *c);
/* The class defaults of diffusers 0.26 for kind. */
void sched_config_default(sched_kind kind, sched_config *c);

typedef struct scheduler {
    sched_config cfg;
    lcm_scheduler lcm; /* alphas_cumprod (all classes) and LCM's schedule */
    int n_steps;       /* num_inference_steps */
    int n_calls;       /* UNet evaluations: n_steps; PNDM n_steps + 1 (n_steps > 1) with
                        * skip_prk_steps, else n_steps + 9 */
    int n_prk;         /* PNDM without skip_prk_steps: the first 12 calls are Runge-Kutta */
    float *timesteps;  /* [n_calls] as diffusers passes them to the UNet */
    float *sigmas;     /* Euler classes: [n_calls + 1], last 0; else NULL */
    float init_noise_sigma;
    /* PNDM's multistep state over the batch (sched_step's n values) */
    float *ets;        /* [4][n] ring of the last model outputs */
    float *cur_sample; /* [n] */
    float *cur_mo;     /* [n] Runge-Kutta's weighted sum of the model outputs */
    int n_ets, counter;
    size_t n_state;
} scheduler;

int sched_init(scheduler *s, const sched_config *c);
void sched_free(scheduler *s);
/* set_timesteps(steps): the timestep (and sigma) schedule of the class, resets any multistep
 * state. M2P_EINVAL when steps < 1, > num_train_timesteps, > original_inference_steps (LCM),
 * or < 4 for PNDM with its Runge-Kutta warm-up. */
int sched_set_timesteps(scheduler *s, int steps);
/* Random tensors diffusers' step() draws over a whole run of the current schedule, in order:
 * LCM n_steps - 1, Euler and Euler ancestral n_steps (Euler's unused with s_churn 0), DDIM
 * (eta 0) and PNDM none. */
int sched_noise_draws(const scheduler *s);
/* 1 when call i draws a random tensor (the draws counted above, in call order). */
int sched_draws_noise(const scheduler *s, int i);
/* scale_model_input(x, t_i) over n values: x / sqrt(sigma_i^2 + 1) for Euler classes, a copy
 * otherwise. out may alias x. */
void sched_scale_model_input(const scheduler *s, int i, const float *x, float *out, size_t n);
/* step(model_output, t_i, sample) over n values (the whole batch). noise: the tensor drawn at
 * this call, required when sched_draws_noise (may be NULL otherwise). denoised (n values,
 * required): the predicted x0 (pred_original_sample; PNDM: x0 implied by this call's output).
 * prev_sample may alias sample. Calls must go i = 0, 1, ... (PNDM keeps a history). */
int sched_step(scheduler *s, int i, const float *model_output, const float *sample,
               const float *noise, size_t n, float *denoised, float *prev_sample);

#endif
