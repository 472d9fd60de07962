/* The `main` of an executable built by `nnc build`: reads samples, prints
 * one prediction per line. Linked only into executables (an object built
 * with --emit obj leaves `main` to its user). Every read is bounds-checked
 * against the input's size; bad input is a message on stderr and exit 1.
 * Reading and printing are io.c's, shared with `nnc predict`. */
#include "nnc_model.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.c"

#include "die.c"

static void usage(FILE *f) {
    fprintf(f,
            "usage: %s [--json] [--raw] FILE|-\n"
            "Predicts the class of each sample in FILE (- reads stdin) and prints one line per sample:\n"
            "the class, then the probability of each of the %zu classes (--json: a JSON object per line).\n"
            "Input (one sample: %zu values",
            prog, nnc_classes(), nnc_input_size());
    for (size_t a = 0; a < nnc_input_rank(); a++) fprintf(f, "%s%zu", a ? " x " : ", shape ", nnc_input_dim(a));
    fprintf(f,
            "):\n"
            "  IDX (MNIST format, plain or gzip): N samples of that shape\n"
            "  CSV: one sample per line, values separated by commas\n"
            "  --raw: little-endian float32 values, N samples back to back\n");
}

/* The whole of `path` (or stdin). */
static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) die(1, "cannot open %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (!buf) die(1, "out of memory reading %s", path);
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        cap *= 2;
        buf = realloc(buf, cap);
    }
    if (ferror(f)) die(1, "cannot read %s", path);
    if (f != stdin) fclose(f);
    *len = n;
    return buf;
}

int main(int argc, char **argv) {
    prog = argv[0];
    int json = 0, raw = 0;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) json = 1;
        else if (strcmp(argv[i], "--raw") == 0) raw = 1;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) { usage(stdout); return 0; }
        else if (argv[i][0] == '-' && argv[i][1] != '\0') { usage(stderr); die(2, "unknown option %s", argv[i]); }
        else if (path) { usage(stderr); die(2, "one input file at a time"); }
        else path = argv[i];
    }
    if (!path) { usage(stderr); die(2, "no input: give a file, or - for stdin"); }
    size_t len, n;
    unsigned char *bytes = slurp(path, &len);
    size_t dims[16];
    size_t rank = nnc_input_rank();
    if (rank > 16) die(1, "inputs of rank %zu are not supported (at most 16)", rank);
    for (size_t a = 0; a < rank; a++) dims[a] = nnc_input_dim(a);
    nnc_io_input in = {rank, dims, nnc_input_size(), nnc_input_dtype()};
    char err[512];
    float *x = nnc_io_read(bytes, len, raw, &in, &n, err, sizeof err);
    if (!x) die(1, "%s: %s", path, err);
    nnc_model *m = nnc_create();
    float *probs = malloc(n * nnc_classes() * sizeof(float));
    int32_t *classes = malloc(n * sizeof(int32_t));
    if (!m || !probs || !classes) die(1, "out of memory");
    int rc = nnc_predict(m, x, n, probs, classes);
    if (rc != NNC_OK) die(1, "%s", nnc_strerror(rc));
    const char **names = NULL;
    if (nnc_class_name(0)) {
        names = malloc(nnc_classes() * sizeof *names);
        if (!names) die(1, "out of memory");
        for (size_t c = 0; c < nnc_classes(); c++) names[c] = nnc_class_name(c);
    }
    char *text = nnc_io_format(n, nnc_classes(), classes, probs, json, names);
    if (!text) die(1, "out of memory");
    fputs(text, stdout);
    nnc_destroy(m);
    return 0;
}
