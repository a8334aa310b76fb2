/*
 * tensor_file.c — float32 tensors in and out of safetensors files through the public API
 * (m2p_tensor_read_f32 / m2p_tensor_write_f32): `mus2pic generate --latents/--noise/--raw-out`
 * exchanges latents, noise and decoded images with diffusers this way. The format is
 * safetensors.c's (st_open/st_find, st_write: temporary file, then rename).
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/safetensors.h"
#include "mus2pic.h"

int m2p_tensor_read_f32(const char *path, const char *name, int *ndim, int64_t shape[8],
                        float **data)
{
    if (!path || !name || !ndim || !shape || !data)
        return m2p_error(M2P_EINVAL, "tensor: path, name, ndim, shape and data are required");
    *data = NULL;
    *ndim = 0;
    st_file *f = NULL;
    int rc = st_open(path, &f);
    if (rc)
        return rc;
    st_tensor *t = st_find(f, name);
    if (!t) {
        rc = m2p_error(M2P_ENOTFOUND, "%s has no tensor '%s'", path, name);
    } else if (t->dtype != ST_F32) {
        rc = m2p_error(M2P_EFORMAT, "%s: tensor '%s' is %s, not float32", path, name,
                       st_dtype_name(t->dtype));
    } else if (!(*data = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(float)))) {
        rc = m2p_error(M2P_ENOMEM, "%s: out of memory for tensor '%s'", path, name);
    } else {
        memcpy(*data, t->data, (size_t)t->numel * sizeof(float));
        *ndim = t->ndim;
        for (int i = 0; i < t->ndim; i++)
            shape[i] = t->shape[i];
    }
    st_close(f);
    return rc;
}

int m2p_tensor_write_f32(const char *path, const char *name, int ndim, const int64_t *shape,
                         const float *data)
{
    if (!path || !name || !shape || !data || ndim < 1 || ndim > ST_MAX_DIMS)
        return m2p_error(M2P_EINVAL, "tensor: path, name, 1..%d dimensions and data are required",
                         ST_MAX_DIMS);
    st_out_tensor t = {name, ST_F32, ndim, {0}, data};
    for (int i = 0; i < ndim; i++)
        t.shape[i] = shape[i];
    return st_write(path, &t, 1);
}
