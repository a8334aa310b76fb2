/*
 * safetensors.h — read (mmap, full header validation) and write safetensors files.
 *
 * Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape,
 * data_offsets:[begin,end]}, "__metadata__": {...}}, then the data block. Validation: N within
 * the file, JSON an object, every dtype known, shape * dtype size == end - begin, offsets inside
 * the data block, no two tensors overlapping. Errors name the file and the tensor.
 */
#ifndef M2P_MODEL_SAFETENSORS_H
#define M2P_MODEL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL
} st_dtype;

#define ST_MAX_DIMS 8

typedef struct st_tensor {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    const void *data; /* inside the mapping */
    size_t nbytes;
    int used;         /* set by loaders that consumed it; the rest is "skipped" */
} st_tensor;

typedef struct st_file {
    char *path;
    void *map;
    size_t size;
    st_tensor *tensors;
    int n;
} st_file;

int st_open(const char *path, st_file **out);
void st_close(st_file *f);
const char *st_dtype_name(st_dtype t);
size_t st_dtype_size(st_dtype t);
/* NULL when absent. */
st_tensor *st_find(st_file *f, const char *name);
/* Convert any float dtype (F32/F16/BF16/F64) to float32: dst holds t->numel floats. */
int st_to_f32(const st_tensor *t, float *dst);

/* Writing (tests, tools, --raw-out): tensors given as name, dtype, shape and data. */
typedef struct st_out_tensor {
    const char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
} st_out_tensor;
/* Writes to path.tmp then renames: never a partial file under path. */
int st_write(const char *path, const st_out_tensor *tensors, int n);
/* Streaming variant for big files (tools/make-random-model): the data of tensor i is produced by
 * fill(i, buf, nbytes, ud) into a scratch buffer just before it is written, so only one tensor
 * is in memory at a time (tensors[i].data is ignored). fill returns 0 or an M2P_E* code. */
typedef int (*st_fill_fn)(int i, void *buf, size_t nbytes, void *ud);
int st_write_stream(const char *path, const st_out_tensor *tensors, int n, st_fill_fn fill,
                    void *ud);

#endif
