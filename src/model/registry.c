/*
 * registry.c — the six models the original app offered (../shared/spec/model-registry.json),
 * compiled in: short name, hub id, the original's descriptions and defaults (steps, guidance, size,
 * scheduler: the repo's scheduler_config _class_name, Lightning's Euler with trailing spacing),
 * and whether this version can run it. The table is generated at build time from the in-repo
 * copy of the spec (model-registry.json) and the engine's additions (model-engine.json; the
 * original combined the SDXL base with the UNet of ByteDance/SDXL-Lightning). Consumers:
 * `models list`, /api/models, `inspect`, the generate defaults.
 */
#include <string.h>
#include <strings.h>

#include "model/registry_data.h"
#include "mus2pic.h"

const m2p_registry_entry *m2p_registry(int *n)
{
    if (n)
        *n = m2p_registry_n_entries;
    return m2p_registry_entries;
}

/* By short name (exact) or hub id (case-insensitive, as the hub treats repo ids). */
const m2p_registry_entry *m2p_registry_find(const char *name_or_hub_id)
{
    if (!name_or_hub_id)
        return NULL;
    for (int i = 0; i < m2p_registry_n_entries; i++)
        if (!strcmp(m2p_registry_entries[i].name, name_or_hub_id) ||
            !strcasecmp(m2p_registry_entries[i].hub_id, name_or_hub_id))
            return &m2p_registry_entries[i];
    return NULL;
}

int m2p_registry_uses_negative(const m2p_registry_entry *e)
{
    return e && e->default_guidance > 1.0f;
}
