/* gzip decompression for the executable's readers, so a built model reads
 * `t10k-images-idx3-ubyte.gz` as it is. A DEFLATE decoder (RFC 1951) in the
 * canonical-Huffman style of zlib's reference decoder `puff`; every read of
 * the input and every write and back-reference of the output is checked, so
 * a corrupt or truncated file is an error, never an out-of-bounds access.
 * The gzip trailer's CRC-32 and length are verified. Included by main.c. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { MAXBITS = 15, MAXLCODES = 286, MAXDCODES = 30, FIXLCODES = 288 };

typedef struct {
    const unsigned char *in;
    size_t inlen, pos;
    unsigned bitbuf, bitcnt;
    unsigned char *out;
    size_t outlen, outcap;
    const char *err; /* set on the first error: everything after is a no-op */
} inflater;

typedef struct {
    short count[MAXBITS + 1]; /* codes of each length */
    short symbol[FIXLCODES];  /* symbols ordered by code */
} huffman;

static int fail(inflater *s, const char *why) {
    if (!s->err) s->err = why;
    return -1;
}

/* `need` bits, least significant first; 0 with s->err set past the end. */
static unsigned bits(inflater *s, unsigned need) {
    unsigned long val = s->bitbuf;
    while (s->bitcnt < need) {
        if (s->pos == s->inlen) {
            fail(s, "truncated compressed data");
            return 0;
        }
        val |= (unsigned long)s->in[s->pos++] << s->bitcnt;
        s->bitcnt += 8;
    }
    s->bitbuf = (unsigned)(val >> need);
    s->bitcnt -= need;
    return (unsigned)(val & ((1UL << need) - 1));
}

static int put(inflater *s, unsigned char c) {
    if (s->outlen == s->outcap) {
        size_t cap = s->outcap ? s->outcap * 2 : 1 << 20;
        unsigned char *p = cap > s->outcap ? realloc(s->out, cap) : NULL;
        if (!p) return fail(s, "out of memory decompressing");
        s->out = p;
        s->outcap = cap;
    }
    s->out[s->outlen++] = c;
    return 0;
}

/* A block stored without compression. */
static int stored(inflater *s) {
    s->bitbuf = s->bitcnt = 0; /* to a byte boundary */
    if (s->inlen - s->pos < 4) return fail(s, "truncated stored block");
    unsigned len = s->in[s->pos] | s->in[s->pos + 1] << 8;
    unsigned nlen = s->in[s->pos + 2] | s->in[s->pos + 3] << 8;
    s->pos += 4;
    if (len != (~nlen & 0xffff)) return fail(s, "corrupt stored block length");
    if (s->inlen - s->pos < len) return fail(s, "truncated stored block");
    while (len--)
        if (put(s, s->in[s->pos++])) return -1;
    return 0;
}

/* The next symbol of code `h`; -1 on error. */
static int decode(inflater *s, const huffman *h) {
    int code = 0, first = 0, index = 0;
    for (int len = 1; len <= MAXBITS; len++) {
        code |= (int)bits(s, 1);
        if (s->err) return -1;
        int count = h->count[len];
        if (code - count < first) return h->symbol[index + (code - first)];
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    return fail(s, "invalid Huffman code");
}

/* Builds `h` from code lengths; <0 when over-subscribed, >0 when incomplete. */
static int construct(huffman *h, const short *length, int n) {
    short offs[MAXBITS + 1];
    memset(h->count, 0, sizeof h->count);
    for (int i = 0; i < n; i++) h->count[length[i]]++;
    if (h->count[0] == n) return 0;
    int left = 1;
    for (int len = 1; len <= MAXBITS; len++) {
        left <<= 1;
        left -= h->count[len];
        if (left < 0) return left;
    }
    offs[1] = 0;
    for (int len = 1; len < MAXBITS; len++) offs[len + 1] = (short)(offs[len] + h->count[len]);
    for (int i = 0; i < n; i++)
        if (length[i] != 0) h->symbol[offs[length[i]]++] = (short)i;
    return left;
}

/* Literals and back-references until the end-of-block symbol. */
static int codes(inflater *s, const huffman *lencode, const huffman *distcode) {
    static const short lbase[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                    31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
    static const short lext[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
    static const short dbase[30] = {1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,   49,   65,    97,    129,
                                    193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
    static const short dext[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
    for (;;) {
        int symbol = decode(s, lencode);
        if (symbol < 0) return -1;
        if (symbol < 256) {
            if (put(s, (unsigned char)symbol)) return -1;
        } else if (symbol == 256) {
            return 0;
        } else {
            symbol -= 257;
            if (symbol >= 29) return fail(s, "invalid length code");
            size_t len = (size_t)lbase[symbol] + bits(s, (unsigned)lext[symbol]);
            int d = decode(s, distcode);
            if (d < 0) return -1;
            if (d >= 30) return fail(s, "invalid distance code");
            size_t dist = (size_t)dbase[d] + bits(s, (unsigned)dext[d]);
            if (s->err) return -1;
            if (dist > s->outlen) return fail(s, "a back-reference before the start of the data");
            while (len--)
                if (put(s, s->out[s->outlen - dist])) return -1;
        }
    }
}

static int fixed(inflater *s) {
    static huffman lencode, distcode;
    static int built = 0;
    if (!built) {
        short lengths[FIXLCODES];
        int i = 0;
        for (; i < 144; i++) lengths[i] = 8;
        for (; i < 256; i++) lengths[i] = 9;
        for (; i < 280; i++) lengths[i] = 7;
        for (; i < FIXLCODES; i++) lengths[i] = 8;
        construct(&lencode, lengths, FIXLCODES);
        for (i = 0; i < MAXDCODES; i++) lengths[i] = 5;
        construct(&distcode, lengths, MAXDCODES);
        built = 1;
    }
    return codes(s, &lencode, &distcode);
}

static int dynamic(inflater *s) {
    static const short order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    short lengths[MAXLCODES + MAXDCODES];
    huffman lencode, distcode;
    int nlen = (int)bits(s, 5) + 257, ndist = (int)bits(s, 5) + 1, ncode = (int)bits(s, 4) + 4;
    if (s->err) return -1;
    if (nlen > MAXLCODES || ndist > MAXDCODES) return fail(s, "too many codes in a dynamic block");
    int index = 0;
    for (; index < ncode; index++) lengths[order[index]] = (short)bits(s, 3);
    for (; index < 19; index++) lengths[order[index]] = 0;
    if (s->err) return -1;
    if (construct(&lencode, lengths, 19) != 0) return fail(s, "incomplete code-length code");
    for (index = 0; index < nlen + ndist;) {
        int symbol = decode(s, &lencode);
        if (symbol < 0) return -1;
        if (symbol < 16) {
            lengths[index++] = (short)symbol;
            continue;
        }
        short len = 0;
        int repeat;
        if (symbol == 16) {
            if (index == 0) return fail(s, "a repeat with no length before it");
            len = lengths[index - 1];
            repeat = 3 + (int)bits(s, 2);
        } else {
            repeat = symbol == 17 ? 3 + (int)bits(s, 3) : 11 + (int)bits(s, 7);
        }
        if (s->err) return -1;
        if (index + repeat > nlen + ndist) return fail(s, "too many code lengths");
        while (repeat--) lengths[index++] = len;
    }
    if (lengths[256] == 0) return fail(s, "no end-of-block code");
    int err = construct(&lencode, lengths, nlen);
    if (err < 0 || (err > 0 && nlen - lencode.count[0] != 1)) return fail(s, "bad literal/length code");
    err = construct(&distcode, lengths + nlen, ndist);
    if (err < 0 || (err > 0 && ndist - distcode.count[0] != 1)) return fail(s, "bad distance code");
    return codes(s, &lencode, &distcode);
}

static uint32_t crc32(const unsigned char *p, size_t n) {
    static uint32_t table[256];
    if (!table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

/* The decompressed bytes of the gzip file `b` (one member), with one spare
 * byte allocated past the end; NULL with *why set on any error. */
static unsigned char *gunzip(const unsigned char *b, size_t len, size_t *outlen, const char **why) {
    inflater s = {0};
    *why = NULL;
    if (len < 3 || b[0] != 0x1f || b[1] != 0x8b || b[2] != 8) {
        *why = "not a DEFLATE-compressed gzip file";
        return NULL;
    }
    if (len < 18) {
        *why = "truncated gzip header";
        return NULL;
    }
    int flags = b[3];
    size_t pos = 10;
    if (flags & 4) { /* FEXTRA */
        if (len - pos < 2) pos = len;
        else pos += 2 + (size_t)(b[pos] | b[pos + 1] << 8);
    }
    for (int f = 8; f <= 16; f <<= 1) /* FNAME, FCOMMENT: zero-terminated */
        if (flags & f) {
            while (pos < len && b[pos]) pos++;
            pos++;
        }
    if (flags & 2) pos += 2; /* FHCRC */
    if (pos + 8 > len) {
        *why = "truncated gzip header";
        return NULL;
    }
    s.in = b + pos;
    s.inlen = len - 8 - pos;
    int last;
    do {
        last = (int)bits(&s, 1);
        int type = (int)bits(&s, 2);
        if (s.err) break;
        if (type == 0) stored(&s);
        else if (type == 1) fixed(&s);
        else if (type == 2) dynamic(&s);
        else fail(&s, "invalid block type");
    } while (!last && !s.err);
    const unsigned char *tail = b + len - 8;
    uint32_t crc = (uint32_t)tail[0] | (uint32_t)tail[1] << 8 | (uint32_t)tail[2] << 16 | (uint32_t)tail[3] << 24;
    uint32_t size = (uint32_t)tail[4] | (uint32_t)tail[5] << 8 | (uint32_t)tail[6] << 16 | (uint32_t)tail[7] << 24;
    if (!s.err && (crc32(s.out, s.outlen) != crc || (uint32_t)s.outlen != size))
        fail(&s, "corrupt data: the CRC-32 or length in the gzip trailer does not match");
    if (!s.err && put(&s, 0) == 0) s.outlen--; /* the spare byte */
    if (s.err) {
        free(s.out);
        *why = s.err;
        return NULL;
    }
    *outlen = s.outlen;
    return s.out;
}
