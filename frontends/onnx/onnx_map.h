/* The importer's state, shared by onnx_import.c (model, values, constants) and
 * onnx_map.c (one ONNX node to Parrots nodes). */
#ifndef PARROTS_ONNX_MAP_H
#define PARROTS_ONNX_MAP_H

#include "frontends/onnx/onnx_impl.h"

typedef struct prt_onnx_ent {
    int id;     /* graph value, -1 when none yet */
    int konst;  /* index into consts, -1 when not a constant */
} prt_onnx_ent;

typedef struct prt_onnx_imp {
    prt_context *ctx;
    const char *file;         /* the model's path, for messages */
    char *dir;                /* owned: its directory (external data) */
    prt_loc loc;
    int opset;
    int64_t batch;
    prt_graph *g;             /* borrowed from m */
    prt_onnx_model *m;        /* owned until returned */
    struct prt_strtab *names; /* ONNX value name -> ents index */
    prt_onnx_ent *ents;
    int n_ents, cap_ents;
    prt_onnx_const *consts;   /* owned */
    int n_consts, cap_consts;
} prt_onnx_imp;

prt_status prt_onnx_ent_put(prt_onnx_imp *I, const char *name, int id, int konst);
const prt_onnx_ent *prt_onnx_ent_get(const prt_onnx_imp *I, const char *name);
/* The constant named `name`, or NULL. */
const prt_onnx_const *prt_onnx_const_of(const prt_onnx_imp *I, const char *name);
/* Takes ownership of c's data (freed on failure too). */
prt_status prt_onnx_add_const(prt_onnx_imp *I, const char *name, prt_onnx_const *c);
/* A weight of the model (copied): a parameter, state or constant value's data. */
prt_status prt_onnx_add_weight(prt_onnx_imp *I, const char *name, const prt_shape *shape, const float *data);
/* The graph value of an ONNX name used as a data input; a float constant becomes
 * a state value of that name on first use. */
prt_status prt_onnx_value(prt_onnx_imp *I, const Onnx__NodeProto *nd, const char *name, int *id);
const char *prt_onnx_node_name(const Onnx__NodeProto *nd);

const Onnx__AttributeProto *prt_onnx_attr(const Onnx__NodeProto *nd, const char *name);
int64_t prt_onnx_attr_i(const Onnx__NodeProto *nd, const char *name, int64_t dflt);
float prt_onnx_attr_f(const Onnx__NodeProto *nd, const char *name, float dflt);
bool prt_onnx_attr_is(const Onnx__NodeProto *nd, const char *name, const char *dflt, const char *s);
/* Count of INTS (capped at 1000) and *out, or -1 when absent. */
int prt_onnx_attr_ints(const Onnx__NodeProto *nd, const char *name, const int64_t **out);

/* A node computing a copy of value x (scale by 1: exact), named `name`: for a
 * graph output that is a graph input under another name (Identity, Dropout). */
prt_status prt_onnx_copy_value(prt_onnx_imp *I, const char *name, int x, int *out);

/* The node's op has a mapping and the Parrots ops it needs are registered. */
bool prt_onnx_supported(const prt_onnx_imp *I, const Onnx__NodeProto *nd);
/* Adds the Parrots nodes of one ONNX node (or records an alias or constant). */
prt_status prt_onnx_map_node(prt_onnx_imp *I, const Onnx__NodeProto *nd);

#endif
