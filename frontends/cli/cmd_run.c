/* `parrots run`: forward on a batch of random or given input, with a summary of
 * the output and the timing. */
#include "frontends/cli/cli_impl.h"
#include "frontends/program_file_api.h"
#include "runtime/cuda_api.h"
#include "scheduler/scheduler_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Reads exactly n floats (raw little-endian f32) from path into dst. */
static prt_status read_input(prt_context *ctx, const char *path, float *dst, int64_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return prt_error(ctx, PRT_ERR_IO, "%s: cannot open input file", path);
    size_t got = fread(dst, sizeof(float), (size_t)n, f);
    int extra = fgetc(f);
    fclose(f);
    if (got != (size_t)n || extra != EOF)
        return prt_error(ctx, PRT_ERR_INVALID,
                         "%s: expected exactly %lld float32 values (%lld bytes) for the input batch, the file %s",
                         path, (long long)n, (long long)n * 4, got != (size_t)n ? "is shorter" : "is longer");
    return PRT_OK;
}

static void summarise(const prt_tensor *t, const char *name) {
    const float *y = PRT_F32P(t);
    int64_t n = prt_shape_count(&t->shape);
    double sum = 0, sq = 0, mn = INFINITY, mx = -INFINITY;
    int64_t nonfinite = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = y[i];
        if (!isfinite(v)) {
            nonfinite++;
            continue;
        }
        sum += v, sq += v * v;
        if (v < mn) mn = v;
        if (v > mx) mx = v;
    }
    double mean = n ? sum / (double)n : 0, var = n ? sq / (double)n - mean * mean : 0;
    char sh[160];
    printf("output    %s %s  mean %.6g  std %.6g  min %.6g  max %.6g%s\n", name,
           prt_shape_str(&t->shape, sh, sizeof sh), mean, sqrt(var > 0 ? var : 0), mn, mx,
           nonfinite ? "  (non-finite values!)" : "");
    if (t->shape.ndim == 2) {
        int64_t b = t->shape.d[0], c = t->shape.d[1];
        printf("argmax   ");
        for (int64_t i = 0; i < b && i < 8; i++) {
            int64_t best = 0;
            for (int64_t j = 1; j < c; j++)
                if (y[i * c + j] > y[i * c + best]) best = j;
            printf(" %lld", (long long)best);
        }
        printf("%s\n", b > 8 ? " ..." : "");
    }
}

int cli_run(int argc, char **argv) {
    bool verbose = false, reference = false;
    long long batch = -1, iters = 10, warmup = 2, seed = 0;
    const char *input = NULL, *memory_limit = NULL, *device = "cpu", *cuda_graph = "auto", *fuse = "auto",
               *precision = "fp32";
    const cli_opt opts[] = {
        {"--batch", CLI_INT, "N", "batch size (default 1; a saved program's own, which it must equal)", &batch},
        {"--iters", CLI_INT, "K", "timed forward passes (default 10)", &iters},
        {"--warmup", CLI_INT, "W", "untimed passes first (default 2)", &warmup},
        {"--input", CLI_STRING, "FILE", "raw float32 input batch (default: random normal data)", &input},
        {"--seed", CLI_INT, "S", "seed of parameters and random input (default 0x5eed)", &seed},
        {"--reference", CLI_FLAG, NULL, "use the plain C reference kernels (slow; for checking)", &reference},
        {"--memory-limit", CLI_STRING, "SIZE",
         "fail before running when the plan needs more (such as 8GiB, 512MiB, 1.5GB; default: no limit)",
         &memory_limit},
        {"--device", CLI_STRING, "DEV", "cpu (default) or cuda[:N], the N-th GPU (docs/gpu.md)", &device},
        {"--cuda-graph", CLI_STRING, "MODE",
         "with --device cuda: capture the pass once as a CUDA graph and replay it: auto (default, where the "
         "program allows it), on (an error where it cannot) or off (docs/gpu.md)", &cuda_graph},
        {"--fuse", CLI_STRING, "WHAT",
         "bn-relu: each batch norm whose output only a ReLU reads becomes one fused op; none; or auto (default: "
         "bn-relu with --device cuda, none on the CPU)", &fuse},
        {"--precision", CLI_STRING, "P", "fp32 (default) or bf16: bf16 activations (needs --device cuda; docs/gpu.md)",
         &precision},
        {"--verbose", CLI_FLAG, NULL, "debug logging", &verbose},
        {0},
    };
    const char *pos[1];
    int rc = cli_parse("run", "[--batch N] [--iters K] [--input FILE] [--memory-limit SIZE] [--device cpu|cuda[:N]] "
                       "[--cuda-graph auto|on|off] [--fuse auto|none|bn-relu] [--precision fp32|bf16] "
                       "NET.yaml|PROGRAM.pb",
                       opts, argc, argv, pos, 1, 1);
    if (rc) return rc < 0 ? CLI_OK : rc;
    size_t limit;
    if ((rc = cli_parse_memory_limit("run", memory_limit, &limit)) != CLI_OK) return rc;
    int gpu_index;
    if ((rc = cli_parse_device("run", device, &gpu_index)) != CLI_OK) return rc;
    bool fuse_bn_relu;
    if ((rc = cli_parse_fuse("run", fuse, gpu_index >= 0, &fuse_bn_relu)) != CLI_OK) return rc;
    prt_precision prec;
    prt_cuda_graph_mode graph_mode;
    if ((rc = cli_parse_precision("run", precision, gpu_index >= 0, &prec)) != CLI_OK ||
        (rc = cli_parse_cuda_graph("run", cuda_graph, &graph_mode)) != CLI_OK)
        return rc;
    bool given_batch = batch >= 0;
    if (!given_batch) batch = 1;
    if (batch < 1 || iters < 1) {
        fprintf(stderr, "parrots run: --batch and --iters must be at least 1\n");
        return CLI_USAGE;
    }
    prt_context_options co = {.struct_size = sizeof co,
                              .log_level = verbose ? PRT_LOG_DEBUG : PRT_LOG_INFO,
                              .seed = (uint64_t)seed};
    prt_context *ctx;
    if ((rc = cli_start("run", &co, verbose, &ctx)) != CLI_OK) return rc;
    prt_status s = PRT_OK;
    prt_graph *g = NULL;
    prt_program *p = NULL;
    prt_vm *vm = NULL;
    prt_device *gpu = NULL;
    double *times = calloc((size_t)iters, sizeof *times);
    prt_vm_options vo = {.reference = reference, .cuda_graph = graph_mode};
    bool over_limit = false;
    if (!times) {
        s = prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* a saved program (by its magic or name) runs without compiling */
    size_t plen = strlen(pos[0]);
    bool saved = prt_program_file_sniff(pos[0]) || (plen > 3 && !strcmp(pos[0] + plen - 3, ".pb"));
    if (saved) {
        if (prec != PRT_PRECISION_FP32) {
            s = prt_error(ctx, PRT_ERR_USAGE, "%s: --precision applies to a network being compiled; a saved program "
                          "keeps the precision it was compiled with", pos[0]);
            goto done;
        }
        PRT_CHECK_GOTO(prt_program_load(ctx, pos[0], &p), s, done);
        if (prt_program_is_training(p)) {
            s = prt_error(ctx, PRT_ERR_USAGE, "%s: program '%s' is a training step; run runs inference programs",
                          pos[0], prt_program_name(p));
            goto done;
        }
        if (given_batch && batch != prt_program_batch(p)) {
            s = prt_error(ctx, PRT_ERR_USAGE, "%s: the program is compiled for batch %lld, not %lld (recompile it "
                          "with parrots compile --batch %lld)", pos[0], (long long)prt_program_batch(p), batch, batch);
            goto done;
        }
        batch = prt_program_batch(p);
        fprintf(stderr, "loaded program %s (%d instructions, verified)\n", prt_program_name(p),
                prt_program_n_instructions(p));
    } else {
        PRT_CHECK_GOTO(cli_load(ctx, pos[0], &g), s, done);
        PRT_CHECK_GOTO(prt_graph_device_passes(g, fuse_bn_relu, prec), s, done);
        PRT_CHECK_GOTO(prt_vm_compile(g, batch, &p), s, done);
    }
    if (cli_memory_check("run", ctx, p, limit) != CLI_OK) {
        over_limit = true;
        goto done;
    }
    if (gpu_index >= 0) {
        PRT_CHECK_GOTO(prt_cuda_device_create(ctx, gpu_index, &gpu), s, done);
    }
    PRT_CHECK_GOTO(prt_vm_create(ctx, p, gpu ? gpu : prt_cpu_device(ctx), &vo, &vm), s, done);
    /* an ONNX model's initializers; nothing for YAML networks and saved programs */
    if (!saved) PRT_CHECK_GOTO(cli_load_weights(ctx, pos[0], vm), s, done);
    for (int i = 0; i < prt_vm_n_inputs(vm); i++) {
        prt_tensor *x = prt_vm_input(vm, i);
        int64_t n = prt_shape_count(&x->shape);
        if (input && i == 0)
            PRT_CHECK_GOTO(read_input(ctx, input, PRT_F32P(x), n), s, done);
        else
            prt_rng_fill_normal(prt_hash_str("input", ctx->seed + (uint64_t)i), PRT_F32P(x), n, 0.0f, 1.0f);
    }
    fprintf(stderr, "running %s: batch %lld, %d instructions, %s kernels, %lld warm-up + %lld timed passes\n",
            prt_program_name(p), batch, prt_program_n_instructions(p), gpu ? "CUDA" : reference ? "reference" : "fast",
            warmup, iters);
    for (long long i = 0; i < warmup; i++) PRT_CHECK_GOTO(prt_vm_run(vm), s, done);
    if (gpu) fprintf(stderr, "CUDA graph: %s\n", prt_vm_cuda_graph_state(vm));
    for (long long i = 0; i < iters; i++) {
        double t0 = prt_now();
        PRT_CHECK_GOTO(prt_vm_run(vm), s, done);
        times[i] = prt_now() - t0;
    }
    for (int i = 0; i < prt_vm_n_outputs(vm); i++) summarise(prt_vm_output(vm, i), prt_program_output_name(p, i));
    qsort(times, (size_t)iters, sizeof *times, cmp_double);
    double med = times[iters / 2];
    printf("time      median %.3f ms, min %.3f ms per batch of %lld over %lld passes; %.1f images/s\n", 1e3 * med,
           1e3 * times[0], batch, iters, (double)batch / med);
done:
    rc = over_limit ? CLI_FAIL : s == PRT_OK ? CLI_OK : cli_fail("run", ctx, s);
    free(times);
    prt_vm_destroy(vm);
    prt_cuda_device_destroy(gpu);
    prt_program_destroy(ctx, p);
    prt_graph_destroy(g);
    prt_context_destroy(ctx);
    return rc;
}
