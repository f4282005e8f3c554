/* The two backends answer alike: the same generated search rows and QIDO-RS rows (a few hundred,
 * with ties in every order, mixed case, non-ASCII text, LIKE's own '%' and '_' in values, absent
 * and malformed dates and times) written to SQLite and to PostgreSQL, then many query shapes of
 * both search interfaces asked of each: the same rows in the same order page by page, and the
 * same refusals; and every QIDO-RS shape's plan on PostgreSQL reads indexes. Runs only against
 * PostgreSQL (AHL_TEST_DATABASE, the unit_pg_ run), the SQLite store opened beside it: once in
 * that database, and once more in a database of its server whose collation is en_US.utf8. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <libpq-fe.h>

#include "store/store.h"
#include "store_fixture.h"

#include "base/err.h"

struct both {
    char dir[2][64];
    struct ahl_store *s[2]; /* SQLite, PostgreSQL */
};

#define DS "0123456789abcdef0123456789abcdef"
#define DS2 "fedcba9876543210fedcba9876543210"

static uint32_t rnd_state = 12345;

static uint32_t rnd(uint32_t n)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return (rnd_state >> 8) % n;
}

#define PICK(a) (a)[rnd(sizeof(a) / sizeof *(a))]

static void both_open(struct both *b)
{
    for (int i = 0; i < 2; i++) {
        snprintf(b->dir[i], sizeof b->dir[i], "/tmp/ahl-backends-XXXXXX");
        assert_non_null(mkdtemp(b->dir[i]));
    }
    assert_int_equal(ahl_store_open_sqlite(b->dir[0], 2, &b->s[0]), 0);
    assert_int_equal(ahl_test_store_open(b->dir[1], 2, &b->s[1]), 0);
}

static void both_close(struct both *b)
{
    for (int i = 0; i < 2; i++) {
        char cmd[128];
        ahl_store_close(b->s[i]);
        snprintf(cmd, sizeof cmd, "rm -rf %s", b->dir[i]);
        assert_int_equal(system(cmd), 0);
    }
}

/* ---- what a query answered, as text ---- */

struct answer {
    char *text;
    size_t n, cap;
    unsigned rows;
};

static void answer_add(struct answer *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void answer_add(struct answer *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (a->n + (size_t)w + 1 > a->cap) {
        a->cap = (a->n + (size_t)w + 1) * 2;
        a->text = realloc(a->text, a->cap);
        assert_non_null(a->text);
    }
    va_start(ap, fmt);
    vsnprintf(a->text + a->n, a->cap - a->n, fmt, ap);
    va_end(ap);
    a->n += (size_t)w;
}

static void answer_reset(struct answer *a)
{
    a->n = 0;
    a->rows = 0;
    if (a->text)
        a->text[0] = '\0';
}

/* ---- SearchImageSets ---- */

static const char *const pids[] = {"P1", "p1", "P2", "Ünïcödé", "a b", "", "P_1", "P%1", "P1 "};
static const char *const dates[] = {"20200101", "20200102", "", "bad", "19991231", "20200101"};
static const char *const times[] = {"", "1015", "101500.5", "23", "10:15:00", "x", "235959.999999"};

static void make_search_row(int i, int gen, struct ahl_search_row *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->imageset_id, sizeof r->imageset_id, "%032x", (unsigned)(i * 2654435761u % 1000003));
    snprintf(r->datastore_id, sizeof r->datastore_id, "%s", i % 5 == 4 ? DS2 : DS);
    r->is_primary = rnd(3) != 0;
    r->version = 1 + (uint64_t)gen;
    r->created_at_ms = 1000 + rnd(40) * 10;
    r->updated_at_ms = 5000 + rnd(30) * 10 + gen * 7;
    snprintf(r->patient_id, sizeof r->patient_id, "%s", PICK(pids));
    snprintf(r->patient_name, sizeof r->patient_name, "Name^%d", i % 9);
    snprintf(r->accession_number, sizeof r->accession_number, "A%u", rnd(6));
    snprintf(r->study_id, sizeof r->study_id, "S%u", rnd(8));
    snprintf(r->study_instance_uid, sizeof r->study_instance_uid, "1.2.%u", rnd(12));
    snprintf(r->series_instance_uid, sizeof r->series_instance_uid, "%.60s.%u",
             r->study_instance_uid, rnd(2));
    snprintf(r->study_date, sizeof r->study_date, "%s", PICK(dates));
    snprintf(r->study_time, sizeof r->study_time, "%s", PICK(times));
    snprintf(r->modality, sizeof r->modality, "%s", i % 2 ? "CT" : "MR");
    r->has_series_number = rnd(4) != 0;
    r->series_number = (int32_t)rnd(5) - 1;
    r->number_of_series = rnd(4);
    r->number_of_instances = rnd(100);
}

static int search_row_text(void *ctx, const struct ahl_search_row *r)
{
    struct answer *a = ctx;
    a->rows++;
    answer_add(a, "%s|%s|%d|%llu|%lld|%lld|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%d:%d|%u|%u|%s\n",
               r->imageset_id, r->datastore_id, r->is_primary, (unsigned long long)r->version,
               (long long)r->created_at_ms, (long long)r->updated_at_ms, r->patient_id,
               r->patient_name, r->patient_birth_date, r->patient_sex, r->study_instance_uid,
               r->study_id, r->study_description, r->accession_number, r->study_date, r->study_time,
               r->series_instance_uid, r->modality, r->body_part_examined, r->has_series_number,
               r->series_number, r->number_of_series, r->number_of_instances, r->study_dt);
    return 0;
}

/* Pages through q on both stores with the cursor, comparing every page; returns the rows. */
static unsigned compare_search(struct both *b, struct ahl_search_query *q, const char *what)
{
    struct answer got[2] = {{0}, {0}};
    struct ahl_store_tx *tx[2];
    struct ahl_search_row last;
    unsigned total = 0;
    for (int k = 0; k < 2; k++)
        assert_int_equal(ahl_store_begin(b->s[k], false, &tx[k]), 0);
    memset(&q->after, 0, sizeof q->after);
    for (int page = 0; page < 200; page++) {
        int rc[2];
        for (int k = 0; k < 2; k++) {
            answer_reset(&got[k]);
            rc[k] = ahl_store_search_query(tx[k], DS, q, search_row_text, &got[k]);
        }
        if (rc[0] != rc[1] ||
            strcmp(got[0].text ? got[0].text : "", got[1].text ? got[1].text : ""))
            fail_msg("%s, page %d: SQLite %d:\n%s\nPostgreSQL %d:\n%s", what, page, rc[0],
                     got[0].text ? got[0].text : "", rc[1], got[1].text ? got[1].text : "");
        total += got[0].rows;
        if (rc[0] < 0 || got[0].rows < q->limit)
            break;
        /* The next page starts after the last row (read back whole from SQLite). */
        const char *l = got[0].text + got[0].n - 1;
        while (l > got[0].text && l[-1] != '\n')
            l--;
        char id[AHL_ID_LEN + 1];
        snprintf(id, sizeof id, "%.32s", l);
        assert_int_equal(ahl_store_search_get(tx[0], id, &last), 0);
        q->after.set = true;
        q->after.ms =
            q->sort == AHL_SEARCH_SORT_CREATED_AT ? last.created_at_ms : last.updated_at_ms;
        memcpy(q->after.dt, last.study_dt, sizeof q->after.dt);
        memcpy(q->after.imageset_id, last.imageset_id, sizeof q->after.imageset_id);
    }
    for (int k = 0; k < 2; k++) {
        ahl_store_rollback(tx[k]);
        free(got[k].text);
    }
    return total;
}

static void test_search(void **state)
{
    (void)state;
    rnd_state = 12345;
    struct both b;
    both_open(&b);
    struct ahl_store_tx *tx[2];
    struct ahl_search_row r;
    enum { N = 400 };
    for (int k = 0; k < 2; k++)
        assert_int_equal(ahl_store_begin(b.s[k], true, &tx[k]), 0);
    /* Rows, then new versions of some, then deletes: every write goes to both. */
    for (int gen = 0; gen < 3; gen++)
        for (int i = 0; i < N; i++) {
            if (gen && rnd(4))
                continue;
            uint32_t seed = rnd_state;
            for (int k = 0; k < 2; k++) {
                rnd_state = seed;
                make_search_row(i, gen, &r);
                if (gen == 2 && rnd(2))
                    assert_int_equal(ahl_store_search_delete(tx[k], r.imageset_id), 0);
                else
                    assert_int_equal(ahl_store_search_put(tx[k], &r), 0);
            }
        }
    for (int k = 0; k < 2; k++)
        assert_int_equal(ahl_store_commit(tx[k]), 0);

    struct ahl_search_filter f[40];
    size_t nf = 0;
    const char *texts[] = {"P1", "p1", "Ünïcödé", "P_1", "P%1", "P1 ", "", "\xff", "nobody"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
        f[nf++] = (struct ahl_search_filter){.attr = AHL_SEARCH_PATIENT_ID, .text = {texts[i]}};
    f[nf++] = (struct ahl_search_filter){.attr = AHL_SEARCH_ACCESSION_NUMBER, .text = {"A3"}};
    f[nf++] = (struct ahl_search_filter){.attr = AHL_SEARCH_STUDY_ID, .text = {"S5"}};
    f[nf++] = (struct ahl_search_filter){.attr = AHL_SEARCH_STUDY_UID, .text = {"1.2.7"}};
    f[nf++] = (struct ahl_search_filter){.attr = AHL_SEARCH_SERIES_UID, .text = {"1.2.7.1"}};
    f[nf++] = (struct ahl_search_filter){.attr = AHL_SEARCH_IS_PRIMARY, .flag = true};
    f[nf++] = (struct ahl_search_filter){.attr = AHL_SEARCH_IS_PRIMARY, .flag = false};
    f[nf++] = (struct ahl_search_filter){.attr = AHL_SEARCH_CREATED_AT, .ms = {1100}};
    f[nf++] = (struct ahl_search_filter){
        .attr = AHL_SEARCH_CREATED_AT, .between = true, .ms = {1050, 1250}};
    f[nf++] = (struct ahl_search_filter){.attr = AHL_SEARCH_UPDATED_AT, .ms = {5100}};
    f[nf++] = (struct ahl_search_filter){
        .attr = AHL_SEARCH_UPDATED_AT, .between = true, .ms = {5000, 5150}};
    f[nf++] = (struct ahl_search_filter){.attr = AHL_SEARCH_STUDY_DATE_TIME,
                                         .text = {"20200101101500000000"}};
    f[nf++] = (struct ahl_search_filter){.attr = AHL_SEARCH_STUDY_DATE_TIME,
                                         .between = true,
                                         .text = {"20200101", "20200101235959999999"}};
    f[nf++] = (struct ahl_search_filter){
        .attr = AHL_SEARCH_STUDY_DATE_TIME, .between = true, .text = {"", "2"}};
    /* Bounds that are not UTF-8 compare by their bytes in SQLite. */
    f[nf++] = (struct ahl_search_filter){
        .attr = AHL_SEARCH_STUDY_DATE_TIME, .between = true, .text = {"2", "20200101\xff"}};
    f[nf++] = (struct ahl_search_filter){.attr = AHL_SEARCH_STUDY_DATE_TIME,
                                         .between = true,
                                         .text = {"20200101101500000000\xc3", "3"}};
    unsigned shapes = 0, rows = 0;
    for (int sort = 0; sort < 3; sort++)
        for (int desc = 0; desc < 2; desc++)
            for (size_t i = 0; i <= nf; i++)
                for (size_t j = i; j <= nf; j += (i == nf ? 1 : 5)) {
                    struct ahl_search_query q = {.sort = sort, .desc = desc, .limit = 9};
                    if (i < nf)
                        q.filters[q.nfilters++] = f[i];
                    if (j < nf && j != i)
                        q.filters[q.nfilters++] = f[j];
                    char what[64];
                    snprintf(what, sizeof what, "sort %d desc %d filters %zu %zu", sort, desc, i,
                             j);
                    rows += compare_search(&b, &q, what);
                    shapes++;
                }
    /* Refusals. */
    struct ahl_search_query bad[] = {
        {.limit = 0},
        {.limit = 1001},
        {.limit = 5, .sort = 3},
        {.limit = 5, .nfilters = 3},
        {.limit = 5, .nfilters = 1, .filters = {{.attr = AHL_SEARCH_PATIENT_ID}}},
        {.limit = 5,
         .nfilters = 1,
         .filters = {{.attr = AHL_SEARCH_PATIENT_ID, .between = true, .text = {"a", "b"}}}},
        {.limit = 5, .nfilters = 1, .filters = {{.attr = AHL_SEARCH_ATTR_COUNT}}},
        {.limit = 5,
         .nfilters = 1,
         .filters = {{.attr = AHL_SEARCH_STUDY_DATE_TIME, .between = true, .text = {"a"}}}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char what[32];
        snprintf(what, sizeof what, "refusal %zu", i);
        compare_search(&b, &bad[i], what);
    }
    print_message("%u search shapes, %u rows compared\n", shapes, rows);
    assert_true(rows > 10000);
    both_close(&b);
}

/* ---- QIDO-RS ---- */

static const char *const pnames[] = {
    "Doe^John",   "DOE^JANE",   "doe^jim",   "Müller^Jörg", "O'Brien^Pat",
    "Smith John", "Lee,Ann",    "Kim=Ki",    "100%_Real^X", "Back\\Slash",
    "",           "Jo^Doe Ann", "ÉLISE^éva", "john^Smith",  "Under_score^Ann",
    "Star*Name",  "Q?Mark",     "[Br]acket"};
static const char *const qdates[] = {"20200101", "20200215", "", "19991231", "20201231"};
static const char *const qtimes[] = {"1015", "101500.123", "", "23", "000000", "10:15:01", "2359"};
static const char *const mods[] = {"CT", "MR", "US", "", "SR", "CT"};
static const char *const parts[] = {"HEAD", "CHEST", "", "head"};
static const char *const classes[] = {"1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4"};

struct qset {
    struct ahl_qido_set set;
    int nseries;
};

/* The first store written: 0 for both, 1 for PostgreSQL alone (the plans' larger data). */
static int k0;

static void put_all(struct both *b, struct ahl_store_tx *tx[2], int which,
                    const void *rec) /* which: 0 set, 1 series, 2 instance */
{
    for (int k = k0; k < 2; k++) {
        int rc = which == 0   ? ahl_store_qido_set_put(tx[k], rec)
                 : which == 1 ? ahl_store_qido_series_put(tx[k], rec)
                              : ahl_store_qido_instance_put(tx[k], rec);
        assert_int_equal(rc, 0);
    }
    (void)b;
}

static void refresh_all(struct ahl_store_tx *tx[2], const char *ds, const char *study, bool attrs)
{
    for (int k = k0; k < 2; k++)
        assert_int_equal(ahl_store_qido_study_refresh(tx[k], ds, study, attrs), 0);
}

static void make_series(const struct ahl_qido_set *s, int j, int64_t t, struct ahl_qido_series *e)
{
    memset(e, 0, sizeof *e);
    memcpy(e->imageset_id, s->imageset_id, sizeof e->imageset_id);
    memcpy(e->datastore_id, s->datastore_id, sizeof e->datastore_id);
    memcpy(e->study_uid, s->study_uid, sizeof e->study_uid);
    snprintf(e->series_uid, sizeof e->series_uid, "%.40s.%.8s.%d", s->study_uid,
             s->imageset_id + 24, j);
    e->updated_at_ms = t;
    snprintf(e->modality, sizeof e->modality, "%s", PICK(mods));
    e->has_series_number = rnd(5) != 0;
    e->series_number = (int32_t)rnd(4);
    snprintf(e->series_description, sizeof e->series_description, "%s%u",
             rnd(2) ? "Axial " : "ax_ial%", rnd(3));
    snprintf(e->series_date, sizeof e->series_date, "%s", PICK(qdates));
    snprintf(e->series_time, sizeof e->series_time, "%s", PICK(qtimes));
    snprintf(e->body_part_examined, sizeof e->body_part_examined, "%s", PICK(parts));
    e->number_of_instances = rnd(5);
}

static int qido_row_text(void *ctx, const struct ahl_qido_row *r)
{
    struct answer *a = ctx;
    const struct ahl_qido_set *s = &r->study;
    const struct ahl_qido_series *e = &r->series;
    const struct ahl_qido_instance *i = &r->instance;
    a->rows++;
    answer_add(a, "%s|%s|%lld|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%u|%u", s->imageset_id,
               s->datastore_id, (long long)s->updated_at_ms, s->study_uid, s->patient_name,
               s->patient_id, s->patient_birth_date, s->patient_birth_time, s->patient_sex,
               s->study_date, s->study_time, s->accession_number, s->referring_physician_name,
               s->study_description, s->study_id, r->modalities_in_study, r->study_series,
               r->study_instances);
    answer_add(a, " / %s|%s|%s|%s|%lld|%s|%d:%d|%s|%s|%s|%s|%u", e->imageset_id, e->datastore_id,
               e->study_uid, e->series_uid, (long long)e->updated_at_ms, e->modality,
               e->has_series_number, e->series_number, e->series_description, e->series_date,
               e->series_time, e->body_part_examined, e->number_of_instances);
    answer_add(a, " / %s|%s|%s|%s|%d:%d|%u|%u|%u|%d:%u\n", i->imageset_id, i->series_uid,
               i->sop_uid, i->sop_class_uid, i->has_instance_number, i->instance_number, i->rows,
               i->columns, i->number_of_frames, i->has_warning_reason, i->warning_reason);
    return 0;
}

static unsigned compare_qido(struct both *b, const struct ahl_qido_query *q, const char *what)
{
    struct answer got[2] = {{0}, {0}};
    struct ahl_store_tx *tx[2];
    int rc[2];
    for (int k = 0; k < 2; k++) {
        assert_int_equal(ahl_store_begin(b->s[k], false, &tx[k]), 0);
        answer_reset(&got[k]);
        rc[k] = ahl_store_qido_query(tx[k], DS, q, qido_row_text, &got[k]);
        ahl_store_rollback(tx[k]);
    }
    if (rc[0] != rc[1] || strcmp(got[0].text ? got[0].text : "", got[1].text ? got[1].text : ""))
        fail_msg("%s: SQLite %d:\n%s\nPostgreSQL %d:\n%s", what, rc[0],
                 got[0].text ? got[0].text : "", rc[1], got[1].text ? got[1].text : "");
    unsigned n = got[0].rows;
    for (int k = 0; k < 2; k++)
        free(got[k].text);
    return n;
}

/* Fills the stores: sets of studies (some studies with two sets), their series and instances,
 * then edits as the engine makes them: names (attributes only), series removed, sets removed. */
static void fill_qido(struct both *b, int nsets)
{
    struct qset *sets = calloc((size_t)nsets, sizeof *sets);
    assert_non_null(sets);
    struct ahl_store_tx *tx[2];
    for (int k = k0; k < 2; k++)
        assert_int_equal(ahl_store_begin(b->s[k], true, &tx[k]), 0);
    for (int n = 0; n < nsets; n++) {
        struct ahl_qido_set *s = &sets[n].set;
        memset(s, 0, sizeof *s);
        snprintf(s->imageset_id, sizeof s->imageset_id, "%032x", (unsigned)(n * 40503u % 65521));
        snprintf(s->datastore_id, sizeof s->datastore_id, "%s", n % 7 == 6 ? DS2 : DS);
        s->root[0] = (uint8_t)n;
        s->updated_at_ms = 10000 + rnd(25) * 100; /* ties between studies */
        snprintf(s->study_uid, sizeof s->study_uid, "1.3.%d",
                 n % (nsets * 2 / 3)); /* 30 with two sets */
        snprintf(s->patient_name, sizeof s->patient_name, "%s", PICK(pnames));
        snprintf(s->patient_id, sizeof s->patient_id, "%s", PICK(pids));
        snprintf(s->patient_birth_date, sizeof s->patient_birth_date, "%s", PICK(qdates));
        snprintf(s->patient_birth_time, sizeof s->patient_birth_time, "%s", PICK(qtimes));
        snprintf(s->patient_sex, sizeof s->patient_sex, "%s", rnd(2) ? "F" : "M");
        snprintf(s->study_date, sizeof s->study_date, "%s", PICK(qdates));
        snprintf(s->study_time, sizeof s->study_time, "%s", PICK(qtimes));
        snprintf(s->accession_number, sizeof s->accession_number, "ACC%u", rnd(10));
        snprintf(s->referring_physician_name, sizeof s->referring_physician_name, "%s",
                 PICK(pnames));
        snprintf(s->study_description, sizeof s->study_description, "%s", PICK(pnames));
        snprintf(s->study_id, sizeof s->study_id, "ID%u", rnd(7));
        put_all(b, tx, 0, s);
        sets[n].nseries = 1 + (int)rnd(3);
        for (int j = 0; j < sets[n].nseries; j++) {
            struct ahl_qido_series e;
            make_series(s, j, s->updated_at_ms, &e);
            put_all(b, tx, 1, &e);
            for (unsigned m = 0, ni = rnd(5); m < ni; m++) {
                struct ahl_qido_instance in = {0};
                memcpy(in.imageset_id, e.imageset_id, sizeof in.imageset_id);
                memcpy(in.series_uid, e.series_uid, sizeof in.series_uid);
                snprintf(in.sop_uid, sizeof in.sop_uid, "%.60s.%u", e.series_uid, m * 7 % 5);
                snprintf(in.sop_class_uid, sizeof in.sop_class_uid, "%s", PICK(classes));
                in.has_instance_number = rnd(4) != 0;
                in.instance_number = (int32_t)rnd(3);
                in.rows = rnd(2) * 512;
                in.columns = rnd(2) * 256;
                in.number_of_frames = rnd(3);
                in.has_warning_reason = rnd(5) == 0;
                in.warning_reason = 0xB000 + rnd(2);
                put_all(b, tx, 2, &in);
            }
        }
        refresh_all(tx, s->datastore_id, s->study_uid, false);
    }
    /* One series in two primary sets of a study, updated at the same time: the series rows tie
     * on the whole order but for their row. */
    for (int n = 0; n < 3; n++) {
        struct ahl_qido_set s = sets[0].set;
        struct ahl_qido_series e;
        snprintf(s.imageset_id, sizeof s.imageset_id, "%032x", 0xabc0u + (unsigned)n);
        snprintf(s.datastore_id, sizeof s.datastore_id, "%s", DS);
        snprintf(s.study_uid, sizeof s.study_uid, "1.3.999");
        s.updated_at_ms = 10150;
        put_all(b, tx, 0, &s);
        make_series(&s, 0, s.updated_at_ms, &e);
        snprintf(e.series_uid, sizeof e.series_uid, "1.3.999.1");
        put_all(b, tx, 1, &e);
        struct ahl_qido_instance in = {0};
        memcpy(in.imageset_id, e.imageset_id, sizeof in.imageset_id);
        memcpy(in.series_uid, e.series_uid, sizeof in.series_uid);
        snprintf(in.sop_uid, sizeof in.sop_uid, "1.3.999.1.1");
        put_all(b, tx, 2, &in);
        refresh_all(tx, s.datastore_id, s.study_uid, false);
    }
    /* A name edit of a third of the sets: the set row, its series' time, the study's attributes. */
    for (int n = 0; n < nsets; n += 3) {
        struct ahl_qido_set *s = &sets[n].set;
        snprintf(s->patient_name, sizeof s->patient_name, "%s", PICK(pnames));
        s->updated_at_ms += 50 + rnd(3) * 100;
        put_all(b, tx, 0, s);
        for (int k = k0; k < 2; k++)
            assert_int_equal(ahl_store_qido_series_touch(tx[k], s->imageset_id, s->updated_at_ms),
                             0);
        refresh_all(tx, s->datastore_id, s->study_uid, true);
    }
    /* A series removed from some sets, and some sets removed. */
    for (int n = 1; n < nsets; n += 5) {
        struct ahl_qido_set *s = &sets[n].set;
        char series[AHL_QIDO_UID_LEN];
        snprintf(series, sizeof series, "%.40s.%.8s.0", s->study_uid, s->imageset_id + 24);
        for (int k = k0; k < 2; k++) {
            assert_int_equal(ahl_store_qido_series_delete(tx[k], s->imageset_id, series), 0);
            if (n % 2)
                assert_int_equal(ahl_store_qido_set_delete(tx[k], s->imageset_id), 0);
        }
        refresh_all(tx, s->datastore_id, s->study_uid, false);
    }
    for (int k = k0; k < 2; k++)
        assert_int_equal(ahl_store_commit(tx[k]), 0);
    free(sets);
}

static const char *const uid_list[] = {"1.3.4", "1.3.7", "1.3.7", "nope", "\xff", "1.3.11"};
static const char *const mod_list[] = {"MR", "SR", "\xc3("};

/* Filters of every key and match, with the levels taking each (bit 1 << level). */
static unsigned qido_filters(struct ahl_qido_filter *f, unsigned *levels)
{
    unsigned nf = 0;
#define F(lv, ...) (levels[nf] = (lv), f[nf++] = (struct ahl_qido_filter){__VA_ARGS__})
    const unsigned S = 1u << AHL_QIDO_STUDY, E = 1u << AHL_QIDO_SERIES, I = 1u << AHL_QIDO_INSTANCE;
    F(S | E | I, .key = AHL_QK_STUDY_UID, .match = AHL_QM_SINGLE, .value = "1.3.7");
    F(S | E | I, .key = AHL_QK_STUDY_UID, .match = AHL_QM_SINGLE, .value = "1.3.999");
    F(E | I, .key = AHL_QK_SERIES_UID, .match = AHL_QM_SINGLE, .value = "1.3.999.1");
    F(S | E | I, .key = AHL_QK_STUDY_UID, .match = AHL_QM_LIST, .list = uid_list, .nlist = 6);
    static const char *const pn_values[] = {
        "doe^john",    "DOE*",  "*doe*",   "d?e^j*",   "j*",      "*",           "müller*",
        "MÜLLER^JÖRG", "100%*", "100\\%*", "*_*",      "under_*", "back\\slash", "star*",
        "q?mark",      "[br]*", "*ann",    "\xff*",    "é*",      "É*",          "ki",
        "ann",         "john",  "Jo",      "smith j*", "?"};
    for (size_t i = 0; i < sizeof pn_values / sizeof *pn_values; i++) {
        int m = strpbrk(pn_values[i], "*?") ? AHL_QM_WILD : AHL_QM_SINGLE;
        F(S, .key = AHL_QK_PATIENT_NAME, .match = m, .value = pn_values[i]);
        if (i % 3 == 0)
            F(S, .key = AHL_QK_REFERRING, .match = m, .value = pn_values[i]);
    }
    F(S, .key = AHL_QK_PATIENT_ID, .match = AHL_QM_SINGLE, .value = "p1");
    F(S, .key = AHL_QK_PATIENT_ID, .match = AHL_QM_WILD, .value = "P?1");
    F(S, .key = AHL_QK_PATIENT_ID, .match = AHL_QM_WILD, .value = "P%*");
    F(S, .key = AHL_QK_PATIENT_ID, .match = AHL_QM_WILD, .value = "Ü*");
    F(S, .key = AHL_QK_BIRTH_DATE, .match = AHL_QM_RANGE, .lo = "19990101", .hi = "20200131");
    F(S, .key = AHL_QK_BIRTH_TIME, .match = AHL_QM_RANGE, .lo = "", .hi = "1015");
    F(S, .key = AHL_QK_STUDY_DATE, .match = AHL_QM_SINGLE, .value = "20200215");
    F(S, .key = AHL_QK_STUDY_DATE, .match = AHL_QM_RANGE, .lo = "20200101", .hi = "");
    F(S, .key = AHL_QK_STUDY_TIME, .match = AHL_QM_SINGLE, .value = "101500.123");
    F(S, .key = AHL_QK_STUDY_TIME, .match = AHL_QM_RANGE, .lo = "1015", .hi = "2300");
    F(S, .key = AHL_QK_ACCESSION, .match = AHL_QM_SINGLE, .value = "ACC3");
    F(S, .key = AHL_QK_MODALITIES, .match = AHL_QM_SINGLE, .value = "CT");
    F(S, .key = AHL_QK_MODALITIES, .match = AHL_QM_LIST, .list = mod_list, .nlist = 3);
    F(S, .key = AHL_QK_STUDY_DESC, .match = AHL_QM_WILD, .value = "*o*");
    F(S, .key = AHL_QK_STUDY_ID, .match = AHL_QM_SINGLE, .value = "ID2");
    F(E | I, .key = AHL_QK_SERIES_UID, .match = AHL_QM_SINGLE, .value = "1.3.7.000053bd.1");
    F(E, .key = AHL_QK_MODALITY, .match = AHL_QM_LIST, .list = mod_list, .nlist = 3);
    F(E, .key = AHL_QK_MODALITY, .match = AHL_QM_WILD, .value = "?R");
    F(E, .key = AHL_QK_SERIES_NUMBER, .match = AHL_QM_SINGLE, .value = "2");
    F(E, .key = AHL_QK_SERIES_NUMBER, .match = AHL_QM_SINGLE, .value = "4000000000");
    F(E, .key = AHL_QK_SERIES_DESC, .match = AHL_QM_WILD, .value = "ax_ial%*");
    F(E, .key = AHL_QK_SERIES_DESC, .match = AHL_QM_WILD, .value = "Ax*");
    F(E, .key = AHL_QK_SERIES_DATE, .match = AHL_QM_RANGE, .lo = "", .hi = "20200215");
    F(E, .key = AHL_QK_SERIES_TIME, .match = AHL_QM_RANGE, .lo = "10", .hi = "");
    F(E, .key = AHL_QK_BODY_PART, .match = AHL_QM_SINGLE, .value = "HEAD");
    F(I, .key = AHL_QK_SOP_CLASS, .match = AHL_QM_SINGLE, .value = "1.2.840.10008.5.1.4.1.1.4");
    F(I, .key = AHL_QK_INSTANCE_NUMBER, .match = AHL_QM_SINGLE, .value = "1");
    F(I, .key = AHL_QK_WARNING_REASON, .match = AHL_QM_SINGLE, .value = "45057");
#undef F
    return nf;
}

static void test_qido(void **state)
{
    (void)state;
    rnd_state = 12345;
    struct both b;
    both_open(&b);
    fill_qido(&b, 90);

    struct ahl_qido_filter f[80];
    unsigned levels[80], nf = qido_filters(f, levels);
    unsigned shapes = 0, rows = 0;
    for (int level = AHL_QIDO_STUDY; level <= AHL_QIDO_INSTANCE; level++)
        for (int fuzzy = 0; fuzzy < 2; fuzzy++)
            for (unsigned i = 0; i <= nf; i++) {
                if (i < nf && !(levels[i] & (1u << level)))
                    continue;
                for (unsigned j = i; j <= nf; j += (i == nf ? 1 : 4)) {
                    if (j < nf && j != i && !(levels[j] & (1u << level)))
                        continue;
                    struct ahl_qido_query q = {.level = level, .fuzzy = fuzzy, .limit = 1000};
                    if (i < nf)
                        q.f[q.nf++] = f[i];
                    if (j < nf && j != i)
                        q.f[q.nf++] = f[j];
                    char what[96];
                    snprintf(what, sizeof what, "level %d fuzzy %d filters %u %u", level, fuzzy, i,
                             j);
                    rows += compare_qido(&b, &q, what);
                    /* A page further in. */
                    q.limit = 3;
                    q.offset = 2;
                    rows += compare_qido(&b, &q, what);
                    shapes++;
                }
            }
    /* Refusals. */
    struct ahl_qido_query bad[] = {
        {.level = 3, .limit = 1},
        {.level = AHL_QIDO_STUDY, .limit = 0},
        {.level = AHL_QIDO_STUDY, .limit = 1001},
        {.level = AHL_QIDO_STUDY, .limit = 1, .offset = 9001},
        {.level = AHL_QIDO_STUDY, .limit = 1, .nf = 33},
        {.level = AHL_QIDO_STUDY,
         .limit = 1,
         .nf = 1,
         .f = {{.key = AHL_QK_MODALITY, .match = AHL_QM_SINGLE, .value = "CT"}}},
        {.level = AHL_QIDO_STUDY,
         .limit = 1,
         .nf = 1,
         .f = {{.key = AHL_QK_STUDY_UID, .match = AHL_QM_WILD, .value = "1.*"}}},
        {.level = AHL_QIDO_STUDY,
         .limit = 1,
         .nf = 1,
         .f = {{.key = AHL_QK_STUDY_DATE, .match = AHL_QM_SINGLE, .value = "2020"}}},
        {.level = AHL_QIDO_STUDY,
         .limit = 1,
         .nf = 1,
         .f = {{.key = AHL_QK_STUDY_TIME, .match = AHL_QM_RANGE, .lo = "", .hi = ""}}},
        {.level = AHL_QIDO_SERIES,
         .limit = 1,
         .nf = 1,
         .f = {{.key = AHL_QK_SERIES_NUMBER, .match = AHL_QM_SINGLE, .value = "1.5"}}},
        {.level = AHL_QIDO_SERIES,
         .limit = 1,
         .nf = 1,
         .f = {{.key = AHL_QK_SERIES_NUMBER, .match = AHL_QM_SINGLE, .value = "5000000000"}}},
        {.level = AHL_QIDO_SERIES,
         .limit = 1,
         .nf = 1,
         .f = {{.key = AHL_QK_MODALITY, .match = AHL_QM_LIST, .list = uid_list, .nlist = 0}}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char what[32];
        snprintf(what, sizeof what, "refusal %zu", i);
        assert_int_equal(compare_qido(&b, &bad[i], what), 0);
    }
    print_message("%u QIDO-RS shapes, %u rows compared\n", shapes, rows);
    assert_true(rows > 5000);
    both_close(&b);
}

/* Whether a PostgreSQL plan reads only indexes: no sequential scan, and every index condition
 * names the data store or, for instance rows, their series row (or it reads nothing at all). */
static bool plan_indexed(const char *plan)
{
    int conds = 0;
    if (strstr(plan, "Seq Scan"))
        return false;
    if (strstr(plan, "One-Time Filter: false")) /* a value no row holds: nothing is read */
        return true;
    for (const char *l = plan; (l = strstr(l, "Index Cond: ")); l++) {
        const char *end = strchr(l, '\n');
        size_t n = end ? (size_t)(end - l) : strlen(l);
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)n, l);
        if (!strstr(line, "datastore_id = ") && !strstr(line, "series_id = "))
            return false;
        conds++;
    }
    return conds > 0;
}

static int plan_line(void *ctx, const char *line)
{
    struct answer *a = ctx;
    answer_add(a, "%s\n", line);
    return 0;
}

/* Every QIDO-RS query shape on a few thousand analysed sets is answered from indexes. */
static void test_qido_plans(void **state)
{
    (void)state;
    rnd_state = 12345;
    struct both b;
    both_open(&b);
    k0 = 1;
    fill_qido(&b, 1500);
    k0 = 0;
    assert_int_equal(ahl_test_pg_exec(b.dir[1], "ANALYZE", NULL, 0), 0);
    struct ahl_qido_filter f[80];
    unsigned levels[80], nf = qido_filters(f, levels), shapes = 0;
    struct ahl_store_tx *tx;
    struct answer plan = {0};
    assert_int_equal(ahl_store_begin(b.s[1], false, &tx), 0);
    for (int level = AHL_QIDO_STUDY; level <= AHL_QIDO_INSTANCE; level++)
        for (int fuzzy = 0; fuzzy < 2; fuzzy++)
            for (unsigned i = 0; i <= nf; i++) {
                if (i < nf && !(levels[i] & (1u << level)))
                    continue;
                for (unsigned j = i; j <= nf; j += (i == nf ? 1 : 7)) {
                    if (j < nf && j != i && !(levels[j] & (1u << level)))
                        continue;
                    struct ahl_qido_query q = {.level = level, .fuzzy = fuzzy, .limit = 100};
                    if (i < nf)
                        q.f[q.nf++] = f[i];
                    if (j < nf && j != i)
                        q.f[q.nf++] = f[j];
                    answer_reset(&plan);
                    assert_int_equal(ahl_store_qido_plan(tx, DS, &q, plan_line, &plan), 0);
                    if (!plan_indexed(plan.text))
                        fail_msg("level %d fuzzy %d filters %u %u: not from indexes:\n%s", level,
                                 fuzzy, i, j, plan.text);
                    shapes++;
                }
            }
    ahl_store_rollback(tx);
    free(plan.text);
    print_message("%u QIDO-RS plans from indexes\n", shapes);
    both_close(&b);
}

/* Runs sql on database url: 0, or -1 (printed). *found (may be NULL) says whether it answered a
 * row. */
static int pg_run(const char *url, const char *sql, bool *found)
{
    PGconn *c = PQconnectdb(url);
    int rc = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, sql);
        ExecStatusType st = PQresultStatus(r);
        rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
        if (rc < 0)
            fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
        if (found)
            *found = rc == 0 && PQntuples(r) > 0;
        PQclear(r);
    } else {
        fprintf(stderr, "cannot connect: %s", PQerrorMessage(c));
    }
    PQfinish(c);
    return rc;
}

int main(void)
{
    if (!ahl_test_store_is_pg()) {
        fprintf(stderr, "skipped: AHL_TEST_DATABASE names no PostgreSQL database\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_search),
        cmocka_unit_test(test_qido),
        cmocka_unit_test(test_qido_plans),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    /* Again in a database whose own collation is not byte order, where upper() changes every
     * letter and 'a' sorts before 'B' (when the server has such a locale): the answers must not
     * move. */
    char *url = strdup(getenv("AHL_TEST_DATABASE")), db[64], sql[192], other[2048];
    bool found = false;
    snprintf(db, sizeof db, "ahl_collate_%ld", (long)getpid());
    if (!url || pg_run(url,
                       "SELECT 1 FROM pg_collation WHERE collname = 'en_US.utf8' AND"
                       " collencoding IN (-1, 6)",
                       &found) < 0) {
        free(url);
        return 1;
    }
    if (!found) {
        fprintf(stderr, "no en_US.utf8 locale on the server: the second pass is left out\n");
        free(url);
        return failed;
    }
    snprintf(sql, sizeof sql,
             "CREATE DATABASE %s TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'en_US.utf8'"
             " LC_CTYPE 'en_US.utf8'",
             db);
    const char *path = strstr(url, ":///");
    const char *rest = path ? strpbrk(path + 4, "?") : NULL;
    if (!path || !rest || pg_run(url, sql, NULL) < 0) {
        free(url);
        return 1;
    }
    snprintf(other, sizeof other, "%.*s%s%s", (int)(path + 4 - url), url, db, rest);
    setenv("AHL_TEST_DATABASE", other, 1);
    const struct CMUnitTest answers[] = {
        cmocka_unit_test(test_search),
        cmocka_unit_test(test_qido),
    };
    failed += cmocka_run_group_tests_name("in an en_US.utf8 database", answers, NULL, NULL);
    /* FORCE: a failed case leaves its stores open (PostgreSQL 13 or later). */
    snprintf(sql, sizeof sql, "DROP DATABASE %s WITH (FORCE)", db);
    if (pg_run(url, sql, NULL) < 0)
        failed++;
    free(url);
    return failed;
}
