/*
 * fuzz_safetensors.c — libFuzzer target for safetensors header parsing and validation
 * (src/model/safetensors.c: st_open, st_find, st_to_f32).
 *
 * Input: a whole .safetensors file (written to a temporary file, since st_open maps a path).
 * Every tensor st_open accepts must lie inside the mapping; small ones are converted to f32.
 */
#include "fuzz_input_file.h"
#include "model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_input_file(data, size, ".safetensors");
    if (!path)
        return 0;
    st_file *f = NULL;
    if (st_open(path, &f) != 0)
        return 0;
    for (int i = 0; i < f->n; i++) {
        st_tensor *t = &f->tensors[i];
        const char *d = t->data, *m = f->map;
        if (t->nbytes && (d < m || d + t->nbytes > m + f->size))
            abort();
        if (st_find(f, t->name) == NULL)
            abort();
        if (t->numel <= 4096) {
            float *dst = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(float));
            if (dst)
                st_to_f32(t, dst);
            free(dst);
        }
    }
    st_close(f);
    return 0;
}
