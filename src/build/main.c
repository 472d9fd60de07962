/* The `main` of an executable built by `nnc build`: reads samples, prints
 * one prediction per line. Linked only into executables (an object built
 * with --emit obj leaves `main` to its user). Every read is bounds-checked
 * against the input's size; bad input is a message on stderr and exit 1.
 * Any input may be gzip-compressed (inflate.c). */
#include "nnc_model.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inflate.c"

static const char *prog = "model";

static void die(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: error: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

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

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* One IDX element at p of type code `t` as a float (big-endian). */
static float idx_elem(const unsigned char *p, int t) {
    uint32_t u;
    switch (t) {
    case 0x08: return p[0];
    case 0x09: return (signed char)p[0];
    case 0x0B: return (int16_t)(p[0] << 8 | p[1]);
    case 0x0C: return (float)(int32_t)be32(p);
    case 0x0D: u = be32(p); float f; memcpy(&f, &u, 4); return f;
    default: {
        uint64_t v = (uint64_t)be32(p) << 32 | be32(p + 4);
        double d;
        memcpy(&d, &v, 8);
        return (float)d;
    }
    }
}

static size_t idx_size(int t) {
    switch (t) {
    case 0x08: case 0x09: return 1;
    case 0x0B: return 2;
    case 0x0C: case 0x0D: return 4;
    case 0x0E: return 8;
    default: return 0;
    }
}

/* IDX: samples as floats; *n gets their count. */
static float *read_idx(const unsigned char *b, size_t len, size_t *n) {
    if (len < 4 || b[0] != 0 || b[1] != 0 || idx_size(b[2]) == 0)
        die(1, "not an IDX file: bad magic number (expected 00 00, a type code 08/09/0B/0C/0D/0E, the rank)");
    size_t rank = b[3], esz = idx_size(b[2]);
    if (rank != nnc_input_rank() + 1)
        die(1, "the IDX file has rank %zu; this model takes samples of rank %zu (so files of rank %zu)", rank,
            nnc_input_rank(), nnc_input_rank() + 1);
    if (len < 4 + 4 * rank) die(1, "truncated IDX header: %zu bytes", len);
    *n = be32(b + 4);
    for (size_t a = 1; a < rank; a++)
        if (be32(b + 4 + 4 * a) != nnc_input_dim(a - 1))
            die(1, "IDX sample dimension %zu is %u; the model needs %zu", a, be32(b + 4 + 4 * a), nnc_input_dim(a - 1));
    size_t per = nnc_input_size(), payload = len - 4 - 4 * rank;
    if (*n != 0 && (per > SIZE_MAX / esz / *n || payload != *n * per * esz))
        die(1, "the IDX header promises %zu samples (%zu bytes) but the file holds %zu bytes of data", *n,
            *n * per * esz, payload);
    float *x = malloc((*n * per + 1) * sizeof(float));
    if (!x) die(1, "out of memory");
    const unsigned char *p = b + 4 + 4 * rank;
    for (size_t i = 0; i < *n * per; i++) x[i] = idx_elem(p + i * esz, b[2]);
    return x;
}

/* Raw little-endian float32. */
static float *read_raw(const unsigned char *b, size_t len, size_t *n) {
    size_t per = nnc_input_size() * 4;
    if (len == 0 || len % per != 0)
        die(1, "raw input of %zu bytes is not a whole number of samples (%zu float32 values = %zu bytes each)", len,
            nnc_input_size(), per);
    *n = len / per;
    float *x = malloc(len);
    if (!x) die(1, "out of memory");
    memcpy(x, b, len);
    return x;
}

/* CSV: one sample per line, comma-separated; blank lines skipped. */
static float *read_csv(unsigned char *b, size_t len, size_t *n) {
    size_t per = nnc_input_size(), cap = 1024, used = 0, line = 0;
    float *x = malloc(cap * sizeof(float));
    char *s = (char *)b, *end = s + len;
    *n = 0;
    while (s < end && x) {
        char *nl = memchr(s, '\n', (size_t)(end - s));
        char *eol = nl ? nl : end;
        line++;
        *eol = '\0'; /* overwrites the newline or the spare byte slurp's caller keeps */
        char *p = s + strspn(s, " \t\r");
        if (*p) {
            size_t count = 0;
            for (;;) {
                char *q;
                errno = 0;
                float v = strtof(p, &q);
                if (q == p) die(1, "line %zu, value %zu: not a number: `%.20s`", line, count + 1, p);
                if (++count > per) die(1, "line %zu has more than %zu values (one sample per line)", line, per);
                if (used == cap) {
                    cap *= 2;
                    x = realloc(x, cap * sizeof(float));
                    if (!x) die(1, "out of memory");
                }
                x[used++] = v;
                p = q + strspn(q, " \t\r");
                if (*p == '\0') break;
                if (*p != ',') die(1, "line %zu, value %zu: expected a comma, found `%c`", line, count, *p);
                p++;
            }
            if (count != per) die(1, "line %zu has %zu values; a sample has %zu", line, count, per);
            (*n)++;
        }
        s = eol + 1;
    }
    if (!x) die(1, "out of memory");
    return x;
}

static const char *problem(float v) {
    if (v != v) return "NaN";
    if (v - v != 0.0f) return "infinite";
    switch (nnc_input_dtype()) {
    case NNC_U8: return "not a whole number in 0..255 (the model's input is u8)";
    case NNC_I32: return "not a 32-bit whole number (the model's input is i32)";
    case NNC_BOOL: return "not 0 or 1 (the model's input is bool)";
    default: return "invalid";
    }
}

static void print(size_t n, const int32_t *classes, const float *probs, int json) {
    size_t c = nnc_classes();
    for (size_t i = 0; i < n; i++) {
        printf(json ? "{\"class\": %d, \"probs\": [" : "%d", classes[i]);
        for (size_t j = 0; j < c; j++) printf("%s%.9g", j == 0 && json ? "" : json ? ", " : " ", probs[i * c + j]);
        fputs(json ? "]}\n" : "\n", stdout);
    }
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
    /* slurp (and gunzip) leave room for one more byte: CSV parsing writes a terminator there. */
    if (len >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) {
        const char *why;
        size_t plain_len;
        unsigned char *plain = gunzip(bytes, len, &plain_len, &why);
        if (!plain) die(1, "%s: %s", path, why);
        free(bytes);
        bytes = plain;
        len = plain_len;
    }
    float *x;
    if (raw) x = read_raw(bytes, len, &n);
    else if (len >= 2 && bytes[0] == 0 && bytes[1] == 0) x = read_idx(bytes, len, &n);
    else x = read_csv(bytes, len, &n);
    if (n == 0) die(1, "%s holds no samples", path);
    long long bad = nnc_check(x, n * nnc_input_size());
    if (bad >= 0)
        die(1, "sample %lld, value %lld is %s", bad / (long long)nnc_input_size() + 1,
            bad % (long long)nnc_input_size() + 1, problem(x[bad]));
    nnc_model *m = nnc_create();
    float *probs = malloc(n * nnc_classes() * sizeof(float));
    int32_t *classes = malloc(n * sizeof(int32_t));
    if (!m || !probs || !classes) die(1, "out of memory");
    int rc = nnc_predict(m, x, n, probs, classes);
    if (rc != NNC_OK) die(1, "%s", nnc_strerror(rc));
    print(n, classes, probs, json);
    nnc_destroy(m);
    return 0;
}
