/* Crash safety: a child process applies updates as fast as it can and reports each acknowledged
 * version through a pipe; the parent kills it with SIGKILL at a random moment, reopens the data
 * directory and checks that every acknowledged version is there, the latest version is readable
 * and holds its own change, and `ahl_meta_check` finds no damage. Repeated several times on the
 * same database (AHL_CRASH_ROUNDS, default 6). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "meta_fixture.h"
#include "meta/synth.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
