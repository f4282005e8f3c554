/* Model-based test of the engine: random sequences of attribute updates, removals (attributes,
 * instances, series), forced re-keys, reverts, imports and rejected requests are applied both to
 * the engine and to a naive reference that keeps every version as a whole jansson document.
 * After every step the new version's GetImageSetMetadata stream must inflate to exactly the
 * reference's serialisation; every CHECK_EVERY steps and at the end, every version is
 * compared. After every step the stored search row (kept up to date incrementally by updates)
 * must equal the row computed afresh from the latest version. AHL_MODEL_STEPS (default 10000)
 * and AHL_MODEL_SEED change the run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "meta_fixture.h"
#include "meta/engine_internal.h"

#define CHECK_EVERY 5000

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static unsigned uid_counter;

static void new_uid(char out[64], const char *prefix)
{
    snprintf(out, 64, "%s.%u", prefix, ++uid_counter);
}

static json_t *small_instance(const char *uid, unsigned n)
{
    char num[16], id[33];
    snprintf(num, sizeof num, "%u", n);
    snprintf(id, sizeof id, "%032x", n * 2654435761u);
    return json_pack("{s:{s:s,s:s,s:s},s:{},s:s,s:[{s:s,s:i}]}", "DICOM", "SOPInstanceUID", uid,
                     "InstanceNumber", num, "SOPClassUID", "1.2.840.10008.5.1.4.1.1.2", "DICOMVRs",
                     "StoredTransferSyntaxUID", "1.2.840.10008.1.2.4.202", "ImageFrames", "ID", id,
                     "FrameSizeInBytes", 1024);
}

static json_t *initial_doc(void)
{
    json_t *series = json_object();
    json_t *doc =
        json_pack("{s:{s:{s:s,s:s}},s:{s:{s:s,s:s},s:o}}", "Patient", "DICOM", "PatientName",
                  "MODEL^TEST", "PatientID", "M1", "Study", "DICOM", "StudyInstanceUID",
                  "1.2.826.0.1.9.1", "StudyDescription", "MODEL", "Series", series);
    unsigned sizes[2] = {70, 3};
    for (unsigned s = 0; s < 2; s++) {
        char suid[64];
        new_uid(suid, "1.2.826.0.1.9.2");
        json_t *inst = json_object();
        json_object_set_new(series, suid,
                            json_pack("{s:{s:s,s:s},s:o}", "DICOM", "SeriesInstanceUID", suid,
                                      "Modality", "CT", "Instances", inst));
        for (unsigned i = 0; i < sizes[s]; i++) {
            char iuid[64];
            new_uid(iuid, "1.2.826.0.1.9.3");
            json_object_set_new(inst, iuid, small_instance(iuid, i + 1));
        }
    }
    return doc;
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A node with the map child_key moved last and the map's keys sorted (recursively for Series). */
static json_t *canon_node(json_t *node, const char *child_key, const char *grandchild)
{
    json_t *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(node, k, v)
    {
        if (strcmp(k, child_key) != 0)
            json_object_set(out, k, v);
    }
    json_t *map = json_object_get(node, child_key);
    size_t n = json_object_size(map), i = 0;
    const char **keys = malloc((n ? n : 1) * sizeof *keys);
    json_object_foreach(map, k, v)
    {
        keys[i++] = k;
    }
    qsort(keys, n, sizeof *keys, cmp_key);
    json_t *sorted = json_object();
    for (i = 0; i < n; i++) {
        json_t *c = json_object_get(map, keys[i]);
        json_object_set_new(sorted, keys[i],
                            grandchild ? canon_node(c, grandchild, NULL) : json_incref(c));
    }
    free(keys);
    json_object_set_new(out, child_key, sorted);
    return out;
}

static char *canon_text(json_t *doc, const char *ds, const char *id)
{
    json_t *c = json_object();
    json_object_set_new(c, "SchemaVersion", json_string("1.1"));
    json_object_set_new(c, "DatastoreID", json_string(ds));
    json_object_set_new(c, "ImageSetID", json_string(id));
    json_object_set(c, "Patient", json_object_get(doc, "Patient"));
    json_object_set_new(c, "Study",
                        canon_node(json_object_get(doc, "Study"), "Series", "Instances"));
    struct ahl_buf b;
    ahl_buf_init(&b, AHL_BUF_UNLIMITED);
    assert_int_equal(ahl_json_write(c, &b), 0);
    json_decref(c);
    return ahl_buf_detach(&b, NULL);
}

/* A random key of an object (NULL when empty). */
static const char *pick(json_t *obj)
{
    size_t n = json_object_size(obj);
    if (!n)
        return NULL;
    size_t want = rnd((uint32_t)n), i = 0;
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        if (i++ == want)
            return k;
    }
    return NULL;
}

static json_t *series_of(json_t *doc)
{
    return json_object_get(json_object_get(doc, "Study"), "Series");
}

struct model {
    struct fx *f;
    char id[AHL_ID_LEN + 1];
    json_t *cur;  /* the reference's latest document */
    char **texts; /* canonical text of each version, [1..nver] */
    size_t nver;
};

static void record(struct model *md)
{
    md->texts = realloc(md->texts, (md->nver + 2) * sizeof *md->texts);
    md->texts[++md->nver] = canon_text(md->cur, md->f->ds, md->id);
}

static void compare_version(struct model *md, uint64_t v, size_t step)
{
    char *got = fx_metadata(md->f, md->id, v);
    if (!got || strcmp(got, md->texts[v]) != 0)
        fail_msg("step %zu: version %llu differs from the reference\n got: %.300s\nwant: %.300s",
                 step, (unsigned long long)v, got ? got : "(none)", md->texts[v]);
    free(got);
}

/* The stored search row against ahl__search_row of the latest version, field by field. */
static void compare_search_row(struct model *md, size_t step)
{
    struct ahl_store_tx *tx;
    struct ahl_imageset_rec set;
    struct ahl_version_rec ver;
    struct ahl_search_row got, want;
    assert_int_equal(ahl_store_begin(md->f->store, false, &tx), 0);
    assert_int_equal(ahl_store_imageset_get(tx, md->f->ds, md->id, &set), 0);
    assert_int_equal(ahl_store_version_get(tx, md->id, set.latest_version, &ver), 0);
    assert_int_equal(ahl_store_search_get(tx, md->id, &got), 0);
    assert_int_equal(ahl__search_row(md->f->m, tx, NULL, ver.root, &set, &want), 0);
    ahl_store_rollback(tx);
#define SAME_STR(fld)                                                                         \
    if (strcmp(got.fld, want.fld) != 0)                                                       \
        fail_msg("step %zu: search row %s is '%s', the latest version says '%s'", step, #fld, \
                 got.fld, want.fld);
#define SAME_INT(fld)                                                                         \
    if (got.fld != want.fld)                                                                  \
        fail_msg("step %zu: search row %s is %lld, the latest version says %lld", step, #fld, \
                 (long long)got.fld, (long long)want.fld);
    SAME_STR(imageset_id)
    SAME_STR(datastore_id)
    SAME_INT(is_primary)
    SAME_INT(version)
    SAME_INT(created_at_ms)
    SAME_INT(updated_at_ms)
    SAME_STR(patient_id)
    SAME_STR(patient_name)
    SAME_STR(patient_birth_date)
    SAME_STR(patient_sex)
    SAME_STR(study_instance_uid)
    SAME_STR(study_id)
    SAME_STR(study_description)
    SAME_STR(accession_number)
    SAME_STR(study_date)
    SAME_STR(study_time)
    SAME_STR(series_instance_uid)
    SAME_STR(modality)
    SAME_STR(body_part_examined)
    SAME_INT(has_series_number)
    SAME_INT(series_number)
    SAME_INT(number_of_series)
    SAME_INT(number_of_instances)
#undef SAME_STR
#undef SAME_INT
}

static int do_update(struct model *md, const char *upd, const char *rem, bool force,
                     uint64_t latest, uint64_t revert, struct ahl_err *err)
{
    struct ahl_meta_update u = {
        .latest_version = latest,
        .force = force,
        .updatable = upd,
        .updatable_len = upd ? strlen(upd) : 0,
        .removable = rem,
        .removable_len = rem ? strlen(rem) : 0,
        .revert_to_version = revert,
    };
    return ahl_meta_update(md->f->m, md->f->ds, md->id, &u, NULL, err);
}

static char *dump(json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    return s;
}

static void step(struct model *md, size_t n)
{
    json_t *series = series_of(md->cur);
    const char *suid = pick(series);
    json_t *snode = json_object_get(series, suid);
    json_t *imap = json_object_get(snode, "Instances");
    const char *iuid = pick(imap);
    json_t *inode = iuid ? json_object_get(imap, iuid) : NULL;
    char *upd = NULL, *rem = NULL, val[64], nu[64];
    bool force = false, expect_ok = true;
    int expect_rc = 0;
    uint64_t revert = 0, latest = md->nver;
    struct ahl_err err;
    uint32_t op = rnd(100);
    snprintf(val, sizeof val, "V%u", rnd(1000000));
    json_t *pd = json_object_get(json_object_get(md->cur, "Patient"), "DICOM");
    json_t *sd = json_object_get(json_object_get(md->cur, "Study"), "DICOM");

    if (op < 15) { /* Patient attribute */
        const char *k = rnd(2) ? "PatientName" : "PatientComments";
        upd =
            dump(json_pack("{s:f,s:{s:{s:s}}}", "SchemaVersion", 1.1, "Patient", "DICOM", k, val));
        json_object_set_new(pd, k, json_string(val));
    } else if (op < 25) { /* Study attribute */
        upd = dump(json_pack("{s:{s:{s:s}}}", "Study", "DICOM", "StudyDescription", val));
        json_object_set_new(sd, "StudyDescription", json_string(val));
    } else if (op < 33) { /* Series attribute */
        upd = dump(json_pack("{s:{s:{s:{s:{s:s}}}}}", "Study", "Series", suid, "DICOM",
                             "SeriesDescription", val));
        json_object_set_new(json_object_get(snode, "DICOM"), "SeriesDescription", json_string(val));
    } else if (op < 45 && inode) { /* Instance attribute */
        upd = dump(json_pack("{s:{s:{s:{s:{s:{s:{s:s}}}}}}}", "Study", "Series", suid, "Instances",
                             iuid, "DICOM", "ImageComments", val));
        json_object_set_new(json_object_get(inode, "DICOM"), "ImageComments", json_string(val));
    } else if (op < 52) { /* remove attributes (present or not) */
        rem = dump(json_pack("{s:{s:{s:n}},s:{s:{s:{s:{s:n}}}}}", "Patient", "DICOM",
                             "PatientComments", "Study", "Series", suid, "DICOM",
                             "SeriesDescription"));
        json_object_del(pd, "PatientComments");
        json_object_del(json_object_get(snode, "DICOM"), "SeriesDescription");
    } else if (op < 58 && inode && json_object_size(imap) > 1) { /* remove an instance */
        rem = dump(json_pack("{s:{s:{s:{s:{s:{}}}}}}", "Study", "Series", suid, "Instances", iuid));
        json_object_del(imap, iuid);
    } else if (op < 60 && json_object_size(series) > 1) { /* remove a series */
        rem = dump(json_pack("{s:{s:{s:{}}}}", "Study", "Series", suid));
        json_object_del(series, suid);
    } else if (op < 68 && inode) { /* forced instance re-key */
        new_uid(nu, "1.2.826.0.1.9.3");
        upd = dump(json_pack("{s:{s:{s:{s:{s:{s:{s:s}}}}}}}", "Study", "Series", suid, "Instances",
                             iuid, "DICOM", "SOPInstanceUID", nu));
        force = true;
        json_t *o = json_incref(inode);
        json_object_del(imap, iuid);
        json_object_set_new(json_object_get(o, "DICOM"), "SOPInstanceUID", json_string(nu));
        json_object_set_new(imap, nu, o);
    } else if (op < 71) { /* forced series re-key */
        new_uid(nu, "1.2.826.0.1.9.2");
        upd = dump(json_pack("{s:{s:{s:{s:{s:s}}}}}", "Study", "Series", suid, "DICOM",
                             "SeriesInstanceUID", nu));
        force = true;
        json_t *o = json_incref(snode);
        json_object_del(series, suid);
        json_object_set_new(json_object_get(o, "DICOM"), "SeriesInstanceUID", json_string(nu));
        json_object_set_new(series, nu, o);
    } else if (op < 80) { /* revert */
        revert = 1 + rnd((uint32_t)md->nver);
        json_decref(md->cur);
        md->cur = json_loads(md->texts[revert], 0, NULL);
    } else if (op < 88) { /* import new instances (and re-import one) */
        json_t *doc = json_pack("{s:{s:{}}}", "Study", "Series");
        json_t *s = json_pack("{s:{}}", "Instances");
        json_object_set_new(json_object_get(json_object_get(doc, "Study"), "Series"), suid, s);
        unsigned k = 1 + rnd(3);
        for (unsigned i = 0; i < k; i++) {
            new_uid(nu, "1.2.826.0.1.9.3");
            json_t *o = small_instance(nu, uid_counter);
            json_object_set(json_object_get(s, "Instances"), nu, o);
            json_object_set_new(imap, nu, o);
        }
        struct ahl_meta_info info;
        int rc = ahl_meta_imageset_put_instances(md->f->m, md->f->ds, md->id, doc, 0, &info, &err);
        json_decref(doc);
        if (rc != 0)
            fail_msg("step %zu: import: %s", n, err.msg);
        /* The reference shares the new instance objects with the request: copy them apart. */
        json_t *copy = json_deep_copy(md->cur);
        json_decref(md->cur);
        md->cur = copy;
        record(md);
        compare_version(md, md->nver, n);
        return;
    } else if (op < 92) { /* stale latestVersionId */
        upd = dump(json_pack("{s:{s:{s:s}}}", "Patient", "DICOM", "PatientName", "NEVER"));
        latest = md->nver - 1 - rnd((uint32_t)md->nver);
        expect_ok = false;
        expect_rc = AHL_ECONFLICT;
    } else if (op < 96) { /* a missing instance */
        upd = dump(json_pack("{s:{s:{s:{s:{s:{s:{s:s}}}}}}}", "Study", "Series", suid, "Instances",
                             "9.9.9", "DICOM", "ImageComments", "X"));
        expect_ok = false;
        expect_rc = AHL_EINVAL;
    } else if (inode && json_object_size(imap) > 1) { /* re-key onto an existing instance */
        const char *other = NULL;
        const char *k;
        json_t *v;
        json_object_foreach(imap, k, v)
        {
            if (strcmp(k, iuid) != 0) {
                other = k;
                break;
            }
        }
        upd = dump(json_pack("{s:{s:{s:{s:{s:{s:{s:s}}}}}}}", "Study", "Series", suid, "Instances",
                             iuid, "DICOM", "SOPInstanceUID", other));
        force = true;
        expect_ok = false;
        expect_rc = AHL_EINVAL;
    } else {
        revert = md->nver;
        json_decref(md->cur);
        md->cur = json_loads(md->texts[revert], 0, NULL);
    }
    ahl_err_clear(&err);
    int rc = do_update(md, upd, rem, force, latest, revert, &err);
    if (rc != expect_rc)
        fail_msg("step %zu (op %u): rc %d (%s), want %d\n upd %s\n rem %s", n, op, rc, err.msg,
                 expect_rc, upd ? upd : "-", rem ? rem : "-");
    free(upd);
    free(rem);
    if (expect_ok) {
        record(md);
        compare_version(md, md->nver, n);
    } else {
        struct ahl_meta_info info;
        assert_int_equal(ahl_meta_imageset_get(md->f->m, md->f->ds, md->id, 0, &info, &err), 0);
        assert_int_equal(info.set.latest_version, md->nver);
    }
}

static void test_model(void **state)
{
    (void)state;
    const char *e = getenv("AHL_MODEL_STEPS");
    const char *se = getenv("AHL_MODEL_SEED");
    size_t steps = e ? strtoul(e, NULL, 10) : 10000;
    rng_state = se ? strtoull(se, NULL, 10) : 0x9e3779b97f4a7c15ull;
    if (!rng_state)
        rng_state = 1;
    /* A small cache budget keeps eviction and store reads in play. */
    struct ahl_meta_opts o = {.cache_bytes = 64 * 1024};
    struct model md = {.f = fx_new(&o)};
    assert_non_null(md.f);
    struct ahl_err err;
    struct ahl_meta_info info;
    md.cur = initial_doc();
    assert_int_equal(ahl_meta_imageset_create(md.f->m, md.f->ds, md.cur, NULL, &info, &err), 0);
    memcpy(md.id, info.set.id, sizeof md.id);
    record(&md);
    compare_version(&md, 1, 0);
    uint64_t t0 = ahl_mono_ns();
    for (size_t n = 1; n <= steps; n++) {
        step(&md, n);
        compare_search_row(&md, n);
        if (n % CHECK_EVERY == 0 || n == steps)
            for (uint64_t v = 1; v <= md.nver; v++)
                compare_version(&md, v, n);
    }
    print_message("model: %zu steps, %zu versions, %.1f s\n", steps, md.nver,
                  (double)(ahl_mono_ns() - t0) / 1e9);
    struct ahl_meta_check_stats st;
    assert_int_equal(ahl_meta_check(md.f->m, NULL, NULL, &st), 0);
    assert_int_equal(st.versions, md.nver);
    for (size_t v = 1; v <= md.nver; v++)
        free(md.texts[v]);
    free(md.texts);
    json_decref(md.cur);
    fx_free(md.f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
