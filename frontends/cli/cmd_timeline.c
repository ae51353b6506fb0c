/* `parrots timeline-summary TRACE.json`: how much of the gradient allreduce
 * time a data-parallel run hid behind compute, from a Chrome trace written by
 * `parrots train --timeline` (or any trace using the same categories). */
#include "frontends/cli/cli_impl.h"
#include "frontends/cli/timeline_impl.h"

#include <stdlib.h>
#include <string.h>

static const char usage[] = "TRACE.json";

typedef struct spans {
    prt_context *ctx;
    prt_tl_span *v;
    size_t n, cap;
} spans;

static prt_status keep_span(void *user, const prt_tl_event *e) {
    spans *s = user;
    int kind = prt_tl_span_kind(e);
    if (kind < 0) return PRT_OK;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 4096, bytes;
        if (!prt_mul_size(cap, sizeof *s->v, &bytes))
            return prt_error(s->ctx, PRT_ERR_OVERFLOW, "timeline: too many spans to draw");
        prt_tl_span *v = prt_realloc(s->ctx, s->v, s->cap * sizeof *s->v, bytes);
        if (!v) return prt_error(s->ctx, PRT_ERR_NOMEM, "timeline: %zu spans to draw", cap);
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (prt_tl_span){.t0_us = e->ts_us, .t1_us = e->ts_us + e->dur_us, .pid = e->pid,
                                 .bucket = e->bucket >= 0 && e->bucket < INT32_MAX ? (int32_t)e->bucket : -1,
                                 .kind = kind};
    return PRT_OK;
}

static void overlap_text(const prt_tl_rank *k, char *b, size_t cap) {
    if (k->comm_s > 0) snprintf(b, cap, "%.1f%%", 100.0 * prt_tl_overlap(k));
    else snprintf(b, cap, "-");
}

static void print_row(const char *label, const prt_tl_rank *k) {
    char ov[16];
    overlap_text(k, ov, sizeof ov);
    printf("%-6s %7lld %10.3f %11.6f %11.6f %11.6f %8s\n", label, (long long)k->steps, prt_tl_step_s(k) * 1e3,
           k->compute_s, k->comm_s, k->exposed_comm_s, ov);
}

static void print_text(const char *path, const prt_tl_summary *s) {
    printf("trace     %s: %d rank%s, %lld complete events", path, s->n_ranks, s->n_ranks == 1 ? "" : "s",
           (long long)s->total.events);
    if (s->dropped > 0) printf(", %lld dropped while recording (the buffer was full)", (long long)s->dropped);
    printf("\n\n%-6s %7s %10s %11s %11s %11s %8s\n", "rank", "steps", "step_ms", "compute_s", "comm_s",
           "exposed_s", "overlap");
    char label[24];
    for (int i = 0; i < s->n_ranks; i++) {
        snprintf(label, sizeof label, "%lld", (long long)s->ranks[i].pid);
        print_row(label, &s->ranks[i]);
    }
    if (s->n_ranks > 1) print_row("total", &s->total);
    printf("\ncomm_s: time the communication thread spent in gradient allreduces;\n"
           "exposed_s: time the compute thread waited for one (not hidden behind compute);\n"
           "overlap: (comm_s - exposed_s) / comm_s, the part hidden behind compute.\n");
}

static void json_fields(const prt_tl_rank *k) {
    printf("\"steps\": %lld, \"step_s\": %.9f, \"compute_s\": %.9f, \"comm_s\": %.9f, \"exposed_comm_s\": %.9f, "
           "\"other_comm_s\": %.9f, \"overlap_fraction\": ",
           (long long)k->steps, prt_tl_step_s(k), k->compute_s, k->comm_s, k->exposed_comm_s, k->other_comm_s);
    if (k->comm_s > 0) printf("%.6f", prt_tl_overlap(k));
    else printf("null");
    double span = k->events > 0 ? (k->t_end_us - k->t_begin_us) * 1e-6 : 0.0;
    printf(", \"events\": %lld, \"span_s\": %.9f", (long long)k->events, span);
}

static void print_json(const prt_tl_summary *s) {
    printf("{\"ranks\": %d, ", s->n_ranks);
    json_fields(&s->total);
    printf(", \"dropped\": ");
    if (s->dropped >= 0) printf("%lld", (long long)s->dropped);
    else printf("null");
    printf(",\n \"per_rank\": [");
    for (int i = 0; i < s->n_ranks; i++) {
        printf("%s\n  {\"rank\": %lld, ", i ? "," : "", (long long)s->ranks[i].pid);
        json_fields(&s->ranks[i]);
        printf("}");
    }
    printf("]}\n");
}

int cli_timeline_summary(int argc, char **argv) {
    bool json = false;
    long long rank = -1;
    const char *plot = NULL;
    const cli_opt opts[] = {
        {"--json", CLI_FLAG, NULL, "print one JSON object instead of the table", &json},
        {"--rank", CLI_INT, "R", "only the events of rank R (the trace's pid)", &rank},
        {"--plot", CLI_STRING, "FILE",
         "draw the timeline: FILE.svg or FILE.png (compute and communication lanes per rank)", &plot},
        {0},
    };
    const char *pos[1];
    int rc = cli_parse("timeline-summary", usage, opts, argc, argv, pos, 1, 1);
    if (rc == -1) {
        printf("\nSummarises a Chrome trace written by 'parrots train --timeline FILE':\n"
               "  compute_s       time in compute spans (instructions running kernels)\n"
               "  comm_s          time in gradient allreduces on the communication thread\n"
               "  exposed_comm_s  time the compute thread waited for an allreduce\n"
               "  overlap         (comm_s - exposed_comm_s) / comm_s: the part hidden behind compute\n"
               "See docs/timeline.md.\n");
        return CLI_OK;
    }
    if (rc != CLI_OK) return rc;
    prt_context *ctx;
    if (cli_context(false, &ctx) != PRT_OK) return CLI_FAIL;
    prt_status st = PRT_OK;
    if (plot && cli_plot_check(ctx, plot) != PRT_OK) {
        fprintf(stderr, "parrots timeline-summary: %s\n", prt_last_error(ctx));
        prt_context_destroy(ctx);
        return CLI_USAGE;
    }
    spans sp = {.ctx = ctx};
    prt_tl_summary s;
    st = prt_tl_read(ctx, pos[0], rank, plot ? keep_span : NULL, &sp, &s);
    if (st == PRT_OK) {
        if (json) print_json(&s);
        else print_text(pos[0], &s);
        if (plot) st = prt_tl_plot(ctx, plot, &s, sp.v, sp.n);
    }
    rc = st == PRT_OK ? CLI_OK : cli_fail("timeline-summary", ctx, st);
    prt_free(ctx, sp.v, sp.cap * sizeof *sp.v);
    prt_tl_summary_free(ctx, &s);
    prt_context_destroy(ctx);
    return rc;
}
