/* `parrots timeline-summary --plot FILE`: two lanes per rank, the compute
 * thread (compute spans, waits for an allreduce in a contrasting colour) and
 * the communication thread (allreduces labelled with their bucket, other
 * collectives), over a time axis in milliseconds; SVG or PNG by the file name,
 * drawn on the canvas of plot.c (plot_impl.h).
 *
 * Traces hold millions of spans; a picture has a thousand pixel columns. Spans
 * of one kind in one lane that touch at the picture's scale (gaps under half a
 * pixel) are drawn as one rectangle, so the file stays small and no span
 * narrower than a pixel disappears (each rectangle is at least 0.5 px wide). */
#include "frontends/cli/plot_impl.h"
#include "frontends/cli/timeline_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FIG_W 1100
#define LEFT_MIN 150.0
#define RIGHT 1070.0
#define TOP 96.0
#define LANE_H 22.0
#define LANE_GAP 4.0
#define RANK_GAP 16.0

static const uint32_t kind_fill[PRT_TL_KINDS] = {0x4c78a8, 0xe45756, 0x54a24b, 0xb279a2};
static const char *const kind_label[PRT_TL_KINDS] = {"compute", "waiting for an allreduce", "allreduce (bucket)",
                                                     "other collective"};
static const char *const kind_id[PRT_TL_KINDS] = {"compute", "wait", "allreduce", "other"};
static const char *const lane_name[2] = {"compute", "comm"};

/* Ticks at 1, 2 or 5 times a power of ten, about n over [0, hi]. */
static double tick_step(double hi, int n) {
    if (!(hi > 0)) return 1;
    double raw = hi / n, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static int by_lane(const void *a, const void *b) {
    const prt_tl_span *x = a, *y = b;
    if (x->pid != y->pid) return x->pid < y->pid ? -1 : 1;
    if (x->kind != y->kind) return x->kind < y->kind ? -1 : 1;
    if (x->t0_us != y->t0_us) return x->t0_us < y->t0_us ? -1 : 1;
    return 0;
}

static int rank_index(const prt_tl_summary *s, int64_t pid) {
    for (int i = 0; i < s->n_ranks; i++)
        if (s->ranks[i].pid == pid) return i;
    return -1;
}

static double lane_y(int rank_i, int kind) {
    double y = TOP + rank_i * (2 * LANE_H + LANE_GAP + RANK_GAP);
    return kind == PRT_TL_COMPUTE || kind == PRT_TL_WAIT ? y : y + LANE_H + LANE_GAP;
}

typedef struct figure {
    const prt_tl_summary *s;
    prt_tl_span *spans; /* sorted by lane */
    size_t n;
} figure;

static void lane_label(char *b, size_t cap, const prt_tl_summary *s, int i, int l) {
    snprintf(b, cap, "rank %lld %s", (long long)s->ranks[i].pid, lane_name[l]);
}

static void draw(cli_canvas *c, const void *arg) {
    const figure *fg = arg;
    const prt_tl_summary *s = fg->s;
    const prt_tl_span *spans = fg->spans;
    size_t n = fg->n;
    double t_lo = s->total.t_begin_us, t_hi = s->total.t_end_us;
    if (!(t_hi > t_lo)) t_lo = 0, t_hi = 1;
    char b[160];
    /* the lane names fit left of the lanes (the raster font is wider than SVG's) */
    double left = LEFT_MIN;
    for (int i = 0; i < s->n_ranks; i++)
        for (int l = 0; l < 2; l++) {
            lane_label(b, sizeof b, s, i, l);
            left = fmax(left, c->text_width(c, b, 2) + 16);
        }
    double ms_hi = (t_hi - t_lo) / 1e3, step = tick_step(ms_hi, 8);
    double scale = (RIGHT - left) / (t_hi - t_lo); /* px per microsecond */

    c->rect(c, 0, 0, c->w, c->h, 0xffffff, CLI_NONE);
    if (s->total.comm_s > 0)
        snprintf(b, sizeof b, "timeline: overlap fraction %.3f (%.1f%% of allreduce time hidden behind compute)",
                 prt_tl_overlap(&s->total), 100 * prt_tl_overlap(&s->total));
    else
        snprintf(b, sizeof b, "timeline: no allreduce (overlap fraction undefined)");
    int title = c->text_width(c, b, 3) <= c->w - 20 ? 3 : 2;
    c->text(c, c->w / 2.0, 30, b, title, CLI_ANCHOR_MIDDLE, false, 0x000000);

    /* legend: on one row while it fits, then on the next */
    double lx = left, ly = 50;
    for (int k = 0; k < PRT_TL_KINDS; k++) {
        double wk = 28 + c->text_width(c, kind_label[k], 2);
        if (lx > left && lx + wk > c->w - 10) lx = left, ly += 20;
        c->rect(c, lx, ly, 22, 12, kind_fill[k], CLI_NONE);
        c->text(c, lx + 28, ly + 11, kind_label[k], 2, CLI_ANCHOR_START, false, 0x333333);
        lx += wk + 24;
    }

    /* grid and axis */
    double axis_y = lane_y(s->n_ranks, PRT_TL_COMPUTE) - RANK_GAP + 6;
    for (double v = 0; v <= ms_hi * (1 + 1e-9); v += step) {
        double x = left + v * 1e3 * scale;
        c->line(c, x, TOP - 6, x, axis_y, 1, 0xe6e6e6, false);
        int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
        snprintf(b, sizeof b, "%.*f", dec > 6 ? 6 : dec, v);
        c->text(c, x, axis_y + 18, b, 2, CLI_ANCHOR_MIDDLE, false, 0x333333);
    }
    c->text(c, (left + RIGHT) / 2, axis_y + 40, "time (ms)", 2, CLI_ANCHOR_MIDDLE, false, 0x333333);

    /* lane backgrounds and names */
    for (int i = 0; i < s->n_ranks; i++)
        for (int l = 0; l < 2; l++) {
            double y = lane_y(i, l == 0 ? PRT_TL_COMPUTE : PRT_TL_ALLREDUCE);
            c->rect(c, left, y, RIGHT - left, LANE_H, 0xf4f4f4, CLI_NONE);
            lane_label(b, sizeof b, s, i, l);
            c->text(c, left - 8, y + 15, b, 2, CLI_ANCHOR_END, false, 0x333333);
        }

    /* spans: one group per rank, lane and kind; compute first so waits lie on top */
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && spans[j].pid == spans[i].pid && spans[j].kind == spans[i].kind) j++;
        int ri = rank_index(s, spans[i].pid), kind = spans[i].kind;
        if (ri >= 0) {
            double y = lane_y(ri, kind);
            snprintf(b, sizeof b, "rank%lld-%s", (long long)spans[i].pid, kind_id[kind]);
            c->group(c, b);
            for (size_t k = i; k < j;) {
                double x0 = left + (spans[k].t0_us - t_lo) * scale, x1 = left + (spans[k].t1_us - t_lo) * scale;
                size_t m = k + 1;
                while (m < j && left + (spans[m].t0_us - t_lo) * scale <= x1 + 0.5) {
                    double e = left + (spans[m].t1_us - t_lo) * scale;
                    if (e > x1) x1 = e;
                    m++;
                }
                if (x1 - x0 < 0.5) x1 = x0 + 0.5;
                c->rect(c, x0, y, x1 - x0, LANE_H, kind_fill[kind], CLI_NONE);
                if (m == k + 1 && kind == PRT_TL_ALLREDUCE && spans[k].bucket >= 0) {
                    snprintf(b, sizeof b, "%d", (int)spans[k].bucket);
                    if (x1 - x0 >= c->text_width(c, b, 1) + 4)
                        c->text(c, (x0 + x1) / 2, y + 15, b, 1, CLI_ANCHOR_MIDDLE, false, 0xffffff);
                }
                k = m;
            }
            c->group(c, NULL);
        }
        i = j;
    }
}

prt_status prt_tl_plot(prt_context *ctx, const char *path, const prt_tl_summary *s, prt_tl_span *spans, size_t n) {
    PRT_CHECK(cli_plot_check(ctx, path));
    int fig_h = (int)(lane_y(s->n_ranks, PRT_TL_COMPUTE) - RANK_GAP + 60);
    qsort(spans, n, sizeof *spans, by_lane);
    figure fg = {s, spans, n};
    return cli_plot_figure(ctx, path, FIG_W, fig_h, draw, &fg);
}
