/* The one reader and printer of predictions: the built executable's main.c
 * includes it, and `nnc predict` links the same file (compiled by build.rs),
 * so both accept exactly the same inputs and print the same bytes.
 *
 * Inputs: IDX (plain or gzip, any element type), CSV (one sample per line,
 * comma-separated, plain or gzip), or with `raw` little-endian float32.
 * Every read is bounds-checked against the input's size; a problem is a
 * message in `err` and a NULL result, never a partial read. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inflate.c"

/* What one sample looks like: dims, element count, dtype (the NNC_* codes
 * of nnc_model.h: 0 f32, 1 i32, 2 u8, 3 bool). */
typedef struct {
    size_t rank;
    const size_t *dims;
    size_t size;
    int dtype;
} nnc_io_input;

enum { NNC_IO_F32 = 0, NNC_IO_I32 = 1, NNC_IO_U8 = 2, NNC_IO_BOOL = 3 };

static void io_fail(char *err, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

static uint32_t io_be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* One IDX element at p of type code `t` as a float (big-endian). */
static float io_idx_elem(const unsigned char *p, int t) {
    uint32_t u;
    switch (t) {
    case 0x08: return p[0];
    case 0x09: return (signed char)p[0];
    case 0x0B: return (int16_t)(p[0] << 8 | p[1]);
    case 0x0C: return (float)(int32_t)io_be32(p);
    case 0x0D: u = io_be32(p); float f; memcpy(&f, &u, 4); return f;
    default: {
        uint64_t v = (uint64_t)io_be32(p) << 32 | io_be32(p + 4);
        double d;
        memcpy(&d, &v, 8);
        return (float)d;
    }
    }
}

static size_t io_idx_size(int t) {
    switch (t) {
    case 0x08: case 0x09: return 1;
    case 0x0B: return 2;
    case 0x0C: case 0x0D: return 4;
    case 0x0E: return 8;
    default: return 0;
    }
}

static float *io_read_idx(const unsigned char *b, size_t len, const nnc_io_input *in, size_t *n, char *err,
                          size_t cap) {
    if (len < 4 || b[0] != 0 || b[1] != 0 || io_idx_size(b[2]) == 0) {
        io_fail(err, cap, "not an IDX file: bad magic number (expected 00 00, a type code 08/09/0B/0C/0D/0E, the rank)");
        return NULL;
    }
    size_t rank = b[3], esz = io_idx_size(b[2]);
    if (rank != in->rank + 1) {
        io_fail(err, cap, "the IDX file has rank %zu; this model takes samples of rank %zu (so files of rank %zu)",
                rank, in->rank, in->rank + 1);
        return NULL;
    }
    if (len < 4 + 4 * rank) {
        io_fail(err, cap, "truncated IDX header: %zu bytes", len);
        return NULL;
    }
    *n = io_be32(b + 4);
    for (size_t a = 1; a < rank; a++) {
        if (io_be32(b + 4 + 4 * a) != in->dims[a - 1]) {
            io_fail(err, cap, "IDX sample dimension %zu is %u; the model needs %zu", a, io_be32(b + 4 + 4 * a),
                    in->dims[a - 1]);
            return NULL;
        }
    }
    size_t per = in->size, payload = len - 4 - 4 * rank;
    if (*n != 0 && (per > SIZE_MAX / esz / *n || payload != *n * per * esz)) {
        io_fail(err, cap, "the IDX header promises %zu samples (%zu bytes) but the file holds %zu bytes of data", *n,
                *n * per * esz, payload);
        return NULL;
    }
    float *x = malloc((*n * per + 1) * sizeof(float));
    if (!x) {
        io_fail(err, cap, "out of memory");
        return NULL;
    }
    const unsigned char *p = b + 4 + 4 * rank;
    for (size_t i = 0; i < *n * per; i++) x[i] = io_idx_elem(p + i * esz, b[2]);
    return x;
}

static float *io_read_raw(const unsigned char *b, size_t len, const nnc_io_input *in, size_t *n, char *err,
                          size_t cap) {
    size_t per = in->size * 4;
    if (len == 0 || len % per != 0) {
        io_fail(err, cap,
                "raw input of %zu bytes is not a whole number of samples (%zu float32 values = %zu bytes each)", len,
                in->size, per);
        return NULL;
    }
    *n = len / per;
    float *x = malloc(len);
    if (!x) {
        io_fail(err, cap, "out of memory");
        return NULL;
    }
    /* Little-endian on every host: assemble each value from its bytes. */
    for (size_t i = 0; i < len / 4; i++) {
        uint32_t u = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 | (uint32_t)b[4 * i + 2] << 16 |
                     (uint32_t)b[4 * i + 3] << 24;
        memcpy(&x[i], &u, 4);
    }
    return x;
}

/* CSV: one sample per line, comma-separated; blank lines skipped. Values
 * are C numbers (strtof: decimal, exponent, hex floats). */
static float *io_read_csv(unsigned char *b, size_t len, const nnc_io_input *in, size_t *n, char *err, size_t cap) {
    if (memchr(b, '\0', len)) {
        size_t at = (size_t)((unsigned char *)memchr(b, '\0', len) - b);
        io_fail(err, cap, "not CSV text: a NUL byte at offset %zu", at);
        return NULL;
    }
    size_t per = in->size, xcap = 1024, used = 0, line = 0;
    float *x = malloc(xcap * sizeof(float));
    char *s = (char *)b, *end = s + len;
    *n = 0;
    if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) s += 3; /* a UTF-8 byte order mark */
    while (s < end && x) {
        char *nl = memchr(s, '\n', (size_t)(end - s));
        char *eol = nl ? nl : end;
        line++;
        *eol = '\0'; /* overwrites the newline or the spare byte the caller keeps */
        char *p = s + strspn(s, " \t\r");
        if (*p) {
            size_t count = 0;
            for (;;) {
                char *q;
                errno = 0;
                float v = strtof(p, &q);
                if (q == p) {
                    io_fail(err, cap, "line %zu, value %zu: not a number: `%.20s`", line, count + 1, p);
                    free(x);
                    return NULL;
                }
                if (++count > per) {
                    io_fail(err, cap, "line %zu has more than %zu values (one sample per line)", line, per);
                    free(x);
                    return NULL;
                }
                if (used == xcap) {
                    xcap *= 2;
                    float *grown = realloc(x, xcap * sizeof(float));
                    if (!grown) free(x);
                    x = grown;
                    if (!x) break;
                }
                x[used++] = v;
                p = q + strspn(q, " \t\r");
                if (*p == '\0') break;
                if (*p != ',') {
                    io_fail(err, cap, "line %zu, value %zu: expected a comma, found `%c`", line, count, *p);
                    free(x);
                    return NULL;
                }
                p++;
            }
            if (!x) break;
            if (count != per) {
                io_fail(err, cap, "line %zu has %zu values; a sample has %zu", line, count, per);
                free(x);
                return NULL;
            }
            (*n)++;
        }
        s = eol + 1;
    }
    if (!x) io_fail(err, cap, "out of memory");
    return x;
}

static int io_whole(float v) {
    return v == (float)(long long)v;
}

/* Whether the input type holds v. */
static int io_valid(float v, int dtype) {
    if (v != v || v - v != 0.0f) return 0;
    switch (dtype) {
    case NNC_IO_U8: return v >= 0.0f && v <= 255.0f && io_whole(v);
    case NNC_IO_I32: return v >= -2147483648.0f && v < 2147483648.0f && io_whole(v);
    case NNC_IO_BOOL: return v == 0.0f || v == 1.0f;
    default: return 1;
    }
}

static const char *io_problem(float v, int dtype) {
    if (v != v) return "NaN";
    if (v - v != 0.0f) return "infinite";
    switch (dtype) {
    case NNC_IO_U8: return "not a whole number in 0..255 (the model's input is u8)";
    case NNC_IO_I32: return "not a 32-bit whole number (the model's input is i32)";
    case NNC_IO_BOOL: return "not 0 or 1 (the model's input is bool)";
    default: return "invalid";
    }
}

/* The samples in `bytes` (len bytes, with one spare byte after them, which
 * CSV parsing overwrites; gzip is detected by content), checked against
 * the input. NULL with a message in err on any problem; *n samples else. */
float *nnc_io_read(unsigned char *bytes, size_t len, int raw, const nnc_io_input *in, size_t *n, char *err,
                   size_t cap) {
    unsigned char *plain = NULL;
    if (len >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) {
        const char *why;
        size_t plain_len;
        plain = gunzip(bytes, len, &plain_len, &why);
        if (!plain) {
            io_fail(err, cap, "%s", why);
            return NULL;
        }
        bytes = plain;
        len = plain_len;
    }
    float *x;
    if (raw) x = io_read_raw(bytes, len, in, n, err, cap);
    else if (len >= 2 && bytes[0] == 0 && bytes[1] == 0) x = io_read_idx(bytes, len, in, n, err, cap);
    else x = io_read_csv(bytes, len, in, n, err, cap);
    free(plain);
    if (!x) return NULL;
    if (*n == 0) {
        io_fail(err, cap, "no samples");
        free(x);
        return NULL;
    }
    for (size_t i = 0; i < *n * in->size; i++) {
        if (!io_valid(x[i], in->dtype)) {
            io_fail(err, cap, "sample %zu, value %zu is %s", i / in->size + 1, i % in->size + 1,
                    io_problem(x[i], in->dtype));
            free(x);
            return NULL;
        }
    }
    return x;
}

/* The bytes `text` needs in a JSON string: every byte, escaped at most
 * as \u00XX. */
static size_t json_room(const char *text) { return strlen(text) * 6 + 2; }

/* `text` as a JSON string at p; returns the end. */
static char *json_string(char *p, const char *text) {
    *p++ = '"';
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        if (*c == '"' || *c == '\\') p += sprintf(p, "\\%c", *c);
        else if (*c < 0x20) p += sprintf(p, "\\u%04x", *c);
        else *p++ = (char)*c;
    }
    *p++ = '"';
    return p;
}

/* One sample's line: `ni` classes (names when `names` is not NULL), then
 * `nf` values (%.9g round-trips a float), space-separated; in JSON
 * `{"class": c, KEY: [...]}` (`"classes": [...]` for several). */
static char *format_one(char *p, size_t ni, const int32_t *ints, size_t nf, const float *floats, const char *key,
                        int json, const char *const *names) {
    if (json) *p++ = '{';
    if (ni > 0 && json) p += sprintf(p, ni == 1 ? "\"class\": " : "\"classes\": [");
    for (size_t j = 0; j < ni; j++) {
        const char *sep = j == 0 ? "" : json ? ", " : " ";
        p += sprintf(p, "%s", sep);
        if (names && json) p = json_string(p, names[ints[j]]);
        else if (names) p += sprintf(p, "%s", names[ints[j]]);
        else p += sprintf(p, "%d", ints[j]);
    }
    if (ni > 1 && json) *p++ = ']';
    if (nf > 0) {
        if (json) p += sprintf(p, "%s\"%s\": [", ni ? ", " : "", key);
        for (size_t j = 0; j < nf; j++) p += sprintf(p, "%s%.9g", j == 0 && (json || !ni) ? "" : json ? ", " : " ", floats[j]);
        if (json) *p++ = ']';
    }
    p += sprintf(p, "%s", json ? "}\n" : "\n");
    return p;
}

/* The text of n predictions, one line (or JSON object) per sample: each
 * sample's `ni` classes from `ints`, then its `nf` values from `floats`
 * (under `key` in JSON). `names`, when not NULL, holds each class's name,
 * printed instead of its id. Returns a malloc'd string, or NULL when out
 * of memory. */
char *nnc_io_format(size_t n, size_t ni, const int32_t *ints, size_t nf, const float *floats, const char *key,
                    int json, const char *const *names) {
    size_t cap = 256 + n * (nf * 18 + ni * 16 + 64), used = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
    for (size_t i = 0; i < n; i++) {
        size_t need = 256 + nf * 18 + ni * 16 + strlen(key);
        for (size_t j = 0; names && j < ni; j++) need += json_room(names[ints[i * ni + j]]);
        if (cap - used < need) {
            cap = cap * 2 + need;
            char *grown = realloc(out, cap);
            if (!grown) {
                free(out);
                return NULL;
            }
            out = grown;
        }
        char *p = format_one(out + used, ni, ints + i * ni, nf, floats + i * nf, key, json, names);
        used = (size_t)(p - out);
    }
    out[used] = '\0';
    return out;
}
