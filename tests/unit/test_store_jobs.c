/* Import-job leases through the storage interface (store.h, "Import-job leases"): claims take the
 * oldest claimable job and count attempts, a live lease is never taken, an expired one is taken
 * over, renew and release work only for the holder, a hand-back does not count the attempt, and
 * threads claiming at once never get the same job. On SQLite, and on PostgreSQL when
 * AHL_TEST_DATABASE names one (store_fixture.h). */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "base/err.h"
#include "store/store.h"

#include "store_fixture.h"

#define DS "0000000000000000000000000000000d"

struct fx {
    char dir[64];
    struct ahl_store *store;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/ahl-store-jobs-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(ahl_test_store_open(f->dir, 4, &f->store), 0);
    *state = f;
    return 0;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    ahl_store_close(f->store);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void put_job(struct fx *f, int n, const char *status, int64_t submitted)
{
    struct ahl_job_rec j;
    struct ahl_store_tx *tx;
    memset(&j, 0, sizeof j);
    snprintf(j.id, sizeof j.id, "%032x", n);
    snprintf(j.datastore_id, sizeof j.datastore_id, DS);
    snprintf(j.name, sizeof j.name, "job%d", n);
    snprintf(j.status, sizeof j.status, "%s", status);
    snprintf(j.role_arn, sizeof j.role_arn, "arn:aws:iam::123456789012:role/R");
    snprintf(j.input_uri, sizeof j.input_uri, "s3://in/x/");
    snprintf(j.output_uri, sizeof j.output_uri, "s3://out/");
    snprintf(j.client_token, sizeof j.client_token, "t%d", n);
    j.submitted_at_ms = submitted;
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    assert_int_equal(ahl_store_job_put(tx, &j, true), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
}

static int claim(struct fx *f, const char *node, uint32_t lease_ms, struct ahl_job_rec *out)
{
    struct ahl_store_tx *tx;
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    int rc = ahl_store_job_claim(tx, node, lease_ms, out);
    if (rc == 0)
        assert_int_equal(ahl_store_commit(tx), 0);
    else
        ahl_store_rollback(tx);
    return rc;
}

static int renew(struct fx *f, const char *id, const char *node, uint32_t lease_ms)
{
    struct ahl_store_tx *tx;
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    int rc = ahl_store_job_renew(tx, id, node, lease_ms);
    if (rc == 0)
        assert_int_equal(ahl_store_commit(tx), 0);
    else
        ahl_store_rollback(tx);
    return rc;
}

static int release(struct fx *f, const struct ahl_job_rec *rec, const char *node)
{
    struct ahl_store_tx *tx;
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    int rc = ahl_store_job_release(tx, rec, node);
    if (rc == 0)
        assert_int_equal(ahl_store_commit(tx), 0);
    else
        ahl_store_rollback(tx);
    return rc;
}

static void get_job(struct fx *f, int n, struct ahl_job_rec *out)
{
    struct ahl_store_tx *tx;
    char id[AHL_ID_LEN + 1];
    snprintf(id, sizeof id, "%032x", n);
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    assert_int_equal(ahl_store_job_get(tx, DS, id, out), 0);
    ahl_store_rollback(tx);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Oldest first, ended jobs never, every field of the claim recorded; a live lease is kept. */
static void test_claim_order(void **state)
{
    struct fx *f = *state;
    struct ahl_job_rec j, g;
    put_job(f, 1, "COMPLETED", 100);
    put_job(f, 2, "SUBMITTED", 300);
    put_job(f, 3, "SUBMITTED", 200);
    put_job(f, 4, "FAILED", 150);

    int64_t before = ahl_now_ms();
    assert_int_equal(claim(f, "node-a", 60000, &j), 0);
    assert_string_equal(j.name, "job3");
    assert_string_equal(j.status, "IN_PROGRESS");
    assert_string_equal(j.claimed_by, "node-a");
    assert_int_equal(j.attempts, 1);
    assert_true(j.lease_until_ms >= before + 60000 - 5000 && j.lease_until_ms <= ahl_now_ms() + 65000);
    get_job(f, 3, &g);
    assert_string_equal(g.status, "IN_PROGRESS");
    assert_string_equal(g.claimed_by, "node-a");
    assert_int_equal(g.lease_until_ms, j.lease_until_ms);
    assert_int_equal(g.attempts, 1);
    assert_string_equal(g.input_uri, "s3://in/x/");

    assert_int_equal(claim(f, "node-b", 60000, &j), 0);
    assert_string_equal(j.name, "job2");
    assert_string_equal(j.claimed_by, "node-b");
    /* Both held with live leases; the ended jobs are not claimable. */
    assert_int_equal(claim(f, "node-c", 60000, &j), AHL_ENOTFOUND);
    get_job(f, 1, &g);
    assert_string_equal(g.status, "COMPLETED");
    assert_int_equal(g.attempts, 0);
}

/* A lease not renewed expires and the job is taken over; the old holder can then neither renew
 * nor end it, and the new one can. */
static void test_takeover(void **state)
{
    struct fx *f = *state;
    struct ahl_job_rec a, b, g;
    put_job(f, 5, "SUBMITTED", 100);
    assert_int_equal(claim(f, "node-a", 200, &a), 0);
    assert_int_equal(renew(f, a.id, "node-a", 200), 0);
    assert_int_equal(claim(f, "node-b", 60000, &b), AHL_ENOTFOUND); /* still live */
    sleep_ms(300);
    assert_int_equal(claim(f, "node-b", 60000, &b), 0);
    assert_string_equal(b.id, a.id);
    assert_string_equal(b.claimed_by, "node-b");
    assert_int_equal(b.attempts, 2);

    /* node-a wakes up: its lease is gone. */
    assert_int_equal(renew(f, a.id, "node-a", 60000), AHL_ECONFLICT);
    snprintf(a.status, sizeof a.status, "COMPLETED");
    a.ended_at_ms = 1;
    assert_int_equal(release(f, &a, "node-a"), AHL_ECONFLICT);
    get_job(f, 5, &g);
    assert_string_equal(g.status, "IN_PROGRESS");
    assert_string_equal(g.claimed_by, "node-b");

    assert_int_equal(renew(f, b.id, "node-b", 60000), 0);
    snprintf(b.status, sizeof b.status, "COMPLETED");
    b.ended_at_ms = 1234;
    assert_int_equal(release(f, &b, "node-b"), 0);
    get_job(f, 5, &g);
    assert_string_equal(g.status, "COMPLETED");
    assert_string_equal(g.claimed_by, "");
    assert_int_equal(g.lease_until_ms, 0);
    assert_int_equal(g.ended_at_ms, 1234);
    assert_int_equal(g.attempts, 2);
    /* Ended: neither renewable nor claimable, not even by its last holder. */
    assert_int_equal(renew(f, b.id, "node-b", 60000), AHL_ECONFLICT);
    assert_int_equal(release(f, &b, "node-b"), AHL_ECONFLICT);
    assert_int_equal(claim(f, "node-b", 60000, &b), AHL_ENOTFOUND);
    assert_int_equal(renew(f, "ffffffffffffffffffffffffffffffff", "node-b", 60000), AHL_ECONFLICT);
}

/* A job handed back (a node stopping) is claimable at once, and that attempt is not counted; a
 * failure is recorded with its message; a job left IN_PROGRESS with no lease (written before
 * leases existed, or by put) is claimable. */
static void test_release_and_failure(void **state)
{
    struct fx *f = *state;
    struct ahl_job_rec j, g;
    put_job(f, 6, "SUBMITTED", 100);
    put_job(f, 7, "IN_PROGRESS", 200);
    assert_int_equal(claim(f, "node-a", 60000, &j), 0);
    assert_string_equal(j.name, "job6");
    snprintf(j.status, sizeof j.status, "SUBMITTED");
    assert_int_equal(release(f, &j, "node-a"), 0);
    get_job(f, 6, &g);
    assert_string_equal(g.status, "SUBMITTED");
    assert_int_equal(g.attempts, 0);
    assert_string_equal(g.claimed_by, "");

    assert_int_equal(claim(f, "node-b", 60000, &j), 0);
    assert_string_equal(j.name, "job6");
    assert_int_equal(j.attempts, 1);
    snprintf(j.status, sizeof j.status, "FAILED");
    snprintf(j.message, sizeof j.message, "cannot list s3://in/x/");
    j.ended_at_ms = 99;
    assert_int_equal(release(f, &j, "node-b"), 0);
    get_job(f, 6, &g);
    assert_string_equal(g.status, "FAILED");
    assert_string_equal(g.message, "cannot list s3://in/x/");
    assert_int_equal(g.attempts, 1);

    assert_int_equal(claim(f, "node-c", 60000, &j), 0);
    assert_string_equal(j.name, "job7");
    assert_int_equal(j.attempts, 1);

    /* put overwrites the lease columns too (a copy of the database keeps them). */
    j.lease_until_ms = 42;
    snprintf(j.claimed_by, sizeof j.claimed_by, "node-z");
    j.attempts = 9;
    struct ahl_store_tx *tx;
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    assert_int_equal(ahl_store_job_put(tx, &j, false), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
    get_job(f, 7, &g);
    assert_int_equal(g.lease_until_ms, 42);
    assert_string_equal(g.claimed_by, "node-z");
    assert_int_equal(g.attempts, 9);
}

#define RACE_JOBS 40
#define RACE_THREADS 4

struct racer {
    struct fx *f;
    char node[32];
    char got[RACE_JOBS][AHL_ID_LEN + 1];
    int n;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    struct ahl_job_rec j;
    for (;;) {
        struct ahl_store_tx *tx;
        if (ahl_store_begin(r->f->store, true, &tx) < 0)
            break;
        int rc = ahl_store_job_claim(tx, r->node, 60000, &j);
        if (rc < 0) {
            ahl_store_rollback(tx);
            break;
        }
        if (ahl_store_commit(tx) < 0)
            break;
        if (r->n < RACE_JOBS)
            memcpy(r->got[r->n++], j.id, AHL_ID_LEN + 1);
    }
    return NULL;
}

/* Nodes claiming at once: every job is claimed exactly once. */
static void test_concurrent_claims(void **state)
{
    struct fx *f = *state;
    struct racer r[RACE_THREADS];
    pthread_t t[RACE_THREADS];
    for (int i = 0; i < RACE_JOBS; i++)
        put_job(f, 100 + i, "SUBMITTED", 1000 + i);
    for (int i = 0; i < RACE_THREADS; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].f = f;
        snprintf(r[i].node, sizeof r[i].node, "node-%d", i);
        assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < RACE_THREADS; i++)
        pthread_join(t[i], NULL);
    int total = 0;
    for (int k = 0; k < RACE_JOBS; k++) {
        char id[AHL_ID_LEN + 1];
        int seen = 0;
        snprintf(id, sizeof id, "%032x", 100 + k);
        for (int i = 0; i < RACE_THREADS; i++)
            for (int m = 0; m < r[i].n; m++)
                seen += !strcmp(r[i].got[m], id);
        assert_int_equal(seen, 1);
        struct ahl_job_rec g;
        get_job(f, 100 + k, &g);
        assert_int_equal(g.attempts, 1);
        total += seen;
    }
    assert_int_equal(total, RACE_JOBS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_claim_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_takeover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_and_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_claims, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
