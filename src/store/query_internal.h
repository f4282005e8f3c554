/* What both database backends share of their queries (not a public header: src/store only): the
 * column lists of the tables they keep alike; for SearchImageSets, the refusals of a query
 * (search_check.c); for QIDO-RS (qido_keys.c), the keys (their types, columns, levels, ranks), the
 * checks that refuse a filter, and which filters may select through an index of their own. Each
 * backend writes its own SQL (sqlite_qido.c, pg_qido.c) from these, so that both refuse and answer
 * the same.
 */
#ifndef AHL_STORE_QUERY_INTERNAL_H
#define AHL_STORE_QUERY_INTERNAL_H

#include <stdbool.h>

#include "store/store.h"

/* The columns of the tables both backends keep alike, in the order their row readers take them:
 * data stores, image sets, versions, import jobs and the search index. */
#define DS_COLS                                                                                  \
    "id, name, status, kms_key_arn, lambda_authorizer_arn, lossless_storage_format, created_at," \
    " updated_at"
#define IS_COLS                                                                                  \
    "id, datastore_id, state, workflow_status, message, is_primary, latest_version, created_at," \
    " updated_at, last_accessed_at, deleted_at"
#define V_COLS \
    "imageset_id, version, root, state, workflow_status, message, forced, created_at, updated_at"
#define J_COLS                                                                                \
    "id, datastore_id, name, status, role_arn, input_uri, output_uri, message, client_token," \
    " submitted_at, ended_at, claimed_by, lease_until, attempts"
#define S_COLS                                                                             \
    "imageset_id, datastore_id, is_primary, version, created_at, updated_at, patient_id,"  \
    " patient_name, patient_birth_date, patient_sex, study_instance_uid, study_id,"        \
    " study_description, accession_number, study_date, study_time, series_instance_uid,"   \
    " modality, body_part_examined, series_number, number_of_series, number_of_instances," \
    " study_dt, last_accessed_at"

enum ahl__qido_key_type {
    K_UID,  /* exact, lists */
    K_PN,   /* case-insensitive via a normalized column, wildcards, fuzzy */
    K_TEXT, /* exact, wildcards */
    K_CS,   /* exact, wildcards, lists */
    K_DATE, /* exact, ranges */
    K_TIME, /* exact, ranges, on the TM key column */
    K_INT,  /* integer */
    K_MODS, /* ModalitiesInStudy: exact or list, over qido_study_modality */
};

/* Each key: its type, the column (with its table's alias: s study, e series, i instance; NULL for
 * StudyInstanceUID, whose column depends on the level, and ModalitiesInStudy), the levels taking
 * it, whether an index of its own answers it, and its rank as the most selective filter (lower is
 * more selective). */
struct ahl__qido_key {
    int type;
    const char *col;
    unsigned levels;
    bool indexed;
    int rank;
};

extern const struct ahl__qido_key ahl__qido_keys[AHL_QK_COUNT];

/* The column of a key at a level (StudyInstanceUID is the study's or the series row's). */
const char *ahl__qido_key_col(int key, int level);

/* An integer value of a K_INT key (trailing spaces allowed), in INT32_MIN..UINT32_MAX. */
bool ahl__qido_parse_int(const char *s, long long *out);

/* The 12-digit key of a TM value ("" when it is not one). */
void ahl__qido_tm_key(const char *tm, char out[13]);

/* 0, or AHL_EINVAL for a filter the query's level does not take or whose value is not one. */
int ahl__qido_check_filter(const struct ahl_qido_query *q, const struct ahl_qido_filter *f);

/* Can the filter select through its key's index? (A wildcard only with a literal prefix; fuzzy
 * PN matching never, since it matches inside the value.) */
bool ahl__qido_can_drive(const struct ahl_qido_query *q, const struct ahl_qido_filter *f);

/* SearchImageSets: the attributes that are identifiers (EQUAL text), the time attributes that
 * take BETWEEN, the attribute a sort order sorts by, and 0 or AHL_EINVAL for a query either
 * backend refuses. */
bool ahl__search_attr_is_ident(int a);
bool ahl__search_attr_is_range(int a);
int ahl__search_sort_attr(int sort);
int ahl__search_query_check(const struct ahl_search_query *q);

/* A copy of a value with its ASCII letters upper-cased (PN keys are matched on such copies);
 * NULL when out of memory. */
char *ahl__qido_upper_of(const char *v);

/* The literal prefix of a wildcard value (upper-cased for PN), "" when it starts with one; NULL
 * when out of memory. */
char *ahl__qido_prefix_of(const char *v, bool upper);

#endif
