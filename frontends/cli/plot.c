/* `parrots train --plot FILE`: the loss and accuracy curves as a picture, SVG or
 * PNG by the file name; `parrots plan --plot FILE`: live memory over the
 * instructions of a step. Each figure is one drawing routine over a tiny canvas
 * interface: the SVG canvas writes elements; the raster canvas draws
 * anti-aliased lines and markers and a built-in 5x8 bitmap font into an RGB
 * buffer, which is encoded as PNG with zlib (no image library needed). The
 * canvas and cli_plot_figure are shared with other figures via plot_impl.h. */
#define _POSIX_C_SOURCE 200809L
#include "frontends/cli/plot_impl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ---- the canvas ------------------------------------------------------------ */

/* plot_impl.h has the canvas; here it is just `canvas`. */
typedef cli_canvas canvas;

#define W 1100
#define H 470

/* ---- the SVG canvas ---- */

static void svg_color(char *b, uint32_t rgb) { snprintf(b, 8, "#%06x", rgb & 0xffffff); }

static void svg_line(canvas *c, double x0, double y0, double x1, double y1, double w, uint32_t rgb, bool dashed) {
    char col[8];
    svg_color(col, rgb);
    fprintf(c->svg, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" stroke-width=\"%.2f\"%s/>\n",
            x0, y0, x1, y1, col, w, dashed ? " stroke-dasharray=\"6 3\"" : "");
}

static void svg_rect(canvas *c, double x, double y, double w, double h, uint32_t fill, uint32_t stroke) {
    char f[8], s[8];
    svg_color(f, fill);
    svg_color(s, stroke);
    fprintf(c->svg, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\" stroke=\"%s\"/>\n", x, y,
            w, h, fill == 0xffffffffu ? "none" : f, stroke == 0xffffffffu ? "none" : s);
}

static void svg_dot(canvas *c, double x, double y, double r, uint32_t rgb) {
    char col[8];
    svg_color(col, rgb);
    fprintf(c->svg, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"%.2f\" fill=\"%s\"/>\n", x, y, r, col);
}

/* Font pixels of each text size: the raster font's cells are 6 x 8 * size. */
static int svg_px(int size) { return size >= 3 ? 20 : size == 2 ? 14 : 11; }

static double svg_text_width(const canvas *c, const char *s, int size) {
    (void)c;
    return 0.6 * svg_px(size) * (double)strlen(s);
}

static void svg_group(canvas *c, const char *id) {
    if (c->in_group) fputs("</g>\n", c->svg);
    c->in_group = id != NULL;
    if (id) fprintf(c->svg, "<g id=\"%s\">\n", id);
}

static void svg_text(canvas *c, double x, double y, const char *s, int size, int anchor, bool vertical, uint32_t rgb) {
    static const char *const anchors[] = {"start", "middle", "end"};
    char col[8];
    svg_color(col, rgb);
    fprintf(c->svg, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"%d\" text-anchor=\"%s\" fill=\"%s\"%s", x, y,
            svg_px(size), anchors[anchor], col, size >= 3 ? " font-weight=\"bold\"" : "");
    if (vertical) fprintf(c->svg, " transform=\"rotate(-90 %.2f %.2f)\"", x, y);
    fputc('>', c->svg);
    for (const char *p = s; *p; p++) {
        if (*p == '&') fputs("&amp;", c->svg);
        else if (*p == '<') fputs("&lt;", c->svg);
        else if (*p == '>') fputs("&gt;", c->svg);
        else fputc(*p, c->svg);
    }
    fputs("</text>\n", c->svg);
}

static void svg_clip(canvas *c, double x, double y, double w, double h) {
    if (c->in_clip) fputs("</g>\n", c->svg);
    c->in_clip = w > 0;
    if (!c->in_clip) return;
    c->n_clips++;
    fprintf(c->svg, "<clipPath id=\"clip%d\"><rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\"/></clipPath>\n"
                    "<g clip-path=\"url(#clip%d)\">\n", c->n_clips, x, y, w, h, c->n_clips);
}

/* ---- the raster canvas ---- */

static void blend(canvas *c, int x, int y, uint32_t rgb, double a) {
    if (a <= 0 || x < 0 || y < 0 || x >= c->w || y >= c->h) return;
    if (x < c->cx0 || x >= c->cx1 || y < c->cy0 || y >= c->cy1) return;
    if (a > 1) a = 1;
    unsigned char *p = c->px + 3 * ((size_t)y * (size_t)c->w + (size_t)x);
    for (int k = 0; k < 3; k++) {
        double src = (double)((rgb >> (16 - 8 * k)) & 0xff);
        p[k] = (unsigned char)lrint(p[k] * (1 - a) + src * a);
    }
}

static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Coverage from the distance of each pixel centre to the segment: cheap, smooth
 * anti-aliasing for any width. */
static void ras_line(canvas *c, double x0, double y0, double x1, double y1, double w, uint32_t rgb, bool dashed) {
    double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy, len = sqrt(len2), r = w / 2 + 1;
    int xa = (int)floor(fmin(x0, x1) - r), xb = (int)ceil(fmax(x0, x1) + r);
    int ya = (int)floor(fmin(y0, y1) - r), yb = (int)ceil(fmax(y0, y1) + r);
    xa = (int)clampd(xa, 0, c->w - 1), xb = (int)clampd(xb, 0, c->w - 1);
    ya = (int)clampd(ya, 0, c->h - 1), yb = (int)clampd(yb, 0, c->h - 1);
    for (int y = ya; y <= yb; y++)
        for (int x = xa; x <= xb; x++) {
            double px = x + 0.5 - x0, py = y + 0.5 - y0;
            double t = len2 > 0 ? clampd((px * dx + py * dy) / len2, 0, 1) : 0;
            if (dashed && fmod(t * len, 9.0) > 6.0) continue;
            double ex = px - t * dx, ey = py - t * dy, d = sqrt(ex * ex + ey * ey);
            blend(c, x, y, rgb, w / 2 + 0.5 - d);
        }
}

static void ras_rect(canvas *c, double x, double y, double w, double h, uint32_t fill, uint32_t stroke) {
    if (fill != 0xffffffffu)
        for (int yy = (int)lrint(y); yy < (int)lrint(y + h); yy++)
            for (int xx = (int)lrint(x); xx < (int)lrint(x + w); xx++) blend(c, xx, yy, fill, 1);
    if (stroke != 0xffffffffu) {
        double x1 = x + w, y1 = y + h;
        ras_line(c, x, y, x1, y, 1, stroke, false);
        ras_line(c, x1, y, x1, y1, 1, stroke, false);
        ras_line(c, x1, y1, x, y1, 1, stroke, false);
        ras_line(c, x, y1, x, y, 1, stroke, false);
    }
}

static void ras_dot(canvas *c, double x, double y, double r, uint32_t rgb) {
    for (int yy = (int)floor(y - r - 1); yy <= (int)ceil(y + r + 1); yy++)
        for (int xx = (int)floor(x - r - 1); xx <= (int)ceil(x + r + 1); xx++) {
            double dx = xx + 0.5 - x, dy = yy + 0.5 - y;
            blend(c, xx, yy, rgb, r + 0.5 - sqrt(dx * dx + dy * dy));
        }
}

/* 5 x 8 glyphs for ASCII 32..126, one byte per row (bit 4 = leftmost column);
 * rows 0-6 stand on the baseline, row 7 is the descender. Drawn for Parrots. */
static const unsigned char font[95][8] = {
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ' ' */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04, 0x00}, /* '!' */
    {0x0a, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* '"' */
    {0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a, 0x00}, /* '#' */
    {0x04, 0x0f, 0x14, 0x0e, 0x05, 0x1e, 0x04, 0x00}, /* '$' */
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, 0x00}, /* '%' */
    {0x0c, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0d, 0x00}, /* '&' */
    {0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ''' */
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00}, /* '(' */
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00}, /* ')' */
    {0x00, 0x04, 0x15, 0x0e, 0x15, 0x04, 0x00, 0x00}, /* '*' */
    {0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00, 0x00}, /* '+' */
    {0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c, 0x04, 0x08}, /* ',' */
    {0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x00}, /* '-' */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c, 0x00}, /* '.' */
    {0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10, 0x00}, /* '/' */
    {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e, 0x00}, /* '0' */
    {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00}, /* '1' */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f, 0x00}, /* '2' */
    {0x1e, 0x01, 0x01, 0x0e, 0x01, 0x01, 0x1e, 0x00}, /* '3' */
    {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02, 0x00}, /* '4' */
    {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e, 0x00}, /* '5' */
    {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e, 0x00}, /* '6' */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00}, /* '7' */
    {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e, 0x00}, /* '8' */
    {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c, 0x00}, /* '9' */
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00, 0x00}, /* ':' */
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x04, 0x08}, /* ';' */
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02, 0x00}, /* '<' */
    {0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00, 0x00}, /* '=' */
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08, 0x00}, /* '>' */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00}, /* '?' */
    {0x0e, 0x11, 0x17, 0x15, 0x17, 0x10, 0x0e, 0x00}, /* '@' */
    {0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11, 0x00}, /* 'A' */
    {0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e, 0x00}, /* 'B' */
    {0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e, 0x00}, /* 'C' */
    {0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c, 0x00}, /* 'D' */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f, 0x00}, /* 'E' */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10, 0x00}, /* 'F' */
    {0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f, 0x00}, /* 'G' */
    {0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11, 0x00}, /* 'H' */
    {0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00}, /* 'I' */
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c, 0x00}, /* 'J' */
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11, 0x00}, /* 'K' */
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f, 0x00}, /* 'L' */
    {0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11, 0x00}, /* 'M' */
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x00}, /* 'N' */
    {0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e, 0x00}, /* 'O' */
    {0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10, 0x00}, /* 'P' */
    {0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d, 0x00}, /* 'Q' */
    {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11, 0x00}, /* 'R' */
    {0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e, 0x00}, /* 'S' */
    {0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00}, /* 'T' */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e, 0x00}, /* 'U' */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04, 0x00}, /* 'V' */
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a, 0x00}, /* 'W' */
    {0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11, 0x00}, /* 'X' */
    {0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x04, 0x00}, /* 'Y' */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f, 0x00}, /* 'Z' */
    {0x0e, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0e, 0x00}, /* '[' */
    {0x10, 0x10, 0x08, 0x04, 0x02, 0x01, 0x01, 0x00}, /* 'backslash' */
    {0x0e, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0e, 0x00}, /* ']' */
    {0x04, 0x0a, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00}, /* '^' */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f}, /* '_' */
    {0x08, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* '`' */
    {0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f, 0x00}, /* 'a' */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1e, 0x00}, /* 'b' */
    {0x00, 0x00, 0x0e, 0x10, 0x10, 0x11, 0x0e, 0x00}, /* 'c' */
    {0x01, 0x01, 0x0d, 0x13, 0x11, 0x11, 0x0f, 0x00}, /* 'd' */
    {0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e, 0x00}, /* 'e' */
    {0x06, 0x09, 0x08, 0x1c, 0x08, 0x08, 0x08, 0x00}, /* 'f' */
    {0x00, 0x00, 0x0f, 0x11, 0x11, 0x0f, 0x01, 0x0e}, /* 'g' */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00}, /* 'h' */
    {0x04, 0x00, 0x0c, 0x04, 0x04, 0x04, 0x0e, 0x00}, /* 'i' */
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x12, 0x0c}, /* 'j' */
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00}, /* 'k' */
    {0x0c, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00}, /* 'l' */
    {0x00, 0x00, 0x1a, 0x15, 0x15, 0x11, 0x11, 0x00}, /* 'm' */
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00}, /* 'n' */
    {0x00, 0x00, 0x0e, 0x11, 0x11, 0x11, 0x0e, 0x00}, /* 'o' */
    {0x00, 0x00, 0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10}, /* 'p' */
    {0x00, 0x00, 0x0f, 0x11, 0x11, 0x0f, 0x01, 0x01}, /* 'q' */
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00}, /* 'r' */
    {0x00, 0x00, 0x0f, 0x10, 0x0e, 0x01, 0x1e, 0x00}, /* 's' */
    {0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06, 0x00}, /* 't' */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0d, 0x00}, /* 'u' */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0a, 0x04, 0x00}, /* 'v' */
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0a, 0x00}, /* 'w' */
    {0x00, 0x00, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x00}, /* 'x' */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x0e}, /* 'y' */
    {0x00, 0x00, 0x1f, 0x02, 0x04, 0x08, 0x1f, 0x00}, /* 'z' */
    {0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02, 0x00}, /* '{' */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00}, /* '|' */
    {0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08, 0x00}, /* '}' */
    {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00}, /* '~' */
};

static void ras_text(canvas *c, double x, double y, const char *s, int size, int anchor, bool vertical, uint32_t rgb) {
    int sc = size, adv = 6 * sc;
    double len = (double)strlen(s) * adv - sc;
    double start = anchor == CLI_ANCHOR_START ? 0 : anchor == CLI_ANCHOR_MIDDLE ? -len / 2 : -len;
    for (size_t i = 0; s[i]; i++) {
        unsigned ch = (unsigned char)s[i];
        const unsigned char *gl = font[ch >= 32 && ch < 127 ? ch - 32 : '?' - 32];
        double off = start + (double)i * adv;
        for (int row = 0; row < 8; row++)
            for (int col = 0; col < 5; col++) {
                if (!(gl[row] >> (4 - col) & 1)) continue;
                /* glyph pixel (col, row) relative to the baseline at row 7 */
                double u = off + col * sc, v = (row - 7) * sc;
                for (int a = 0; a < sc; a++)
                    for (int b = 0; b < sc; b++) {
                        if (vertical)
                            blend(c, (int)lrint(x + v + b), (int)lrint(y - u - a - 1), rgb, 1);
                        else
                            blend(c, (int)lrint(x + u + a), (int)lrint(y + v + b), rgb, 1);
                    }
            }
    }
}

static double ras_text_width(const canvas *c, const char *s, int size) {
    (void)c;
    size_t n = strlen(s);
    return n ? (double)n * 6 * size - size : 0;
}

static void ras_group(canvas *c, const char *id) { (void)c, (void)id; }

static void ras_clip(canvas *c, double x, double y, double w, double h) {
    if (w <= 0) c->cx0 = 0, c->cy0 = 0, c->cx1 = c->w, c->cy1 = c->h;
    else c->cx0 = x, c->cy0 = y, c->cx1 = x + w, c->cy1 = y + h;
}

/* ---- the figure ------------------------------------------------------------ */

typedef struct axis {
    double lo, hi, step;
} axis;

/* Ticks at 1, 2 or 5 times a power of ten, about n of them over [lo, hi]. */
static axis nice_axis(double lo, double hi, int n, bool snap) {
    if (!(hi > lo)) {
        double m = fabs(lo) > 0 ? fabs(lo) * 0.1 : 1;
        lo -= m, hi += m;
    }
    double raw = (hi - lo) / n, p = pow(10, floor(log10(raw))), f = raw / p;
    double step = (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
    axis a = {lo, hi, step};
    if (snap) {
        a.lo = floor(lo / step + 1e-9) * step;
        a.hi = ceil(hi / step - 1e-9) * step;
    }
    return a;
}

static void tick_label(char *b, size_t cap, double v, double step) {
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (dec > 6) dec = 6;
    snprintf(b, cap, "%.*f", dec, fabs(v) < step * 1e-6 ? 0.0 : v);
}

typedef struct series {
    const char *name;
    const double *x, *y;
    int n;
    uint32_t rgb;
    double width;
    bool dots, dashed;
} series;

typedef struct panel {
    double left, top, right, bottom;
    axis xa, ya;
} panel;

static double px_x(const panel *p, double x) { return p->left + (x - p->xa.lo) / (p->xa.hi - p->xa.lo) * (p->right - p->left); }
static double px_y(const panel *p, double y) { return p->bottom - (y - p->ya.lo) / (p->ya.hi - p->ya.lo) * (p->bottom - p->top); }

/* Curve samples (vertices and points along the segments) inside a box. */
static int covered(const panel *p, const series *ss, int n, double x0, double y0, double x1, double y1) {
    int hits = 0;
    for (int k = 0; k < n; k++)
        for (int i = 0; i < ss[k].n; i++) {
            if (!isfinite(ss[k].x[i]) || !isfinite(ss[k].y[i])) continue;
            double x = px_x(p, ss[k].x[i]), y = px_y(p, ss[k].y[i]);
            int parts = i > 0 && isfinite(ss[k].x[i - 1]) && isfinite(ss[k].y[i - 1]) ? 16 : 1;
            double px = parts > 1 ? px_x(p, ss[k].x[i - 1]) : x, py = parts > 1 ? px_y(p, ss[k].y[i - 1]) : y;
            for (int j = 0; j < parts; j++) {
                double t = (double)j / parts, sx = x + (px - x) * t, sy = y + (py - y) * t;
                hits += sx >= x0 - 4 && sx <= x1 + 4 && sy >= y0 - 4 && sy <= y1 + 4;
            }
        }
    return hits;
}

/* The legend goes in the corner the curves cross least (ties: the preferred one). */
static void place_legend(const panel *p, const series *ss, int n, double bw, double bh, bool prefer_bottom,
                         double *bx, double *by) {
    double right = p->right - bw - 10, left = p->left + 10, top = p->top + 10, bottom = p->bottom - bh - 10;
    double cand[4][2] = {{right, prefer_bottom ? bottom : top}, {right, prefer_bottom ? top : bottom},
                         {left, prefer_bottom ? bottom : top}, {left, prefer_bottom ? top : bottom}};
    int best = -1, best_hits = 0;
    for (int k = 0; k < 4; k++) {
        int h = covered(p, ss, n, cand[k][0], cand[k][1], cand[k][0] + bw, cand[k][1] + bh);
        if (best < 0 || h < best_hits) best = k, best_hits = h;
    }
    *bx = cand[best][0], *by = cand[best][1];
}

static void draw_panel(canvas *c, panel *p, const char *heading, const char *ylabel, const series *ss, int n,
                       bool legend_bottom) {
    const uint32_t grid = 0xe6e6e6, ink = 0x333333;
    char b[64];
    c->rect(c, p->left, p->top, p->right - p->left, p->bottom - p->top, 0xffffff, 0xffffffffu);
    for (double v = ceil(p->ya.lo / p->ya.step - 1e-9) * p->ya.step; v <= p->ya.hi + p->ya.step * 1e-6; v += p->ya.step) {
        double y = px_y(p, v);
        c->line(c, p->left, y, p->right, y, 1, grid, false);
        tick_label(b, sizeof b, v, p->ya.step);
        c->text(c, p->left - 8, y + 7, b, 2, CLI_ANCHOR_END, false, ink);
    }
    for (double v = ceil(p->xa.lo / p->xa.step - 1e-9) * p->xa.step; v <= p->xa.hi + p->xa.step * 1e-6; v += p->xa.step) {
        double x = px_x(p, v);
        c->line(c, x, p->top, x, p->bottom, 1, grid, false);
        c->line(c, x, p->bottom, x, p->bottom + 5, 1, ink, false);
        tick_label(b, sizeof b, v, p->xa.step);
        c->text(c, x, p->bottom + 24, b, 2, CLI_ANCHOR_MIDDLE, false, ink);
    }
    c->rect(c, p->left, p->top, p->right - p->left, p->bottom - p->top, 0xffffffffu, ink);
    c->text(c, (p->left + p->right) / 2, p->top - 12, heading, 2, CLI_ANCHOR_MIDDLE, false, 0x000000);
    c->text(c, (p->left + p->right) / 2, p->bottom + 52, "epoch", 2, CLI_ANCHOR_MIDDLE, false, ink);
    c->text(c, p->left - 62, (p->top + p->bottom) / 2, ylabel, 2, CLI_ANCHOR_MIDDLE, true, ink);
    /* a few pixels of slack so that markers on the edges stay whole */
    c->clip(c, p->left - 5, p->top - 5, p->right - p->left + 10, p->bottom - p->top + 10);
    for (int k = 0; k < n; k++) {
        const series *s = &ss[k];
        double lx = 0, ly = 0;
        bool have = false;
        for (int i = 0; i < s->n; i++) {
            if (!isfinite(s->x[i]) || !isfinite(s->y[i])) {
                have = false;
                continue;
            }
            double x = px_x(p, s->x[i]), y = px_y(p, s->y[i]);
            if (have) c->line(c, lx, ly, x, y, s->width, s->rgb, s->dashed);
            if (s->dots) c->dot(c, x, y, 3.5, s->rgb);
            lx = x, ly = y, have = true;
        }
    }
    c->clip(c, 0, 0, 0, 0);
    /* legend: a box in the top-right (loss) or bottom-right (accuracy) corner */
    int shown = 0, longest = 0;
    for (int k = 0; k < n; k++)
        if (ss[k].n > 0) {
            shown++;
            if ((int)strlen(ss[k].name) > longest) longest = (int)strlen(ss[k].name);
        }
    if (!shown) return;
    double bw = 44 + 12.0 * longest, bh = 10 + 22.0 * shown, bx, by;
    place_legend(p, ss, n, bw, bh, legend_bottom, &bx, &by);
    c->rect(c, bx, by, bw, bh, 0xffffff, 0xbbbbbb);
    int row = 0;
    for (int k = 0; k < n; k++) {
        if (ss[k].n == 0) continue;
        double y = by + 16 + 22.0 * row++;
        c->line(c, bx + 8, y, bx + 32, y, ss[k].width < 2 ? 2 : ss[k].width, ss[k].rgb, ss[k].dashed);
        if (ss[k].dots) c->dot(c, bx + 20, y, 3.5, ss[k].rgb);
        c->text(c, bx + 38, y + 7, ss[k].name, 2, CLI_ANCHOR_START, false, ink);
    }
}

static void range_of(const double *v, int n, double *lo, double *hi) {
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) *lo = fmin(*lo, v[i]), *hi = fmax(*hi, v[i]);
}

static void draw(canvas *c, const cli_curves *cv) {
    const uint32_t blue = 0x1f77b4, light = 0xa6c8e6, orange = 0xe8710a;
    c->rect(c, 0, 0, W, H, 0xffffff, 0xffffffffu);
    c->text(c, W / 2.0, 34, cv->title ? cv->title : "training", 3, CLI_ANCHOR_MIDDLE, false, 0x000000);
    double xmax = (double)(cv->epochs > 0 ? cv->epochs : 1);
    if (cv->n_steps && cv->step_x[cv->n_steps - 1] > xmax) xmax = cv->step_x[cv->n_steps - 1];
    axis xa = nice_axis(0, xmax, xmax <= 12 ? (int)ceil(xmax) : 8, false);
    if (xmax <= 12) xa.step = 1;
    xa.lo = 0, xa.hi = xmax;

    double *ex = malloc(sizeof(double) * (size_t)(cv->n_epochs ? cv->n_epochs : 1));
    if (!ex) return;
    for (int e = 0; e < cv->n_epochs; e++) ex[e] = e + 1;

    double lo = INFINITY, hi = -INFINITY;
    range_of(cv->step_loss, cv->n_steps, &lo, &hi);
    range_of(cv->ep_train_loss, cv->n_epochs, &lo, &hi);
    range_of(cv->ep_test_loss, cv->n_epochs, &lo, &hi);
    if (!isfinite(lo)) lo = 0, hi = 1;
    panel pl = {90, 78, 530, 378, xa, nice_axis(0, hi * 1.04, 6, true)};
    series loss[] = {
        {"train loss (logged steps)", cv->step_x, cv->step_loss, cv->n_steps, light, 1.2, false, false},
        {"train loss (epoch mean)", ex, cv->ep_train_loss, cv->n_epochs, blue, 2.2, true, false},
        {"test loss", ex, cv->ep_test_loss, cv->n_epochs, orange, 2.2, true, true},
    };
    draw_panel(c, &pl, "Loss", "cross-entropy", loss, 3, false);

    lo = INFINITY, hi = -INFINITY;
    range_of(cv->ep_train_acc, cv->n_epochs, &lo, &hi);
    range_of(cv->ep_test_acc, cv->n_epochs, &lo, &hi);
    if (!isfinite(lo)) lo = 0, hi = 1;
    /* a margin so that markers on the extremes stay whole */
    double pad = (hi - lo) * 0.04;
    axis ya = nice_axis(lo - pad, hi + pad, 6, true);
    if (ya.lo < 0) ya.lo = 0;
    if (ya.hi > 1) ya.hi = 1;
    if (!(ya.hi > ya.lo)) ya = (axis){0, 1, 0.2};
    panel pa = {640, 78, 1080, 378, xa, ya};
    series acc[] = {
        {"train accuracy", ex, cv->ep_train_acc, cv->n_epochs, blue, 2.2, true, false},
        {"test accuracy", ex, cv->ep_test_acc, cv->n_epochs, orange, 2.2, true, true},
    };
    draw_panel(c, &pa, "Accuracy", "fraction correct", acc, 2, true);
    free(ex);
}

/* ---- the memory figure ------------------------------------------------------ */

static const char *const mem_phase_names[] = {"forward", "backward", "update"};
static const uint32_t mem_phase_fill[] = {0xeaf2fb, 0xfdf0e2, 0xe6f4e6};

/* The text's width in pixels, about: SVG at 14 px, the bitmap font at scale 2. */
static double text_width(const char *s) { return 12.0 * (double)strlen(s); }

static void draw_memory(canvas *c, const void *arg) {
    const cli_memory_curve *m = arg;
    const uint32_t ink = 0x333333, grid = 0xe6e6e6, line = 0x1f77b4, area = 0xb9d3ea, limit = 0xd62728,
                   recomp = 0xe8710a, none = 0xffffffffu;
    char b[96];
    c->rect(c, 0, 0, W, H, 0xffffff, none);
    c->text(c, W / 2.0, 34, m->title ? m->title : "memory", 3, CLI_ANCHOR_MIDDLE, false, 0x000000);
    int n = m->n > 0 ? m->n : 1;
    size_t most = m->arena_bytes;
    bool any_recompute = false;
    for (int i = 0; i < m->n; i++) {
        if (m->live[i] > most) most = m->live[i];
        if (m->recompute && m->recompute[i]) any_recompute = true;
    }
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    double unit = 1;
    while (u < 4 && (double)most >= unit * 1024.0) unit *= 1024.0, u++;
    axis xa = nice_axis(0, n, 8, false);
    if (xa.step < 1) xa.step = 1;
    xa.lo = 0, xa.hi = n;
    /* headroom above the arena line for the phase names and the line's label */
    axis ya = nice_axis(0, (double)most / unit * 1.25, 6, true);
    ya.lo = 0;
    panel p = {100, 92, 1070, 392, xa, ya};
    double pw = p.right - p.left, ph = p.bottom - p.top;

    /* legend: one row under the title */
    double lx = p.left;
    c->rect(c, lx, 52, 24, 12, area, line);
    c->text(c, lx + 30, 63, "live arena bytes", 2, CLI_ANCHOR_START, false, ink);
    lx += 30 + text_width("live arena bytes") + 24;
    c->line(c, lx, 58, lx + 24, 58, 2, limit, true);
    c->text(c, lx + 30, 63, "planned arena", 2, CLI_ANCHOR_START, false, ink);
    lx += 30 + text_width("planned arena") + 24;
    if (any_recompute) {
        c->line(c, lx + 12, 52, lx + 12, 64, 2, recomp, false);
        c->text(c, lx + 30, 63, "recompute instruction", 2, CLI_ANCHOR_START, false, ink);
    }

    /* phase bands, separators between them */
    c->rect(c, p.left, p.top, pw, ph, 0xffffff, none);
    bool wide[3] = {false, false, false}, labelled[3] = {false, false, false};
    for (int pass = 0; pass < 2; pass++)
        for (int s = 0; s < m->n;) {
            int e = s, ph_ = m->phase[s] < 3 ? m->phase[s] : 0;
            while (e + 1 < m->n && m->phase[e + 1] == m->phase[s]) e++;
            double x0 = px_x(&p, s), x1 = px_x(&p, e + 1);
            const char *name = mem_phase_names[ph_];
            if (pass == 0) {
                c->rect(c, x0, p.top, x1 - x0, ph, mem_phase_fill[ph_], none);
                if (s > 0) c->line(c, x0, p.top, x0, p.bottom, 1, 0x999999, true);
                if (x1 - x0 >= text_width(name) + 8) wide[ph_] = true;
            } else if (x1 - x0 >= text_width(name) + 8) {
                c->text(c, (x0 + x1) / 2, p.top + 20, name, 2, CLI_ANCHOR_MIDDLE, false, 0x555555);
            } else if (!wide[ph_] && !labelled[ph_]) {
                /* a narrow phase (the one update call): labelled on a second row beside its band */
                labelled[ph_] = true;
                if (x1 + text_width(name) + 4 <= p.right)
                    c->text(c, x1 + 4, p.top + 40, name, 2, CLI_ANCHOR_START, false, 0x555555);
                else
                    c->text(c, x0 - 4, p.top + 40, name, 2, CLI_ANCHOR_END, false, 0x555555);
            }
            s = e + 1;
        }

    /* grid and ticks */
    for (double v = 0; v <= ya.hi + ya.step * 1e-6; v += ya.step) {
        double y = px_y(&p, v);
        c->line(c, p.left, y, p.right, y, 1, grid, false);
        tick_label(b, sizeof b, v, ya.step);
        c->text(c, p.left - 8, y + 7, b, 2, CLI_ANCHOR_END, false, ink);
    }
    for (double v = 0; v <= xa.hi + xa.step * 1e-6; v += xa.step) {
        double x = px_x(&p, v);
        c->line(c, x, p.bottom, x, p.bottom + 5, 1, ink, false);
        tick_label(b, sizeof b, v, xa.step);
        c->text(c, x, p.bottom + 24, b, 2, CLI_ANCHOR_MIDDLE, false, ink);
    }

    /* the live bytes: per pixel column the most bytes live at any of its
     * instructions (so no peak disappears), drawn as a filled step curve */
    c->clip(c, p.left, p.top - 2, pw, ph + 4);
    int cols = (int)pw;
    double prev_y = p.bottom;
    for (int j = 0; j < cols && m->n > 0;) {
        size_t v = 0;
        int k = j;
        for (; k < cols; k++) {
            int i0 = (int)((double)k * n / cols), i1 = (int)((double)(k + 1) * n / cols - 1e-9);
            if (i1 < i0) i1 = i0;
            if (i1 >= m->n) i1 = m->n - 1;
            size_t mx = 0;
            for (int i = i0; i <= i1; i++)
                if (m->live[i] > mx) mx = m->live[i];
            if (k == j) v = mx;
            else if (mx != v) break;
        }
        double x0 = p.left + j, x1 = p.left + k, y = px_y(&p, (double)v / unit);
        c->rect(c, x0, y, x1 - x0, p.bottom - y, area, none);
        c->line(c, x0, prev_y, x0, y, 1.5, line, false);
        c->line(c, x0, y, x1, y, 1.5, line, false);
        prev_y = y;
        j = k;
    }
    /* RECOMPUTE instructions: ticks along the bottom, one per pixel column */
    if (any_recompute) {
        int last = -1;
        for (int i = 0; i < m->n; i++) {
            if (!m->recompute[i]) continue;
            int x = (int)px_x(&p, i + 0.5);
            if (x == last) continue;
            last = x;
            c->line(c, x, p.bottom - 10, x, p.bottom, 1.5, recomp, false);
        }
    }
    c->clip(c, 0, 0, 0, 0);

    /* the planned arena and the peak */
    char sz[32];
    double ya_arena = px_y(&p, (double)m->arena_bytes / unit);
    c->line(c, p.left, ya_arena, p.right, ya_arena, 2, limit, true);
    snprintf(b, sizeof b, "planned arena %.2f %s", (double)m->arena_bytes / unit, units[u]);
    c->text(c, p.left + 6, ya_arena - 6, b, 2, CLI_ANCHOR_START, false, limit); /* above the line: the peak label goes below */
    if (m->peak_pc >= 0 && m->peak_pc < m->n) {
        double x = px_x(&p, m->peak_pc + 0.5), y = px_y(&p, (double)m->live[m->peak_pc] / unit);
        c->dot(c, x, y, 4, 0x000000);
        snprintf(sz, sizeof sz, "%.2f %s", (double)m->live[m->peak_pc] / unit, units[u]);
        snprintf(b, sizeof b, "peak: instruction %d, %s", m->peak_pc, sz);
        bool right = x + 10 + text_width(b) <= p.right;
        c->text(c, right ? x + 8 : x - 8, y + 20, b, 2, right ? CLI_ANCHOR_START : CLI_ANCHOR_END, false, 0x000000);
    }
    c->rect(c, p.left, p.top, pw, ph, none, ink);
    c->text(c, (p.left + p.right) / 2, p.bottom + 52, "instruction", 2, CLI_ANCHOR_MIDDLE, false, ink);
    snprintf(b, sizeof b, "live arena (%s)", units[u]);
    c->text(c, p.left - 70, (p.top + p.bottom) / 2, b, 2, CLI_ANCHOR_MIDDLE, true, ink);
}

/* ---- output ---------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    if (n < k) return false;
    for (size_t i = 0; i < k; i++)
        if ((s[n - k + i] | 0x20) != suffix[i]) return false;
    return true;
}

static void be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8),
    p[3] = (unsigned char)v;
}

static bool png_chunk(FILE *f, const char *type, const unsigned char *data, size_t n) {
    unsigned char b[4];
    be32(b, (uint32_t)n);
    uLong crc = crc32(0, (const Bytef *)type, 4);
    /* zlib's crc32 of a NULL buffer returns the initial value: skip it for empty chunks */
    if (n) crc = crc32_z(crc, data, n);
    bool ok = fwrite(b, 1, 4, f) == 4 && fwrite(type, 1, 4, f) == 4 && (n == 0 || fwrite(data, 1, n, f) == n);
    be32(b, (uint32_t)crc);
    return ok && fwrite(b, 1, 4, f) == 4;
}

/* PNG: RGB 8-bit, no interlace; each row gets filter 0 (none) and zlib does the
 * rest: flat colours and long runs compress well. */
static prt_status write_png(prt_context *ctx, const char *path, FILE *f, const unsigned char *px, int w, int h) {
    size_t row = 1 + 3 * (size_t)w, raw_n = row * (size_t)h;
    unsigned char *raw = malloc(raw_n);
    uLongf zn = compressBound((uLong)raw_n);
    unsigned char *z = malloc(zn);
    prt_status st = PRT_OK;
    if (!raw || !z) {
        st = prt_error(ctx, PRT_ERR_NOMEM, "%s: out of memory encoding the PNG", path);
        goto done;
    }
    for (int y = 0; y < h; y++) {
        raw[row * (size_t)y] = 0;
        memcpy(raw + row * (size_t)y + 1, px + 3 * (size_t)w * (size_t)y, 3 * (size_t)w);
    }
    if (compress2(z, &zn, raw, (uLong)raw_n, 9) != Z_OK) {
        st = prt_error(ctx, PRT_ERR_BACKEND, "%s: zlib could not compress the image", path);
        goto done;
    }
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char ihdr[13];
    be32(ihdr, (uint32_t)w);
    be32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8, ihdr[9] = 2, ihdr[10] = 0, ihdr[11] = 0, ihdr[12] = 0;
    if (fwrite(sig, 1, 8, f) != 8 || !png_chunk(f, "IHDR", ihdr, 13) || !png_chunk(f, "IDAT", z, zn) ||
        !png_chunk(f, "IEND", NULL, 0))
        st = prt_error(ctx, PRT_ERR_IO, "%s: cannot write the plot: %s", path, strerror(errno));
done:
    free(raw);
    free(z);
    return st;
}

prt_status cli_plot_check(prt_context *ctx, const char *path) {
    if (!ends_with(path, ".png") && !ends_with(path, ".svg"))
        return prt_error(ctx, PRT_ERR_USAGE, "--plot %s: the file name must end in .svg or .png", path);
    return PRT_OK;
}

static void draw_curves(canvas *c, const void *arg) { draw(c, arg); }

/* Draws a figure into a temporary file next to path, then renames it over path. */
prt_status cli_plot_figure(prt_context *ctx, const char *path, int w, int h,
                           void (*figure)(cli_canvas *c, const void *arg), const void *arg) {
    bool png = ends_with(path, ".png");
    PRT_CHECK(cli_plot_check(ctx, path));
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) return prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
    snprintf(tmp, plen + 16, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        prt_status st = prt_error(ctx, PRT_ERR_IO, "%s: cannot create the plot: %s", path, strerror(errno));
        free(tmp);
        return st;
    }
    (void)fchmod(fd, 0644);
    FILE *f = fdopen(fd, "wb");
    prt_status st = PRT_OK;
    canvas c = {0};
    if (!f) {
        close(fd);
        st = prt_error(ctx, PRT_ERR_IO, "%s: cannot create the plot: %s", path, strerror(errno));
        goto done;
    }
    if (png) {
        c = (canvas){.line = ras_line, .rect = ras_rect, .dot = ras_dot, .text = ras_text, .clip = ras_clip,
                     .group = ras_group, .text_width = ras_text_width, .w = w, .h = h, .cx1 = w, .cy1 = h};
        c.px = malloc(3 * (size_t)w * (size_t)h);
        if (!c.px) {
            st = prt_error(ctx, PRT_ERR_NOMEM, "out of memory");
            goto done;
        }
        memset(c.px, 0xff, 3 * (size_t)w * (size_t)h);
        figure(&c, arg);
        st = write_png(ctx, path, f, c.px, w, h);
    } else {
        c = (canvas){.line = svg_line, .rect = svg_rect, .dot = svg_dot, .text = svg_text, .clip = svg_clip,
                     .group = svg_group, .text_width = svg_text_width, .svg = f, .w = w, .h = h};
        fprintf(f,
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n",
                w, h, w, h);
        figure(&c, arg);
        if (c.in_clip) svg_clip(&c, 0, 0, 0, 0);
        if (c.in_group) svg_group(&c, NULL);
        fputs("</svg>\n", f);
    }
    if (st == PRT_OK && (fflush(f) != 0 || ferror(f)))
        st = prt_error(ctx, PRT_ERR_IO, "%s: cannot write the plot: %s", path, strerror(errno));
done:
    if (f && fclose(f) != 0 && st == PRT_OK)
        st = prt_error(ctx, PRT_ERR_IO, "%s: cannot write the plot: %s", path, strerror(errno));
    if (st == PRT_OK && rename(tmp, path) != 0)
        st = prt_error(ctx, PRT_ERR_IO, "%s: cannot write the plot: %s", path, strerror(errno));
    if (st != PRT_OK) unlink(tmp);
    free(c.px);
    free(tmp);
    return st;
}

prt_status cli_plot_write(prt_context *ctx, const char *path, const cli_curves *cv) {
    return cli_plot_figure(ctx, path, W, H, draw_curves, cv);
}

prt_status cli_plot_memory_write(prt_context *ctx, const char *path, const cli_memory_curve *m) {
    return cli_plot_figure(ctx, path, W, H, draw_memory, m);
}
