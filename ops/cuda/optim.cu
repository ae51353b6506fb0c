/* CUDA kernels of the optimizer updates (sgd, adam, adamw, rmsprop): every
 * parameter of the node in ONE launch. The formulas are those of ops/op_sgd.c,
 * op_adam.c, op_adamw.c and op_rmsprop.c, written with round-to-nearest
 * intrinsics so nvcc does not fuse a multiply and an add the CPU build (ISO
 * C11, no contraction) keeps apart: the GPU then rounds as the CPU does.
 *
 * prepare cuts the parameters into chunks of CHUNK elements and makes one
 * device allocation holding the table of tensors (param, grad, state
 * pointers, size) and the table of chunks (tensor, first element); a block
 * updates one chunk at a time. The pointers are fixed once the VM exists (the
 * memory plan), so the tensor table is uploaded once; should a call bring
 * other pointers (or none were known at prepare), run uploads it again,
 * asynchronously on the stream, before the launch. The step's learning rate
 * and coefficients are computed on the host (prt_optim_coef_of): in a CUDA VM
 * the VM writes them into the call's slot of its step block
 * (prt_optim_step_values) and the kernel reads them there, so a launch
 * captured in a CUDA graph uses each replayed step's values; called directly
 * (no slot) they are passed by value. */
#include "ops/cuda/cuda_kern.cuh"

#include <math.h>
#include <string.h>

#define CHUNK 4096

struct cuopt_tensor {
    float *p;
    const float *g;
    float *s0, *s1; /* s1 NULL with one state slot */
    int64_t n;
};

struct cuopt_chunk {
    int64_t start;
    int32_t t;
};

struct cuopt_state {
    prt_context *ctx;
    prt_optimizer_kind kind;
    int k;
    int64_t n_chunks;
    cuopt_tensor *h_tab; /* the host's copy of the uploaded table */
    bool uploaded;
    void *d_mem;          /* one cudaMalloc: the tensor table, then the chunks */
    cuopt_tensor *d_tab;
    cuopt_chunk *d_chunks;
};


/* ---- the update kernels --------------------------------------------------- */

#define FM(a, b) __fmul_rn((a), (b))
#define FA(a, b) __fadd_rn((a), (b))
#define FS(a, b) __fsub_rn((a), (b))
#define FD(a, b) __fdiv_rn((a), (b))

struct sgd_u {
    __device__ static void run(const prt_optim_coef &k, const cuopt_tensor &t, int64_t i) {
        float p = t.p[i], d = FA(t.g[i], FM(k.weight_decay, p));
        if (k.momentum == 0) {
            t.p[i] = FS(p, FM(k.lr, d));
            return;
        }
        float v = FA(FM(k.momentum, t.s0[i]), d);
        t.s0[i] = v;
        t.p[i] = FS(p, FM(k.lr, k.nesterov ? FA(d, FM(k.momentum, v)) : v));
    }
};

/* adam and adamw: a, b, c, d, e, f = b1, 1-b1, b2, 1-b2, step, eps' (op_adam.c) */
struct adam_u {
    __device__ static void run(const prt_optim_coef &k, const cuopt_tensor &t, int64_t i) {
        float p = t.p[i], d = FA(t.g[i], FM(k.weight_decay, p));
        float m = FA(FM(k.a, t.s0[i]), FM(k.b, d));
        float v = FA(FM(k.c, t.s1[i]), FM(k.d, FM(d, d)));
        t.s0[i] = m;
        t.s1[i] = v;
        t.p[i] = FS(FM(k.keep, p), FD(FM(k.e, m), FA(__fsqrt_rn(v), k.f)));
    }
};

/* a, b = rho, 1-rho (op_rmsprop.c) */
struct rmsprop_u {
    __device__ static void run(const prt_optim_coef &k, const cuopt_tensor &t, int64_t i) {
        float p = t.p[i], d = FA(t.g[i], FM(k.weight_decay, p));
        float s = FA(FM(k.a, t.s0[i]), FM(k.b, FM(d, d)));
        t.s0[i] = s;
        float m = FA(FM(k.momentum, t.s1[i]), FD(FM(k.lr, d), __fsqrt_rn(FA(s, k.eps))));
        t.s1[i] = m;
        t.p[i] = FS(p, m);
    }
};

/* The coefficients come from kp, the call's slot of the VM's step block, when
 * there is one (the same launch then serves every step, captured or not), else
 * by value in kv. */
template <class U>
__global__ void optim_k(const prt_optim_coef *kp, prt_optim_coef kv, const cuopt_tensor *__restrict__ tab,
                        const cuopt_chunk *__restrict__ chunks, int64_t n_chunks) {
    const prt_optim_coef k = kp ? *kp : kv;
    for (int64_t ci = blockIdx.x; ci < n_chunks; ci += gridDim.x) {
        cuopt_chunk ch = chunks[ci];
        cuopt_tensor t = tab[ch.t];
        int64_t end = ch.start + CHUNK < t.n ? ch.start + CHUNK : t.n;
        for (int64_t i = ch.start + threadIdx.x; i < end; i += blockDim.x) U::run(k, t, i);
    }
}

/* ---- host side ---------------------------------------------------------------- */

/* The call's shape: f32 contiguous tensors, k groups of 2 + slots inputs, equal
 * element counts within a group (ops/optim.c's check_call). */
static prt_status check_call(const prt_kernel_call *c, prt_optimizer_kind kind, int *k_out) {
    const char *name = prt_optimizer_name(kind);
    int per = 2 + prt_optim_n_slots(kind);
    if (c->n_in < per || c->n_in % per != 0 || c->n_out != 0)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s CUDA kernel: %d inputs and %d outputs, expected a multiple of %d "
                         "inputs and none", name, c->n_in, c->n_out, per);
    PRT_CHECK(prt_cuk_check_f32(c, name, per, -1, 0));
    int k = c->n_in / per;
    for (int j = 0; j < k; j++)
        for (int r = 1; r < per; r++)
            if (prt_shape_count(&c->in[r * k + j]->shape) != prt_shape_count(&c->in[j]->shape))
                return prt_error(c->ctx, PRT_ERR_SHAPE, "%s CUDA kernel: input %d does not match parameter %d", name,
                                 r * k + j, j);
    *k_out = k;
    return PRT_OK;
}

/* The call's pointers into st->h_tab; true when they differ from the table's
 * (or some are still unknown: *complete false). */
static bool fill_table(const prt_kernel_call *c, cuopt_state *st, bool *complete) {
    int k = st->k, slots = prt_optim_n_slots(st->kind);
    bool changed = false;
    *complete = true;
    for (int j = 0; j < k; j++) {
        cuopt_tensor t;
        t.p = PRT_F32P(c->in[j]);
        t.g = PRT_F32P(c->in[k + j]);
        t.s0 = PRT_F32P(c->in[2 * k + j]);
        t.s1 = slots > 1 ? PRT_F32P(c->in[3 * k + j]) : NULL;
        t.n = prt_shape_count(&c->in[j]->shape);
        if (t.n > 0 && (!t.p || !t.g || !t.s0 || (slots > 1 && !t.s1))) *complete = false;
        cuopt_tensor *h = &st->h_tab[j];
        if (h->p != t.p || h->g != t.g || h->s0 != t.s0 || h->s1 != t.s1 || h->n != t.n) {
            *h = t;
            changed = true;
        }
    }
    return changed;
}

extern "C" void prt_cuda_optim_release(void *state) {
    cuopt_state *st = (cuopt_state *)state;
    if (!st) return;
    /* nothing to report to at release; a failure here leaves only a leak */
    if (st->d_mem) (void)cudaFree(st->d_mem);
    prt_free(st->ctx, st->h_tab, 0);
    prt_free(st->ctx, st, sizeof *st);
}

static prt_status optim_prepare(const prt_kernel_call *c, prt_optimizer_kind kind, void **state) {
    *state = NULL;
    const char *name = prt_optimizer_name(kind);
    int k = 0;
    PRT_CHECK(check_call(c, kind, &k));
    prt_status stt = PRT_OK;
    cuopt_chunk *h_chunks = NULL;
    size_t chunk_bytes = 0;
    cuopt_state *st = (cuopt_state *)prt_calloc(c->ctx, 1, sizeof *st);
    if (!st) return prt_error(c->ctx, PRT_ERR_NOMEM, "%s CUDA kernel: out of memory", name);
    st->ctx = c->ctx;
    st->kind = kind;
    st->k = k;
    st->h_tab = (cuopt_tensor *)prt_calloc(c->ctx, (size_t)k, sizeof *st->h_tab);
    if (!st->h_tab) {
        stt = prt_error(c->ctx, PRT_ERR_NOMEM, "%s CUDA kernel: out of memory", name);
        goto fail;
    }
    for (int j = 0; j < k; j++) {
        int64_t n = prt_shape_count(&c->in[j]->shape);
        st->n_chunks += (n + CHUNK - 1) / CHUNK;
    }
    if (st->n_chunks > INT32_MAX) {
        stt = prt_error(c->ctx, PRT_ERR_LIMIT, "%s CUDA kernel: %lld chunks of %d elements, at most %d", name,
                        (long long)st->n_chunks, CHUNK, INT32_MAX);
        goto fail;
    }
    {
        chunk_bytes = (size_t)st->n_chunks * sizeof(cuopt_chunk);
        size_t tab_bytes = ((size_t)k * sizeof(cuopt_tensor) + 255) / 256 * 256;
        h_chunks = (cuopt_chunk *)prt_malloc(c->ctx, chunk_bytes ? chunk_bytes : 1);
        if (!h_chunks) {
            stt = prt_error(c->ctx, PRT_ERR_NOMEM, "%s CUDA kernel: out of memory", name);
            goto fail;
        }
        int64_t at = 0;
        for (int j = 0; j < k; j++) {
            int64_t n = prt_shape_count(&c->in[j]->shape);
            for (int64_t s = 0; s < n; s += CHUNK) {
                h_chunks[at].start = s;
                h_chunks[at].t = j;
                at++;
            }
        }
        PRT_CUK_CHECK_GOTO(c->ctx, name, cudaMalloc(&st->d_mem, tab_bytes + chunk_bytes), stt, fail);
        st->d_tab = (cuopt_tensor *)st->d_mem;
        st->d_chunks = (cuopt_chunk *)((char *)st->d_mem + tab_bytes);
        /* on the call's stream, so the launches that read the tables follow
         * the copies whatever kind of stream it is */
        if (chunk_bytes)
            PRT_CUK_CHECK_GOTO(c->ctx, name,
                               cudaMemcpyAsync(st->d_chunks, h_chunks, chunk_bytes, cudaMemcpyHostToDevice,
                                               prt_cuk_stream(c)),
                               stt, fail);
        bool complete;
        fill_table(c, st, &complete);
        if (complete) {
            PRT_CUK_CHECK_GOTO(c->ctx, name,
                               cudaMemcpyAsync(st->d_tab, st->h_tab, (size_t)k * sizeof(cuopt_tensor),
                                               cudaMemcpyHostToDevice, prt_cuk_stream(c)),
                               stt, fail);
            st->uploaded = true;
        }
        /* set-up, not a step: wait, so h_chunks can go and a failed copy shows here */
        PRT_CUK_CHECK_GOTO(c->ctx, name, cudaStreamSynchronize(prt_cuk_stream(c)), stt, fail);
    }
    prt_free(c->ctx, h_chunks, chunk_bytes ? chunk_bytes : 1);
    *state = st;
    return PRT_OK;
fail:
    prt_free(c->ctx, h_chunks, chunk_bytes ? chunk_bytes : 1);
    prt_cuda_optim_release(st);
    return stt;
}

template <class U> static prt_status optim_run(const prt_kernel_call *c, const prt_optim_impl *o) {
    const char *name = prt_optimizer_name(o->kind);
    cuopt_state *st = (cuopt_state *)c->state;
    if (!st)
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s CUDA kernel: run without prepare (the tensor table is built "
                         "there)", name);
    if (st->kind != o->kind || c->n_in != st->k * (2 + prt_optim_n_slots(o->kind)))
        return prt_error(c->ctx, PRT_ERR_INTERNAL, "%s CUDA kernel: prepared for %d parameters, called with %d inputs",
                         name, st->k, c->n_in);
    PRT_CHECK(prt_cuk_check_f32(c, name, c->n_in, c->n_in, 0));
    bool complete;
    if (fill_table(c, st, &complete) || !st->uploaded) {
        if (!complete)
            return prt_error(c->ctx, PRT_ERR_INVALID, "%s CUDA kernel: a parameter, gradient or state has no storage",
                             name);
        /* pageable source: staged before the call returns, so h_tab may change after */
        PRT_CUK_CHECK(c->ctx, name,
                      cudaMemcpyAsync(st->d_tab, st->h_tab, (size_t)st->k * sizeof(cuopt_tensor),
                                      cudaMemcpyHostToDevice, prt_cuk_stream(c)));
        st->uploaded = true;
    }
    /* in a CUDA VM the step's coefficients are in c->step_slot (prt_optim_step_values) */
    const prt_optim_coef *kp = (const prt_optim_coef *)c->step_slot;
    prt_optim_coef k;
    memset(&k, 0, sizeof k);
    if (!kp) PRT_CHECK(prt_optim_coef_of(c, o, &k, NULL));
    if (st->n_chunks == 0) return PRT_OK;
    unsigned blocks = (unsigned)(st->n_chunks < 65536 ? st->n_chunks : 65536);
    optim_k<U><<<blocks, PRT_CUK_THREADS, 0, prt_cuk_stream(c)>>>(kp, k, st->d_tab, st->d_chunks, st->n_chunks);
    PRT_CUK_LAUNCHED(c->ctx, name, "optim_k");
    return PRT_OK;
}

extern "C" prt_status prt_cuda_sgd_prepare(const prt_kernel_call *c, void **s) { return optim_prepare(c, PRT_OPT_sgd, s); }
extern "C" prt_status prt_cuda_adam_prepare(const prt_kernel_call *c, void **s) {
    return optim_prepare(c, PRT_OPT_adam, s);
}
extern "C" prt_status prt_cuda_adamw_prepare(const prt_kernel_call *c, void **s) {
    return optim_prepare(c, PRT_OPT_adamw, s);
}
extern "C" prt_status prt_cuda_rmsprop_prepare(const prt_kernel_call *c, void **s) {
    return optim_prepare(c, PRT_OPT_rmsprop, s);
}
extern "C" prt_status prt_cuda_sgd(const prt_kernel_call *c) { return optim_run<sgd_u>(c, &prt_optim_sgd); }
extern "C" prt_status prt_cuda_adam(const prt_kernel_call *c) { return optim_run<adam_u>(c, &prt_optim_adam); }
extern "C" prt_status prt_cuda_adamw(const prt_kernel_call *c) { return optim_run<adam_u>(c, &prt_optim_adamw); }
extern "C" prt_status prt_cuda_rmsprop(const prt_kernel_call *c) { return optim_run<rmsprop_u>(c, &prt_optim_rmsprop); }
