/* ONNX's backend test cases (onnx/backend/test/data/<suite>/<case>): model.onnx
 * plus test_data_set_N folders of input_K.pb and output_K.pb. Each case is
 * imported, run on every data set and compared with the expected outputs the
 * way ONNX's backend test runner does: numpy's assert_allclose, |actual -
 * expected| <= atol + rtol * |expected|, NaN equal to NaN, with the defaults of
 * onnx/backend/test/loader/__init__.py (used for every case that has a
 * model.onnx). A case whose model Parrots cannot express is "unsupported".
 *
 * Weights fed as inputs: some cases feed a conv's weight, a Reshape's shape or
 * Clip's bounds as graph inputs. An input whose every consumer takes it as a
 * constant (prt_onnx_const_input) becomes an initializer holding the data
 * set's value before the model is imported; the others are fed. */
#define _GNU_SOURCE
#include "frontends/onnx/onnx_impl.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The test_data_set_* folders of a case, sorted; -1 when the folder cannot be
 * read. Caller frees with free_sets. */
static int data_sets(prt_context *ctx, const char *dir, char ***out) {
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0, cap = 0;
    char **v = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "test_data_set_", 14)) continue;
        char *s = NULL;
        if (prt_grow(ctx, (void **)&v, &cap, n + 1, sizeof *v) != PRT_OK || !(s = prt_strdup(ctx, e->d_name))) break;
        v[n++] = s;
    }
    closedir(d);
    if (n > 1) qsort(v, (size_t)n, sizeof *v, cmp_str);
    *out = v;
    return n;
}

static void free_sets(prt_context *ctx, char **v, int n) {
    for (int k = 0; k < n; k++) prt_free(ctx, v[k], 0);
    prt_free(ctx, v, 0);
}

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Compares within the backend tests' tolerance; writes the first mismatch. */
static bool close_enough(const prt_tensor *got, const prt_tensor *want, char *why, size_t cap) {
    char a[160], b[160];
    if (!prt_shape_eq(&got->shape, &want->shape)) {
        snprintf(why, cap, "output shape %s, expected %s", prt_shape_str(&got->shape, a, sizeof a),
                 prt_shape_str(&want->shape, b, sizeof b));
        return false;
    }
    const float *g = PRT_F32P(got), *w = PRT_F32P(want);
    int64_t n = prt_shape_count(&want->shape), bad = 0, first = -1;
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = g[i], y = w[i];
        if (isnan(x) && isnan(y)) continue;
        if (isinf(y) && x == y) continue;
        double err = fabs(x - y);
        if (!(err <= PRT_ONNX_TEST_ATOL + PRT_ONNX_TEST_RTOL * fabs(y))) {
            if (first < 0) first = i;
            if (!(err <= worst)) worst = err;
            bad++;
        }
    }
    if (bad) {
        snprintf(why, cap, "%lld of %lld values differ (first at %lld: %.9g, expected %.9g; largest error %.3g)",
                 (long long)bad, (long long)n, (long long)first, g[first], w[first], worst);
        return false;
    }
    return true;
}

/* The graph inputs a case feeds (those without an initializer), in order:
 * input_K.pb is the K-th. An input every consumer of which takes as a constant
 * (a conv's weight, Reshape's shape, Clip's bounds: prt_onnx_const_input) is a
 * weight: the runner makes it an initializer holding the data set's value
 * before importing, as ONNX's own backends see it as a constant too. */
#define MAX_CASE_INPUTS 16
typedef struct case_inputs {
    int n;
    const char *name[MAX_CASE_INPUTS]; /* borrowed from the model */
    bool weight[MAX_CASE_INPUTS];
} case_inputs;

static bool is_weight(const Onnx__GraphProto *gp, const char *name) {
    int uses = 0;
    for (size_t k = 0; k < gp->n_node; k++) {
        const Onnx__NodeProto *nd = gp->node[k];
        for (size_t j = 0; j < nd->n_input; j++) {
            if (!nd->input[j] || strcmp(nd->input[j], name)) continue;
            if (!prt_onnx_const_input(nd, j)) return false;
            uses++;
        }
    }
    for (size_t k = 0; k < gp->n_output; k++)
        if (gp->output[k]->name && !strcmp(gp->output[k]->name, name)) return false;
    return uses > 0;
}

static bool find_inputs(const Onnx__GraphProto *gp, case_inputs *ci, char *why, size_t cap) {
    ci->n = 0;
    for (size_t k = 0; k < gp->n_input; k++) {
        const char *name = gp->input[k]->name ? gp->input[k]->name : "";
        bool init = false;
        for (size_t j = 0; j < gp->n_initializer && !init; j++)
            init = gp->initializer[j]->name && !strcmp(gp->initializer[j]->name, name);
        if (init) continue;
        if (ci->n == MAX_CASE_INPUTS) {
            snprintf(why, cap, "more than %d graph inputs", MAX_CASE_INPUTS);
            return false;
        }
        ci->name[ci->n] = name;
        ci->weight[ci->n] = is_weight(gp, name);
        ci->n++;
    }
    return true;
}

/* Imports the model with the case's weight inputs taken from data set `set`. */
static prt_status import_with_weights(prt_context *ctx, const char *model_path, Onnx__ModelProto *mp,
                                      const case_inputs *ci, const char *dir, const char *set,
                                      prt_onnx_model **out) {
    Onnx__GraphProto *gp = mp->graph;
    Onnx__TensorProto *w[MAX_CASE_INPUTS] = {0};
    char *saved_name[MAX_CASE_INPUTS] = {0};
    int n_w = 0;
    prt_status st = PRT_OK;
    ProtobufCAllocator a;
    prt_pb_allocator(ctx, &a);
    Onnx__TensorProto **init = NULL, **old_init = gp->initializer;
    size_t old_n = gp->n_initializer;
    for (int k = 0; k < ci->n && st == PRT_OK; k++) {
        if (!ci->weight[k]) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s/input_%d.pb", dir, set, k);
        unsigned char *buf;
        size_t n;
        if ((st = prt_onnx_read_file(ctx, path, "tensor file", PRT_ONNX_MAX_FILE, &buf, &n)) != PRT_OK) break;
        w[n_w] = onnx__tensor_proto__unpack(&a, n, buf);
        prt_free(ctx, buf, 0);
        if (!w[n_w]) {
            st = prt_error(ctx, PRT_ERR_PARSE, "%s: not a valid TensorProto (protobuf-c could not unpack it)", path);
            break;
        }
        /* the initializer takes the graph input's name (restored before freeing) */
        saved_name[n_w] = w[n_w]->name;
        w[n_w]->name = (char *)ci->name[k];
        n_w++;
    }
    if (st == PRT_OK && n_w > 0) {
        init = prt_calloc(ctx, old_n + (size_t)n_w, sizeof *init);
        if (!init) st = prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
    }
    if (st == PRT_OK) {
        if (n_w > 0) {
            for (size_t k = 0; k < old_n; k++) init[k] = old_init[k];
            for (int k = 0; k < n_w; k++) init[old_n + (size_t)k] = w[k];
            gp->initializer = init;
            gp->n_initializer = old_n + (size_t)n_w;
        }
        st = prt_onnx_import_proto(ctx, model_path, mp, out);
        gp->initializer = old_init;
        gp->n_initializer = old_n;
    }
    prt_free(ctx, init, 0);
    for (int k = 0; k < n_w; k++) {
        w[k]->name = saved_name[k];
        onnx__tensor_proto__free_unpacked(w[k], &a);
    }
    return st;
}

static prt_onnx_case_result run_set(prt_context *ctx, const char *model_path, Onnx__ModelProto *mp, const case_inputs *ci,
                           const char *dir, const char *set, bool reference, char *why, size_t cap) {
    char path[4096];
    prt_tensor in[MAX_CASE_INPUTS], out[16];
    int n_in = 0, n_out = 0;
    prt_onnx_model *m = NULL;
    prt_program *p = NULL;
    prt_vm *vm = NULL;
    prt_onnx_case_result r = PRT_ONNX_FAIL;
    prt_status st;
    if ((st = import_with_weights(ctx, model_path, mp, ci, dir, set, &m)) != PRT_OK) {
        snprintf(why, cap, "%s", prt_last_error(ctx));
        return st == PRT_ERR_UNSUPPORTED ? PRT_ONNX_UNSUPPORTED : PRT_ONNX_FAIL;
    }
    for (int k = 0; k < ci->n; k++) {
        if (ci->weight[k]) continue;
        snprintf(path, sizeof path, "%s/%s/input_%d.pb", dir, set, k);
        if ((st = prt_onnx_read_tensor(ctx, path, &in[n_in], NULL)) != PRT_OK) goto fail;
        n_in++;
    }
    for (; n_out < 16; n_out++) {
        snprintf(path, sizeof path, "%s/%s/output_%d.pb", dir, set, n_out);
        if (!file_exists(path)) break;
        if ((st = prt_onnx_read_tensor(ctx, path, &out[n_out], NULL)) != PRT_OK) goto fail;
    }
    if (n_in != m->g->n_inputs || n_out != m->g->n_outputs) {
        snprintf(why, cap, "%s: %d inputs and %d outputs, the model has %d and %d", set, n_in, n_out, m->g->n_inputs,
                 m->g->n_outputs);
        goto done;
    }
    int64_t batch = in[0].shape.ndim > 0 ? in[0].shape.d[0] : 0;
    if (batch < 1) {
        snprintf(why, cap, "%s: input 0 has no batch dimension", set);
        goto done;
    }
    if ((st = prt_vm_compile(m->g, batch, &p)) != PRT_OK) goto fail;
    prt_vm_options vo = {.reference = reference};
    if ((st = prt_vm_create(ctx, p, prt_cpu_device(ctx), &vo, &vm)) != PRT_OK) goto fail;
    if ((st = prt_onnx_apply(ctx, m, vm)) != PRT_OK) goto fail;
    for (int k = 0; k < n_in; k++) {
        prt_tensor *x = prt_vm_input(vm, k);
        if (!prt_shape_eq(&x->shape, &in[k].shape)) {
            char a[160], b[160];
            snprintf(why, cap, "%s: input %d has shape %s, the model takes %s", set, k,
                     prt_shape_str(&in[k].shape, a, sizeof a), prt_shape_str(&x->shape, b, sizeof b));
            goto done;
        }
        memcpy(x->data, in[k].data, (size_t)prt_shape_count(&x->shape) * sizeof(float));
    }
    if ((st = prt_vm_run(vm)) != PRT_OK) goto fail;
    for (int k = 0; k < n_out; k++) {
        char w[600];
        if (!close_enough(prt_vm_output(vm, k), &out[k], w, sizeof w)) {
            snprintf(why, cap, "%s: output %d: %s", set, k, w);
            goto done;
        }
    }
    r = PRT_ONNX_PASS;
    goto done;
fail:
    snprintf(why, cap, "%s: %s", set, prt_last_error(ctx));
    r = st == PRT_ERR_UNSUPPORTED ? PRT_ONNX_UNSUPPORTED : PRT_ONNX_FAIL;
done:
    prt_vm_destroy(vm);
    prt_program_destroy(ctx, p);
    prt_onnx_model_destroy(ctx, m);
    for (int k = 0; k < n_in; k++) prt_tensor_release(ctx, &in[k]);
    for (int k = 0; k < n_out; k++) prt_tensor_release(ctx, &out[k]);
    return r;
}

prt_onnx_case_result prt_onnx_test_case(prt_context *ctx, const char *dir, bool reference, char *why, size_t cap) {
    why[0] = '\0';
    char path[4096];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    Onnx__ModelProto *mp;
    prt_status st = prt_onnx_read_model(ctx, path, &mp);
    if (st != PRT_OK) {
        snprintf(why, cap, "%s", prt_last_error(ctx));
        return st == PRT_ERR_UNSUPPORTED ? PRT_ONNX_UNSUPPORTED : PRT_ONNX_FAIL;
    }
    case_inputs ci;
    if (!mp->graph) {
        snprintf(why, cap, "%s: the model has no graph", path);
        prt_onnx_free_model(ctx, mp);
        return PRT_ONNX_FAIL;
    }
    if (!find_inputs(mp->graph, &ci, why, cap)) {
        prt_onnx_free_model(ctx, mp);
        return PRT_ONNX_UNSUPPORTED;
    }
    char **sets;
    int n = data_sets(ctx, dir, &sets);
    prt_onnx_case_result r = PRT_ONNX_PASS;
    if (n <= 0) {
        snprintf(why, cap, "no test_data_set_* folders");
        r = PRT_ONNX_FAIL;
    }
    for (int k = 0; k < n && r == PRT_ONNX_PASS; k++) r = run_set(ctx, path, mp, &ci, dir, sets[k], reference, why, cap);
    free_sets(ctx, sets, n);
    prt_onnx_free_model(ctx, mp);
    return r;
}

