/* ONNX import (frontends/onnx/): fixed cases of ONNX's own backend tests from
 * Debian's libonnx-testdata (scripts/setup.sh installs it; a missing package
 * fails these tests rather than skipping them), and malformed or hostile models
 * built here with protobuf-c, each with its exact message: unsupported ops,
 * opsets, external data escaping the model's directory, truncated and garbage
 * files; and the export -> import round trip of every example network (looped
 * over the example files; the large ones, PolyNet, at batch 1: about a minute). */
// labels: unit

#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frontends/onnx/onnx_impl.h"
#include "frontends/weights_api.h"
#include "tests/memory_util.h"
#include "tests/test_util.h"

#define TESTDATA "/usr/share/libonnx-testdata/data"

static char tmpdir[256];

static void make_tmpdir(void) {
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/prtonnx-XXXXXX", t && *t ? t : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

/* tmpdir holds files and one level of folders */
static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[700];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) remove_dir(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static void remove_tmpdir(void) { remove_dir(tmpdir); }

static const char *tmp(const char *name) {
    static char buf[4][600];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* ---- a model built with protobuf-c ----------------------------------------- */

#define MAXN 8

/* input x [1, 2, 2, 2] float, output y; nodes with one or two inputs; at most
 * one initializer "w" [1, 2, 2, 2], inline or external. */
typedef struct model {
    Onnx__ModelProto m;
    Onnx__OperatorSetIdProto os, *osp[1];
    Onnx__GraphProto g;
    Onnx__ValueInfoProto in, out, *inp[2], *outp[1];
    Onnx__TypeProto tin;
    Onnx__TypeProto__Tensor ttin;
    Onnx__TensorShapeProto sin;
    Onnx__TensorShapeProto__Dimension dim[4], *dimp[4];
    Onnx__NodeProto node[MAXN], *nodep[MAXN];
    char *node_in[MAXN][2], *node_out[MAXN][1];
    Onnx__TensorProto w, *wp[1];
    int64_t wdims[4];
    float wdata[8];
    Onnx__StringStringEntryProto ext[2], *extp[2];
} model;

static void model_init(model *md, int64_t opset) {
    memset(md, 0, sizeof *md);
    md->m = (Onnx__ModelProto)ONNX__MODEL_PROTO__INIT;
    md->m.has_ir_version = true;
    md->m.ir_version = 8;
    md->os = (Onnx__OperatorSetIdProto)ONNX__OPERATOR_SET_ID_PROTO__INIT;
    md->os.domain = "";
    md->os.has_version = true;
    md->os.version = opset;
    md->osp[0] = &md->os;
    md->m.n_opset_import = 1;
    md->m.opset_import = md->osp;
    md->g = (Onnx__GraphProto)ONNX__GRAPH_PROTO__INIT;
    md->g.name = "t";
    md->m.graph = &md->g;
    md->sin = (Onnx__TensorShapeProto)ONNX__TENSOR_SHAPE_PROTO__INIT;
    for (int k = 0; k < 4; k++) {
        md->dim[k] = (Onnx__TensorShapeProto__Dimension)ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
        md->dim[k].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        md->dim[k].dim_value = k == 0 ? 1 : 2;
        md->dimp[k] = &md->dim[k];
    }
    md->sin.n_dim = 4;
    md->sin.dim = md->dimp;
    md->ttin = (Onnx__TypeProto__Tensor)ONNX__TYPE_PROTO__TENSOR__INIT;
    md->ttin.has_elem_type = true;
    md->ttin.elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    md->ttin.shape = &md->sin;
    md->tin = (Onnx__TypeProto)ONNX__TYPE_PROTO__INIT;
    md->tin.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    md->tin.tensor_type = &md->ttin;
    md->in = (Onnx__ValueInfoProto)ONNX__VALUE_INFO_PROTO__INIT;
    md->in.name = "x";
    md->in.type = &md->tin;
    md->out = (Onnx__ValueInfoProto)ONNX__VALUE_INFO_PROTO__INIT;
    md->out.name = "y";
    md->out.type = &md->tin;
    md->inp[0] = &md->in;
    md->outp[0] = &md->out;
    md->g.n_input = 1;
    md->g.input = md->inp;
    md->g.n_output = 1;
    md->g.output = md->outp;
    md->g.node = md->nodep;
}

static void add_node(model *md, const char *op, const char *name, const char *a, const char *b, const char *out) {
    int k = (int)md->g.n_node++;
    ck_assert_int_lt(k, MAXN);
    Onnx__NodeProto *nd = &md->node[k];
    *nd = (Onnx__NodeProto)ONNX__NODE_PROTO__INIT;
    nd->op_type = (char *)op;
    nd->name = (char *)name;
    md->node_in[k][0] = (char *)a;
    md->node_in[k][1] = (char *)b;
    nd->n_input = b ? 2 : 1;
    nd->input = md->node_in[k];
    md->node_out[k][0] = (char *)out;
    nd->n_output = 1;
    nd->output = md->node_out[k];
    md->nodep[k] = nd;
}

/* initializer w = 0.5, 1.5, ... (8 values), external at `location` when not NULL */
static void add_weight(model *md, const char *location) {
    Onnx__TensorProto *t = &md->w;
    *t = (Onnx__TensorProto)ONNX__TENSOR_PROTO__INIT;
    t->name = "w";
    t->has_data_type = true;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    md->wdims[0] = 1, md->wdims[1] = md->wdims[2] = md->wdims[3] = 2;
    t->n_dims = 4;
    t->dims = md->wdims;
    for (int k = 0; k < 8; k++) md->wdata[k] = 0.5f + (float)k;
    if (location) {
        t->has_data_location = true;
        t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
        md->ext[0] = (Onnx__StringStringEntryProto)ONNX__STRING_STRING_ENTRY_PROTO__INIT;
        md->ext[0].key = "location";
        md->ext[0].value = (char *)location;
        md->extp[0] = &md->ext[0];
        t->n_external_data = 1;
        t->external_data = md->extp;
    } else {
        t->n_float_data = 8;
        t->float_data = md->wdata;
    }
    md->wp[0] = t;
    md->g.n_initializer = 1;
    md->g.initializer = md->wp;
}

/* packs the model to `path`; returns its size */
static size_t model_write(model *md, const char *path) {
    size_t n = onnx__model_proto__get_packed_size(&md->m);
    unsigned char *buf = malloc(n);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(onnx__model_proto__pack(&md->m, buf), n);
    write_bytes(path, buf, n);
    free(buf);
    return n;
}

static void expect_import_error(const char *path, prt_status want, const char *msg) {
    prt_context *ctx = tu_context();
    prt_onnx_model *m = (prt_onnx_model *)1;
    ck_assert_int_eq(prt_onnx_import(ctx, path, &m), want);
    ck_assert_ptr_null(m);
    ck_assert_str_eq(prt_last_error(ctx), msg);
    prt_context_destroy(ctx);
}

/* ---- ONNX's backend test cases ------------------------------------------- */

static void expect_case_passes(const char *rel) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/%s", TESTDATA, rel);
    ck_assert_msg(access(dir, R_OK) == 0,
                  "%s is missing: Debian's libonnx-testdata is not installed (scripts/setup.sh installs it)", dir);
    prt_context *ctx = tu_context();
    char why[2048];
    prt_onnx_case_result r = prt_onnx_test_case(ctx, dir, false, why, sizeof why);
    ck_assert_msg(r == PRT_ONNX_PASS, "%s: %s", rel, why);
    /* the plain C kernels agree within the same tolerance */
    r = prt_onnx_test_case(ctx, dir, true, why, sizeof why);
    ck_assert_msg(r == PRT_ONNX_PASS, "%s (reference kernels): %s", rel, why);
    prt_context_destroy(ctx);
}

static const char *const passing_cases[] = {
    "node/test_relu",
    "node/test_conv_with_strides_and_asymmetric_padding", /* weight fed as a graph input */
    "node/test_batchnorm_example",
    "node/test_gemm_default_vector_bias",
    "node/test_maxpool_2d_same_upper",
    "node/test_reshape_negative_dim", /* the shape fed as a graph input */
    "node/test_softmax_axis_1",
    "node/test_identity", /* an output that is the input */
    "pytorch-converted/test_Conv2d_groups", /* opset 6 */
    "pytorch-converted/test_BatchNorm2d_eval",
    "pytorch-operator/test_operator_addmm", /* Gemm with a computed C */
};

START_TEST(backend_case) { expect_case_passes(passing_cases[_i]); }
END_TEST

START_TEST(backend_case_unsupported) {
    const char *dir = TESTDATA "/node/test_elu";
    ck_assert_msg(access(dir, R_OK) == 0, "%s is missing: install libonnx-testdata (scripts/setup.sh)", dir);
    prt_context *ctx = tu_context();
    char why[2048];
    ck_assert_int_eq(prt_onnx_test_case(ctx, dir, false, why, sizeof why), PRT_ONNX_UNSUPPORTED);
    ck_assert_str_eq(why, TESTDATA "/node/test_elu/model.onnx: unsupported ops: Elu (node 'y')");
    prt_context_destroy(ctx);
}
END_TEST

/* ---- models built here ------------------------------------------------------ */

/* Add(x, w) with w external in the model's folder: imported, and the VM computes x + w. */
START_TEST(external_data_inside) {
    make_tmpdir();
    model md;
    model_init(&md, 13);
    add_node(&md, "Add", "add", "x", "w", "y");
    add_weight(&md, "w.bin");
    write_bytes(tmp("w.bin"), md.wdata, sizeof md.wdata);
    model_write(&md, tmp("m.onnx"));
    prt_context *ctx = tu_context();
    prt_onnx_model *m;
    ck_assert_int_eq(prt_onnx_import(ctx, tmp("m.onnx"), &m), PRT_OK);
    prt_program *p;
    prt_vm *vm;
    ck_assert_int_eq(prt_vm_compile(m->g, 1, &p), PRT_OK);
    ck_assert_int_eq(prt_vm_create(ctx, p, prt_cpu_device(ctx), NULL, &vm), PRT_OK);
    ck_assert_int_eq(prt_onnx_apply(ctx, m, vm), PRT_OK);
    float *x = prt_vm_input(vm, 0)->data;
    for (int k = 0; k < 8; k++) x[k] = (float)(k * k);
    ck_assert_int_eq(prt_vm_run(vm), PRT_OK);
    const float *y = prt_vm_output(vm, 0)->data;
    for (int k = 0; k < 8; k++) ck_assert_float_eq(y[k], (float)(k * k) + 0.5f + (float)k);
    prt_vm_destroy(vm);
    prt_program_destroy(ctx, p);
    prt_onnx_model_destroy(ctx, m);
    prt_context_destroy(ctx);
    remove_tmpdir();
}
END_TEST

START_TEST(external_data_absolute) {
    make_tmpdir();
    model md;
    model_init(&md, 13);
    add_node(&md, "Relu", "r", "x", NULL, "y");
    add_weight(&md, "/etc/passwd");
    model_write(&md, tmp("m.onnx"));
    char msg[1200];
    snprintf(msg, sizeof msg,
             "%s: initializer 'w': external data location '/etc/passwd' is an absolute path; it must be relative to "
             "the model's directory",
             tmp("m.onnx"));
    expect_import_error(tmp("m.onnx"), PRT_ERR_INVALID, msg);
    remove_tmpdir();
}
END_TEST

START_TEST(external_data_dotdot) {
    make_tmpdir();
    ck_assert_int_eq(mkdir(tmp("sub"), 0700), 0);
    model md;
    model_init(&md, 13);
    add_node(&md, "Relu", "r", "x", NULL, "y");
    add_weight(&md, "data/../../w.bin");
    write_bytes(tmp("w.bin"), md.wdata, sizeof md.wdata); /* it exists: refused by name, not by absence */
    model_write(&md, tmp("sub/m.onnx"));
    char msg[1200];
    snprintf(msg, sizeof msg,
             "%s: initializer 'w': external data location 'data/../../w.bin' has a '..' component; it must stay "
             "inside the model's directory",
             tmp("sub/m.onnx"));
    expect_import_error(tmp("sub/m.onnx"), PRT_ERR_INVALID, msg);
    remove_tmpdir();
}
END_TEST

START_TEST(external_data_symlink) {
    make_tmpdir();
    ck_assert_int_eq(mkdir(tmp("sub"), 0700), 0);
    model md;
    model_init(&md, 13);
    add_node(&md, "Relu", "r", "x", NULL, "y");
    add_weight(&md, "w.bin");
    write_bytes(tmp("outside.bin"), md.wdata, sizeof md.wdata);
    ck_assert_int_eq(symlink("../outside.bin", tmp("sub/w.bin")), 0);
    model_write(&md, tmp("sub/m.onnx"));
    char msg[1200];
    snprintf(msg, sizeof msg,
             "%s: initializer 'w': external data location 'w.bin' resolves outside the model's directory (through a "
             "symbolic link)",
             tmp("sub/m.onnx"));
    expect_import_error(tmp("sub/m.onnx"), PRT_ERR_INVALID, msg);
    remove_tmpdir();
}
END_TEST

START_TEST(unsupported_ops_listed) {
    make_tmpdir();
    model md;
    model_init(&md, 13);
    add_node(&md, "Relu", "r", "x", NULL, "a");
    add_node(&md, "Elu", "e1", "a", NULL, "b");
    add_node(&md, "Foo", "f", "b", NULL, "c");
    add_node(&md, "Elu", "", "c", NULL, "y"); /* no name: its output names it */
    model_write(&md, tmp("m.onnx"));
    char msg[1200];
    snprintf(msg, sizeof msg, "%s: unsupported ops: Elu (nodes 'e1', 'y'), Foo (node 'f')", tmp("m.onnx"));
    expect_import_error(tmp("m.onnx"), PRT_ERR_UNSUPPORTED, msg);
    remove_tmpdir();
}
END_TEST

START_TEST(opset_too_new) {
    make_tmpdir();
    model md;
    model_init(&md, 18);
    add_node(&md, "Relu", "r", "x", NULL, "y");
    model_write(&md, tmp("m.onnx"));
    char msg[1200];
    snprintf(msg, sizeof msg,
             "%s: opset 18 of the default ONNX domain is not supported (Parrots maps opsets 1 to 17)", tmp("m.onnx"));
    expect_import_error(tmp("m.onnx"), PRT_ERR_UNSUPPORTED, msg);
    remove_tmpdir();
}
END_TEST

START_TEST(truncated_and_garbage) {
    make_tmpdir();
    model md;
    model_init(&md, 13);
    add_node(&md, "Relu", "r", "x", NULL, "y");
    size_t n = model_write(&md, tmp("m.onnx"));
    /* every proper prefix that protobuf-c refuses gets the message; those it
     * accepts (cut between fields) must still import or fail cleanly */
    unsigned char *buf = malloc(n);
    ck_assert_ptr_nonnull(buf);
    FILE *f = fopen(tmp("m.onnx"), "rb");
    ck_assert_uint_eq(fread(buf, 1, n, f), n);
    fclose(f);
    write_bytes(tmp("cut.onnx"), buf, n - 1);
    char msg[1200];
    snprintf(msg, sizeof msg, "%s: not a valid ONNX model (protobuf-c could not unpack a ModelProto)",
             tmp("cut.onnx"));
    expect_import_error(tmp("cut.onnx"), PRT_ERR_PARSE, msg);
    for (size_t k = 0; k < n; k++) {
        write_bytes(tmp("cut.onnx"), buf, k);
        prt_context *ctx = tu_context();
        prt_onnx_model *m = NULL;
        if (prt_onnx_import(ctx, tmp("cut.onnx"), &m) == PRT_OK) prt_onnx_model_destroy(ctx, m);
        else ck_assert_ptr_null(m);
        prt_context_destroy(ctx);
    }
    free(buf);
    static const char garbage[] = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01 this is not protobuf";
    write_bytes(tmp("garbage.onnx"), garbage, sizeof garbage - 1);
    snprintf(msg, sizeof msg, "%s: not a valid ONNX model (protobuf-c could not unpack a ModelProto)",
             tmp("garbage.onnx"));
    expect_import_error(tmp("garbage.onnx"), PRT_ERR_PARSE, msg);
    snprintf(msg, sizeof msg, "%s: cannot open the ONNX model: No such file or directory", tmp("none.onnx"));
    expect_import_error(tmp("none.onnx"), PRT_ERR_NOT_FOUND, msg);
    remove_tmpdir();
}
END_TEST

/* ---- export -> import round trip ------------------------------------------ */

/* Deterministic values unlike the initial ones (variances positive), so that
 * every weight matters. */
static void fill_weights(prt_graph *g, prt_vm *vm) {
    for (int id = 0; id < g->n_values; id++) {
        const prt_value *v = &g->values[id];
        if (v->kind != PRT_VAL_PARAM && v->kind != PRT_VAL_STATE) continue;
        prt_tensor *t = prt_vm_find(vm, v->name);
        ck_assert_ptr_nonnull(t);
        float *d = t->data;
        size_t len = strlen(v->name);
        bool var = len > 4 && !strcmp(v->name + len - 4, ".var");
        for (int64_t k = 0; k < prt_shape_count(&t->shape); k++) {
            uint32_t h = (uint32_t)(k * 2654435761u) ^ (uint32_t)(id * 40503u);
            float u = (float)(h % 2001u) / 1000.0f - 1.0f; /* [-1, 1] */
            d[k] = var ? 0.5f + 0.5f * u * u : 0.2f * u;
        }
    }
}

typedef struct runner {
    prt_program *p;
    prt_vm *vm;
} runner;

static void run_batch(prt_context *ctx, prt_graph *g, int64_t batch, runner *r) {
    ck_assert_int_eq(prt_vm_compile(g, batch, &r->p), PRT_OK);
    ck_assert_int_eq(prt_vm_create(ctx, r->p, prt_cpu_device(ctx), NULL, &r->vm), PRT_OK);
}

static void round_trip(const char *example, int64_t batch) {
    make_tmpdir();
    prt_context *ctx = tu_context();
    prt_graph *g;
    ck_assert_int_eq(prt_graph_load_yaml(ctx, example, &g), PRT_OK);
    runner a, b;
    run_batch(ctx, g, batch, &a);
    fill_weights(g, a.vm);
    ck_assert_int_eq(prt_onnx_export(ctx, g, a.vm, tmp("m.onnx")), PRT_OK);
    prt_onnx_model *m;
    ck_assert_msg(prt_onnx_import(ctx, tmp("m.onnx"), &m) == PRT_OK, "%s", prt_last_error(ctx));
    ck_assert_int_eq(m->g->n_inputs, g->n_inputs);
    ck_assert_int_eq(m->g->n_outputs, g->n_outputs);
    run_batch(ctx, m->g, batch, &b);
    ck_assert_int_eq(prt_onnx_apply(ctx, m, b.vm), PRT_OK);
    for (int k = 0; k < g->n_inputs; k++) {
        prt_tensor *x = prt_vm_input(a.vm, k), *y = prt_vm_input(b.vm, k);
        ck_assert(prt_shape_eq(&x->shape, &y->shape));
        float *d = x->data;
        for (int64_t i = 0; i < prt_shape_count(&x->shape); i++) d[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f;
        memcpy(y->data, x->data, (size_t)prt_shape_count(&x->shape) * sizeof(float));
    }
    ck_assert_int_eq(prt_vm_run(a.vm), PRT_OK);
    ck_assert_int_eq(prt_vm_run(b.vm), PRT_OK);
    for (int k = 0; k < g->n_outputs; k++) {
        const prt_tensor *x = prt_vm_output(a.vm, k), *y = prt_vm_output(b.vm, k);
        ck_assert(prt_shape_eq(&x->shape, &y->shape));
        const float *p = x->data, *q = y->data;
        int64_t n = prt_shape_count(&x->shape), diff = 0;
        for (int64_t i = 0; i < n; i++) diff += memcmp(&p[i], &q[i], sizeof(float)) != 0;
        ck_assert_msg(diff == 0, "%s: output %d: %lld of %lld values differ (first: %.9g vs %.9g)", example, k,
                      (long long)diff, (long long)n, p[0], q[0]);
    }
    prt_vm_destroy(a.vm);
    prt_program_destroy(ctx, a.p);
    prt_vm_destroy(b.vm);
    prt_program_destroy(ctx, b.p);
    prt_onnx_model_destroy(ctx, m);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
    remove_tmpdir();
}

static char **examples;
static int n_examples;

/* every example network, from the directory, so a new one is covered too */
START_TEST(round_trip_example) {
    prt_context *ctx = tu_context();
    bool large = mu_flops_per_image(ctx, examples[_i]) > MU_UNIT_MAX_FLOPS;
    prt_context_destroy(ctx);
    round_trip(examples[_i], large ? 1 : 3);
}
END_TEST

/* ---- import to YAML + weights ---------------------------------------------- */

/* An exported example converted to YAML and weights computes exactly what the
 * original network does with the same weights. */
START_TEST(convert_to_yaml) {
    make_tmpdir();
    prt_context *ctx = tu_context();
    prt_graph *g, *h;
    ck_assert_int_eq(prt_graph_load_yaml(ctx, tu_src("examples/fashion-cnn.yaml"), &g), PRT_OK);
    runner a, b;
    run_batch(ctx, g, 2, &a);
    fill_weights(g, a.vm);
    ck_assert_int_eq(prt_onnx_export(ctx, g, a.vm, tmp("m.onnx")), PRT_OK);
    ck_assert_msg(prt_onnx_convert(ctx, tmp("m.onnx"), tmp("net.yaml"), tmp("net.prtw")) == PRT_OK, "%s",
                  prt_last_error(ctx));
    ck_assert_int_eq(prt_graph_load_yaml(ctx, tmp("net.yaml"), &h), PRT_OK);
    run_batch(ctx, h, 2, &b);
    prt_weights *w;
    ck_assert_int_eq(prt_weights_read(ctx, tmp("net.prtw"), &w), PRT_OK);
    ck_assert_int_eq(w->n, 14); /* 2 conv weights, 2 x 4 batch norm, 2 x 2 linear */
    ck_assert_int_eq(prt_weights_apply(ctx, w, h, b.vm), PRT_OK);
    prt_weights_destroy(ctx, w);
    float *x = prt_vm_input(a.vm, 0)->data;
    int64_t n = prt_shape_count(&prt_vm_input(a.vm, 0)->shape);
    for (int64_t i = 0; i < n; i++) x[i] = (float)((i * 31) % 97) / 48.0f - 1.0f;
    memcpy(prt_vm_input(b.vm, 0)->data, x, (size_t)n * sizeof(float));
    ck_assert_int_eq(prt_vm_run(a.vm), PRT_OK);
    ck_assert_int_eq(prt_vm_run(b.vm), PRT_OK);
    const prt_tensor *ya = prt_vm_output(a.vm, 0), *yb = prt_vm_output(b.vm, 0);
    ck_assert(prt_shape_eq(&ya->shape, &yb->shape));
    ck_assert_int_eq(memcmp(ya->data, yb->data, (size_t)prt_shape_count(&ya->shape) * sizeof(float)), 0);
    prt_vm_destroy(a.vm);
    prt_program_destroy(ctx, a.p);
    prt_vm_destroy(b.vm);
    prt_program_destroy(ctx, b.p);
    prt_graph_destroy(g);
    prt_graph_destroy(h);
    prt_context_destroy(ctx);
    remove_tmpdir();
}
END_TEST

/* A constant operand is a state value of no layer: refused, nothing written. */
START_TEST(convert_refuses_constant_operand) {
    make_tmpdir();
    model md;
    model_init(&md, 13);
    add_node(&md, "Add", "add", "x", "w", "y");
    add_weight(&md, NULL);
    model_write(&md, tmp("m.onnx"));
    prt_context *ctx = tu_context();
    ck_assert_int_eq(prt_onnx_convert(ctx, tmp("m.onnx"), tmp("net.yaml"), tmp("net.prtw")), PRT_ERR_UNSUPPORTED);
    char msg[1200];
    snprintf(msg, sizeof msg,
             "%s: node 'y' (add) reads the constant 'w', which has no YAML form (only a layer's own parameters do)",
             tmp("m.onnx"));
    ck_assert_str_eq(prt_last_error(ctx), msg);
    ck_assert_int_ne(access(tmp("net.yaml"), F_OK), 0);
    ck_assert_int_ne(access(tmp("net.prtw"), F_OK), 0);
    prt_context_destroy(ctx);
    remove_tmpdir();
}
END_TEST

/* Ops without an ONNX form are all named; nothing is written. */
START_TEST(export_unsupported_named) {
    make_tmpdir();
    prt_context *ctx = tu_context();
    static const char net[] = "parrots: 1\nname: t\ninput: {x: [6], y: [2]}\nlayers:\n"
                              "  - slice: {axis: 1, start: 2}\n    name: s1\n    input: [x, y]\n"
                              "  - relu_bwd:\n    name: rb\n    input: [s1, y]\n"
                              "  - relu:\n    name: r\n";
    prt_graph *g;
    ck_assert_msg(prt_graph_load_yaml_string(ctx, "t.yaml", net, strlen(net), &g) == PRT_OK, "%s", prt_last_error(ctx));
    runner a;
    run_batch(ctx, g, 1, &a);
    ck_assert_int_eq(prt_onnx_export(ctx, g, a.vm, tmp("m.onnx")), PRT_ERR_UNSUPPORTED);
    char msg[1200];
    snprintf(msg, sizeof msg, "%s: ops without an ONNX form: slice ('s1'), relu_bwd ('rb')", tmp("m.onnx"));
    ck_assert_str_eq(prt_last_error(ctx), msg);
    ck_assert_int_ne(access(tmp("m.onnx"), F_OK), 0);
    prt_vm_destroy(a.vm);
    prt_program_destroy(ctx, a.p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
    remove_tmpdir();
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("onnx");
    TCase *tc = tcase_create("import");
    tcase_add_loop_test(tc, backend_case, 0, (int)(sizeof passing_cases / sizeof passing_cases[0]));
    tcase_add_test(tc, backend_case_unsupported);
    tcase_add_test(tc, external_data_inside);
    tcase_add_test(tc, external_data_absolute);
    tcase_add_test(tc, external_data_dotdot);
    tcase_add_test(tc, external_data_symlink);
    tcase_add_test(tc, unsupported_ops_listed);
    tcase_add_test(tc, opset_too_new);
    tcase_add_test(tc, truncated_and_garbage);
    suite_add_tcase(s, tc);
    tc = tcase_create("export");
    tcase_add_loop_test(tc, round_trip_example, 0, n_examples);
    tcase_add_test(tc, export_unsupported_named);
    tcase_add_test(tc, convert_to_yaml);
    tcase_add_test(tc, convert_refuses_constant_operand);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    examples = mu_example_files(&n_examples);
    if (n_examples == 0) return 1;
    int rc = tu_run(suite());
    mu_free_names(examples, n_examples);
    return rc;
}
