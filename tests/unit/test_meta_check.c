/* links: synth */
/* The integrity check finds damage: a sound database checks clean (API and `ahilite check`, with
 * a frame file for every frame listed), then one byte of one stored instance chunk is flipped in
 * the database file and the check must name that chunk and the image-set versions that need it,
 * and `ahilite check` must exit 1. The frames every version lists are checked: a missing
 * frame-index row is reported, and each distinct frame goes to the verifier once, its damage
 * reported with the set, version and place. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sys/wait.h>

#include "meta_fixture.h"
#include "base/codec.h"
#include "synth/synth.h"

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

/* Gives every instance of doc a frame file under dir/frames: its ImageFrames ID becomes the
 * content address of a few bytes of its own (the ID a stored frame of .4.202 has) and its
 * FrameSizeInBytes their length, so that `ahilite check` finds every frame sound. */
static void give_real_frames(json_t *doc, const char *dir)
{
    const char *skey, *ikey;
    json_t *series, *inst;
    json_object_foreach(json_object_get(json_object_get(doc, "Study"), "Series"), skey, series)
    {
        json_object_foreach(json_object_get(series, "Instances"), ikey, inst)
        {
            static const char ts[] = "1.2.840.10008.1.2.4.202";
            uint8_t inner[AHL_SHA256_LEN], outer[AHL_SHA256_LEN], buf[sizeof ts + AHL_SHA256_LEN];
            char bytes[300], id[AHL_SHA256_HEX_LEN + 1], path[600];
            int n = snprintf(bytes, sizeof bytes, "the frame of %s", ikey);
            ahl_sha256(bytes, (size_t)n, inner);
            memcpy(buf, ts, sizeof ts); /* with its NUL */
            memcpy(buf + sizeof ts, inner, AHL_SHA256_LEN);
            ahl_sha256(buf, sizeof buf, outer);
            ahl_hex_encode(outer, 16, id);
            json_t *fr = json_array_get(json_object_get(inst, "ImageFrames"), 0);
            json_object_set_new(fr, "ID", json_string(id));
            json_object_set_new(fr, "FrameSizeInBytes", json_integer(n));
            snprintf(path, sizeof path, "mkdir -p '%s/frames/%.2s/%.2s'", dir, id, id + 2);
            assert_int_equal(system(path), 0);
            snprintf(path, sizeof path, "%s/frames/%.2s/%.2s/%s", dir, id, id + 2, id);
            FILE *fp = fopen(path, "wb");
            assert_non_null(fp);
            assert_int_equal(fwrite(bytes, 1, (size_t)n, fp), (size_t)n);
            fclose(fp);
        }
    }
}

static void test_corrupt_byte_is_found(void **state)
{
    if (ahl_test_store_is_pg()) {
        print_message("skipped on PostgreSQL: it damages the SQLite file\n");
        skip();
    }
    (void)state;
    struct fx *f = fx_new(NULL);
    struct ahl_err err;
    struct ahl_meta_info info;
    assert_non_null(f);
    json_t *doc = ahl_synth_doc(1, 40, 9);
    give_real_frames(doc, f->dir);
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
    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf '%s'", f->dir);
    assert_int_equal(system(rm), 0);
    free(f);
}

/* A verifier that finds frame `bad` damaged and every other frame sound, counting its calls. */
struct fake_frames {
    const char *bad;
    unsigned calls, bad_calls;
};

static int fake_verify(void *ctx, const struct ahl_meta_frame_ref *ref, char *problem, size_t cap)
{
    struct fake_frames *ff = ctx;
    ff->calls++;
    assert_string_equal(ref->stored_transfer_syntax, "1.2.840.10008.1.2.4.202");
    assert_int_equal(ref->size, 524288);
    if (strcmp(ref->frame_id, ff->bad) != 0)
        return 0;
    ff->bad_calls++;
    snprintf(problem, cap, "its bytes are not what the id names");
    return AHL_ECORRUPT;
}

static void test_frames_are_checked(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    struct ahl_err err;
    struct ahl_meta_info info;
    assert_non_null(f);
    json_t *doc = ahl_synth_doc(1, 3, 11);
    assert_int_equal(ahl_meta_imageset_create(f->m, f->ds, doc, NULL, &info, &err), 0);
    json_decref(doc);
    for (uint64_t v = 1; v <= 2; v++) {
        const char *p = "{\"Patient\":{\"DICOM\":{\"PatientName\":\"CHECK^FRAMES\"}}}";
        struct ahl_meta_update u = {
            .latest_version = v, .updatable = p, .updatable_len = strlen(p)};
        assert_int_equal(ahl_meta_update(f->m, f->ds, info.set.id, &u, NULL, &err), 0);
    }
    json_t *inst = ahl_synth_instance(11, 0, 1);
    char bad[33];
    snprintf(bad, sizeof bad, "%s",
             json_string_value(
                 json_object_get(json_array_get(json_object_get(inst, "ImageFrames"), 0), "ID")));
    json_decref(inst);

    /* Three distinct frames over three versions: each verified once; the damaged one reported
     * once, at the first version listing it, with where it is listed. */
    struct fake_frames ff = {.bad = bad};
    struct ahl_meta_check_opts opts = {.verify_frame = fake_verify, .verify_ctx = &ff};
    struct ahl_meta_check_stats st;
    struct lines l;
    memset(&l, 0, sizeof l);
    assert_int_equal(ahl_meta_check_with(f->m, &opts, collect_line, &l, &st), AHL_ECORRUPT);
    assert_int_equal(ff.calls, 3);
    assert_int_equal(ff.bad_calls, 1);
    assert_int_equal(st.frames, 2);
    assert_int_equal(st.problems, 1);
    char want[512];
    snprintf(want, sizeof want,
             "image set %s version 1: Study.Series['1.2.826.0.1.3680043.10.11.2.1']"
             ".Instances['1.2.826.0.1.3680043.10.11.3.1.2'].ImageFrames[0] frame %s: its bytes "
             "are not what the id names",
             info.set.id, bad);
    if (!strstr(l.text, want))
        fail_msg("report lacks\n%s\n:\n%s", want, l.text);

    /* The frame index loses the set's rows: every frame is reported as unservable, once. */
    struct ahl_store_tx *tx;
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    assert_int_equal(ahl_store_frame_delete_set(tx, info.set.id), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
    memset(&l, 0, sizeof l);
    assert_int_equal(ahl_meta_check(f->m, collect_line, &l, &st), AHL_ECORRUPT);
    if (st.problems != 3)
        fail_msg("%llu problems:\n%s", (unsigned long long)st.problems, l.text);
    assert_int_equal(st.frame_refs, 3);
    snprintf(want, sizeof want,
             "lists frame %s, but the frame index has no row for it (GetImageFrame answers "
             "that it does not exist)",
             bad);
    if (!strstr(l.text, want))
        fail_msg("report lacks\n%s\n:\n%s", want, l.text);
    fx_free(f);
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
        cmocka_unit_test(test_frames_are_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
