/* The PostgreSQL backend's own promises, beside the storage interface's semantics that every
 * store test checks on it: opening dispatches on the database string and never logs a
 * password; the SQLite-only calls refuse it; write transactions of two stores on one schema (two
 * nodes) run one at a time; a read transaction keeps its snapshot while another node commits; a
 * duplicate insert fails alone, the transaction goes on (as on SQLite); write transactions
 * queued behind one another share one COMMIT, each still committing or rolling back on its own
 * (group commit: the first one's rows stay invisible to other nodes until the batch commits, a
 * member whose statement failed rolls back to its savepoint alone), and a commit waits a little
 * for a writer announced (ahl_store_write_intent); chunk and frame puts sent
 * ahead of their results (pipelined) land in order, and one that fails fails the transaction's
 * next call; the pool bounds
 * connections and a thread waits for one; connections the server dropped are replaced; several
 * nodes may create the schema at once; a schema newer than the program is refused.
 * Cases that need a server run when AHL_TEST_DATABASE names one (unit_pg_test_store_pg). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define AHL_FIXTURE_STORE_ONLY 1
#include "meta_fixture.h"

static void need_pg(void)
{
    if (!ahl_test_store_is_pg()) {
        print_message("needs PostgreSQL (AHL_TEST_DATABASE)\n");
        skip();
    }
}

static void make_ds(struct ahl_datastore_rec *d, unsigned n)
{
    memset(d, 0, sizeof *d);
    snprintf(d->id, sizeof d->id, "%032x", n);
    snprintf(d->name, sizeof d->name, "ds%u", n);
    snprintf(d->status, sizeof d->status, "ACTIVE");
}

static int put_ds(struct ahl_store *s, unsigned n)
{
    struct ahl_store_tx *tx;
    struct ahl_datastore_rec d;
    make_ds(&d, n);
    int rc = ahl_store_begin(s, true, &tx);
    if (rc == 0 && (rc = ahl_store_datastore_put(tx, &d, true)) == 0)
        return ahl_store_commit(tx);
    ahl_store_rollback(tx);
    return rc;
}

static int get_ds(struct ahl_store_tx *tx, unsigned n)
{
    char id[AHL_ID_LEN + 1];
    struct ahl_datastore_rec d;
    snprintf(id, sizeof id, "%032x", n);
    return ahl_store_datastore_get(tx, id, &d);
}

static void sleep_ms(long ms)
{
    nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000}, NULL);
}

/* ---- opening ---- */

static void test_open_dispatch(void **state)
{
    (void)state;
    struct ahl_store *s = NULL;
    assert_true(ahl_store_is_postgres("postgresql://h/db"));
    assert_true(ahl_store_is_postgres("postgres:///db?host=/tmp"));
    assert_false(ahl_store_is_postgres("mysql://h/db"));
    assert_false(ahl_store_is_postgres("/var/lib/ahilite"));
    assert_false(ahl_store_is_postgres(NULL));
    assert_int_equal(ahl_store_open("mysql://u:sekrit@h/db", "/nonexistent", 0, &s), AHL_EINVAL);
    assert_null(s);

    /* A server that cannot be reached: AHL_EIO, and the message names where, not the password. */
    char log[] = "/tmp/ahl-test-pglog-XXXXXX";
    int fd = mkstemp(log), saved = dup(2);
    assert_true(fd >= 0 && saved >= 0);
    dup2(fd, 2);
    int rc = ahl_store_open("postgresql://ahl:sekrit@/db?host=/nonexistent-ahl-socket", NULL, 0,
                            &s);
    dup2(saved, 2);
    close(saved);
    char text[4096];
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    close(fd);
    unlink(log);
    assert_int_equal(rc, AHL_EIO);
    assert_true(n > 0);
    text[n] = '\0';
    print_message("logged: %s", text);
    assert_non_null(strstr(text, "cannot connect to PostgreSQL"));
    assert_non_null(strstr(text, "/nonexistent-ahl-socket"));
    assert_null(strstr(text, "sekrit"));
}

static void test_sqlite_calls_refused(void **state)
{
    (void)state;
    need_pg();
    struct fx *f = fx_new(NULL);
    assert_non_null(f);
    struct ahl_store_sqlite_stats st;
    unsigned problems = 7;
    assert_int_equal(ahl_store_sqlite_stats(f->store, &st), AHL_EINVAL);
    assert_int_equal(ahl_store_sqlite_set_commit_batch_max(f->store, 4), AHL_EINVAL);
    assert_int_equal(ahl_store_sqlite_set_commit_delay_us(f->store, 10), AHL_EINVAL);
    assert_int_equal(ahl_store_sqlite_integrity_check(f->store, true, NULL, NULL, &problems),
                     AHL_EINVAL);
    assert_int_equal(problems, 0);
    fx_free(f);
}

/* ---- transactions across nodes ---- */

struct writer {
    struct ahl_store *s;
    atomic_bool began;
    int saw; /* the first node's row, as this writer found it */
    int rc;
};

static void *second_writer(void *arg)
{
    struct writer *w = arg;
    struct ahl_store_tx *tx;
    w->rc = ahl_store_begin(w->s, true, &tx);
    if (w->rc < 0) {
        atomic_store(&w->began, true);
        return NULL;
    }
    /* The writers' lock is taken with the transaction's first statement (sent with BEGIN). */
    w->saw = get_ds(tx, 1);
    atomic_store(&w->began, true);
    w->rc = ahl_store_commit(tx);
    return NULL;
}

static void test_writers_exclusive_across_nodes(void **state)
{
    (void)state;
    need_pg();
    struct fx *f = fx_new(NULL);
    assert_non_null(f);
    struct writer w = {.saw = 1};
    assert_int_equal(ahl_test_store_open(f->dir, 4, &w.s), 0); /* a second node, same schema */
    struct ahl_store_tx *tx;
    struct ahl_datastore_rec d;
    make_ds(&d, 1);
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    assert_int_equal(ahl_store_datastore_put(tx, &d, true), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, second_writer, &w), 0);
    sleep_ms(300);
    assert_false(atomic_load(&w.began)); /* waits for the first node's transaction */
    assert_int_equal(ahl_store_commit(tx), 0);
    pthread_join(th, NULL);
    assert_int_equal(w.rc, 0);
    assert_int_equal(w.saw, 0); /* and then sees its row */
    ahl_store_close(w.s);
    fx_free(f);
}

static void test_read_keeps_its_snapshot(void **state)
{
    (void)state;
    need_pg();
    struct fx *f = fx_new(NULL);
    assert_non_null(f);
    struct ahl_store *other;
    assert_int_equal(ahl_test_store_open(f->dir, 4, &other), 0);
    struct ahl_store_tx *rd;
    assert_int_equal(ahl_store_begin(f->store, false, &rd), 0);
    assert_int_equal(get_ds(rd, 2), AHL_ENOTFOUND);
    assert_int_equal(put_ds(other, 2), 0);
    assert_int_equal(get_ds(rd, 2), AHL_ENOTFOUND); /* the snapshot it began with */
    struct ahl_datastore_rec d;
    make_ds(&d, 3);
    assert_int_equal(ahl_store_datastore_put(rd, &d, true), AHL_EIO); /* read only */
    ahl_store_rollback(rd);
    assert_int_equal(ahl_store_begin(f->store, false, &rd), 0);
    assert_int_equal(get_ds(rd, 2), 0);
    assert_int_equal(ahl_store_commit(rd), 0);
    ahl_store_close(other);
    fx_free(f);
}

/* On either backend: a duplicate id fails that call only. */
static void test_duplicate_fails_alone(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    assert_non_null(f);
    struct ahl_store_tx *tx;
    struct ahl_datastore_rec d;
    struct ahl_imageset_rec set;
    struct ahl_version_rec v;
    make_ds(&d, 4);
    memset(&set, 0, sizeof set);
    snprintf(set.id, sizeof set.id, "%032x", 40u);
    memcpy(set.datastore_id, d.id, sizeof set.datastore_id);
    snprintf(set.state, sizeof set.state, "ACTIVE");
    set.latest_version = 1;
    memset(&v, 0, sizeof v);
    memcpy(v.imageset_id, set.id, sizeof v.imageset_id);
    v.version = 1;
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    assert_int_equal(ahl_store_datastore_put(tx, &d, true), 0);
    assert_int_equal(ahl_store_datastore_put(tx, &d, true), AHL_ECONFLICT);
    assert_int_equal(ahl_store_imageset_put(tx, &set, true), 0);
    assert_int_equal(ahl_store_imageset_put(tx, &set, true), AHL_ECONFLICT);
    assert_int_equal(ahl_store_version_put(tx, &v), 0);
    assert_int_equal(ahl_store_version_put(tx, &v), AHL_ECONFLICT);
    assert_int_equal(ahl_store_imageset_advance(tx, &set, 7), AHL_ECONFLICT);
    set.latest_version = 2;
    assert_int_equal(ahl_store_imageset_advance(tx, &set, 1), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    struct ahl_imageset_rec got;
    assert_int_equal(ahl_store_imageset_get(tx, d.id, set.id, &got), 0);
    assert_int_equal(got.latest_version, 2);
    assert_int_equal(ahl_store_version_get(tx, set.id, 1, &v), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
    fx_free(f);
}

/* ---- group commit ---- */

struct member {
    struct ahl_store *s;
    unsigned ds;
    bool fail;          /* a statement of it fails, and it rolls back */
    atomic_bool *inside; /* set once it began (the committing one only) */
    atomic_bool *go;     /* it commits once this is set (the committing one only) */
    int rc;
};

static void *member_run(void *arg)
{
    struct member *m = arg;
    struct ahl_store_tx *tx;
    struct ahl_datastore_rec d;
    if ((m->rc = ahl_store_begin(m->s, true, &tx)) < 0)
        return NULL;
    make_ds(&d, m->ds);
    m->rc = ahl_store_datastore_put(tx, &d, true);
    if (m->fail) {
        /* Not UTF-8: the server fails the statement (and would abort a whole transaction). */
        make_ds(&d, m->ds + 100);
        snprintf(d.name, sizeof d.name, "bad \xff name");
        m->rc = ahl_store_datastore_put(tx, &d, true);
        ahl_store_rollback(tx);
        return NULL;
    }
    atomic_store(m->inside, true);
    while (!atomic_load(m->go))
        sleep_ms(5);
    m->rc = m->rc < 0 ? m->rc : ahl_store_commit(tx);
    return NULL;
}

/* The batch's first transaction: begins, writes, and commits once told (a transaction belongs
 * to one thread). */
struct committer {
    struct ahl_store *s;
    atomic_bool began, commit;
    int rc;
};

static void *commit_run(void *arg)
{
    struct committer *c = arg;
    struct ahl_store_tx *tx;
    struct ahl_datastore_rec d;
    make_ds(&d, 10);
    if ((c->rc = ahl_store_begin(c->s, true, &tx)) < 0 ||
        (c->rc = ahl_store_datastore_put(tx, &d, true)) < 0) {
        atomic_store(&c->began, true);
        return NULL;
    }
    atomic_store(&c->began, true);
    while (!atomic_load(&c->commit))
        sleep_ms(5);
    c->rc = ahl_store_commit(tx);
    return NULL;
}

static void test_group_commit(void **state)
{
    (void)state;
    need_pg();
    struct fx *f = fx_new(NULL);
    assert_non_null(f);
    struct ahl_store *other; /* another node, to look from */
    assert_int_equal(ahl_test_store_open(f->dir, 2, &other), 0);
    atomic_bool inside = false, go = false;
    struct member ok = {.s = f->store, .ds = 11, .inside = &inside, .go = &go};
    struct member bad = {.s = f->store, .ds = 12, .fail = true};
    struct committer first = {.s = f->store};
    pthread_t t_ok, t_bad, t_first;
    assert_int_equal(pthread_create(&t_first, NULL, commit_run, &first), 0);
    while (!atomic_load(&first.began))
        sleep_ms(5);
    assert_int_equal(first.rc, 0);
    assert_int_equal(pthread_create(&t_ok, NULL, member_run, &ok), 0);
    assert_int_equal(pthread_create(&t_bad, NULL, member_run, &bad), 0);
    sleep_ms(300); /* both wait to begin */
    atomic_store(&first.commit, true);
    while (!atomic_load(&inside))
        sleep_ms(5);
    /* The first transaction ended, but its batch goes on in the next one: not committed yet. */
    struct ahl_store_tx *rd;
    assert_int_equal(ahl_store_begin(other, false, &rd), 0);
    assert_int_equal(get_ds(rd, 10), AHL_ENOTFOUND);
    ahl_store_rollback(rd);
    atomic_store(&go, true);
    pthread_join(t_first, NULL);
    pthread_join(t_ok, NULL);
    pthread_join(t_bad, NULL);
    assert_int_equal(first.rc, 0);
    assert_int_equal(ok.rc, 0);
    assert_int_equal(bad.rc, AHL_EIO);
    assert_int_equal(ahl_store_begin(other, false, &rd), 0);
    assert_int_equal(get_ds(rd, 10), 0);
    assert_int_equal(get_ds(rd, 11), 0);
    assert_int_equal(get_ds(rd, 12), AHL_ENOTFOUND); /* the failed member's own row is gone */
    assert_int_equal(ahl_store_commit(rd), 0);
    /* A lone writer commits at once, and the store goes on after the batch. */
    assert_int_equal(put_ds(f->store, 13), 0);
    assert_int_equal(ahl_store_begin(other, false, &rd), 0);
    assert_int_equal(get_ds(rd, 13), 0);
    assert_int_equal(ahl_store_commit(rd), 0);
    ahl_store_close(other);
    fx_free(f);
}

/* A writer announced but never beginning delays a commit a little, never for long. */
static void test_intent_never_comes(void **state)
{
    (void)state;
    need_pg();
    struct fx *f = fx_new(NULL);
    assert_non_null(f);
    ahl_store_write_intent(f->store, +1);
    uint64_t t0 = ahl_mono_ns();
    assert_int_equal(put_ds(f->store, 20), 0);
    uint64_t waited_us = (ahl_mono_ns() - t0) / 1000;
    ahl_store_write_intent(f->store, -1);
    print_message("commit with an announced writer that never came: %llu us\n",
                  (unsigned long long)waited_us);
    assert_true(waited_us >= AHL_STORE_COMMIT_DELAY_US);
    assert_true(waited_us < 5000000);
    struct ahl_store_tx *tx;
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    assert_int_equal(get_ds(tx, 20), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
    fx_free(f);
}

/* ---- statements sent ahead ---- */

static int count_frame(void *ctx, const struct ahl_frame_rec *r)
{
    (void)r;
    (*(int *)ctx)++;
    return 0;
}

static void test_sent_ahead(void **state)
{
    (void)state;
    need_pg();
    struct fx *f = fx_new(NULL);
    assert_non_null(f);
    const char *set = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    struct ahl_store_tx *tx;
    struct ahl_frame_rec r;
    memset(&r, 0, sizeof r);
    snprintf(r.imageset_id, sizeof r.imageset_id, "%s", set);
    snprintf(r.transfer_syntax, sizeof r.transfer_syntax, "1.2.840.10008.1.2.4.202");
    /* More than one pipeline's worth, then a chunk, then a read that must see them all. */
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    for (unsigned i = 0; i < 700; i++) {
        snprintf(r.frame_id, sizeof r.frame_id, "%032x", i);
        assert_int_equal(ahl_store_frame_put(tx, &r), 0);
    }
    struct ahl_chunk c = {.kind = AHL_CHUNK_MAP, .ulen = 3, .crc = 9, .data = "abc", .len = 3};
    c.hash[0] = 1;
    assert_int_equal(ahl_store_chunk_put(tx, &c), 0);
    assert_int_equal(ahl_store_chunk_put(tx, &c), 0);
    int n = 0;
    assert_int_equal(ahl_store_frame_list(tx, set, count_frame, &n), 0);
    assert_int_equal(n, 700);
    assert_int_equal(ahl_store_commit(tx), 0);

    /* A put the server refuses (not UTF-8) fails the next call, and the transaction. */
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    snprintf(r.frame_id, sizeof r.frame_id, "%032x", 1000u);
    assert_int_equal(ahl_store_frame_put(tx, &r), 0);
    snprintf(r.frame_id, sizeof r.frame_id, "%032x", 1001u);
    snprintf(r.transfer_syntax, sizeof r.transfer_syntax, "bad \xff");
    assert_int_equal(ahl_store_frame_put(tx, &r), 0); /* sent, not answered yet */
    assert_int_equal(ahl_store_frame_get(tx, set, r.frame_id, &r), AHL_EIO);
    assert_int_equal(ahl_store_commit(tx), AHL_EIO);
    /* The same when the failure is found only at COMMIT. */
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    assert_int_equal(ahl_store_frame_put(tx, &r), 0);
    assert_int_equal(ahl_store_commit(tx), AHL_EIO);
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    n = 0;
    assert_int_equal(ahl_store_frame_list(tx, set, count_frame, &n), 0);
    assert_int_equal(n, 700);
    struct ahl_chunk got;
    struct ahl_buf data;
    ahl_buf_init(&data, 16);
    assert_int_equal(ahl_store_chunk_get(tx, c.hash, &got, &data), 0);
    assert_int_equal(got.len, 3);
    assert_memory_equal(got.data, "abc", 3);
    ahl_buf_release(&data);
    assert_int_equal(ahl_store_commit(tx), 0);
    fx_free(f);
}

/* ---- the pool ---- */

struct reader {
    struct ahl_store *s;
    atomic_bool began;
    int rc;
};

static void *third_reader(void *arg)
{
    struct reader *r = arg;
    struct ahl_store_tx *tx;
    r->rc = ahl_store_begin(r->s, false, &tx);
    atomic_store(&r->began, true);
    if (r->rc == 0)
        r->rc = ahl_store_commit(tx);
    return NULL;
}

static void test_pool_bound(void **state)
{
    (void)state;
    need_pg();
    struct fx *f = fx_new(NULL);
    assert_non_null(f);
    struct reader r = {0};
    assert_int_equal(ahl_test_store_open(f->dir, 1, &r.s), 0); /* two connections */
    struct ahl_store_tx *a, *b;
    assert_int_equal(ahl_store_begin(r.s, false, &a), 0);
    assert_int_equal(ahl_store_begin(r.s, false, &b), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, third_reader, &r), 0);
    sleep_ms(200);
    assert_false(atomic_load(&r.began));
    assert_int_equal(ahl_store_commit(a), 0);
    pthread_join(th, NULL);
    assert_int_equal(r.rc, 0);
    ahl_store_rollback(b);
    /* Only two connections were ever opened. */
    char n[32];
    char sql[256];
    char schema[64];
    ahl_test_store_schema(f->dir, schema, sizeof schema);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'", schema);
    ahl_store_close(f->store);
    f->store = NULL;
    assert_int_equal(ahl_test_pg_exec(f->dir, sql, n, sizeof n), 0);
    assert_string_equal(n, "2");
    ahl_store_close(r.s);
    fx_free(f);
}

static void test_dropped_connections_replaced(void **state)
{
    (void)state;
    need_pg();
    struct fx *f = fx_new(NULL);
    assert_non_null(f);
    assert_int_equal(put_ds(f->store, 5), 0);
    /* The server drops every connection of the store (as a restart would). */
    char sql[256], schema[64], n[32];
    ahl_test_store_schema(f->dir, schema, sizeof schema);
    snprintf(sql, sizeof sql,
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
             " WHERE application_name = '%s' AND pid <> pg_backend_pid()",
             schema);
    assert_int_equal(ahl_test_pg_exec(f->dir, sql, n, sizeof n), 0);
    assert_string_not_equal(n, "0");
    sleep_ms(100);
    struct ahl_store_tx *tx;
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    assert_int_equal(get_ds(tx, 5), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
    assert_int_equal(put_ds(f->store, 6), 0);
    fx_free(f);
}

/* ---- the schema ---- */

struct opener {
    const char *dir;
    struct ahl_store *s;
    int rc;
};

static void *open_store(void *arg)
{
    struct opener *o = arg;
    o->rc = ahl_test_store_open(o->dir, 2, &o->s);
    return NULL;
}

static void test_schema_made_once(void **state)
{
    (void)state;
    need_pg();
    char dir[] = "/tmp/ahl-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    /* Make the schema (empty), then let four nodes create its tables at once. */
    struct ahl_store *s;
    assert_int_equal(ahl_test_store_open(dir, 1, &s), 0);
    ahl_store_close(s);
    assert_int_equal(ahl_test_pg_exec(dir, "DROP TABLE datastore, imageset, version, chunk,"
                                           " tag, frame, frame_backfill, ahl_schema CASCADE",
                                      NULL, 0),
                     0);
    struct opener o[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        o[i] = (struct opener){.dir = dir};
        assert_int_equal(pthread_create(&th[i], NULL, open_store, &o[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(o[i].rc, 0);
    }
    assert_int_equal(put_ds(o[0].s, 8), 0);
    struct ahl_store_tx *tx;
    assert_int_equal(ahl_store_begin(o[3].s, false, &tx), 0);
    assert_int_equal(get_ds(tx, 8), 0);
    ahl_store_rollback(tx);
    for (int i = 0; i < 4; i++)
        ahl_store_close(o[i].s);
    char n[16];
    assert_int_equal(ahl_test_pg_exec(dir, "SELECT count(*) FROM ahl_schema", n, sizeof n), 0);
    assert_string_equal(n, "1");

    /* A schema a newer program wrote is refused. */
    assert_int_equal(ahl_test_pg_exec(dir, "UPDATE ahl_schema SET version = version + 1", NULL, 0),
                     0);
    assert_int_equal(ahl_test_store_open(dir, 1, &s), AHL_EUNSUPPORTED);
    fx_rmdir(dir);
}

/* A schema recorded at version 1 (before storage tiers) is brought to the current one: the search
 * row gains its set's last access, and a set that had none recorded gets its last write. */
static void test_schema_upgrade_from_1(void **state)
{
    (void)state;
    need_pg();
    char dir[] = "/tmp/ahl-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct ahl_store *s;
    assert_int_equal(ahl_test_store_open(dir, 1, &s), 0);
    ahl_store_close(s);
    assert_int_equal(
        ahl_test_pg_exec(dir,
                         "ALTER TABLE search DROP COLUMN last_accessed_at;"
                         "ALTER TABLE job DROP COLUMN options;"
                         "DROP INDEX imageset_deleted;"
                         "UPDATE ahl_schema SET version = 1;"
                         "INSERT INTO imageset VALUES('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',"
                         " 'dddddddddddddddddddddddddddddddd', 'ACTIVE', 'CREATED', '', true, 1,"
                         " 1000, 5000, 0, 0);"
                         "INSERT INTO search VALUES('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',"
                         " 'dddddddddddddddddddddddddddddddd', true, 1, 1000, 5000, '', '', '',"
                         " '', '', '', '', '', '', '', '', '', '', NULL, 1, 1, '')",
                         NULL, 0),
        0);
    assert_int_equal(ahl_test_store_open(dir, 1, &s), 0);
    struct ahl_store_tx *tx;
    struct ahl_imageset_rec set;
    struct ahl_search_row row;
    assert_int_equal(ahl_store_begin(s, false, &tx), 0);
    assert_int_equal(ahl_store_imageset_get(tx, NULL, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", &set), 0);
    assert_int_equal(set.last_accessed_at_ms, 5000);
    assert_int_equal(ahl_store_search_get(tx, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", &row), 0);
    assert_int_equal(row.last_accessed_at_ms, 5000);
    ahl_store_rollback(tx);
    /* The upsert still writes every column in the table's order. */
    row.last_accessed_at_ms = 7000;
    row.updated_at_ms = 6000;
    assert_int_equal(ahl_store_begin(s, true, &tx), 0);
    assert_int_equal(ahl_store_search_put(tx, &row), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
    assert_int_equal(ahl_store_begin(s, false, &tx), 0);
    assert_int_equal(ahl_store_search_get(tx, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", &row), 0);
    assert_int_equal(row.last_accessed_at_ms, 7000);
    assert_int_equal(row.updated_at_ms, 6000);
    ahl_store_rollback(tx);
    ahl_store_close(s);
    char n[16];
    assert_int_equal(ahl_test_pg_exec(dir, "SELECT max(version) FROM ahl_schema", n, sizeof n), 0);
    assert_string_equal(n, "6");
    /* Step 6: the frame fence's one row. */
    assert_int_equal(ahl_test_pg_exec(dir, "SELECT epoch FROM frame_fence", n, sizeof n), 0);
    assert_string_equal(n, "0");
    /* Step 4: the job options column is back. */
    assert_int_equal(ahl_test_pg_exec(dir, "SELECT count(options) FROM job", n, sizeof n), 0);
    /* Step 5: the tombstones' index is there. */
    assert_int_equal(ahl_test_pg_exec(dir,
                                      "SELECT count(*) FROM pg_indexes WHERE indexname ="
                                      " 'imageset_deleted' AND schemaname = current_schema()",
                                      n, sizeof n),
                     0);
    assert_string_equal(n, "1");
    fx_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_dispatch),
        cmocka_unit_test(test_sqlite_calls_refused),
        cmocka_unit_test(test_writers_exclusive_across_nodes),
        cmocka_unit_test(test_read_keeps_its_snapshot),
        cmocka_unit_test(test_duplicate_fails_alone),
        cmocka_unit_test(test_group_commit),
        cmocka_unit_test(test_intent_never_comes),
        cmocka_unit_test(test_sent_ahead),
        cmocka_unit_test(test_pool_bound),
        cmocka_unit_test(test_dropped_connections_replaced),
        cmocka_unit_test(test_schema_made_once),
        cmocka_unit_test(test_schema_upgrade_from_1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
