/* The import-job runner (src/jobs/runner.h) against local buckets: a job left IN_PROGRESS without
 * a lease (a "crash") is claimed and completes; a SUBMITTED job recorded by another process is
 * found by the periodic claim; a job whose input bucket is missing is FAILED with the reason; the
 * outputs are where HealthImaging puts them. Two runners (two nodes) on one store: the one
 * holding a job is suspended, the other takes it over once the lease expires and completes it
 * with whole outputs and no extra image set or version, and the suspended one, resumed, writes
 * nothing; a stopping runner hands its job back; a job claimed too often is FAILED. */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "base/clock.h"
#include "jobs/runner.h"
#include "meta/meta.h"
#include "store/store.h"

#include "jobs_fixture.h"

#define CORPUS "/usr/lib/python3/dist-packages/pydicom/data/test_files/"

struct fx {
    char dir[64], data[128], root[128];
    struct ahl_store *store;
    struct ahl_meta *m;
    char ds[AHL_ID_LEN + 1];
};

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    char buf[65536];
    size_t n;
    assert_non_null(in);
    assert_non_null(out);
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char p[256];
    snprintf(f->dir, sizeof f->dir, "/tmp/ahl-runner-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->data, sizeof f->data, "%s/data", f->dir);
    snprintf(f->root, sizeof f->root, "%s/s3", f->dir);
    assert_int_equal(mkdir(f->data, 0700), 0);
    assert_int_equal(mkdir(f->root, 0700), 0);
    snprintf(p, sizeof p, "%s/in-bucket", f->root);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/in-bucket/x", f->root);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/out-bucket", f->root);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/in-bucket/x/ct.dcm", f->root);
    copy_file(CORPUS "CT_small.dcm", p);
    snprintf(p, sizeof p, "%s/in-bucket/x/bad.txt", f->root);
    copy_file(CORPUS "README.txt", p);
    jobs_fx_open(f->data, 9, &f->store, &f->m, f->ds);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    ahl_meta_close(f->m);
    ahl_store_close(f->store);
    jobs_fx_rmtree(f->dir);
    free(f);
    return 0;
}

static void put_job_n(struct fx *f, const char *id, const char *status, const char *input,
                      uint32_t attempts)
{
    struct ahl_job_rec j;
    struct ahl_store_tx *tx;
    memset(&j, 0, sizeof j);
    snprintf(j.id, sizeof j.id, "%s", id);
    memcpy(j.datastore_id, f->ds, sizeof j.datastore_id);
    snprintf(j.name, sizeof j.name, "job");
    snprintf(j.status, sizeof j.status, "%s", status);
    snprintf(j.role_arn, sizeof j.role_arn, "arn:aws:iam::123456789012:role/R");
    snprintf(j.input_uri, sizeof j.input_uri, "%s", input);
    snprintf(j.output_uri, sizeof j.output_uri, "s3://out-bucket/results/");
    snprintf(j.client_token, sizeof j.client_token, "%s", id);
    j.submitted_at_ms = ahl_now_ms();
    j.attempts = attempts;
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    assert_int_equal(ahl_store_job_put(tx, &j, true), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
}

static void put_job(struct fx *f, const char *id, const char *status, const char *input)
{
    put_job_n(f, id, status, input, 0);
}

static void get_job(struct fx *f, const char *id, struct ahl_job_rec *out)
{
    struct ahl_store_tx *tx;
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    assert_int_equal(ahl_store_job_get(tx, f->ds, id, out), 0);
    ahl_store_rollback(tx);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls the job until node holds it (10 s at most). */
static void wait_claimed(struct fx *f, const char *id, const char *node)
{
    struct ahl_job_rec j;
    for (int i = 0; i < 1000; i++) {
        get_job(f, id, &j);
        if (!strcmp(j.claimed_by, node))
            return;
        sleep_ms(10);
    }
    fail_msg("job %s not claimed by %s (%s)", id, node, j.claimed_by);
}

/* Polls the job until it leaves SUBMITTED/IN_PROGRESS (10 s at most). */
static void wait_job(struct fx *f, const char *id, struct ahl_job_rec *out)
{
    for (int i = 0; i < 1000; i++) {
        struct ahl_store_tx *tx;
        assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
        assert_int_equal(ahl_store_job_get(tx, f->ds, id, out), 0);
        ahl_store_rollback(tx);
        if (!strcmp(out->status, "COMPLETED") || !strcmp(out->status, "FAILED"))
            return;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    fail_msg("job %s still %s", id, out->status);
}

static json_t *read_output(struct fx *f, const char *id, const char *name)
{
    char p[512];
    json_error_t e;
    snprintf(p, sizeof p, "%s/out-bucket/results/%s-DicomImport-%s/%s", f->root, f->ds, id, name);
    json_t *j = json_load_file(p, JSON_DISABLE_EOF_CHECK, &e);
    if (!j)
        fail_msg("%s: %s", p, e.text);
    return j;
}

static void test_resume_and_scan(void **state)
{
    struct fx *f = *state;
    struct ahl_runner *r;
    struct ahl_err err;
    struct ahl_job_rec j;
    const char *crashed = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const char *missing = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const char *later = "cccccccccccccccccccccccccccccccc";
    put_job(f, crashed, "IN_PROGRESS", "s3://in-bucket/x/");
    put_job(f, missing, "SUBMITTED", "s3://no-such-bucket/x/");
    struct ahl_runner_config c = {
        .meta = f->m, .data_dir = f->data, .s3_root = f->root, .workers = 2, .poll_ms = 50};
    assert_int_equal(ahl_runner_start(&c, &r, &err), 0);

    wait_job(f, crashed, &j);
    assert_string_equal(j.status, "COMPLETED");
    assert_true(j.ended_at_ms > 0);
    json_t *m = read_output(f, crashed, "job-output-manifest.json");
    json_t *s = json_object_get(m, "jobSummary");
    assert_int_equal(json_integer_value(json_object_get(s, "numberOfScannedFiles")), 2);
    assert_int_equal(json_integer_value(json_object_get(s, "numberOfImportedFiles")), 1);
    assert_int_equal(json_integer_value(json_object_get(s, "numberOfFilesWithCustomerError")), 1);
    assert_int_equal(json_integer_value(json_object_get(s, "numberOfGeneratedImageSets")), 1);
    json_decref(m);
    json_t *ok = read_output(f, crashed, "SUCCESS/success.ndjson");
    assert_string_equal(json_string_value(json_object_get(ok, "inputFile")), "x/ct.dcm");
    assert_true(json_is_true(json_object_get(json_object_get(ok, "importResponse"), "isPrimary")));
    json_decref(ok);
    json_t *bad = read_output(f, crashed, "FAILURE/failure.ndjson");
    assert_string_equal(json_string_value(json_object_get(bad, "inputFile")), "x/bad.txt");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(bad, "exception"), "exceptionType")),
        "ValidationException");
    json_decref(bad);

    wait_job(f, missing, &j);
    assert_string_equal(j.status, "FAILED");
    assert_non_null(strstr(j.message, "no-such-bucket"));

    /* Recorded by "another process" after start, without the hook: found by the scan. */
    put_job(f, later, "SUBMITTED", "s3://in-bucket/x/");
    wait_job(f, later, &j);
    assert_string_equal(j.status, "COMPLETED");
    json_t *ok2 = read_output(f, later, "SUCCESS/success.ndjson");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(ok2, "importResponse"),
                                                        "imageSetVersion")),
                     1); /* the same instance again: no new version */
    json_decref(ok2);
    ahl_runner_stop(r);
}

static int count_lines(struct fx *f, const char *id, const char *name, struct stat *st)
{
    char p[512];
    snprintf(p, sizeof p, "%s/out-bucket/results/%s-DicomImport-%s/%s", f->root, f->ds, id, name);
    FILE *in = fopen(p, "rb");
    assert_non_null(in);
    int n = 0, c;
    while ((c = fgetc(in)) != EOF)
        n += c == '\n';
    fclose(in);
    assert_int_equal(stat(p, st), 0);
    return n;
}

static int count_set(void *ctx, const struct ahl_imageset_rec *rec)
{
    assert_int_equal(rec->latest_version, 1);
    (*(int *)ctx)++;
    return 0;
}

static int imageset_count(struct fx *f)
{
    struct ahl_store_tx *tx;
    int n = 0;
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    assert_int_equal(ahl_store_imageset_list(tx, f->ds, "", 1000, count_set, &n), 0);
    ahl_store_rollback(tx);
    return n;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
           a->st_mtim.tv_nsec == b->st_mtim.tv_nsec && a->st_size == b->st_size;
}

/* Node A claims the job and is suspended; node B takes it over once A's lease expires and
 * completes it; A, resumed, finds its lease gone and writes nothing. */
static void test_takeover(void **state)
{
    struct fx *f = *state;
    struct ahl_runner *a, *b;
    struct ahl_err err;
    struct ahl_job_rec j;
    struct stat ok_st, bad_st, man_st, st;
    const char *id = "dddddddddddddddddddddddddddddddd";
    struct ahl_runner_config c = {.meta = f->m,
                                  .data_dir = f->data,
                                  .s3_root = f->root,
                                  .workers = 2,
                                  .poll_ms = 20,
                                  .lease_ms = 300,
                                  .renew_ms = 100};
    assert_int_equal(ahl_runner_start(&c, &a, &err), 0);
    ahl_runner_freeze(a, true);
    put_job(f, id, "SUBMITTED", "s3://in-bucket/x/");
    wait_claimed(f, id, ahl_runner_node(a));
    get_job(f, id, &j);
    assert_string_equal(j.status, "IN_PROGRESS");
    assert_int_equal(j.attempts, 1);

    assert_int_equal(ahl_runner_start(&c, &b, &err), 0);
    assert_string_not_equal(ahl_runner_node(a), ahl_runner_node(b));
    wait_job(f, id, &j);
    assert_string_equal(j.status, "COMPLETED");
    assert_int_equal(j.attempts, 2);
    assert_string_equal(j.claimed_by, "");
    int64_t ended = j.ended_at_ms;

    json_t *m = read_output(f, id, "job-output-manifest.json");
    json_t *s = json_object_get(m, "jobSummary");
    assert_int_equal(json_integer_value(json_object_get(s, "numberOfScannedFiles")), 2);
    assert_int_equal(json_integer_value(json_object_get(s, "numberOfImportedFiles")), 1);
    assert_int_equal(json_integer_value(json_object_get(s, "numberOfFilesWithCustomerError")), 1);
    assert_int_equal(json_integer_value(json_object_get(s, "numberOfGeneratedImageSets")), 1);
    json_decref(m);
    assert_int_equal(count_lines(f, id, "SUCCESS/success.ndjson", &ok_st), 1);
    assert_int_equal(count_lines(f, id, "FAILURE/failure.ndjson", &bad_st), 1);
    count_lines(f, id, "job-output-manifest.json", &man_st);
    assert_int_equal(imageset_count(f), 1);

    /* A resumes: it may import what it had in hand (changing nothing), then finds its lease
     * gone and leaves the job and its outputs as B wrote them. */
    ahl_runner_freeze(a, false);
    sleep_ms(400);
    ahl_runner_stop(a);
    get_job(f, id, &j);
    assert_string_equal(j.status, "COMPLETED");
    assert_int_equal(j.ended_at_ms, ended);
    assert_int_equal(j.attempts, 2);
    assert_int_equal(count_lines(f, id, "SUCCESS/success.ndjson", &st), 1);
    assert_true(same_file(&st, &ok_st));
    count_lines(f, id, "FAILURE/failure.ndjson", &st);
    assert_true(same_file(&st, &bad_st));
    count_lines(f, id, "job-output-manifest.json", &st);
    assert_true(same_file(&st, &man_st));
    assert_int_equal(imageset_count(f), 1);
    ahl_runner_stop(b);
}

/* A runner stopped while holding a job hands it back without counting the attempt; the next node
 * runs it. */
static void test_stop_hands_back(void **state)
{
    struct fx *f = *state;
    struct ahl_runner *a, *b;
    struct ahl_err err;
    struct ahl_job_rec j;
    const char *id = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
    struct ahl_runner_config c = {.meta = f->m,
                                  .data_dir = f->data,
                                  .s3_root = f->root,
                                  .workers = 1,
                                  .poll_ms = 20,
                                  .lease_ms = 60000};
    assert_int_equal(ahl_runner_start(&c, &a, &err), 0);
    ahl_runner_freeze(a, true);
    put_job(f, id, "SUBMITTED", "s3://in-bucket/x/");
    wait_claimed(f, id, ahl_runner_node(a));
    ahl_runner_stop(a);
    get_job(f, id, &j);
    assert_string_equal(j.status, "SUBMITTED");
    assert_string_equal(j.claimed_by, "");
    assert_int_equal(j.attempts, 0);

    assert_int_equal(ahl_runner_start(&c, &b, &err), 0);
    wait_job(f, id, &j);
    assert_string_equal(j.status, "COMPLETED");
    assert_int_equal(j.attempts, 1);
    ahl_runner_stop(b);
}

/* A job whose nodes all died before it ended is not started a fourth time. */
static void test_max_attempts(void **state)
{
    struct fx *f = *state;
    struct ahl_runner *r;
    struct ahl_err err;
    struct ahl_job_rec j;
    const char *id = "ffffffffffffffffffffffffffffffff";
    put_job_n(f, id, "IN_PROGRESS", "s3://in-bucket/x/", 3); /* lease long expired */
    struct ahl_runner_config c = {
        .meta = f->m, .data_dir = f->data, .s3_root = f->root, .workers = 1, .poll_ms = 20};
    assert_int_equal(ahl_runner_start(&c, &r, &err), 0);
    wait_job(f, id, &j);
    assert_string_equal(j.status, "FAILED");
    assert_non_null(strstr(j.message, "started 3 times"));
    assert_int_equal(j.attempts, 4);
    assert_true(j.ended_at_ms > 0);
    assert_int_equal(imageset_count(f), 0); /* not run */
    ahl_runner_stop(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_resume_and_scan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_takeover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_hands_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_attempts, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
