/* DICOMweb search (QIDO-RS) below the HTTP layer: the parser of a search's path and query (every
 * parameter form, and each refusal with the message a user sees), and the QIDO-RS index the
 * engine keeps over a real store (SQLite, or PostgreSQL in the unit_pg_ run): rows for primary sets
 * only, updates shown at once, a PatientName edit writing no instance row and an instance edit
 * writing one, deletes, the backfill of sets stored before the index existed, and the rows of a
 * set written again from nothing (ahl_meta_qido_index, what `ahilite migrate` does) equal to those
 * its commits wrote. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "api/dicomweb_internal.h"
#include "meta/meta.h"
#include "store/store.h"
#include "store_fixture.h"

#define DS "0123456789abcdef0123456789abcdef"
#define P "/datastore/" DS

/* ---- the parser ---- */

static void test_paths(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        bool search;
        int level;
    } cases[] = {
        {P "/studies", true, AHL_QIDO_STUDY},
        {P "/series", true, AHL_QIDO_SERIES},
        {P "/studies/1.2/series", true, AHL_QIDO_SERIES},
        {P "/studies/1.2/instances", true, AHL_QIDO_INSTANCE},
        {P "/studies/1.2/series/1.2.3/instances", true, AHL_QIDO_INSTANCE},
        {P "/studies/1.2/metadata", false, 0},
        {P "/studies/1.2/series/1.2.3/metadata", false, 0},
        {P "/studies/1.2/series/1.2.3/instances/1.4", false, 0},
        {P "/studies/", false, 0},
        {P "/series/1.2/instances", false, 0},
        {P "/studies/1.2/series/1.2.3/series", false, 0},
        {"/datastore/" DS, false, 0},
        {"/other/" DS "/studies", false, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (ahl__qido_path(cases[i].path) != cases[i].search)
            fail_msg("%s: search %d", cases[i].path, !cases[i].search);
        if (!cases[i].search)
            continue;
        struct ahl__qido_request r;
        struct ahl_err err;
        assert_int_equal(ahl__qido_parse(cases[i].path, NULL, &r, &err), 0);
        assert_int_equal(r.q.level, cases[i].level);
        assert_string_equal(r.ds, DS);
        ahl__qido_request_release(&r);
    }
}

static void test_query_forms(void **state)
{
    (void)state;
    struct ahl__qido_request r;
    struct ahl_err err;
    const char *q = "PatientName=doe%5E*&StudyDate=20200101-&StudyTime=-1200&"
                    "0020000D=1.2,1.3&AccessionNumber=A%201&ModalitiesInStudy=CT,MR&"
                    "limit=10&offset=20&fuzzymatching=true&includefield=PatientBirthTime,all&"
                    "StudyID=*&PatientID=";
    assert_int_equal(ahl__qido_parse(P "/studies", q, &r, &err), 0);
    assert_int_equal(r.q.limit, 10);
    assert_int_equal(r.q.offset, 20);
    assert_true(r.q.fuzzy);
    assert_true(r.include_all);
    assert_int_equal(r.q.nf, 6); /* StudyID=* and PatientID= match everything: no filter */
    const struct ahl_qido_filter *f = r.q.f;
    assert_int_equal(f[0].key, AHL_QK_PATIENT_NAME);
    assert_int_equal(f[0].match, AHL_QM_WILD);
    assert_string_equal(f[0].value, "doe^*");
    assert_int_equal(f[1].match, AHL_QM_RANGE);
    assert_string_equal(f[1].lo, "20200101");
    assert_string_equal(f[1].hi, "");
    assert_int_equal(f[2].match, AHL_QM_RANGE);
    assert_string_equal(f[2].lo, "");
    assert_string_equal(f[2].hi, "1200");
    assert_int_equal(f[3].key, AHL_QK_STUDY_UID);
    assert_int_equal(f[3].match, AHL_QM_LIST);
    assert_int_equal(f[3].nlist, 2);
    assert_string_equal(f[3].list[1], "1.3");
    assert_int_equal(f[4].match, AHL_QM_SINGLE);
    assert_string_equal(f[4].value, "A 1");
    assert_int_equal(f[5].key, AHL_QK_MODALITIES);
    assert_int_equal(f[5].match, AHL_QM_LIST);
    ahl__qido_request_release(&r);

    /* Defaults, and the path's UIDs as filters. */
    assert_int_equal(ahl__qido_parse(P "/studies/1.2/series/1.2.3/instances", "", &r, &err), 0);
    assert_int_equal(r.q.limit, AHL_QIDO_MAX_LIMIT);
    assert_int_equal(r.q.offset, 0);
    assert_int_equal(r.q.nf, 2);
    assert_int_equal(r.q.f[0].key, AHL_QK_STUDY_UID);
    assert_string_equal(r.q.f[1].value, "1.2.3");
    ahl__qido_request_release(&r);
}

static void test_query_errors(void **state)
{
    (void)state;
    static const struct {
        const char *path, *query, *says; /* says: a part of the message */
    } cases[] = {
        {P "/studies", "limit=1001", "limit"},
        {P "/studies", "limit=0", "limit"},
        {P "/studies", "limit=", "limit"},
        {P "/studies", "limit=1&limit=2", "twice"},
        {P "/studies", "offset=9001", "offset"},
        {P "/studies", "offset=1e3", "offset"},
        {P "/studies", "Nope=1", "Unknown query parameter Nope"},
        {P "/studies", "Modality=CT", "not a search key of the studies"},
        {P "/studies", "00100040=M", "not a search key"},
        {P "/studies", "00100010=a&PatientName=b", "twice"},
        {P "/studies", "StudyDate=2020", "not a date"},
        {P "/studies", "StudyDate=20200101-20200102-1", "range"},
        {P "/studies", "StudyDate=-", "range"},
        {P "/studies", "StudyTime=10h", "not a time"},
        {P "/studies", "StudyInstanceUID=1.2,x", "not a UID"},
        {P "/studies", "ModalitiesInStudy=C*", "wildcards"},
        {P "/series", "Modality=C*,MR", "wildcards"},
        {P "/series", "SeriesNumber=1.5", "not an integer"},
        {P "/studies", "includefield=Foo", "includefield"},
        {P "/studies", "fuzzymatching=yes", "fuzzymatching"},
        {P "/studies", "PatientID=%2", "percent-encoded"},
        {P "/studies", "PatientID=a%00", "percent-encoded"},
        {P "/studies/x/series", "", "StudyInstanceUID in the path"},
        {"/datastore/ABC/studies", "", "data store id"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct ahl__qido_request r;
        struct ahl_err err = {0};
        int rc = ahl__qido_parse(cases[i].path, cases[i].query, &r, &err);
        ahl__qido_request_release(&r);
        if (rc != AHL_EINVAL || !strstr(err.msg, cases[i].says))
            fail_msg("%s?%s: rc %d, message \"%s\", want EINVAL saying \"%s\"", cases[i].path,
                     cases[i].query, rc, err.msg, cases[i].says);
    }
    /* A long value is refused, not cut. */
    char q[1200] = "PatientID=";
    memset(q + 10, 'x', 1100);
    q[1110] = '\0';
    struct ahl__qido_request r;
    struct ahl_err err = {0};
    assert_int_equal(ahl__qido_parse(P "/studies", q, &r, &err), AHL_EINVAL);
    ahl__qido_request_release(&r);
}

/* ---- the index the engine keeps ---- */

struct fixture {
    char dir[64];
    struct ahl_store *store;
    struct ahl_meta *meta;
};

#define STUDY "1.2.3"
#define SERIES "1.2.3.4"
#define NINST 50

static void open_all(struct fixture *f)
{
    assert_int_equal(ahl_test_store_open(f->dir, 0, &f->store), 0);
    assert_int_equal(ahl_meta_open(f->store, NULL, &f->meta), 0);
}

static void close_all(struct fixture *f)
{
    ahl_meta_close(f->meta);
    ahl_store_close(f->store);
    f->meta = NULL;
    f->store = NULL;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    struct ahl_store_tx *tx;
    struct ahl_datastore_rec ds = {.created_at_ms = 1, .updated_at_ms = 1};
    snprintf(f->dir, sizeof f->dir, "/tmp/ahl-api-qido-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    open_all(f);
    snprintf(ds.id, sizeof ds.id, "%s", DS);
    snprintf(ds.name, sizeof ds.name, "qido");
    snprintf(ds.status, sizeof ds.status, "ACTIVE");
    snprintf(ds.lossless_storage_format, sizeof ds.lossless_storage_format, "HTJ2K");
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    assert_int_equal(ahl_store_datastore_put(tx, &ds, true), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];
    close_all(f);
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void create_set(struct fixture *f, const char *name, bool primary, char id[AHL_ID_LEN + 1])
{
    json_t *inst = json_object();
    for (int i = 0; i < NINST; i++) {
        char sop[32];
        snprintf(sop, sizeof sop, SERIES ".%d", i);
        json_object_set_new(inst, sop,
                            json_pack("{s:{s:s,s:s,s:i,s:i,s:i}}", "DICOM", "SOPInstanceUID", sop,
                                      "SOPClassUID", "1.2.840.10008.5.1.4.1.1.2", "InstanceNumber",
                                      i + 1, "Rows", 64, "Columns", 32));
    }
    json_t *doc = json_pack("{s:{s:{s:s,s:s}},s:{s:{s:s,s:s},s:{s:{s:{s:s,s:s,s:s},s:o}}}}",
                            "Patient", "DICOM", "PatientName", name, "PatientID", "PID", "Study",
                            "DICOM", "StudyInstanceUID", STUDY, "StudyDate", "20200101", "Series",
                            SERIES, "DICOM", "SeriesInstanceUID", SERIES, "Modality", "CT",
                            "SeriesNumber", "3", "Instances", inst);
    struct ahl_meta_create_opts o = {.is_primary = primary};
    struct ahl_meta_info info;
    struct ahl_err err;
    assert_non_null(doc);
    if (ahl_meta_imageset_create(f->meta, DS, doc, &o, &info, &err) < 0)
        fail_msg("create: %s", err.msg);
    json_decref(doc);
    memcpy(id, info.set.id, AHL_ID_LEN + 1);
}

struct found {
    int n;
    struct ahl_qido_row last;
};

static int collect(void *ctx, const struct ahl_qido_row *row)
{
    struct found *c = ctx;
    c->n++;
    c->last = *row;
    return 0;
}

/* Runs a search with one filter (key < 0: none) and returns what it found. */
static struct found find(struct fixture *f, int level, int key, const char *value)
{
    struct ahl_qido_query q = {.level = level, .limit = 1000};
    struct ahl_store_tx *tx;
    struct found c = {0};
    if (key >= 0) {
        q.nf = 1;
        q.f[0].key = key;
        q.f[0].match = strpbrk(value, "*?") ? AHL_QM_WILD : AHL_QM_SINGLE;
        q.f[0].value = value;
    }
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    assert_int_equal(ahl_store_qido_query(tx, DS, &q, collect, &c), 0);
    ahl_store_rollback(tx);
    return c;
}

/* Runs sql on the store's database behind the backend's back: the SQLite file, or the test's
 * PostgreSQL schema. */
static void db_exec(struct fixture *f, const char *sql)
{
    if (ahl_test_store_is_pg()) {
        assert_int_equal(ahl_test_pg_exec(f->dir, sql, NULL, 0), 0);
        return;
    }
    char path[128];
    sqlite3 *db;
    char *msg = NULL;
    snprintf(path, sizeof path, "%s/%s", f->dir, AHL_STORE_SQLITE_FILE);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

/* The integer a query answers in the database. */
static int db_int(struct fixture *f, const char *sql)
{
    if (ahl_test_store_is_pg()) {
        char v[32];
        assert_int_equal(ahl_test_pg_exec(f->dir, sql, v, sizeof v), 0);
        return atoi(v);
    }
    char path[128];
    sqlite3 *db;
    sqlite3_stmt *st;
    snprintf(path, sizeof path, "%s/%s", f->dir, AHL_STORE_SQLITE_FILE);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* A count of the writes to qido_instance, kept by triggers in the database file. */
static int instance_writes(struct fixture *f)
{
    return db_int(f, "SELECT n FROM writes");
}

/* The study and modality rows as one string (what a search at study level answers from). */
static void study_rows(struct fixture *f, char *out, size_t cap)
{
    if (ahl_test_store_is_pg()) {
        assert_int_equal(
            ahl_test_pg_exec(
                f->dir,
                "SELECT coalesce(string_agg(x, '|' ORDER BY x), '') FROM (SELECT"
                " quote_literal(datastore_id)||quote_literal(study_uid)||quote_literal(imageset_id)"
                "||updated_at||quote_literal(patient_name)||quote_literal(pn_norm)"
                "||quote_literal(patient_id)||quote_literal(study_date)||quote_literal(study_tm)"
                "||quote_literal(modalities)||series_count||instance_count"
                "||quote_literal(study_description) AS x FROM qido_study UNION ALL SELECT"
                " quote_literal(study_uid)||quote_literal(modality)||updated_at FROM"
                " qido_study_modality) r",
                out, cap),
            0);
        return;
    }
    char path[128];
    sqlite3 *db;
    sqlite3_stmt *st;
    snprintf(path, sizeof path, "%s/%s", f->dir, AHL_STORE_SQLITE_FILE);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(
            db,
            "SELECT ifnull(group_concat(x, '|'), '') FROM (SELECT quote(datastore_id)||quote("
            "study_uid)||quote(imageset_id)||quote(updated_at)||quote(patient_name)||quote(pn_norm)"
            "||quote(patient_id)||quote(study_date)||quote(study_tm)||quote(modalities)||quote("
            "series_count)||quote(instance_count)||quote(study_description) AS x FROM qido_study"
            " UNION ALL SELECT quote(study_uid)||quote(modality)||quote(updated_at) FROM"
            " qido_study_modality ORDER BY 1)",
            -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void update(struct fixture *f, const char *id, const char *json)
{
    struct ahl_meta_info info;
    struct ahl_meta_update_result res;
    struct ahl_err err;
    assert_int_equal(ahl_meta_imageset_get(f->meta, DS, id, 0, &info, &err), 0);
    struct ahl_meta_update u = {.latest_version = info.set.latest_version,
                                .updatable = json,
                                .updatable_len = strlen(json)};
    if (ahl_meta_update(f->meta, DS, id, &u, &res, &err) < 0)
        fail_msg("update: %s", err.msg);
}

static void test_engine_keeps_the_index(void **state)
{
    struct fixture *f = *state;
    bool pg = ahl_test_store_is_pg();
    char primary[AHL_ID_LEN + 1], other[AHL_ID_LEN + 1];
    create_set(f, "Doe^John", true, primary);
    create_set(f, "Other^Person", false, other);

    struct found c = find(f, AHL_QIDO_STUDY, -1, NULL);
    assert_int_equal(c.n, 1); /* the non-primary set has no rows */
    assert_string_equal(c.last.study.patient_name, "Doe^John");
    assert_string_equal(c.last.modalities_in_study, "CT");
    assert_int_equal(c.last.study_series, 1);
    assert_int_equal(c.last.study_instances, NINST);
    assert_int_equal(find(f, AHL_QIDO_STUDY, AHL_QK_PATIENT_NAME, "other*").n, 0);
    c = find(f, AHL_QIDO_INSTANCE, AHL_QK_SERIES_UID, SERIES);
    assert_int_equal(c.n, NINST);
    assert_int_equal(c.last.instance.instance_number, NINST);
    assert_int_equal(c.last.instance.rows, 64);
    assert_int_equal(c.last.series.series_number, 3);

    /* A Patient edit rewrites no instance row. */
    if (pg)
        db_exec(f, "CREATE TABLE writes(n integer); INSERT INTO writes VALUES(0);"
                   "CREATE FUNCTION count_write() RETURNS trigger LANGUAGE plpgsql AS"
                   " $$BEGIN UPDATE writes SET n=n+1; RETURN NULL; END$$;"
                   "CREATE TRIGGER w AFTER INSERT OR UPDATE OR DELETE ON qido_instance"
                   " FOR EACH ROW EXECUTE FUNCTION count_write();");
    else
        db_exec(
            f,
            "CREATE TABLE writes(n INTEGER); INSERT INTO writes VALUES(0);"
            "CREATE TRIGGER w1 AFTER INSERT ON qido_instance BEGIN UPDATE writes SET n=n+1; END;"
            "CREATE TRIGGER w2 AFTER UPDATE ON qido_instance BEGIN UPDATE writes SET n=n+1; END;"
            "CREATE TRIGGER w3 AFTER DELETE ON qido_instance BEGIN UPDATE writes SET n=n+1; END;"
            /* Statements that set a study column other than the name and the time: SQLite
             * rewrites the index entries of every column an UPDATE sets, changed or not. */
            "CREATE TABLE study_sets(pn INTEGER, other INTEGER); INSERT INTO study_sets"
            " VALUES(0, 0);"
            "CREATE TRIGGER s1 AFTER UPDATE OF patient_name, pn_norm ON qido_study BEGIN"
            " UPDATE study_sets SET pn=pn+1; END;"
            "CREATE TRIGGER s2 AFTER UPDATE OF patient_id, patient_birth_date, patient_birth_time,"
            " birth_tm, patient_sex, study_date, study_time, study_tm, accession_number,"
            " referring_physician_name, ref_norm, study_description, study_id ON qido_study"
            " BEGIN UPDATE study_sets SET other=other+1; END;");
    update(f, primary,
           "{\"SchemaVersion\":1.1,\"Patient\":{\"DICOM\":{\"PatientName\":"
           "\"Roe^Jane\"}}}");
    assert_int_equal(instance_writes(f), 0);
    if (!pg) { /* PostgreSQL writes every index entry of a row whose indexed columns change */
        assert_int_equal(db_int(f, "SELECT pn FROM study_sets"), 1);
        assert_int_equal(db_int(f, "SELECT other FROM study_sets"), 0);
    }
    assert_int_equal(find(f, AHL_QIDO_STUDY, AHL_QK_PATIENT_NAME, "ROE^JANE").n, 1);
    /* That edit only copied the set's attributes into the study row: the same rows as a full
     * rebuild gives. */
    char quick[2048], full[2048];
    study_rows(f, quick, sizeof quick);
    assert_non_null(strstr(quick, "'Roe^Jane''ROE^JANE'"));
    struct ahl_store_tx *wtx;
    assert_int_equal(ahl_store_begin(f->store, true, &wtx), 0);
    assert_int_equal(ahl_store_qido_study_refresh(wtx, DS, STUDY, false), 0);
    assert_int_equal(ahl_store_commit(wtx), 0);
    study_rows(f, full, sizeof full);
    assert_string_equal(quick, full);
    assert_int_equal(find(f, AHL_QIDO_STUDY, AHL_QK_PATIENT_NAME, "doe*").n, 0);

    /* An instance edit writes that instance's row alone. */
    update(f, primary,
           "{\"SchemaVersion\":1.1,\"Study\":{\"Series\":{\"" SERIES "\":{\"Instances\":{\"" SERIES
           ".7\":{\"DICOM\":{\"InstanceNumber\":\"700\"}}}}}}}");
    assert_int_equal(instance_writes(f), 1);
    struct ahl_qido_query q = {.level = AHL_QIDO_INSTANCE, .limit = 10, .nf = 2};
    q.f[0] = (struct ahl_qido_filter){.key = AHL_QK_SERIES_UID, .value = SERIES};
    q.f[1] = (struct ahl_qido_filter){.key = AHL_QK_INSTANCE_NUMBER, .value = "700"};
    struct ahl_store_tx *tx;
    c = (struct found){0};
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    assert_int_equal(ahl_store_qido_query(tx, DS, &q, collect, &c), 0);
    ahl_store_rollback(tx);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.last.instance.sop_uid, SERIES ".7");

    /* Sets stored before the index existed are indexed when the database is opened. */
    close_all(f);
    db_exec(f, "DELETE FROM qido_instance; DELETE FROM qido_series; DELETE FROM qido_set;"
               "DELETE FROM qido_study; DELETE FROM qido_study_modality;"
               "INSERT INTO qido_backfill SELECT id FROM imageset;");
    open_all(f);
    assert_int_equal(find(f, AHL_QIDO_STUDY, AHL_QK_PATIENT_NAME, "roe*").n, 1);
    assert_int_equal(find(f, AHL_QIDO_INSTANCE, AHL_QK_SERIES_UID, SERIES).n, NINST);
    assert_int_equal(find(f, AHL_QIDO_STUDY, AHL_QK_PATIENT_NAME, "other*").n, 0);

    /* A deleted set leaves no rows. */
    struct ahl_err err;
    assert_int_equal(ahl_meta_imageset_delete(f->meta, DS, primary, NULL, NULL, &err), 0);
    assert_int_equal(find(f, AHL_QIDO_STUDY, -1, NULL).n, 0);
    assert_int_equal(find(f, AHL_QIDO_SERIES, -1, NULL).n, 0);
    assert_int_equal(find(f, AHL_QIDO_INSTANCE, AHL_QK_SERIES_UID, SERIES).n, 0);
}

/* Every row a search at each level answers, as text. */
struct rendered {
    char s[16384];
};

static int render_row(void *ctx, const struct ahl_qido_row *r)
{
    struct rendered *out = ctx;
    size_t n = strlen(out->s);
    snprintf(out->s + n, sizeof out->s - n,
             "[%s %s %s %s %lld %s %u %u | %s %s %d %lld %u | %s %s %d %u %u]", r->study.study_uid,
             r->study.patient_name, r->study.patient_id, r->study.study_date,
             (long long)r->study.updated_at_ms, r->modalities_in_study, r->study_series,
             r->study_instances, r->series.series_uid, r->series.modality, r->series.series_number,
             (long long)r->series.updated_at_ms, r->series.number_of_instances, r->instance.sop_uid,
             r->instance.sop_class_uid, r->instance.instance_number, r->instance.rows,
             r->instance.columns);
    return 0;
}

static void render_all(struct fixture *f, struct rendered *out)
{
    struct ahl_store_tx *tx;
    out->s[0] = '\0';
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    for (int level = AHL_QIDO_STUDY; level <= AHL_QIDO_INSTANCE; level++) {
        struct ahl_qido_query q = {.level = level, .limit = 1000};
        if (level == AHL_QIDO_INSTANCE) {
            q.nf = 1;
            q.f[0] = (struct ahl_qido_filter){.key = AHL_QK_STUDY_UID, .value = STUDY};
        }
        assert_int_equal(ahl_store_qido_query(tx, DS, &q, render_row, out), 0);
    }
    ahl_store_rollback(tx);
}

static void test_index_from_nothing(void **state)
{
    struct fixture *f = *state;
    char primary[AHL_ID_LEN + 1], other[AHL_ID_LEN + 1];
    create_set(f, "Doe^John", true, primary);
    create_set(f, "Other^Person", false, other);
    update(f, primary,
           "{\"SchemaVersion\":1.1,\"Patient\":{\"DICOM\":{\"PatientName\":"
           "\"Roe^Jane\"}}}");
    update(f, primary,
           "{\"SchemaVersion\":1.1,\"Study\":{\"Series\":{\"" SERIES "\":{\"Instances\":{\"" SERIES
           ".7\":{\"DICOM\":{\"InstanceNumber\":\"700\"}}}}}}}");
    static struct rendered before, after;
    render_all(f, &before);
    assert_non_null(strstr(before.s, "Roe^Jane"));
    assert_non_null(strstr(before.s, SERIES ".7 1.2.840.10008.5.1.4.1.1.2 700"));

    /* The set's rows and its study's removed, then written from its latest version. */
    struct ahl_store_tx *tx;
    struct ahl_imageset_rec set;
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    assert_int_equal(ahl_store_qido_set_delete(tx, primary), 0);
    assert_int_equal(ahl_store_qido_study_refresh(tx, DS, STUDY, false), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
    render_all(f, &after);
    assert_string_equal(after.s, "");
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    assert_int_equal(ahl_store_imageset_get(tx, DS, primary, &set), 0);
    assert_int_equal(ahl_meta_qido_index(f->meta, tx, &set), 0);
    /* A set that is not primary gets no rows. */
    assert_int_equal(ahl_store_imageset_get(tx, DS, other, &set), 0);
    assert_int_equal(ahl_meta_qido_index(f->meta, tx, &set), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
    render_all(f, &after);
    assert_string_equal(after.s, before.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_query_forms),
        cmocka_unit_test(test_query_errors),
        cmocka_unit_test_setup_teardown(test_engine_keeps_the_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_from_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
