/* The search query and the frame index of the storage interface, on the SQLite backend:
 * every filter, operator, sort field and order against a brute-force evaluation of the same rows,
 * paged through with the keyset cursor; the query plan of every shape uses an index and never
 * scans the table; study date-time keys; frame rows; the migration of a schema-1 database. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>

#define AHL_FIXTURE_STORE_ONLY 1
#include "meta_fixture.h"

#include "base/err.h"

/* ---- study date-time keys ---- */

static void test_study_dt_key(void **state)
{
    (void)state;
    static const struct {
        const char *date, *time, *key; /* key NULL: rejected */
    } cases[] = {
        {"20040119", "072730", "20040119072730000000"},
        {"20040119", NULL, "20040119000000000000"},
        {"20040119", "", "20040119000000000000"},
        {"20040119", "1015", "20040119101500000000"},
        {"20040119", "10", "20040119100000000000"},
        {"20040119", "101500.123", "20040119101500123000"},
        {"20040119", "101500.123456", "20040119101500123456"},
        {"20040119", "10:15:00", "20040119101500000000"},
        {"20040119", "101500 ", "20040119101500000000"},
        {"20040119", "101500.1234567", NULL},
        {"20040119", "101", NULL},
        {"20040119", "10a500", NULL},
        {"20040119", "1015.5", NULL},
        {"20040119", "101500.", NULL},
        {"2004011", "101500", NULL},
        {"2004-01-19", NULL, NULL},
        {"", NULL, NULL},
        {NULL, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char key[AHL_STUDY_DT_KEY_LEN + 1] = "x";
        int rc = ahl_store_study_dt_key(cases[i].date, cases[i].time, key);
        if (cases[i].key) {
            assert_int_equal(rc, 0);
            assert_string_equal(key, cases[i].key);
        } else {
            assert_int_equal(rc, AHL_EINVAL);
            assert_string_equal(key, "");
        }
    }
}

/* ---- queries against a brute-force reference ---- */

#define NROWS 120

static const char *const patients[] = {"P0", "P1", "P2", "P3", "P4"};
static const char *const dates[] = {"20200101", "20200102", "", "20211231", "bad"};
static const char *const times[] = {"", "101500", "0800", "235959.999", ""};

static void make_row(const char *ds, int i, struct ahl_search_row *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->imageset_id, sizeof r->imageset_id, "%032x", (unsigned)(i * 7919 % 100003));
    snprintf(r->datastore_id, sizeof r->datastore_id, "%s", ds);
    r->is_primary = i % 3 != 0;
    r->version = 1;
    /* Few distinct times, so ties between sort values are common and the id breaks them. */
    r->created_at_ms = 1000 + (i % 17) * 10;
    r->updated_at_ms = 5000 + (i % 11) * 10;
    snprintf(r->patient_id, sizeof r->patient_id, "%s", patients[i % 5]);
    snprintf(r->accession_number, sizeof r->accession_number, "A%d", i % 4);
    snprintf(r->study_id, sizeof r->study_id, "S%d", i % 6);
    snprintf(r->study_instance_uid, sizeof r->study_instance_uid, "1.2.%d", i % 7);
    snprintf(r->series_instance_uid, sizeof r->series_instance_uid, "1.2.%d.%d", i % 7, i % 2);
    snprintf(r->study_date, sizeof r->study_date, "%s", dates[i % 5]);
    snprintf(r->study_time, sizeof r->study_time, "%s", times[(i / 5) % 5]);
}

static bool ref_match(const struct ahl_search_row *r, const struct ahl_search_filter *f)
{
    char dt[AHL_STUDY_DT_KEY_LEN + 1];
    ahl_store_study_dt_key(r->study_date, r->study_time, dt);
    const char *text = NULL;
    int64_t t = 0;
    switch (f->attr) {
    case AHL_SEARCH_PATIENT_ID:
        text = r->patient_id;
        break;
    case AHL_SEARCH_ACCESSION_NUMBER:
        text = r->accession_number;
        break;
    case AHL_SEARCH_STUDY_ID:
        text = r->study_id;
        break;
    case AHL_SEARCH_STUDY_UID:
        text = r->study_instance_uid;
        break;
    case AHL_SEARCH_SERIES_UID:
        text = r->series_instance_uid;
        break;
    case AHL_SEARCH_IS_PRIMARY:
        return r->is_primary == f->flag;
    case AHL_SEARCH_CREATED_AT:
    case AHL_SEARCH_UPDATED_AT:
        t = f->attr == AHL_SEARCH_CREATED_AT ? r->created_at_ms : r->updated_at_ms;
        return f->between ? t >= f->ms[0] && t <= f->ms[1] : t == f->ms[0];
    case AHL_SEARCH_STUDY_DATE_TIME:
        return f->between ? strcmp(dt, f->text[0]) >= 0 && strcmp(dt, f->text[1]) <= 0
                          : strcmp(dt, f->text[0]) == 0;
    }
    return !strcmp(text, f->text[0]);
}

static int ref_sort_desc;
static int ref_sort_field;

static int ref_cmp(const void *a, const void *b)
{
    const struct ahl_search_row *x = a, *y = b;
    int c;
    if (ref_sort_field == AHL_SEARCH_SORT_STUDY_DATE_TIME) {
        char kx[AHL_STUDY_DT_KEY_LEN + 1], ky[AHL_STUDY_DT_KEY_LEN + 1];
        ahl_store_study_dt_key(x->study_date, x->study_time, kx);
        ahl_store_study_dt_key(y->study_date, y->study_time, ky);
        c = strcmp(kx, ky);
    } else {
        int64_t tx =
            ref_sort_field == AHL_SEARCH_SORT_CREATED_AT ? x->created_at_ms : x->updated_at_ms;
        int64_t ty =
            ref_sort_field == AHL_SEARCH_SORT_CREATED_AT ? y->created_at_ms : y->updated_at_ms;
        c = (tx > ty) - (tx < ty);
    }
    if (!c)
        c = strcmp(x->imageset_id, y->imageset_id);
    return ref_sort_desc ? -c : c;
}

struct collect {
    struct ahl_search_row rows[NROWS];
    size_t n;
};

static int collect_row(void *ctx, const struct ahl_search_row *r)
{
    struct collect *c = ctx;
    if (c->n == NROWS)
        return AHL_ETOOBIG;
    c->rows[c->n++] = *r;
    return 0;
}

/* Pages through q (limit 7) with the cursor and compares with the reference order. */
static void check_query(struct ahl_store_tx *tx, const char *ds, struct ahl_search_row *all,
                        size_t nall, struct ahl_search_query *q)
{
    struct ahl_search_row want[NROWS];
    size_t nwant = 0;
    for (size_t i = 0; i < nall; i++) {
        bool ok = true;
        for (unsigned k = 0; k < q->nfilters; k++)
            ok = ok && ref_match(&all[i], &q->filters[k]);
        if (ok)
            want[nwant++] = all[i];
    }
    ref_sort_desc = q->desc;
    ref_sort_field = q->sort;
    qsort(want, nwant, sizeof *want, ref_cmp);

    static struct collect got;
    size_t total = 0;
    q->limit = 7;
    memset(&q->after, 0, sizeof q->after);
    for (int page = 0; page < 100; page++) {
        got.n = 0;
        assert_int_equal(ahl_store_search_query(tx, ds, q, collect_row, &got), 0);
        for (size_t i = 0; i < got.n; i++) {
            assert_true(total + i < nwant);
            assert_string_equal(got.rows[i].imageset_id, want[total + i].imageset_id);
        }
        total += got.n;
        if (got.n < q->limit)
            break;
        const struct ahl_search_row *last = &got.rows[got.n - 1];
        q->after.set = true;
        q->after.ms =
            q->sort == AHL_SEARCH_SORT_CREATED_AT ? last->created_at_ms : last->updated_at_ms;
        memcpy(q->after.dt, last->study_dt, sizeof q->after.dt);
        memcpy(q->after.imageset_id, last->imageset_id, sizeof q->after.imageset_id);
    }
    if (total != nwant)
        fail_msg("query with %u filters, sort %d %s: %zu rows, want %zu", q->nfilters, q->sort,
                 q->desc ? "DESC" : "ASC", total, nwant);
}

/* Filters exercising every attribute and operator, some matching nothing. */
static size_t make_filters(struct ahl_search_filter *out)
{
    size_t n = 0;
    struct ahl_search_filter f;
#define PUSH() (out[n++] = f)
    memset(&f, 0, sizeof f);
    f.attr = AHL_SEARCH_PATIENT_ID, f.text[0] = "P3", PUSH();
    f.text[0] = "nobody", PUSH();
    memset(&f, 0, sizeof f);
    f.attr = AHL_SEARCH_ACCESSION_NUMBER, f.text[0] = "A1", PUSH();
    memset(&f, 0, sizeof f);
    f.attr = AHL_SEARCH_STUDY_ID, f.text[0] = "S5", PUSH();
    memset(&f, 0, sizeof f);
    f.attr = AHL_SEARCH_STUDY_UID, f.text[0] = "1.2.4", PUSH();
    memset(&f, 0, sizeof f);
    f.attr = AHL_SEARCH_SERIES_UID, f.text[0] = "1.2.4.1", PUSH();
    memset(&f, 0, sizeof f);
    f.attr = AHL_SEARCH_IS_PRIMARY, f.flag = true, PUSH();
    f.flag = false, PUSH();
    memset(&f, 0, sizeof f);
    f.attr = AHL_SEARCH_CREATED_AT, f.ms[0] = 1050, PUSH();
    f.between = true, f.ms[0] = 1030, f.ms[1] = 1100, PUSH();
    memset(&f, 0, sizeof f);
    f.attr = AHL_SEARCH_UPDATED_AT, f.ms[0] = 5020, PUSH();
    f.between = true, f.ms[0] = 5000, f.ms[1] = 5040, PUSH();
    memset(&f, 0, sizeof f);
    f.attr = AHL_SEARCH_STUDY_DATE_TIME, f.text[0] = "20200102101500000000", PUSH();
    f.between = true, f.text[0] = "20200101080000000000", f.text[1] = "20200102101500000000",
    PUSH();
    f.text[0] = "19000101000000000000", f.text[1] = "29991231000000000000", PUSH();
#undef PUSH
    return n;
}

static void test_query_semantics(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    assert_non_null(f);
    static struct ahl_search_row all[NROWS];
    struct ahl_store_tx *tx;
    char other[AHL_ID_LEN + 1];
    snprintf(other, sizeof other, "%032x", 8u); /* the fixture's is 7 */
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    size_t nall = 0;
    for (int i = 0; i < NROWS; i++) {
        make_row(f->ds, i, &all[nall]);
        assert_int_equal(ahl_store_search_put(tx, &all[nall]), 0);
        nall++;
    }
    /* Rows of another data store never show up. */
    for (int i = 0; i < 10; i++) {
        struct ahl_search_row r;
        make_row(other, i, &r);
        snprintf(r.imageset_id, sizeof r.imageset_id, "%032x", 200000u + (unsigned)i);
        assert_int_equal(ahl_store_search_put(tx, &r), 0);
    }
    /* A deleted set's row is gone: drop every tenth row. */
    size_t k = 0;
    for (size_t i = 0; i < nall; i++) {
        if (i % 10 == 5)
            assert_int_equal(ahl_store_search_delete(tx, all[i].imageset_id), 0);
        else
            all[k++] = all[i];
    }
    nall = k;
    assert_int_equal(ahl_store_commit(tx), 0);

    struct ahl_search_row got;
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    assert_int_equal(ahl_store_search_get(tx, all[1].imageset_id, &got), 0);
    assert_string_equal(got.study_dt, "20200102000000000000");

    struct ahl_search_filter filters[32];
    size_t nf = make_filters(filters);
    struct ahl_search_query q;
    for (int sort = 0; sort < 3; sort++)
        for (int desc = 0; desc < 2; desc++) {
            memset(&q, 0, sizeof q);
            q.sort = sort;
            q.desc = desc;
            check_query(tx, f->ds, all, nall, &q); /* no filter */
            for (size_t i = 0; i < nf; i++) {
                q.nfilters = 1;
                q.filters[0] = filters[i];
                check_query(tx, f->ds, all, nall, &q);
                for (size_t j = 0; j < nf; j += 3) { /* a sample of the pairs */
                    q.nfilters = 2;
                    q.filters[1] = filters[(i + j) % nf];
                    check_query(tx, f->ds, all, nall, &q);
                }
            }
        }

    /* Shapes the interface refuses. */
    memset(&q, 0, sizeof q);
    q.limit = 10;
    q.nfilters = 1;
    q.filters[0].attr = AHL_SEARCH_PATIENT_ID;
    q.filters[0].between = true;
    q.filters[0].text[0] = q.filters[0].text[1] = "P1";
    assert_int_equal(ahl_store_search_query(tx, f->ds, &q, collect_row, NULL), AHL_EINVAL);
    q.filters[0].between = false;
    q.filters[0].text[0] = NULL;
    assert_int_equal(ahl_store_search_query(tx, f->ds, &q, collect_row, NULL), AHL_EINVAL);
    q.filters[0].attr = AHL_SEARCH_ATTR_COUNT;
    assert_int_equal(ahl_store_search_query(tx, f->ds, &q, collect_row, NULL), AHL_EINVAL);
    q.nfilters = 0;
    q.limit = 0;
    assert_int_equal(ahl_store_search_query(tx, f->ds, &q, collect_row, NULL), AHL_EINVAL);
    ahl_store_rollback(tx);
    fx_free(f);
}

/* ---- query plans ---- */

struct plan {
    char text[2048];
    bool table_scan;
};

static int plan_line(void *ctx, const char *line)
{
    struct plan *p = ctx;
    size_t n = strlen(p->text);
    snprintf(p->text + n, sizeof p->text - n, "%s\n", line);
    /* "SCAN search" without an index is a full table scan; "SEARCH ... USING INDEX" and
     * "USE TEMP B-TREE" are not. */
    if (!strncmp(line, "SCAN", 4) && !strstr(line, "USING"))
        p->table_scan = true;
    return 0;
}

/* Whether a PostgreSQL plan reads only indexes, each with a condition on lead (the column every
 * index of the tables begins with): no sequential scan, and every index condition names it. */
static bool pg_plan_indexed(const char *plan, const char *lead)
{
    int conds = 0;
    if (strstr(plan, "Seq Scan"))
        return false;
    for (const char *l = plan; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
        const char *end = strchr(l, '\n'), *c = strstr(l, "Index Cond: ");
        if (!c || (end && c > end))
            continue;
        const char *d = strstr(c, lead);
        if (!d || (end && d > end))
            return false;
        conds++;
    }
    return conds > 0;
}

/* On PostgreSQL: every shape on a few thousand rows of three data stores (enough for the
 * planner to weigh its indexes as on real data) is answered from indexes led by the data store,
 * never a sequential scan; an EQUAL identifier uses its own index, and a query without a filter
 * reads its order's index in order (no sort), and a cursor is a condition of the index. */
static void test_plans_pg(void)
{
    static const char *const want_index[AHL_SEARCH_ATTR_COUNT] = {
        [AHL_SEARCH_PATIENT_ID] = "search_patient",
        [AHL_SEARCH_ACCESSION_NUMBER] = "search_accession",
        [AHL_SEARCH_STUDY_ID] = "search_study_id",
        [AHL_SEARCH_STUDY_UID] = "search_study",
        [AHL_SEARCH_SERIES_UID] = "search_series",
    };
    struct fx *f = fx_new(NULL);
    assert_non_null(f);
    struct ahl_store_tx *tx;
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    for (int i = 0; i < 3000; i++) {
        struct ahl_search_row r;
        make_row(f->ds, i, &r);
        if (i % 3)
            snprintf(r.datastore_id, sizeof r.datastore_id, "%032x", 8u + (unsigned)(i % 3));
        snprintf(r.imageset_id, sizeof r.imageset_id, "%032x", (unsigned)i);
        snprintf(r.patient_id, sizeof r.patient_id, "P%d", i / 4);
        snprintf(r.accession_number, sizeof r.accession_number, "A%d", i);
        snprintf(r.study_id, sizeof r.study_id, "S%d", i / 2);
        snprintf(r.study_instance_uid, sizeof r.study_instance_uid, "1.2.%d", i / 2);
        snprintf(r.series_instance_uid, sizeof r.series_instance_uid, "1.2.%d.1", i);
        r.created_at_ms = 1000 + i * 10;
        r.updated_at_ms = 5000 + (i * 7919) % 30000;
        snprintf(r.study_date, sizeof r.study_date, "20%02d%02d%02d", i % 20, 1 + i % 12,
                 1 + i % 28);
        assert_int_equal(ahl_store_search_put(tx, &r), 0);
    }
    assert_int_equal(ahl_store_commit(tx), 0);
    assert_int_equal(ahl_test_pg_exec(f->dir, "ANALYZE search", NULL, 0), 0);
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    struct ahl_search_filter filters[32];
    size_t nf = make_filters(filters);
    for (size_t i = 0; i < nf; i++) /* values present in the rows above */
        if (filters[i].attr == AHL_SEARCH_PATIENT_ID)
            filters[i].text[0] = "P30";
    for (int sort = 0; sort < 3; sort++)
        for (int desc = 0; desc < 2; desc++)
            for (int cursor = 0; cursor < 2; cursor++)
                for (size_t i = 0; i <= nf; i++) {
                    struct ahl_search_query q;
                    struct plan p = {.text = ""};
                    memset(&q, 0, sizeof q);
                    q.sort = sort;
                    q.desc = desc;
                    q.limit = 51;
                    q.after.set = cursor;
                    q.after.ms = 9000;
                    snprintf(q.after.dt, sizeof q.after.dt, "20100101000000000000");
                    snprintf(q.after.imageset_id, sizeof q.after.imageset_id, "%032x", 500u);
                    if (i < nf) {
                        q.nfilters = 1;
                        q.filters[0] = filters[i];
                    }
                    assert_int_equal(ahl_store_search_plan(tx, f->ds, &q, plan_line, &p), 0);
                    if (!pg_plan_indexed(p.text, "datastore_id = "))
                        fail_msg("not from an index led by the data store:\n%s", p.text);
                    int a = i < nf ? q.filters[0].attr : -1;
                    const char *w = a >= 0 ? want_index[a] : NULL;
                    if (w && !strstr(p.text, w))
                        fail_msg("filter %zu: want %s, plan:\n%s", i, w, p.text);
                    /* Without a filter the order's index is read in order; with one the
                     * planner may rather sort the few rows it selects. */
                    bool presorted = a < 0;
                    if (presorted && !cursor && strstr(p.text, "Sort"))
                        fail_msg("filter %zu sorts:\n%s", i, p.text);
                    if (presorted && cursor && !strstr(p.text, "AND (ROW("))
                        fail_msg("filter %zu: cursor not in the index range:\n%s", i, p.text);
                }
    ahl_store_rollback(tx);
    fx_free(f);
}

static void test_plans(void **state)
{
    (void)state;
    if (ahl_test_store_is_pg()) {
        test_plans_pg();
        return;
    }
    static const char *const want_index[AHL_SEARCH_ATTR_COUNT] = {
        [AHL_SEARCH_PATIENT_ID] = "search_patient (datastore_id=? AND patient_id=?",
        [AHL_SEARCH_ACCESSION_NUMBER] = "search_accession (datastore_id=? AND accession_number=?",
        [AHL_SEARCH_STUDY_ID] = "search_study_id (datastore_id=? AND study_id=?",
        [AHL_SEARCH_STUDY_UID] = "search_study (datastore_id=? AND study_instance_uid=?",
        [AHL_SEARCH_SERIES_UID] = "search_series (datastore_id=? AND series_instance_uid=?",
        [AHL_SEARCH_IS_PRIMARY] = NULL, /* depends on the sort: see below */
        [AHL_SEARCH_CREATED_AT] = "search_created (datastore_id=? AND created_at",
        [AHL_SEARCH_UPDATED_AT] = "search_updated (datastore_id=? AND updated_at",
        [AHL_SEARCH_STUDY_DATE_TIME] = "search_study_dt (datastore_id=? AND study_dt",
    };
    struct fx *f = fx_new(NULL);
    assert_non_null(f);
    struct ahl_store_tx *tx;
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    struct ahl_search_filter filters[32];
    size_t nf = make_filters(filters);
    for (int sort = 0; sort < 3; sort++)
        for (int desc = 0; desc < 2; desc++)
            for (int cursor = 0; cursor < 2; cursor++)
                for (size_t i = 0; i <= nf; i++) {
                    struct ahl_search_query q;
                    struct plan p = {.text = ""};
                    memset(&q, 0, sizeof q);
                    q.sort = sort;
                    q.desc = desc;
                    q.limit = 51;
                    q.after.set = cursor;
                    if (i < nf) {
                        q.nfilters = 1;
                        q.filters[0] = filters[i];
                    }
                    assert_int_equal(ahl_store_search_plan(tx, f->ds, &q, plan_line, &p), 0);
                    if (p.table_scan || !strstr(p.text, "USING INDEX"))
                        fail_msg("a table scan:\n%s", p.text);
                    const char *w = i < nf ? want_index[q.filters[0].attr] : NULL;
                    if (i < nf && q.filters[0].attr == AHL_SEARCH_IS_PRIMARY)
                        w = sort == AHL_SEARCH_SORT_UPDATED_AT ? "search_primary" : NULL;
                    if (w && !strstr(p.text, w))
                        fail_msg("filter %zu: want %s, plan:\n%s", i, w, p.text);
                    /* The default order with an identifier filter or none needs no sort. */
                    bool presorted = sort == AHL_SEARCH_SORT_UPDATED_AT &&
                                     (i == nf || q.filters[0].attr <= AHL_SEARCH_IS_PRIMARY ||
                                      q.filters[0].attr == AHL_SEARCH_UPDATED_AT);
                    if (presorted && strstr(p.text, "TEMP B-TREE"))
                        fail_msg("filter %zu sorts:\n%s", i, p.text);
                    /* The cursor is an index range when the index is in sort order. */
                    if (presorted && cursor && i < nf &&
                        q.filters[0].attr <= AHL_SEARCH_IS_PRIMARY &&
                        !strstr(p.text, "(updated_at,imageset_id)"))
                        fail_msg("filter %zu: cursor not in the index range:\n%s", i, p.text);
                }
    ahl_store_rollback(tx);
    fx_free(f);
}

/* ---- frame index ---- */

static void test_frames(void **state)
{
    (void)state;
    struct fx *f = fx_new(NULL);
    assert_non_null(f);
    struct ahl_store_tx *tx;
    struct ahl_frame_rec r, got;
    const char *a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", *b = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    for (int i = 0; i < 3; i++) {
        memset(&r, 0, sizeof r);
        snprintf(r.imageset_id, sizeof r.imageset_id, "%s", a);
        snprintf(r.frame_id, sizeof r.frame_id, "%032x", (unsigned)i);
        snprintf(r.transfer_syntax, sizeof r.transfer_syntax, "1.2.840.10008.1.2.4.%d", 202 + i);
        assert_int_equal(ahl_store_frame_put(tx, &r), 0);
        assert_int_equal(ahl_store_frame_put(tx, &r), 0); /* idempotent */
    }
    assert_int_equal(ahl_store_frame_get(tx, a, "00000000000000000000000000000001", &got), 0);
    assert_string_equal(got.transfer_syntax, "1.2.840.10008.1.2.4.203");
    assert_string_equal(got.imageset_id, a);
    assert_int_equal(ahl_store_frame_get(tx, b, "00000000000000000000000000000001", &got),
                     AHL_ENOTFOUND);
    assert_int_equal(ahl_store_frame_copy(tx, a, b), 0);
    assert_int_equal(ahl_store_frame_copy(tx, a, b), 0);
    assert_int_equal(ahl_store_frame_get(tx, b, "00000000000000000000000000000002", &got), 0);
    assert_string_equal(got.transfer_syntax, "1.2.840.10008.1.2.4.204");
    assert_int_equal(ahl_store_frame_delete_set(tx, a), 0);
    assert_int_equal(ahl_store_frame_get(tx, a, "00000000000000000000000000000002", &got),
                     AHL_ENOTFOUND);
    assert_int_equal(ahl_store_frame_get(tx, b, "00000000000000000000000000000000", &got), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
    fx_free(f);
}

/* ---- migration from schema 1 ---- */

static void db_exec(const char *path, const char *sql)
{
    sqlite3 *db;
    char *msg = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

static void test_migration(void **state)
{
    if (ahl_test_store_is_pg()) {
        print_message("skipped on PostgreSQL: the schema-1 migration is the SQLite file's\n");
        skip();
    }
    (void)state;
    struct fx *f = fx_new(NULL);
    assert_non_null(f);
    struct ahl_store_tx *tx;
    struct ahl_search_row r;
    make_row(f->ds, 6, &r); /* study 20200102, time 101500 */
    struct ahl_imageset_rec sets[3];
    memset(sets, 0, sizeof sets);
    for (int i = 0; i < 3; i++) {
        snprintf(sets[i].id, sizeof sets[i].id, "%032x", 0xa0u + (unsigned)i);
        snprintf(sets[i].datastore_id, sizeof sets[i].datastore_id, "%s", f->ds);
        snprintf(sets[i].state, sizeof sets[i].state, i == 2 ? "DELETED" : "ACTIVE");
        sets[i].latest_version = 1;
        sets[i].created_at_ms = 1000;
        sets[i].updated_at_ms = 5000 + i;
        sets[i].last_accessed_at_ms = 9999; /* gone below: schema 1 never wrote it */
    }
    memcpy(r.imageset_id, sets[0].id, sizeof r.imageset_id);
    r.last_accessed_at_ms = 9999;
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ahl_store_imageset_put(tx, &sets[i], true), 0);
    assert_int_equal(ahl_store_search_put(tx, &r), 0);
    assert_int_equal(ahl_store_commit(tx), 0);
    ahl_store_close(f->store);
    f->store = NULL;

    /* Take the database back to schema 1 as that version left it. */
    char path[128];
    snprintf(path, sizeof path, "%s/%s", f->dir, AHL_STORE_SQLITE_FILE);
    db_exec(path, "DROP TABLE frame_fence;"
                  "DROP INDEX imageset_deleted; ALTER TABLE search DROP COLUMN last_accessed_at;"
                  "UPDATE imageset SET last_accessed_at = 0;"
                  "DROP TABLE event_outbox; DROP TABLE event_lease;"
                  "DROP INDEX job_open; ALTER TABLE job DROP COLUMN claimed_by;"
                  "ALTER TABLE job DROP COLUMN options;"
                  "ALTER TABLE job DROP COLUMN lease_until; ALTER TABLE job DROP COLUMN attempts;"
                  "DROP TABLE qido_backfill; DROP TABLE qido_instance; DROP TABLE qido_series;"
                  "DROP TABLE qido_study_modality; DROP TABLE qido_study; DROP TABLE qido_set;"
                  "DROP TABLE frame_backfill; DROP TABLE frame; DROP INDEX search_patient; DROP "
                  "INDEX search_accession;"
                  "DROP INDEX search_study_id; DROP INDEX search_study; DROP INDEX search_series;"
                  "DROP INDEX search_primary; DROP INDEX search_updated; DROP INDEX search_created;"
                  "DROP INDEX search_study_dt; ALTER TABLE search DROP COLUMN study_dt;"
                  "CREATE INDEX search_patient ON search(datastore_id, patient_id);"
                  "CREATE INDEX search_study ON search(datastore_id, study_instance_uid);"
                  "CREATE INDEX search_series ON search(datastore_id, series_instance_uid);"
                  "CREATE INDEX search_accession ON search(datastore_id, accession_number);"
                  "CREATE INDEX search_study_id ON search(datastore_id, study_id);"
                  "CREATE INDEX search_updated ON search(datastore_id, updated_at);"
                  "CREATE INDEX search_created ON search(datastore_id, created_at);"
                  "CREATE INDEX search_study_date ON search(datastore_id, study_date, study_time);"
                  "PRAGMA user_version=1;");
    assert_int_equal(ahl_test_store_open(f->dir, 4, &f->store), 0);
    assert_int_equal(ahl_store_begin(f->store, false, &tx), 0);
    struct ahl_search_row got;
    assert_int_equal(ahl_store_search_get(tx, r.imageset_id, &got), 0);
    assert_string_equal(got.study_dt, "20200102101500000000");
    /* Step 7: a set's last write stands for its last access, on its row and its search row. */
    assert_int_equal(got.last_accessed_at_ms, 5000);
    struct ahl_imageset_rec set1;
    assert_int_equal(ahl_store_imageset_get(tx, NULL, sets[1].id, &set1), 0);
    assert_int_equal(set1.last_accessed_at_ms, 5001);
    struct ahl_search_query q;
    memset(&q, 0, sizeof q);
    q.limit = 5;
    q.nfilters = 1;
    q.filters[0].attr = AHL_SEARCH_STUDY_DATE_TIME;
    q.filters[0].text[0] = "20200102101500000000";
    struct collect *c = calloc(1, sizeof *c);
    assert_int_equal(ahl_store_search_query(tx, f->ds, &q, collect_row, c), 0);
    assert_int_equal(c->n, 1);
    free(c);
    struct ahl_frame_rec fr;
    assert_int_equal(ahl_store_frame_get(tx, r.imageset_id, r.imageset_id, &fr), AHL_ENOTFOUND);
    ahl_store_rollback(tx);

    /* The live sets stored before the frame index wait for the engine to index them. */
    char id[AHL_ID_LEN + 1];
    assert_int_equal(ahl_store_begin(f->store, true, &tx), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ahl_store_frame_backfill_next(tx, id), 0);
        assert_string_equal(id, sets[i].id);
        assert_int_equal(ahl_store_frame_backfill_done(tx, id), 0);
    }
    assert_int_equal(ahl_store_frame_backfill_next(tx, id), AHL_ENOTFOUND);
    assert_int_equal(ahl_store_commit(tx), 0);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_study_dt_key), cmocka_unit_test(test_query_semantics),
        cmocka_unit_test(test_plans),        cmocka_unit_test(test_frames),
        cmocka_unit_test(test_migration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
