/* links: meta synth */
/* The event outbox and its dispatcher (docs/events.md), on SQLite and on PostgreSQL when
 * AHL_TEST_DATABASE names one: a disabled outbox writes nothing; events come back in commit order
 * with increasing sequence numbers and a rolled-back transaction leaves none; delete, trim and the
 * dispatcher lease; the engine's operations write their detail types in order, with exactly the
 * detail JSON AWS documents; the envelope; the dispatcher writing an NDJSON file and emptying
 * the outbox, and keeping events while a sink fails. */
#include <fcntl.h>
#include <time.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "events/events.h"
#include "meta/events.h"
#include "meta_fixture.h"
#include "synth/synth.h"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int setup(void **state)
{
    struct fx *f = fx_new(NULL);
    assert_non_null(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_free(*state);
    return 0;
}

struct got {
    struct ahl_event_rec v[64];
    unsigned n;
};

static int collect(void *ctx, const struct ahl_event_rec *rec)
{
    struct got *g = ctx;
    assert_true(g->n < 64);
    g->v[g->n++] = *rec;
    return 0;
}

static void list_all(struct fx *f, struct got *g)
{
    struct ahl_store_tx *tx;
    g->n = 0;
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    assert_int_equal(ahl_store_event_list(tx, 0, 64, collect, g), 0);
    ahl_store_rollback(tx);
}

static void put_ds_event(struct fx *f, enum ahl_event_type t, bool commit)
{
    struct ahl_store_tx *tx;
    struct ahl_datastore_rec d;
    memset(&d, 0, sizeof d);
    memcpy(d.id, f->ds, sizeof d.id);
    snprintf(d.name, sizeof d.name, "na\"me");
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    assert_int_equal(ahl_event_datastore(tx, t, &d), 0);
    if (commit)
        assert_int_equal(ahl_store_commit(tx), 0);
    else
        ahl_store_rollback(tx);
}

static void test_disabled_writes_nothing(void **state)
{
    struct fx *f = *state;
    struct got g;
    assert_false(ahl_store_outbox_on(f->store));
    put_ds_event(f, AHL_EVENT_DATASTORE_CREATED, true);
    list_all(f, &g);
    assert_int_equal(g.n, 0);
}

static void test_order_rollback_delete_trim(void **state)
{
    struct fx *f = *state;
    struct got g;
    struct ahl_store_tx *tx;
    uint64_t dropped = 99;
    ahl_store_outbox_enable(f->store, true);
    put_ds_event(f, AHL_EVENT_DATASTORE_CREATING, true);
    put_ds_event(f, AHL_EVENT_DATASTORE_DELETING, false); /* rolled back: no event */
    put_ds_event(f, AHL_EVENT_DATASTORE_CREATED, true);
    for (int i = 0; i < 5; i++)
        put_ds_event(f, AHL_EVENT_DATASTORE_DELETED, true);
    list_all(f, &g);
    assert_int_equal(g.n, 7);
    assert_string_equal(g.v[0].detail_type, "Data Store Creating");
    assert_string_equal(g.v[1].detail_type, "Data Store Created");
    for (unsigned i = 1; i < g.n; i++) {
        assert_true(g.v[i].seq > g.v[i - 1].seq);
        assert_string_not_equal(g.v[i].id, g.v[i - 1].id);
    }
    char want[256];
    snprintf(want, sizeof want,
             "{\"imagingVersion\":\"1.0\",\"datastoreId\":\"%s\",\"datastoreName\":\"na\\\"me\","
             "\"datastoreStatus\":\"CREATING\"}",
             f->ds);
    assert_string_equal(g.v[0].detail, want);
    snprintf(want, sizeof want, "datastore/%s", f->ds);
    assert_string_equal(g.v[0].resource, want);
    assert_int_equal(strlen(g.v[0].id), 36);

    /* delete takes up to a sequence number; trim keeps the newest. */
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    assert_int_equal(ahl_store_event_delete(tx, g.v[1].seq), 0);
    assert_int_equal(ahl_store_event_trim(tx, 3, &dropped), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
    assert_int_equal(dropped, 2);
    uint64_t last = g.v[6].seq;
    list_all(f, &g);
    assert_int_equal(g.n, 3);
    assert_int_equal(g.v[2].seq, last);
    assert_int_equal(g.v[0].seq, last - 2);

    /* Sequence numbers are never reused, even once the table was emptied. */
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    assert_int_equal(ahl_store_event_delete(tx, last), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
    put_ds_event(f, AHL_EVENT_DATASTORE_CREATED, true);
    list_all(f, &g);
    assert_int_equal(g.n, 1);
    assert_true(g.v[0].seq > last);
}

static int lease(struct fx *f, const char *node, uint32_t ms)
{
    struct ahl_store_tx *tx;
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    int rc = ahl_store_event_lease(tx, node, ms);
    if (rc == 0)
        assert_int_equal(ahl_store_commit(tx), 0);
    else
        ahl_store_rollback(tx);
    return rc;
}

static void test_lease(void **state)
{
    struct fx *f = *state;
    assert_int_equal(lease(f, "a", 300), 0);
    assert_int_equal(lease(f, "b", 300), AHL_ECONFLICT);
    assert_int_equal(lease(f, "a", 300), 0); /* renewed */
    sleep_ms(400);
    assert_int_equal(lease(f, "b", 60000), 0); /* expired: taken over */
    assert_int_equal(lease(f, "a", 300), AHL_ECONFLICT);
}

/* Every operation of the engine writes its detail types, in AWS's order, in commit order. */
static void test_engine_events(void **state)
{
    struct fx *f = *state;
    struct ahl_meta_create_opts o = {.is_primary = true};
    struct ahl_meta_info a, b;
    struct ahl_err err;
    struct got g;
    ahl_store_outbox_enable(f->store, true);
    json_t *doc = ahl_synth_doc(1, 2, 3);
    assert_int_equal(ahl_meta_imageset_create(f->m, f->ds, doc, &o, &a, &err), 0);
    json_decref(doc);
    doc = ahl_synth_doc(1, 2, 4);
    o.is_primary = false;
    assert_int_equal(ahl_meta_imageset_create(f->m, f->ds, doc, &o, &b, &err), 0);
    json_decref(doc);
    const char *upd = "{\"SchemaVersion\":1.1,\"Patient\":{\"DICOM\":{\"PatientName\":\"X^Y\"}}}";
    struct ahl_meta_update u = {
        .latest_version = 1, .updatable = upd, .updatable_len = strlen(upd)};
    struct ahl_meta_update_result ur;
    assert_int_equal(ahl_meta_update(f->m, f->ds, a.set.id, &u, &ur, &err), 0);
    u.latest_version = 1; /* stale: refused, no event */
    assert_int_equal(ahl_meta_update(f->m, f->ds, a.set.id, &u, &ur, &err), AHL_ECONFLICT);
    struct ahl_meta_copy c = {.source_latest_version = 1};
    struct ahl_meta_copy_result cr;
    assert_int_equal(ahl_meta_copy(f->m, f->ds, b.set.id, &c, &cr, &err), 0);
    assert_int_equal(ahl_meta_imageset_delete(f->m, f->ds, a.set.id, NULL, NULL, &err), 0);
    list_all(f, &g);
    const struct {
        const char *type, *set, *state, *status;
    } want[] = {
        {"Image Set Created", a.set.id, "ACTIVE", "CREATED"},
        {"Image Set Created", b.set.id, "ACTIVE", "CREATED"},
        {"Image Set Updating", a.set.id, "LOCKED", "UPDATING"},
        {"Image Set Updated", a.set.id, "ACTIVE", "UPDATED"},
        {"Image Set Copying With Read Only Access", b.set.id, "LOCKED",
         "COPYING_WITH_READ_ONLY_ACCESS"},
        {"Image Set Copying", cr.destination.id, "LOCKED", "COPYING"},
        {"Image Set Copied", cr.destination.id, "ACTIVE", "COPIED"},
        {"Image Set Copied", b.set.id, "ACTIVE", "COPIED"},
        {"Image Set Deleting", a.set.id, "LOCKED", "DELETING"},
        {"Image Set Deleted", a.set.id, "DELETED", "DELETED"},
    };
    assert_int_equal(g.n, sizeof want / sizeof want[0]);
    for (unsigned i = 0; i < g.n; i++) {
        char detail[512], resource[160];
        snprintf(detail, sizeof detail,
                 "{\"imagingVersion\":\"1.0\",\"datastoreId\":\"%s\",\"imageSetId\":\"%s\","
                 "\"imageSetState\":\"%s\",\"imageSetWorkflowStatus\":\"%s\"}",
                 f->ds, want[i].set, want[i].state, want[i].status);
        snprintf(resource, sizeof resource, "datastore/%s/imageset/%s", f->ds, want[i].set);
        assert_string_equal(g.v[i].detail_type, want[i].type);
        assert_string_equal(g.v[i].detail, detail);
        assert_string_equal(g.v[i].resource, resource);
    }
}

static void test_job_detail(void **state)
{
    struct fx *f = *state;
    struct ahl_job_rec j;
    struct ahl_store_tx *tx;
    struct got g;
    ahl_store_outbox_enable(f->store, true);
    memset(&j, 0, sizeof j);
    snprintf(j.id, sizeof j.id, "%032x", 5);
    memcpy(j.datastore_id, f->ds, sizeof j.datastore_id);
    snprintf(j.name, sizeof j.name, "job");
    snprintf(j.input_uri, sizeof j.input_uri, "s3://in/a/");
    snprintf(j.output_uri, sizeof j.output_uri, "s3://out/b/");
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    assert_int_equal(ahl_event_job(tx, AHL_EVENT_IMPORT_JOB_FAILED, &j), 0);
    assert_int_equal(ahl_event_job(tx, AHL_EVENT_IMAGE_SET_CREATED, &j), AHL_EINVAL);
    assert_int_equal(ahl_store_commit(tx), 0);
    list_all(f, &g);
    assert_int_equal(g.n, 1);
    char want[512];
    snprintf(want, sizeof want,
             "{\"imagingVersion\":\"1.0\",\"datastoreId\":\"%s\",\"jobId\":\"%s\",\"jobName\":"
             "\"job\",\"jobStatus\":\"FAILED\",\"inputS3Uri\":\"s3://in/a/\",\"outputS3Uri\":"
             "\"s3://out/b/\"}",
             f->ds, j.id);
    assert_string_equal(g.v[0].detail, want);
    assert_string_equal(g.v[0].detail_type, "Import Job Failed");
}

static void test_envelope(void **state)
{
    (void)state;
    struct ahl_event_rec r;
    struct ahl_buf b;
    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "0b7c2f9e-0d6c-4a53-9b0e-2c1f5e6d7a8b");
    r.time_ms = 1700000000123; /* 2023-11-14T22:13:20Z */
    snprintf(r.detail_type, sizeof r.detail_type, "Image Set Updated");
    snprintf(r.resource, sizeof r.resource, "datastore/d/imageset/s");
    snprintf(r.detail, sizeof r.detail, "{\"a\":1}");
    ahl_buf_init(&b, 4096);
    assert_int_equal(ahl_events_envelope(&r, "111122223333", "eu-west-1", &b), 0);
    assert_string_equal(
        b.data,
        "{\"version\":\"0\",\"id\":\"0b7c2f9e-0d6c-4a53-9b0e-2c1f5e6d7a8b\",\"detail-type\":"
        "\"Image Set Updated\",\"source\":\"aws.medical-imaging\",\"account\":\"111122223333\","
        "\"time\":\"2023-11-14T22:13:20Z\",\"region\":\"eu-west-1\",\"resources\":["
        "\"arn:aws:medical-imaging:eu-west-1:111122223333:datastore/d/imageset/s\"],"
        "\"detail\":{\"a\":1}}");
    /* Too small a buffer leaves it as it was. */
    struct ahl_buf small;
    ahl_buf_init(&small, 64);
    assert_int_equal(ahl_events_envelope(&r, "111122223333", "eu-west-1", &small), AHL_ETOOBIG);
    assert_int_equal(small.len, 0);
    ahl_buf_release(&small);
    ahl_buf_release(&b);
}

static size_t count_lines(const char *path)
{
    FILE *fp = fopen(path, "r");
    size_t n = 0;
    int ch;
    if (!fp)
        return 0;
    while ((ch = fgetc(fp)) != EOF)
        n += ch == '\n';
    fclose(fp);
    return n;
}

/* The dispatcher writes every event to the file, in order, and empties the outbox; a webhook
 * that cannot be reached keeps the events in the outbox (the file has them already). */
static void test_dispatcher_file(void **state)
{
    struct fx *f = *state;
    struct got g;
    char path[128];
    struct ahl_events *ev;
    struct ahl_err err;
    ahl_store_outbox_enable(f->store, true);
    for (int i = 0; i < 70; i++) /* more than one batch */
        put_ds_event(f, i % 2 ? AHL_EVENT_DATASTORE_CREATED : AHL_EVENT_DATASTORE_CREATING, true);
    snprintf(path, sizeof path, "%s/events.ndjson", f->dir);
    struct ahl_events_opts o = {.file_path = path, .poll_ms = 10};
    assert_int_equal(ahl_events_start(f->store, &o, &ev, &err), 0);
    for (int i = 0; i < 500 && count_lines(path) < 70; i++)
        sleep_ms(10);
    for (int i = 0; i < 500; i++) {
        list_all(f, &g);
        if (!g.n)
            break;
        sleep_ms(10);
    }
    struct ahl_events_stats st;
    ahl_events_stats(ev, &st);
    ahl_events_stop(ev);
    assert_int_equal(count_lines(path), 70);
    assert_int_equal(g.n, 0);
    assert_int_equal(st.delivered, 70);
    unlink(path);

    /* A webhook nobody answers: the file gets the events, the outbox keeps them. */
    put_ds_event(f, AHL_EVENT_DATASTORE_DELETED, true);
    o.webhook_url = "http://127.0.0.1:9/nobody";
    o.retry_max_ms = 100;
    o.timeout_ms = 500;
    assert_int_equal(ahl_events_start(f->store, &o, &ev, &err), 0);
    for (int i = 0; i < 500 && count_lines(path) < 1; i++)
        sleep_ms(10);
    sleep_ms(300);
    ahl_events_stats(ev, &st);
    ahl_events_stop(ev);
    assert_int_equal(count_lines(path), 1);
    assert_true(st.retries >= 1);
    assert_int_equal(st.delivered, 0);
    list_all(f, &g);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.v[0].detail_type, "Data Store Deleted");
    unlink(path);
}

/* A PostgreSQL schema of version 1 (before the outbox) gets the outbox's tables, and the job
 * options column of version 3, when opened. */
static void test_pg_schema_upgrade(void **state)
{
    struct fx *f = *state;
    struct got g;
    if (!ahl_test_store_is_pg())
        skip(); /* SQLite's migration steps are run by every test opening an older file */
    fx_close(f);
    assert_int_equal(ahl_test_pg_exec(f->dir,
                                      "DROP TABLE event_outbox, event_lease;"
                                      " ALTER TABLE job DROP COLUMN options;"
                                      " UPDATE ahl_schema SET version = 1",
                                      NULL, 0),
                     0);
    assert_int_equal(fx_open(f, NULL), 0);
    ahl_store_outbox_enable(f->store, true);
    put_ds_event(f, AHL_EVENT_DATASTORE_CREATED, true);
    list_all(f, &g);
    assert_int_equal(g.n, 1);
    assert_int_equal(lease(f, "a", 1000), 0);
    char v[16];
    assert_int_equal(ahl_test_pg_exec(f->dir, "SELECT version FROM ahl_schema", v, sizeof v), 0);
    assert_string_equal(v, "6"); /* the current version: the later steps followed */
    /* Version 4's job options column came with them. */
    assert_int_equal(ahl_test_pg_exec(f->dir, "SELECT count(options) FROM job", v, sizeof v), 0);
}

static void test_start_refuses(void **state)
{
    struct fx *f = *state;
    struct ahl_events *ev = NULL;
    struct ahl_err err;
    struct ahl_events_opts none = {0};
    assert_int_equal(ahl_events_start(f->store, &none, &ev, &err), AHL_EINVAL);
    struct ahl_events_opts ftp = {.webhook_url = "ftp://x/"};
    assert_int_equal(ahl_events_start(f->store, &ftp, &ev, &err), AHL_EINVAL);
    assert_non_null(strstr(err.msg, "not an http"));
    struct ahl_events_opts nodir = {.file_path = "/nonexistent-dir/e.ndjson"};
    assert_int_equal(ahl_events_start(f->store, &nodir, &ev, &err), AHL_EIO);
    assert_null(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_disabled_writes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_rollback_delete_trim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_detail, setup, teardown),
        cmocka_unit_test(test_envelope),
        cmocka_unit_test_setup_teardown(test_dispatcher_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_schema_upgrade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_refuses, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
