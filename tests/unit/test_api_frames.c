/* links: synth */
/* Unit tests for GetImageFrame over the real engine, SQLite store and frame store, on sets the
 * engine makes (their frames indexed as the engine writes them): the bytes and Content-Type of a
 * listed frame, a listed frame whose pixel data is missing, an id the set does not list, and a set
 * that does not exist. (test_api_ops.c covers copies, deletion and the index's back-fill.) */
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

#include "api/ops_internal.h"
#include "blob/framestore.h"
#include "synth/synth.h"
#include "store_fixture.h"

struct fixture {
    char dir[64];
    struct ahl_store *store;
    struct ahl_meta *meta;
    struct ahl_api_service svc;
    char ds[33];
};

static int call(struct fixture *f, enum ahl_op_id op, const char *path, const char *body,
                json_t **out, struct ahl_api_resp *resp, struct ahl_err *err)
{
    struct ahl_api_http http = {.method = ahl_model_ops[op].method,
                                .path = path,
                                .body = body,
                                .body_len = body ? strlen(body) : 0};
    json_t *in = NULL;
    *out = NULL;
    ahl_err_clear(err);
    int rc = ahl_api_decode(op, &http, &in, err);
    if (rc < 0)
        return rc;
    resp->json = json_object();
    resp->fd = -1;
    ahl_buf_init(&resp->raw, AHL_BUF_UNLIMITED);
    rc = ahl__api_handlers[op](&f->svc, in, resp, err);
    json_decref(in);
    *out = resp->json;
    return rc;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    char root[128];
    struct ahl_err err;
    snprintf(f->dir, sizeof f->dir, "/tmp/ahl-api-frames-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(ahl_test_store_open(f->dir, 0, &f->store), 0);
    assert_int_equal(ahl_meta_open(f->store, NULL, &f->meta), 0);
    f->svc.meta = f->meta;
    f->svc.store = f->store;
    snprintf(f->svc.region, sizeof f->svc.region, "us-east-1");
    snprintf(f->svc.account_id, sizeof f->svc.account_id, "123456789012");
    snprintf(root, sizeof root, "%s/frames", f->dir);
    assert_int_equal(ahl_framestore_open(&f->svc.frames, root, &err), 0);
    f->svc.frames_ready = 1;

    json_t *r;
    struct ahl_api_resp resp;
    assert_int_equal(call(f, AHL_OP_CreateDatastore, "/datastore",
                          "{\"clientToken\":\"frames-test\",\"datastoreName\":\"frames\"}", &r,
                          &resp, &err),
                     0);
    snprintf(f->ds, sizeof f->ds, "%s", json_string_value(json_object_get(r, "datastoreId")));
    json_decref(r);
    ahl_buf_release(&resp.raw);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];
    ahl_meta_close(f->meta);
    ahl_store_close(f->store);
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* A real HTJ2K lossless codestream of a 4x3 8-bit grey frame whose samples depend on seed. */
static void encode_frame(unsigned seed, struct ahl_raw_frame *raw, uint8_t **cs, size_t *len)
{
    struct ahl_err err;
    memset(raw, 0, sizeof *raw);
    raw->width = 4;
    raw->height = 3;
    raw->components = 1;
    raw->bytes_per_sample = 1;
    raw->precision = 8;
    snprintf(raw->photometric, sizeof raw->photometric, "MONOCHROME2");
    raw->len = 12;
    raw->data = malloc(raw->len);
    for (size_t i = 0; i < raw->len; i++)
        raw->data[i] = (uint8_t)(seed * 31 + i * 17);
    if (ahl_htj2k_encode(raw, cs, len, &err) < 0)
        fail_msg("encode: %s", err.msg);
}

/* Makes a set of one series of n synthetic instances whose frames are real: instance i lists
 * frame ids[i], the HTJ2K codestream of encode_frame(first + i), stored in the frame store when
 * store_it. Returns the set id. */
static void make_set(struct fixture *f, unsigned first, unsigned n, bool store_it, char ids[][33],
                     char set[33])
{
    json_t *doc = ahl_synth_doc(1, n, 21);
    struct ahl_meta_create_opts opts = {.is_primary = true};
    struct ahl_meta_info info;
    struct ahl_err err;
    const char *skey, *ikey;
    json_t *series, *inst;
    unsigned i = 0;
    assert_non_null(doc);
    json_object_foreach(json_object_get(json_object_get(doc, "Study"), "Series"), skey, series)
    {
        json_object_foreach(json_object_get(series, "Instances"), ikey, inst)
        {
            struct ahl_raw_frame raw;
            uint8_t *cs;
            size_t len;
            encode_frame(first + i, &raw, &cs, &len);
            ahl_frame_id(AHL_TS_HTJ2K_RPCL, cs, len, ids[i]);
            json_t *fr = json_array_get(json_object_get(inst, "ImageFrames"), 0);
            json_object_set_new(fr, "ID", json_string(ids[i]));
            json_object_set_new(fr, "FrameSizeInBytes", json_integer((json_int_t)len));
            if (store_it)
                assert_int_equal(ahl_framestore_put(&f->svc.frames, ids[i], cs, len, &err), 0);
            free(cs);
            ahl_raw_frame_release(&raw);
            i++;
        }
    }
    assert_int_equal(i, n);
    if (ahl_meta_imageset_create(f->meta, f->ds, doc, &opts, &info, &err) < 0)
        fail_msg("create: %s", err.msg);
    json_decref(doc);
    snprintf(set, 33, "%s", info.set.id);
}

/* GetImageFrame of frame_id with an Accept header: 0 with the whole body as a client receives
 * it (raw bytes, then the streamed file) in body, or the error. */
static int get_frame(struct fixture *f, const char *set, const char *frame_id, const char *accept,
                     struct ahl_buf *body, const char **content_type, struct ahl_err *err)
{
    char path[256], req[128];
    struct ahl_api_resp resp;
    json_t *out;
    snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/getImageFrame", f->ds, set);
    snprintf(req, sizeof req, "{\"imageFrameId\":\"%s\"}", frame_id);
    memset(&resp, 0, sizeof resp);
    resp.accept = accept;
    ahl_buf_init(body, AHL_BUF_UNLIMITED);
    int rc = call(f, AHL_OP_GetImageFrame, path, req, &out, &resp, err);
    json_decref(out);
    *content_type = resp.content_type;
    if (rc == 0) {
        char chunk[4096];
        ssize_t n;
        assert_true(resp.fd >= 0);
        ahl_buf_add(body, resp.raw.data, resp.raw.len);
        while ((n = read(resp.fd, chunk, sizeof chunk)) > 0)
            ahl_buf_add(body, chunk, (size_t)n);
        assert_int_equal(body->len, resp.raw.len + resp.fd_size);
        close(resp.fd);
    } else {
        assert_int_equal(resp.fd, -1);
    }
    ahl_buf_release(&resp.raw);
    return rc;
}

static uint32_t be32_at(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Checks that body is a JPH file around codestream cs (len bytes) of a 4x3 grey frame, and that
 * OpenJPEG's JP2 reader decodes it to the pixels of raw. */
static void assert_jph(const struct ahl_buf *body, const uint8_t *cs, size_t len,
                       const struct ahl_raw_frame *raw)
{
    static const uint8_t head[] = {
        0,   0,   0,   12,  'j', 'P', ' ', ' ', 0x0d, 0x0a, 0x87, 0x0a,              /* signature */
        0,   0,   0,   20,  'f', 't', 'y', 'p', 'j',  'p',  'h',  ' ',  0, 0, 0,  0, /* brand, minor
                                                                                      */
        'j', 'p', 'h', ' ',                     /* compatible */
        0,   0,   0,   45,  'j', 'p', '2', 'h', /* header box */
        0,   0,   0,   22,  'i', 'h', 'd', 'r', 0,    0,    0,    3,    0, 0, 0,  4, 0,
        1,                /* 3 x 4, 1 comp */
        7,   7,   0,   0, /* 8 bits, J2K */
        0,   0,   0,   15,  'c', 'o', 'l', 'r', 1,    0,    0,    0,    0, 0, 17, /* greyscale */
    };
    const uint8_t *b = (const uint8_t *)body->data;
    assert_int_equal(body->len, sizeof head + 8 + len);
    assert_memory_equal(b, head, sizeof head);
    assert_int_equal(be32_at(b + sizeof head), 8 + len);
    assert_memory_equal(b + sizeof head + 4, "jp2c", 4);
    assert_memory_equal(b + sizeof head + 8, cs, len);

    struct ahl_pixel_desc d =
        ahl_pixel_desc_make(3, 4, 1, 8, 8, 0, "MONOCHROME2", AHL_TS_HTJ2K_RPCL);
    struct ahl_raw_frame back;
    struct ahl_err err;
    if (ahl_decode_j2k(&d, b, body->len, 0, &back, &err) < 0)
        fail_msg("OpenJPEG cannot decode the JPH file: %s", err.msg);
    assert_int_equal(back.len, raw->len);
    assert_memory_equal(back.data, raw->data, raw->len);
    ahl_raw_frame_release(&back);
}

static void test_operation(void **state)
{
    struct fixture *f = *state;
    char set[33], ids[3][33];
    struct ahl_err err;
    struct ahl_buf body;
    const char *ctype;
    struct ahl_raw_frame raw;
    uint8_t *cs;
    size_t len;
    make_set(f, 0, 3, true, ids, set);
    encode_frame(0, &raw, &cs, &len);

    /* Which representation each Accept header gets: the JPH file unless image/jphc is preferred. */
    static const struct {
        const char *accept;
        bool bare;
    } cases[] = {
        {NULL, false},
        {"*/*", false},
        {"application/octet-stream", false},
        {"image/jph", false},
        {"image/jphc", true},
        {"IMAGE/JPHC", true},
        {"image/jph, image/jphc", false},
        {"image/jphc, */*", true},
        {"image/*, image/jphc", true},
        {"image/jphc;q=0", false},
        {"image/jphc;q=0.5, image/jph", false},
        {"image/jph;q=0.4, image/jphc;q=0.9", true},
        {"text/html, image/jphc ; q=1", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (get_frame(f, set, ids[0], cases[i].accept, &body, &ctype, &err) < 0)
            fail_msg("GetImageFrame (Accept %s): %s", cases[i].accept, err.msg);
        if (cases[i].bare) {
            if (strcmp(ctype, "image/jphc") != 0)
                fail_msg("Accept %s: %s, expected image/jphc", cases[i].accept, ctype);
            assert_int_equal(body.len, len);
            assert_memory_equal(body.data, cs, len);
        } else {
            if (strcmp(ctype, "image/jph") != 0)
                fail_msg("Accept %s: %s, expected image/jph", cases[i].accept, ctype);
            assert_jph(&body, cs, len, &raw);
        }
        ahl_buf_release(&body);
    }
    free(cs);
    ahl_raw_frame_release(&raw);

    /* Listed but with no pixel data; not listed; a set that does not exist. */
    char missing[1][33], other[33];
    make_set(f, 100, 1, false, missing, other);
    assert_int_equal(get_frame(f, other, missing[0], NULL, &body, &ctype, &err), AHL_ENOTFOUND);
    assert_non_null(strstr(err.msg, "pixel data is missing"));
    ahl_buf_release(&body);
    assert_int_equal(
        get_frame(f, set, "0123456789abcdef0123456789abcdef", NULL, &body, &ctype, &err),
        AHL_ENOTFOUND);
    assert_string_equal(ahl_api_error_type(&err), AHL_AWS_NOT_FOUND);
    assert_non_null(strstr(err.msg, "does not exist in image set"));
    ahl_buf_release(&body);
    assert_int_equal(
        get_frame(f, "00000000000000000000000000000000", ids[0], NULL, &body, &ctype, &err),
        AHL_ENOTFOUND);
    assert_string_equal(ahl_api_error_type(&err), AHL_AWS_NOT_FOUND);
    ahl_buf_release(&body);
}

/* Writes n bytes at offset off of a file (truncating it there when n is 0). */
static void damage_file(const char *path, long off, const void *p, size_t n)
{
    if (!n) {
        assert_int_equal(truncate(path, off), 0);
        return;
    }
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, off, SEEK_SET);
    assert_int_equal(fwrite(p, 1, n, fp), n);
    fclose(fp);
}

static void test_damaged_frames(void **state)
{
    struct fixture *f = *state;
    char set[33], ids[6][33], path[6][4200], dir[4200], moved[4300];
    struct ahl_err err;
    struct ahl_buf body;
    const char *ctype;
    make_set(f, 0, 6, true, ids, set);
    for (int i = 0; i < 6; i++)
        ahl_framestore_path(&f->svc.frames, ids[i], path[i], sizeof path[i]);

    damage_file(path[0], 20, "\x5a", 1); /* one byte overwritten, same size */
    damage_file(path[1], 10, NULL, 0);   /* truncated */
    unlink(path[2]);                     /* a link to a sound copy of itself is still refused */
    snprintf(moved, sizeof moved, "%s.elsewhere", path[2]);
    assert_int_equal(symlink(path[3], path[2]), 0);
    unlink(path[4]); /* a FIFO would block a reader that followed it */
    assert_int_equal(mkfifo(path[4], 0600), 0);
    /* frame 5: its second-level fan-out directory replaced by a link to a copy of it */
    snprintf(dir, sizeof dir, "%s", path[5]);
    *strrchr(dir, '/') = '\0';
    snprintf(moved, sizeof moved, "%s.moved", dir);
    assert_int_equal(rename(dir, moved), 0);
    assert_int_equal(symlink(moved, dir), 0);

    static const char *const found[] = {"other bytes than the ones its id names",
                                        "other bytes than the ones its id names",
                                        "the file is a symbolic link",
                                        NULL,
                                        "not a regular file",
                                        "a fan-out directory is a symbolic link"};
    for (int i = 0; i < 6; i++) {
        if (i == 3) { /* sound: served */
            assert_int_equal(get_frame(f, set, ids[i], NULL, &body, &ctype, &err), 0);
            ahl_buf_release(&body);
            continue;
        }
        if (get_frame(f, set, ids[i], NULL, &body, &ctype, &err) != AHL_ECORRUPT)
            fail_msg("frame %d: not refused (%s)", i, err.msg);
        assert_string_equal(ahl_api_error_type(&err), AHL_AWS_INTERNAL);
        assert_non_null(strstr(err.msg, "the stored frame is damaged"));
        assert_int_equal(body.len, 0);
        ahl_buf_release(&body);
        /* The frame store says what it found. */
        int fd;
        uint64_t size;
        ahl_err_clear(&err);
        int rc = ahl_framestore_open_verified(&f->svc.frames, ids[i], AHL_TS_HTJ2K_RPCL, &fd, &size,
                                              &err);
        assert_int_equal(rc, AHL_ECORRUPT);
        if (!strstr(err.msg, found[i]))
            fail_msg("frame %d: '%s' does not say '%s'", i, err.msg, found[i]);
    }
    /* Storing the frame again repairs it: the damaged file, or the link, is replaced. */
    struct ahl_raw_frame raw;
    uint8_t *cs;
    size_t len;
    for (int i = 0; i < 3; i++) {
        encode_frame((unsigned)i, &raw, &cs, &len);
        assert_int_equal(ahl_framestore_put(&f->svc.frames, ids[i], cs, len, &err), 0);
        assert_int_equal(get_frame(f, set, ids[i], "image/jphc", &body, &ctype, &err), 0);
        assert_int_equal(body.len, len);
        assert_memory_equal(body.data, cs, len);
        ahl_buf_release(&body);
        free(cs);
        ahl_raw_frame_release(&raw);
    }
    /* Never through a linked fan-out directory. */
    encode_frame(5, &raw, &cs, &len);
    assert_int_equal(ahl_framestore_put(&f->svc.frames, ids[5], cs, len, &err), AHL_ECORRUPT);
    free(cs);
    ahl_raw_frame_release(&raw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_operation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_frames, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
