/* Group commit in the SQLite backend: write transactions of concurrent threads share one SQLite
 * COMMIT, yet each still commits or rolls back on its own. Three writers are lined up
 * deterministically (the store reports how many threads wait to begin a write transaction): the
 * first commits while two wait, so it joins a batch; of the other two one rolls back after a
 * failed call and one commits. Checked: the rolled-back writer's rows are gone and its
 * neighbours' are there; the batch took one COMMIT; the first writer's commit did not return,
 * and its rows were invisible to readers, until that COMMIT; writers inside the batch saw the
 * earlier members' uncommitted rows. Also: when the batch's first writer rolls back, only its
 * rows go; a lone writer commits at once (one COMMIT each); with the batch bound lowered to one,
 * the same line-up commits each writer on its own. Write intents: a committer with nobody waiting
 * but a writer announced waits for it and they share one COMMIT; it stops waiting as soon as the
 * announced writer withdraws, and after the delay when it never comes; with no delay it does not
 * wait at all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define AHL_FIXTURE_STORE_ONLY 1
#define AHL_TEST_SQLITE_ONLY 1 /* the SQLite backend's own machinery */
#include "meta_fixture.h"

#define ARN "arn:aws:medical-imaging:us-east-1:123456789012:datastore/batch"

struct shared {
    struct ahl_store *store;
    bool a_rolls_back; /* A rolls back instead of committing */
    atomic_int a_began, a_go, a_returned;
    atomic_int saw_a_inside, a_visible_outside, a_returned_early;
    int rc[3];
};

struct find {
    const char *key;
    bool found;
};

static int find_tag(void *ctx, const char *k, const char *v)
{
    struct find *f = ctx;
    (void)v;
    if (!strcmp(k, f->key))
        f->found = true;
    return 0;
}

static bool has_tag(struct ahl_store_tx *tx, const char *key)
{
    struct find f = {key, false};
    assert_int_equal(ahl_store_tag_list(tx, ARN, find_tag, &f), 0);
    return f.found;
}

static bool committed_tag(struct ahl_store *s, const char *key)
{
    struct ahl_store_tx *tx;
    assert_int_equal(ahl_store_begin(s, false, &tx), 0);
    bool r = has_tag(tx, key);
    ahl_store_rollback(tx);
    return r;
}

static void *writer_a(void *arg)
{
    struct shared *sh = arg;
    struct ahl_store_tx *tx;
    sh->rc[0] = ahl_store_begin(sh->store, true, &tx);
    if (sh->rc[0] < 0)
        return NULL;
    ahl_store_tag_put(tx, ARN, "a", "1");
    atomic_store(&sh->a_began, 1);
    while (!atomic_load(&sh->a_go))
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    if (sh->a_rolls_back)
        ahl_store_rollback(tx);
    else
        sh->rc[0] = ahl_store_commit(tx);
    atomic_store(&sh->a_returned, 1);
    return NULL;
}

/* B: fails a call and rolls back. */
static void *writer_b(void *arg)
{
    struct shared *sh = arg;
    struct ahl_store_tx *tx;
    sh->rc[1] = ahl_store_begin(sh->store, true, &tx);
    if (sh->rc[1] < 0)
        return NULL;
    if (has_tag(tx, "a"))
        atomic_fetch_add(&sh->saw_a_inside, 1);
    if (committed_tag(sh->store, "a"))
        atomic_store(&sh->a_visible_outside, 1);
    if (atomic_load(&sh->a_returned))
        atomic_store(&sh->a_returned_early, 1);
    ahl_store_tag_put(tx, ARN, "b", "1");
    struct ahl_datastore_rec d;
    memset(&d, 0, sizeof d);
    snprintf(d.id, sizeof d.id, "%032x", 7); /* the fixture's data store: a duplicate */
    snprintf(d.status, sizeof d.status, "ACTIVE");
    sh->rc[1] = ahl_store_datastore_put(tx, &d, true);
    ahl_store_rollback(tx);
    return NULL;
}

/* C: commits. */
static void *writer_c(void *arg)
{
    struct shared *sh = arg;
    struct ahl_store_tx *tx;
    sh->rc[2] = ahl_store_begin(sh->store, true, &tx);
    if (sh->rc[2] < 0)
        return NULL;
    if (has_tag(tx, "a"))
        atomic_fetch_add(&sh->saw_a_inside, 1);
    if (committed_tag(sh->store, "a"))
        atomic_store(&sh->a_visible_outside, 1);
    if (atomic_load(&sh->a_returned))
        atomic_store(&sh->a_returned_early, 1);
    ahl_store_tag_put(tx, ARN, "c", "1");
    sh->rc[2] = ahl_store_commit(tx);
    return NULL;
}

static void stats(struct ahl_store *s, struct ahl_store_sqlite_stats *out)
{
    assert_int_equal(ahl_store_sqlite_stats(s, out), 0);
}

/* Runs A, then B and C once both queue behind A's open transaction; returns when all three are
 * done. */
static void line_up(struct shared *sh)
{
    struct ahl_store_sqlite_stats s;
    pthread_t ta, tb, tc;
    assert_int_equal(pthread_create(&ta, NULL, writer_a, sh), 0);
    while (!atomic_load(&sh->a_began))
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    assert_int_equal(pthread_create(&tb, NULL, writer_b, sh), 0);
    assert_int_equal(pthread_create(&tc, NULL, writer_c, sh), 0);
    for (int i = 0;; i++) {
        stats(sh->store, &s);
        if (s.write_waiting == 2)
            break;
        assert_true(i < 10000);
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    atomic_store(&sh->a_go, 1);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_join(tc, NULL);
}

/* A fresh store, sh cleared and pointing at it, and the store's figures before the test in s0. */
static struct fx *start(struct shared *sh, struct ahl_store_sqlite_stats *s0)
{
    struct fx *f = fx_new(NULL);
    assert_non_null(f);
    memset(sh, 0, sizeof *sh);
    sh->store = f->store;
    stats(f->store, s0);
    return f;
}

/* Which of the writers' rows are committed. */
static void assert_committed(struct ahl_store *s, bool a, bool b, bool c)
{
    assert_int_equal(committed_tag(s, "a"), a);
    assert_int_equal(committed_tag(s, "b"), b);
    assert_int_equal(committed_tag(s, "c"), c);
}

static void test_batch_isolates_failure(void **state)
{
    (void)state;
    struct shared sh;
    struct ahl_store_sqlite_stats s0, s1;
    struct fx *f = start(&sh, &s0);
    line_up(&sh);
    assert_int_equal(sh.rc[0], 0);
    assert_int_equal(sh.rc[1], AHL_ECONFLICT);
    assert_int_equal(sh.rc[2], 0);
    assert_int_equal(atomic_load(&sh.saw_a_inside), 2);
    assert_false(atomic_load(&sh.a_visible_outside));
    assert_false(atomic_load(&sh.a_returned_early));
    assert_committed(f->store, true, false, true);
    stats(f->store, &s1);
    assert_int_equal(s1.commits - s0.commits, 1);
    assert_int_equal(s1.write_txs - s0.write_txs, 2);
    assert_int_equal(s1.write_waiting, 0);
    /* Reopened: the batch is durable. */
    fx_close(f);
    assert_int_equal(fx_open(f, NULL), 0);
    assert_committed(f->store, true, false, true);
    fx_free(f);
}

/* The batch's first writer rolls back while two wait: its writes go, the batch ends there, and
 * the waiting writers form the next one (B still fails alone, C commits). */
static void test_first_rolls_back(void **state)
{
    (void)state;
    struct shared sh;
    struct ahl_store_sqlite_stats s0, s1;
    struct fx *f = start(&sh, &s0);
    sh.a_rolls_back = true;
    line_up(&sh);
    assert_int_equal(sh.rc[1], AHL_ECONFLICT);
    assert_int_equal(sh.rc[2], 0);
    assert_int_equal(atomic_load(&sh.saw_a_inside), 0);
    assert_committed(f->store, false, false, true);
    stats(f->store, &s1);
    assert_int_equal(s1.commits - s0.commits, 1);
    assert_int_equal(s1.write_txs - s0.write_txs, 1);
    fx_free(f);
}

static void test_lone_writer(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    assert_non_null(f);
    struct ahl_store_sqlite_stats s0, s1;
    stats(f->store, &s0);
    for (int i = 0; i < 5; i++) {
        struct ahl_store_tx *tx;
        char key[8];
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
        assert_int_equal(ahl_store_tag_put(tx, ARN, key, "v"), 0);
        if (i == 2) {
            ahl_store_rollback(tx);
            continue;
        }
        assert_int_equal(ahl_store_commit(tx), 0);
        /* Committed means visible to a reader at once: nothing waits for company. */
        assert_true(committed_tag(f->store, key));
    }
    assert_false(committed_tag(f->store, "k2"));
    stats(f->store, &s1);
    assert_int_equal(s1.write_txs - s0.write_txs, 4);
    assert_int_equal(s1.commits - s0.commits, 4); /* the rolled-back one commits nothing */
    fx_free(f);
}

/* With the batch bound at one, A commits alone although two writers wait: they find its rows
 * committed, and every commit is a COMMIT of its own. */
static void test_batch_max_one(void **state)
{
    (void)state;
    struct shared sh;
    struct ahl_store_sqlite_stats s0, s1;
    struct fx *f = start(&sh, &s0);
    assert_int_equal(ahl_store_sqlite_set_commit_batch_max(f->store, 0), AHL_EINVAL);
    assert_int_equal(
        ahl_store_sqlite_set_commit_batch_max(f->store, AHL_STORE_SQLITE_COMMIT_BATCH_MAX + 1),
        AHL_EINVAL);
    assert_int_equal(ahl_store_sqlite_set_commit_batch_max(f->store, 1), 0);
    line_up(&sh);
    assert_int_equal(sh.rc[0], 0);
    assert_int_equal(sh.rc[1], AHL_ECONFLICT);
    assert_int_equal(sh.rc[2], 0);
    assert_true(atomic_load(&sh.a_visible_outside));
    assert_committed(f->store, true, false, true);
    stats(f->store, &s1);
    assert_int_equal(s1.commits - s0.commits, 2);
    assert_int_equal(s1.write_txs - s0.write_txs, 2);
    fx_free(f);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A committing thread: begins, writes tag "a", commits; a_returned once its commit returned. */
static void *committer(void *arg)
{
    struct shared *sh = arg;
    struct ahl_store_tx *tx;
    if ((sh->rc[0] = ahl_store_begin(sh->store, true, &tx)) < 0)
        return NULL;
    ahl_store_tag_put(tx, ARN, "a", "1");
    sh->rc[0] = ahl_store_commit(tx);
    atomic_store(&sh->a_returned, 1);
    return NULL;
}

/* Waits until the committer waits for an announced writer. */
static void wait_delaying(struct ahl_store *s)
{
    struct ahl_store_sqlite_stats st;
    for (int i = 0;; i++) {
        stats(s, &st);
        if (st.delaying)
            return;
        assert_true(i < 10000);
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
}

/* Announced before the committer commits, this thread's write joins its batch: one COMMIT for
 * both, and the committer's commit returns only with it. */
static void test_intent_joins_commit(void **state)
{
    (void)state;
    struct shared sh;
    struct ahl_store_sqlite_stats s0, s1;
    struct fx *f = start(&sh, &s0);
    assert_int_equal(ahl_store_sqlite_set_commit_delay_us(f->store, 60000001), AHL_EINVAL);
    assert_int_equal(ahl_store_sqlite_set_commit_delay_us(f->store, 30000000), 0);
    ahl_store_write_intent(f->store, +1);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, committer, &sh), 0);
    wait_delaying(f->store);
    assert_false(atomic_load(&sh.a_returned));
    struct ahl_store_tx *tx;
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    ahl_store_write_intent(f->store, -1);
    assert_true(has_tag(tx, "a")); /* the committer's write, in the batch */
    assert_false(committed_tag(f->store, "a"));
    assert_false(atomic_load(&sh.a_returned));
    assert_int_equal(ahl_store_tag_put(tx, ARN, "c", "1"), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
    pthread_join(t, NULL);
    assert_int_equal(sh.rc[0], 0);
    assert_committed(f->store, true, false, true);
    stats(f->store, &s1);
    assert_int_equal(s1.commits - s0.commits, 1);
    assert_int_equal(s1.write_txs - s0.write_txs, 2);
    fx_free(f);
}

/* The announced writer withdraws (it found nothing to write): the committer commits at once,
 * long before its delay. */
static void test_intent_withdrawn(void **state)
{
    (void)state;
    struct shared sh;
    struct ahl_store_sqlite_stats s0, s1;
    struct fx *f = start(&sh, &s0);
    assert_int_equal(ahl_store_sqlite_set_commit_delay_us(f->store, 30000000), 0);
    ahl_store_write_intent(f->store, +1);
    pthread_t t;
    double t0 = now_s();
    assert_int_equal(pthread_create(&t, NULL, committer, &sh), 0);
    wait_delaying(f->store);
    ahl_store_write_intent(f->store, -1);
    pthread_join(t, NULL);
    assert_true(now_s() - t0 < 15);
    assert_int_equal(sh.rc[0], 0);
    assert_committed(f->store, true, false, false);
    stats(f->store, &s1);
    assert_int_equal(s1.commits - s0.commits, 1);
    fx_free(f);
}

/* The announced writer never comes: the committer gives up after the delay and commits alone;
 * with the delay at 0 it does not wait at all. */
static void test_intent_never_comes(void **state)
{
    (void)state;
    struct shared sh;
    struct ahl_store_sqlite_stats s0, s1;
    struct fx *f = start(&sh, &s0);
    assert_int_equal(ahl_store_sqlite_set_commit_delay_us(f->store, 200000), 0);
    ahl_store_write_intent(f->store, +1);
    double t0 = now_s();
    committer(&sh);
    assert_true(now_s() - t0 >= 0.19);
    assert_int_equal(sh.rc[0], 0);
    assert_true(committed_tag(f->store, "a"));
    assert_int_equal(ahl_store_sqlite_set_commit_delay_us(f->store, 0), 0);
    struct ahl_store_tx *tx;
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    assert_int_equal(ahl_store_tag_put(tx, ARN, "c", "1"), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
    assert_true(committed_tag(f->store, "c"));
    ahl_store_write_intent(f->store, -1);
    stats(f->store, &s1);
    assert_int_equal(s1.commits - s0.commits, 2);
    assert_int_equal(s1.write_txs - s0.write_txs, 2);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_isolates_failure),
        cmocka_unit_test(test_first_rolls_back),
        cmocka_unit_test(test_lone_writer),
        cmocka_unit_test(test_batch_max_one),
        cmocka_unit_test(test_intent_joins_commit),
        cmocka_unit_test(test_intent_withdrawn),
        cmocka_unit_test(test_intent_never_comes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
