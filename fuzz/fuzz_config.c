/*
 * fuzz_config.c — libFuzzer target for model config.json reading (src/model/config.c).
 *
 * Input: a config.json (written to a temporary .json file, since config_open reads a path).
 * Every getter the UNet/VAE/CLIP loaders use is called on the keys they read; wrong types must
 * give errors, never crashes.
 */
#include "fuzz_input_file.h"
#include "model/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_input_file(data, size, ".json");
    if (!path)
        return 0;
    m2p_config *c = NULL;
    if (config_open(path, &c) != 0)
        return 0;
    static const char *const keys[] = {"in_channels", "sample_size", "layers_per_block",
        "attention_head_dim", "block_out_channels", "down_block_types", "cross_attention_dim",
        "transformer_layers_per_block", "norm_num_groups", "scaling_factor", "act_fn",
        "use_linear_projection", "hidden_size", "vocab_size", "_class_name"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        int i, n, arr[8], per[4];
        float f;
        const char *s, *strs[8];
        config_has(c, keys[k]);
        config_opt_int(c, keys[k], 1, &i);
        config_opt_float(c, keys[k], 1.0f, &f);
        config_opt_bool(c, keys[k], 0, &i);
        config_opt_string(c, keys[k], "", &s);
        config_int_array(c, keys[k], arr, 8, &n);
        config_string_array(c, keys[k], strs, 8, &n);
        config_int_per_block(c, keys[k], 4, 1, per);
    }
    config_free(c);
    return 0;
}
