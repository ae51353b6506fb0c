/* `parrots timeline-summary --plot FILE.svg`: two lanes per rank, the compute
 * thread (compute spans, waits for an allreduce in a contrasting colour) and
 * the communication thread (allreduces labelled with their bucket, other
 * collectives), over a time axis in milliseconds.
 *
 * Traces hold millions of spans; a picture has a thousand pixel columns. Spans
 * of one kind in one lane that touch at the picture's scale (gaps under half a
 * pixel) are drawn as one rectangle, so the file stays small and no span
 * narrower than a pixel disappears (each rectangle is at least 0.5 px wide). */
#include "frontends/cli/timeline_impl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIG_W 1100
#define LEFT 150.0
#define RIGHT 1070.0
#define TOP 96.0
#define LANE_H 22.0
#define LANE_GAP 4.0
#define RANK_GAP 16.0

static const uint32_t kind_fill[PRT_TL_KINDS] = {0x4c78a8, 0xe45756, 0x54a24b, 0xb279a2};
static const char *const kind_label[PRT_TL_KINDS] = {"compute", "waiting for an allreduce", "allreduce (bucket)",
                                                     "other collective"};
static const char *const kind_id[PRT_TL_KINDS] = {"compute", "wait", "allreduce", "other"};

static void xml_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '&') fputs("&amp;", f);
        else if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else fputc(*s, f);
    }
}

static void text(FILE *f, double x, double y, const char *s, int size, const char *anchor, uint32_t rgb, bool bold) {
    fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"%d\" text-anchor=\"%s\" fill=\"#%06x\"%s>", x, y, size,
            anchor, rgb, bold ? " font-weight=\"bold\"" : "");
    xml_text(f, s);
    fputs("</text>\n", f);
}

static void rect(FILE *f, double x, double y, double w, double h, uint32_t fill) {
    fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"#%06x\"/>\n", x, y, w, h, fill);
}

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

static void draw(FILE *f, const prt_tl_summary *s, prt_tl_span *spans, size_t n, int fig_h) {
    double t_lo = s->total.t_begin_us, t_hi = s->total.t_end_us;
    if (!(t_hi > t_lo)) t_lo = 0, t_hi = 1;
    double ms_hi = (t_hi - t_lo) / 1e3, step = tick_step(ms_hi, 8);
    double scale = (RIGHT - LEFT) / (t_hi - t_lo); /* px per microsecond */
    char b[160];

    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", FIG_W, fig_h);
    if (s->total.comm_s > 0)
        snprintf(b, sizeof b, "timeline: overlap fraction %.3f (%.1f%% of allreduce time hidden behind compute)",
                 prt_tl_overlap(&s->total), 100 * prt_tl_overlap(&s->total));
    else
        snprintf(b, sizeof b, "timeline: no allreduce (overlap fraction undefined)");
    text(f, FIG_W / 2.0, 30, b, 18, "middle", 0x000000, true);

    /* legend */
    double lx = LEFT;
    for (int k = 0; k < PRT_TL_KINDS; k++) {
        rect(f, lx, 50, 22, 12, kind_fill[k]);
        text(f, lx + 28, 61, kind_label[k], 13, "start", 0x333333, false);
        lx += 28 + 7.5 * (double)strlen(kind_label[k]) + 24;
    }

    /* grid and axis */
    double axis_y = lane_y(s->n_ranks, PRT_TL_COMPUTE) - RANK_GAP + 6;
    for (double v = 0; v <= ms_hi * (1 + 1e-9); v += step) {
        double x = LEFT + v * 1e3 * scale;
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#e6e6e6\" stroke-width=\"1\"/>\n",
                x, TOP - 6, x, axis_y);
        int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
        snprintf(b, sizeof b, "%.*f", dec > 6 ? 6 : dec, v);
        text(f, x, axis_y + 18, b, 13, "middle", 0x333333, false);
    }
    text(f, (LEFT + RIGHT) / 2, axis_y + 40, "time (ms)", 13, "middle", 0x333333, false);

    /* lane backgrounds and names */
    for (int i = 0; i < s->n_ranks; i++) {
        const char *lanes[2] = {"compute", "comm"};
        for (int l = 0; l < 2; l++) {
            double y = lane_y(i, l == 0 ? PRT_TL_COMPUTE : PRT_TL_ALLREDUCE);
            rect(f, LEFT, y, RIGHT - LEFT, LANE_H, 0xf4f4f4);
            snprintf(b, sizeof b, "rank %lld %s", (long long)s->ranks[i].pid, lanes[l]);
            text(f, LEFT - 8, y + 15, b, 13, "end", 0x333333, false);
        }
    }

    /* spans: one group per rank, lane and kind; compute first so waits lie on top */
    qsort(spans, n, sizeof *spans, by_lane);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && spans[j].pid == spans[i].pid && spans[j].kind == spans[i].kind) j++;
        int ri = rank_index(s, spans[i].pid), kind = spans[i].kind;
        if (ri >= 0) {
            double y = lane_y(ri, kind);
            fprintf(f, "<g id=\"rank%lld-%s\" fill=\"#%06x\">\n", (long long)spans[i].pid, kind_id[kind],
                    kind_fill[kind]);
            for (size_t k = i; k < j;) {
                double x0 = LEFT + (spans[k].t0_us - t_lo) * scale, x1 = LEFT + (spans[k].t1_us - t_lo) * scale;
                size_t m = k + 1;
                while (m < j && LEFT + (spans[m].t0_us - t_lo) * scale <= x1 + 0.5) {
                    double e = LEFT + (spans[m].t1_us - t_lo) * scale;
                    if (e > x1) x1 = e;
                    m++;
                }
                if (x1 - x0 < 0.5) x1 = x0 + 0.5;
                fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\"/>\n", x0, y, x1 - x0, LANE_H);
                if (m == k + 1 && kind == PRT_TL_ALLREDUCE && spans[k].bucket >= 0) {
                    snprintf(b, sizeof b, "%d", (int)spans[k].bucket);
                    if (x1 - x0 >= 7.0 * (double)strlen(b) + 4)
                        text(f, (x0 + x1) / 2, y + 15, b, 11, "middle", 0xffffff, false);
                }
                k = m;
            }
            fputs("</g>\n", f);
        }
        i = j;
    }
}

prt_status prt_tl_plot(prt_context *ctx, const char *path, const prt_tl_summary *s, prt_tl_span *spans, size_t n) {
    size_t plen = strlen(path);
    if (plen < 4 || strcmp(path + plen - 4, ".svg") != 0)
        return prt_error(ctx, PRT_ERR_UNSUPPORTED, "--plot %s: timelines are drawn as SVG only (FILE.svg)", path);
    int fig_h = (int)(lane_y(s->n_ranks, PRT_TL_COMPUTE) - RANK_GAP + 60);
    char *tmp = prt_malloc(ctx, plen + 16);
    if (!tmp) return prt_error(ctx, PRT_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, plen + 16, "%s.tmp-XXXXXX", path);
    prt_status st = PRT_OK;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        st = prt_error(ctx, PRT_ERR_IO, "%s: cannot create the plot: %s", path, strerror(errno));
        prt_free(ctx, tmp, plen + 16);
        return st;
    }
    (void)fchmod(fd, 0644);
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        close(fd);
        st = prt_error(ctx, PRT_ERR_IO, "%s: cannot create the plot: %s", path, strerror(errno));
        goto done;
    }
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n",
            FIG_W, fig_h, FIG_W, fig_h);
    draw(f, s, spans, n, fig_h);
    fputs("</svg>\n", f);
    if (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0)
        st = prt_error(ctx, PRT_ERR_IO, "%s: cannot write the plot: %s", path, strerror(errno));
done:
    if (f && fclose(f) != 0 && st == PRT_OK)
        st = prt_error(ctx, PRT_ERR_IO, "%s: cannot write the plot: %s", path, strerror(errno));
    if (st == PRT_OK && rename(tmp, path) != 0)
        st = prt_error(ctx, PRT_ERR_IO, "%s: cannot write the plot: %s", path, strerror(errno));
    if (st != PRT_OK) unlink(tmp);
    prt_free(ctx, tmp, plen + 16);
    return st;
}
