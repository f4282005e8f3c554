/* The DICOM Part-10 reader (p10.h). A file is read once, front to back, through a fixed window
 * (src_* below): from memory without copying, from a descriptor with read()/lseek(), or through
 * zlib's inflate for the deflated transfer syntax. The parser (read_dataset, read_sequence,
 * read_encapsulated) collects each dataset's elements in a per-depth scratch vector and copies
 * them, sorted, into the file's arena when the dataset ends, so a file costs a handful of
 * allocations however many elements it has. */
#include "dicom/p10.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "base/buf.h"
#include "dicom/charset.h"
#include "dicom/dict.h"

#include "base/text.h"
#include "base/banned.h"

#define WINDOW_SIZE (64u * 1024u)
#define ZIN_SIZE WINDOW_SIZE /* holds a full window of read-ahead when inflating starts */
#define UNKNOWN_SIZE UINT64_MAX

#define TAG_ITEM AHL_DCM_TAG(0xFFFE, 0xE000)
#define TAG_ITEM_END AHL_DCM_TAG(0xFFFE, 0xE00D)
#define TAG_SEQ_END AHL_DCM_TAG(0xFFFE, 0xE0DD)
#define TAG_CHARSET AHL_DCM_TAG(0x0008, 0x0005)
#define TAG_PIXEL_REPRESENTATION AHL_DCM_TAG(0x0028, 0x0103)
#define TAG_EXT_OFFSET_TABLE AHL_DCM_TAG(0x7FE0, 0x0001)
#define TAG_EXT_OFFSET_LENGTHS AHL_DCM_TAG(0x7FE0, 0x0002)
#define TAG_TRANSFER_SYNTAX AHL_DCM_TAG(0x0002, 0x0010)

/* ---- arena ------------------------------------------------------------------------------ */

struct chunk {
    struct chunk *next;
    size_t cap, used;
    _Alignas(16) unsigned char data[];
};

struct arena {
    struct chunk *head;
    size_t next; /* size of the next chunk: small files stay small, big ones grow fast */
};

#define ARENA_FIRST 4096
#define ARENA_MAX_CHUNK (256u * 1024u)

static void *arena_alloc(struct arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (a->head == NULL || a->head->cap - a->head->used < n) {
        if (a->next < ARENA_FIRST)
            a->next = ARENA_FIRST;
        size_t cap = n > a->next ? n : a->next;
        struct chunk *c = malloc(sizeof(*c) + cap);
        if (c == NULL)
            return NULL;
        c->cap = cap;
        c->used = 0;
        if (a->next < ARENA_MAX_CHUNK)
            a->next *= 2;
        if (a->head != NULL && n > cap / 2) {
            /* Keep the current chunk open for small allocations. */
            c->next = a->head->next;
            a->head->next = c;
            c->used = n;
            return c->data;
        }
        c->next = a->head;
        a->head = c;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += n;
    return p;
}

static void arena_release(struct arena *a)
{
    struct chunk *c = a->head;
    while (c != NULL) {
        struct chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
}

/* The file as allocated by the reader: the public struct first, so a pointer to it is a pointer
 * to the whole. */
struct file_impl {
    struct ahl_dcm_file pub;
    struct arena arena;
};

void ahl_dcm_file_free(struct ahl_dcm_file *f)
{
    if (f == NULL)
        return;
    struct file_impl *impl = (struct file_impl *)f;
    free(f->pixel.fragments);
    free(f->pixel.offset_table);
    free(f->pixel.extended_offsets_lengths);
    arena_release(&impl->arena);
    free(impl);
}

const struct ahl_dcm_elem *ahl_dcm_find(const struct ahl_dcm_dataset *ds, uint32_t tag)
{
    size_t lo = 0, hi;

    if (ds == NULL)
        return NULL;
    hi = ds->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t t = ds->elems[mid].tag;
        if (t == tag)
            return &ds->elems[mid];
        if (t < tag)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void ahl_p10_limits_default(struct ahl_p10_limits *lim)
{
    lim->max_inline = 256u << 10;
    lim->max_inline_total = (size_t)16 << 20;
    lim->max_depth = 32;
    lim->max_elements = 500000;
    lim->max_fragments = 500000;
}

/* ---- VR properties ---------------------------------------------------------------------- */

enum {
    VR_LONG = 1,     /* explicit VR: 2 reserved bytes and a 4-byte length */
    VR_TEXT = 2,     /* text value */
    VR_SPECIFIC = 4, /* text the Specific Character Set applies to */
    VR_KNOWN = 8,
};

struct vr_info {
    char vr[3];
    uint8_t flags;
    uint8_t swap; /* unit to byte-swap for big endian (0: none) */
};

static const struct vr_info vr_table[] = {
    {"AE", VR_KNOWN | VR_TEXT, 0},
    {"AS", VR_KNOWN | VR_TEXT, 0},
    {"AT", VR_KNOWN, 2},
    {"CS", VR_KNOWN | VR_TEXT, 0},
    {"DA", VR_KNOWN | VR_TEXT, 0},
    {"DS", VR_KNOWN | VR_TEXT, 0},
    {"DT", VR_KNOWN | VR_TEXT, 0},
    {"FD", VR_KNOWN, 8},
    {"FL", VR_KNOWN, 4},
    {"IS", VR_KNOWN | VR_TEXT, 0},
    {"LO", VR_KNOWN | VR_TEXT | VR_SPECIFIC, 0},
    {"LT", VR_KNOWN | VR_TEXT | VR_SPECIFIC, 0},
    {"OB", VR_KNOWN | VR_LONG, 0},
    {"OD", VR_KNOWN | VR_LONG, 8},
    {"OF", VR_KNOWN | VR_LONG, 4},
    {"OL", VR_KNOWN | VR_LONG, 4},
    {"OV", VR_KNOWN | VR_LONG, 8},
    {"OW", VR_KNOWN | VR_LONG, 2},
    {"PN", VR_KNOWN | VR_TEXT | VR_SPECIFIC, 0},
    {"SH", VR_KNOWN | VR_TEXT | VR_SPECIFIC, 0},
    {"SL", VR_KNOWN, 4},
    {"SQ", VR_KNOWN | VR_LONG, 0},
    {"SS", VR_KNOWN, 2},
    {"ST", VR_KNOWN | VR_TEXT | VR_SPECIFIC, 0},
    {"SV", VR_KNOWN | VR_LONG, 8},
    {"TM", VR_KNOWN | VR_TEXT, 0},
    {"UC", VR_KNOWN | VR_LONG | VR_TEXT | VR_SPECIFIC, 0},
    {"UI", VR_KNOWN | VR_TEXT, 0},
    {"UL", VR_KNOWN, 4},
    {"UN", VR_KNOWN | VR_LONG, 0},
    {"UR", VR_KNOWN | VR_LONG | VR_TEXT, 0},
    {"US", VR_KNOWN, 2},
    {"UT", VR_KNOWN | VR_LONG | VR_TEXT | VR_SPECIFIC, 0},
    {"UV", VR_KNOWN | VR_LONG, 8},
};

static const struct vr_info *vr_lookup(const char *vr)
{
    /* The table is sorted; a binary search over 34 entries. */
    size_t lo = 0, hi = sizeof(vr_table) / sizeof(vr_table[0]);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = memcmp(vr_table[mid].vr, vr, 2);
        if (c == 0)
            return &vr_table[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

bool ahl_dcm_vr_is_text(const char *vr)
{
    const struct vr_info *v = vr != NULL ? vr_lookup(vr) : NULL;
    return v != NULL && (v->flags & VR_TEXT);
}

/* ---- input window ----------------------------------------------------------------------- */

struct src {
    /* The raw input: memory (fd < 0) or a descriptor. */
    const uint8_t *mem;
    size_t mem_len;
    int fd;
    uint64_t raw_pos;   /* raw bytes taken from the input so far */
    uint64_t raw_total; /* raw size, UNKNOWN_SIZE for pipes */
    bool raw_eof;
    /* The window: avail bytes at p, the first of which is at logical offset pos. */
    uint8_t *win;
    const uint8_t *p;
    size_t avail;
    uint64_t pos;
    /* Inflate state once the deflated part begins. */
    bool inflating, z_ready, z_done;
    z_stream z;
    uint8_t *zin;
};

struct reader {
    struct src s;
    struct ahl_err *err;
    struct ahl_p10_limits lim;
    struct arena *arena;
    struct ahl_dcm_file *f;
    size_t n_elems, inline_total;
    struct ahl__conv conv;
    struct ahl_buf text;
    /* Scratch vectors, one per depth, reused across datasets at that depth: levels hold
     * struct ahl_dcm_elem, items hold struct ahl_dcm_dataset. */
    struct vec {
        void *v;
        size_t n, cap;
    } * levels, *items;
    unsigned n_levels;
    size_t frag_cap;
};

struct enc {
    bool explicit_vr;
    bool big;
};

static int failf(struct reader *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int failf(struct reader *r, int code, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return ahl_fail(r->err, code, "%s", msg);
}

/* Bytes from the logical position to the end of the input, when that is known. */
static uint64_t src_left(const struct src *s)
{
    if (s->inflating || s->raw_total == UNKNOWN_SIZE)
        return UNKNOWN_SIZE;
    return s->raw_total - s->pos;
}

static int raw_read(struct reader *r, uint8_t *dst, size_t n, size_t *got)
{
    struct src *s = &r->s;
    *got = 0;
    if (s->fd < 0) {
        size_t left = s->mem_len - (size_t)s->raw_pos;
        size_t k = n < left ? n : left;
        memcpy(dst, s->mem + s->raw_pos, k);
        s->raw_pos += k;
        *got = k;
        if (k < n)
            s->raw_eof = true;
        return 0;
    }
    while (*got < n) {
        ssize_t k = read(s->fd, dst + *got, n - *got);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return failf(r, AHL_EIO, "read error at offset %llu: %s",
                         (unsigned long long)s->raw_pos, strerror(errno));
        }
        if (k == 0) {
            s->raw_eof = true;
            break;
        }
        *got += (size_t)k;
        s->raw_pos += (uint64_t)k;
    }
    return 0;
}

/* Makes at least n (<= WINDOW_SIZE) bytes available at s->p, or as many as are left. */
static int src_fill(struct reader *r, size_t n)
{
    struct src *s = &r->s;
    int rc;

    if (s->avail >= n)
        return 0;
    if (s->fd < 0 && !s->inflating) /* memory is one big window already */
        return 0;
    if (s->p != s->win && s->avail > 0)
        memmove(s->win, s->p, s->avail);
    s->p = s->win;
    if (!s->inflating) {
        while (s->avail < n && !s->raw_eof) {
            size_t got;
            if ((rc = raw_read(r, s->win + s->avail, WINDOW_SIZE - s->avail, &got)) < 0)
                return rc;
            s->avail += got;
        }
        return 0;
    }
    /* The end of the input is not the end of the data: zlib may still hold output it could not
     * hand over while the window was full, so it is asked again with no input. Only when it then
     * makes no progress (Z_BUF_ERROR) before the end of the stream is the stream cut short. */
    while (s->avail < n && !s->z_done) {
        if (s->z.avail_in == 0 && !s->raw_eof) {
            size_t got;
            if ((rc = raw_read(r, s->zin, ZIN_SIZE, &got)) < 0)
                return rc;
            s->z.next_in = s->zin;
            s->z.avail_in = (uInt)got;
        }
        s->z.next_out = s->win + s->avail;
        s->z.avail_out = (uInt)(WINDOW_SIZE - s->avail);
        int zr = inflate(&s->z, Z_NO_FLUSH);
        s->avail = WINDOW_SIZE - s->z.avail_out;
        if (zr == Z_STREAM_END) {
            s->z_done = true; /* bytes after the stream's end are not part of the dataset */
        } else if (zr == Z_BUF_ERROR && s->z.avail_in == 0 && s->raw_eof) {
            return failf(r, AHL_EPARSE,
                         "deflated data ends at file offset %llu before the end of the "
                         "compressed stream (stream offset %llu)",
                         (unsigned long long)s->raw_pos, (unsigned long long)(s->pos + s->avail));
        } else if (zr != Z_OK && zr != Z_BUF_ERROR) {
            return failf(r, AHL_EPARSE,
                         "deflated data is corrupt near file offset %llu (stream offset %llu): %s",
                         (unsigned long long)(s->raw_pos - s->z.avail_in),
                         (unsigned long long)(s->pos + s->avail),
                         s->z.msg != NULL ? s->z.msg : "inflate failed");
        }
    }
    return 0;
}

static void src_consume(struct src *s, size_t n)
{
    s->p += n;
    s->avail -= n;
    s->pos += n;
}

/* Copies n bytes to dst; *got says how many there were. */
static int src_read(struct reader *r, uint8_t *dst, uint64_t n, uint64_t *got)
{
    struct src *s = &r->s;
    int rc;
    *got = 0;
    while (*got < n) {
        if (s->avail == 0) {
            if ((rc = src_fill(r, WINDOW_SIZE)) < 0)
                return rc;
            if (s->avail == 0)
                break;
        }
        size_t k = s->avail < n - *got ? s->avail : (size_t)(n - *got);
        memcpy(dst + *got, s->p, k);
        src_consume(s, k);
        *got += k;
    }
    return 0;
}

/* Skips n bytes; *got says how many there were. Descriptors seek when they can. */
static int src_skip(struct reader *r, uint64_t n, uint64_t *got)
{
    struct src *s = &r->s;
    int rc;
    *got = 0;
    size_t k = s->avail < n ? s->avail : (size_t)n;
    src_consume(s, k);
    *got = k;
    if (*got == n)
        return 0;
    if (!s->inflating && s->fd < 0)
        return 0; /* memory: the window was everything */
    if (!s->inflating && s->raw_total != UNKNOWN_SIZE) {
        uint64_t want = n - *got;
        uint64_t left = s->raw_total - s->raw_pos;
        uint64_t step = want < left ? want : left;
        if (lseek(s->fd, (off_t)step, SEEK_CUR) == (off_t)-1)
            return failf(r, AHL_EIO, "seek error at offset %llu: %s",
                         (unsigned long long)s->raw_pos, strerror(errno));
        s->raw_pos += step;
        s->pos += step;
        *got += step;
        return 0;
    }
    while (*got < n) {
        if ((rc = src_fill(r, WINDOW_SIZE)) < 0)
            return rc;
        if (s->avail == 0)
            break;
        k = s->avail < n - *got ? s->avail : (size_t)(n - *got);
        src_consume(s, k);
        *got += k;
    }
    return 0;
}

/* Switches to inflating everything after the current position. */
static int src_start_inflate(struct reader *r)
{
    struct src *s = &r->s;
    s->zin = malloc(ZIN_SIZE);
    if (s->zin == NULL)
        return failf(r, AHL_ENOMEM, "out of memory");
    memset(&s->z, 0, sizeof(s->z));
    if (inflateInit2(&s->z, -15) != Z_OK)
        return failf(r, AHL_ENOMEM, "cannot start inflate");
    s->z_ready = true;
    if (s->fd < 0) {
        /* Memory: the raw cursor restarts where the parser is. */
        s->raw_pos = s->pos;
        s->raw_eof = s->raw_pos >= s->mem_len;
        s->avail = 0;
    } else {
        /* Descriptor: the window's unread bytes are compressed input already read. */
        if (s->avail > ZIN_SIZE)
            return failf(r, AHL_EINTERNAL, "inflate window overflow");
        memcpy(s->zin, s->p, s->avail);
        s->z.next_in = s->zin;
        s->z.avail_in = (uInt)s->avail;
        s->avail = 0;
    }
    if (s->win == NULL) {
        s->win = malloc(WINDOW_SIZE);
        if (s->win == NULL)
            return failf(r, AHL_ENOMEM, "out of memory");
    }
    s->p = s->win;
    s->inflating = true;
    return 0;
}

/* ---- byte order ------------------------------------------------------------------------- */

static uint16_t rd16(const uint8_t *p, bool big)
{
    return big ? (uint16_t)((p[0] << 8) | p[1]) : (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t rd32(const uint8_t *p, bool big)
{
    if (big)
        return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void swap_units(uint8_t *p, size_t n, unsigned unit)
{
    for (size_t i = 0; i + unit <= n; i += unit) {
        for (unsigned a = 0, b = unit - 1; a < b; a++, b--) {
            uint8_t t = p[i + a];
            p[i + a] = p[i + b];
            p[i + b] = t;
        }
    }
}

/* ---- scratch vectors -------------------------------------------------------------------- */

/* Appends one entry of `size` bytes to a scratch vector, doubling its room from `first`. */
static int push(struct reader *r, void **v, size_t *n, size_t *cap, const void *e, size_t size,
                size_t first)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : first;
        void *nv = realloc(*v, nc * size);
        if (nv == NULL)
            return failf(r, AHL_ENOMEM, "out of memory");
        *v = nv;
        *cap = nc;
    }
    memcpy((char *)*v + *n * size, e, size);
    (*n)++;
    return 0;
}

static int vec_push(struct reader *r, unsigned depth, const struct ahl_dcm_elem *e)
{
    struct vec *v = &r->levels[depth];
    return push(r, &v->v, &v->n, &v->cap, e, sizeof(*e), 64);
}

static int ivec_push(struct reader *r, unsigned depth, const struct ahl_dcm_dataset *d)
{
    struct vec *v = &r->items[depth];
    return push(r, &v->v, &v->n, &v->cap, d, sizeof(*d), 8);
}

static int cmp_elem(const void *a, const void *b)
{
    const struct ahl_dcm_elem *x = a, *y = b;
    if (x->tag != y->tag)
        return x->tag < y->tag ? -1 : 1;
    /* Same tag: file order (offsets grow through the file), so the first one stays first. */
    return x->value_offset < y->value_offset ? -1 : x->value_offset > y->value_offset;
}

/* Moves the elements gathered at depth since index `from` into the arena as a dataset. */
static int vec_finish(struct reader *r, unsigned depth, size_t from, struct ahl_dcm_dataset *out)
{
    struct vec *v = &r->levels[depth];
    struct ahl_dcm_elem *e = (struct ahl_dcm_elem *)v->v + from;
    size_t n = v->n - from, kept = 0;
    bool sorted = true;

    for (size_t i = 1; i < n; i++) {
        if (e[i].tag <= e[i - 1].tag) {
            sorted = false;
            break;
        }
    }
    if (!sorted) {
        qsort(e, n, sizeof(*e), cmp_elem);
        for (size_t i = 0; i < n; i++) {
            if (kept > 0 && e[kept - 1].tag == e[i].tag)
                continue; /* a duplicate: the first occurrence wins */
            e[kept++] = e[i];
        }
        n = kept;
    }
    out->n = n;
    out->elems = NULL;
    if (n > 0) {
        out->elems = arena_alloc(r->arena, n * sizeof(*e));
        if (out->elems == NULL)
            return failf(r, AHL_ENOMEM, "out of memory");
        memcpy(out->elems, e, n * sizeof(*e));
    }
    v->n = from;
    return 0;
}

/* ---- the parser ------------------------------------------------------------------------- */

struct ctx {
    struct enc enc;
    struct ahl__charset cs;
    int pixel_rep; /* (0028,0103) of this dataset, -1 unknown: resolves US/SS in implicit VR */
};

static int read_dataset(struct reader *r, unsigned depth, uint64_t item_at, uint64_t end,
                        bool undefined, bool meta, struct ctx *parent, struct ahl_dcm_dataset *out);

#define TAGF "(%04X,%04X)"
#define TAGA(t) (unsigned)AHL_DCM_GROUP(t), (unsigned)AHL_DCM_ELEMENT(t)
#define OFF(x) ((unsigned long long)(x))

static int truncated(struct reader *r, uint32_t tag, uint64_t at, uint64_t declared, uint64_t left)
{
    return failf(r, AHL_EPARSE,
                 "truncated element " TAGF " at offset %llu: %llu bytes declared, %llu left",
                 TAGA(tag), OFF(at), OFF(declared), OFF(left));
}

/* The same for a sequence item or pixel data fragment (what) of element tag, whose item header
 * starts at item_at. */
static int truncated_item(struct reader *r, const char *what, uint32_t tag, uint64_t item_at,
                          uint32_t declared, uint64_t left)
{
    return failf(r, AHL_EPARSE,
                 "truncated %s of " TAGF " at offset %llu: %u bytes declared, %llu left", what,
                 TAGA(tag), OFF(item_at), declared, OFF(left));
}

/* Reads an 8-byte item/delimiter header (tag + 4-byte length); *ok false at clean EOF. */
static int read_item_header(struct reader *r, bool big, uint32_t *tag, uint32_t *len,
                            const char *what, uint32_t owner, uint64_t owner_at)
{
    int rc;
    if ((rc = src_fill(r, 8)) < 0)
        return rc;
    if (r->s.avail < 8)
        return failf(r, AHL_EPARSE,
                     "truncated %s " TAGF " starting at offset %llu: item header expected at "
                     "offset %llu, %zu bytes left",
                     what, TAGA(owner), OFF(owner_at), OFF(r->s.pos), r->s.avail);
    uint16_t g = rd16(r->s.p, big), e = rd16(r->s.p + 2, big);
    *tag = AHL_DCM_TAG(g, e);
    *len = rd32(r->s.p + 4, big);
    src_consume(&r->s, 8);
    return 0;
}

static int count_element(struct reader *r, uint64_t at)
{
    if (++r->n_elems > r->lim.max_elements)
        return failf(r, AHL_ETOOBIG, "more than %zu elements (limit) at offset %llu",
                     r->lim.max_elements, OFF(at));
    return 0;
}

/* Encapsulated pixel data: a Basic Offset Table item, fragments, a sequence delimiter. Fragment
 * bytes are skipped; at depth 0 their places are recorded in f->pixel. */
static int read_encapsulated(struct reader *r, struct ahl_dcm_elem *el, struct ctx *c, uint64_t end,
                             bool record, uint64_t at)
{
    struct ahl_dcm_pixel *px = &r->f->pixel;
    bool first = true;
    int rc;

    for (;;) {
        uint32_t tag, len;
        uint64_t item_at = r->s.pos;
        if (end != UNKNOWN_SIZE && item_at >= end)
            return failf(r, AHL_EPARSE,
                         "encapsulated pixel data " TAGF " at offset %llu: no sequence "
                         "delimiter before the end of its item at offset %llu",
                         TAGA(el->tag), OFF(at), OFF(end));
        if ((rc = read_item_header(r, c->enc.big, &tag, &len, "encapsulated pixel data", el->tag,
                                   at)) < 0)
            return rc;
        if (tag == TAG_SEQ_END)
            return 0;
        if (tag != TAG_ITEM)
            return failf(
                r, AHL_EPARSE,
                "encapsulated pixel data " TAGF " at offset %llu: expected an item "
                "(FFFE,E000) or sequence delimiter (FFFE,E0DD) at offset %llu, found " TAGF,
                TAGA(el->tag), OFF(at), OFF(item_at), TAGA(tag));
        if (len == AHL_DCM_UNDEFINED_LENGTH)
            return failf(r, AHL_EPARSE,
                         "encapsulated pixel data " TAGF ": fragment at offset %llu has undefined "
                         "length",
                         TAGA(el->tag), OFF(item_at));
        uint64_t left = src_left(&r->s);
        if (left != UNKNOWN_SIZE && len > left)
            return truncated_item(r, "fragment", el->tag, item_at, len, left);
        if (end != UNKNOWN_SIZE && len > end - r->s.pos)
            return failf(r, AHL_EPARSE,
                         "fragment of " TAGF " at offset %llu runs past the end of its item at "
                         "offset %llu",
                         TAGA(el->tag), OFF(item_at), OFF(end));
        if (first && record) {
            /* The Basic Offset Table: 4-byte offsets, possibly empty. */
            if (len % 4 != 0)
                return failf(r, AHL_EPARSE,
                             "basic offset table of " TAGF " at offset %llu: length %u is not a "
                             "multiple of 4",
                             TAGA(el->tag), OFF(item_at), len);
            size_t n = len / 4;
            if (n > r->lim.max_fragments)
                return failf(r, AHL_ETOOBIG,
                             "basic offset table at offset %llu has %zu entries (limit %zu)",
                             OFF(item_at), n, r->lim.max_fragments);
            if (n > 0) {
                px->offset_table = malloc(n * sizeof(uint32_t));
                if (px->offset_table == NULL)
                    return failf(r, AHL_ENOMEM, "out of memory");
                uint64_t got;
                if ((rc = src_read(r, (uint8_t *)px->offset_table, len, &got)) < 0)
                    return rc;
                if (got < len)
                    return truncated(r, el->tag, item_at, len, got);
                for (size_t i = 0; i < n; i++)
                    px->offset_table[i] = rd32((uint8_t *)&px->offset_table[i], c->enc.big);
                px->n_offsets = n;
            }
        } else {
            if (record) {
                if (px->n_fragments == r->frag_cap) {
                    if (px->n_fragments >= r->lim.max_fragments)
                        return failf(r, AHL_ETOOBIG,
                                     "more than %zu pixel data fragments (limit) at offset %llu",
                                     r->lim.max_fragments, OFF(item_at));
                    size_t cap = r->frag_cap ? r->frag_cap * 2 : 16;
                    if (cap > r->lim.max_fragments)
                        cap = r->lim.max_fragments;
                    struct ahl_dcm_fragment *nf = realloc(px->fragments, cap * sizeof(*nf));
                    if (nf == NULL)
                        return failf(r, AHL_ENOMEM, "out of memory");
                    px->fragments = nf;
                    r->frag_cap = cap;
                }
                px->fragments[px->n_fragments].offset = r->s.pos;
                px->fragments[px->n_fragments].length = len;
                px->n_fragments++;
            }
            uint64_t got;
            if ((rc = src_skip(r, len, &got)) < 0)
                return rc;
            if (got < len)
                return truncated_item(r, "fragment", el->tag, item_at, len, got);
        }
        first = false;
    }
}

/* The items of a sequence. Items are datasets at depth + 1. */
static int read_sequence(struct reader *r, unsigned depth, struct ahl_dcm_elem *el, struct ctx *c,
                         uint64_t at)
{
    bool undefined = el->length == AHL_DCM_UNDEFINED_LENGTH;
    uint64_t end = undefined ? UNKNOWN_SIZE : r->s.pos + el->length;
    struct vec *iv;
    size_t from;
    int rc;

    if (depth + 1 > r->lim.max_depth)
        return failf(r, AHL_ETOOBIG,
                     "sequence " TAGF " at offset %llu nests deeper than %u levels (limit)",
                     TAGA(el->tag), OFF(at), r->lim.max_depth);
    iv = &r->items[depth + 1];
    from = iv->n;
    for (;;) {
        uint32_t tag, len;
        uint64_t item_at = r->s.pos;
        if (!undefined && item_at >= end)
            break;
        if ((rc = read_item_header(r, c->enc.big, &tag, &len, "sequence", el->tag, at)) < 0)
            return rc;
        if (tag == TAG_SEQ_END) {
            if (!undefined)
                return failf(r, AHL_EPARSE,
                             "sequence " TAGF " at offset %llu has a defined length but a "
                             "sequence delimiter at offset %llu",
                             TAGA(el->tag), OFF(at), OFF(item_at));
            break;
        }
        if (tag != TAG_ITEM)
            return failf(r, AHL_EPARSE,
                         "sequence " TAGF " at offset %llu: expected an item (FFFE,E000) at "
                         "offset %llu, found " TAGF,
                         TAGA(el->tag), OFF(at), OFF(item_at), TAGA(tag));
        if ((rc = count_element(r, item_at)) < 0)
            return rc;
        uint64_t item_end = UNKNOWN_SIZE;
        if (len != AHL_DCM_UNDEFINED_LENGTH) {
            uint64_t left = src_left(&r->s);
            if (left != UNKNOWN_SIZE && len > left)
                return truncated_item(r, "item", el->tag, item_at, len, left);
            if (!undefined && len > end - r->s.pos)
                return failf(r, AHL_EPARSE,
                             "item at offset %llu (%u bytes) runs past the end of sequence " TAGF
                             " at offset %llu",
                             OFF(item_at), len, TAGA(el->tag), OFF(end));
            item_end = r->s.pos + len;
        }
        struct ahl_dcm_dataset item;
        if ((rc = read_dataset(r, depth + 1, item_at, item_end, len == AHL_DCM_UNDEFINED_LENGTH,
                               false, c, &item)) < 0)
            return rc;
        if ((rc = ivec_push(r, depth + 1, &item)) < 0)
            return rc;
        iv = &r->items[depth + 1];
    }
    iv = &r->items[depth + 1];
    el->n_items = iv->n - from;
    el->items = NULL;
    if (el->n_items > 0) {
        el->items = arena_alloc(r->arena, el->n_items * sizeof(*el->items));
        if (el->items == NULL)
            return failf(r, AHL_ENOMEM, "out of memory");
        memcpy(el->items, (struct ahl_dcm_dataset *)iv->v + from, el->n_items * sizeof(*el->items));
    }
    iv->n = from;
    return 0;
}

static bool is_pixel_tag(uint32_t tag)
{
    return tag == AHL_TAG_PIXEL_DATA || tag == AHL_TAG_FLOAT_PIXEL_DATA ||
           tag == AHL_TAG_DOUBLE_FLOAT_PIXEL_DATA;
}

/* The VR of an element in implicit VR, from the dictionary and the context. */
static void implicit_vr(uint32_t tag, const struct ctx *c, char vr[3])
{
    const struct ahl_dict_entry *d = ahl_dict_by_tag(tag);
    if (d == NULL || d->vr[0] == '\0') {
        memcpy(vr, "UN", 3);
        return;
    }
    memcpy(vr, d->vr, 3);
    if (memcmp(d->vr, "US", 2) == 0 && memcmp(d->vr_alt, "SS", 2) == 0 && c->pixel_rep == 1)
        memcpy(vr, "SS", 3);
    else if (memcmp(d->vr, "OB", 2) == 0 && memcmp(d->vr_alt, "OW", 2) == 0)
        memcpy(vr, "OW", 3); /* DCMTK and the standard's implicit default for OB/OW */
}

/* Counts n bytes of value (as the arena stores them: NUL-terminated, 16-byte aligned) against
 * the file's inline budget. */
static int charge_inline(struct reader *r, const struct ahl_dcm_elem *el, size_t n, uint64_t at)
{
    size_t cost = (n + 1 + 15) & ~(size_t)15;
    if (cost > r->lim.max_inline_total - r->inline_total)
        return failf(r, AHL_ETOOBIG,
                     "element " TAGF " at offset %llu: inline values exceed %zu bytes (limit)",
                     TAGA(el->tag), OFF(at), r->lim.max_inline_total);
    r->inline_total += cost;
    return 0;
}

/* Reads a value of len bytes into the arena (NUL-terminated), converting text and swapping
 * big-endian binaries; or leaves it in the file when it is over the inline limit. */
static int read_value(struct reader *r, struct ahl_dcm_elem *el, const struct vr_info *vi,
                      struct ctx *c, uint64_t at)
{
    uint32_t len = el->length;
    uint64_t got;
    int rc;

    if (len > r->lim.max_inline) {
        if ((rc = src_skip(r, len, &got)) < 0)
            return rc;
        if (got < len)
            return truncated(r, el->tag, at, len, got);
        return 0;
    }
    if ((rc = charge_inline(r, el, len, at)) < 0)
        return rc;
    uint8_t *v = arena_alloc(r->arena, (size_t)len + 1);
    if (v == NULL)
        return failf(r, AHL_ENOMEM, "out of memory");
    if ((rc = src_read(r, v, len, &got)) < 0)
        return rc;
    if (got < len)
        return truncated(r, el->tag, at, len, got);
    v[len] = 0;
    el->value = v;
    el->value_len = len;
    if (vi != NULL && (vi->flags & VR_TEXT)) {
        bool ascii = true;
        for (uint32_t i = 0; i < len; i++) {
            if (v[i] >= 0x80 || (v[i] == 0x1B && c->cs.iso2022)) {
                ascii = false;
                break;
            }
        }
        if (!ascii) {
            ahl_buf_reset(&r->text);
            bool specific = (vi->flags & VR_SPECIFIC) != 0;
            if ((rc = ahl__text_to_utf8(&r->conv, &c->cs, specific, memcmp(el->vr, "PN", 2) == 0, v,
                                        len, &r->text)) < 0)
                return failf(r, rc, "element " TAGF " at offset %llu: text conversion failed",
                             TAGA(el->tag), OFF(at));
            if ((rc = charge_inline(r, el, r->text.len, at)) < 0)
                return rc;
            uint8_t *u = arena_alloc(r->arena, r->text.len + 1);
            if (u == NULL)
                return failf(r, AHL_ENOMEM, "out of memory");
            memcpy(u, r->text.data, r->text.len);
            u[r->text.len] = 0;
            el->value = u;
            el->value_len = r->text.len;
        }
    } else if (c->enc.big && vi != NULL && vi->swap > 1) {
        swap_units(v, len, vi->swap); /* AT is a pair of 16-bit numbers: swap unit 2 */
    }
    return 0;
}

static bool valid_vr_chars(const uint8_t *p)
{
    return p[0] >= 'A' && p[0] <= 'Z' && p[1] >= 'A' && p[1] <= 'Z';
}

/* Reads one dataset: to `end` (defined-length item), to an item delimiter (undefined), to the
 * end of the group 0002 (meta), or to the end of input (depth 0). */
static int read_dataset(struct reader *r, unsigned depth, uint64_t item_at, uint64_t end,
                        bool undefined, bool meta, struct ctx *parent, struct ahl_dcm_dataset *out)
{
    struct ctx c = *parent;
    size_t from = r->levels[depth].n;
    int rc;

    c.pixel_rep = -1;
    for (;;) {
        uint64_t at = r->s.pos;
        if (end != UNKNOWN_SIZE && at >= end)
            break;
        if ((rc = src_fill(r, 12)) < 0)
            return rc;
        if (r->s.avail == 0) {
            if (depth == 0)
                break;
            return failf(r, AHL_EPARSE,
                         "item at offset %llu has no item delimiter (FFFE,E00D): the data ends at "
                         "offset %llu",
                         OFF(item_at), OFF(at));
        }
        if (r->s.avail < 4 || (r->s.avail < 8 && !(meta && r->s.avail >= 4)))
            return failf(r, AHL_EPARSE,
                         "truncated element header at offset %llu: 8 bytes needed, %zu left",
                         OFF(at), r->s.avail);
        const uint8_t *h = r->s.p;
        uint32_t tag = AHL_DCM_TAG(rd16(h, c.enc.big), rd16(h + 2, c.enc.big));
        if (meta && AHL_DCM_GROUP(tag) != 0x0002)
            break;
        if (r->s.avail < 8)
            return failf(r, AHL_EPARSE,
                         "truncated element header at offset %llu: 8 bytes needed, %zu left",
                         OFF(at), r->s.avail);
        if (tag == TAG_ITEM_END) {
            src_consume(&r->s, 8);
            if (undefined)
                break;
            return failf(r, AHL_EPARSE, "unexpected item delimiter (FFFE,E00D) at offset %llu",
                         OFF(at));
        }
        if (AHL_DCM_GROUP(tag) == 0xFFFE)
            return failf(r, AHL_EPARSE,
                         "unexpected " TAGF " at offset %llu: an item or delimiter outside a "
                         "sequence",
                         TAGA(tag), OFF(at));
        if ((rc = count_element(r, at)) < 0)
            return rc;

        struct ahl_dcm_elem el;
        memset(&el, 0, sizeof(el));
        el.tag = tag;
        const struct vr_info *vi = NULL;
        size_t hlen;
        if (c.enc.explicit_vr) {
            if (!valid_vr_chars(h + 4))
                return failf(r, AHL_EPARSE,
                             "element " TAGF " at offset %llu: expected a VR (two upper-case "
                             "letters), found bytes %02X %02X",
                             TAGA(tag), OFF(at), h[4], h[5]);
            el.vr[0] = (char)h[4];
            el.vr[1] = (char)h[5];
            vi = vr_lookup(el.vr);
            if (vi == NULL) {
                /* An unknown VR: PS3.5 §6.2 says to read it as UN (4-byte length). */
                if (r->s.avail < 12)
                    return failf(r, AHL_EPARSE,
                                 "truncated element header at offset %llu: 12 bytes needed, %zu "
                                 "left",
                                 OFF(at), r->s.avail);
                el.length = rd32(h + 8, c.enc.big);
                memcpy(el.vr, "UN", 3);
                vi = vr_lookup("UN");
                hlen = 12;
            } else if (vi->flags & VR_LONG) {
                if (r->s.avail < 12)
                    return failf(r, AHL_EPARSE,
                                 "truncated element header at offset %llu: 12 bytes needed, %zu "
                                 "left",
                                 OFF(at), r->s.avail);
                el.length = rd32(h + 8, c.enc.big);
                hlen = 12;
            } else {
                el.length = rd16(h + 6, c.enc.big);
                hlen = 8;
            }
        } else {
            implicit_vr(tag, &c, el.vr);
            vi = vr_lookup(el.vr);
            el.length = rd32(h + 4, c.enc.big);
            hlen = 8;
        }
        src_consume(&r->s, hlen);
        el.value_offset = r->s.pos;

        uint64_t left = src_left(&r->s);
        if (el.length != AHL_DCM_UNDEFINED_LENGTH) {
            if (left != UNKNOWN_SIZE && el.length > left)
                return truncated(r, tag, at, el.length, left);
            if (end != UNKNOWN_SIZE && el.length > end - r->s.pos)
                return failf(r, AHL_EPARSE,
                             "element " TAGF " at offset %llu: its %u bytes run past the end of "
                             "its item at offset %llu",
                             TAGA(tag), OFF(at), el.length, OFF(end));
        }

        bool is_sq = memcmp(el.vr, "SQ", 2) == 0;
        bool pixel = is_pixel_tag(tag);
        if (!is_sq && !pixel && !c.enc.explicit_vr && memcmp(el.vr, "UN", 2) == 0 &&
            el.length != AHL_DCM_UNDEFINED_LENGTH && el.length >= 8) {
            /* An unknown (e.g. private) element in implicit VR that holds items is a sequence,
             * as pydicom and DCMTK read it. */
            if ((rc = src_fill(r, 4)) < 0)
                return rc;
            if (r->s.avail >= 4 && rd32(r->s.p, false) == 0xE000FFFEu)
                is_sq = true;
        }
        if (el.length == AHL_DCM_UNDEFINED_LENGTH) {
            if (pixel) {
                el.value_offset = r->s.pos;
                if (depth == 0 && !r->f->pixel.present) {
                    struct ahl_dcm_pixel *px = &r->f->pixel;
                    px->present = true;
                    px->encapsulated = true;
                    px->tag = tag;
                    memcpy(px->vr, el.vr, 3);
                    px->value_offset = r->s.pos;
                    rc = read_encapsulated(r, &el, &c, end, true, at);
                    px->value_length = r->s.pos - px->value_offset;
                } else {
                    rc = read_encapsulated(r, &el, &c, end, false, at);
                }
                if (rc < 0)
                    return rc;
            } else if (is_sq || memcmp(el.vr, "UN", 2) == 0) {
                struct ctx sc = c;
                if (!is_sq) {
                    /* UN of undefined length: an implicit VR little-endian sequence (PS3.5
                     * §6.2.2); its VR becomes SQ when the dictionary knows it as one. */
                    sc.enc.explicit_vr = false;
                    sc.enc.big = false;
                    const struct ahl_dict_entry *d = ahl_dict_by_tag(tag);
                    if (d != NULL && memcmp(d->vr, "SQ", 2) == 0)
                        memcpy(el.vr, "SQ", 3);
                }
                if ((rc = read_sequence(r, depth, &el, &sc, at)) < 0)
                    return rc;
            } else {
                return failf(r, AHL_EPARSE,
                             "element " TAGF " at offset %llu: undefined length is not allowed "
                             "for VR %s",
                             TAGA(tag), OFF(at), el.vr);
            }
        } else if (is_sq) {
            if (memcmp(el.vr, "SQ", 2) != 0)
                memcpy(el.vr, "SQ", 3);
            if ((rc = read_sequence(r, depth, &el, &c, at)) < 0)
                return rc;
        } else if (pixel) {
            if (depth == 0 && !r->f->pixel.present) {
                struct ahl_dcm_pixel *px = &r->f->pixel;
                px->present = true;
                px->tag = tag;
                memcpy(px->vr, el.vr, 3);
                px->value_offset = r->s.pos;
                px->value_length = el.length;
            }
            uint64_t got;
            if ((rc = src_skip(r, el.length, &got)) < 0)
                return rc;
            if (got < el.length)
                return truncated(r, tag, at, el.length, got);
        } else {
            if ((rc = read_value(r, &el, vi, &c, at)) < 0)
                return rc;
            if (tag == TAG_CHARSET && el.value != NULL)
                ahl__charset_parse(&c.cs, el.value, el.value_len);
            if (tag == TAG_PIXEL_REPRESENTATION && el.value != NULL && el.value_len >= 2 &&
                memcmp(el.vr, "US", 2) == 0)
                c.pixel_rep = el.value[0] | (el.value[1] << 8);
        }
        if ((rc = vec_push(r, depth, &el)) < 0)
            return rc;
    }
    if (end != UNKNOWN_SIZE && r->s.pos != end)
        return failf(r, AHL_EPARSE, "item ending at offset %llu: its last element ends at %llu",
                     OFF(end), OFF(r->s.pos));
    return vec_finish(r, depth, from, out);
}

/* ---- file level ------------------------------------------------------------------------- */

static bool known_vr(const uint8_t *p)
{
    char vr[3] = {(char)p[0], (char)p[1], 0};
    return valid_vr_chars(p) && vr_lookup(vr) != NULL;
}

/* Chooses the encoding of a dataset whose transfer syntax is not given, from its first element
 * (pydicom's rule: a VR where one would be means explicit; the group's byte order picks the
 * endianness). committed: the file had "DICM" or a meta group, so it is DICOM whatever the
 * bytes look like; otherwise fail when they do not look like a DICOM element at all. */
static int infer_encoding(struct reader *r, bool committed, struct enc *enc, char ts[65])
{
    int rc;
    if ((rc = src_fill(r, 12)) < 0)
        return rc;
    const uint8_t *p = r->s.p;
    if (r->s.avail < 8 && committed)
        return failf(r, AHL_EPARSE,
                     "truncated element header at offset %llu: 8 bytes needed, %zu left",
                     OFF(r->s.pos), r->s.avail);
    if (r->s.avail < 8)
        return failf(r, AHL_EPARSE,
                     "not a DICOM file: no \"DICM\" at offset 128 and only %zu bytes of data",
                     r->s.avail);
    uint16_t g_le = rd16(p, false), g_be = rd16(p, true);
    bool big = g_le > 0x00FF && g_be <= 0x00FF && g_be != 0;
    uint16_t g = big ? g_be : g_le;
    if (known_vr(p + 4)) {
        enc->explicit_vr = true;
        enc->big = big;
        return ahl_str_copy(ts, 65, big ? AHL_TS_EXPLICIT_BE : AHL_TS_EXPLICIT_LE);
    }
    uint32_t len = rd32(p + 4, false);
    uint64_t left = src_left(&r->s);
    bool plausible =
        committed || (!big && g >= 0x0002 && g <= 0x7FE0 && (g % 2 == 0 || g >= 0x0009) &&
                      (len == AHL_DCM_UNDEFINED_LENGTH || left == UNKNOWN_SIZE || len <= left - 8));
    if (!plausible)
        return failf(r, AHL_EPARSE,
                     "not a DICOM file: no \"DICM\" at offset 128, and the data at offset %llu "
                     "is not a DICOM element (tag (%04X,%04X), length %u)",
                     OFF(r->s.pos), g_le, rd16(p + 2, false), len);
    enc->explicit_vr = false;
    enc->big = false;
    return ahl_str_copy(ts, 65, AHL_TS_IMPLICIT_LE);
}

static int read_file(struct reader *r)
{
    struct ahl_dcm_file *f = r->f;
    struct ctx c;
    int rc;

    memset(&c, 0, sizeof(c));
    ahl__charset_default(&c.cs);
    c.pixel_rep = -1;
    if ((rc = src_fill(r, 132)) < 0)
        return rc;
    if (r->s.avail == 0)
        return failf(r, AHL_EPARSE, "not a DICOM file: it is empty");
    if (r->s.avail >= 132 && memcmp(r->s.p + 128, "DICM", 4) == 0) {
        f->has_preamble = true;
        src_consume(&r->s, 132);
    } else if (r->s.avail >= 4 && memcmp(r->s.p, "DICM", 4) == 0) {
        src_consume(&r->s, 4); /* the prefix without the preamble */
    }

    /* The meta group is explicit VR little endian; it is present when the first tag is in
     * group 0002 and has a VR. */
    if ((rc = src_fill(r, 8)) < 0)
        return rc;
    if (r->s.avail >= 8 && rd16(r->s.p, false) == 0x0002 && valid_vr_chars(r->s.p + 4)) {
        struct ctx mc = c;
        mc.enc.explicit_vr = true;
        mc.enc.big = false;
        if ((rc = read_dataset(r, 0, 0, UNKNOWN_SIZE, false, true, &mc, &f->meta)) < 0)
            return rc;
    }
    /* Without a meta group (even after "DICM") we read on as pydicom does, inferring the
     * encoding from the data. */

    const struct ahl_dcm_elem *ts = ahl_dcm_find(&f->meta, TAG_TRANSFER_SYNTAX);
    struct enc enc;
    if (ts != NULL && ts->value != NULL && ts->value_len > 0) {
        size_t n = ts->value_len;
        while (n > 0 && (ts->value[n - 1] == ' ' || ts->value[n - 1] == '\0'))
            n--;
        if (n > 64)
            return failf(r, AHL_EPARSE,
                         "transfer syntax UID (0002,0010) at offset %llu is %zu characters long "
                         "(64 at most)",
                         OFF(ts->value_offset), n);
        memcpy(f->transfer_syntax, ts->value, n);
        f->transfer_syntax[n] = 0;
        enc.explicit_vr = strcmp(f->transfer_syntax, AHL_TS_IMPLICIT_LE) != 0;
        enc.big = strcmp(f->transfer_syntax, AHL_TS_EXPLICIT_BE) == 0;
        if (strcmp(f->transfer_syntax, AHL_TS_DEFLATED_LE) == 0) {
            f->deflated = true;
            if ((rc = src_start_inflate(r)) < 0)
                return rc;
        }
        /* Like pydicom, trust the data over the meta when the first element says otherwise
         * about the VR being explicit. */
        if (!f->deflated) {
            if ((rc = src_fill(r, 8)) < 0)
                return rc;
            if (r->s.avail >= 8)
                enc.explicit_vr = known_vr(r->s.p + 4);
        }
    } else {
        if ((rc = src_fill(r, 8)) < 0)
            return rc;
        if (r->s.avail == 0 && f->meta.n > 0) {
            if ((rc = ahl_str_copy(f->transfer_syntax, sizeof f->transfer_syntax,
                                   AHL_TS_IMPLICIT_LE)) < 0)
                return rc;
            enc.explicit_vr = false;
            enc.big = false;
        } else if ((rc = infer_encoding(r, f->has_preamble || f->meta.n > 0, &enc,
                                        f->transfer_syntax)) < 0) {
            return rc;
        }
    }
    f->big_endian = enc.big;
    c.enc = enc;
    return read_dataset(r, 0, 0, UNKNOWN_SIZE, false, false, &c, &f->ds);
}

static int read_any(struct reader *r, const struct ahl_p10_limits *lim, struct ahl_dcm_file **out)
{
    struct file_impl *impl;
    int rc;

    *out = NULL;
    if (lim != NULL)
        r->lim = *lim;
    else
        ahl_p10_limits_default(&r->lim);
    if (r->lim.max_depth > 4096)
        r->lim.max_depth = 4096;
    impl = calloc(1, sizeof(*impl));
    if (impl == NULL)
        return failf(r, AHL_ENOMEM, "out of memory");
    r->f = &impl->pub;
    r->arena = &impl->arena;
    r->n_levels = r->lim.max_depth + 2;
    r->levels = calloc(r->n_levels, sizeof(*r->levels));
    r->items = calloc(r->n_levels, sizeof(*r->items));
    ahl__conv_init(&r->conv);
    ahl_buf_init(&r->text, (size_t)r->lim.max_inline * 4 + 16);
    if (r->levels == NULL || r->items == NULL) {
        rc = failf(r, AHL_ENOMEM, "out of memory");
        goto out;
    }
    rc = read_file(r);
    if (rc == 0 && r->f->pixel.n_fragments > 0) {
        /* The extended offset table's lengths, when they describe the fragments. */
        const struct ahl_dcm_elem *lens = ahl_dcm_find(&r->f->ds, TAG_EXT_OFFSET_LENGTHS);
        const struct ahl_dcm_elem *offs = ahl_dcm_find(&r->f->ds, TAG_EXT_OFFSET_TABLE);
        if (lens != NULL && offs != NULL && lens->value != NULL &&
            lens->value_len / 8 == r->f->pixel.n_fragments) {
            size_t n = lens->value_len / 8;
            uint32_t *t = malloc(n * sizeof(*t));
            if (t == NULL) {
                rc = failf(r, AHL_ENOMEM, "out of memory");
                goto out;
            }
            for (size_t i = 0; i < n; i++) {
                uint64_t v = 0;
                for (int b = 7; b >= 0; b--)
                    v = (v << 8) | lens->value[i * 8 + (size_t)b];
                t[i] = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
            }
            r->f->pixel.extended_offsets_lengths = t;
        }
    }
out:
    for (unsigned i = 0; r->levels != NULL && i < r->n_levels; i++)
        free(r->levels[i].v);
    for (unsigned i = 0; r->items != NULL && i < r->n_levels; i++)
        free(r->items[i].v);
    free(r->levels);
    free(r->items);
    ahl__conv_release(&r->conv);
    ahl_buf_release(&r->text);
    if (r->s.z_ready)
        inflateEnd(&r->s.z);
    free(r->s.zin);
    if (r->s.fd >= 0 || r->s.inflating)
        free(r->s.win);
    if (rc < 0) {
        ahl_dcm_file_free(r->f);
        return rc;
    }
    *out = r->f;
    return 0;
}

int ahl_p10_read_mem(const void *data, size_t n, const struct ahl_p10_limits *lim,
                     struct ahl_dcm_file **out, struct ahl_err *err)
{
    struct reader r;
    memset(&r, 0, sizeof(r));
    r.err = err;
    r.s.fd = -1;
    r.s.mem = data != NULL ? data : (const uint8_t *)"";
    r.s.mem_len = data != NULL ? n : 0;
    r.s.p = r.s.mem;
    r.s.avail = r.s.mem_len;
    r.s.raw_pos = r.s.mem_len;
    r.s.raw_total = r.s.mem_len;
    r.s.raw_eof = true;
    return read_any(&r, lim, out);
}

int ahl_p10_read_fd(int fd, const struct ahl_p10_limits *lim, struct ahl_dcm_file **out,
                    struct ahl_err *err)
{
    struct reader r;
    struct stat st;
    memset(&r, 0, sizeof(r));
    r.err = err;
    r.s.fd = fd;
    r.s.raw_total = UNKNOWN_SIZE;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        off_t cur = lseek(fd, 0, SEEK_CUR);
        if (cur >= 0 && cur <= st.st_size)
            r.s.raw_total = (uint64_t)(st.st_size - cur);
    }
    r.s.win = malloc(WINDOW_SIZE);
    if (r.s.win == NULL) {
        *out = NULL;
        return ahl_fail(err, AHL_ENOMEM, "out of memory");
    }
    r.s.p = r.s.win;
    return read_any(&r, lim, out);
}

int ahl_p10_read_path(const char *path, const struct ahl_p10_limits *lim, struct ahl_dcm_file **out,
                      struct ahl_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *out = NULL;
        return ahl_fail(err, AHL_EIO, "%s: cannot open: %s", path, strerror(errno));
    }
    int rc = ahl_p10_read_fd(fd, lim, out, err);
    close(fd);
    return rc;
}
