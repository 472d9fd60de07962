/* classify: a C program that links a model compiled by `nnc build`.
 *
 *   nnc run examples/mnist.nn                      # train; writes runs/<exp>-<time>/
 *   nnc build examples/mnist.nn --checkpoint runs/<exp>-<time>/checkpoints/final.safetensors \
 *       --emit obj -o model                        # writes model.o and model.h
 *   cc -O2 -I. examples/embed/classify.c model.o -lm -pthread -o classify
 *   ./classify < samples.f32
 *
 * It reads samples from stdin as raw little-endian float32 values, one
 * sample (nnc_input_size() values) after another, and prints one line per
 * sample: its class and that class's probability. Nothing in it depends
 * on the model: model.h documents the whole interface. */
#include <stdio.h>
#include <stdlib.h>

#include "model.h"

int main(void) {
    nnc_model *m = nnc_create();
    size_t size = nnc_input_size(), classes = nnc_classes();
    float *x = malloc(size * sizeof(float)), *probs = malloc(classes * sizeof(float));
    if (!m || !x || !probs) {
        fprintf(stderr, "classify: out of memory\n");
        return 1;
    }
    size_t n = 0;
    while (fread(x, sizeof(float), size, stdin) == size) {
        int32_t class;
        int rc = nnc_predict(m, x, 1, probs, &class);
        if (rc != NNC_OK) {
            fprintf(stderr, "classify: sample %zu: %s\n", n + 1, nnc_strerror(rc));
            return 1;
        }
        printf("%d %.6f\n", class, probs[class]);
        n++;
    }
    nnc_destroy(m);
    free(x);
    free(probs);
    return 0;
}
