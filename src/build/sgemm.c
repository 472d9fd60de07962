/* The built executable's matrix products, included by rt.c. nnc's build
 * script also compiles this file (as `nnc_c_sgemm`, for the machine it is
 * built on) so that `nnc predict` can run the very products a build runs
 * and print the same digits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef NNC_INTERNAL
#define NNC_INTERNAL
#endif
#ifndef NNC_SGEMM_NAME
#define NNC_SGEMM_NAME nnc_rt_sgemm
#endif

/* SGEMM. An MR x NR tile of C is kept in registers (AVX-512: 14 x 32, 28
 * accumulators) while it sums over K, each step one vector load per VW
 * columns of B and one broadcast of A per row (A read in place, row-major).
 * B with contiguous rows is read in place; otherwise, and for a last panel
 * narrower than NR, it is packed in K blocks into contiguous panels NR wide
 * (zero past n), and A to unit column stride when it is not. Vectors
 * are GCC vector extensions: -march with AVX-512 makes them zmm registers
 * and `acc += s * b` one FMA (-ffp-contract=fast) with s broadcast from
 * memory; narrower targets get narrower vectors and a smaller tile. Loads
 * and stores go through memcpy: no alignment is assumed. */
#if defined(__AVX512F__)
#define VW 16
#define MR 14
#elif defined(__AVX__)
#define VW 8
#define MR 6
#else
#define VW 4
#define MR 6
#endif
#define NV 2
#define NR (VW * NV)
/* Packed K blocks at most this long: a packed panel (kc x NR) fits L1. */
#define KC 384

typedef float vf __attribute__((vector_size(VW * 4)));

static inline vf ld(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void st(float *p, vf v) { memcpy(p, &v, sizeof v); }

/* c[r, j] (+)= sum_p a[r * lda + p] * b[p * ldb + j] for r < R, p < k,
 * j < cols (<= NR): b's rows hold NR floats (zero past cols). `add` adds
 * to c instead of overwriting it. */
#define TILE(R)                                                                                                       \
    static void tile_##R(long k, const float *restrict a, long lda, const float *restrict b, long ldb, float *c,     \
                         long c_rs, long c_cs, long cols, int add) {                                                  \
        vf acc[R][NV];                                                                                                \
        for (int r = 0; r < R; r++)                                                                                   \
            for (int v = 0; v < NV; v++) acc[r][v] = (vf){0};                                                         \
        for (long p = 0; p < k; p++) {                                                                                \
            vf bv[NV];                                                                                                \
            for (int v = 0; v < NV; v++) bv[v] = ld(b + p * ldb + VW * v);                                            \
            for (int r = 0; r < R; r++) {                                                                             \
                float s = a[r * lda + p];                                                                             \
                for (int v = 0; v < NV; v++) acc[r][v] += s * bv[v];                                                  \
            }                                                                                                         \
        }                                                                                                             \
        for (int r = 0; r < R; r++) {                                                                                 \
            float *cr = c + r * c_rs;                                                                                 \
            if (c_cs == 1 && cols == NR) {                                                                            \
                for (int v = 0; v < NV; v++) st(cr + VW * v, add ? ld(cr + VW * v) + acc[r][v] : acc[r][v]);          \
            } else {                                                                                                  \
                float t[NR];                                                                                          \
                memcpy(t, acc[r], sizeof t);                                                                          \
                for (long j = 0; j < cols; j++) cr[j * c_cs] = add ? cr[j * c_cs] + t[j] : t[j];                      \
            }                                                                                                         \
        }                                                                                                             \
    }

TILE(MR)
#if MR > 8
TILE(8)
#endif
TILE(4)
TILE(2)
TILE(1)

/* Rows [0, m) of one column panel: whole tiles, then the rest in halves. */
static void tiles(long m, long k, const float *a, long lda, const float *b, long ldb, float *c, long c_rs, long c_cs,
                  long cols, int add) {
    long i = 0;
    for (; i + MR <= m; i += MR) tile_MR(k, a + i * lda, lda, b, ldb, c + i * c_rs, c_rs, c_cs, cols, add);
#if MR > 8
    if (i + 8 <= m) tile_8(k, a + i * lda, lda, b, ldb, c + i * c_rs, c_rs, c_cs, cols, add), i += 8;
#endif
    if (i + 4 <= m) tile_4(k, a + i * lda, lda, b, ldb, c + i * c_rs, c_rs, c_cs, cols, add), i += 4;
    if (i + 2 <= m) tile_2(k, a + i * lda, lda, b, ldb, c + i * c_rs, c_rs, c_cs, cols, add), i += 2;
    if (i < m) tile_1(k, a + i * lda, lda, b, ldb, c + i * c_rs, c_rs, c_cs, cols, add);
}

/* Eight vectors of one row of c: a matrix-vector product keeps eight
 * independent FMA chains in flight. b's rows are ldb apart, 8 * VW
 * contiguous floats each. */
static void row8(long k, const float *a, const float *restrict b, long ldb, float *c, long c_cs) {
    vf acc[8];
    for (int v = 0; v < 8; v++) acc[v] = (vf){0};
    for (long p = 0; p < k; p++)
        for (int v = 0; v < 8; v++) acc[v] += a[p] * ld(b + p * ldb + VW * v);
    if (c_cs == 1) {
        memcpy(c, acc, sizeof acc);
    } else {
        float t[8 * VW];
        memcpy(t, acc, sizeof t);
        for (long j = 0; j < 8 * VW; j++) c[j * c_cs] = t[j];
    }
}

/* Packing scratch, grown as needed, one per thread. */
typedef struct {
    float *p;
    size_t cap;
} buffer;
static __thread buffer pack_a, pack_b;

/* `floats` floats of `buf`; NULL when out of memory. */
static float *reserve(buffer *buf, size_t floats) {
    if (floats > buf->cap) {
        float *p = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
        if (!p) return NULL;
        free(buf->p);
        buf->p = p;
        buf->cap = floats;
    }
    return buf->p;
}

/* b[p, j] (p < k, j < n) as panels of k rows of NR floats, zero past n:
 * panel q holds columns [q * NR, q * NR + NR). */
static void pack_panels(float *dst, const float *b, long k, long n, long b_rs, long b_cs) {
    for (long j0 = 0; j0 < n; j0 += NR) {
        long cols = n - j0 < NR ? n - j0 : NR;
        const float *bj = b + j0 * b_cs;
        for (long p = 0; p < k; p++, dst += NR) {
            const float *src = bj + p * b_rs;
            if (b_cs == 1 && cols == NR) {
                memcpy(dst, src, NR * sizeof(float));
            } else {
                /* A constant-size clear is a few vector stores (a clear
                 * of NR - cols floats became `rep stos`, slow to start). */
                memset(dst, 0, NR * sizeof(float));
                for (long j = 0; j < cols; j++) dst[j] = src[j * b_cs];
            }
        }
    }
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

/* One product, k >= 1. */
static void gemm1(long m, long n, long k, const float *a, long a_rs, long a_cs, const float *b, long b_rs, long b_cs,
                  float *c, long c_rs, long c_cs) {
    long j = 0;
    /* One row (a matrix-vector product): B read in place, 8 vectors wide. */
    if (m == 1 && a_cs == 1 && b_cs == 1) {
        for (; j + 8 * VW <= n; j += 8 * VW) row8(k, a, b + j, b_rs, c + j * c_cs, c_cs);
        if (j == n) return;
    }
    /* B with contiguous rows is read in place, a panel of NR columns at a
     * time over all of K (k x NR floats: L2-resident while every tile of
     * rows runs over it); a narrower last panel is packed. This measured
     * faster than packing B in K blocks for the model's shapes (k ~ 1000). */
    if (a_cs == 1 && b_cs == 1)
        for (; j + NR <= n; j += NR) tiles(m, k, a, a_rs, b + j, b_rs, c + j * c_cs, c_rs, c_cs, NR, 0);
    if (j == n) return;
    long nk = (k + KC - 1) / KC, kc = (k + nk - 1) / nk, panels = (n - j + NR - 1) / NR;
    float *bp = reserve(&pack_b, (size_t)panels * NR * (size_t)kc);
    float *ap = a_cs == 1 ? NULL : reserve(&pack_a, (size_t)m * (size_t)kc);
    if (!bp || (a_cs != 1 && !ap)) {
        naive(m, n - j, k, a, a_rs, a_cs, b + j * b_cs, b_rs, b_cs, c + j * c_cs, c_rs, c_cs);
        return;
    }
    for (long p0 = 0; p0 < k; p0 += kc) {
        long kb = k - p0 < kc ? k - p0 : kc, lda = a_rs;
        const float *ab = a + p0 * a_cs;
        if (ap) { /* A to unit column stride */
            for (long i = 0; i < m; i++)
                for (long p = 0; p < kb; p++) ap[i * kb + p] = ab[i * a_rs + p * a_cs];
            ab = ap;
            lda = kb;
        }
        pack_panels(bp, b + p0 * b_rs + j * b_cs, kb, n - j, b_rs, b_cs);
        for (long q = 0; q < panels; q++) {
            long j0 = j + q * NR, cols = n - j0 < NR ? n - j0 : NR;
            tiles(m, kb, ab, lda, bp + q * NR * kb, NR, c + j0 * c_cs, c_rs, c_cs, cols, p0 > 0);
        }
    }
}

/* c[i] = a[i] * b[i] for i < batch, exactly as the JIT's nnc_rt_sgemm:
 * a is m x k with strides (a_rs, a_cs), b is k x n, c is m x n; *_bs step
 * from one batch entry to the next; strides in elements. k <= 0 zeroes c. */
NNC_INTERNAL void NNC_SGEMM_NAME(const float *a, const float *b, float *c, int64_t batch, int64_t m, int64_t n,
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


#ifdef NNC_SGEMM_PROBE
/* Whether this CPU runs what this file was compiled for (nnc's build
 * script compiles it with -march=native; a target directory carried to an
 * older CPU must not execute an instruction it lacks). */
int nnc_c_sgemm_usable(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
#if defined(__AVX512F__)
    if (!__builtin_cpu_supports("avx512f")) return 0;
#endif
#if defined(__AVX2__)
    if (!__builtin_cpu_supports("avx2")) return 0;
#endif
#if defined(__FMA__)
    if (!__builtin_cpu_supports("fma")) return 0;
#endif
#endif
    return 1;
}
#endif
