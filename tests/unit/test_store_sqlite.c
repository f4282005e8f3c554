/* The SQLite backend through the storage interface: records round-trip, paging, tags and the scan
 * of every tag, the image-set compare-and-set, INSERT OR IGNORE chunks, listing a set's frame
 * rows, job listing newest first, a reopened database keeping its schema version and data, and a
 * WAL that a long reader made grow being truncated once the reader is gone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define AHL_FIXTURE_STORE_ONLY 1
#include "meta_fixture.h"

static int count_ds(void *ctx, const struct ahl_datastore_rec *r)
{
    (void)r;
    (*(int *)ctx)++;
    return 0;
}

static int last_ds(void *ctx, const struct ahl_datastore_rec *r)
{
    memcpy(ctx, r->id, AHL_ID_LEN + 1);
    return 0;
}

static int tag_concat(void *ctx, const char *k, const char *v)
{
    char *s = ctx;
    size_t n = strlen(s);
    snprintf(s + n, 256 - n, "%s=%s;", k, v);
    return 0;
}

static int tag_scan_concat(void *ctx, const char *arn, const char *k, const char *v)
{
    char *s = ctx;
    size_t n = strlen(s);
    snprintf(s + n, 256 - n, "%s:%s=%s;", arn, k, v);
    return 0;
}

static int frame_concat(void *ctx, const struct ahl_frame_rec *r)
{
    char *s = ctx;
    size_t n = strlen(s);
    snprintf(s + n, 256 - n, "%.2s/%s;", r->frame_id, r->transfer_syntax);
    return 0;
}

static int job_order(void *ctx, const struct ahl_job_rec *r)
{
    char *s = ctx;
    size_t n = strlen(s);
    snprintf(s + n, 256 - n, "%s;", r->name);
    return 0;
}

static void test_records(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    assert_non_null(f);
    struct ahl_store_tx *tx;
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    /* Data stores: 5 more, paged 2 at a time. */
    for (int i = 0; i < 5; i++) {
        struct ahl_datastore_rec d;
        memset(&d, 0, sizeof d);
        snprintf(d.id, sizeof d.id, "%032x", 100 + i);
        snprintf(d.name, sizeof d.name, "ds%d", i);
        snprintf(d.status, sizeof d.status, i % 2 ? "DELETED" : "ACTIVE");
        snprintf(d.kms_key_arn, sizeof d.kms_key_arn, "arn:aws:kms:us-east-1:123456789012:key/x");
        assert_int_equal(ahl_store_datastore_put(tx, &d, true), 0);
        assert_int_equal(ahl_store_datastore_put(tx, &d, true), AHL_ECONFLICT);
    }
    int n = 0;
    char after[AHL_ID_LEN + 1] = "";
    assert_int_equal(ahl_store_datastore_list(tx, NULL, "", 2, last_ds, after), 0);
    assert_int_equal(ahl_store_datastore_list(tx, NULL, after, 100, count_ds, &n), 0);
    assert_int_equal(n, 4);
    n = 0;
    assert_int_equal(ahl_store_datastore_list(tx, "ACTIVE", NULL, 100, count_ds, &n), 0);
    assert_int_equal(n, 4); /* the fixture's and three of the five */
    struct ahl_datastore_rec got;
    assert_int_equal(ahl_store_datastore_get(tx, "00000000000000000000000000000066", &got), 0);
    assert_string_equal(got.name, "ds2");
    assert_string_equal(got.kms_key_arn, "arn:aws:kms:us-east-1:123456789012:key/x");
    assert_int_equal(ahl_store_datastore_delete(tx, got.id), 0);
    assert_int_equal(ahl_store_datastore_get(tx, got.id, &got), AHL_ENOTFOUND);

    /* Tags. */
    char tags[256] = "";
    assert_int_equal(ahl_store_tag_put(tx, "arn:x", "b", "2"), 0);
    assert_int_equal(ahl_store_tag_put(tx, "arn:x", "a", "1"), 0);
    assert_int_equal(ahl_store_tag_put(tx, "arn:x", "b", "3"), 0);
    assert_int_equal(ahl_store_tag_put(tx, "arn:y", "c", ""), 0);
    assert_int_equal(ahl_store_tag_list(tx, "arn:x", tag_concat, tags), 0);
    assert_string_equal(tags, "a=1;b=3;");
    assert_int_equal(ahl_store_tag_delete(tx, "arn:x", "a"), 0);
    assert_int_equal(ahl_store_tag_delete_all(tx, "arn:y"), 0);
    tags[0] = '\0';
    assert_int_equal(ahl_store_tag_list(tx, "arn:y", tag_concat, tags), 0);
    assert_string_equal(tags, "");
    /* The scan sees every ARN's tags, ordered by ARN then key. */
    assert_int_equal(ahl_store_tag_put(tx, "arn:w", "z", "9"), 0);
    assert_int_equal(ahl_store_tag_scan(tx, tag_scan_concat, tags), 0);
    assert_string_equal(tags, "arn:w:z=9;arn:x:b=3;");
    assert_int_equal(ahl_store_tag_delete_all(tx, "arn:w"), 0);

    /* Image sets: compare-and-set on the latest version. */
    struct ahl_imageset_rec s;
    memset(&s, 0, sizeof s);
    snprintf(s.id, sizeof s.id, "%032x", 9);
    memcpy(s.datastore_id, f->ds, sizeof s.datastore_id);
    snprintf(s.state, sizeof s.state, "ACTIVE");
    snprintf(s.workflow_status, sizeof s.workflow_status, "CREATED");
    s.latest_version = 1;
    assert_int_equal(ahl_store_imageset_put(tx, &s, true), 0);
    s.latest_version = 2;
    assert_int_equal(ahl_store_imageset_advance(tx, &s, 1), 0);
    s.latest_version = 3;
    assert_int_equal(ahl_store_imageset_advance(tx, &s, 1), AHL_ECONFLICT);
    struct ahl_imageset_rec g;
    assert_int_equal(ahl_store_imageset_get(tx, f->ds, s.id, &g), 0);
    assert_int_equal(g.latest_version, 2);
    assert_int_equal(ahl_store_imageset_get(tx, "ffffffffffffffffffffffffffffffff", s.id, &g),
                     AHL_ENOTFOUND);
    uint64_t cnt;
    assert_int_equal(ahl_store_datastore_count_imagesets(tx, f->ds, &cnt), 0);
    assert_int_equal(cnt, 1);

    /* Chunks: the same hash twice is stored once. */
    struct ahl_chunk c = {.kind = AHL_CHUNK_MAP, .ulen = 3, .crc = 7, .data = "abc", .len = 3};
    memset(c.hash, 0xab, sizeof c.hash);
    assert_int_equal(ahl_store_chunk_put(tx, &c), 0);
    c.data = "xyz";
    assert_int_equal(ahl_store_chunk_put(tx, &c), 0);
    struct ahl_buf data;
    struct ahl_chunk out;
    ahl_buf_init(&data, 1024);
    assert_int_equal(ahl_store_chunk_get(tx, c.hash, &out, &data), 0);
    assert_memory_equal(out.data, "abc", 3);
    assert_int_equal(out.crc, 7);
    ahl_buf_release(&data);

    /* The frame index: a set's rows listed by frame id, another set's left out. */
    struct ahl_frame_rec fr;
    memset(&fr, 0, sizeof fr);
    memcpy(fr.imageset_id, s.id, sizeof fr.imageset_id);
    snprintf(fr.frame_id, sizeof fr.frame_id, "%s", "bb000000000000000000000000000000");
    snprintf(fr.transfer_syntax, sizeof fr.transfer_syntax, "1.2.840.10008.1.2.1");
    assert_int_equal(ahl_store_frame_put(tx, &fr), 0);
    fr.frame_id[0] = fr.frame_id[1] = 'a';
    fr.transfer_syntax[0] = '\0';
    assert_int_equal(ahl_store_frame_put(tx, &fr), 0);
    snprintf(fr.imageset_id, sizeof fr.imageset_id, "%032x", 10);
    fr.frame_id[0] = fr.frame_id[1] = 'c';
    assert_int_equal(ahl_store_frame_put(tx, &fr), 0);
    char frames[256] = "";
    assert_int_equal(ahl_store_frame_list(tx, s.id, frame_concat, frames), 0);
    assert_string_equal(frames, "aa/;bb/1.2.840.10008.1.2.1;");

    /* Jobs, newest first, paged by id. */
    for (int i = 0; i < 3; i++) {
        struct ahl_job_rec j;
        memset(&j, 0, sizeof j);
        snprintf(j.id, sizeof j.id, "job%d", i);
        memcpy(j.datastore_id, f->ds, sizeof j.datastore_id);
        snprintf(j.name, sizeof j.name, "n%d", i);
        snprintf(j.status, sizeof j.status, i == 1 ? "COMPLETED" : "SUBMITTED");
        j.submitted_at_ms = 1000 + i;
        assert_int_equal(ahl_store_job_put(tx, &j, true), 0);
    }
    char order[256] = "";
    assert_int_equal(ahl_store_job_list(tx, f->ds, NULL, NULL, 10, job_order, order), 0);
    assert_string_equal(order, "n2;n1;n0;");
    order[0] = '\0';
    assert_int_equal(ahl_store_job_list(tx, f->ds, NULL, "job2", 10, job_order, order), 0);
    assert_string_equal(order, "n1;n0;");
    order[0] = '\0';
    assert_int_equal(ahl_store_job_list(tx, f->ds, "SUBMITTED", NULL, 10, job_order, order), 0);
    assert_string_equal(order, "n2;n0;");
    assert_int_equal(ahl_store_commit(tx), 0);

    /* Rolled-back writes vanish; committed ones survive a reopen. */
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    assert_int_equal(ahl_store_tag_put(tx, "arn:z", "k", "v"), 0);
    ahl_store_rollback(tx);
    fx_close(f);
    assert_int_equal(fx_open(f, NULL), 0);
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    tags[0] = '\0';
    assert_int_equal(ahl_store_tag_list(tx, "arn:z", tag_concat, tags), 0);
    assert_string_equal(tags, "");
    assert_int_equal(ahl_store_tag_list(tx, "arn:x", tag_concat, tags), 0);
    assert_string_equal(tags, "b=3;");
    assert_int_equal(ahl_store_imageset_get(tx, NULL, s.id, &g), 0);
    assert_int_equal(g.latest_version, 2);
    ahl_store_rollback(tx);
    fx_free(f);
}

/* Writes one chunk of 100 KB of distinct bytes (25 WAL frames), named by n. */
static void put_big_chunk(struct ahl_store *store, uint32_t n)
{
    static uint8_t data[100 * 1024];
    for (size_t i = 0; i < sizeof data; i += 4) {
        uint32_t x = (n * 2654435761u) ^ (uint32_t)(i * 40503u);
        memcpy(data + i, &x, 4);
    }
    struct ahl_chunk c = {.kind = AHL_CHUNK_MAP, .data = data, .len = sizeof data};
    memcpy(c.hash, &n, sizeof n);
    c.hash[31] = 0xAB;
    c.ulen = sizeof data;
    struct ahl_store_tx *tx;
    assert_int_equal(ahl_store_begin(store, true, &tx), 0);
    assert_int_equal(ahl_store_chunk_put(tx, &c), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
}

static off_t wal_size(const struct fx *f)
{
    char path[128];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s-wal", f->dir, AHL_STORE_SQLITE_FILE);
    return stat(path, &st) == 0 ? st.st_size : 0;
}

/* A reader held open while ~48 MB are written keeps every checkpoint from finishing, so the WAL
 * grows past its bound; once the reader is gone, the next checkpoint must truncate the WAL (a
 * restart alone would leave the file at journal_size_limit, 64 MB). */
static void test_wal_truncated_after_long_reader(void **state)
{
    if (ahl_test_store_is_pg()) {
        print_message("skipped on PostgreSQL: SQLite's WAL\n");
        skip();
    }
    (void)state;
    struct fx *f = fx_new(NULL);
    assert_non_null(f);
    struct ahl_store_tx *rd;
    struct ahl_datastore_rec d;
    assert_int_equal(ahl_store_begin(f->store, false, &rd), 0);
    assert_int_equal(ahl_store_datastore_get(rd, f->ds, &d), 0); /* takes the snapshot */
    uint32_t n = 0;
    for (; n < 480; n++)
        put_big_chunk(f->store, n);
    assert_true(wal_size(f) > 40 * 1024 * 1024);
    ahl_store_rollback(rd);
    /* Writes go on; within 40 MB more the WAL must have been truncated. */
    off_t least = wal_size(f);
    for (uint32_t more = 0; more < 400 && least >= 8 * 1024 * 1024; more++) {
        put_big_chunk(f->store, n++);
        off_t now = wal_size(f);
        if (now < least)
            least = now;
    }
    assert_true(least < 8 * 1024 * 1024);
    fx_free(f);
}

static int has_file(const struct fx *f, const char *suffix)
{
    char path[128];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s%s", f->dir, AHL_STORE_SQLITE_FILE, suffix);
    return stat(path, &st) == 0;
}

/* The read-only open (what `ahilite migrate` reads its source with) refuses a database another
 * process has open, and one whose WAL holds writes of a process killed before closing it; once
 * a writable open has copied those in, it reads everything, writes nothing (no -wal or -shm
 * file appears) and fails every write with AHL_ENOSPC. */
static void test_read_only_open(void **state)
{
    (void)state;
    if (ahl_test_store_is_pg()) {
        print_message("skipped on PostgreSQL: the read-only open is the SQLite file's\n");
        skip();
    }
    struct fx *f = fx_new(NULL);
    assert_non_null(f);
    fx_close(f);
    struct ahl_store *ro = NULL;
    struct ahl_store_tx *tx;
    assert_int_equal(ahl_store_open_sqlite_read_only("/nonexistent-ahl-dir", 1, &ro),
                     AHL_ENOTFOUND);

    int to_child[2], to_parent[2];
    assert_int_equal(pipe(to_child), 0);
    assert_int_equal(pipe(to_parent), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* A writer that is killed while it has the database open. */
        struct ahl_store *w = NULL;
        char c = 'x';
        if (ahl_store_open_sqlite(f->dir, 1, &w) < 0 || ahl_store_begin(w, true, &tx) < 0 ||
            ahl_store_tag_put(tx, "arn:k", "killed", "yes") < 0 || ahl_store_commit(tx) < 0)
            _exit(1);
        if (write(to_parent[1], &c, 1) != 1 || read(to_child[0], &c, 1) != 1)
            _exit(1);
        raise(SIGKILL);
        _exit(1);
    }
    char c;
    assert_int_equal(read(to_parent[0], &c, 1), 1);
    assert_int_equal(ahl_store_open_sqlite_read_only(f->dir, 1, &ro), AHL_ECONFLICT);
    assert_int_equal(write(to_child[1], "k", 1), 1);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    close(to_child[0]);
    close(to_child[1]);
    close(to_parent[0]);
    close(to_parent[1]);
    assert_true(has_file(f, "-wal"));
    assert_int_equal(ahl_store_open_sqlite_read_only(f->dir, 1, &ro), AHL_ECONFLICT);

    /* A writable open and close copies the WAL in and removes it. */
    assert_int_equal(fx_open(f, NULL), 0);
    fx_close(f);
    assert_false(has_file(f, "-wal"));
    assert_int_equal(ahl_store_open_sqlite_read_only(f->dir, 2, &ro), 0);
    char tags[256] = "";
    struct ahl_datastore_rec d;
    assert_int_equal(ahl_store_begin(ro, false, &tx), 0);
    assert_int_equal(ahl_store_datastore_get(tx, f->ds, &d), 0);
    assert_int_equal(ahl_store_tag_list(tx, "arn:k", tag_concat, tags), 0);
    assert_string_equal(tags, "killed=yes;");
    ahl_store_rollback(tx);
    assert_int_equal(ahl_store_begin(ro, true, &tx), 0);
    assert_int_equal(ahl_store_tag_put(tx, "arn:k", "more", "no"), AHL_ENOSPC);
    ahl_store_rollback(tx);
    assert_false(has_file(f, "-wal"));
    assert_false(has_file(f, "-shm"));
    ahl_store_close(ro);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records),
        cmocka_unit_test(test_wal_truncated_after_long_reader),
        cmocka_unit_test(test_read_only_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
