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
#include <unistd.h>
#include <cmocka.h>

#include "api/internal.h"
#include "meta/synth.h"

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
    assert_int_equal(ahl_store_open_sqlite(f->dir, 0, &f->store), 0);
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

/* Makes a synthetic set (nseries x ninstances, one frame each); returns its id and version. */
static uint64_t make_set(struct fixture *f, unsigned nseries, unsigned ninstances, uint32_t seed,
                         char id[33])
{
    json_t *doc = ahl_synth_doc(nseries, ninstances, seed);
    struct ahl_meta_create_opts opts = {.is_primary = true};
    struct ahl_meta_info info;
    struct ahl_err err;
    assert_non_null(doc);
    if (ahl_meta_imageset_create(f->meta, f->ds, doc, &opts, &info, &err) < 0)
        fail_msg("create: %s", err.msg);
    json_decref(doc);
    snprintf(id, 33, "%s", info.set.id);
    return info.set.latest_version;
}

/* The frame id synth gives instance i of series s (see ahl_synth_instance). */
static void frame_id(uint32_t seed, unsigned s, unsigned i, char out[33])
{
    json_t *inst = ahl_synth_instance(seed, s, i);
    const json_t *frames = json_object_get(inst, "ImageFrames");
    snprintf(out, 33, "%s", json_string_value(json_object_get(json_array_get(frames, 0), "ID")));
    json_decref(inst);
}

static void test_operation(void **state)
{
    struct fixture *f = *state;
    char set[33], fid[33], path[256], body[128];
    static const char pixels[] = "not really HTJ2K, but bytes the store hands back as they are";
    struct ahl_err err;
    struct ahl_api_resp resp;
    json_t *out;
    make_set(f, 1, 10, 21, set);
    frame_id(21, 0, 4, fid);
    assert_int_equal(ahl_framestore_put(&f->svc.frames, fid, pixels, sizeof pixels, &err), 0);
    snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/getImageFrame", f->ds, set);

    snprintf(body, sizeof body, "{\"imageFrameId\":\"%s\"}", fid);
    for (int round = 0; round < 2; round++) { /* twice: nothing is consumed by the first */
        if (call(f, AHL_OP_GetImageFrame, path, body, &out, &resp, &err) < 0)
            fail_msg("GetImageFrame: %s", err.msg);
        assert_string_equal(resp.content_type, "image/jph");
        assert_true(resp.fd >= 0);
        assert_int_equal(resp.fd_size, sizeof pixels);
        char got[sizeof pixels];
        assert_int_equal(read(resp.fd, got, sizeof got), (ssize_t)sizeof got);
        assert_memory_equal(got, pixels, sizeof pixels);
        close(resp.fd);
        json_decref(out);
        ahl_buf_release(&resp.raw);
    }

    /* Listed but with no pixel data; not listed; a set that does not exist. */
    char other[33];
    frame_id(21, 0, 5, other);
    snprintf(body, sizeof body, "{\"imageFrameId\":\"%s\"}", other);
    assert_int_equal(call(f, AHL_OP_GetImageFrame, path, body, &out, &resp, &err), AHL_ENOTFOUND);
    assert_non_null(strstr(err.msg, "pixel data is missing"));
    json_decref(out);
    ahl_buf_release(&resp.raw);
    snprintf(body, sizeof body, "{\"imageFrameId\":\"%s\"}", "0123456789abcdef0123456789abcdef");
    assert_int_equal(call(f, AHL_OP_GetImageFrame, path, body, &out, &resp, &err), AHL_ENOTFOUND);
    assert_string_equal(err.aws_type, AHL_AWS_NOT_FOUND);
    assert_non_null(strstr(err.msg, "does not exist in image set"));
    json_decref(out);
    ahl_buf_release(&resp.raw);
    snprintf(path, sizeof path, "/datastore/%s/imageSet/%s/getImageFrame", f->ds,
             "00000000000000000000000000000000");
    assert_int_equal(call(f, AHL_OP_GetImageFrame, path, body, &out, &resp, &err), AHL_ENOTFOUND);
    assert_string_equal(err.aws_type, AHL_AWS_NOT_FOUND);
    json_decref(out);
    ahl_buf_release(&resp.raw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_operation, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
