/* Latency and throughput of a model built with `nnc build --emit obj`,
 * through its C ABI (see benches/standalone.sh).
 *
 *   bench IMAGES.idx   (uncompressed IDX of u8 samples of the model's input shape)
 *
 * Prints: single-sample latency (median and min of per-call times, raw u8
 * input and float input, one thread), and throughput at batch 1000 over every
 * sample, on one thread and on every core. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median and min of `reps` single-sample calls, in microseconds. */
static void latency(nnc_model *m, const unsigned char *img, const float *fimg, size_t n, int raw) {
    enum { REPS = 20000 };
    static double t[REPS];
    size_t size = nnc_input_size();
    float probs[1024];
    int32_t cls;
    for (int r = 0; r < REPS; r++) {
        size_t i = (size_t)r % n;
        double t0 = now();
        if (raw) nnc_predict_raw(m, img + i * size, 1, probs, &cls);
        else nnc_predict(m, fimg + i * size, 1, probs, &cls);
        t[r] = now() - t0;
    }
    qsort(t, REPS, sizeof t[0], cmp);
    printf("latency_%s_us median %.2f min %.2f\n", raw ? "u8" : "f32", t[REPS / 2] * 1e6, t[0] * 1e6);
}

/* Samples per second predicting all n samples in calls of 1000, best of 10. */
static void throughput(nnc_model *m, const char *label, const unsigned char *img, size_t n, float *probs,
                       int32_t *cls) {
    size_t size = nnc_input_size();
    double best = 1e30;
    for (int rep = 0; rep < 10; rep++) {
        double t0 = now();
        for (size_t i = 0; i + 1000 <= n; i += 1000)
            nnc_predict_raw(m, img + i * size, 1000, probs + i * nnc_classes(), cls + i);
        double t = now() - t0;
        if (t < best) best = t;
    }
    printf("throughput_batch1000 (%s) %.0f samples/s (%zu samples, best of 10)\n", label, (n / 1000 * 1000) / best, n);
}

int main(int argc, char **argv) {
    if (argc != 2) return fprintf(stderr, "usage: bench IMAGES.idx\n"), 2;
    FILE *f = fopen(argv[1], "rb");
    if (!f) return perror(argv[1]), 1;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(len);
    if (!b || fread(b, 1, len, f) != (size_t)len) return fprintf(stderr, "cannot read\n"), 1;
    size_t rank = b[3], size = nnc_input_size(), header = 4 + 4 * rank;
    size_t n = (size_t)(len - header) / size;
    const unsigned char *img = b + header;
    float *fimg = malloc(n * size * sizeof(float));
    for (size_t i = 0; i < n * size; i++) fimg[i] = img[i];
    /* The thread count is read when a model is created. */
    setenv("NNC_THREADS", "1", 1);
    nnc_model *one = nnc_create();
    unsetenv("NNC_THREADS");
    nnc_model *all = nnc_create();
    float *probs = malloc(n * nnc_classes() * sizeof(float));
    int32_t *cls = malloc(n * sizeof(int32_t));
    if (!one || !all || !probs || !cls) return fprintf(stderr, "out of memory\n"), 1;
    latency(one, img, fimg, n, 1);
    latency(one, img, fimg, n, 0);
    throughput(one, "1 thread", img, n, probs, cls);
    throughput(all, "every core", img, n, probs, cls);
    nnc_destroy(one);
    nnc_destroy(all);
    return 0;
}
