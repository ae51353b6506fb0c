/* A stand-in host for tests/cli/plugin_sdk.sh: dlopen()s a built Swish plugin
 * (argv[1]) and drives it through include/parrots/plugin.h alone, without
 * Parrots' loader: the descriptor, inference, the CPU kernels (against a
 * float64 reference and, for the backward, central differences of it), in
 * place, the beta attribute, and the gradient builder. Compiled with the
 * plugin's own flags, so it also shows the installed header is enough. */
#include <dlfcn.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <parrots/plugin.h>

static int failures;
#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);          \
            fprintf(stderr, __VA_ARGS__);                                 \
            fputc('\n', stderr);                                          \
            failures++;                                                   \
        }                                                                 \
    } while (0)

static char last_error[512];
static int host_error(void *host_ctx, const char *fmt, ...) {
    (void)host_ctx;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return -1;
}
static void host_log(int32_t level, const char *fmt, ...) { (void)level; (void)fmt; }
static void *host_alloc(size_t size) { return malloc(size); }
static void host_free(void *p, size_t size) { (void)size; free(p); }
static int64_t host_shape_numel(const prt_plugin_shape *s) {
    int64_t n = 1;
    for (int32_t k = 0; k < s->ndim; k++) n *= s->d[k];
    return n;
}
static int64_t host_numel(const prt_plugin_tensor *t) { return host_shape_numel(&t->shape); }
static size_t host_dtype_size(int32_t dtype) { return dtype == PRT_PLUGIN_F64 || dtype == PRT_PLUGIN_I64 ? 8 : 4; }

/* grad_emit records what the builder asked for and answers value 100 */
static char emitted_op[64];
static int32_t emitted_in[4], emitted_n_in = -1;
static const prt_plugin_attr_value *emitted_attrs = (const prt_plugin_attr_value *)1;
static int host_grad_emit(void *host_ctx, const char *op, const int32_t *in, int32_t n_in,
                          const prt_plugin_attr_value *attrs, int32_t *outs) {
    (void)host_ctx;
    snprintf(emitted_op, sizeof emitted_op, "%s", op);
    for (int32_t k = 0; k < n_in && k < 4; k++) emitted_in[k] = in[k];
    emitted_n_in = n_in;
    emitted_attrs = attrs;
    outs[0] = 100;
    return 0;
}

static const prt_plugin_host host = {
    .abi_version = PRT_PLUGIN_ABI_VERSION, .struct_size = sizeof(prt_plugin_host), .parrots_version = "0.1.0",
    .error = host_error, .log = host_log, .alloc = host_alloc, .free = host_free, .numel = host_numel,
    .shape_numel = host_shape_numel, .dtype_size = host_dtype_size, .grad_emit = host_grad_emit,
};

static double ref_swish(double x, double beta) { return x / (1.0 + exp(-beta * x)); }

enum { N = 2 * 3 * 8 * 8 };

static const prt_plugin_op *find_op(const prt_plugin_desc *d, const char *name) {
    for (int32_t k = 0; k < d->n_ops; k++)
        if (strcmp(d->ops[k].name, name) == 0) return &d->ops[k];
    return NULL;
}

static prt_plugin_call make_call(const prt_plugin_attr_value *attrs, int32_t n_in, const prt_plugin_tensor *in,
                                 const prt_plugin_tensor *out) {
    prt_plugin_call c = {.struct_size = sizeof c, .node_name = "act", .attrs = attrs, .n_in = n_in, .in = in,
                         .n_out = 1, .out = out, .device = PRT_PLUGIN_CPU};
    return c;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: host_check libswish.so\n");
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "FAIL: dlopen: %s\n", dlerror());
        return 1;
    }
    prt_plugin_entry_fn entry;
    *(void **)&entry = dlsym(lib, PRT_PLUGIN_ENTRY_V1);
    CHECK(entry != NULL, "no %s in %s", PRT_PLUGIN_ENTRY_V1, argv[1]);
    if (!entry) return 1;
    const prt_plugin_desc *d = entry();
    CHECK(d->abi_version == 1 && d->struct_size == sizeof(prt_plugin_desc), "descriptor header %u %u",
          d->abi_version, d->struct_size);
    CHECK(strcmp(d->name, "myorg") == 0 && d->n_ops == 2, "plugin %s with %d ops", d->name, (int)d->n_ops);
    const prt_plugin_op *fwd = find_op(d, "myorg.swish"), *bwd = find_op(d, "myorg.swish_grad");
    CHECK(fwd && bwd, "ops myorg.swish and myorg.swish_grad");
    if (!fwd || !bwd) return 1;
    CHECK(fwd->struct_size == sizeof(prt_plugin_op) && fwd->version == 1 && fwd->cpu && fwd->infer && fwd->grad,
          "myorg.swish's fields");
    CHECK(fwd->inplace && fwd->inplace_in == 0 && bwd->inplace, "in place");
    CHECK(fwd->onnx_op && strcmp(fwd->onnx_op, "Swish") == 0 && strcmp(fwd->onnx_domain, "myorg") == 0, "ONNX mapping");
    CHECK(fwd->n_attrs == 1 && strcmp(fwd->attrs[0].name, "beta") == 0 && fwd->attrs[0].type == PRT_PLUGIN_ATTR_FLOAT &&
              fwd->attrs[0].def.f == 1.0 && !fwd->attrs[0].required, "attribute beta FLOAT 1.0");
    CHECK(bwd->attrs == fwd->attrs && bwd->n_attrs == 1, "the two ops share one attribute array");
    printf("cuda kernels: %s\n", fwd->cuda && bwd->cuda ? "yes" : "no");

    /* inference: [2,3,8,8] f32 -> the same; f64 is refused with a message */
    prt_plugin_shape in_shape = {.ndim = 4, .d = {2, 3, 8, 8}}, out_shape = {0};
    int32_t in_dtype = PRT_PLUGIN_F32, out_dtype = -1;
    prt_plugin_infer ic = {.struct_size = sizeof ic, .node_name = "act", .n_in = 1, .in = &in_shape,
                           .in_dtype = &in_dtype, .n_out = 1, .out = &out_shape, .out_dtype = &out_dtype};
    CHECK(fwd->infer(&host, &ic) == 0 && out_shape.ndim == 4 && out_shape.d[3] == 8 && out_dtype == PRT_PLUGIN_F32,
          "infer [2,3,8,8]");
    in_dtype = PRT_PLUGIN_F64;
    CHECK(fwd->infer(&host, &ic) != 0 && strcmp(last_error, "input 'x': expected float32, found dtype 1") == 0,
          "infer f64: '%s'", last_error);

    static float x[N], y[N], dy[N], dx[N], buf[N];
    for (int i = 0; i < N; i++) {
        x[i] = -6.0f + 12.0f * (float)i / (N - 1);
        dy[i] = 0.5f + 0.25f * (float)((i * 7) % 5);
    }
    const prt_plugin_tensor tx = {x, PRT_PLUGIN_F32, in_shape}, ty = {y, PRT_PLUGIN_F32, in_shape},
                            tdy = {dy, PRT_PLUGIN_F32, in_shape}, tdx = {dx, PRT_PLUGIN_F32, in_shape},
                            tbuf = {buf, PRT_PLUGIN_F32, in_shape};
    const double betas[2] = {1.0, 1.5};
    for (int b = 0; b < 2; b++) {
        prt_plugin_attr_value attrs[1] = {{.type = PRT_PLUGIN_ATTR_FLOAT, .f = betas[b]}};
        prt_plugin_call c = make_call(attrs, 1, &tx, &ty);
        CHECK(fwd->cpu(&host, &c) == 0, "forward beta=%g", betas[b]);
        double worst = 0, worst_g = 0;
        for (int i = 0; i < N; i++) worst = fmax(worst, fabs(y[i] - ref_swish(x[i], betas[b])));
        CHECK(worst < 1e-5, "forward beta=%g: off by %g", betas[b], worst);
        /* in place: out[0].data == in[0].data gives the same values */
        memcpy(buf, x, sizeof buf);
        c = make_call(attrs, 1, &tbuf, &tbuf);
        CHECK(fwd->cpu(&host, &c) == 0 && memcmp(buf, y, sizeof buf) == 0, "forward in place beta=%g", betas[b]);
        /* backward against central differences of the float64 reference */
        const prt_plugin_tensor bin[2] = {tdy, tx};
        c = make_call(attrs, 2, bin, &tdx);
        CHECK(bwd->cpu(&host, &c) == 0, "backward beta=%g", betas[b]);
        for (int i = 0; i < N; i++) {
            const double h = 1e-4, xi = x[i];
            const double g = dy[i] * (ref_swish(xi + h, betas[b]) - ref_swish(xi - h, betas[b])) / (2 * h);
            worst_g = fmax(worst_g, fabs(dx[i] - g));
        }
        CHECK(worst_g < 1e-4, "backward beta=%g: off by %g", betas[b], worst_g);
        memcpy(buf, dy, sizeof buf);
        const prt_plugin_tensor bin2[2] = {tbuf, tx};
        c = make_call(attrs, 2, bin2, &tbuf);
        CHECK(bwd->cpu(&host, &c) == 0 && memcmp(buf, dx, sizeof buf) == 0, "backward in place beta=%g", betas[b]);
    }

    /* the gradient builder: dx = myorg.swish_grad(dy, x) with the forward's attributes */
    const int32_t gx[1] = {7}, gy[1] = {8};
    int32_t gdy[1] = {9}, gdx[1] = {-1};
    prt_plugin_grad g = {.struct_size = sizeof g, .node_name = "act", .n_in = 1, .x = gx, .n_out = 1, .y = gy,
                         .dy = gdy, .dx = gdx};
    CHECK(fwd->grad(&host, &g) == 0 && strcmp(emitted_op, "myorg.swish_grad") == 0 && emitted_n_in == 2 &&
              emitted_in[0] == 9 && emitted_in[1] == 7 && emitted_attrs == NULL && gdx[0] == 100,
          "grad builder emitted %s(%d inputs)", emitted_op, (int)emitted_n_in);
    gdy[0] = -1, gdx[0] = -1, emitted_n_in = -1;
    CHECK(fwd->grad(&host, &g) == 0 && emitted_n_in == -1 && gdx[0] == -1, "no dy: no gradient, nothing emitted");

    dlclose(lib);
    printf("host_check: %s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
