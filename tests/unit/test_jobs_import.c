/* The import pipeline (src/jobs/import.h) on generated Part-10 files and corpus files: grouping
 * into primary and non-primary image sets, idempotent re-import, batching into one version, frames
 * recorded, failure reasons, and threads racing on one new series. */
#define _XOPEN_SOURCE 700
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

#include "base/buf.h"
#include "base/clock.h"
#include "base/codec.h"
#include "frames/frames.h"
#include "jobs/import.h"
#include "meta/meta.h"
#include "store/store.h"

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
};

/* The generated image: a wrapping ramp, 12 bits stored. */
static uint16_t pixel_value(const struct inst *in, size_t i)
{
    return (uint16_t)((i * 7 + in->seed * 13u + (i / in->cols) * 3) & 0xFFF);
}

static void write_instance(const char *path, const struct inst *in)
{
    struct ahl_buf b, meta;
    struct el els[32];
    size_t n = 0;
    uint16_t one = 1, rows = (uint16_t)in->rows, cols = (uint16_t)in->cols, bits = 16, stored = 12,
             high = 11, zero = 0;
    uint8_t *pixels = NULL;
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
        size_t np = (size_t)in->rows * in->cols;
        pixels = malloc(np * 2);
        for (size_t i = 0; i < np; i++) {
            uint16_t v = pixel_value(in, i);
            pixels[2 * i] = (uint8_t)v;
            pixels[2 * i + 1] = (uint8_t)(v >> 8);
        }
        els[n++] = (struct el){0x7FE0, 0x0010, "OW", pixels, np * 2};
    }
    qsort(els, n, sizeof els[0], el_cmp);

    /* File meta group. */
    struct el m[] = {
        {0x0002, 0x0001, "OB", "\0\1", 2},
        {0x0002, 0x0002, "UI", ct, 0},
        {0x0002, 0x0003, "UI", in->sop ? in->sop : "1.2.3", 0},
        {0x0002, 0x0010, "UI", "1.2.840.10008.1.2.1", 0},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        put_el(&meta, &m[i]);
    for (int i = 0; i < 128; i++)
        ahl_buf_addc(&b, 0);
    ahl_buf_add(&b, "DICM", 4);
    uint32_t gl = (uint32_t)meta.len;
    put_el(&b, &(struct el){0x0002, 0x0000, "UL", &gl, 4});
    ahl_buf_add(&b, meta.data, meta.len);
    for (size_t i = 0; i < n; i++)
        put_el(&b, &els[i]);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b.data, 1, b.len, f), b.len);
    fclose(f);
    free(pixels);
    ahl_buf_release(&b);
    ahl_buf_release(&meta);
}

/* ---- fixture ------------------------------------------------------------------------------- */

struct fx {
    char dir[64], frames[128], file[160];
    struct ahl_store *store;
    struct ahl_meta *m;
    struct ahl_importer *im;
    char ds[AHL_ID_LEN + 1];
};

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    struct ahl_store_tx *tx;
    struct ahl_datastore_rec d;
    struct ahl_err err;
    snprintf(f->dir, sizeof f->dir, "/tmp/ahl-import-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->frames, sizeof f->frames, "%s/frames", f->dir);
    snprintf(f->file, sizeof f->file, "%s/in.dcm", f->dir);
    assert_int_equal(ahl_store_open_sqlite(f->dir, 4, &f->store), 0);
    assert_int_equal(ahl_meta_open(f->store, NULL, &f->m), 0);
    memset(&d, 0, sizeof d);
    snprintf(d.id, sizeof d.id, "%032x", 5);
    snprintf(d.name, sizeof d.name, "t");
    snprintf(d.status, sizeof d.status, "ACTIVE");
    d.created_at_ms = d.updated_at_ms = ahl_now_ms();
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    assert_int_equal(ahl_store_datastore_put(tx, &d, true), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
    memcpy(f->ds, d.id, sizeof f->ds);
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
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
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
        cmocka_unit_test_setup_teardown(test_failure_reasons, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_one_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_race_one_primary, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
