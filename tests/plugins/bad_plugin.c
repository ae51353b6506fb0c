/* One broken test plugin per loading error, chosen by a -DBAD_<CASE> flag
 * (tests/CMakeLists.txt builds each case as tests/plugins/bad/<case>.so).
 * Without a flag it is a valid plugin "bad" with op bad.ok. */
#include "parrots/plugin.h"

static int ok_cpu(const prt_plugin_host *h, const prt_plugin_call *c) {
    (void)h;
    (void)c;
    return 0;
}

static const prt_plugin_attr_def attrs[] = {
#if defined(BAD_ATTR_NAME)
    {.name = "Alpha", .type = PRT_PLUGIN_ATTR_FLOAT},
#elif defined(BAD_ATTR_TYPE)
    {.name = "alpha", .type = 9},
#else
    {.name = "alpha", .type = PRT_PLUGIN_ATTR_FLOAT},
#endif
#if defined(BAD_ATTR_DUP)
    {.name = "alpha", .type = PRT_PLUGIN_ATTR_INT},
#else
    {.name = "beta", .type = PRT_PLUGIN_ATTR_INT},
#endif
};

#if defined(BAD_OP_SIZE)
#define OP_HEAD .struct_size = 8
#else
#define OP_HEAD PRT_PLUGIN_OP_INIT
#endif

#if defined(BAD_NAME)
#define NAME "Bad.OK"
#elif defined(BAD_DUP_OTHER)
#define NAME "tp.axpb"
#else
#define NAME "bad.ok"
#endif

static const prt_plugin_op ops[] = {
    {OP_HEAD, .name = NAME,
#if defined(BAD_VERSION0)
     .version = 0,
#else
     .version = 1,
#endif
     .min_in = 1, .max_in = 1,
#if defined(BAD_N_OUT)
     .n_out = 5,
#else
     .n_out = 1,
#endif
#if !defined(BAD_NO_INFER)
     .infer = prt_plugin_infer_same,
#endif
#if !defined(BAD_NO_CPU)
     .cpu = ok_cpu,
#endif
#if defined(BAD_INPLACE)
     .inplace = true, .inplace_in = 1,
#endif
     .attrs = attrs, .n_attrs = 2},
#if defined(BAD_DUP_INSIDE)
    {PRT_PLUGIN_OP_INIT, .name = "bad.ok", .version = 1, .min_in = 1, .max_in = 1, .n_out = 1,
     .infer = prt_plugin_infer_same, .cpu = ok_cpu},
#else
    {PRT_PLUGIN_OP_INIT, .name = "bad.other", .version = 1, .min_in = 1, .max_in = 1, .n_out = 1,
     .infer = prt_plugin_infer_same, .cpu = ok_cpu},
#endif
};

static int bad_init(const prt_plugin_host *h, void **state) {
    (void)state;
#if defined(BAD_INIT)
    return h->error(h->init_ctx, "no licence for %s", "bad.ok");
#elif defined(BAD_INIT_SILENT)
    (void)h;
    return 3;
#else
    (void)h;
    return 0;
#endif
}

static const prt_plugin_desc desc = {
#if defined(BAD_ABI_NEW)
    .abi_version = 2, .struct_size = sizeof(prt_plugin_desc),
#elif defined(BAD_ABI_OLD)
    .abi_version = 0, .struct_size = sizeof(prt_plugin_desc),
#elif defined(BAD_DESC_SIZE)
    .abi_version = 1, .struct_size = 16,
#else
    PRT_PLUGIN_DESC_INIT,
#endif
    .name = "bad", .version = "0.0.1", .ops = ops, .n_ops = 2, .init = bad_init};

#if defined(BAD_NO_ENTRY)
PRT_PLUGIN_EXPORT const prt_plugin_desc *prt_plugin_v0(void) { return &desc; }
#else
PRT_PLUGIN_EXPORT const prt_plugin_desc *prt_plugin_v1(void) { return &desc; }
#endif
