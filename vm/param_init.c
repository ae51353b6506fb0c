/* Initial values of parameters and state: one function, so the VM, the graph and
 * checkpoints that start fresh agree on every number. */
#include "vm/vm_api.h"

#include <math.h>

prt_status prt_param_init(prt_context *ctx, const char *name, prt_init_kind kind,
                          const prt_shape *shape, float *dst) {
    int64_t n;
    PRT_CHECK(prt_shape_numel(ctx, shape, &n));
    /* fan_in = numel / out channels: conv [out, in, kh, kw] -> in*kh*kw,
     * linear [out, in] -> in. */
    int64_t fan_in = (shape->ndim > 0 && shape->d[0] > 0) ? n / shape->d[0] : 1;
    if (fan_in < 1) fan_in = 1;
    uint64_t key = prt_hash_str(name, ctx->seed);
    switch (kind) {
    case PRT_INIT_ZEROS:
        for (int64_t i = 0; i < n; i++) dst[i] = 0.0f;
        return PRT_OK;
    case PRT_INIT_ONES:
        for (int64_t i = 0; i < n; i++) dst[i] = 1.0f;
        return PRT_OK;
    case PRT_INIT_HE_NORMAL:
        prt_rng_fill_normal(key, dst, n, 0.0f, (float)sqrt(2.0 / (double)fan_in));
        return PRT_OK;
    case PRT_INIT_UNIFORM_FAN: {
        float b = (float)(1.0 / sqrt((double)fan_in));
        prt_rng_fill_uniform(key, dst, n, -b, b);
        return PRT_OK;
    }
    }
    return prt_error(ctx, PRT_ERR_INVALID, "tensor '%s': unknown initialiser %d", name, (int)kind);
}
