/* The functions the generated code imports (nnc_rt_*), for every kind of
 * build: included by rt.c (models behind nnc_model.h) and compiled on its
 * own for text generators (gen.c). */
#ifndef NNC_KERNELS_C
#define NNC_KERNELS_C

#include <math.h>
#include <stdint.h>

#define NNC_INTERNAL __attribute__((visibility("hidden")))

typedef void (*nnc_kernel_fn)(void *arena, void *consts, void *const *slots, int64_t start, int64_t end);

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

#include "sgemm.c"
#include "conv.c"

NNC_INTERNAL void nnc_rt_conv(const int64_t *desc, float *x, float *w, float *y, int64_t start, int64_t end) {
    nnc_conv_run(desc, x, w, y, start, end, nnc_rt_sgemm);
}

#endif
