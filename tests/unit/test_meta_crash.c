/* links: synth */
/* Crash safety: a child process applies updates as fast as it can and reports each acknowledged
 * version through a pipe; the parent kills it with SIGKILL at a random moment, reopens the data
 * directory and checks that every acknowledged version is there, the latest version is readable
 * and holds its own change, and `ahl_meta_check` finds no damage. Repeated several times on the
 * same database (AHL_CRASH_ROUNDS, default 6). The batched variant runs BATCH_THREADS updating
 * threads in the child, one image set each, so the kill lands while updates are group-committed
 * (the test first proves such a workload does form batches): no update acknowledged by a batch's
 * COMMIT may be missing, whichever member it was. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "meta_fixture.h"
#include "synth/synth.h"

static int atoi_r(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    return *s && !*end && v > 0 && v < 1000 ? (int)v : 6;
}

static void child(struct fx *f, const char *id, int fd)
{
    struct ahl_err err;
    struct ahl_meta_info info;
    if (fx_open(f, NULL) < 0 || ahl_meta_imageset_get(f->m, f->ds, id, 0, &info, &err) < 0)
        _exit(3);
    for (uint64_t v = info.set.latest_version;; v++) {
        char blob[128];
        snprintf(blob, sizeof blob, "{\"Patient\":{\"DICOM\":{\"PatientName\":\"K^%llu\"}}}",
                 (unsigned long long)v + 1);
        struct ahl_meta_update u = {
            .latest_version = v, .updatable = blob, .updatable_len = strlen(blob)};
        if (ahl_meta_update(f->m, f->ds, id, &u, NULL, &err) < 0)
            _exit(4);
        uint64_t acked = v + 1;
        if (write(fd, &acked, sizeof acked) != sizeof acked)
            _exit(5);
    }
}

static void test_kill9(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    struct ahl_err err;
    struct ahl_meta_info info;
    assert_non_null(f);
    json_t *doc = ahl_synth_doc(1, 50, 13);
    assert_int_equal(ahl_meta_imageset_create(f->m, f->ds, doc, NULL, &info, &err), 0);
    json_decref(doc);
    char id[AHL_ID_LEN + 1];
    memcpy(id, info.set.id, sizeof id);
    fx_close(f);
    const char *e = getenv("AHL_CRASH_ROUNDS");
    int rounds = e ? atoi_r(e) : 6;
    srand((unsigned)time(NULL));
    for (int r = 0; r < rounds; r++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            child(f, id, p[1]);
        }
        close(p[1]);
        /* Let it run 20-120 ms, then kill it mid-flight. */
        struct timespec ts = {0, (long)(20 + rand() % 100) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        assert_true(WIFSIGNALED(st));
        uint64_t acked = 0, v;
        while (read(p[0], &v, sizeof v) == sizeof v)
            acked = v;
        close(p[0]);

        assert_int_equal(fx_open(f, NULL), 0);
        assert_int_equal(ahl_meta_imageset_get(f->m, f->ds, id, 0, &info, &err), 0);
        assert_true(info.set.latest_version >= acked);
        assert_string_equal(info.set.state, "ACTIVE");
        char *text = fx_metadata(f, id, 0);
        assert_non_null(text);
        char want[64];
        snprintf(want, sizeof want, "\"PatientName\":\"K^%llu\"",
                 (unsigned long long)info.set.latest_version);
        if (info.set.latest_version > 1 && !strstr(text, want))
            fail_msg("round %d: latest version %llu lacks its change", r,
                     (unsigned long long)info.set.latest_version);
        free(text);
        struct ahl_meta_check_stats cs;
        assert_int_equal(ahl_meta_check(f->m, NULL, NULL, &cs), 0);
        assert_int_equal(cs.versions, info.set.latest_version);
        print_message("round %d: %llu acknowledged, %llu stored\n", r, (unsigned long long)acked,
                      (unsigned long long)info.set.latest_version);
        fx_close(f);
    }
    fx_rmdir(f->dir);
    free(f);
}

#define BATCH_THREADS 4

struct ack {
    uint64_t set;
    uint64_t version;
};

struct bworker {
    pthread_t th;
    struct fx *f;
    char id[AHL_ID_LEN + 1];
    uint64_t version;
    unsigned set;
    int fd;        /* child: acknowledgements go here; -1: count only */
    unsigned left; /* -1 = until killed */
};

static void *bworker_run(void *p)
{
    struct bworker *w = p;
    struct ahl_err err;
    while (w->left) {
        char blob[128];
        snprintf(blob, sizeof blob, "{\"Patient\":{\"DICOM\":{\"PatientName\":\"K^%llu\"}}}",
                 (unsigned long long)w->version + 1);
        struct ahl_meta_update u = {
            .latest_version = w->version, .updatable = blob, .updatable_len = strlen(blob)};
        if (ahl_meta_update(w->f->m, w->f->ds, w->id, &u, NULL, &err) < 0)
            _exit(4);
        w->version++;
        struct ack a = {w->set, w->version};
        if (w->fd >= 0 && write(w->fd, &a, sizeof a) != sizeof a) /* < PIPE_BUF: atomic */
            _exit(5);
        if (w->left != (unsigned)-1)
            w->left--;
    }
    return NULL;
}

/* Starts one worker per set on f (versions read from the store); fd -1 for a bounded run. */
static void bworkers_start(struct bworker *w, struct fx *f, char ids[][AHL_ID_LEN + 1], int fd,
                           unsigned left)
{
    for (unsigned i = 0; i < BATCH_THREADS; i++) {
        struct ahl_meta_info info;
        struct ahl_err err;
        if (ahl_meta_imageset_get(f->m, f->ds, ids[i], 0, &info, &err) < 0)
            _exit(3);
        w[i] = (struct bworker){
            .f = f, .version = info.set.latest_version, .set = i, .fd = fd, .left = left};
        memcpy(w[i].id, ids[i], sizeof w[i].id);
        if (pthread_create(&w[i].th, NULL, bworker_run, &w[i]) != 0)
            _exit(6);
    }
}

static void test_kill9_batched(void **state)
{
    if (ahl_test_store_is_pg()) {
        print_message("skipped on PostgreSQL: it proves batches form through the SQLite backend's figures\n");
        skip();
    }
    (void)state;
    struct fx *f = fx_new(NULL);
    struct ahl_err err;
    struct ahl_meta_info info;
    assert_non_null(f);
    char ids[BATCH_THREADS][AHL_ID_LEN + 1];
    for (unsigned i = 0; i < BATCH_THREADS; i++) {
        json_t *doc = ahl_synth_doc(1, 20, 30 + i);
        assert_int_equal(ahl_meta_imageset_create(f->m, f->ds, doc, NULL, &info, &err), 0);
        json_decref(doc);
        memcpy(ids[i], info.set.id, sizeof ids[i]);
    }
    /* The workload forms batches: fewer COMMITs than updates. */
    struct bworker w[BATCH_THREADS];
    struct ahl_store_sqlite_stats s0, s1;
    assert_int_equal(ahl_store_sqlite_stats(f->store, &s0), 0);
    bworkers_start(w, f, ids, -1, 100);
    for (unsigned i = 0; i < BATCH_THREADS; i++)
        pthread_join(w[i].th, NULL);
    assert_int_equal(ahl_store_sqlite_stats(f->store, &s1), 0);
    assert_int_equal(s1.write_txs - s0.write_txs, 100 * BATCH_THREADS);
    assert_true(s1.commits - s0.commits < s1.write_txs - s0.write_txs);
    print_message("warm-up: %llu updates in %llu commits\n",
                  (unsigned long long)(s1.write_txs - s0.write_txs),
                  (unsigned long long)(s1.commits - s0.commits));
    fx_close(f);

    const char *e = getenv("AHL_CRASH_ROUNDS");
    int rounds = e ? atoi_r(e) : 6;
    srand((unsigned)time(NULL) ^ 0x5a5a);
    for (int r = 0; r < rounds; r++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            if (fx_open(f, NULL) < 0)
                _exit(3);
            bworkers_start(w, f, ids, p[1], (unsigned)-1);
            pthread_join(w[0].th, NULL); /* never returns: killed */
            _exit(7);
        }
        close(p[1]);
        struct timespec ts = {0, (long)(20 + rand() % 100) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        assert_true(WIFSIGNALED(st));
        uint64_t acked[BATCH_THREADS] = {0}, total = 0;
        struct ack a;
        while (read(p[0], &a, sizeof a) == sizeof a) {
            assert_true(a.set < BATCH_THREADS);
            if (a.version > acked[a.set])
                acked[a.set] = a.version;
            total++;
        }
        close(p[0]);

        assert_int_equal(fx_open(f, NULL), 0);
        uint64_t versions = 0;
        for (unsigned i = 0; i < BATCH_THREADS; i++) {
            assert_int_equal(ahl_meta_imageset_get(f->m, f->ds, ids[i], 0, &info, &err), 0);
            if (info.set.latest_version < acked[i])
                fail_msg("round %d: set %u acknowledged version %llu but stores only %llu", r, i,
                         (unsigned long long)acked[i], (unsigned long long)info.set.latest_version);
            assert_string_equal(info.set.state, "ACTIVE");
            char *text = fx_metadata(f, ids[i], 0);
            assert_non_null(text);
            char want[64];
            snprintf(want, sizeof want, "\"PatientName\":\"K^%llu\"",
                     (unsigned long long)info.set.latest_version);
            if (info.set.latest_version > 1 && !strstr(text, want))
                fail_msg("round %d: set %u: latest version %llu lacks its change", r, i,
                         (unsigned long long)info.set.latest_version);
            free(text);
            versions += info.set.latest_version;
        }
        struct ahl_meta_check_stats cs;
        assert_int_equal(ahl_meta_check(f->m, NULL, NULL, &cs), 0);
        assert_int_equal(cs.versions, versions);
        print_message("batched round %d: %llu acknowledged, %llu versions stored\n", r,
                      (unsigned long long)total, (unsigned long long)versions);
        fx_close(f);
    }
    fx_rmdir(f->dir);
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9),
        cmocka_unit_test(test_kill9_batched),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
