/*
 * registry_data.h — the registry table, generated at build time (registry_data.c, by
 * tools/codegen/gen_registry.c from src/model/model-registry.json and model-engine.json).
 */
#ifndef M2P_MODEL_REGISTRY_DATA_H
#define M2P_MODEL_REGISTRY_DATA_H

#include "mus2pic.h"

extern const m2p_registry_entry m2p_registry_entries[];
extern const int m2p_registry_n_entries;

#endif
