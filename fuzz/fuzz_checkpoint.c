/* libFuzzer target: bytes as a training checkpoint (frontends/checkpoint.c),
 * parsed and, when they parse, checked against and restored into a small fixed
 * training VM. Each input runs twice: as given, and with the header's payload
 * length and CRC32C rewritten to match, so mutations reach the protobuf unpack
 * and the validation behind the checksum instead of all dying at the CRC.
 *
 * Built with -DPRT_FUZZ_SEED_MAIN it is instead a program that writes a valid
 * checkpoint of that VM (the seed fuzz/corpus/fuzz_checkpoint/valid.prtc):
 *     clang -DPRT_FUZZ_SEED_MAIN fuzz/fuzz_checkpoint.c ... && ./a.out DIR */
#include "frontends/checkpoint_api.h"
#include "frontends/crc32c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char net_yaml[] = "parrots: 1\n"
                               "name: fuzz\n"
                               "input: {x: [1, 4, 4]}\n"
                               "layers:\n"
                               "  - conv: {out: 2, kernel: 3, pad: 1}\n"
                               "  - batchnorm:\n"
                               "  - relu:\n"
                               "  - flatten:\n"
                               "  - linear: {out: 3}\n";

typedef struct fixture {
    prt_context *ctx;
    prt_graph *g;
    prt_program *p;
    prt_vm *vm;
    uint64_t hash;
} fixture;

/* Built once and kept for the process: fuzz targets are not library code. */
static fixture *get_fixture(void) {
    static fixture fx;
    static int state; /* 0 not built, 1 ready, -1 failed */
    if (state) return state > 0 ? &fx : NULL;
    state = -1;
    prt_context_options co = {.struct_size = sizeof co, .log_level = PRT_LOG_ERROR, .num_threads = 1};
    if (prt_context_create(&co, &fx.ctx) != PRT_OK) return NULL;
    if (prt_graph_load_yaml_string(fx.ctx, "fuzz.yaml", net_yaml, sizeof net_yaml - 1, &fx.g) != PRT_OK) return NULL;
    prt_solver s;
    prt_solver_defaults(&s);
    s.batch = 2;
    s.epochs = 2;
    prt_train_info ti;
    prt_vm_options o = {.training = true};
    if (prt_train_build(fx.g, &s, 4, &ti) != PRT_OK || prt_vm_compile(fx.g, 2, &fx.p) != PRT_OK ||
        prt_vm_create(fx.ctx, fx.p, prt_cpu_device(fx.ctx), &o, &fx.vm) != PRT_OK ||
        prt_ckpt_graph_hash(fx.g, &fx.hash) != PRT_OK)
        return NULL;
    state = 1;
    return &fx;
}

static void try_bytes(fixture *fx, const uint8_t *data, size_t size) {
    prt_ckpt *ck = NULL;
    if (prt_ckpt_parse(fx->ctx, "fuzz.prtc", data, size, (uint64_t)1 << 24, &ck) != PRT_OK) return;
    prt_ckpt_state st;
    prt_ckpt_get_state(ck, &st);
    (void)prt_ckpt_meta_get(ck, "network_file");
    (void)prt_ckpt_restore(fx->ctx, ck, fx->hash, fx->vm);
    prt_ckpt_destroy(fx->ctx, ck);
}

#ifndef PRT_FUZZ_SEED_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fixture *fx = get_fixture();
    if (!fx) abort(); /* the fixed program must build */
    try_bytes(fx, data, size);
    if (size >= PRT_CKPT_HEADER_SIZE) {
        uint8_t *b = malloc(size);
        if (!b) return 0;
        memcpy(b, data, size);
        uint64_t len = size - PRT_CKPT_HEADER_SIZE;
        uint32_t crc = prt_crc32c_update(0, b + PRT_CKPT_HEADER_SIZE, (size_t)len);
        for (int i = 0; i < 8; i++) b[16 + i] = (uint8_t)(len >> (8 * i));
        for (int i = 0; i < 4; i++) b[24 + i] = (uint8_t)(crc >> (8 * i));
        try_bytes(fx, b, size);
        free(b);
    }
    return 0;
}
#else
int main(int argc, char **argv) {
    fixture *fx = get_fixture();
    if (!fx || argc != 2) return 1;
    prt_ckpt_state st = {.global_step = 5, .epoch = 2, .step = 1, .steps_per_epoch = 4, .shuffle_seed = 1,
                         .dataset_size = 8, .batch_size = 2, .shuffle = true, .seed = 1};
    prt_solver_defaults(&st.solver);
    st.solver.batch = 2;
    st.solver.epochs = 2;
    prt_ckpt_meta meta[] = {{"network_file", "fuzz.yaml"}};
    prt_ckpt_save_options o;
    prt_ckpt_save_defaults(&o);
    o.meta = meta;
    o.n_meta = 1;
    o.network = "fuzz";
    char *path = NULL;
    if (prt_ckpt_save(fx->ctx, argv[1], fx->hash, &st, fx->vm, &o, &path) != PRT_OK) {
        fprintf(stderr, "%s\n", prt_last_error(fx->ctx));
        return 1;
    }
    printf("%s\n", path);
    return 0;
}
#endif
