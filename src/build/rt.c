/* The runtime of a model built by `nnc build`: the C ABI of nnc_model.h
 * and the functions the generated code calls (nnc_rt_*). Carried inside
 * nnc as text and compiled with the system cc at build time, so a build
 * needs no Rust runtime and no library beyond libc and libm.
 *
 * nnc_plan.h (generated) describes each compiled step: its batch size, its
 * arena size, and what each entry of its slot table points at. */
#include "nnc_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xmmintrin.h>

#define NNC_INTERNAL __attribute__((visibility("hidden")))

typedef void (*nnc_step_fn)(void *arena, void *consts, void *const *slots, const void *pool);
typedef void (*nnc_kernel_fn)(void *arena, void *consts, void *const *slots, int64_t start, int64_t end);

enum { NNC_SLOT_INPUT, NNC_SLOT_PARAM, NNC_SLOT_LOGITS, NNC_SLOT_PROBS };

typedef struct {
    int kind;
    size_t offset; /* into nnc_weights, for NNC_SLOT_PARAM */
} nnc_slot;

typedef struct {
    size_t batch, nslots, arena_bytes;
    nnc_step_fn step;
    const unsigned char *consts;
    const nnc_slot *slots;
} nnc_plan;

#include "nnc_plan.h"

/* ---- functions the generated code imports ---- */

/* Serial: the steps were compiled for one thread, so this only runs if a
 * kernel asks for a split anyway. */
NNC_INTERNAL void nnc_rt_parallel(const void *pool, nnc_kernel_fn f, void *arena, void *consts, void *const *slots,
                                  int64_t n, int64_t grain) {
    (void)pool;
    (void)grain;
    f(arena, consts, slots, 0, n);
}

/* The JIT's runtime computes these in double and rounds; so do we. */
NNC_INTERNAL float nnc_rt_powf(float x, float y) { return (float)pow((double)x, (double)y); }
NNC_INTERNAL float nnc_rt_sinf(float x) { return (float)sin((double)x); }
NNC_INTERNAL float nnc_rt_cosf(float x) { return (float)cos((double)x); }

/* SGEMM. Vectors of 16 floats (GCC vector extensions): -march with AVX-512
 * makes them zmm registers and `acc += a * b` one FMA (-ffp-contract=fast);
 * narrower targets split them. Loads and stores go through memcpy: no
 * alignment is assumed. */
typedef float v16 __attribute__((vector_size(64)));
#define W 16

static inline v16 ld(const float *p) {
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* c[r, j] = sum_p a[r, p] * b[p, j] for r < MR, j < cols (<= W * NV): b's
 * rows are ldb apart, each W * NV contiguous floats (zero past cols). */
#define TILE(MR, NV)                                                                                                  \
    static void tile_##MR##x##NV(long k, const float *a, long a_rs, long a_cs, const float *b, long ldb, float *c,    \
                                 long c_rs, long c_cs, long cols) {                                                   \
        v16 acc[MR][NV];                                                                                              \
        for (int r = 0; r < MR; r++)                                                                                  \
            for (int v = 0; v < NV; v++) acc[r][v] = (v16){0};                                                        \
        for (long p = 0; p < k; p++) {                                                                                \
            v16 bv[NV];                                                                                               \
            for (int v = 0; v < NV; v++) bv[v] = ld(b + p * ldb + W * v);                                             \
            for (int r = 0; r < MR; r++) {                                                                            \
                float s = a[r * a_rs + p * a_cs];                                                                     \
                for (int v = 0; v < NV; v++) acc[r][v] += s * bv[v];                                                  \
            }                                                                                                         \
        }                                                                                                             \
        for (int r = 0; r < MR; r++) {                                                                                \
            float *cr = c + r * c_rs;                                                                                 \
            if (c_cs == 1 && cols == W * NV) {                                                                        \
                memcpy(cr, acc[r], sizeof acc[r]);                                                                    \
            } else {                                                                                                  \
                float t[W * NV];                                                                                      \
                memcpy(t, acc[r], sizeof t);                                                                          \
                for (long j = 0; j < cols; j++) cr[j * c_cs] = t[j];                                                  \
            }                                                                                                         \
        }                                                                                                             \
    }

TILE(6, 2)
TILE(1, 2)
TILE(1, 8)
TILE(1, 1)

/* Packing scratch, grown as needed, one per thread. */
static __thread float *scratch;
static __thread size_t scratch_cap;

/* b[p, j] (p < k, j < cols) copied into k rows of `width` floats, zero
 * past cols; NULL when out of memory. */
static const float *pack(const float *b, long k, long cols, long b_rs, long b_cs, long width) {
    size_t need = (size_t)k * (size_t)width;
    if (need > scratch_cap) {
        float *p = aligned_alloc(64, (need * sizeof(float) + 63) / 64 * 64);
        if (!p) return NULL;
        free(scratch);
        scratch = p;
        scratch_cap = need;
    }
    for (long p = 0; p < k; p++) {
        float *row = scratch + p * width;
        for (long j = 0; j < cols; j++) row[j] = b[p * b_rs + j * b_cs];
        for (long j = cols; j < width; j++) row[j] = 0.0f;
    }
    return scratch;
}

static void naive(long m, long n, long k, const float *a, long a_rs, long a_cs, const float *b, long b_rs,
                  long b_cs, float *c, long c_rs, long c_cs) {
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) {
            float s = 0.0f;
            for (long p = 0; p < k; p++) s += a[i * a_rs + p * a_cs] * b[p * b_rs + j * b_cs];
            c[i * c_rs + j * c_cs] = s;
        }
}

/* Columns [j, j + cols) of b as rows of `width` contiguous floats: b itself
 * when it already is, else packed. */
static const float *panel(const float *b, long j, long k, long cols, long b_rs, long b_cs, long width, long *ldb) {
    if (b_cs == 1 && cols == width) {
        *ldb = b_rs;
        return b + j;
    }
    *ldb = width;
    return pack(b + j * b_cs, k, cols, b_rs, b_cs, width);
}

/* One product, k >= 1. Few rows (a matrix-vector product): 128-column
 * tiles keep 8 independent FMA chains in flight. Else 6 x 32 tiles. */
static void gemm1(long m, long n, long k, const float *a, long a_rs, long a_cs, const float *b, long b_rs, long b_cs,
                  float *c, long c_rs, long c_cs) {
    int narrow = m < 4;
    for (long j = 0; j < n;) {
        long width = narrow ? (n - j >= 8 * W ? 8 * W : W) : 2 * W;
        long cols = n - j < width ? n - j : width, ldb;
        const float *bp = panel(b, j, k, cols, b_rs, b_cs, width, &ldb);
        float *cj = c + j * c_cs;
        if (!bp) {
            naive(m, cols, k, a, a_rs, a_cs, b + j * b_cs, b_rs, b_cs, cj, c_rs, c_cs);
        } else if (narrow) {
            for (long i = 0; i < m; i++) {
                if (width == 8 * W)
                    tile_1x8(k, a + i * a_rs, a_rs, a_cs, bp, ldb, cj + i * c_rs, c_rs, c_cs, cols);
                else
                    tile_1x1(k, a + i * a_rs, a_rs, a_cs, bp, ldb, cj + i * c_rs, c_rs, c_cs, cols);
            }
        } else {
            long i = 0;
            for (; i + 6 <= m; i += 6) tile_6x2(k, a + i * a_rs, a_rs, a_cs, bp, ldb, cj + i * c_rs, c_rs, c_cs, cols);
            for (; i < m; i++) tile_1x2(k, a + i * a_rs, a_rs, a_cs, bp, ldb, cj + i * c_rs, c_rs, c_cs, cols);
        }
        j += cols;
    }
}

/* c[i] = a[i] * b[i] for i < batch, exactly as the JIT's nnc_rt_sgemm:
 * a is m x k with strides (a_rs, a_cs), b is k x n, c is m x n; *_bs step
 * from one batch entry to the next; strides in elements. k <= 0 zeroes c. */
NNC_INTERNAL void nnc_rt_sgemm(const float *a, const float *b, float *c, int64_t batch, int64_t m, int64_t n,
                               int64_t k, int64_t a_bs, int64_t a_rs, int64_t a_cs, int64_t b_bs, int64_t b_rs,
                               int64_t b_cs, int64_t c_bs, int64_t c_rs, int64_t c_cs) {
    if (m <= 0 || n <= 0 || batch <= 0) return;
    for (int64_t i = 0; i < batch; i++) {
        float *dst = c + i * c_bs;
        if (k <= 0) {
            for (int64_t r = 0; r < m; r++)
                for (int64_t col = 0; col < n; col++) dst[r * c_rs + col * c_cs] = 0.0f;
            continue;
        }
        gemm1(m, n, k, a + i * a_bs, a_rs, a_cs, b + i * b_bs, b_rs, b_cs, dst, c_rs, c_cs);
    }
}

/* ---- the C ABI ---- */

static size_t elem_size(void) { return NNC_INPUT_DTYPE == NNC_F32 || NNC_INPUT_DTYPE == NNC_I32 ? 4 : 1; }

/* One step's buffers and slot table. */
typedef struct {
    void *arena, *input;
    float *logits, *probs;
    void **slots;
} nnc_run;

struct nnc_model {
    nnc_run run[NNC_PLANS];
};

static void *alloc64(size_t bytes) { return aligned_alloc(64, (bytes + 63) / 64 * 64 + 64); }

void nnc_destroy(nnc_model *m) {
    if (!m) return;
    for (int p = 0; p < NNC_PLANS; p++) {
        free(m->run[p].arena);
        free(m->run[p].input);
        free(m->run[p].logits);
        free(m->run[p].probs);
        free(m->run[p].slots);
    }
    free(m);
}

nnc_model *nnc_create(void) {
    nnc_model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    for (int p = 0; p < NNC_PLANS; p++) {
        const nnc_plan *pl = &nnc_plans[p];
        nnc_run *r = &m->run[p];
        r->arena = alloc64(pl->arena_bytes);
        r->input = alloc64(pl->batch * NNC_INPUT_SIZE * elem_size());
        r->logits = alloc64(pl->batch * NNC_CLASSES * sizeof(float));
        r->probs = alloc64(pl->batch * NNC_CLASSES * sizeof(float));
        r->slots = calloc(pl->nslots, sizeof(void *));
        if (!r->arena || !r->input || !r->logits || !r->probs || !r->slots) {
            nnc_destroy(m);
            return NULL;
        }
        for (size_t s = 0; s < pl->nslots; s++) {
            const nnc_slot *sl = &pl->slots[s];
            /* The step only reads its parameter slots: the weights stay read-only. */
            r->slots[s] = sl->kind == NNC_SLOT_INPUT    ? r->input
                          : sl->kind == NNC_SLOT_PARAM  ? (void *)(nnc_weights + sl->offset)
                          : sl->kind == NNC_SLOT_LOGITS ? (void *)r->logits
                                                        : (void *)r->probs;
        }
    }
    return m;
}

size_t nnc_input_size(void) { return NNC_INPUT_SIZE; }
size_t nnc_input_rank(void) { return NNC_INPUT_RANK; }
size_t nnc_input_dim(size_t axis) { return axis < NNC_INPUT_RANK ? nnc_input_dims[axis] : 0; }
int nnc_input_dtype(void) { return NNC_INPUT_DTYPE; }
size_t nnc_classes(void) { return NNC_CLASSES; }

static int valid(float v) {
    if (!isfinite(v)) return 0;
    switch (NNC_INPUT_DTYPE) {
    case NNC_U8: return v == floorf(v) && v >= 0.0f && v <= 255.0f;
    case NNC_I32: return v == floorf(v) && v >= -2147483648.0f && v < 2147483648.0f;
    case NNC_BOOL: return v == 0.0f || v == 1.0f;
    default: return 1;
    }
}

long long nnc_check(const float *x, size_t count) {
    for (size_t i = 0; i < count; i++)
        if (!valid(x[i])) return (long long)i;
    return -1;
}

/* Values already checked by nnc_check. One loop per type, so each vectorizes. */
static void convert(void *dst, const float *x, size_t count) {
    if (NNC_INPUT_DTYPE == NNC_U8 || NNC_INPUT_DTYPE == NNC_BOOL)
        for (size_t i = 0; i < count; i++) ((uint8_t *)dst)[i] = (uint8_t)x[i];
    else if (NNC_INPUT_DTYPE == NNC_I32)
        for (size_t i = 0; i < count; i++) ((int32_t *)dst)[i] = (int32_t)x[i];
    else
        memcpy(dst, x, count * sizeof(float));
}

/* Runs plan `p` on its batch of samples: raw bytes, or floats to convert. */
static void run_plan(nnc_model *m, int p, const void *raw, const float *x, float *probs, int32_t *classes) {
    const nnc_plan *pl = &nnc_plans[p];
    nnc_run *r = &m->run[p];
    size_t count = pl->batch * NNC_INPUT_SIZE;
    if (raw)
        memcpy(r->input, raw, count * elem_size());
    else
        convert(r->input, x, count);
    /* Flush denormals while the step runs, as the JIT does: trained weights
     * drift into denormal range, where arithmetic is ~100x slower. */
    unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040);
    pl->step(r->arena, (void *)pl->consts, r->slots, NULL);
    _mm_setcsr(csr);
    if (probs) memcpy(probs, r->probs, pl->batch * NNC_CLASSES * sizeof(float));
    if (classes)
        for (size_t i = 0; i < pl->batch; i++) {
            const float *l = r->logits + i * NNC_CLASSES;
            int32_t best = 0;
            for (int32_t c = 1; c < NNC_CLASSES; c++)
                if (l[c] > l[best]) best = c;
            classes[i] = best;
        }
}

/* Full batches of the biggest plan, then the rest one at a time. */
static void run_all(nnc_model *m, const unsigned char *raw, const float *x, size_t n, float *probs, int32_t *classes) {
    size_t i = 0, esz = elem_size();
    for (int p = NNC_PLANS - 1; p >= 0; p--) {
        size_t b = nnc_plans[p].batch;
        for (; n - i >= b; i += b)
            run_plan(m, p, raw ? raw + i * NNC_INPUT_SIZE * esz : NULL, raw ? NULL : x + i * NNC_INPUT_SIZE,
                     probs ? probs + i * NNC_CLASSES : NULL, classes ? classes + i : NULL);
    }
}

int nnc_predict(nnc_model *m, const float *x, size_t n, float *probs, int32_t *classes) {
    if (!m || (!x && n)) return NNC_E_ARG;
    if (nnc_check(x, n * NNC_INPUT_SIZE) >= 0) return NNC_E_VALUE;
    run_all(m, NULL, x, n, probs, classes);
    return NNC_OK;
}

int nnc_predict_raw(nnc_model *m, const void *x, size_t n, float *probs, int32_t *classes) {
    if (!m || (!x && n)) return NNC_E_ARG;
    if (NNC_INPUT_DTYPE == NNC_BOOL)
        for (size_t i = 0; i < n * NNC_INPUT_SIZE; i++)
            if (((const uint8_t *)x)[i] > 1) return NNC_E_VALUE;
    run_all(m, x, NULL, n, probs, classes);
    return NNC_OK;
}

const char *nnc_strerror(int code) {
    switch (code) {
    case NNC_OK: return "success";
    case NNC_E_NOMEM: return "out of memory";
    case NNC_E_VALUE: return "an input value the model's input type cannot hold (NaN, infinite, or out of range)";
    case NNC_E_ARG: return "a NULL model or input";
    default: return "unknown error";
    }
}
