/* The `main` of a text generator built by `nnc build` from a language
 * model: the one-position step nnc derived from the model (src/decode.rs),
 * compiled ahead of time, with its key/value caches, the weights and the
 * vocabulary embedded. It continues a prompt exactly as `nnc sample` does
 * (src/build/sample.rs): the same window rule, the same draws from the
 * same SplitMix64 stream, in the same double-precision arithmetic, so one
 * seed prints one text from either.
 *
 * nnc_gen_plan.h (generated) holds the window size, the vocabulary, the
 * step's slot table and its arena size. Compiled without floating-point
 * contraction: the sampling arithmetic must round as Rust's does. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xmmintrin.h>

#define NNC_INTERNAL __attribute__((visibility("hidden")))

typedef void (*nnc_step_fn)(void *arena, void *consts, void *const *slots, const void *pool);

enum { NNC_G_TOKEN, NNC_G_POSITION, NNC_G_PARAM, NNC_G_CACHE, NNC_G_NEXT, NNC_G_LOGITS };

typedef struct {
    int kind;
    size_t arg;   /* byte offset into nnc_weights (PARAM), cache index (CACHE, NEXT) */
    size_t bytes; /* of the buffer (all but PARAM) */
} nnc_gen_slot;

#include "nnc_gen_plan.h"

#include "die.c"

static void *alloc64(size_t bytes) {
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    if (!p) die(1, "out of memory");
    memset(p, 0, (bytes + 63) / 64 * 64 + 64);
    return p;
}

/* ---- the step and its caches ---- */

typedef struct {
    void *arena, **slots;
    int32_t *token, *position;
    float *logits;
    float *cache[NNC_CACHES + 1], *next[NNC_CACHES + 1];
    size_t cache_bytes[NNC_CACHES + 1];
    int32_t held[NNC_CONTEXT]; /* the window's tokens the caches hold, from position 0 */
    size_t nheld;
} step;

static void step_init(step *s) {
    s->arena = alloc64(NNC_ARENA_BYTES);
    s->slots = calloc(NNC_NSLOTS + 1, sizeof(void *));
    if (!s->slots) die(1, "out of memory");
    s->nheld = 0;
    for (size_t i = 0; i < NNC_NSLOTS; i++) {
        const nnc_gen_slot *sl = &nnc_gen_slots[i];
        void *buf = sl->kind == NNC_G_PARAM ? (void *)(nnc_weights + sl->arg) : alloc64(sl->bytes);
        s->slots[i] = buf;
        if (sl->kind == NNC_G_TOKEN) s->token = buf;
        if (sl->kind == NNC_G_POSITION) s->position = buf;
        if (sl->kind == NNC_G_LOGITS) s->logits = buf;
        if (sl->kind == NNC_G_CACHE) s->cache[sl->arg] = buf, s->cache_bytes[sl->arg] = sl->bytes;
        if (sl->kind == NNC_G_NEXT) s->next[sl->arg] = buf;
    }
}

/* The scores after the last token of `window` (n >= 1 tokens), running the
 * positions the caches do not hold yet. */
static const float *step_scores(step *s, const int32_t *window, size_t n) {
    size_t kept = 0;
    while (kept < s->nheld && kept < n - 1 && s->held[kept] == window[kept]) kept++;
    s->nheld = kept;
    if (kept == 0)
        for (int c = 0; c < NNC_CACHES; c++) memset(s->cache[c], 0, s->cache_bytes[c]);
    for (size_t p = kept; p < n; p++) {
        s->token[0] = window[p];
        if (s->position) s->position[0] = (int32_t)p;
        /* Denormals flushed in the step, as the JIT runs it; not in the sampling. */
        unsigned csr = _mm_getcsr();
        _mm_setcsr(csr | 0x8040);
        nnc_gen_step(s->arena, (void *)nnc_gen_consts, (void *const *)s->slots, NULL);
        _mm_setcsr(csr);
        for (int c = 0; c < NNC_CACHES; c++) memcpy(s->cache[c], s->next[c], s->cache_bytes[c]);
        s->held[s->nheld++] = window[p];
    }
    return s->logits;
}

/* ---- drawing the next token: src/build/sample.rs's `choose` ---- */

static uint64_t splitmix(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct {
    size_t id;
    double p;
} ranked;

/* Most likely first, ties by id: a total order, so any sort agrees with Rust's. */
static int by_probability(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

typedef struct {
    double temperature, top_p;
    size_t top_k; /* 0: no cut */
} sampling;

static size_t choose(const float *scores, size_t n, const sampling *s, uint64_t *rng, ranked *r) {
    size_t best = 0;
    for (size_t i = 0; i < n; i++)
        if (scores[i] > scores[best]) best = i;
    if (s->temperature <= 0.0 || n < 2) return best;
    float maxf = -INFINITY;
    for (size_t i = 0; i < n; i++) maxf = fmaxf(maxf, scores[i]);
    double max = maxf, sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        r[i].id = i;
        r[i].p = exp(((double)scores[i] - max) / s->temperature);
        sum += r[i].p;
    }
    for (size_t i = 0; i < n; i++) r[i].p = r[i].p / sum;
    qsort(r, n, sizeof *r, by_probability);
    size_t keep = n;
    if (s->top_k && s->top_k < keep) keep = s->top_k;
    if (s->top_p > 0.0) {
        double before = 0.0;
        size_t m = 0;
        while (m < keep && before < s->top_p) before += r[m++].p;
        keep = m ? m : 1;
    }
    double total = 0.0;
    for (size_t i = 0; i < keep; i++) total += r[i].p;
    double u = (double)(splitmix(rng) >> 11) / (double)(1ull << 53) * total;
    for (size_t i = 0; i < keep; i++) {
        if (u < r[i].p) return r[i].id;
        u -= r[i].p;
    }
    return r[keep - 1].id;
}

/* ---- text ---- */

/* The id of the UTF-8 character at `*at` in `text`, advancing past it; -1
 * when it is not in the vocabulary, -2 when the bytes are not UTF-8. */
static long next_id(const char *text, size_t *at) {
    const unsigned char *u = (const unsigned char *)text + *at;
    size_t len = u[0] < 0x80 ? 1 : (u[0] >> 5) == 6 ? 2 : (u[0] >> 4) == 14 ? 3 : (u[0] >> 3) == 30 ? 4 : 0;
    if (!len) return -2;
    for (size_t i = 1; i < len; i++)
        if ((u[i] & 0xC0) != 0x80) return -2;
    *at += len;
    for (size_t id = 0; id < NNC_VOCAB; id++)
        if (strlen(nnc_vocab[id]) == len && memcmp(nnc_vocab[id], u, len) == 0) return (long)id;
    return -1;
}

static char *slurp_stdin(void) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) die(1, "out of memory reading stdin");
        n += fread(buf + n, 1, cap - 1 - n, stdin);
        if (n < cap - 1) break;
        cap *= 2;
        buf = realloc(buf, cap);
    }
    if (ferror(stdin)) die(1, "cannot read stdin: %s", strerror(errno));
    buf[n] = '\0';
    return buf;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: %s [PROMPT|-] [--tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S]\n"
            "Continues PROMPT (default: a newline; - reads it from stdin) with N characters (default 200)\n"
            "drawn from the trained model, streamed to stdout: the same text as `nnc sample` for the same\n"
            "options. --temperature divides the scores before the softmax (default 0.8; 0 takes the most\n"
            "likely character); --top-k and --top-p cut the draw to the K most likely characters, or to\n"
            "those whose probabilities add up to P; --seed (default 0) picks the text.\n"
            "The model sees %d characters at once; its vocabulary has %d.\n",
            prog, NNC_CONTEXT, NNC_VOCAB);
}

static double number(const char *opt, const char *v, double lo, double hi) {
    char *end;
    errno = 0;
    double x = v ? strtod(v, &end) : NAN;
    if (!v || errno || *end || !(x >= lo && x <= hi)) die(2, "%s needs a number in [%g, %g]", opt, lo, hi);
    return x;
}

static unsigned long long integer(const char *opt, const char *v, unsigned long long lo) {
    char *end;
    errno = 0;
    unsigned long long x = v && *v != '-' ? strtoull(v, &end, 10) : 0;
    if (!v || *v == '-' || errno || *end || x < lo) die(2, "%s needs a whole number >= %llu", opt, lo);
    return x;
}

int main(int argc, char **argv) {
    prog = argv[0];
    const char *prompt = NULL;
    size_t tokens = 200;
    sampling s = {0.8, 0.0, 0};
    uint64_t seed = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--tokens")) tokens = integer(a, v, 0), i++;
        else if (!strcmp(a, "--temperature")) s.temperature = number(a, v, 0.0, 1e308), i++;
        else if (!strcmp(a, "--top-k")) s.top_k = integer(a, v, 1), i++;
        else if (!strcmp(a, "--top-p")) s.top_p = number(a, v, 1e-300, 1.0), i++;
        else if (!strcmp(a, "--seed")) seed = integer(a, v, 0), i++;
        else if (a[0] == '-' && a[1] != '\0') { usage(stderr); die(2, "unknown option %s", a); }
        else if (prompt) { usage(stderr); die(2, "one prompt at a time"); }
        else prompt = a;
    }
    if (!prompt) prompt = "\n";
    else if (!strcmp(prompt, "-")) prompt = slurp_stdin();
    size_t plen = strlen(prompt), cap = plen + tokens + 1, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    ranked *r = malloc(NNC_VOCAB * sizeof *r);
    if (!ids || !r) die(1, "out of memory");
    for (size_t at = 0; at < plen;) {
        size_t from = at;
        long id = next_id(prompt, &at);
        if (id == -2) die(1, "the prompt is not UTF-8 text (byte %zu)", from);
        if (id < 0) die(1, "the prompt's %.*s is not in the model's vocabulary of %d characters", (int)(at - from), prompt + from, NNC_VOCAB);
        ids[n++] = (int32_t)id;
    }
    if (!n) die(1, "the prompt is empty: give at least one character to continue");
    step st;
    step_init(&st);
    uint64_t rng = seed;
    size_t start = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    fputs(prompt, stdout);
    for (size_t k = 0; k < tokens; k++) {
        if (n - start > NNC_CONTEXT) start = n - (NNC_CONTEXT + 1) / 2;
        const float *scores = step_scores(&st, ids + start, n - start);
        size_t id = choose(scores, NNC_VOCAB, &s, &rng, r);
        ids[n++] = (int32_t)id;
        /* A closed pipe (`| head`) ends the text quietly. */
        if (fputs(nnc_vocab[id], stdout) < 0 || fflush(stdout)) return 0;
    }
    putchar('\n');
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    fprintf(stderr, "%zu tokens in %.1f ms (%.3f ms per token)\n", tokens, ms, ms / (tokens ? tokens : 1));
    return 0;
}
