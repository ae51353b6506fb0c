/* The figure canvas of the CLI's plots (plot.c), for the figures drawn in
 * other files (plot_timeline.c). A figure is one drawing routine over the
 * canvas; cli_plot_figure runs it on the SVG canvas or on the raster canvas
 * (PNG) by the file name's ending and replaces the file atomically:
 *
 *     static void figure(cli_canvas *c, const void *arg) {
 *         c->rect(c, 10, 10, 80, 20, 0x4c78a8, CLI_NONE);
 *         c->text(c, 50, 50, "hello", 2, CLI_ANCHOR_MIDDLE, false, 0x000000);
 *     }
 *     PRT_CHECK(cli_plot_figure(ctx, "out.png", 400, 100, figure, NULL));
 *
 * Coordinates are pixels from the top left, colours 0xRRGGBB. */
#ifndef PARROTS_CLI_PLOT_IMPL_H
#define PARROTS_CLI_PLOT_IMPL_H

#include "frontends/cli/cli_impl.h"

#include <stdio.h>

enum { CLI_ANCHOR_START, CLI_ANCHOR_MIDDLE, CLI_ANCHOR_END };

/* "No fill" / "no stroke" for rect. */
#define CLI_NONE 0xffffffffu

typedef struct cli_canvas cli_canvas;
struct cli_canvas {
    void (*line)(cli_canvas *c, double x0, double y0, double x1, double y1, double w, uint32_t rgb, bool dashed);
    void (*rect)(cli_canvas *c, double x, double y, double w, double h, uint32_t fill, uint32_t stroke);
    void (*dot)(cli_canvas *c, double x, double y, double r, uint32_t rgb);
    /* y is the baseline; size 1 for small print, 2 for labels, 3 for titles */
    void (*text)(cli_canvas *c, double x, double y, const char *s, int size, int anchor, bool vertical, uint32_t rgb);
    void (*clip)(cli_canvas *c, double x, double y, double w, double h); /* w = 0: off */
    /* Opens (id non-NULL) or closes (id NULL) a named group: an SVG <g id=...>,
     * nothing on the raster canvas. Groups do not nest. */
    void (*group)(cli_canvas *c, const char *id);
    /* The width text of this size takes on this canvas (SVG: an estimate). */
    double (*text_width)(const cli_canvas *c, const char *s, int size);
    FILE *svg;
    int n_clips;
    bool in_clip, in_group;
    unsigned char *px; /* raster: w x h x 3 */
    int w, h;
    double cx0, cy0, cx1, cy1;
};

/* Draws figure(canvas, arg) on a w x h canvas into path: SVG for *.svg, PNG
 * for *.png (any other ending: PRT_ERR_USAGE, as cli_plot_check). Written to
 * a temporary file next to path, then renamed over it. */
prt_status cli_plot_figure(prt_context *ctx, const char *path, int w, int h,
                           void (*figure)(cli_canvas *c, const void *arg), const void *arg);

#endif
