/*
 * scheduler_lcm.h — the Latent Consistency Model scheduler (diffusers 0.26 LCMScheduler) and
 * the LCM pipeline's guidance embedding (timestep_cond).
 */
#ifndef M2P_SD_SCHEDULER_LCM_H
#define M2P_SD_SCHEDULER_LCM_H

#include <stddef.h>
#include <stdint.h>

enum { LCM_PRED_EPSILON = 0, LCM_PRED_SAMPLE = 1, LCM_PRED_V = 2 };

typedef struct lcm_config {
    int num_train_timesteps;      /* 1000 */
    float beta_start, beta_end;   /* 0.00085, 0.012 */
    int scaled_linear;            /* beta_schedule: 1 = "scaled_linear", 0 = "linear" */
    int original_inference_steps; /* 50 */
    int set_alpha_to_one;         /* 1 */
    int prediction_type;          /* LCM_PRED_* */
    float timestep_scaling;       /* 10 */
    int clip_sample;              /* 0 */
    float clip_sample_range;      /* 1 */
} lcm_config;

/* diffusers' LCMScheduler defaults. */
void lcm_config_default(lcm_config *c);
/* Reads scheduler/scheduler_config.json over the defaults. Options this version cannot honour
 * (thresholding, rescale_betas_zero_snr, trained_betas, other beta schedules) are
 * M2P_EUNSUPPORTED errors naming the key. */
int lcm_config_load(const char *path, lcm_config *c);

typedef struct lcm_scheduler {
    lcm_config cfg;
    float *alphas_cumprod; /* [num_train_timesteps], float32 as torch computes it */
    float final_alpha_cumprod;
    int n_steps;
    int64_t *timesteps; /* [n_steps], descending */
} lcm_scheduler;

int lcm_init(lcm_scheduler *s, const lcm_config *c);
void lcm_free(lcm_scheduler *s);
/* set_timesteps(steps): errors (M2P_EINVAL) when steps < 1 or > original_inference_steps, as
 * diffusers raises. */
int lcm_set_timesteps(lcm_scheduler *s, int steps);
/* Boundary-condition scalings c_skip, c_out for timestep t (float32 like torch). */
void lcm_scalings(const lcm_scheduler *s, int64_t t, float *c_skip, float *c_out);
/* One step over n values: the step_index-th timestep of the schedule. noise is used (and must be
 * given) on every step but the last; on the last step prev_sample = denoised. prev_sample may
 * alias sample. */
int lcm_step(const lcm_scheduler *s, int step_index, const float *model_output, const float *sample,
             const float *noise, size_t n, float *denoised, float *prev_sample);

/* LatentConsistencyModelPipeline.get_guidance_scale_embedding(w = guidance - 1, dim), in float32
 * like diffusers: w*1000 times exp(-ln(10000) i / (half-1)), then [sin | cos] (zero pad for odd
 * dim). out holds dim floats. */
void lcm_guidance_embedding(float guidance, int dim, float *out);

#endif
