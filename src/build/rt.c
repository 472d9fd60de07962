/* The runtime of a model built by `nnc build`: the C ABI of nnc_model.h
 * and the functions the generated code calls (nnc_rt_*). Carried inside
 * nnc as text and compiled with the system cc at build time, so a build
 * needs no Rust runtime and no library beyond libc and libm.
 *
 * nnc_plan.h (generated) describes each compiled step: its batch size, its
 * arena size, and what each entry of its slot table points at. */
#include "nnc_model.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <xmmintrin.h>

#include "kernels.c"

typedef void (*nnc_step_fn)(void *arena, void *consts, void *const *slots, const void *pool);

enum { NNC_SLOT_INPUT, NNC_SLOT_PARAM, NNC_SLOT_LOGITS, NNC_SLOT_PROBS };

typedef struct {
    int kind;
    size_t offset; /* into nnc_weights for NNC_SLOT_PARAM; the input's index for NNC_SLOT_INPUT */
} nnc_slot;

typedef struct {
    size_t batch, nslots, arena_bytes;
    nnc_step_fn step;
    const unsigned char *consts;
    const nnc_slot *slots;
} nnc_plan;

#include "nnc_plan.h"

/* ---- the C ABI ---- */

static size_t elem_size(size_t i) { return nnc_input_dtypes[i] == NNC_F32 || nnc_input_dtypes[i] == NNC_I32 ? 4 : 1; }

/* One step's buffers and slot table. */
typedef struct {
    void *arena, *input[NNC_INPUTS];
    float *logits, *probs;
    void **slots;
} nnc_run;

/* Threads a big call is split across; each has its own buffers. */
#define NNC_MAX_THREADS 64

struct nnc_model {
    int threads;
    nnc_run run[NNC_MAX_THREADS][NNC_PLANS];
};

static void *alloc64(size_t bytes) { return aligned_alloc(64, (bytes + 63) / 64 * 64 + 64); }

void nnc_destroy(nnc_model *m) {
    if (!m) return;
    for (int t = 0; t < NNC_MAX_THREADS; t++)
        for (int p = 0; p < NNC_PLANS; p++) {
            nnc_run *r = &m->run[t][p];
            free(r->arena);
            for (size_t i = 0; i < NNC_INPUTS; i++) free(r->input[i]);
            free(r->logits);
            free(r->probs);
            free(r->slots);
        }
    free(m);
}

/* NNC_THREADS if set (1 to NNC_MAX_THREADS), else every online core. */
static int thread_count(void) {
    const char *env = getenv("NNC_THREADS");
    long n = env && *env ? strtol(env, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > NNC_MAX_THREADS ? NNC_MAX_THREADS : (int)n;
}

/* The buffers and slot table of each plan for one thread; 0 when out of memory. */
static int alloc_runs(nnc_run *runs) {
    for (int p = 0; p < NNC_PLANS; p++) {
        const nnc_plan *pl = &nnc_plans[p];
        nnc_run *r = &runs[p];
        r->arena = alloc64(pl->arena_bytes);
        for (size_t i = 0; i < NNC_INPUTS; i++) {
            r->input[i] = alloc64(pl->batch * nnc_input_sizes[i] * elem_size(i));
            if (!r->input[i]) return 0;
        }
        r->logits = alloc64(pl->batch * NNC_OUTPUT_SIZE * sizeof(float));
        r->probs = alloc64(pl->batch * (NNC_PROBS_SIZE ? NNC_PROBS_SIZE : 1) * sizeof(float));
        r->slots = calloc(pl->nslots, sizeof(void *));
        if (!r->arena || !r->logits || !r->probs || !r->slots) return 0;
        for (size_t s = 0; s < pl->nslots; s++) {
            const nnc_slot *sl = &pl->slots[s];
            /* The step only reads its parameter slots: the weights stay read-only. */
            r->slots[s] = sl->kind == NNC_SLOT_INPUT    ? r->input[sl->offset]
                          : sl->kind == NNC_SLOT_PARAM  ? (void *)(nnc_weights + sl->offset)
                          : sl->kind == NNC_SLOT_LOGITS ? (void *)r->logits
                                                        : (void *)r->probs;
        }
    }
    return 1;
}

nnc_model *nnc_create(void) {
    nnc_model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->threads = thread_count();
    for (int t = 0; t < m->threads; t++)
        if (!alloc_runs(m->run[t])) {
            nnc_destroy(m);
            return NULL;
        }
    return m;
}

size_t nnc_inputs(void) { return NNC_INPUTS; }
const char *nnc_input_name(size_t i) { return i < NNC_INPUTS ? nnc_input_names[i] : NULL; }
size_t nnc_input_size_of(size_t i) { return i < NNC_INPUTS ? nnc_input_sizes[i] : 0; }
size_t nnc_input_rank_of(size_t i) { return i < NNC_INPUTS ? nnc_input_ranks[i] : 0; }
size_t nnc_input_dim_of(size_t i, size_t axis) {
    return i < NNC_INPUTS && axis < nnc_input_ranks[i] ? nnc_input_dims[i][axis] : 0;
}
int nnc_input_dtype_of(size_t i) { return i < NNC_INPUTS ? nnc_input_dtypes[i] : -1; }
size_t nnc_input_size(void) { return nnc_input_size_of(0); }
size_t nnc_input_rank(void) { return nnc_input_rank_of(0); }
size_t nnc_input_dim(size_t axis) { return nnc_input_dim_of(0, axis); }
int nnc_input_dtype(void) { return nnc_input_dtype_of(0); }
size_t nnc_output_size(void) { return NNC_OUTPUT_SIZE; }
size_t nnc_output_rank(void) { return NNC_OUTPUT_RANK; }
size_t nnc_output_dim(size_t axis) { return axis < NNC_OUTPUT_RANK ? nnc_output_dims[axis] : 0; }
int nnc_output_kind(void) { return NNC_OUTPUT_KIND; }
size_t nnc_classes(void) { return NNC_CLASSES; }
size_t nnc_positions(void) { return NNC_POSITIONS; }
size_t nnc_probs_size(void) { return NNC_PROBS_SIZE; }
const char *nnc_class_name(size_t i) { return NNC_HAS_CLASS_NAMES && i < NNC_CLASSES ? nnc_class_names[i] : NULL; }

/* Whether v is a whole number, without floorf (which does not vectorize
 * under the default -ftrapping-math): from 2^23 up every float is whole;
 * below, adding 2^23 rounds to a whole number, exact only if v was one.
 * NaN fails both comparisons. */
static inline int whole(float v) {
    float a = fabsf(v);
    return (a >= 0x1p23f) | ((a + 0x1p23f) - 0x1p23f == a);
}

/* 1 when `dtype` can hold v. No branches (`&`, not `&&`), so the loops
 * over it vectorize once inlined with a constant dtype: NaN fails every
 * comparison, and an infinity every range (or, for f32, gives NaN for v - v). */
static inline __attribute__((always_inline)) int valid(int dtype, float v) {
    switch (dtype) {
    case NNC_U8: return (v >= 0.0f) & (v <= 255.0f) & whole(v);
    case NNC_I32: return (v >= -2147483648.0f) & (v < 2147483648.0f) & whole(v);
    case NNC_BOOL: return (v == 0.0f) | (v == 1.0f);
    default: return v - v == 0.0f;
    }
}

/* Blocks with a flag accumulated over each (no early exit: it vectorizes);
 * the index is looked for only in a block that has a bad value. */
static inline __attribute__((always_inline)) long long check_as(int dtype, const float *x, size_t count) {
    enum { BLOCK = 1024 };
    for (size_t i0 = 0; i0 < count; i0 += BLOCK) {
        size_t n = count - i0 < BLOCK ? count - i0 : BLOCK;
        int ok = 1;
        for (size_t i = 0; i < n; i++) ok &= valid(dtype, x[i0 + i]);
        if (!ok)
            for (size_t i = 0; i < n; i++)
                if (!valid(dtype, x[i0 + i])) return (long long)(i0 + i);
    }
    return -1;
}

long long nnc_check_of(size_t input, const float *x, size_t count) {
    switch (nnc_input_dtype_of(input)) {
    case NNC_U8: return check_as(NNC_U8, x, count);
    case NNC_I32: return check_as(NNC_I32, x, count);
    case NNC_BOOL: return check_as(NNC_BOOL, x, count);
    case NNC_F32: return check_as(NNC_F32, x, count);
    default: return count ? 0 : -1; /* no input `input`: no value is valid */
    }
}

long long nnc_check(const float *x, size_t count) { return nnc_check_of(0, x, count); }

/* Values already checked by nnc_check_of. One loop per type, so each vectorizes. */
static void convert(int dtype, void *dst, const float *x, size_t count) {
    if (dtype == NNC_U8 || dtype == NNC_BOOL)
        for (size_t i = 0; i < count; i++) ((uint8_t *)dst)[i] = (uint8_t)x[i];
    else if (dtype == NNC_I32)
        for (size_t i = 0; i < count; i++) ((int32_t *)dst)[i] = (int32_t)x[i];
    else
        memcpy(dst, x, count * sizeof(float));
}

/* Points the slots of `kind` (of input `input`, for NNC_SLOT_INPUT) at `to`. */
static void point(nnc_run *r, const nnc_plan *pl, int kind, size_t input, void *to) {
    for (size_t s = 0; s < pl->nslots; s++)
        if (pl->slots[s].kind == kind && (kind != NNC_SLOT_INPUT || pl->slots[s].offset == input)) r->slots[s] = to;
}

/* Each sample's classes from its output values `out`: the first largest
 * score of each vector, or whether each binary value is above even odds. */
static void classify(const float *out, size_t batch, int32_t *classes) {
    if (NNC_OUTPUT_KIND == NNC_CLASS_SCORES)
        for (size_t i = 0; i < batch * NNC_POSITIONS; i++) {
            const float *l = out + i * NNC_CLASSES;
            int32_t best = 0;
            for (int32_t c = 1; c < NNC_CLASSES; c++)
                if (l[c] > l[best]) best = c;
            classes[i] = best;
        }
    else if (NNC_OUTPUT_KIND != NNC_VALUES)
        for (size_t i = 0; i < batch * NNC_POSITIONS; i++)
            classes[i] = NNC_OUTPUT_KIND == NNC_BINARY_LOGITS ? out[i] > 0.0f : out[i] > 0.5f;
}

/* Runs plan `p` on its batch of samples with one thread's buffers `runs`,
 * from sample `at` of each input: raw samples are read where they are (the
 * step never writes its inputs), floats are converted first; the output
 * and probabilities go straight to `output` and `probs` when given. */
static void run_plan(nnc_run *runs, int p, const void *const *raw, const float *const *x, size_t at, float *output,
                     float *probs, int32_t *classes) {
    const nnc_plan *pl = &nnc_plans[p];
    nnc_run *r = &runs[p];
    float *out = output ? output : r->logits;
    for (size_t i = 0; i < NNC_INPUTS; i++) {
        size_t count = pl->batch * nnc_input_sizes[i];
        if (raw) {
            point(r, pl, NNC_SLOT_INPUT, i, (void *)((const unsigned char *)raw[i] + at * nnc_input_sizes[i] * elem_size(i)));
        } else {
            convert(nnc_input_dtypes[i], r->input[i], x[i] + at * nnc_input_sizes[i], count);
            point(r, pl, NNC_SLOT_INPUT, i, r->input[i]);
        }
    }
    point(r, pl, NNC_SLOT_LOGITS, 0, out);
    point(r, pl, NNC_SLOT_PROBS, 0, probs ? probs : r->probs);
    /* Flush denormals while the step runs, as the JIT does: trained weights
     * drift into denormal range, where arithmetic is ~100x slower. */
    unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040);
    pl->step(r->arena, (void *)pl->consts, r->slots, NULL);
    _mm_setcsr(csr);
    if (probs && NNC_OUTPUT_KIND == NNC_PROBABILITIES) memcpy(probs, out, pl->batch * NNC_OUTPUT_SIZE * sizeof(float));
    if (classes) classify(out, pl->batch, classes);
}

/* One thread's share of a call: samples [begin, end). */
typedef struct {
    nnc_run *runs;
    const void *const *raw;
    const float *const *x;
    size_t begin, end;
    float *output, *probs;
    int32_t *classes;
} nnc_share;

/* Full batches of the biggest plan, then of each smaller one in turn. */
static void *run_share(void *arg) {
    const nnc_share *s = arg;
    size_t i = s->begin;
    for (int p = NNC_PLANS - 1; p >= 0; p--) {
        size_t b = nnc_plans[p].batch;
        for (; s->end - i >= b; i += b)
            run_plan(s->runs, p, s->raw, s->x, i, s->output ? s->output + i * NNC_OUTPUT_SIZE : NULL,
                     s->probs ? s->probs + i * NNC_PROBS_SIZE : NULL,
                     s->classes ? s->classes + i * NNC_POSITIONS : NULL);
    }
    return NULL;
}

/* Splits calls of at least two big batches per thread across threads, in
 * whole big batches: each sample's result does not depend on which batch
 * it is in, so the output is the same for any thread count. A thread that
 * cannot start leaves its share to the calling thread. */
static void run_all(nnc_model *m, const void *const *raw, const float *const *x, size_t n, float *output,
                    float *probs, int32_t *classes) {
    size_t big = nnc_plans[NNC_PLANS - 1].batch, threads = (size_t)m->threads;
    while (threads > 1 && n < 2 * big * threads) threads--;
    size_t per = (n / threads + big - 1) / big * big;
    nnc_share shares[NNC_MAX_THREADS];
    pthread_t ids[NNC_MAX_THREADS];
    int started[NNC_MAX_THREADS] = {0};
    for (size_t t = 0; t < threads; t++) {
        size_t begin = t * per < n ? t * per : n, end = t + 1 == threads || (t + 1) * per > n ? n : (t + 1) * per;
        shares[t] = (nnc_share){m->run[t], raw, x, begin, end, output, probs, classes};
        if (t > 0) started[t] = pthread_create(&ids[t], NULL, run_share, &shares[t]) == 0;
    }
    run_share(&shares[0]);
    for (size_t t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(ids[t], NULL);
        else
            run_share(&shares[t]);
    }
}

int nnc_predict_inputs(nnc_model *m, const float *const *x, size_t n, float *output, float *probs, int32_t *classes) {
    if (!m || (!x && n)) return NNC_E_ARG;
    for (size_t i = 0; n && i < NNC_INPUTS; i++) {
        if (!x[i]) return NNC_E_ARG;
        if (nnc_check_of(i, x[i], n * nnc_input_sizes[i]) >= 0) return NNC_E_VALUE;
    }
    run_all(m, NULL, x, n, output, probs, classes);
    return NNC_OK;
}

int nnc_predict_raw_inputs(nnc_model *m, const void *const *x, size_t n, float *output, float *probs,
                           int32_t *classes) {
    if (!m || (!x && n)) return NNC_E_ARG;
    for (size_t i = 0; n && i < NNC_INPUTS; i++) {
        if (!x[i]) return NNC_E_ARG;
        if (nnc_input_dtypes[i] == NNC_BOOL)
            for (size_t k = 0; k < n * nnc_input_sizes[i]; k++)
                if (((const uint8_t *)x[i])[k] > 1) return NNC_E_VALUE;
    }
    run_all(m, x, NULL, n, output, probs, classes);
    return NNC_OK;
}

/* The one-input calls: a model of several inputs takes the *_inputs ones. */
int nnc_predict_output(nnc_model *m, const float *x, size_t n, float *output, float *probs, int32_t *classes) {
    return NNC_INPUTS == 1 ? nnc_predict_inputs(m, &x, n, output, probs, classes) : NNC_E_ARG;
}

int nnc_predict(nnc_model *m, const float *x, size_t n, float *probs, int32_t *classes) {
    return nnc_predict_output(m, x, n, NULL, probs, classes);
}

int nnc_predict_raw_output(nnc_model *m, const void *x, size_t n, float *output, float *probs, int32_t *classes) {
    return NNC_INPUTS == 1 ? nnc_predict_raw_inputs(m, &x, n, output, probs, classes) : NNC_E_ARG;
}

int nnc_predict_raw(nnc_model *m, const void *x, size_t n, float *probs, int32_t *classes) {
    return nnc_predict_raw_output(m, x, n, NULL, probs, classes);
}

const char *nnc_strerror(int code) {
    switch (code) {
    case NNC_OK: return "success";
    case NNC_E_NOMEM: return "out of memory";
    case NNC_E_VALUE: return "an input value the model's input type cannot hold (NaN, infinite, or out of range)";
    case NNC_E_ARG: return "a NULL model or input, or a one-input call to a model of several inputs";
    default: return "unknown error";
    }
}
