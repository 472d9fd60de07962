/* Convolutions: the driver that generated code calls for every conv kernel
 * (src/ir/ops/conv.rs has the relation; schedule::ConvKernel the call).
 * Included by rt.c in a built executable; nnc's build script compiles it
 * on its own too (baseline, for training, and for this machine, as
 * `nnc_c_conv`, so `nnc predict` runs a build's very code).
 *
 * NHWC images x[batch, img.., cin], HWIO kernels w[win.., cin/groups, cout],
 * outputs y[batch, out.., cout], all dense; 1- and 2-D convolutions come
 * padded to 3-D with leading size-1 dims. The three roles are products on
 * the GEMM path over tiles of output pixels whose patch rows (im2col, row
 * = window offset-major, channel-minor, as w's leading dims) are packed
 * into a per-thread scratch that stays in cache; the whole patch matrix is
 * never built:
 *   forward      y[tile]  = P[tile] x W_g
 *   input grad   dP[tile] = dY[tile] x W_g^T, then added back (col2im);
 *                at stride 1 and 64+ channels per group, a forward product
 *                of dY with the flipped kernel instead
 *   filter grad  dW_g[k range] += P[tile, k range]^T x dY[tile]
 * A 1x1 window with stride 1 and no padding needs no patches: the image
 * rows are the patch rows. Where those products would be thin (few output
 * channels, or a short reduction: a first layer over one channel), the
 * scheduler asks for the direct kernels (`direct`): loops over the window
 * with a register tile of output channels. Depthwise convolutions (one
 * channel in and out per group) are direct loops over contiguous channels
 * instead. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef NNC_INTERNAL
#define NNC_INTERNAL
#endif
#ifndef NNC_CONV_NAME
#define NNC_CONV_NAME nnc_conv_run
#endif

typedef void (*nnc_sgemm_fn)(const float *a, const float *b, float *c, int64_t batch, int64_t m, int64_t n,
                             int64_t k, int64_t a_bs, int64_t a_rs, int64_t a_cs, int64_t b_bs, int64_t b_rs,
                             int64_t b_cs, int64_t c_bs, int64_t c_rs, int64_t c_cs);

/* The descriptor schedule::ConvGeom::words writes, word for word. */
typedef struct {
    int64_t role, batch, cin, cout, groups, img[3], win[3], out[3], str[3], pad[3], dil[3];
    /* Images, kernel-matrix rows or output channels per unit. */
    int64_t block;
    /* Nonzero: the direct kernels below instead of products (the
     * scheduler's choice, ConvGeom::direct). */
    int64_t direct;
    /* Nonzero: the kernel gradient's units are blocks of images, unit u
     * writing its own whole copy of dW at w + u * kernel size (the
     * scheduler sums them); zero: units are kernel rows. */
    int64_t parts;
} nnc_conv_desc;

enum { NNC_CONV_FORWARD = 0, NNC_CONV_INPUT_GRAD = 1, NNC_CONV_FILTER_GRAD = 2 };

/* Grown once per thread to the largest tile it packs (slot 0) and the
 * largest flipped kernel (slot 1); reused. */
static _Thread_local float *conv_scratch[2];
static _Thread_local size_t conv_scratch_len[2];

static float *scratch_in(int slot, size_t n) {
    if (n > conv_scratch_len[slot]) {
        float *p = realloc(conv_scratch[slot], n * sizeof(float));
        if (!p) abort();
        conv_scratch[slot] = p;
        conv_scratch_len[slot] = n;
    }
    return conv_scratch[slot];
}

static float *scratch(size_t n) { return scratch_in(0, n); }

typedef struct {
    const nnc_conv_desc *d;
    int64_t cig, cog, offsets, kdim, pixels; /* per image: output pixels */
    int64_t img_elems, out_elems;
} geom;

static geom geom_of(const nnc_conv_desc *d) {
    geom g;
    g.d = d;
    g.cig = d->cin / d->groups;
    g.cog = d->cout / d->groups;
    g.offsets = d->win[0] * d->win[1] * d->win[2];
    g.kdim = g.offsets * g.cig;
    g.pixels = d->out[0] * d->out[1] * d->out[2];
    g.img_elems = d->img[0] * d->img[1] * d->img[2] * d->cin;
    g.out_elems = g.pixels * d->cout;
    return g;
}

static int pointwise(const nnc_conv_desc *d) {
    for (int i = 0; i < 3; i++)
        if (d->win[i] != 1 || d->str[i] != 1 || d->pad[i] != 0) return 0;
    return 1;
}

/* Short runs (a few channels) are the common case: plain loops, which the
 * compiler vectorises, instead of a library call per run. */
static inline void copy_run(float *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = src[i];
}

static inline void zero_run(float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = 0.0f;
}

static inline void add_run(float *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}

/* An output pixel: batch entry and position; stepped row-major so the
 * packing loops divide only once per tile. */
typedef struct {
    int64_t b, o[3];
} pixel;

static pixel pixel_at(const geom *g, int64_t q) {
    const nnc_conv_desc *d = g->d;
    int64_t p = q % g->pixels;
    pixel px = {q / g->pixels, {p / (d->out[1] * d->out[2]), p / d->out[2] % d->out[1], p % d->out[2]}};
    return px;
}

static void pixel_next(const geom *g, pixel *px) {
    const int64_t *out = g->d->out;
    if (++px->o[2] < out[2]) return;
    px->o[2] = 0;
    if (++px->o[1] < out[1]) return;
    px->o[1] = 0;
    if (++px->o[0] < out[0]) return;
    px->o[0] = 0;
    px->b++;
}

static void offset_of(const nnc_conv_desc *d, int64_t off, int64_t k[3]) {
    k[0] = off / (d->win[1] * d->win[2]);
    k[1] = off / d->win[2] % d->win[1];
    k[2] = off % d->win[2];
}

static void offset_next(const nnc_conv_desc *d, int64_t k[3]) {
    if (++k[2] < d->win[2]) return;
    k[2] = 0;
    if (++k[1] < d->win[1]) return;
    k[1] = 0;
    k[0]++;
}

/* Element offset of the input pixel that window offset k of pixel px
 * reads, or -1 in the padding. */
static inline int64_t source(const nnc_conv_desc *d, const pixel *px, const int64_t k[3]) {
    int64_t at = px->b;
    for (int i = 0; i < 3; i++) {
        int64_t pos = px->o[i] * d->str[i] + k[i] * d->dil[i] - d->pad[i];
        if (pos < 0 || pos >= d->img[i]) return -1;
        at = at * d->img[i] + pos;
    }
    return at * d->cin;
}

/* With one group and no dilation along the last dim, the window offsets
 * along it read one contiguous run of the image per (k0, k1): that run
 * is copied whole (`pack_runs`). */
static int runs_contiguous(const nnc_conv_desc *d) { return d->groups == 1 && d->dil[2] == 1; }

/* Window rows (k0, k1 pairs) the run packer handles; larger windows take
 * the general path. */
#define MAX_RUNS 64

/* `pack` with one group and undilated last dims, the columns of window
 * rows [j0, j1) (a window row: one (k0, k1) pair of offsets): pixels that
 * share their batch entry and leading positions (a segment along the last
 * output dim) read the same image rows, found once per segment; each
 * window row is then one contiguous run of the image per pixel. */
static void pack_runs(const geom *g, const float *x, int64_t q0, int64_t rows, int64_t j0, int64_t j1, float *p) {
    const nnc_conv_desc *d = g->d;
    int64_t w2 = d->win[2], c = d->cin, nrows = j1 - j0, kw = nrows * w2 * c;
    const float *src[MAX_RUNS];
    pixel px = pixel_at(g, q0);
    for (int64_t r = 0; r < rows;) {
        int64_t seg = d->out[2] - px.o[2];
        if (seg > rows - r) seg = rows - r;
        for (int64_t j = 0; j < nrows; j++) {
            int64_t pos0 = px.o[0] * d->str[0] + (j0 + j) / d->win[1] * d->dil[0] - d->pad[0];
            int64_t pos1 = px.o[1] * d->str[1] + (j0 + j) % d->win[1] * d->dil[1] - d->pad[1];
            int valid = pos0 >= 0 && pos0 < d->img[0] && pos1 >= 0 && pos1 < d->img[1];
            src[j] = valid ? x + ((px.b * d->img[0] + pos0) * d->img[1] + pos1) * d->img[2] * c : NULL;
        }
        for (int64_t i = 0; i < seg; i++) {
            int64_t o2 = px.o[2] + i, start = o2 * d->str[2] - d->pad[2];
            int64_t lo = start < 0 ? -start : 0;
            int64_t hi = d->img[2] - start < w2 ? d->img[2] - start : w2;
            float *row = p + (r + i) * kw;
            for (int64_t j = 0; j < nrows; j++) {
                float *dst = row + j * w2 * c;
                if (!src[j] || lo >= hi) {
                    zero_run(dst, w2 * c);
                    continue;
                }
                zero_run(dst, lo * c);
                copy_run(dst + lo * c, src[j] + (start + lo) * c, (hi - lo) * c);
                zero_run(dst + hi * c, (w2 - hi) * c);
            }
        }
        r += seg;
        px.o[2] += seg - 1;
        pixel_next(g, &px);
    }
}

/* Patch rows of pixels q0..q0+rows for group `grp`, columns [k0, k1) of
 * the kdim = offsets x cig columns, into p (row stride k1 - k0). */
static void pack(const geom *g, const float *x, int64_t grp, int64_t q0, int64_t rows, int64_t k0, int64_t k1,
                 float *p) {
    const nnc_conv_desc *d = g->d;
    int64_t cig = g->cig, kw = k1 - k0;
    pixel px = pixel_at(g, q0);
    int64_t run = d->win[2] * d->cin;
    if (runs_contiguous(d) && k0 % run == 0 && k1 % run == 0 && d->win[0] * d->win[1] <= MAX_RUNS) {
        pack_runs(g, x, q0, rows, k0 / run, k1 / run, p);
        return;
    }
    for (int64_t r = 0; r < rows; r++, pixel_next(g, &px)) {
        float *row = p + r * kw;
        int64_t k[3];
        offset_of(d, k0 / cig, k);
        for (int64_t off = k0 / cig; off * cig < k1; off++, offset_next(d, k)) {
            int64_t c0 = off * cig < k0 ? k0 - off * cig : 0;
            int64_t c1 = (off + 1) * cig > k1 ? k1 - off * cig : cig;
            float *dst = row + off * cig + c0 - k0;
            int64_t at = source(d, &px, k);
            if (at < 0)
                zero_run(dst, c1 - c0);
            else
                copy_run(dst, x + at + grp * cig + c0, c1 - c0);
        }
    }
}

/* x += the patch rows in p (all kdim columns), for group `grp`. */
static void unpack_add(const geom *g, float *x, int64_t grp, int64_t q0, int64_t rows, const float *p) {
    const nnc_conv_desc *d = g->d;
    int64_t cig = g->cig;
    pixel px = pixel_at(g, q0);
    for (int64_t r = 0; r < rows; r++, pixel_next(g, &px)) {
        const float *row = p + r * g->kdim;
        int64_t k[3] = {0, 0, 0};
        for (int64_t off = 0; off < g->offsets; off++, offset_next(d, k)) {
            int64_t at = source(d, &px, k);
            if (at < 0) continue;
            add_run(x + at + grp * cig, row + off * cig, cig);
        }
    }
}

/* Pixels per tile: a tile of `cols`-wide patch rows fills about `floats`
 * floats (256 KiB for the products that stream the tile once; the kernel
 * gradient sums over the tile's rows, so it wants them long). */
static int64_t tile_rows(int64_t cols, int64_t floats) {
    int64_t r = floats / (cols > 0 ? cols : 1);
    if (r < 16) r = 16;
    if (r > 1024) r = 1024;
    return r;
}

/* ---- Direct kernels, for narrow convolutions ----
 * Where the products would be thin (a few input channels: K of 9 for a
 * first layer over one channel), their C tiles are loaded and stored for
 * little work. These loop over the window instead, with a register tile of
 * up to 4 vectors of 8 output channels by 12/V output pixels (forward) or
 * kernel rows (kernel gradient), reading a zero-padded copy of one image,
 * so no read needs a bounds check. Output channels per group come in
 * multiples of 8 (ConvGeom::direct). */
typedef float v8 __attribute__((vector_size(32)));
/* Built for baseline x86-64, GCC warns that 32-byte vectors would pass
 * differently with AVX; these helpers are static and inlined, no ABI. */
#pragma GCC diagnostic ignored "-Wpsabi"

static inline v8 load8(const float *p) {
    v8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

#define STORE8(p, v) memcpy((p), &(v), sizeof(v8))

#define DIRECT_ACC 12

/* A padded image: every window of every output pixel lies inside it,
 * plus a tail so that a forward tile running up to DIRECT_ACC pixels
 * past the last row's end still reads inside. */
typedef struct {
    int64_t dim[3], len, pixel; /* floats between neighbours along dim 2 */
} padded;

static padded padded_of(const nnc_conv_desc *d) {
    padded s;
    for (int i = 0; i < 3; i++) s.dim[i] = (d->out[i] - 1) * d->str[i] + (d->win[i] - 1) * d->dil[i] + 1;
    s.pixel = d->str[2] * d->cin;
    s.len = s.dim[0] * s.dim[1] * s.dim[2] * d->cin + DIRECT_ACC * s.pixel;
    return s;
}

/* Image b of x into p, at offset pad in each dim; positions past the
 * padded extent are never read, so they are not copied. */
static void pad_image(const nnc_conv_desc *d, const padded *s, const float *x, int64_t b, float *p) {
    memset(p, 0, (size_t)s->len * sizeof(float));
    int64_t c = d->cin, n2 = s->dim[2] - d->pad[2] < d->img[2] ? s->dim[2] - d->pad[2] : d->img[2];
    for (int64_t i0 = 0; i0 < d->img[0] && i0 + d->pad[0] < s->dim[0]; i0++)
        for (int64_t i1 = 0; i1 < d->img[1] && i1 + d->pad[1] < s->dim[1]; i1++) {
            const float *src = x + ((b * d->img[0] + i0) * d->img[1] + i1) * d->img[2] * c;
            float *dst = p + (((i0 + d->pad[0]) * s->dim[1] + i1 + d->pad[1]) * s->dim[2] + d->pad[2]) * c;
            if (n2 > 0) copy_run(dst, src, n2 * c);
        }
}

/* Offset in a padded image of window offset k from a pixel's corner. */
static inline int64_t tap_offset(const nnc_conv_desc *d, const padded *s, const int64_t k[3]) {
    return ((k[0] * d->dil[0] * s->dim[1] + k[1] * d->dil[1]) * s->dim[2] + k[2] * d->dil[2]) * d->cin;
}

/* P pixels (np of them stored) along dim 2 by V vectors of output
 * channels: y[p, 8v..] = sum over kernel rows j of x[off[j] + p step] *
 * w[j, 8v..]. V and P are constants at every call, so the tile lives in
 * registers; the rows (window offset x channel) are one flat loop, as
 * a first layer has one channel per offset. */
static inline __attribute__((always_inline)) void forward_tile(int V, int P, int np, int64_t rows, const int64_t *off,
                                                              int64_t step, const float *x, const float *w,
                                                              int64_t cout, float *y) {
    v8 acc[DIRECT_ACC];
#pragma GCC unroll 12
    for (int i = 0; i < P * V; i++) acc[i] = (v8){0};
    for (int64_t j = 0; j < rows; j++) {
        const float *xj = x + off[j], *wj = w + j * cout;
        v8 wv[4];
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) wv[v] = load8(wj + 8 * v);
#pragma GCC unroll 12
        for (int p = 0; p < P; p++) {
            float xb = xj[p * step];
#pragma GCC unroll 4
            for (int v = 0; v < V; v++) acc[p * V + v] += xb * wv[v];
        }
    }
#pragma GCC unroll 12
    for (int p = 0; p < P; p++)
        if (p < np)
#pragma GCC unroll 4
            for (int v = 0; v < V; v++) STORE8(y + p * cout + 8 * v, acc[p * V + v]);
}

/* Vectors of 8 output channels in the tile at channel c of cog: 4, then
 * what is left (cog is a multiple of 8). */
static inline int tile_vectors(int64_t cog, int64_t c) { return (cog - c) / 8 < 4 ? (int)((cog - c) / 8) : 4; }

/* One output row (fixed batch entry and leading positions) of one group,
 * x at the row's first pixel and the group's first channel. */
static void forward_row(const geom *g, const padded *s, const int64_t *off, const float *x, const float *w,
                        float *y) {
    const nnc_conv_desc *d = g->d;
    int64_t cog = g->cog, rows = g->kdim;
    for (int64_t c = 0; c < cog; c += 32) {
        int v = tile_vectors(cog, c);
        for (int64_t o = 0; o < d->out[2]; o += DIRECT_ACC / v) {
            int np = (int)(d->out[2] - o < DIRECT_ACC / v ? d->out[2] - o : DIRECT_ACC / v);
            const float *xo = x + o * s->pixel;
            float *yo = y + o * d->cout + c;
            switch (v) {
            case 1: forward_tile(1, 12, np, rows, off, s->pixel, xo, w + c, d->cout, yo); break;
            case 2: forward_tile(2, 6, np, rows, off, s->pixel, xo, w + c, d->cout, yo); break;
            case 3: forward_tile(3, 4, np, rows, off, s->pixel, xo, w + c, d->cout, yo); break;
            default: forward_tile(4, 3, np, rows, off, s->pixel, xo, w + c, d->cout, yo); break;
            }
        }
    }
}

/* Offsets in a padded image of kernel rows [k0, k1) (window offset x
 * channel of a group) from a pixel's corner, into a per-thread table. */
static const int64_t *row_offsets(const geom *g, const padded *s, int64_t k0, int64_t k1) {
    static _Thread_local int64_t *table;
    static _Thread_local size_t len;
    if ((size_t)(k1 - k0) > len) {
        int64_t *t = realloc(table, (size_t)(k1 - k0) * sizeof(int64_t));
        if (!t) abort();
        table = t;
        len = (size_t)(k1 - k0);
    }
    for (int64_t r = k0; r < k1; r++) {
        int64_t k[3];
        offset_of(g->d, r / g->cig, k);
        table[r - k0] = tap_offset(g->d, s, k) + r % g->cig;
    }
    return table;
}

static void forward_direct(const geom *g, const float *x, const float *w, float *y, int64_t b0, int64_t b1) {
    const nnc_conv_desc *d = g->d;
    padded s = padded_of(d);
    float *p = scratch((size_t)s.len);
    const int64_t *off = row_offsets(g, &s, 0, g->kdim);
    for (int64_t b = b0; b < b1; b++) {
        pad_image(d, &s, x, b, p);
        for (int64_t o0 = 0; o0 < d->out[0]; o0++)
            for (int64_t o1 = 0; o1 < d->out[1]; o1++) {
                const float *xr = p + (o0 * d->str[0] * s.dim[1] + o1 * d->str[1]) * s.dim[2] * d->cin;
                float *yr = y + ((b * d->out[0] + o0) * d->out[1] + o1) * d->out[2] * d->cout;
                for (int64_t grp = 0; grp < d->groups; grp++)
                    forward_row(g, &s, off, xr + grp * g->cig, w + grp * g->cog, yr + grp * g->cog);
            }
    }
}

/* R kernel rows (nr of them real; the others repeat row 0 and are not
 * stored) by V vectors of output channels, summed over every pixel of
 * one image: dw[r, 8v..] += sum over pixels of x[pixel + off[r]] * dy. */
static inline __attribute__((always_inline)) void filter_tile(int V, int R, int nr, const nnc_conv_desc *d,
                                                             const padded *s, const float *x,
                                                             const int64_t *off, const float *dy, float *dw) {
    int64_t cout = d->cout;
    v8 acc[DIRECT_ACC];
#pragma GCC unroll 12
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) acc[r * V + v] = r < nr ? load8(dw + r * cout + 8 * v) : (v8){0};
    const float *xr[DIRECT_ACC];
#pragma GCC unroll 12
    for (int r = 0; r < R; r++) xr[r] = x + off[r < nr ? r : 0];
    for (int64_t o0 = 0; o0 < d->out[0]; o0++)
        for (int64_t o1 = 0; o1 < d->out[1]; o1++) {
            int64_t row = (o0 * d->str[0] * s->dim[1] + o1 * d->str[1]) * s->dim[2] * d->cin;
            const float *dyr = dy + (o0 * d->out[1] + o1) * d->out[2] * cout;
            for (int64_t o2 = 0; o2 < d->out[2]; o2++) {
                int64_t at = row + o2 * s->pixel;
                v8 g[4];
#pragma GCC unroll 4
                for (int v = 0; v < V; v++) g[v] = load8(dyr + o2 * cout + 8 * v);
#pragma GCC unroll 12
                for (int r = 0; r < R; r++) {
                    float xb = xr[r][at];
#pragma GCC unroll 4
                    for (int v = 0; v < V; v++) acc[r * V + v] += xb * g[v];
                }
            }
        }
#pragma GCC unroll 12
    for (int r = 0; r < R; r++)
        if (r < nr)
#pragma GCC unroll 4
            for (int v = 0; v < V; v++) STORE8(dw + r * cout + 8 * v, acc[r * V + v]);
}

/* Kernel rows [k0, k1) of group grp, image by image (so each dW element
 * sums over images, then pixels, in one order whatever the unit). */
static void filter_rows(const geom *g, const padded *s, const int64_t *rows_off, const float *p, const float *dy,
                        int64_t grp, int64_t k0, int64_t k1, float *w) {
    const nnc_conv_desc *d = g->d;
    for (int64_t c = 0; c < g->cog; c += 32) {
        int v = tile_vectors(g->cog, c);
        int64_t rows = DIRECT_ACC / v;
        for (int64_t r0 = k0; r0 < k1; r0 += rows) {
            int nr = (int)(k1 - r0 < rows ? k1 - r0 : rows);
            int64_t off[DIRECT_ACC];
            for (int r = 0; r < nr; r++) off[r] = rows_off[r0 + r - k0] + grp * g->cig;
            const float *dyc = dy + grp * g->cog + c;
            float *dw = w + r0 * d->cout + grp * g->cog + c;
            switch (v) {
            case 1: filter_tile(1, 12, nr, d, s, p, off, dyc, dw); break;
            case 2: filter_tile(2, 6, nr, d, s, p, off, dyc, dw); break;
            case 3: filter_tile(3, 4, nr, d, s, p, off, dyc, dw); break;
            default: filter_tile(4, 3, nr, d, s, p, off, dyc, dw); break;
            }
        }
    }
}

static void filter_grad_direct(const geom *g, const float *x, float *w, const float *y, int64_t k0, int64_t k1,
                               int64_t b0, int64_t b1) {
    const nnc_conv_desc *d = g->d;
    padded s = padded_of(d);
    float *p = scratch((size_t)s.len);
    const int64_t *off = row_offsets(g, &s, k0, k1);
    for (int64_t k = k0; k < k1; k++) memset(w + k * d->cout, 0, (size_t)d->cout * sizeof(float));
    for (int64_t b = b0; b < b1; b++) {
        pad_image(d, &s, x, b, p);
        for (int64_t grp = 0; grp < d->groups; grp++)
            filter_rows(g, &s, off, p, y + b * g->out_elems, grp, k0, k1, w);
    }
}

static void forward(const geom *g, const float *x, const float *w, float *y, int64_t b0, int64_t b1,
                    nnc_sgemm_fn sgemm) {
    const nnc_conv_desc *d = g->d;
    if (d->direct) {
        forward_direct(g, x, w, y, b0, b1);
        return;
    }
    int64_t q0 = b0 * g->pixels, q1 = b1 * g->pixels;
    for (int64_t grp = 0; grp < d->groups; grp++) {
        const float *wg = w + grp * g->cog;
        if (pointwise(d)) {
            sgemm(x + q0 * d->cin + grp * g->cig, wg, y + q0 * d->cout + grp * g->cog, 1, q1 - q0, g->cog, g->cig, 0,
                  d->cin, 1, 0, d->cout, 1, 0, d->cout, 1);
            continue;
        }
        int64_t tr = tile_rows(g->kdim, 64 * 1024);
        float *p = scratch((size_t)(tr * g->kdim));
        for (int64_t q = q0; q < q1; q += tr) {
            int64_t rows = q1 - q < tr ? q1 - q : tr;
            pack(g, x, grp, q, rows, 0, g->kdim, p);
            sgemm(p, wg, y + q * d->cout + grp * g->cog, 1, rows, g->cog, g->kdim, 0, g->kdim, 1, 0, d->cout, 1, 0,
                  d->cout, 1);
        }
    }
}

/* With stride 1, the input gradient is a forward convolution of dY with
 * the kernel flipped in space and transposed in channels, padded by
 * dil (K - 1) - pad: dX[i] = sum over k' of dY[i + k' dil - pad'] W[K-1-k'].
 * That runs on the forward path's long products (K' = offsets x cout per
 * group), with no scatter back. */
static int flippable(const nnc_conv_desc *d) {
    for (int i = 0; i < 3; i++)
        if (d->str[i] != 1 || d->pad[i] > d->dil[i] * (d->win[i] - 1)) return 0;
    /* The flipped product is only cin / groups wide; the products' blocks
     * are 64 columns on AVX-512, and 32 wide measured 1.14x slower than the
     * scatter (mnist_cnn's second convolution, one core). The direct
     * kernels have no such blocks. */
    return d->direct || d->cin / d->groups >= 64;
}

/* The images of unit u: [*i0, *i1). */
static void unit_images(const nnc_conv_desc *d, int64_t u, int64_t *i0, int64_t *i1) {
    int64_t bl = d->block > 0 ? d->block : 1;
    *i0 = u * bl;
    *i1 = (u + 1) * bl < d->batch ? (u + 1) * bl : d->batch;
}

/* The flipped-kernel path, units [u0, u1); the kernel is flipped once. */
static void input_grad_flipped(const geom *g, float *x, const float *w, const float *y, int64_t u0, int64_t u1,
                               nnc_sgemm_fn sgemm) {
    const nnc_conv_desc *d = g->d;
    nnc_conv_desc t = *d;
    t.role = NNC_CONV_FORWARD;
    t.cin = d->cout;
    t.cout = d->cin;
    for (int i = 0; i < 3; i++) {
        t.img[i] = d->out[i];
        t.out[i] = d->img[i];
        t.pad[i] = d->dil[i] * (d->win[i] - 1) - d->pad[i];
    }
    int64_t cig = g->cig, cog = g->cog, n = g->offsets;
    float *wt = scratch_in(1, (size_t)(n * cog * d->cin));
    for (int64_t off = 0; off < n; off++)
        for (int64_t grp = 0; grp < d->groups; grp++)
            for (int64_t ci = 0; ci < cig; ci++)
                for (int64_t co = 0; co < cog; co++)
                    wt[(off * cog + co) * d->cin + grp * cig + ci] = w[((n - 1 - off) * cig + ci) * d->cout + grp * cog + co];
    geom gt = geom_of(&t);
    for (int64_t u = u0, i0, i1; u < u1; u++) {
        unit_images(d, u, &i0, &i1);
        forward(&gt, y, wt, x, i0, i1, sgemm);
    }
}

/* The input gradient of units [u0, u1); the kernel is rearranged once. */
static void input_grad(const geom *g, float *x, const float *w, const float *y, int64_t u0, int64_t u1,
                       nnc_sgemm_fn sgemm) {
    const nnc_conv_desc *d = g->d;
    if (!pointwise(d) && flippable(d)) {
        input_grad_flipped(g, x, w, y, u0, u1, sgemm);
        return;
    }
    if (pointwise(d)) {
        for (int64_t u = u0, i0, i1; u < u1; u++) {
            unit_images(d, u, &i0, &i1);
            int64_t q0 = i0 * g->pixels, q1 = i1 * g->pixels;
            for (int64_t grp = 0; grp < d->groups; grp++)
                sgemm(y + q0 * d->cout + grp * g->cog, w + grp * g->cog, x + q0 * d->cin + grp * g->cig, 1, q1 - q0,
                      g->cig, g->cog, 0, d->cout, 1, 0, 1, d->cout, 0, d->cin, 1);
        }
        return;
    }
    /* W_g^T row-major (cog x kdim per group): read in place, the kernel
     * would be a column-major right operand, the products' slow layout. */
    int64_t kd = g->kdim, cog = g->cog;
    float *wt = scratch_in(1, (size_t)(d->groups * cog * kd));
    for (int64_t grp = 0; grp < d->groups; grp++)
        for (int64_t k = 0; k < kd; k++)
            for (int64_t co = 0; co < cog; co++) wt[(grp * cog + co) * kd + k] = w[k * d->cout + grp * cog + co];
    int64_t tr = tile_rows(kd, 64 * 1024);
    float *p = scratch((size_t)(tr * kd));
    for (int64_t u = u0, i0, i1; u < u1; u++) {
        unit_images(d, u, &i0, &i1);
        int64_t q0 = i0 * g->pixels, q1 = i1 * g->pixels;
        memset(x + i0 * g->img_elems, 0, (size_t)((i1 - i0) * g->img_elems) * sizeof(float));
        for (int64_t q = q0; q < q1; q += tr) {
            int64_t rows = q1 - q < tr ? q1 - q : tr;
            for (int64_t grp = 0; grp < d->groups; grp++) {
                sgemm(y + q * d->cout + grp * cog, wt + grp * cog * kd, p, 1, rows, kd, cog, 0, d->cout, 1, 0, kd, 1, 0,
                      kd, 1);
                unpack_add(g, x, grp, q, rows, p);
            }
        }
    }
}

/* The kernel gradient on rows [k0, k1) of the kernel matrix, summed over
 * images [b0, b1). */
static void filter_grad(const geom *g, const float *x, float *w, const float *y, int64_t k0, int64_t k1, int64_t b0,
                        int64_t b1, nnc_sgemm_fn sgemm) {
    const nnc_conv_desc *d = g->d;
    if (d->direct) {
        filter_grad_direct(g, x, w, y, k0, k1, b0, b1);
        return;
    }
    int64_t kr = k1 - k0, nc = g->cog, q0 = b0 * g->pixels, q1 = b1 * g->pixels;
    for (int64_t grp = 0; grp < d->groups; grp++) {
        float *wg = w + k0 * d->cout + grp * g->cog;
        const float *yg = y + grp * g->cog;
        if (pointwise(d)) {
            sgemm(x + q0 * d->cin + grp * g->cig + k0, yg + q0 * d->cout, wg, 1, kr, nc, q1 - q0, 0, 1, d->cin, 0,
                  d->cout, 1, 0, d->cout, 1);
            continue;
        }
        int64_t tr = tile_rows(kr, 128 * 1024);
        float *p = scratch((size_t)(tr * kr + kr * nc));
        float *part = p + tr * kr;
        for (int64_t k = 0; k < kr; k++) memset(wg + k * d->cout, 0, (size_t)nc * sizeof(float));
        for (int64_t q = q0; q < q1; q += tr) {
            int64_t rows = q1 - q < tr ? q1 - q : tr;
            pack(g, x, grp, q, rows, k0, k1, p);
            sgemm(p, yg + q * d->cout, part, 1, kr, nc, rows, 0, 1, kr, 0, d->cout, 1, 0, nc, 1);
            for (int64_t k = 0; k < kr; k++)
                for (int64_t c = 0; c < nc; c++) wg[k * d->cout + c] += part[k * nc + c];
        }
    }
}

/* One input and one output channel per group: loops over the contiguous
 * channels, no products. Units as the GEMM path's. */
static void depthwise(const geom *g, float *x, float *w, float *y, int64_t u0, int64_t u1) {
    const nnc_conv_desc *d = g->d;
    int64_t c = d->cout;
    if (d->role == NNC_CONV_FILTER_GRAD) {
        int64_t k[3];
        offset_of(d, u0, k);
        for (int64_t off = u0; off < u1; off++, offset_next(d, k)) {
            float *wr = w + off * c;
            memset(wr, 0, (size_t)c * sizeof(float));
            pixel px = pixel_at(g, 0);
            for (int64_t q = 0; q < d->batch * g->pixels; q++, pixel_next(g, &px)) {
                int64_t at = source(d, &px, k);
                if (at < 0) continue;
                const float *xr = x + at, *yr = y + q * c;
                for (int64_t i = 0; i < c; i++) wr[i] += xr[i] * yr[i];
            }
        }
        return;
    }
    if (d->role == NNC_CONV_INPUT_GRAD) memset(x + u0 * g->img_elems, 0, (size_t)((u1 - u0) * g->img_elems) * sizeof(float));
    pixel px = pixel_at(g, u0 * g->pixels);
    for (int64_t q = u0 * g->pixels; q < u1 * g->pixels; q++, pixel_next(g, &px)) {
        float *yr = y + q * c;
        if (d->role == NNC_CONV_FORWARD) memset(yr, 0, (size_t)c * sizeof(float));
        int64_t k[3] = {0, 0, 0};
        for (int64_t off = 0; off < g->offsets; off++, offset_next(d, k)) {
            int64_t at = source(d, &px, k);
            if (at < 0) continue;
            float *xr = x + at;
            const float *wr = w + off * c;
            if (d->role == NNC_CONV_FORWARD)
                for (int64_t i = 0; i < c; i++) yr[i] += xr[i] * wr[i];
            else
                for (int64_t i = 0; i < c; i++) xr[i] += yr[i] * wr[i];
        }
    }
}

/* Units [start, end) of the kernel's split axis, `block` items each:
 * images for the forward pass and the input gradient (each writes its own
 * images), rows of the kernel matrix (window offset x input channel) for
 * the kernel gradient (each thread packs only its columns of the
 * patches), or with `parts` images again, each unit into its own copy.
 * Every unit is computed on its own, with the same products whichever
 * thread runs it, so results do not depend on the thread count. The
 * buffer a role writes is fully assigned. */
NNC_INTERNAL void NNC_CONV_NAME(const int64_t *desc, float *x, float *w, float *y, int64_t start, int64_t end,
                                nnc_sgemm_fn sgemm) {
    const nnc_conv_desc *d = (const nnc_conv_desc *)desc;
    geom g = geom_of(d);
    int64_t bl = d->block > 0 ? d->block : 1;
    int64_t items = d->role != NNC_CONV_FILTER_GRAD || d->parts ? d->batch : g.kdim;
    if (d->role == NNC_CONV_INPUT_GRAD && !(g.cig == 1 && g.cog == 1)) {
        input_grad(&g, x, w, y, start, end < (items + bl - 1) / bl ? end : (items + bl - 1) / bl, sgemm);
        return;
    }
    for (int64_t u = start; u < end; u++) {
        int64_t i0 = u * bl, i1 = (u + 1) * bl < items ? (u + 1) * bl : items;
        if (i0 >= i1) return;
        if (g.cig == 1 && g.cog == 1)
            depthwise(&g, x, w, y, i0, i1);
        else if (d->role == NNC_CONV_FORWARD)
            forward(&g, x, w, y, i0, i1, sgemm);
        else if (d->parts)
            filter_grad(&g, x, w + u * g.kdim * d->cout, y, 0, g.kdim, i0, i1, sgemm);
        else
            filter_grad(&g, x, w, y, i0, i1, 0, d->batch, sgemm);
    }
}
