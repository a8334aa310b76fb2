/*
 * pipeline.h — internals of the LCM text-to-image pipeline that tests and tools reach beyond
 * mus2pic.h: debug taps on every stage and the loaded parts.
 */
#ifndef M2P_SD_PIPELINE_H
#define M2P_SD_PIPELINE_H

#include "mus2pic.h"
#include "sd/clip_tokenizer.h"
#include "sd/components.h"

/* Called with the pipeline's intermediates under the fixture's names: "prompt_embeds"
 * [1,77,C], "timestep_cond" [1,D], "latents_in" [N,4,h,w], and per step i "step{i}.noise_pred",
 * "step{i}.denoised", "step{i}.latents" [N,4,h,w], and "image_decoded" [N,3,H,W] (raw decoder
 * output). NULL turns it off. */
void pipeline_set_tap(m2p_model *m, sd_tap tap, void *ud);

struct m2p_backend; /* tensor/backend.h */
/* m2p_model_load with every network on backend be (NULL: the CPU's, which m2p_model_load
 * uses); be must outlive the model. */
int pipeline_model_load(const char *ref, const m2p_model_params *params,
                        const struct m2p_backend *be, m2p_model **out);

const clip_tokenizer *pipeline_tokenizer(const m2p_model *m);
unet *pipeline_unet(m2p_model *m); /* loaded again if released (NULL on error) */
int pipeline_unet_loaded(const m2p_model *m);
vae *pipeline_vae(m2p_model *m);
taesd *pipeline_taesd(m2p_model *m);
/* The text encoder (which = 1: SDXL's text_encoder_2; NULL when the model has none). */
clip_text *pipeline_text_encoder(m2p_model *m, int which);

/* Preview images (preview.c). */
/* SD 1.x / 2.x (xl 0) or SDXL (xl 1) latents [C=4, h, w] -> RGB8 h x w with the known linear
 * latent->RGB factors of that latent space. */
void preview_latent_rgb(const float *z, int h, int w, int xl, uint8_t *rgb);
/* Latents [B, 4, h, w] -> RGB8 B x (8h x 8w) through TAESD. */
int preview_taesd(taesd *t, const float *z, int B, int h, int w, uint8_t *rgb);
/* Decoder output [3, H, W] in about [-1, 1] -> clamp(x/2 + 0.5, 0, 1) (raw CHW, optional) and
 * round(x * 255) RGB8 HWC, as diffusers' postprocess + numpy_to_pil. */
void image_postprocess(const float *x, int H, int W, float *raw, uint8_t *rgb);

#endif
