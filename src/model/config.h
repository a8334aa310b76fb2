/*
 * config.h — one model part's config.json (diffusers / transformers), read with jansson.
 *
 * Getters come in two kinds: config_int() etc. require the key; config_opt_*() give a default
 * when the key is absent or JSON null. A present key with the wrong type is always an error.
 * Every error names the file and the key: "unet/config.json: 'layers_per_block' must be an
 * integer". Per-block values that diffusers accepts as a scalar or a list
 * (attention_head_dim, transformer_layers_per_block, ...) are read by config_int_per_block().
 */
#ifndef M2P_MODEL_CONFIG_H
#define M2P_MODEL_CONFIG_H

typedef struct m2p_config m2p_config;

/* Reads <dir>/config.json (or the given file when `path` ends in .json). */
int config_open(const char *path, m2p_config **out);
void config_free(m2p_config *c);
const char *config_path(const m2p_config *c);

/* 1 when the key is present and not null. */
int config_has(const m2p_config *c, const char *key);

int config_int(const m2p_config *c, const char *key, int *out);
int config_opt_int(const m2p_config *c, const char *key, int def, int *out);
/* Floats accept JSON integers too. */
int config_float(const m2p_config *c, const char *key, float *out);
int config_opt_float(const m2p_config *c, const char *key, float def, float *out);
int config_opt_bool(const m2p_config *c, const char *key, int def, int *out);
/* The string stays owned by the config. */
int config_string(const m2p_config *c, const char *key, const char **out);
int config_opt_string(const m2p_config *c, const char *key, const char *def, const char **out);

/* An integer array of at most max entries; *n gets the count. */
int config_int_array(const m2p_config *c, const char *key, int *out, int max, int *n);
/* A string array of at most max entries (strings owned by the config). */
int config_string_array(const m2p_config *c, const char *key, const char **out, int max, int *n);
/* A per-block value: a scalar is repeated n times, an array must have exactly n entries; when
 * absent or null, def is repeated (def < 0 with an absent key is an error). */
int config_int_per_block(const m2p_config *c, const char *key, int n, int def, int *out);

#endif
