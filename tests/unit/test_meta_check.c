/* The integrity check finds damage: a sound database checks clean (API and `ahilite check`),
 * then one byte of one stored instance chunk is flipped in the database file and the check must
 * name that chunk and the image-set versions that need it, and `ahilite check` must exit 1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sys/wait.h>

#include "meta_fixture.h"
#include "base/codec.h"
#include "meta/synth.h"

struct found {
    uint8_t hash[AHL_SHA256_LEN];
    unsigned char *data;
    size_t len;
};

static int find_instance_chunk(void *ctx, const struct ahl_chunk *c)
{
    struct found *f = ctx;
    if (c->kind != AHL_CHUNK_JSON || c->ulen < 1000 || f->data)
        return 0;
    memcpy(f->hash, c->hash, AHL_SHA256_LEN);
    f->data = malloc(c->len);
    memcpy(f->data, c->data, c->len);
    f->len = c->len;
    return 0;
}

static unsigned char *find_bytes(unsigned char *hay, size_t n, const unsigned char *needle,
                                 size_t k)
{
    for (size_t i = 0; k <= n && i <= n - k; i++)
        if (hay[i] == needle[0] && !memcmp(hay + i, needle, k))
            return hay + i;
    return NULL;
}

struct lines {
    char text[8192];
    int n;
};

static void collect_line(void *ctx, const char *line)
{
    struct lines *l = ctx;
    size_t used = strlen(l->text);
    snprintf(l->text + used, sizeof l->text - used, "%s\n", line);
    l->n++;
}

/* Runs `ahilite check` when the test knows where the binary is: its exit status, or -1. */
static int run_cli_check(const char *dir)
{
    const char *bin = getenv("AHILITE_BIN");
    char cmd[1024];
    if (!bin || access(bin, X_OK) != 0)
        return -1;
    snprintf(cmd, sizeof cmd, "'%s' check --data-dir '%s' >/dev/null", bin, dir);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -2;
}

static void test_corrupt_byte_is_found(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    struct ahl_err err;
    struct ahl_meta_info info;
    assert_non_null(f);
    json_t *doc = ahl_synth_doc(1, 40, 9);
    assert_int_equal(ahl_meta_imageset_create(f->m, f->ds, doc, NULL, &info, &err), 0);
    json_decref(doc);
    for (uint64_t v = 1; v <= 3; v++) {
        const char *p = "{\"Patient\":{\"DICOM\":{\"PatientName\":\"CHECK^ME\"}}}";
        struct ahl_meta_update u = {
            .latest_version = v, .updatable = p, .updatable_len = strlen(p)};
        assert_int_equal(ahl_meta_update(f->m, f->ds, info.set.id, &u, NULL, &err), 0);
    }
    struct ahl_meta_check_stats st;
    assert_int_equal(ahl_meta_check(f->m, NULL, NULL, &st), 0);
    assert_int_equal(st.versions, 4);
    assert_int_equal(st.problems, 0);
    struct found fd = {{0}, NULL, 0};
    struct ahl_store_tx *tx;
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    assert_int_equal(ahl_store_chunk_scan(tx, find_instance_chunk, &fd), 0);
    ahl_store_rollback(tx);
    assert_non_null(fd.data);
    /* Closing checkpoints the WAL into the database file. */
    fx_close(f);
    int cli = run_cli_check(f->dir);
    assert_true(cli == -1 || cli == 0);

    char path[256];
    snprintf(path, sizeof path, "%s/%s", f->dir, AHL_STORE_SQLITE_FILE);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    unsigned char *file = malloc((size_t)size);
    fseek(fp, 0, SEEK_SET);
    assert_int_equal(fread(file, 1, (size_t)size, fp), (size_t)size);
    unsigned char *at = find_bytes(file, (size_t)size, fd.data, fd.len);
    assert_non_null(at);
    long off = (long)(at - file) + (long)fd.len / 2;
    fseek(fp, off, SEEK_SET);
    fputc(file[off] ^ 0x20, fp);
    fclose(fp);
    free(file);

    assert_int_equal(fx_open(f, NULL), 0);
    struct lines l;
    memset(&l, 0, sizeof l);
    assert_int_equal(ahl_meta_check(f->m, collect_line, &l, &st), AHL_ECORRUPT);
    char hex[AHL_SHA256_HEX_LEN + 1];
    ahl_hex_encode(fd.hash, AHL_SHA256_LEN, hex);
    char want[128];
    snprintf(want, sizeof want, "chunk %s", hex);
    if (!strstr(l.text, want))
        fail_msg("report does not name chunk %s:\n%s", hex, l.text);
    /* Every version shares that instance: each is reported with where it needs it. */
    for (int v = 1; v <= 4; v++) {
        snprintf(want, sizeof want,
                 "version %d: Study.Series['1.2.826.0.1.3680043.10.9.2.1']"
                 ".Instances['1.2.826.0.1.3680043.10.9.3.1.",
                 v);
        if (!strstr(l.text, want))
            fail_msg("report lacks version %d:\n%s", v, l.text);
    }
    assert_true(strstr(l.text, "which is damaged") != NULL);
    fx_close(f);
    cli = run_cli_check(f->dir);
    assert_true(cli == -1 || cli == 1);
    free(fd.data);
    fx_rmdir(f->dir);
    free(f);
}

/* An image-set row pointing at a version that was never written is reported too. */
static void test_missing_version_row(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    struct ahl_err err;
    struct ahl_meta_info info;
    assert_non_null(f);
    json_t *doc = ahl_synth_doc(1, 3, 10);
    assert_int_equal(ahl_meta_imageset_create(f->m, f->ds, doc, NULL, &info, &err), 0);
    json_decref(doc);
    struct ahl_store_tx *tx;
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    info.set.latest_version = 7;
    assert_int_equal(ahl_store_imageset_put(tx, &info.set, false), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
    struct lines l;
    memset(&l, 0, sizeof l);
    struct ahl_meta_check_stats st;
    assert_int_equal(ahl_meta_check(f->m, collect_line, &l, &st), AHL_ECORRUPT);
    assert_int_equal(st.problems, 1);
    assert_non_null(strstr(l.text, "latest version 7 has no version row"));
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corrupt_byte_is_found),
        cmocka_unit_test(test_missing_version_row),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
