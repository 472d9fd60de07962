/* How a built executable fails: `PROG: error: MESSAGE` on stderr and an
 * exit code. Included by main.c and gen.c; `main` sets `prog` to argv[0]. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static const char *prog = "nnc-built";

static void die(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: error: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}
