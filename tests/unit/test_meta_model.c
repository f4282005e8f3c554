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

/* A fresh engine with the initial set as version 1. A small cache budget keeps eviction and
 * store reads in play. */
static void model_start(struct model *md)
{
    struct ahl_meta_opts o = {.cache_bytes = 64 * 1024};
    struct ahl_err err;
    struct ahl_meta_info info;
    memset(md, 0, sizeof *md);
    md->f = fx_new(&o);
    assert_non_null(md->f);
    md->cur = initial_doc();
    assert_int_equal(ahl_meta_imageset_create(md->f->m, md->f->ds, md->cur, NULL, &info, &err), 0);
    memcpy(md->id, info.set.id, sizeof md->id);
    record(md);
}

static void model_end(struct model *md)
{
    for (size_t v = 1; v <= md->nver; v++)
        free(md->texts[v]);
    free(md->texts);
    json_decref(md->cur);
    fx_free(md->f);
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


/* ---- the version diff against a naive diff of two whole documents ---- */

/* node without its child map, as a new object */
static json_t *strip(json_t *node, const char *child)
{
    json_t *o = json_copy(node);
    json_object_del(o, child);
    return o;
}

static void naive_attrs(json_t *parent, const char *name, json_t *a, json_t *b, const char *child)
{
    json_t *sa = strip(a, child), *sb = strip(b, child), *d = NULL;
    assert_int_equal(ahl_meta_attr_diff(sa, sb, &d), 0);
    if (json_object_size(d))
        json_object_set(parent, name, d);
    json_decref(d);
    json_decref(sa);
    json_decref(sb);
}

static char **sorted_keys(json_t *obj, size_t *n)
{
    char **v = calloc(json_object_size(obj) + 1, sizeof *v);
    const char *k;
    json_t *x;
    *n = 0;
    json_object_foreach(obj, k, x)
    {
        v[(*n)++] = (char *)k;
    }
    qsort(v, *n, sizeof *v, cmp_key);
    return v;
}

/* Added/Removed/Rekeyed/Changed of two maps of nodes (child: the nodes' own child map or NULL). */
static json_t *naive_map(json_t *a, json_t *b, const char *child)
{
    json_t *res = json_object(), *added = json_array(), *removed = json_array();
    json_t *rekeyed = json_array(), *changed = json_object(), *paired = json_object();
    size_t na, nb;
    char **ka = sorted_keys(a, &na), **kb = sorted_keys(b, &nb);
    for (size_t i = 0; i < na; i++) {
        if (json_object_get(b, ka[i]))
            continue;
        for (size_t j = 0; j < nb; j++)
            if (!json_object_get(a, kb[j]) && !json_object_get(paired, kb[j]) &&
                json_equal(json_object_get(a, ka[i]), json_object_get(b, kb[j]))) {
                json_object_set_new(paired, ka[i], json_true());
                json_object_set_new(paired, kb[j], json_true());
                json_array_append_new(rekeyed,
                                      json_pack("{s:s,s:s}", "From", ka[i], "To", kb[j]));
                break;
            }
    }
    /* Added and Removed in key order over both sides */
    for (size_t i = 0, j = 0; i < na || j < nb;) {
        int c = i == na ? 1 : j == nb ? -1 : strcmp(ka[i], kb[j]);
        const char *k = c <= 0 ? ka[i] : kb[j];
        if (c < 0 && !json_object_get(paired, k))
            json_array_append_new(removed, json_string(k));
        if (c > 0 && !json_object_get(paired, k))
            json_array_append_new(added, json_string(k));
        if (c == 0) {
            json_t *x = json_object_get(a, k), *y = json_object_get(b, k);
            json_t *d = json_object();
            naive_attrs(d, "tmp", x, y, child ? child : "");
            json_t *t = json_object_get(d, "tmp");
            json_t *entry = t ? json_copy(t) : json_object();
            if (child) {
                json_t *sub = naive_map(json_object_get(x, child), json_object_get(y, child), NULL);
                if (json_object_size(sub))
                    json_object_set(entry, child, sub);
                json_decref(sub);
            }
            if (json_object_size(entry))
                json_object_set(changed, k, entry);
            json_decref(entry);
            json_decref(d);
        }
        i += c <= 0;
        j += c >= 0;
    }
    if (json_array_size(added))
        json_object_set(res, "Added", added);
    if (json_array_size(removed))
        json_object_set(res, "Removed", removed);
    if (json_array_size(rekeyed))
        json_object_set(res, "Rekeyed", rekeyed);
    if (json_object_size(changed))
        json_object_set(res, "Changed", changed);
    json_decref(added);
    json_decref(removed);
    json_decref(rekeyed);
    json_decref(changed);
    json_decref(paired);
    free(ka);
    free(kb);
    return res;
}

static json_t *naive_diff(struct model *md, uint64_t va, uint64_t vb)
{
    json_t *a = NULL, *b = NULL;
    struct ahl_err err;
    assert_int_equal(ahl_meta_document(md->f->m, md->f->ds, md->id, va, &a, &err), 0);
    assert_int_equal(ahl_meta_document(md->f->m, md->f->ds, md->id, vb, &b, &err), 0);
    json_t *res = json_pack("{s:s,s:s,s:I,s:I}", "DatastoreID", md->f->ds, "ImageSetID", md->id,
                            "FromVersion", (json_int_t)va, "ToVersion", (json_int_t)vb);
    naive_attrs(res, "Patient", json_object_get(a, "Patient"), json_object_get(b, "Patient"), "");
    naive_attrs(res, "Study", json_object_get(a, "Study"), json_object_get(b, "Study"), "Series");
    json_t *s = naive_map(series_of(a), series_of(b), "Instances");
    if (json_object_size(s))
        json_object_set(res, "Series", s);
    json_decref(s);
    json_decref(a);
    json_decref(b);
    return res;
}

static void compare_diff(struct model *md, uint64_t va, uint64_t vb)
{
    json_t *got = NULL, *want = naive_diff(md, va, vb);
    struct ahl_err err;
    assert_int_equal(ahl_meta_diff(md->f->m, md->f->ds, md->id, va, vb, &got, &err), 0);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_COMPACT), *w = json_dumps(want, JSON_COMPACT);
        fail_msg("diff %llu -> %llu\n got  %s\n want %s", (unsigned long long)va,
                 (unsigned long long)vb, g, w);
    }
    json_decref(got);
    json_decref(want);
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
    struct model md;
    model_start(&md);
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
    model_end(&md);
}


/* Random updates on a small set, then the diff of random version pairs (and of each version
 * with its predecessor) against the naive diff of the two whole documents. AHL_DIFF_STEPS
 * (default 300) changes the run. */
static void test_diff_model(void **state)
{
    (void)state;
    const char *e = getenv("AHL_DIFF_STEPS");
    size_t steps = e ? strtoul(e, NULL, 10) : 300;
    rng_state = 0x2545f4914f6cdd1dull;
    struct model md;
    struct ahl_err err;
    model_start(&md);
    for (size_t n = 1; n <= steps; n++)
        step(&md, n);
    for (uint64_t v = 2; v <= md.nver; v++)
        compare_diff(&md, v - 1, v);
    for (int i = 0; i < 300; i++)
        compare_diff(&md, 1 + rnd((uint32_t)md.nver), 1 + rnd((uint32_t)md.nver));
    /* equal versions: no level at all */
    json_t *d = NULL;
    assert_int_equal(ahl_meta_diff(md.f->m, md.f->ds, md.id, 1, 1, &d, &err), 0);
    assert_int_equal(json_object_size(d), 4);
    json_decref(d);
    /* unknown version and set */
    assert_int_equal(ahl_meta_diff(md.f->m, md.f->ds, md.id, 1, md.nver + 1, &d, &err),
                     AHL_ENOTFOUND);
    assert_int_equal(ahl_meta_diff(md.f->m, md.f->ds, "00000000000000000000000000000000", 1, 1,
                                   &d, &err),
                     AHL_ENOTFOUND);
    print_message("diff model: %zu steps, %zu versions\n", steps, md.nver);
    model_end(&md);
}

/* Attribute paths descend into objects; an empty object is a value; arrays are values. */
static void test_attr_diff(void **state)
{
    (void)state;
    json_t *a = json_pack("{s:{s:s,s:s,s:{}},s:[i]}", "DICOM", "A", "1", "B", "2", "E", "F", 1);
    json_t *b = json_pack("{s:{s:s,s:s,s:{s:s}},s:[i]}", "DICOM", "A", "1", "C", "3", "E", "X",
                          "y", "F", 2);
    json_t *d = NULL;
    assert_int_equal(ahl_meta_attr_diff(a, b, &d), 0);
    json_t *want = json_pack("{s:{s:s},s:{s:s},s:{s:{s:[i],s:[i]},s:{s:{},s:{s:s}}}}", "Added",
                             "DICOM.C", "3", "Removed", "DICOM.B", "2", "Changed", "F", "Old", 1,
                             "New", 2, "DICOM.E", "Old", "New", "X", "y");
    if (!json_equal(d, want)) {
        char *g = json_dumps(d, JSON_COMPACT);
        fail_msg("attr diff %s", g ? g : "?");
    }
    json_decref(d);
    assert_int_equal(ahl_meta_attr_diff(a, a, &d), 0);
    assert_int_equal(json_object_size(d), 0);
    json_decref(d);
    json_decref(want);
    json_decref(a);
    json_decref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_diff_model),
        cmocka_unit_test(test_attr_diff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
