/*
 * registry.c — the six models the original app offered (../shared/spec/model-registry.json),
 * compiled in: short name, hub id, the original's descriptions and defaults (steps, guidance, size,
 * scheduler: the repo's scheduler_config _class_name, Lightning's Euler with trailing spacing),
 * and whether this version can run it (all six: SD 1.x, SD 2.x and SDXL with their schedulers).
 * Consumers: `models list`, /api/models, `inspect`, the generate defaults.
 */
#include <string.h>
#include <strings.h>

#include "mus2pic.h"

static const m2p_registry_entry entries[] = {
    {"lcm", "SimianLuo/LCM_Dreamshaper_v7", "LCM (Latent Consistency Model)",
     "Fastest option - generates in 4-8 steps. Best balance of speed and quality.", "6-12 seconds",
     "4-5GB", "Good", "Very Fast", 8, 1, 1.0f, 512, 512, "LCMScheduler", NULL},
    {"sd14", "CompVis/stable-diffusion-v1-4", "Stable Diffusion 1.4",
     "Smallest model - best for limited RAM (8GB). Good quality, slightly older.", "15-25 seconds",
     "3.5-4GB", "Good", "Medium", 20, 1, 7.5f, 512, 512, "PNDMScheduler", NULL},
    {"sd21", "stabilityai/stable-diffusion-2-1", "Stable Diffusion 2.1",
     "Better quality than 1.5 - improved prompt understanding. Requires more RAM.", "20-30 seconds",
     "4-5GB", "Very Good", "Medium", 20, 1, 7.5f, 768, 768, "DDIMScheduler", NULL},
    {"turbo", "stabilityai/sdxl-turbo", "SDXL Turbo",
     "Very fast with high quality - can generate in 1-4 steps. Requires 8GB+ RAM.", "8-15 seconds",
     "6-8GB", "Excellent", "Fast", 1, 1, 0.0f, 512, 512, "EulerAncestralDiscreteScheduler", NULL},
    {"lcm_sd21", "latent-consistency/lcm-sd21", "LCM SD2.1",
     "LCM based on SD2.1 - fast generation (4-8 steps) with better prompt understanding than "
     "SD1.5 LCM.",
     "8-15 seconds", "5-6GB", "Very Good", "Very Fast", 8, 1, 1.0f, 512, 512, "LCMScheduler", NULL},
    /* The original combined the SDXL base with the UNet of ByteDance/SDXL-Lightning
     * (sdxl_lightning_{2,4,8}step_unet.safetensors). */
    {"sdxl_lightning", "stabilityai/stable-diffusion-xl-base-1.0", "SDXL Lightning",
     "Ultra-fast SDXL model - generates in 1-4 steps with excellent quality. Requires 8GB+ RAM.",
     "5-10 seconds", "7-9GB", "Excellent", "Ultra Fast", 4, 1, 0.0f, 1024, 1024,
     "EulerDiscreteScheduler", "trailing"},
};

const m2p_registry_entry *m2p_registry(int *n)
{
    if (n)
        *n = (int)(sizeof entries / sizeof entries[0]);
    return entries;
}

/* By short name (exact) or hub id (case-insensitive, as the hub treats repo ids). */
const m2p_registry_entry *m2p_registry_find(const char *name_or_hub_id)
{
    if (!name_or_hub_id)
        return NULL;
    for (size_t i = 0; i < sizeof entries / sizeof entries[0]; i++)
        if (!strcmp(entries[i].name, name_or_hub_id) ||
            !strcasecmp(entries[i].hub_id, name_or_hub_id))
            return &entries[i];
    return NULL;
}

int m2p_registry_uses_negative(const m2p_registry_entry *e)
{
    return e && e->default_guidance > 1.0f;
}
