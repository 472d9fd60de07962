/* The `main` of an executable built by `nnc build`: reads samples, from
 * one file per input of the model, and prints one prediction per line.
 * Linked only into executables (an object built with --emit obj leaves
 * `main` to its user). Every read is bounds-checked
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

enum { OUT_RAW, OUT_PROBS, OUT_CLASS };

/* What the loss makes the default: cross-entropy class, bce probs, else raw. */
static int default_output(void) {
    switch (nnc_output_kind()) {
    case NNC_CLASS_SCORES: return OUT_CLASS;
    case NNC_VALUES: return OUT_RAW;
    default: return OUT_PROBS;
    }
}

static const char *const output_names[] = {"raw", "probs", "class"};

static void usage(FILE *f) {
    fprintf(f,
            "usage: %s [--json] [--raw] [--output raw|probs|class] %s\n"
            "Runs the model on each sample in FILE (- reads stdin) and prints one line per sample\n"
            "(--json: a JSON object per line):\n"
            "  --output class: the class (of each score vector, or each binary value), then the probabilities\n"
            "  --output probs: the probabilities (%zu a sample)\n"
            "  --output raw:   the model's output values (%zu a sample",
            prog, nnc_inputs() == 1 ? "FILE|-" : "FILE... (one per input, the same number of samples in each)",
            nnc_probs_size(), nnc_output_size());
    for (size_t a = 0; a < nnc_output_rank(); a++) fprintf(f, "%s%zu", a ? " x " : ", shape ", nnc_output_dim(a));
    fprintf(f, ")\nDefault: --output %s.\n", output_names[default_output()]);
    for (size_t i = 0; i < nnc_inputs(); i++) {
        size_t size = nnc_input_size_of(i);
        fprintf(f, "Input %s (one sample: %zu value%s", nnc_input_name(i), size, size == 1 ? "" : "s");
        for (size_t a = 0; a < nnc_input_rank_of(i); a++)
            fprintf(f, "%s%zu", a ? " x " : ", shape ", nnc_input_dim_of(i, a));
        fprintf(f, ")\n");
    }
    fprintf(f,
            "Each input file is:\n"
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

/* Input `i` of every sample in `path`, as floats; sets *n to the count. */
static float *read_input(size_t i, const char *path, int raw, size_t *n) {
    size_t len, dims[16];
    unsigned char *bytes = slurp(path, &len);
    size_t rank = nnc_input_rank_of(i);
    if (rank > 16) die(1, "inputs of rank %zu are not supported (at most 16)", rank);
    for (size_t a = 0; a < rank; a++) dims[a] = nnc_input_dim_of(i, a);
    nnc_io_input in = {rank, dims, nnc_input_size_of(i), nnc_input_dtype_of(i)};
    char err[512];
    float *x = nnc_io_read(bytes, len, raw, &in, n, err, sizeof err);
    if (!x) die(1, "%s: %s", path, err);
    return x;
}

int main(int argc, char **argv) {
    prog = argv[0];
    int json = 0, raw = 0, output = default_output();
    size_t npaths = 0, inputs = nnc_inputs(), stdin_uses = 0;
    const char **paths = malloc(inputs * sizeof *paths);
    if (!paths) die(1, "out of memory");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) json = 1;
        else if (strcmp(argv[i], "--raw") == 0) raw = 1;
        else if (strcmp(argv[i], "--output") == 0 && i + 1 < argc) {
            const char *o = argv[++i];
            output = strcmp(o, "raw") == 0 ? OUT_RAW : strcmp(o, "probs") == 0 ? OUT_PROBS : strcmp(o, "class") == 0 ? OUT_CLASS : -1;
            if (output < 0) { usage(stderr); die(2, "--output takes raw, probs or class, not %s", o); }
        }
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) { usage(stdout); return 0; }
        else if (argv[i][0] == '-' && argv[i][1] != '\0') { usage(stderr); die(2, "unknown option %s", argv[i]); }
        else if (npaths == inputs) {
            usage(stderr);
            if (inputs == 1) die(2, "one input file at a time");
            die(2, "one input file per input of the model, %zu in all", inputs);
        }
        else {
            stdin_uses += strcmp(argv[i], "-") == 0;
            paths[npaths++] = argv[i];
        }
    }
    if (stdin_uses > 1) { usage(stderr); die(2, "- (stdin) can be given for one input only"); }
    if (!npaths) { usage(stderr); die(2, "no input: give a file, or - for stdin"); }
    if (npaths != inputs) { usage(stderr); die(2, "the model takes %zu input files, one per input; %zu given", inputs, npaths); }
    size_t n = 0;
    float **xs = malloc(inputs * sizeof *xs);
    if (!xs) die(1, "out of memory");
    for (size_t i = 0; i < inputs; i++) {
        size_t ni;
        xs[i] = read_input(i, paths[i], raw, &ni);
        if (i > 0 && ni != n) die(1, "%s: %zu samples, but %s holds %zu", paths[i], ni, paths[0], n);
        n = ni;
    }
    if ((output == OUT_PROBS && !nnc_probs_size()) || (output == OUT_CLASS && !nnc_positions()))
        die(2, "--output %s: this model's output has no %s (its loss does not make it class scores or "
               "probabilities); --output raw prints its values", output_names[output],
            output == OUT_PROBS ? "probability vector" : "classes");
    nnc_model *m = nnc_create();
    /* +1: a zero-size allocation may be NULL. */
    float *values = malloc((n * nnc_output_size() + 1) * sizeof(float));
    float *probs = malloc((n * nnc_probs_size() + 1) * sizeof(float));
    int32_t *classes = malloc((n * nnc_positions() + 1) * sizeof(int32_t));
    if (!m || !values || !probs || !classes) die(1, "out of memory");
    int rc = nnc_predict_inputs(m, (const float *const *)xs, n, values, probs, classes);
    if (rc != NNC_OK) die(1, "%s", nnc_strerror(rc));
    const char **names = NULL;
    if (output == OUT_CLASS && nnc_class_name(0)) {
        names = malloc(nnc_classes() * sizeof *names);
        if (!names) die(1, "out of memory");
        for (size_t c = 0; c < nnc_classes(); c++) names[c] = nnc_class_name(c);
    }
    char *text = output == OUT_RAW ? nnc_io_format(n, 0, classes, nnc_output_size(), values, "output", json, NULL)
                 : output == OUT_PROBS
                     ? nnc_io_format(n, 0, classes, nnc_probs_size(), probs, "probs", json, NULL)
                     : nnc_io_format(n, nnc_positions(), classes, nnc_probs_size(), probs, "probs", json, names);
    if (!text) die(1, "out of memory");
    fputs(text, stdout);
    nnc_destroy(m);
    return 0;
}
