/* The import pipeline (src/import/import.h) on generated Part-10 files and corpus files: grouping
 * into primary and non-primary image sets, idempotent re-import, batching into one version, frames
 * recorded, invalid offset tables flagged, failure reasons, threads racing on one new series, and
 * frames made durable (one sync) before the version that names them is committed.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "base/buf.h"
#include "base/clock.h"
#include "base/codec.h"
#include "blob/framestore.h"
#include "frames/frames.h"
#include "import/import.h"
#include "import/import_internal.h"
#include "meta/meta.h"
#include "store/store.h"

#include "jobs_fixture.h"

#define CORPUS "/usr/lib/python3/dist-packages/pydicom/data/test_files/"

/* ---- a tiny Part-10 writer (explicit VR little endian) --------------------------------------- */

struct el {
    uint16_t g, e;
    const char *vr;
    const void *val;
    size_t len; /* 0 with a string val: strlen */
};

static void put16(struct ahl_buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    ahl_buf_add(b, x, 2);
}

static void put32(struct ahl_buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    ahl_buf_add(b, x, 4);
}

static void put_el(struct ahl_buf *b, const struct el *x)
{
    size_t n = x->len ? x->len : strlen(x->val);
    size_t padded = n + (n & 1);
    int long_form = !strcmp(x->vr, "OB") || !strcmp(x->vr, "OW") || !strcmp(x->vr, "UN") ||
                    !strcmp(x->vr, "SQ") || !strcmp(x->vr, "UT");
    put16(b, x->g);
    put16(b, x->e);
    ahl_buf_add(b, x->vr, 2);
    if (long_form) {
        put16(b, 0);
        put32(b, (uint32_t)padded);
    } else {
        put16(b, (uint16_t)padded);
    }
    ahl_buf_add(b, x->val, n);
    if (n & 1)
        ahl_buf_addc(b, !strcmp(x->vr, "UI") || !strcmp(x->vr, "OB") ? '\0' : ' ');
}

static int el_cmp(const void *a, const void *b)
{
    const struct el *x = a, *y = b;
    uint32_t tx = (uint32_t)x->g << 16 | x->e, ty = (uint32_t)y->g << 16 | y->e;
    return tx < ty ? -1 : tx > ty;
}

/* Options of a generated instance. */
struct inst {
    const char *study, *series, *sop;
    const char *patient_name, *patient_id;
    unsigned rows, cols; /* 0: no pixel data */
    uint16_t seed;
    /* Encapsulated RLE Lossless pixel data of `frames` frames (0 or 1: one) instead of native
     * data, with this Basic Offset Table: */
    bool rle;
    unsigned frames;
    enum { BOT_EMPTY, BOT_RIGHT, BOT_OFF_BOUNDARY, BOT_TOO_FEW } bot;
    /* Deflated Explicit VR Little Endian (native pixels only): the compressed stream loses its
     * last deflate_cut bytes and is followed by trailer[trailer_len]. zero_pixels makes every
     * sample 0, so the stream ends in long matches. */
    bool deflate, zero_pixels;
    size_t deflate_cut, trailer_len;
    const char *trailer;
    /* When not NULL, set to whether zlib, inflating the stream into 64 KiB buffers, takes in the
     * last input byte while it still holds output for a later buffer. */
    bool *output_outlasts_input;
};

/* The generated image: a wrapping ramp, 12 bits stored. */
static uint16_t pixel_value(const struct inst *in, size_t i)
{
    if (in->zero_pixels)
        return 0;
    return (uint16_t)((i * 7 + in->seed * 13u + (i / in->cols) * 3) & 0xFFF);
}

/* RLE-codes one byte plane (PS3.5 G.3) with literal runs only, padded to even length with a
 * no-op byte. */
static void rle_segment(struct ahl_buf *b, const uint8_t *plane, size_t n)
{
    size_t start = b->len;
    for (size_t i = 0; i < n; i += 128) {
        size_t run = n - i < 128 ? n - i : 128;
        ahl_buf_addc(b, (char)(run - 1));
        ahl_buf_add(b, plane + i, run);
    }
    if ((b->len - start) & 1)
        ahl_buf_addc(b, (char)0x80);
}

/* Appends the encapsulated Pixel Data of in: a Basic Offset Table item as in->bot says, then one
 * RLE fragment per frame (16-bit samples: the high-byte segment, then the low-byte one). */
static void put_rle_pixels(struct ahl_buf *b, const struct inst *in, const uint8_t *pixels)
{
    unsigned nframes = in->frames ? in->frames : 1;
    size_t np = (size_t)in->rows * in->cols;
    struct ahl_buf frag[8];
    uint32_t bot[8], pos = 0;
    assert_true(nframes <= 8);
    uint8_t *hi = malloc(np), *lo = malloc(np);
    for (unsigned k = 0; k < nframes; k++) {
        for (size_t i = 0; i < np; i++) {
            lo[i] = pixels[2 * (k * np + i)];
            hi[i] = pixels[2 * (k * np + i) + 1];
        }
        struct ahl_buf seg1, seg2;
        ahl_buf_init(&seg1, AHL_BUF_UNLIMITED);
        ahl_buf_init(&seg2, AHL_BUF_UNLIMITED);
        rle_segment(&seg1, hi, np);
        rle_segment(&seg2, lo, np);
        ahl_buf_init(&frag[k], AHL_BUF_UNLIMITED);
        uint32_t header[16] = {2, 64, 64 + (uint32_t)seg1.len};
        for (int h = 0; h < 16; h++)
            put32(&frag[k], header[h]);
        ahl_buf_add(&frag[k], seg1.data, seg1.len);
        ahl_buf_add(&frag[k], seg2.data, seg2.len);
        ahl_buf_release(&seg1);
        ahl_buf_release(&seg2);
        bot[k] = pos;
        pos += 8 + (uint32_t)frag[k].len;
    }
    size_t n_bot = in->bot == BOT_EMPTY ? 0 : in->bot == BOT_TOO_FEW ? nframes - 1 : nframes;
    if (in->bot == BOT_OFF_BOUNDARY)
        bot[nframes - 1] += 2; /* inside the previous frame's fragment */
    put16(b, 0x7FE0);
    put16(b, 0x0010);
    ahl_buf_add(b, "OB\0\0", 4);
    put32(b, AHL_DCM_UNDEFINED_LENGTH);
    put16(b, 0xFFFE);
    put16(b, 0xE000);
    put32(b, (uint32_t)(4 * n_bot));
    for (size_t k = 0; k < n_bot; k++)
        put32(b, bot[k]);
    for (unsigned k = 0; k < nframes; k++) {
        put16(b, 0xFFFE);
        put16(b, 0xE000);
        put32(b, (uint32_t)frag[k].len);
        ahl_buf_add(b, frag[k].data, frag[k].len);
        ahl_buf_release(&frag[k]);
    }
    put16(b, 0xFFFE);
    put16(b, 0xE0DD);
    put32(b, 0);
    free(hi);
    free(lo);
}

/* Whether inflating z[0..n) into 64 KiB buffers, as the importer does, ever returns with the
 * buffer full, all the input taken in and the stream not yet ended. */
static bool output_outlasts_input(const uint8_t *zdata, size_t n)
{
    static uint8_t out[65536];
    z_stream z;
    bool held = false;
    int zr = Z_OK;
    memset(&z, 0, sizeof z);
    assert_int_equal(inflateInit2(&z, -15), Z_OK);
    z.next_in = (uint8_t *)zdata;
    z.avail_in = (uInt)n;
    while (zr == Z_OK) {
        z.next_out = out;
        z.avail_out = sizeof out;
        zr = inflate(&z, Z_NO_FLUSH);
        held = held || (zr == Z_OK && z.avail_out == 0 && z.avail_in == 0);
    }
    inflateEnd(&z);
    return held;
}

/* Replaces b's bytes from offset `from` on with their raw deflate (the deflated transfer
 * syntax's body), less the last `cut` bytes of the stream, followed by trailer[trailer_len]. */
static void deflate_tail(struct ahl_buf *b, size_t from, size_t cut, const char *trailer,
                         size_t trailer_len, bool *held)
{
    size_t plain_len = b->len - from;
    uLong bound = compressBound((uLong)plain_len) + 64;
    uint8_t *z_out = malloc(bound);
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_non_null(z_out);
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    /* The last 4 KiB go in a block of their own after a full flush (what a writer streaming its
     * output may do): that block's codes then depend on those bytes alone, not on the dataset
     * before them, which keeps output_outlasts_input() predictable. */
    size_t tail = plain_len > 8192 ? 4096 : 0;
    z.next_in = (uint8_t *)b->data + from;
    z.avail_in = (uInt)(plain_len - tail);
    z.next_out = z_out;
    z.avail_out = (uInt)bound;
    assert_int_equal(deflate(&z, Z_FULL_FLUSH), Z_OK);
    z.avail_in = (uInt)tail;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    b->len = from;
    assert_true(z.total_out > cut);
    if (held)
        *held = output_outlasts_input(z_out, z.total_out);
    ahl_buf_add(b, z_out, z.total_out - cut);
    ahl_buf_add(b, trailer, trailer_len);
    deflateEnd(&z);
    free(z_out);
}

/* Writes the instance; returns the length of its dataset (after the meta group, before any
 * deflate). */
static size_t write_instance(const char *path, const struct inst *in)
{
    struct ahl_buf b, meta;
    struct el els[32];
    size_t n = 0;
    uint16_t one = 1, rows = (uint16_t)in->rows, cols = (uint16_t)in->cols, bits = 16, stored = 12,
             high = 11, zero = 0;
    uint8_t *pixels = NULL;
    char nframes[16];
    snprintf(nframes, sizeof nframes, "%u", in->frames ? in->frames : 1);
    ahl_buf_init(&b, AHL_BUF_UNLIMITED);
    ahl_buf_init(&meta, AHL_BUF_UNLIMITED);
    const char *ct = "1.2.840.10008.5.1.4.1.1.2";
    els[n++] = (struct el){0x0008, 0x0016, "UI", ct, 0};
    if (in->sop)
        els[n++] = (struct el){0x0008, 0x0018, "UI", in->sop, 0};
    els[n++] = (struct el){0x0008, 0x0020, "DA", "20240102", 0};
    els[n++] = (struct el){0x0008, 0x0060, "CS", "CT", 0};
    els[n++] = (struct el){0x0010, 0x0010, "PN", in->patient_name ? in->patient_name : "DOE^J", 0};
    els[n++] = (struct el){0x0010, 0x0020, "LO", in->patient_id ? in->patient_id : "P1", 0};
    els[n++] = (struct el){0x0020, 0x000D, "UI", in->study, 0};
    els[n++] = (struct el){0x0020, 0x000E, "UI", in->series, 0};
    els[n++] = (struct el){0x0020, 0x0010, "SH", "S1", 0};
    els[n++] = (struct el){0x0020, 0x0011, "IS", "3", 0};
    if (in->rows) {
        els[n++] = (struct el){0x0028, 0x0002, "US", &one, 2};
        els[n++] = (struct el){0x0028, 0x0004, "CS", "MONOCHROME2", 0};
        els[n++] = (struct el){0x0028, 0x0010, "US", &rows, 2};
        els[n++] = (struct el){0x0028, 0x0011, "US", &cols, 2};
        els[n++] = (struct el){0x0028, 0x0100, "US", &bits, 2};
        els[n++] = (struct el){0x0028, 0x0101, "US", &stored, 2};
        els[n++] = (struct el){0x0028, 0x0102, "US", &high, 2};
        els[n++] = (struct el){0x0028, 0x0103, "US", &zero, 2};
        if (in->frames > 1)
            els[n++] = (struct el){0x0028, 0x0008, "IS", nframes, 0};
        size_t np = (size_t)in->rows * in->cols * (in->frames ? in->frames : 1);
        pixels = malloc(np * 2);
        for (size_t i = 0; i < np; i++) {
            uint16_t v = pixel_value(in, i);
            pixels[2 * i] = (uint8_t)v;
            pixels[2 * i + 1] = (uint8_t)(v >> 8);
        }
        if (!in->rle)
            els[n++] = (struct el){0x7FE0, 0x0010, "OW", pixels, np * 2};
    }
    qsort(els, n, sizeof els[0], el_cmp);

    /* File meta group. */
    struct el m[] = {
        {0x0002, 0x0001, "OB", "\0\1", 2},
        {0x0002, 0x0002, "UI", ct, 0},
        {0x0002, 0x0003, "UI", in->sop ? in->sop : "1.2.3", 0},
        {0x0002, 0x0010, "UI",
         in->rle       ? "1.2.840.10008.1.2.5"
         : in->deflate ? "1.2.840.10008.1.2.1.99"
                       : "1.2.840.10008.1.2.1",
         0},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        put_el(&meta, &m[i]);
    for (int i = 0; i < 128; i++)
        ahl_buf_addc(&b, 0);
    ahl_buf_add(&b, "DICM", 4);
    uint32_t gl = (uint32_t)meta.len;
    put_el(&b, &(struct el){0x0002, 0x0000, "UL", &gl, 4});
    ahl_buf_add(&b, meta.data, meta.len);
    size_t meta_end = b.len;
    for (size_t i = 0; i < n; i++)
        put_el(&b, &els[i]);
    if (in->rows && in->rle)
        put_rle_pixels(&b, in, pixels);
    size_t dataset_len = b.len - meta_end;
    if (in->deflate)
        deflate_tail(&b, meta_end, in->deflate_cut, in->trailer, in->trailer_len,
                     in->output_outlasts_input);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b.data, 1, b.len, f), b.len);
    fclose(f);
    free(pixels);
    ahl_buf_release(&b);
    ahl_buf_release(&meta);
    return dataset_len;
}

/* ---- fixture ------------------------------------------------------------------------------- */

struct fx {
    char dir[64], frames[128], file[160];
    struct ahl_store *store;
    struct ahl_meta *m;
    struct ahl_importer *im;
    char ds[AHL_ID_LEN + 1];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    struct ahl_err err;
    snprintf(f->dir, sizeof f->dir, "/tmp/ahl-import-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->frames, sizeof f->frames, "%s/frames", f->dir);
    snprintf(f->file, sizeof f->file, "%s/in.dcm", f->dir);
    jobs_fx_open(f->dir, 5, &f->store, &f->m, f->ds);
    struct ahl_import_opts o = {.frames_root = f->frames, .lock_dir = f->dir, .tmp_dir = f->dir};
    assert_int_equal(ahl_importer_open(f->m, f->ds, &o, &f->im, &err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    ahl_importer_close(f->im);
    ahl_meta_close(f->m);
    ahl_store_close(f->store);
    jobs_fx_rmtree(f->dir);
    free(f);
    return 0;
}

static int import_inst(struct fx *f, const struct inst *in, struct ahl_import_result *res)
{
    write_instance(f->file, in);
    return ahl_import_path(f->im, f->file, "in.dcm", res);
}

struct sets {
    struct ahl_imageset_rec v[16];
    size_t n;
};

static int collect(void *ctx, const struct ahl_imageset_rec *r)
{
    struct sets *s = ctx;
    if (s->n < 16)
        s->v[s->n++] = *r;
    return 0;
}

static void study_sets(struct fx *f, const char *study, struct sets *s)
{
    struct ahl_store_tx *tx;
    s->n = 0;
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    assert_int_equal(ahl_store_imageset_by_study(tx, f->ds, study, false, collect, s), 0);
    ahl_store_rollback(tx);
}

static size_t instance_count(struct fx *f, const char *id)
{
    json_t *doc;
    struct ahl_err err;
    size_t n = 0;
    assert_int_equal(ahl_meta_document(f->m, f->ds, id, 0, &doc, &err), 0);
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(json_object_get(doc, "Study"), "Series"), k, v) n +=
        json_object_size(json_object_get(v, "Instances"));
    json_decref(doc);
    return n;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_primary_grouping_and_idempotence(void **state)
{
    struct fx *f = *state;
    struct ahl_import_result r1, r2, r3;
    struct inst a = {.study = "1.2.3.1", .series = "1.2.3.1.1", .sop = "1.2.3.1.1.1"};
    assert_int_equal(import_inst(f, &a, &r1), 0);
    assert_true(r1.is_primary);
    assert_true(r1.created);
    assert_int_equal(r1.version, 1);
    assert_string_equal(r1.sop_instance_uid, "1.2.3.1.1.1");

    struct inst b = a;
    b.sop = "1.2.3.1.1.2";
    assert_int_equal(import_inst(f, &b, &r2), 0);
    assert_string_equal(r2.imageset_id, r1.imageset_id);
    assert_int_equal(r2.version, 2);
    assert_false(r2.created);
    assert_false(r2.unchanged);

    /* The same instance again: nothing changes, no version. */
    assert_int_equal(import_inst(f, &b, &r3), 0);
    assert_string_equal(r3.imageset_id, r1.imageset_id);
    assert_int_equal(r3.version, 2);
    assert_true(r3.unchanged);

    struct sets s;
    study_sets(f, "1.2.3.1", &s);
    assert_int_equal(s.n, 1);
    assert_int_equal(instance_count(f, r1.imageset_id), 2);

    /* Another series of the study: its own primary set. */
    struct inst c = a;
    c.series = "1.2.3.1.2";
    c.sop = "1.2.3.1.2.1";
    assert_int_equal(import_inst(f, &c, &r3), 0);
    assert_true(r3.is_primary && r3.created);
    assert_string_not_equal(r3.imageset_id, r1.imageset_id);
}

static void test_conflict_goes_non_primary(void **state)
{
    struct fx *f = *state;
    struct ahl_import_result r1, r2, r3, r4;
    struct inst a = {.study = "1.2.4", .series = "1.2.4.1", .sop = "1.2.4.1.1"};
    assert_int_equal(import_inst(f, &a, &r1), 0);
    struct inst b = a;
    b.sop = "1.2.4.1.2";
    b.patient_name = "OTHER^NAME";
    assert_int_equal(import_inst(f, &b, &r2), 0);
    assert_false(r2.is_primary);
    assert_true(r2.created);
    assert_string_not_equal(r2.imageset_id, r1.imageset_id);
    assert_int_equal(r2.n_warnings, 1);
    assert_non_null(strstr(r2.warning, "PatientName"));

    /* A second instance with the same conflicting name joins that non-primary set. */
    struct inst c = b;
    c.sop = "1.2.4.1.3";
    assert_int_equal(import_inst(f, &c, &r3), 0);
    assert_false(r3.is_primary);
    assert_string_equal(r3.imageset_id, r2.imageset_id);
    assert_int_equal(r3.version, 2);

    /* A conflicting grouping element (PatientID) with yet another name: a further set. */
    struct inst d = a;
    d.sop = "1.2.4.1.4";
    d.patient_id = "P2";
    assert_int_equal(import_inst(f, &d, &r4), 0);
    assert_false(r4.is_primary);
    assert_string_not_equal(r4.imageset_id, r2.imageset_id);
    assert_non_null(strstr(r4.warning, "PatientID"));

    /* Imported again (a job run again after its node died): each instance lands where it is,
     * unchanged, and no set or version is made. */
    struct ahl_import_result again;
    assert_int_equal(import_inst(f, &b, &again), 0);
    assert_string_equal(again.imageset_id, r2.imageset_id);
    assert_true(again.unchanged);
    assert_int_equal(again.version, 2);
    assert_int_equal(import_inst(f, &d, &again), 0);
    assert_string_equal(again.imageset_id, r4.imageset_id);
    assert_true(again.unchanged);
    assert_int_equal(again.version, 1);
    assert_int_equal(import_inst(f, &a, &again), 0);
    assert_string_equal(again.imageset_id, r1.imageset_id);
    assert_true(again.unchanged);
    assert_int_equal(again.version, 1);

    /* The primary set kept its one instance. */
    assert_int_equal(instance_count(f, r1.imageset_id), 1);
    struct sets s;
    study_sets(f, "1.2.4", &s);
    assert_int_equal(s.n, 3);
}

static void test_frames_recorded(void **state)
{
    struct fx *f = *state;
    struct ahl_import_result r;
    struct inst a = {.study = "1.2.5",
                     .series = "1.2.5.1",
                     .sop = "1.2.5.1.1",
                     .rows = 33,
                     .cols = 17,
                     .seed = 3};
    assert_int_equal(import_inst(f, &a, &r), 0);
    assert_int_equal(r.frames, 1);
    json_t *doc;
    struct ahl_err err;
    assert_int_equal(ahl_meta_document(f->m, f->ds, r.imageset_id, 0, &doc, &err), 0);
    json_t *inst = json_object_get(
        json_object_get(
            json_object_get(json_object_get(json_object_get(doc, "Study"), "Series"), "1.2.5.1"),
            "Instances"),
        "1.2.5.1.1");
    assert_non_null(inst);
    assert_string_equal(json_string_value(json_object_get(inst, "StoredTransferSyntaxUID")),
                        AHL_TS_HTJ2K_RPCL);
    json_t *fr = json_array_get(json_object_get(inst, "ImageFrames"), 0);
    assert_non_null(fr);
    const char *id = json_string_value(json_object_get(fr, "ID"));
    assert_non_null(id);
    assert_int_equal(strlen(id), 32);
    unsigned lo = 0xFFFF, hi = 0;
    for (size_t i = 0; i < 33 * 17; i++) {
        unsigned v = pixel_value(&a, i);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    assert_int_equal(json_integer_value(json_object_get(fr, "MinPixelValue")), lo);
    assert_int_equal(json_integer_value(json_object_get(fr, "MaxPixelValue")), hi);
    json_t *lv = json_object_get(fr, "PixelDataChecksumFromBaseToFullResolution");
    assert_true(json_array_size(lv) >= 1);
    json_t *full = json_array_get(lv, json_array_size(lv) - 1);
    assert_int_equal(json_integer_value(json_object_get(full, "Width")), 17);
    assert_int_equal(json_integer_value(json_object_get(full, "Height")), 33);
    /* Full-resolution checksum: CRC32 of the little-endian samples, computed here. */
    uint8_t raw[33 * 17 * 2];
    for (size_t i = 0; i < 33 * 17; i++) {
        raw[2 * i] = (uint8_t)pixel_value(&a, i);
        raw[2 * i + 1] = (uint8_t)(pixel_value(&a, i) >> 8);
    }
    assert_int_equal(json_integer_value(json_object_get(full, "Checksum")),
                     ahl_crc32(0, raw, sizeof raw));
    struct ahl_framestore fs;
    assert_int_equal(ahl_framestore_open(&fs, f->frames, &err), 0);
    assert_int_equal(ahl_framestore_exists(&fs, id), 1);
    uint8_t *data;
    size_t len;
    assert_int_equal(ahl_framestore_get(&fs, id, &data, &len, &err), 0);
    assert_int_equal(len, (size_t)json_integer_value(json_object_get(fr, "FrameSizeInBytes")));
    free(data);
    json_decref(doc);

    /* A corpus file with an encapsulated syntax. */
    assert_int_equal(ahl_import_path(f->im, CORPUS "MR_small_RLE.dcm", "rle", &r), 0);
    assert_int_equal(r.frames, 1);
    assert_int_equal(ahl_import_path(f->im, CORPUS "SC_rgb_rle_2frame.dcm", "rle2", &r), 0);
    assert_int_equal(r.frames, 2);

    /* Re-importing is idempotent also for the colour-bar files whose HTJ2K bytes once depended
     * on what malloc handed the encoder (htj2k_encode.cc): glibc's M_PERTURB p fills new blocks
     * with p ^ 0xFF, zeros for the first import and 0xA5 for the second. */
    static const char *const colour[] = {
        "SC_rgb_rle_2frame.dcm", "SC_rgb_rle.dcm",       "SC_rgb_rle_16bit.dcm",
        "SC_rgb_small_odd.dcm",  "SC_rgb_jpeg_gdcm.dcm", "SC_ybr_full_422_uncompressed.dcm",
        "GDCMJ2K_TextGBR.dcm",
    };
    for (size_t k = 0; k < sizeof colour / sizeof colour[0]; k++) {
        char path[256];
        snprintf(path, sizeof path, "%s%s", CORPUS, colour[k]);
#ifdef M_PERTURB
        mallopt(M_PERTURB, 0xFF);
#endif
        int rc1 = ahl_import_path(f->im, path, colour[k], &r);
        struct ahl_import_result again;
#ifdef M_PERTURB
        mallopt(M_PERTURB, 0x5A);
#endif
        int rc2 = ahl_import_path(f->im, path, colour[k], &again);
#ifdef M_PERTURB
        mallopt(M_PERTURB, 0);
#endif
        if (rc1 != 0 || rc2 != 0)
            fail_msg("%s: %s / %s", colour[k], r.message, again.message);
        if (!again.unchanged || again.version != r.version)
            fail_msg("%s: re-import made version %llu (first import: version %llu)", colour[k],
                     (unsigned long long)again.version, (unsigned long long)r.version);
    }
}

/* Frame ids of the latest version's instance sop (in a set of one instance). */
static void frame_ids(struct fx *f, const char *set_id, const char *sop, char ids[][33], size_t cap,
                      size_t *n)
{
    json_t *doc;
    struct ahl_err err;
    *n = 0;
    assert_int_equal(ahl_meta_document(f->m, f->ds, set_id, 0, &doc, &err), 0);
    const char *k;
    json_t *ser;
    json_object_foreach(json_object_get(json_object_get(doc, "Study"), "Series"), k, ser)
    {
        json_t *inst = json_object_get(json_object_get(ser, "Instances"), sop);
        size_t i;
        json_t *fr;
        json_array_foreach(json_object_get(inst, "ImageFrames"), i, fr)
        {
            if (*n < cap)
                snprintf(ids[(*n)++], 33, "%s", json_string_value(json_object_get(fr, "ID")));
        }
    }
    json_decref(doc);
}

/* A Basic Offset Table that does not match the fragments (HealthImaging: warning 45330
 * InvalidOffsetTable) still imports, with the frames found from the fragments and the warning
 * flagged; the frames are those of the same file with a correct table. An empty table is valid. */
static void test_invalid_offset_table(void **state)
{
    struct fx *f = *state;
    static const struct {
        int bot;
        bool invalid;
    } cases[] = {
        {BOT_RIGHT, false},
        {BOT_EMPTY, false},
        {BOT_OFF_BOUNDARY, true},
        {BOT_TOO_FEW, true},
    };
    char first_ids[3][33];
    size_t n_first = 0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct inst a = {.study = "1.2.9",
                         .series = "1.2.9.1",
                         .sop = "1.2.9.1.1",
                         .rows = 20,
                         .cols = 300, /* two literal runs per row segment and odd lengths */
                         .rle = true,
                         .frames = 3,
                         .bot = cases[k].bot};
        struct ahl_import_result r;
        if (import_inst(f, &a, &r) != 0)
            fail_msg("case %zu: %s", k, r.message);
        assert_int_equal(r.frames, 3);
        if (r.invalid_offset_table != cases[k].invalid)
            fail_msg("case %zu: invalid_offset_table %d", k, r.invalid_offset_table);
        /* The same pixels whatever the table: the same frames, so no new version. */
        char ids[3][33];
        size_t n;
        frame_ids(f, r.imageset_id, "1.2.9.1.1", ids, 3, &n);
        assert_int_equal(n, 3);
        if (k == 0) {
            memcpy(first_ids, ids, sizeof ids);
            n_first = n;
            assert_true(strcmp(ids[0], ids[1]) && strcmp(ids[1], ids[2]));
        } else {
            assert_int_equal(n, n_first);
            assert_memory_equal(ids, first_ids, sizeof ids);
            assert_true(r.unchanged);
        }
    }
}

static void test_failure_reasons(void **state)
{
    struct fx *f = *state;
    struct ahl_import_result r;
    FILE *fp = fopen(f->file, "w");
    fputs("this is not DICOM at all, just some text that goes on for a while......\n", fp);
    fclose(fp);
    assert_true(ahl_import_path(f->im, f->file, "t", &r) < 0);
    assert_true(r.customer_error);
    assert_string_equal(r.exception_type, "ValidationException");
    assert_true(r.message[0] != '\0');

    /* Truncated: a generated file cut in the middle of its pixel data. */
    struct inst a = {
        .study = "1.2.6", .series = "1.2.6.1", .sop = "1.2.6.1.1", .rows = 16, .cols = 16};
    write_instance(f->file, &a);
    struct stat st;
    assert_int_equal(stat(f->file, &st), 0);
    assert_int_equal(truncate(f->file, st.st_size - 100), 0);
    assert_true(ahl_import_path(f->im, f->file, "t", &r) < 0);
    assert_true(r.customer_error);
    assert_non_null(strstr(r.message, "7FE0,0010"));
    /* And the pydicom truncated file. */
    assert_true(ahl_import_path(f->im, CORPUS "MR_truncated.dcm", "t", &r) < 0);
    assert_true(r.customer_error);

    /* Missing SOPInstanceUID. */
    struct inst b = {.study = "1.2.6", .series = "1.2.6.1", .sop = NULL};
    write_instance(f->file, &b);
    assert_true(ahl_import_path(f->im, f->file, "t", &r) < 0);
    assert_non_null(strstr(r.message, "SOPInstanceUID"));

    /* Over HealthImaging's PatientID limit of 256. */
    char longid[301];
    memset(longid, 'X', 300);
    longid[300] = '\0';
    struct inst c = {
        .study = "1.2.6", .series = "1.2.6.1", .sop = "1.2.6.1.9", .patient_id = longid};
    write_instance(f->file, &c);
    assert_true(ahl_import_path(f->im, f->file, "t", &r) < 0);
    assert_non_null(strstr(r.message, "PatientID"));

    /* Missing file. */
    assert_true(ahl_import_path(f->im, "/nonexistent/x.dcm", "x", &r) < 0);
    assert_true(r.customer_error);

    /* Nothing of the failed imports became an image set. */
    struct sets s;
    study_sets(f, "1.2.6", &s);
    assert_int_equal(s.n, 0);
}

/* A deflated file is inflated into a scratch file before its frames are read. When zlib has
 * taken in the whole stream while it still holds output for a later buffer, that output must
 * reach the scratch file (it was dropped: the pixel data then ran past the scratch file's end, or
 * worse, a file was cut short silently). One-row images of the widths that bring this about, with
 * the stream ending at the end of the file, followed by a NUL pad or by junk, and cut short. */
static void test_deflated_stream_end(void **state)
{
    struct fx *f = *state;
    struct ahl_import_result r;
    bool held = false;
    struct inst a = {.study = "1.2.9",
                     .series = "1.2.9.1",
                     .sop = "1.2.9.1.1",
                     .rows = 1,
                     .deflate = true,
                     .zero_pixels = true,
                     .output_outlasts_input = &held};
    unsigned found = 0;
    for (unsigned cols = 32400; cols < 33000 && found < 4; cols++) {
        a.cols = cols;
        a.deflate_cut = 0;
        a.trailer_len = 0;
        write_instance(f->file, &a);
        if (!held)
            continue;
        found++;
        static const struct {
            size_t cut, trailer_len;
            const char *trailer;
        } ends[] = {{0, 0, ""}, {0, 1, "\0"}, {0, 9, "more junk"}, {2, 0, ""}};
        for (size_t e = 0; e < sizeof ends / sizeof ends[0]; e++) {
            a.deflate_cut = ends[e].cut;
            a.trailer = ends[e].trailer;
            a.trailer_len = ends[e].trailer_len;
            int rc = import_inst(f, &a, &r);
            if (ends[e].cut) {
                assert_int_equal(rc, AHL_EPARSE);
                assert_true(r.customer_error);
                if (!strstr(r.message, "deflated data ends"))
                    fail_msg("%u columns, cut: %s", cols, r.message);
                continue;
            }
            if (rc != 0)
                fail_msg("%u columns, stream end %zu: %s", cols, e, r.message);
            assert_int_equal(r.frames, 1);
        }
    }
    assert_int_equal(found, 4);
}

/* The importer's frame memory budget: a frame whose estimated cost exceeds it fails its
 * instance with a reason; with room for one frame at a time, threads sharing the importer wait
 * their turn and every instance is imported. */
struct budget_thread {
    struct fx *f;
    struct ahl_importer *im;
    unsigned k;
    int rc;
    char message[600];
};

static void *budget_import(void *arg)
{
    struct budget_thread *t = arg;
    char path[200], sop[32];
    struct ahl_import_result r;
    snprintf(path, sizeof path, "%s/budget-%u.dcm", t->f->dir, t->k);
    snprintf(sop, sizeof sop, "1.2.10.1.%u", t->k + 1);
    struct inst a = {.study = "1.2.10",
                     .series = "1.2.10.1",
                     .sop = sop,
                     .rows = 64,
                     .cols = 48,
                     .seed = (uint16_t)t->k};
    write_instance(path, &a);
    for (int round = 0; round < 5 && (t->rc = ahl_import_path(t->im, path, "b", &r)) == 0; round++)
        ;
    snprintf(t->message, sizeof t->message, "%s", r.message);
    return NULL;
}

static void test_memory_budget(void **state)
{
    struct fx *f = *state;
    struct ahl_importer *small = NULL, *one = NULL;
    struct ahl_err err;
    struct ahl_pixel_desc d = {.rows = 64,
                               .columns = 48,
                               .samples_per_pixel = 1,
                               .bits_allocated = 16,
                               .bits_stored = 12,
                               .high_bit = 11,
                               .number_of_frames = 1};
    uint64_t cost = ahl_frame_transcode_cost(&d, 64 * 48 * 2);
    assert_true(cost > 64 * 48 * 2);

    struct ahl_import_opts o = {
        .frames_root = f->frames, .lock_dir = f->dir, .tmp_dir = f->dir, .memory_budget = cost - 1};
    assert_int_equal(ahl_importer_open(f->m, f->ds, &o, &small, &err), 0);
    struct budget_thread t = {.f = f, .im = small, .k = 0};
    budget_import(&t);
    assert_int_equal(t.rc, AHL_ETOOBIG);
    if (!strstr(t.message, "frame 1 needs an estimated") ||
        !strstr(t.message, "more than the import's memory budget"))
        fail_msg("got %s", t.message);
    ahl_importer_close(small);

    o.memory_budget = cost;
    assert_int_equal(ahl_importer_open(f->m, f->ds, &o, &one, &err), 0);
    struct budget_thread ts[4];
    pthread_t th[4];
    for (unsigned k = 0; k < 4; k++) {
        ts[k] = (struct budget_thread){.f = f, .im = one, .k = k};
        assert_int_equal(pthread_create(&th[k], NULL, budget_import, &ts[k]), 0);
    }
    for (unsigned k = 0; k < 4; k++) {
        pthread_join(th[k], NULL);
        if (ts[k].rc != 0)
            fail_msg("thread %u: %s", k, ts[k].message);
    }
    ahl_importer_close(one);
}

/* A data store created with losslessStorageFormat JPEG_2000_LOSSLESS: the importer stores its
 * frames as JPEG 2000 lossless (decoding to the instance's pixels), counts them at their own memory
 * cost, and refuses to open on a data store whose format it does not know. */
static void put_datastore(struct fx *f, const char *id, const char *format)
{
    struct ahl_store_tx *tx;
    struct ahl_datastore_rec d;
    memset(&d, 0, sizeof d);
    snprintf(d.id, sizeof d.id, "%s", id);
    snprintf(d.name, sizeof d.name, "%s", format);
    snprintf(d.status, sizeof d.status, "ACTIVE");
    snprintf(d.lossless_storage_format, sizeof d.lossless_storage_format, "%s", format);
    d.created_at_ms = d.updated_at_ms = ahl_now_ms();
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    assert_int_equal(ahl_store_datastore_put(tx, &d, true), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
}

static void test_jpeg_2000_lossless_store(void **state)
{
    struct fx *f = *state;
    struct ahl_importer *im = NULL;
    struct ahl_import_result r;
    struct ahl_err err;
    char ds[AHL_ID_LEN + 1];
    snprintf(ds, sizeof ds, "%032x", 0x2000);
    put_datastore(f, ds, "JPEG_2000_LOSSLESS");
    struct ahl_import_opts o = {.frames_root = f->frames, .lock_dir = f->dir, .tmp_dir = f->dir};
    assert_int_equal(ahl_importer_open(f->m, ds, &o, &im, &err), 0);
    struct inst a = {.study = "1.2.20",
                     .series = "1.2.20.1",
                     .sop = "1.2.20.1.1",
                     .rows = 33,
                     .cols = 17,
                     .seed = 5};
    write_instance(f->file, &a);
    assert_int_equal(ahl_import_path(im, f->file, "in.dcm", &r), 0);
    json_t *doc;
    assert_int_equal(ahl_meta_document(f->m, ds, r.imageset_id, 0, &doc, &err), 0);
    json_t *inst = json_object_get(
        json_object_get(
            json_object_get(json_object_get(json_object_get(doc, "Study"), "Series"), "1.2.20.1"),
            "Instances"),
        "1.2.20.1.1");
    assert_string_equal(json_string_value(json_object_get(inst, "StoredTransferSyntaxUID")),
                        AHL_TS_J2K_LOSSLESS);
    json_t *fr = json_array_get(json_object_get(inst, "ImageFrames"), 0);
    const char *id = json_string_value(json_object_get(fr, "ID"));
    struct ahl_framestore fs;
    uint8_t *data;
    size_t len;
    char want[33];
    assert_int_equal(ahl_framestore_open(&fs, f->frames, &err), 0);
    assert_int_equal(ahl_framestore_get(&fs, id, &data, &len, &err), 0);
    ahl_frame_id(AHL_TS_J2K_LOSSLESS, data, len, want);
    assert_string_equal(id, want);
    struct ahl_pixel_desc d =
        ahl_pixel_desc_make(33, 17, 1, 16, 16, 0, "MONOCHROME2", AHL_TS_J2K_LOSSLESS);
    struct ahl_raw_frame raw;
    assert_int_equal(ahl_frame_decode(&d, data, len, &raw, &err), 0);
    for (size_t i = 0; i < 33 * 17; i++)
        assert_int_equal(raw.data[2 * i] | raw.data[2 * i + 1] << 8, pixel_value(&a, i));
    ahl_raw_frame_release(&raw);
    free(data);
    json_decref(doc);
    ahl_importer_close(im);

    /* A budget that holds the frame at HTJ2K's cost is too small at JPEG 2000's. */
    struct ahl_pixel_desc c =
        ahl_pixel_desc_make(64, 48, 1, 16, 12, 0, "MONOCHROME2", AHL_TS_EXPLICIT_LE);
    o.memory_budget = ahl_frame_transcode_cost_as(&c, 64 * 48 * 2, AHL_LOSSLESS_HTJ2K);
    assert_true(ahl_frame_transcode_cost_as(&c, 64 * 48 * 2, AHL_LOSSLESS_J2K) > o.memory_budget);
    assert_int_equal(ahl_importer_open(f->m, ds, &o, &im, &err), 0);
    struct budget_thread t = {.f = f, .im = im, .k = 0};
    budget_import(&t);
    assert_int_equal(t.rc, AHL_ETOOBIG);
    ahl_importer_close(im);
    struct ahl_importer *htj2k = NULL;
    assert_int_equal(ahl_importer_open(f->m, f->ds, &o, &htj2k, &err), 0);
    t = (struct budget_thread){.f = f, .im = htj2k, .k = 1};
    budget_import(&t);
    assert_int_equal(t.rc, 0);
    ahl_importer_close(htj2k);

    /* A format no version of ahilite writes: the importer refuses the data store. */
    snprintf(ds, sizeof ds, "%032x", 0x2001);
    put_datastore(f, ds, "JPEG_XL");
    im = NULL;
    assert_int_equal(ahl_importer_open(f->m, ds, &o, &im, &err), AHL_EINTERNAL);
    assert_null(im);
    assert_non_null(strstr(err.msg, "'JPEG_XL' is neither HTJ2K nor JPEG_2000_LOSSLESS"));
}

struct batch_ctx {
    pthread_mutex_t mu;
    unsigned ok, failed;
    char ids[64][AHL_ID_LEN + 1];
    uint64_t versions[64];
};

static void on_done(void *ctx, void *tag, const struct ahl_import_result *res)
{
    struct batch_ctx *c = ctx;
    size_t i = (size_t)(uintptr_t)tag;
    pthread_mutex_lock(&c->mu);
    if (res->rc == 0) {
        c->ok++;
        memcpy(c->ids[i], res->imageset_id, sizeof c->ids[i]);
        c->versions[i] = res->version;
    } else {
        c->failed++;
    }
    pthread_mutex_unlock(&c->mu);
}

static void test_batch_one_version(void **state)
{
    struct fx *f = *state;
    struct ahl_import_batch *b;
    struct batch_ctx c = {.mu = PTHREAD_MUTEX_INITIALIZER};
    assert_int_equal(ahl_import_batch_new(f->im, on_done, &c, &b), 0);
    for (unsigned i = 0; i < 40; i++) {
        char sop[64], path[200];
        struct ahl_import_item *it;
        struct ahl_import_result r;
        snprintf(sop, sizeof sop, "1.2.7.1.%u", i + 1);
        snprintf(path, sizeof path, "%s/b%u.dcm", f->dir, i);
        struct inst in = {.study = "1.2.7", .series = "1.2.7.1", .sop = sop};
        write_instance(path, &in);
        assert_int_equal(ahl_import_prepare_path(f->im, path, path, &it, &r), 0);
        ahl_import_batch_add(b, it, (void *)(uintptr_t)i);
    }
    ahl_import_batch_free(b);
    assert_int_equal(c.ok, 40);
    for (unsigned i = 1; i < 40; i++) {
        assert_string_equal(c.ids[i], c.ids[0]);
        assert_int_equal(c.versions[i], 1); /* all in the set's first version */
    }
    assert_int_equal(instance_count(f, c.ids[0]), 40);
}

/* The frame store's sync, watched: what the store held when it ran, and whether it fails. */
static struct {
    struct fx *f;
    const char *study;
    unsigned calls;
    size_t sets_seen; /* image sets of the study committed when the sync ran */
    bool fail;
} watch;

static int watching_syncfs(int fd)
{
    (void)fd;
    struct sets s;
    watch.calls++;
    study_sets(watch.f, watch.study, &s);
    watch.sets_seen += s.n;
    if (watch.fail) {
        errno = EIO;
        return -1;
    }
    return 0;
}

/* Frames are written without syncing and made durable with one sync for a batch, which runs
 * before the version naming them is committed: when it runs, no image set of the series exists
 * yet; afterwards the set holds every instance. One sync covers the whole batch. */
static void test_frames_durable_before_commit(void **state)
{
    struct fx *f = *state;
    struct ahl_import_batch *b;
    struct batch_ctx c = {.mu = PTHREAD_MUTEX_INITIALIZER};
    memset(&watch, 0, sizeof watch);
    watch.f = f;
    watch.study = "1.2.9";
    f->im->sync.syncfs_fn = watching_syncfs;
    assert_int_equal(ahl_import_batch_new(f->im, on_done, &c, &b), 0);
    for (unsigned i = 0; i < 6; i++) {
        char sop[64], path[200];
        struct ahl_import_item *it;
        struct ahl_import_result r;
        snprintf(sop, sizeof sop, "1.2.9.1.%u", i + 1);
        snprintf(path, sizeof path, "%s/d%u.dcm", f->dir, i);
        struct inst in = {.study = "1.2.9",
                          .series = "1.2.9.1",
                          .sop = sop,
                          .rows = 20,
                          .cols = 24,
                          .seed = (uint16_t)i};
        write_instance(path, &in);
        assert_int_equal(ahl_import_prepare_path(f->im, path, path, &it, &r), 0);
        ahl_import_batch_add(b, it, (void *)(uintptr_t)i);
    }
    assert_int_equal(watch.calls, 0); /* nothing synced, nothing committed yet */
    ahl_import_batch_free(b);
    assert_int_equal(c.ok, 6);
    assert_int_equal(watch.calls, 1);
    assert_int_equal(watch.sets_seen, 0);
    assert_int_equal(instance_count(f, c.ids[0]), 6);
    /* Re-importing the same instance writes nothing new; its frame still gets synced (another
     * writer may have written it without syncing), and the commit changes nothing. */
    struct ahl_import_result r;
    struct inst again = {.study = "1.2.9",
                         .series = "1.2.9.1",
                         .sop = "1.2.9.1.1",
                         .rows = 20,
                         .cols = 24,
                         .seed = 0};
    assert_int_equal(import_inst(f, &again, &r), 0);
    assert_true(r.unchanged);
    assert_int_equal(watch.calls, 2);
}

/* A sync that fails fails every instance waiting on it (the server's fault, nothing committed),
 * and the tickets it was to cover never count as durable, even once syncs work again: importing
 * the instance again writes its frame anew and commits it then. */
static void test_sync_failure_fails_commit(void **state)
{
    struct fx *f = *state;
    struct ahl_import_result r;
    memset(&watch, 0, sizeof watch);
    watch.f = f;
    watch.study = "1.2.10";
    watch.fail = true;
    f->im->sync.syncfs_fn = watching_syncfs;
    struct inst a = {.study = "1.2.10",
                     .series = "1.2.10.1",
                     .sop = "1.2.10.1.1",
                     .rows = 16,
                     .cols = 16,
                     .seed = 5};
    write_instance(f->file, &a);
    struct ahl_import_item *it;
    assert_int_equal(ahl_import_prepare_path(f->im, f->file, "in.dcm", &it, &r), 0);
    uint64_t ticket = it->ticket;
    assert_true(ticket > 0);
    ahl__import_commit(f->im, &it, 1);
    r = it->res;
    ahl_import_item_free(it);
    assert_int_equal(r.rc, AHL_EIO);
    assert_false(r.customer_error);
    assert_string_equal(r.exception_type, "InternalServerException");
    assert_non_null(strstr(r.message, "sync"));
    struct sets s;
    study_sets(f, "1.2.10", &s);
    assert_int_equal(s.n, 0);

    watch.fail = false;
    struct ahl_err err;
    assert_int_equal(ahl_framestore_sync(&f->im->sync, ticket, &err), AHL_EIO);
    assert_int_equal(import_inst(f, &a, &r), 0);
    assert_true(r.created);
    study_sets(f, "1.2.10", &s);
    assert_int_equal(s.n, 1);
}

struct racer {
    struct fx *f;
    unsigned idx;
    struct ahl_import_result res;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    char sop[64], path[200];
    snprintf(sop, sizeof sop, "1.2.8.1.%u", r->idx + 1);
    snprintf(path, sizeof path, "%s/race%u.dcm", r->f->dir, r->idx);
    struct inst in = {.study = "1.2.8", .series = "1.2.8.1", .sop = sop};
    write_instance(path, &in);
    ahl_import_path(r->f->im, path, path, &r->res);
    return NULL;
}

static void test_race_one_primary(void **state)
{
    struct fx *f = *state;
    enum { N = 8 };
    struct racer r[N];
    pthread_t t[N];
    for (unsigned i = 0; i < N; i++) {
        r[i] = (struct racer){.f = f, .idx = i};
        assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
    }
    for (unsigned i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    unsigned created = 0;
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(r[i].res.rc, 0);
        assert_true(r[i].res.is_primary);
        assert_string_equal(r[i].res.imageset_id, r[0].res.imageset_id);
        created += r[i].res.created;
    }
    assert_int_equal(created, 1);
    struct sets s;
    study_sets(f, "1.2.8", &s);
    assert_int_equal(s.n, 1);
    assert_true(s.v[0].is_primary);
    assert_int_equal(s.v[0].latest_version, N);
    assert_int_equal(instance_count(f, s.v[0].id), N);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_primary_grouping_and_idempotence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflict_goes_non_primary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frames_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_offset_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_reasons, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deflated_stream_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jpeg_2000_lossless_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_one_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_race_one_primary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frames_durable_before_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_failure_fails_commit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
