/*
 * components.h — the networks of an SD 1.x / 2.x / SDXL / LCM pipeline, each loaded from its
 * diffusers part folder with every size read from its config.json. Inputs and outputs at this
 * boundary are NCHW / [B, L, C] float32 like diffusers, so the golden tensors compare directly.
 *
 * Compute: each network runs on the backend given to its load function (tensor/backend.h; NULL:
 * the CPU's), which holds its weights and activations; the arrays passed to and returned from
 * the functions here are host memory, moved in and out by the network at this boundary.
 *
 * Scratch: each network has its own arena until *_set_arena hands it a shared one (the pipeline
 * shares one between all four, so only the largest forward's scratch is ever resident); a
 * shared arena allocates from the same backend as the networks that use it.
 *
 * Debug taps: when a component's `tap` is set, it is called with each named intermediate the
 * fixtures record (e.g. "down_blocks.0", "mid_block", "conv_norm_out"), NCHW, so tests can
 * localise a mismatch.
 */
#ifndef M2P_SD_COMPONENTS_H
#define M2P_SD_COMPONENTS_H

#include "model/weights.h"
#include "mus2pic.h"

struct nn_arena;    /* sd/nn.h */
struct m2p_backend; /* tensor/backend.h */

typedef void (*sd_tap)(const char *name, const float *data, int ndim, const int64_t *shape,
                       void *ud);

/* --- CLIP text encoder (transformers CLIPTextModel / CLIPTextModelWithProjection) ------- */
typedef struct clip_text clip_text;
int clip_text_load(const char *dir, const m2p_model_params *p, const struct m2p_backend *be,
                   clip_text **out);
/* ids [B, L] (L <= max_position) -> last_hidden_state [B, L, hidden] (after final_layer_norm):
 * what SD 1.x / 2.x pipelines use. Same as clip_text_encode(m, ids, B, L, 0, 1, out, NULL, NULL).
 */
int clip_text_forward(clip_text *m, const int32_t *ids, int B, int L, float *out);
/* The general call (SDXL's encode_prompt uses skip 1, final_norm 0 on both encoders):
 *   hidden [B, L, hidden]: hidden_states[-(skip + 1)], i.e. the output of encoder layer
 *     n_layers - 1 - skip (skip 0 = the last layer), with final_layer_norm applied when
 *     final_norm is set (SD 1.x clip_skip does; SDXL does not). NULL: not wanted.
 *   pooled [B, hidden]: final_layer_norm(last layer) at the EOS position (transformers: the
 *     first argmax(ids) when the config's eos_token_id is the legacy 2, else the first
 *     eos_token_id). NULL: not wanted.
 *   text_embeds [B, projection_dim]: text_projection(pooled) (CLIPTextModelWithProjection, i.e.
 *     SDXL's pooled_prompt_embeds). NULL: not wanted; M2P_EINVAL without a text_projection.
 * skip must be 0 .. n_layers - 1. All layers run only when pooled/text_embeds are asked for. */
int clip_text_encode(clip_text *m, const int32_t *ids, int B, int L, int skip, int final_norm,
                     float *hidden, float *pooled, float *text_embeds);
int clip_text_hidden(const clip_text *m);
int clip_text_layers(const clip_text *m);
int clip_text_projection_dim(const clip_text *m); /* 0 when there is no text_projection */
void clip_text_set_tap(clip_text *m, sd_tap tap, void *ud);
void clip_text_set_arena(clip_text *m, struct nn_arena *shared); /* NULL: its own again */
weights *clip_text_weights(clip_text *m);
/* Free the weights (the config and open files stay); the next encode loads them again. */
void clip_text_unload(clip_text *m);
int clip_text_loaded(const clip_text *m);
void clip_text_free(clip_text *m);

/* --- UNet2DConditionModel (SD 1.x / 2.x / SDXL, with LCM's time_cond_proj_dim) ---------- */
typedef struct unet unet;
/* SDXL's added conditioning (addition_embed_type "text_time", diffusers added_cond_kwargs):
 * aug = add_embedding(concat(text_embeds, add_time_proj(time_ids))) is added to the time
 * embedding. n_text_embeds + n_time_ids * addition_time_embed_dim must equal the config's
 * projection_class_embeddings_input_dim (SDXL: 1280 + 6 * 256 = 2816). */
typedef struct unet_added_cond {
    const float *text_embeds; /* [B, n_text_embeds]: text_encoder_2's text_embeds (pooled) */
    int n_text_embeds;
    const float *time_ids; /* [B, n_time_ids]: orig (h, w), crop (top, left), target (h, w) */
    int n_time_ids;
} unet_added_cond;
int unet_load(const char *dir, const m2p_model_params *p, const struct m2p_backend *be, unet **out);
/* As unet_load with the config of `dir` but the weights of `weights_file` (a .safetensors file
 * with the same tensor names, e.g. ByteDance/SDXL-Lightning's UNet over the SDXL base folder);
 * NULL weights_file = the folder's own. */
int unet_load_file(const char *dir, const char *weights_file, const m2p_model_params *p,
                   const struct m2p_backend *be, unet **out);
/* sample [B, in_ch, h, w], timestep t (same for the batch, as float as diffusers passes it;
 * the sinusoid uses t as float32), timestep_cond [B, cond_dim] or NULL when the config has no
 * time_cond_proj_dim, added: required when unet_added_dims() says so, else NULL,
 * ctx [B, ctx_len, cross_attention_dim] -> out [B, out_ch, h, w]. */
int unet_forward(unet *m, const float *sample, int B, int h, int w, float t,
                 const float *timestep_cond, const unet_added_cond *added, const float *ctx,
                 int ctx_len, float *out);
int unet_in_channels(const unet *m);
int unet_cond_dim(const unet *m); /* time_cond_proj_dim, 0 if none */
/* 1 with addition_embed_type "text_time": *in_dim = projection_class_embeddings_input_dim,
 * *time_dim = addition_time_embed_dim; 0 (and both 0) without added conditioning. */
int unet_added_dims(const unet *m, int *in_dim, int *time_dim);
int unet_cross_dim(const unet *m);
int unet_sample_size(const unet *m);
/* Bytes of scratch memory a forward pass at this size needs (for "too large for memory"). */
size_t unet_scratch_bytes(const unet *m, int B, int h, int w, int ctx_len);
void unet_set_tap(unet *m, sd_tap tap, void *ud);
/* Rows per bf16 feed-forward chunk on big maps (unet_blocks.h UNET_FF_CHUNK, the default; 0:
 * every row at once). For tests and benchmarks: the numbers are the same either way. */
void unet_set_ff_chunk(unet *m, int rows);
void unet_set_arena(unet *m, struct nn_arena *shared); /* NULL: its own again */
weights *unet_weights(unet *m);
void unet_free(unet *m);

/* --- AutoencoderKL decoder (post_quant_conv + decoder) ---------------------------------- */
typedef struct vae vae;
int vae_load(const char *dir, const m2p_model_params *p, const struct m2p_backend *be, vae **out);
float vae_scaling_factor(const vae *m);
int vae_latent_channels(const vae *m);
/* diffusers' vae_scale_factor = 2^(len(block_out_channels) - 1): 8 for every SD / SDXL VAE; the
 * pipeline's image size is latent size x this. */
int vae_scale_factor(const vae *m);
/* z [B, latent_ch, h, w] ALREADY divided by the scaling factor -> image [B, 3, f*h, f*w]
 * (f = vae_scale_factor), the raw decoder output (about [-1, 1], not clamped). */
int vae_decode(vae *m, const float *z, int B, int h, int w, float *out);
size_t vae_scratch_bytes(const vae *m, int B, int h, int w);
/* The same image from overlapping tiles of at most max_tile x max_tile latents, each decoded
 * alone and blended with linear ramps across overlaps of at least `overlap` latents (8 <=
 * max_tile, 1 <= overlap <= max_tile / 2): memory is one tile's, whatever the size. GroupNorm
 * and the mid-block attention see one tile, so the result is close to vae_decode's, not equal
 * (as diffusers' tiled_decode). Latents that fit one tile decode untiled, exactly. */
int vae_decode_tiled(vae *m, const float *z, int B, int h, int w, int max_tile, int overlap,
                     float *out);
/* Scratch plus tile buffers vae_decode_tiled needs. */
size_t vae_decode_tiled_bytes(const vae *m, int B, int h, int w, int max_tile, int overlap);
/* The pipeline's default tiles: 128 latents (1024 pixels) with diffusers' 25% overlap, so every
 * size the original's models use (512, 768, 1024 square) decodes untiled, exactly as diffusers
 * (whose tiling is opt-in), and only larger images pay tiling's per-tile GroupNorm error for
 * bounded memory. `--vae-tile 64` tiles from 512 pixels up when memory is tighter. */
#define VAE_TILE_DEFAULT 128
#define VAE_TILE_OVERLAP 32
void vae_set_tap(vae *m, sd_tap tap, void *ud);
void vae_set_arena(vae *m, struct nn_arena *shared); /* NULL: its own again */
weights *vae_weights(vae *m);
void vae_free(vae *m);

/* --- TAESD decoder (AutoencoderTiny) ---------------------------------------------------- */
typedef struct taesd taesd;
int taesd_load(const char *dir, const m2p_model_params *p, const struct m2p_backend *be,
               taesd **out);
/* raw UNet-space latents [B, 4, h, w] -> image [B, 3, 8h, 8w] in [-1, 1] (not clamped). */
int taesd_decode(taesd *m, const float *z, int B, int h, int w, float *out);
void taesd_set_tap(taesd *m, sd_tap tap, void *ud);
void taesd_set_arena(taesd *m, struct nn_arena *shared); /* NULL: its own again */
void taesd_free(taesd *m);

#endif
