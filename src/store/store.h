/* The storage interface: everything ahilite keeps, behind one struct of function pointers.
 *
 * The metadata engine (src/meta), the importer and job runner (src/import, src/jobs), the API
 * layer and the commands talk to storage only through this header; no SQL exists outside
 * src/store/. A backend fills in struct ahl_store_ops and embeds struct ahl_store as the first
 * member of its handle. SQLite (src/store/sqlite_*.c) is the embedded default; PostgreSQL
 * (src/store/pg_*.c, pg_internal.h) passes the same tests, for several nodes on one database;
 * another would have to pass the same tests.
 *
 * What is stored:
 *   - data stores and the tags of any resource ARN;
 *   - image sets (one row each: state, workflow status, primary flag, latest version);
 *   - versions of an image set ("1", "2", ... kept as integers here), each naming a root chunk;
 *   - content-addressed chunks: SHA-256 of the canonical bytes -> kind, the bytes as stored
 *     (for JSON chunks a raw-deflate segment, see below), crc32 and length of the uncompressed
 * text;
 *   - one search-index row per image set, rewritten with every new version;
 *   - the frame index: which frame ids each image set lists, with their stored transfer syntax;
 *   - import jobs.
 *
 * Transactions. Every call but open/close runs inside a transaction obtained from
 * ahl_store_begin(). A read transaction sees one consistent snapshot (several may run at once, from
 * several threads). A write transaction is exclusive (the SQLite backend serialises writers on one
 * connection with BEGIN IMMEDIATE); it ends with ahl_store_commit() or ahl_store_rollback(), and
 * after a failed call inside it the caller must roll back. A transaction belongs to one thread.
 * Write transactions of concurrent threads may be group-committed (the SQLite backend runs them
 * one after another as savepoints of one database transaction): a rollback still undoes exactly
 * its own transaction, and ahl_store_commit() returns only once the writes are durable, so a
 * committing thread may wait for the writers queued behind it. Hence no thread may hold a lock
 * while committing that a thread inside a write transaction could wait for.
 *
 * Write intents. A thread that does the work of its write outside any transaction (reading and
 * computing first, then a short write transaction that checks nothing moved and writes) may say
 * so with ahl_store_write_intent(s, +1) before that work and ahl_store_write_intent(s, -1) once
 * its write transaction has begun, or once it gave up. A committing write transaction that finds
 * nobody waiting to write but writers announced waits for one of them a little (at most
 * AHL_STORE_COMMIT_DELAY_US by default), so that concurrent writers share one commit instead of
 * each paying for their own; a lone writer, with no one announced, commits at once.
 *
 *     struct ahl_store_tx *tx;
 *     if ((rc = ahl_store_begin(store, true, &tx)) < 0) return rc;
 *     rc = ahl_store_chunk_put(tx, &chunk);
 *     if (rc == 0) rc = ahl_store_version_put(tx, &ver);
 *     if (rc == 0) rc = ahl_store_imageset_advance(tx, &set, expected_latest);  // compare-and-set
 *     rc = rc == 0 ? ahl_store_commit(tx) : (ahl_store_rollback(tx), rc);
 *
 * Strings in records are fixed-size, NUL-terminated arrays sized to the service model's limits, so
 * records need no allocation and no release. Errors: 0 or a negative AHL_E*; AHL_ENOTFOUND for a
 * missing row, AHL_ECONFLICT for a failed compare-and-set or a duplicate id, AHL_EIO for the
 * database, AHL_ENOSPC when the disk holding it is full, AHL_ECORRUPT for stored data that cannot
 * be what was written.
 */
#ifndef AHL_STORE_STORE_H
#define AHL_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/codec.h"

#define AHL_ID_LEN 32 /* data store, image set and job ids: 32 lowercase hex characters */
#define AHL_MESSAGE_MAX 2048
#define AHL_STUDY_DT_KEY_LEN 20 /* YYYYMMDDHHMMSSFFFFFF */
#define AHL_NODE_ID_MAX 128     /* the id of a node running import jobs (struct ahl_job_rec) */

struct ahl_store;
struct ahl_store_tx;

/* ---- records ---------------------------------------------------------------------------- */

struct ahl_datastore_rec {
    char id[AHL_ID_LEN + 1];
    char name[257];
    char status[16]; /* CREATING | CREATE_FAILED | ACTIVE | DELETING | DELETED */
    char kms_key_arn[513];
    char lambda_authorizer_arn[1025];
    char lossless_storage_format[32]; /* HTJ2K | JPEG_2000_LOSSLESS */
    int64_t created_at_ms;
    int64_t updated_at_ms;
};

struct ahl_imageset_rec {
    char id[AHL_ID_LEN + 1];
    char datastore_id[AHL_ID_LEN + 1];
    char state[16];           /* ACTIVE | LOCKED | DELETED */
    char workflow_status[40]; /* ImageSetWorkflowStatus */
    char message[AHL_MESSAGE_MAX + 1];
    bool is_primary;
    uint64_t latest_version; /* 1, 2, ...; 0 only while being created */
    int64_t created_at_ms;
    int64_t updated_at_ms;
    int64_t last_accessed_at_ms;
    int64_t deleted_at_ms; /* 0 when not deleted */
};

struct ahl_version_rec {
    char imageset_id[AHL_ID_LEN + 1];
    uint64_t version;
    uint8_t root[AHL_SHA256_LEN]; /* the root chunk of the document */
    char state[16];
    char workflow_status[40];
    char message[AHL_MESSAGE_MAX + 1];
    bool forced; /* overrides.forced */
    int64_t created_at_ms;
    int64_t updated_at_ms;
};

/* Chunk kinds. JSON chunks hold a node's own attributes; map and root chunks hold structure. */
enum ahl_chunk_kind {
    AHL_CHUNK_JSON = 1, /* data: raw-deflate segment (Z_FULL_FLUSH, no BFINAL) of the text */
    AHL_CHUNK_MAP = 2,  /* data: a persistent-map node, binary, uncompressed */
    AHL_CHUNK_ROOT = 3, /* data: a version root, binary, uncompressed */
};

/* A chunk. hash = SHA-256 of the canonical uncompressed bytes; ulen and crc describe what data
 * expands to (for JSON chunks: the text without its final '}', which is what the segment holds, see
 * src/meta/engine_internal.h; for the others: data itself). data/len are the bytes as stored. */
struct ahl_chunk {
    uint8_t hash[AHL_SHA256_LEN];
    int kind; /* enum ahl_chunk_kind */
    uint32_t ulen;
    uint32_t crc;
    const void *data;
    size_t len;
};

/* The search index: one row per image set, describing its latest version. Empty strings mean the
 * attribute is absent; has_series_number says whether series_number is meaningful. */
struct ahl_search_row {
    char imageset_id[AHL_ID_LEN + 1];
    char datastore_id[AHL_ID_LEN + 1];
    bool is_primary;
    uint64_t version;
    int64_t created_at_ms;
    int64_t updated_at_ms;
    char patient_id[257];
    char patient_name[257];
    char patient_birth_date[37];
    char patient_sex[17];
    char study_instance_uid[257];
    char study_id[257];
    char study_description[257];
    char accession_number[257];
    char study_date[37];
    char study_time[57];
    char series_instance_uid[257];
    char modality[33];
    char body_part_examined[129];
    bool has_series_number;
    int32_t series_number;
    uint32_t number_of_series;
    uint32_t number_of_instances;
    /* Output only: the sortable study date-time key the store derives from study_date and
     * study_time on put (ahl_store_study_dt_key; "" when study_date is not a DICOM date). */
    char study_dt[AHL_STUDY_DT_KEY_LEN + 1];
    /* The image set's last access as stored (struct ahl_imageset_rec's), so that a search
     * answers lastAccessedAt and storageTier from its rows alone. */
    int64_t last_accessed_at_ms;
};

/* ---- search queries ------------------------------------------------------------------------
 *
 * SearchImageSets over the search rows: up to two filters, ANDed; a sort field and order, ties
 * broken by image set id in the same direction; a keyset cursor; a limit. Every query shape is
 * answered from an index (the backend picks one index per query: an EQUAL on an identifier when
 * there is one, else the filtered time range, else the sort order), never from a table scan;
 * ahl_store_search_plan shows which. Search rows exist only for image sets that are not DELETED
 * (the engine deletes a set's row when it deletes the set), so no query returns deleted sets. */

enum ahl_search_attr {
    AHL_SEARCH_PATIENT_ID,       /* EQUAL, text */
    AHL_SEARCH_ACCESSION_NUMBER, /* EQUAL, text */
    AHL_SEARCH_STUDY_ID,         /* EQUAL, text */
    AHL_SEARCH_STUDY_UID,        /* EQUAL, text */
    AHL_SEARCH_SERIES_UID,       /* EQUAL, text */
    AHL_SEARCH_IS_PRIMARY,       /* EQUAL, flag */
    AHL_SEARCH_CREATED_AT,       /* EQUAL or BETWEEN, ms */
    AHL_SEARCH_UPDATED_AT,       /* EQUAL or BETWEEN, ms */
    AHL_SEARCH_STUDY_DATE_TIME,  /* EQUAL or BETWEEN, text: ahl_store_study_dt_key keys */
    AHL_SEARCH_ATTR_COUNT
};

enum ahl_search_sort {
    AHL_SEARCH_SORT_UPDATED_AT,
    AHL_SEARCH_SORT_CREATED_AT,
    AHL_SEARCH_SORT_STUDY_DATE_TIME,
};

struct ahl_search_filter {
    int attr;            /* enum ahl_search_attr */
    bool between;        /* BETWEEN value[0] AND value[1], inclusive; else EQUAL value[0] */
    const char *text[2]; /* text attributes (borrowed; exact, case-sensitive match) */
    int64_t ms[2];       /* createdAt / updatedAt */
    bool flag;           /* isPrimary */
};

/* Where the previous page ended: the sort value and image set id of its last row. */
struct ahl_search_cursor {
    bool set;
    int64_t ms;                        /* for the createdAt / updatedAt sorts */
    char dt[AHL_STUDY_DT_KEY_LEN + 1]; /* for the study date-time sort */
    char imageset_id[AHL_ID_LEN + 1];
};

#define AHL_SEARCH_MAX_FILTERS 2

struct ahl_search_query {
    struct ahl_search_filter filters[AHL_SEARCH_MAX_FILTERS];
    unsigned nfilters;
    int sort; /* enum ahl_search_sort */
    bool desc;
    struct ahl_search_cursor after; /* rows strictly after this one in the sort order */
    unsigned limit;                 /* 1..1000 */
};

typedef int (*ahl_store_search_cb)(void *ctx, const struct ahl_search_row *row);
/* Receives one line of a query plan. */
typedef int (*ahl_store_plan_cb)(void *ctx, const char *line);

/* ---- the QIDO-RS index ---------------------------------------------------------------------
 *
 * DICOMweb search (docs/dicomweb.md#search-qido-rs) reads rows describing the latest version of
 * every primary image set that is not DELETED; the engine keeps them in the transaction that
 * commits each version (ahl_store_qido_*_put / _delete), and they hold nothing a search does not
 * match or answer. Per image set: one set row (the Patient and Study attributes as that set
 * holds them, and the root the rows describe), one series row per series, one instance row per
 * instance (keyed by its series row, so a Patient or Study edit touches no instance row). Per
 * (data store, StudyInstanceUID) the store keeps a study row built from the set and series rows
 * of the study by ahl_store_qido_study_refresh: the newest set's Patient and Study attributes,
 * the newest update, the modalities and the counts. Strings are as the document holds them ("" =
 * absent); matching is the store's (PN case-insensitive, dates and times as ranges, see
 * struct ahl_qido_filter). */

#define AHL_QIDO_UID_LEN 65 /* a UID: 64 characters and the NUL */
#define AHL_QIDO_TEXT_LEN 257

struct ahl_qido_set {
    char imageset_id[AHL_ID_LEN + 1];
    char datastore_id[AHL_ID_LEN + 1];
    uint8_t root[AHL_SHA256_LEN]; /* the version root the set's rows describe */
    int64_t updated_at_ms;
    char study_uid[AHL_QIDO_UID_LEN];
    char patient_name[AHL_QIDO_TEXT_LEN];
    char patient_id[AHL_QIDO_TEXT_LEN];
    char patient_birth_date[37];
    char patient_birth_time[57];
    char patient_sex[17];
    char study_date[37];
    char study_time[57];
    char accession_number[AHL_QIDO_TEXT_LEN];
    char referring_physician_name[AHL_QIDO_TEXT_LEN];
    char study_description[AHL_QIDO_TEXT_LEN];
    char study_id[AHL_QIDO_TEXT_LEN];
};

struct ahl_qido_series {
    char imageset_id[AHL_ID_LEN + 1];
    char datastore_id[AHL_ID_LEN + 1];
    char study_uid[AHL_QIDO_UID_LEN];
    char series_uid[AHL_QIDO_UID_LEN];
    int64_t updated_at_ms;
    char modality[33];
    bool has_series_number;
    int32_t series_number;
    char series_description[AHL_QIDO_TEXT_LEN];
    char series_date[37];
    char series_time[57];
    char body_part_examined[129];
    uint32_t number_of_instances;
};

struct ahl_qido_instance {
    char imageset_id[AHL_ID_LEN + 1]; /* with series_uid: the series row it belongs to */
    char series_uid[AHL_QIDO_UID_LEN];
    char sop_uid[AHL_QIDO_UID_LEN];
    char sop_class_uid[AHL_QIDO_UID_LEN];
    bool has_instance_number;
    int32_t instance_number;
    uint32_t rows, columns, number_of_frames; /* 0: absent */
    bool has_warning_reason;
    uint32_t warning_reason; /* WarningReason (0008,1196) */
};

/* A search answer: study level fills study (its root zero) and the study_* counts; series level
 * fills series and study.study_uid; instance level fills instance, series and study.study_uid. */
struct ahl_qido_row {
    struct ahl_qido_set study;
    char modalities_in_study[AHL_QIDO_TEXT_LEN]; /* distinct, '\'-separated, sorted */
    uint32_t study_series, study_instances;
    struct ahl_qido_series series;
    struct ahl_qido_instance instance;
};

enum ahl_qido_level { AHL_QIDO_STUDY, AHL_QIDO_SERIES, AHL_QIDO_INSTANCE };

/* Search keys, and the levels whose queries accept them (ahl_qido_key_levels). */
enum ahl_qido_key {
    AHL_QK_STUDY_UID,       /* UI: every level */
    AHL_QK_PATIENT_NAME,    /* PN: study */
    AHL_QK_PATIENT_ID,      /* LO */
    AHL_QK_BIRTH_DATE,      /* DA */
    AHL_QK_BIRTH_TIME,      /* TM */
    AHL_QK_STUDY_DATE,      /* DA */
    AHL_QK_STUDY_TIME,      /* TM */
    AHL_QK_ACCESSION,       /* SH */
    AHL_QK_MODALITIES,      /* CS, any of the study's series' modalities */
    AHL_QK_REFERRING,       /* PN */
    AHL_QK_STUDY_DESC,      /* LO */
    AHL_QK_STUDY_ID,        /* SH */
    AHL_QK_SERIES_UID,      /* UI: series and instance */
    AHL_QK_MODALITY,        /* CS: series */
    AHL_QK_SERIES_NUMBER,   /* IS */
    AHL_QK_SERIES_DESC,     /* LO */
    AHL_QK_SERIES_DATE,     /* DA */
    AHL_QK_SERIES_TIME,     /* TM */
    AHL_QK_BODY_PART,       /* CS */
    AHL_QK_SOP_UID,         /* UI: instance */
    AHL_QK_SOP_CLASS,       /* UI */
    AHL_QK_INSTANCE_NUMBER, /* IS */
    AHL_QK_WARNING_REASON,  /* US */
    AHL_QK_COUNT
};

/* How a filter matches (PS3.4 C.2.2.2):
 *   SINGLE  the value exactly (PN keys: case-insensitively; IS and US keys: as integers);
 *   WILD    value with '*' (any run) and '?' (one character) (text keys);
 *   RANGE   lo..hi inclusive, either "" for an open end (DA and TM keys; TM compared as
 *           HHMMSS.FFFFFF with missing parts zero);
 *   LIST    any of list[0..nlist) exactly (UI, Modality and ModalitiesInStudy keys).
 * fuzzy (on the query) makes PN SINGLE and WILD match when any word of the name (separated by
 * '^', ' ', ',' or '=') begins with the value. */
enum ahl_qido_match { AHL_QM_SINGLE, AHL_QM_WILD, AHL_QM_RANGE, AHL_QM_LIST };

struct ahl_qido_filter {
    int key;   /* enum ahl_qido_key */
    int match; /* enum ahl_qido_match */
    const char *value;
    const char *lo, *hi;
    const char *const *list;
    unsigned nlist;
};

#define AHL_QIDO_MAX_FILTERS 32
#define AHL_QIDO_MAX_LIST 256
#define AHL_QIDO_MAX_LIMIT 1000
#define AHL_QIDO_MAX_OFFSET 9000

/* Order: studies by newest update first (then StudyInstanceUID descending); series likewise
 * (then SeriesInstanceUID descending, then the newest row first); instances by SeriesInstanceUID,
 * then InstanceNumber (absent first), then SOPInstanceUID. */
struct ahl_qido_query {
    int level; /* enum ahl_qido_level */
    struct ahl_qido_filter f[AHL_QIDO_MAX_FILTERS];
    unsigned nf;
    bool fuzzy;
    unsigned limit;  /* 1..AHL_QIDO_MAX_LIMIT */
    unsigned offset; /* 0..AHL_QIDO_MAX_OFFSET */
};

typedef int (*ahl_store_qido_cb)(void *ctx, const struct ahl_qido_row *row);

/* The frame index: one row per (image set, frame id) the set's versions have listed under some
 * instance's ImageFrames, with that instance's StoredTransferSyntaxUID. Frame ids are content
 * addresses shared by every set holding the same pixels, hence the set in the key. */
struct ahl_frame_rec {
    char imageset_id[AHL_ID_LEN + 1];
    char frame_id[AHL_ID_LEN + 1];
    char transfer_syntax[65];
};

struct ahl_job_rec {
    char id[AHL_ID_LEN + 1];
    char datastore_id[AHL_ID_LEN + 1];
    char name[65];
    char status[16]; /* SUBMITTED | IN_PROGRESS | COMPLETED | FAILED */
    char role_arn[2049];
    char input_uri[1025];
    char output_uri[1025];
    char message[AHL_MESSAGE_MAX + 1];
    char client_token[65];
    int64_t submitted_at_ms;
    int64_t ended_at_ms; /* 0 while running */
    /* The lease (see "Import-job leases" below): the node running the job ("" when none), until
     * when it holds the job unless it renews (ms, the database's clock; 0 when none), and how many
     * times a node has claimed it. */
    char claimed_by[AHL_NODE_ID_MAX + 1];
    int64_t lease_until_ms;
    uint32_t attempts;
};

/* An event of the outbox (docs/events.md): written in the write transaction whose change it
 * describes, read and removed by the dispatcher once delivered. seq is given by put: increasing in
 * commit order (write transactions are exclusive on every backend), never reused. */
#define AHL_EVENT_DETAIL_MAX 4095
struct ahl_event_rec {
    uint64_t seq;
    char id[37]; /* the event's id, a UUID: the same at every delivery of the event */
    int64_t time_ms;
    char detail_type[48];
    char resource[160]; /* the resource's ARN after "arn:aws:medical-imaging:REGION:ACCOUNT:" */
    char detail[AHL_EVENT_DETAIL_MAX + 1]; /* a JSON object */
};

/* Listing callbacks: return 0 to go on, anything else to stop (the list call then returns it). */
typedef int (*ahl_store_datastore_cb)(void *ctx, const struct ahl_datastore_rec *rec);
typedef int (*ahl_store_imageset_cb)(void *ctx, const struct ahl_imageset_rec *rec);
typedef int (*ahl_store_version_cb)(void *ctx, const struct ahl_version_rec *rec);
typedef int (*ahl_store_tag_cb)(void *ctx, const char *key, const char *value);
typedef int (*ahl_store_job_cb)(void *ctx, const struct ahl_job_rec *rec);
typedef int (*ahl_store_chunk_cb)(void *ctx, const struct ahl_chunk *chunk);
typedef int (*ahl_store_tag_scan_cb)(void *ctx, const char *arn, const char *key,
                                     const char *value);
typedef int (*ahl_store_frame_cb)(void *ctx, const struct ahl_frame_rec *rec);
typedef int (*ahl_store_event_cb)(void *ctx, const struct ahl_event_rec *rec);

/* ---- the backend interface ---------------------------------------------------------------- */

struct ahl_store_ops {
    const char *name;
    void (*close)(struct ahl_store *s);
    int (*begin)(struct ahl_store *s, bool write, struct ahl_store_tx **out);
    int (*commit)(struct ahl_store_tx *tx);
    void (*rollback)(struct ahl_store_tx *tx);
    void (*write_intent)(struct ahl_store *s, int delta); /* optional */

    int (*datastore_put)(struct ahl_store_tx *tx, const struct ahl_datastore_rec *rec, bool create);
    int (*datastore_get)(struct ahl_store_tx *tx, const char *id, struct ahl_datastore_rec *out);
    int (*datastore_list)(struct ahl_store_tx *tx, const char *status, const char *after_id,
                          unsigned limit, ahl_store_datastore_cb cb, void *ctx);
    int (*datastore_delete)(struct ahl_store_tx *tx, const char *id);
    int (*datastore_count_imagesets)(struct ahl_store_tx *tx, const char *id, uint64_t *out);

    int (*tag_put)(struct ahl_store_tx *tx, const char *arn, const char *key, const char *value);
    int (*tag_delete)(struct ahl_store_tx *tx, const char *arn, const char *key);
    int (*tag_list)(struct ahl_store_tx *tx, const char *arn, ahl_store_tag_cb cb, void *ctx);
    int (*tag_delete_all)(struct ahl_store_tx *tx, const char *arn);
    int (*tag_scan)(struct ahl_store_tx *tx, ahl_store_tag_scan_cb cb, void *ctx);

    int (*imageset_put)(struct ahl_store_tx *tx, const struct ahl_imageset_rec *rec, bool create);
    int (*imageset_advance)(struct ahl_store_tx *tx, const struct ahl_imageset_rec *rec,
                            uint64_t expected_latest);
    int (*imageset_get)(struct ahl_store_tx *tx, const char *datastore_id, const char *id,
                        struct ahl_imageset_rec *out);
    int (*imageset_list)(struct ahl_store_tx *tx, const char *datastore_id, const char *after_id,
                         unsigned limit, ahl_store_imageset_cb cb, void *ctx);
    int (*imageset_by_study)(struct ahl_store_tx *tx, const char *datastore_id,
                             const char *study_uid, bool primary_only, ahl_store_imageset_cb cb,
                             void *ctx);
    int (*imageset_touch)(struct ahl_store_tx *tx, const char *id, int64_t at_ms);

    int (*version_put)(struct ahl_store_tx *tx, const struct ahl_version_rec *rec);
    int (*version_update)(struct ahl_store_tx *tx, const struct ahl_version_rec *rec);
    int (*version_get)(struct ahl_store_tx *tx, const char *imageset_id, uint64_t version,
                       struct ahl_version_rec *out);
    int (*version_list)(struct ahl_store_tx *tx, const char *imageset_id, uint64_t below,
                        unsigned limit, ahl_store_version_cb cb, void *ctx);
    int (*version_scan)(struct ahl_store_tx *tx, ahl_store_version_cb cb, void *ctx);

    int (*chunk_put)(struct ahl_store_tx *tx, const struct ahl_chunk *c);
    int (*chunk_get)(struct ahl_store_tx *tx, const uint8_t hash[AHL_SHA256_LEN],
                     struct ahl_chunk *meta, struct ahl_buf *data);
    int (*chunk_scan)(struct ahl_store_tx *tx, ahl_store_chunk_cb cb, void *ctx);
    int (*chunk_stats)(struct ahl_store_tx *tx, uint64_t *count, uint64_t *bytes);
    int (*chunk_list)(struct ahl_store_tx *tx, ahl_store_chunk_cb cb, void *ctx);
    int (*chunk_delete)(struct ahl_store_tx *tx, const uint8_t hash[AHL_SHA256_LEN]);
    int (*gc_roots)(struct ahl_store_tx *tx, ahl_store_version_cb cb, void *ctx);
    int (*gc_versions)(struct ahl_store_tx *tx, unsigned limit, uint64_t *versions,
                       uint64_t *sets);
    int (*compact)(struct ahl_store *s, bool full);
    int (*frame_fence_get)(struct ahl_store_tx *tx, uint64_t *epoch, int64_t *until_ms);
    int (*frame_fence_bump)(struct ahl_store_tx *tx, int64_t until_ms);

    int (*search_put)(struct ahl_store_tx *tx, const struct ahl_search_row *row);
    int (*search_get)(struct ahl_store_tx *tx, const char *imageset_id, struct ahl_search_row *out);
    int (*search_delete)(struct ahl_store_tx *tx, const char *imageset_id);
    int (*search_query)(struct ahl_store_tx *tx, const char *datastore_id,
                        const struct ahl_search_query *q, ahl_store_search_cb cb, void *ctx);
    int (*search_plan)(struct ahl_store_tx *tx, const char *datastore_id,
                       const struct ahl_search_query *q, ahl_store_plan_cb cb, void *ctx);

    int (*frame_put)(struct ahl_store_tx *tx, const struct ahl_frame_rec *rec);
    int (*frame_get)(struct ahl_store_tx *tx, const char *imageset_id, const char *frame_id,
                     struct ahl_frame_rec *out);
    int (*frame_copy)(struct ahl_store_tx *tx, const char *from_imageset_id,
                      const char *to_imageset_id);
    int (*frame_delete_set)(struct ahl_store_tx *tx, const char *imageset_id);
    int (*frame_list)(struct ahl_store_tx *tx, const char *imageset_id, ahl_store_frame_cb cb,
                      void *ctx);
    int (*frame_backfill_next)(struct ahl_store_tx *tx, char imageset_id[AHL_ID_LEN + 1]);
    int (*frame_backfill_done)(struct ahl_store_tx *tx, const char *imageset_id);

    int (*job_put)(struct ahl_store_tx *tx, const struct ahl_job_rec *rec, bool create);
    int (*job_get)(struct ahl_store_tx *tx, const char *datastore_id, const char *id,
                   struct ahl_job_rec *out);
    int (*job_list)(struct ahl_store_tx *tx, const char *datastore_id, const char *status,
                    const char *after_id, unsigned limit, ahl_store_job_cb cb, void *ctx);
    int (*job_claim)(struct ahl_store_tx *tx, const char *node, uint32_t lease_ms,
                     struct ahl_job_rec *out);
    int (*job_renew)(struct ahl_store_tx *tx, const char *id, const char *node, uint32_t lease_ms);
    int (*job_release)(struct ahl_store_tx *tx, const struct ahl_job_rec *rec, const char *node);
    int (*job_options_put)(struct ahl_store_tx *tx, const char *id, const char *options);
    int (*job_options_get)(struct ahl_store_tx *tx, const char *id, char **out);

    int (*qido_set_get)(struct ahl_store_tx *tx, const char *imageset_id, struct ahl_qido_set *out);
    int (*qido_set_put)(struct ahl_store_tx *tx, const struct ahl_qido_set *rec);
    int (*qido_set_delete)(struct ahl_store_tx *tx, const char *imageset_id);
    int (*qido_series_put)(struct ahl_store_tx *tx, const struct ahl_qido_series *rec);
    int (*qido_series_delete)(struct ahl_store_tx *tx, const char *imageset_id,
                              const char *series_uid);
    int (*qido_series_touch)(struct ahl_store_tx *tx, const char *imageset_id,
                             int64_t updated_at_ms);
    int (*qido_instance_put)(struct ahl_store_tx *tx, const struct ahl_qido_instance *rec);
    int (*qido_instance_delete)(struct ahl_store_tx *tx, const char *imageset_id,
                                const char *series_uid, const char *sop_uid);
    int (*qido_study_refresh)(struct ahl_store_tx *tx, const char *datastore_id,
                              const char *study_uid, bool attrs_only);
    int (*qido_query)(struct ahl_store_tx *tx, const char *datastore_id,
                      const struct ahl_qido_query *q, ahl_store_qido_cb cb, void *ctx);
    int (*qido_plan)(struct ahl_store_tx *tx, const char *datastore_id,
                     const struct ahl_qido_query *q, ahl_store_plan_cb cb, void *ctx);
    int (*qido_backfill_next)(struct ahl_store_tx *tx, char imageset_id[AHL_ID_LEN + 1]);
    int (*qido_backfill_done)(struct ahl_store_tx *tx, const char *imageset_id);

    int (*event_put)(struct ahl_store_tx *tx, const struct ahl_event_rec *rec);
    int (*event_list)(struct ahl_store_tx *tx, uint64_t after_seq, unsigned limit,
                      ahl_store_event_cb cb, void *ctx);
    int (*event_delete)(struct ahl_store_tx *tx, uint64_t upto_seq);
    int (*event_trim)(struct ahl_store_tx *tx, uint64_t keep, uint64_t *dropped);
    int (*event_lease)(struct ahl_store_tx *tx, const char *node, uint32_t lease_ms);
    int (*tombstones_expire)(struct ahl_store_tx *tx, int64_t before_ms, unsigned limit,
                             uint64_t *imagesets, uint64_t *datastores);
};

/* The handle every backend embeds first. outbox: whether event rows are written (set by
 * ahl_store_outbox_enable; false, the default, makes ahl_store_event_put write nothing). */
struct ahl_store {
    const struct ahl_store_ops *ops;
    bool outbox;
};

/* How long a committing write transaction waits at most, by default, for an announced writer to
 * join its commit (see "Write intents" above). */
#define AHL_STORE_COMMIT_DELAY_US 1000
/* Announces (+1) or withdraws (-1) a write transaction this thread will begin soon (see "Write
 * intents" above). Every +1 must be matched by one -1. */
void ahl_store_write_intent(struct ahl_store *s, int delta);

/* The part of a transaction the wrappers need; backends embed it first. */
struct ahl_store_tx {
    struct ahl_store *store;
    bool write;
};

/* ---- opening ----------------------------------------------------------------------------- */

/* Opens the backend that database names: NULL or "" for the embedded default, SQLite in data_dir
 * (ahl_store_open_sqlite); a libpq connection URI ("postgresql://..." or "postgres://...") for
 * PostgreSQL (ahl_store_open_postgres; data_dir unused). max_conns bounds the reader connections:
 * SQLite keeps a writer connection beside them, PostgreSQL a pool of max_conns + 1 (so that a
 * thread inside a write transaction always finds a connection for a read transaction); 0 for the
 * backend's default. AHL_EINVAL for a database string that is neither. */
int ahl_store_open(const char *database, const char *data_dir, unsigned max_conns,
                   struct ahl_store **out);
/* True when database names PostgreSQL (starts with "postgresql://" or "postgres://"). */
bool ahl_store_is_postgres(const char *database);
/* Opens the PostgreSQL database of a libpq connection URI, creating or migrating the schema (under
 * an advisory lock, so several nodes may start at once). Tables live in the schema of the
 * connection's search_path (a URI may carry options=-csearch_path%3DNAME; the tests give each case
 * a schema of its own). max_conns bounds the pool of connections (0: a default of 16). Several
 * processes may open the same database: each is one node, none special. AHL_EIO when the server
 * cannot be reached (the message logged names it, never the password). */
int ahl_store_open_postgres(const char *uri, unsigned max_conns, struct ahl_store **out);

/* Opens (creating if needed) the SQLite database in data_dir (created with mode 0700 when
 * missing), migrating its schema to the current version. max_readers bounds the reader
 * connections kept for concurrent read transactions (0: a default of 8). On a full disk the
 * database is opened read-only when that is exact (its WAL holds nothing and its schema is
 * current): reads work and every write fails with AHL_ENOSPC; otherwise AHL_ENOSPC. */
int ahl_store_open_sqlite(const char *data_dir, unsigned max_readers, struct ahl_store **out);
/* Opens the SQLite database in data_dir for reading only, writing nothing at all, not even the
 * -shm file (`ahilite migrate` reads its source so): every write transaction fails at its first
 * write with AHL_ENOSPC. AHL_ENOTFOUND when there is no database, AHL_ECONFLICT when another
 * process has it open (a running server: the file is read as it is, so nothing may write to it
 * meanwhile) or when its WAL still holds writes (a server stopped without closing it: starting
 * and stopping a server once copies them in), AHL_EUNSUPPORTED when its schema is older than
 * this build's (a server upgrades it). */
int ahl_store_open_sqlite_read_only(const char *data_dir, unsigned max_readers,
                                    struct ahl_store **out);
/* The file the SQLite backend keeps in data_dir. */
#define AHL_STORE_SQLITE_FILE "ahilite.db"
/* Group commit bound of the SQLite backend: a batch of write transactions is committed once this
 * many have ended in it, even with writers waiting (see src/store/sqlite_conn.c). The default, and
 * the largest bound allowed. */
#define AHL_STORE_SQLITE_COMMIT_BATCH_MAX 64
/* Sets that bound to max, 1..AHL_STORE_SQLITE_COMMIT_BATCH_MAX (1: every write transaction
 * commits on its own, e.g. to measure without group commit). It may be called at any time and
 * applies from the next write transaction that ends. AHL_EINVAL for a bound out of range or
 * another backend. */
int ahl_store_sqlite_set_commit_batch_max(struct ahl_store *s, unsigned max);
/* Sets how long a committing write transaction of the SQLite backend waits at most for an
 * announced writer (see "Write intents" above), 0..60,000,000 microseconds; 0 never waits.
 * Default AHL_STORE_COMMIT_DELAY_US. AHL_EINVAL out of range or for another backend. */
int ahl_store_sqlite_set_commit_delay_us(struct ahl_store *s, unsigned us);
/* Group commit figures of the SQLite backend (see src/store/sqlite_conn.c): SQLite COMMITs of write
 * batches holding at least one committed write transaction, the write transactions committed
 * through them (write_txs / commits = mean batch size), threads now waiting to begin a write
 * transaction, and the WAL frames (database pages) those commits wrote. AHL_EINVAL for another
 * backend. */
struct ahl_store_sqlite_stats {
    uint64_t commits;
    uint64_t write_txs;
    unsigned write_waiting;
    uint64_t wal_frames; /* WAL frames (pages) the commits appended */
    bool delaying;       /* a committing transaction now waits for an announced writer */
};
int ahl_store_sqlite_stats(struct ahl_store *s, struct ahl_store_sqlite_stats *out);
/* SQLite's own consistency check of the whole database file (PRAGMA integrity_check, or
 * quick_check, which skips matching indexes against their tables), in a read transaction: every
 * b-tree page, free-list page and index entry. cb receives each problem SQLite reports, at most
 * 100 (e.g. "Tree 12 page 34 cell 2: invalid page number 4096", "row 7 missing from index
 * sqlite_autoindex_chunk_1"); *problems (may be NULL) counts them. 0 when the file is sound,
 * AHL_ECORRUPT when a problem was reported, AHL_EINVAL for another backend, AHL_EIO. Reads only. */
int ahl_store_sqlite_integrity_check(struct ahl_store *s, bool quick, ahl_store_plan_cb cb,
                                     void *ctx, unsigned *problems);
/* Closes any backend. NULL is accepted. Every transaction must have ended. */
void ahl_store_close(struct ahl_store *s);

/* ---- calls (thin wrappers over ops, documented here) -------------------------------------- */

/* Starts a transaction; write transactions are exclusive and may wait for another writer. */
int ahl_store_begin(struct ahl_store *s, bool write, struct ahl_store_tx **out);
/* Makes the writes durable (for SQLite: synchronous=NORMAL in WAL mode) and ends tx. On failure the
 * transaction is rolled back and ended too. */
int ahl_store_commit(struct ahl_store_tx *tx);
/* Discards the writes and ends tx. NULL is accepted. */
void ahl_store_rollback(struct ahl_store_tx *tx);

/* Data stores. put with create=true inserts (AHL_ECONFLICT if the id exists), otherwise updates
 * an existing row (AHL_ENOTFOUND). list: by id, optionally only one status, ids > after_id (NULL
 * or "" from the start), at most limit rows. delete removes the row (its tags are the caller's). */
int ahl_store_datastore_put(struct ahl_store_tx *tx, const struct ahl_datastore_rec *rec,
                            bool create);
int ahl_store_datastore_get(struct ahl_store_tx *tx, const char *id, struct ahl_datastore_rec *out);
int ahl_store_datastore_list(struct ahl_store_tx *tx, const char *status, const char *after_id,
                             unsigned limit, ahl_store_datastore_cb cb, void *ctx);
int ahl_store_datastore_delete(struct ahl_store_tx *tx, const char *id);
/* Image sets of the data store that are not DELETED. */
int ahl_store_datastore_count_imagesets(struct ahl_store_tx *tx, const char *id, uint64_t *out);

/* Tags of any resource ARN. put replaces the value of an existing key. list is ordered by key.
 * scan visits every tag of every ARN, ordered by ARN then key (`ahilite migrate` copies them
 * without knowing which ARNs exist). */
int ahl_store_tag_put(struct ahl_store_tx *tx, const char *arn, const char *key, const char *value);
int ahl_store_tag_delete(struct ahl_store_tx *tx, const char *arn, const char *key);
int ahl_store_tag_list(struct ahl_store_tx *tx, const char *arn, ahl_store_tag_cb cb, void *ctx);
int ahl_store_tag_delete_all(struct ahl_store_tx *tx, const char *arn);
int ahl_store_tag_scan(struct ahl_store_tx *tx, ahl_store_tag_scan_cb cb, void *ctx);

/* Image sets. put with create=true inserts, otherwise overwrites every column of the row.
 * advance is the compare-and-set every new version goes through: it overwrites the row only if
 * the stored latest_version equals expected_latest, else AHL_ECONFLICT and nothing changes.
 * get: datastore_id may be NULL to find the set in any data store; AHL_ENOTFOUND if the set is
 * missing or belongs to another data store. list: ordered by id. by_study: the sets of the data
 * store whose search row carries study_uid, not DELETED, optionally only primary ones. */
int ahl_store_imageset_put(struct ahl_store_tx *tx, const struct ahl_imageset_rec *rec,
                           bool create);
int ahl_store_imageset_advance(struct ahl_store_tx *tx, const struct ahl_imageset_rec *rec,
                               uint64_t expected_latest);
int ahl_store_imageset_get(struct ahl_store_tx *tx, const char *datastore_id, const char *id,
                           struct ahl_imageset_rec *out);
int ahl_store_imageset_list(struct ahl_store_tx *tx, const char *datastore_id, const char *after_id,
                            unsigned limit, ahl_store_imageset_cb cb, void *ctx);
int ahl_store_imageset_by_study(struct ahl_store_tx *tx, const char *datastore_id,
                                const char *study_uid, bool primary_only, ahl_store_imageset_cb cb,
                                void *ctx);
/* Records an access of set id at at_ms (docs/decisions.md#storage-tier-and-last-access): its
 * last_accessed_at, and its search row's, become at_ms where they are older; a later stored
 * value stays (several nodes record accesses of one set in any order). A missing or DELETED set
 * is no error: nothing is written. */
int ahl_store_imageset_touch(struct ahl_store_tx *tx, const char *id, int64_t at_ms);

/* Versions. put inserts (AHL_ECONFLICT if (imageset, version) exists); update overwrites state,
 * workflow status, message, forced and updated_at of an existing row. list: newest first,
 * versions < below (0: from the newest), at most limit. scan: every version of every set. */
int ahl_store_version_put(struct ahl_store_tx *tx, const struct ahl_version_rec *rec);
int ahl_store_version_update(struct ahl_store_tx *tx, const struct ahl_version_rec *rec);
int ahl_store_version_get(struct ahl_store_tx *tx, const char *imageset_id, uint64_t version,
                          struct ahl_version_rec *out);
int ahl_store_version_list(struct ahl_store_tx *tx, const char *imageset_id, uint64_t below,
                           unsigned limit, ahl_store_version_cb cb, void *ctx);
int ahl_store_version_scan(struct ahl_store_tx *tx, ahl_store_version_cb cb, void *ctx);

/* Chunks. put is INSERT OR IGNORE: a chunk with the same hash is the same chunk. get fills meta
 * (its data points into data, which receives the stored bytes). scan visits every chunk in hash
 * order (data valid during the callback only). stats: number of chunks and bytes stored. */
int ahl_store_chunk_put(struct ahl_store_tx *tx, const struct ahl_chunk *c);
int ahl_store_chunk_get(struct ahl_store_tx *tx, const uint8_t hash[AHL_SHA256_LEN],
                        struct ahl_chunk *meta, struct ahl_buf *data);
int ahl_store_chunk_scan(struct ahl_store_tx *tx, ahl_store_chunk_cb cb, void *ctx);
int ahl_store_chunk_stats(struct ahl_store_tx *tx, uint64_t *count, uint64_t *bytes);

/* Garbage collection (src/meta/gc.c, docs/architecture.md#garbage-collection).
 *   chunk_list   visits every chunk: hash, kind and len (the stored bytes' length); data is NULL.
 *   chunk_delete removes a chunk (0 also when it was absent).
 *   gc_roots     visits every version of every image set that exists and is not DELETED: the
 *                versions whose roots keep chunks alive.
 *   gc_versions  the versions of image sets that are DELETED or gone (DeleteImageSet keeps a
 *                tombstone row; its versions are garbage). limit 0 counts them (*versions, and
 *                the distinct sets in *sets) and deletes nothing; otherwise deletes at most limit
 *                of them, *versions receiving how many (*sets is then 0).
 *   compact      gives the space of deleted rows back: SQLite runs incremental_vacuum and a
 *                TRUNCATE checkpoint (full: VACUUM, which also converts a database made without
 *                auto_vacuum=INCREMENTAL); PostgreSQL runs VACUUM on the tables the collector
 *                empties (full: VACUUM FULL, which returns space to the operating system and
 *                locks the tables meanwhile). Outside any transaction. */
int ahl_store_chunk_list(struct ahl_store_tx *tx, ahl_store_chunk_cb cb, void *ctx);
int ahl_store_chunk_delete(struct ahl_store_tx *tx, const uint8_t hash[AHL_SHA256_LEN]);
int ahl_store_gc_roots(struct ahl_store_tx *tx, ahl_store_version_cb cb, void *ctx);
int ahl_store_gc_versions(struct ahl_store_tx *tx, unsigned limit, uint64_t *versions,
                          uint64_t *sets);
int ahl_store_compact(struct ahl_store *s, bool full);

/* The frame fence of a frame store in an S3 bucket (docs/architecture.md#garbage-collection): one
 * row, an epoch and a time until which a collector may be deleting objects.
 *   frame_fence_get   the epoch (0 at first) and that time (ms since 1970, wall clock).
 *   frame_fence_bump  epoch + 1, and the time raised to until_ms when that is later. */
int ahl_store_frame_fence_get(struct ahl_store_tx *tx, uint64_t *epoch, int64_t *until_ms);
int ahl_store_frame_fence_bump(struct ahl_store_tx *tx, int64_t until_ms);

/* The search index row of an image set (insert or replace; get; delete). */
int ahl_store_search_put(struct ahl_store_tx *tx, const struct ahl_search_row *row);
int ahl_store_search_get(struct ahl_store_tx *tx, const char *imageset_id,
                         struct ahl_search_row *out);
int ahl_store_search_delete(struct ahl_store_tx *tx, const char *imageset_id);

/* Runs a search: calls cb with each matching row of the data store in the query's order,
 * after q->after, at most q->limit rows. AHL_EINVAL for a query the interface does not allow (an
 * attribute with the wrong operator, more than two filters, a limit outside 1..1000). */
int ahl_store_search_query(struct ahl_store_tx *tx, const char *datastore_id,
                           const struct ahl_search_query *q, ahl_store_search_cb cb, void *ctx);
/* Describes how the backend answers q, one line per step (for SQLite: EXPLAIN QUERY PLAN, e.g.
 * "SEARCH search USING INDEX search_patient (datastore_id=? AND patient_id=?)"). For tests and
 * the bench. */
int ahl_store_search_plan(struct ahl_store_tx *tx, const char *datastore_id,
                          const struct ahl_search_query *q, ahl_store_plan_cb cb, void *ctx);
/* The sortable key of a DICOM StudyDate and StudyTime: "YYYYMMDD" + "HHMMSS" + "FFFFFF", missing
 * time parts as zeros (StudyTime "1015" is 10:15:00; no StudyTime is 00:00:00). ':' separators and
 * trailing spaces are accepted. AHL_EINVAL (out = "") if date is not 8 digits or time is not a
 * DICOM TM. */
int ahl_store_study_dt_key(const char *date, const char *time, char out[AHL_STUDY_DT_KEY_LEN + 1]);

/* The frame index (struct ahl_frame_rec). put is INSERT OR REPLACE. get: AHL_ENOTFOUND unless
 * the set has listed the frame. copy gives to_imageset_id every frame row of from_imageset_id
 * (a whole-set copy). delete_set removes every row of a set (DeleteImageSet). */
int ahl_store_frame_put(struct ahl_store_tx *tx, const struct ahl_frame_rec *rec);
int ahl_store_frame_get(struct ahl_store_tx *tx, const char *imageset_id, const char *frame_id,
                        struct ahl_frame_rec *out);
int ahl_store_frame_copy(struct ahl_store_tx *tx, const char *from_imageset_id,
                         const char *to_imageset_id);
int ahl_store_frame_delete_set(struct ahl_store_tx *tx, const char *imageset_id);
/* Every frame row of a set, ordered by frame id (`ahilite migrate` copies them as they are: a
 * whole-set copy's rows come from the source set, not from the copy's own versions). */
int ahl_store_frame_list(struct ahl_store_tx *tx, const char *imageset_id, ahl_store_frame_cb cb,
                         void *ctx);
/* Image sets stored before the frame index existed are queued, when the schema is upgraded, for
 * the engine to index: next gives one queued set (AHL_ENOTFOUND when none is left), done takes
 * it off the queue. */
int ahl_store_frame_backfill_next(struct ahl_store_tx *tx, char imageset_id[AHL_ID_LEN + 1]);
int ahl_store_frame_backfill_done(struct ahl_store_tx *tx, const char *imageset_id);

/* The QIDO-RS index (struct ahl_qido_set and the rows beside it). set_get: AHL_ENOTFOUND when the
 * set has no rows. set_put inserts or replaces the set row; set_delete removes the set's rows of
 * every kind. series_put inserts or updates a series row (its instance rows stay); series_delete
 * removes a series row and its instance rows; series_touch sets updated_at of every series row of
 * a set. instance_put inserts or replaces an instance row (its series row must exist:
 * AHL_ENOTFOUND otherwise); instance_delete removes one. study_refresh rebuilds the study row of
 * (datastore_id, study_uid) from the set and series rows (removing it when none is left); call it
 * after changing a study's rows, for every study changed. With attrs_only it only copies the
 * newest set's Patient and Study attributes and update time into the existing study row (and the
 * time into its modality rows): what a full rebuild gives when no series row of the study was
 * added, removed or changed, at a fraction of its cost; without a study row it rebuilds. */
int ahl_store_qido_set_get(struct ahl_store_tx *tx, const char *imageset_id,
                           struct ahl_qido_set *out);
int ahl_store_qido_set_put(struct ahl_store_tx *tx, const struct ahl_qido_set *rec);
int ahl_store_qido_set_delete(struct ahl_store_tx *tx, const char *imageset_id);
int ahl_store_qido_series_put(struct ahl_store_tx *tx, const struct ahl_qido_series *rec);
int ahl_store_qido_series_delete(struct ahl_store_tx *tx, const char *imageset_id,
                                 const char *series_uid);
int ahl_store_qido_series_touch(struct ahl_store_tx *tx, const char *imageset_id,
                                int64_t updated_at_ms);
int ahl_store_qido_instance_put(struct ahl_store_tx *tx, const struct ahl_qido_instance *rec);
int ahl_store_qido_instance_delete(struct ahl_store_tx *tx, const char *imageset_id,
                                   const char *series_uid, const char *sop_uid);
int ahl_store_qido_study_refresh(struct ahl_store_tx *tx, const char *datastore_id,
                                 const char *study_uid, bool attrs_only);
/* Runs a search of the data store: cb receives each row of the page (q->offset rows skipped, at
 * most q->limit), in the level's order. Every query is driven by an index over its most selective
 * filter (ahl_store_qido_plan shows which). AHL_EINVAL for a query the interface does not allow:
 * a key the level does not take, a match the key does not take (e.g. WILD on a UI or DA key), a
 * SINGLE on an IS or US key that is not an integer, more than AHL_QIDO_MAX_FILTERS filters, a
 * list longer than AHL_QIDO_MAX_LIST, a limit or offset out of range. */
int ahl_store_qido_query(struct ahl_store_tx *tx, const char *datastore_id,
                         const struct ahl_qido_query *q, ahl_store_qido_cb cb, void *ctx);
int ahl_store_qido_plan(struct ahl_store_tx *tx, const char *datastore_id,
                        const struct ahl_qido_query *q, ahl_store_plan_cb cb, void *ctx);
/* The levels whose queries take key: a bit (1 << level) per level. */
unsigned ahl_qido_key_levels(int key);
/* The primary image sets stored before the QIDO index existed wait, after the schema upgrade, for
 * the engine to index them: next gives one (AHL_ENOTFOUND when none is left), done dequeues it. */
int ahl_store_qido_backfill_next(struct ahl_store_tx *tx, char imageset_id[AHL_ID_LEN + 1]);
int ahl_store_qido_backfill_done(struct ahl_store_tx *tx, const char *imageset_id);

/* Import jobs. put with create=true inserts, otherwise overwrites (every column, the lease's too:
 * the runner changes a job only through the lease calls below). list: newest submission first,
 * optionally one status, ids after after_id in that order, at most limit. */
int ahl_store_job_put(struct ahl_store_tx *tx, const struct ahl_job_rec *rec, bool create);
int ahl_store_job_get(struct ahl_store_tx *tx, const char *datastore_id, const char *id,
                      struct ahl_job_rec *out);
int ahl_store_job_list(struct ahl_store_tx *tx, const char *datastore_id, const char *status,
                       const char *after_id, unsigned limit, ahl_store_job_cb cb, void *ctx);

/* Import-job leases. Several nodes (processes on one machine or many) may share one store; a job
 * is run by the node holding its lease, and a node that stops renewing it loses it to the next.
 * Each call runs in a write transaction; "now" is the database's clock (PostgreSQL's
 * clock_timestamp(), so the nodes' clocks need not agree; SQLite: this machine's).
 *   claim    takes for node the job submitted first among those SUBMITTED or IN_PROGRESS with
 *            lease_until_ms < now (their node stopped renewing: died, hung or cut off), in any
 *            data store, and makes it IN_PROGRESS with claimed_by = node, lease_until_ms = now +
 *            lease_ms and attempts + 1; out receives the row as written. AHL_ENOTFOUND when no
 *            job is claimable. On PostgreSQL the candidate is read with FOR UPDATE SKIP LOCKED.
 *   renew    extends node's lease of job id to now + lease_ms. AHL_ECONFLICT when node no longer
 *            holds it (it expired and another node claimed the job, or the job is gone or
 *            ended): node must stop writing anything of that job.
 *   release  ends node's hold of rec->id, writing rec's status, message and ended_at_ms and
 *            clearing claimed_by and lease_until_ms, only if node still holds it (AHL_ECONFLICT
 *            otherwise, nothing written). COMPLETED and FAILED end the job; SUBMITTED hands it
 *            back (a node stopping before the job is done) without counting the attempt. */
int ahl_store_job_claim(struct ahl_store_tx *tx, const char *node, uint32_t lease_ms,
                        struct ahl_job_rec *out);
int ahl_store_job_renew(struct ahl_store_tx *tx, const char *id, const char *node,
                        uint32_t lease_ms);
int ahl_store_job_release(struct ahl_store_tx *tx, const struct ahl_job_rec *rec, const char *node);

/* Tombstones (docs/decisions.md#tombstones). Removes at most limit image-set rows that are
 * DELETED with deleted_at_ms <= before_ms (oldest first), with any version and frame rows left of
 * them, then every data-store row that is DELETED with updated_at_ms (its deletion time) <=
 * before_ms and holds no image-set row any more, with its import jobs. *imagesets and
 * *datastores (may be NULL) receive the numbers of rows removed. Call it until *imagesets is
 * below limit to remove everything due. */
int ahl_store_tombstones_expire(struct ahl_store_tx *tx, int64_t before_ms, unsigned limit,
                                uint64_t *imagesets, uint64_t *datastores);

/* The event outbox (docs/events.md). Events are written only while the outbox is enabled (a
 * server with an event sink enables it before it serves anything; off, put writes nothing and
 * costs nothing). Each call runs inside the caller's transaction.
 *   put     appends rec (its seq is ignored) in the caller's write transaction, so that the event
 *           exists exactly when the change it describes does; 0 without writing when disabled.
 *   list    the events with seq > after_seq in seq order, at most limit.
 *   delete  removes the events with seq <= upto_seq (delivered).
 *   trim    removes the oldest events while more than keep remain (seq more than keep below the
 *           newest); *dropped (may be NULL) receives how many.
 *   lease   takes or renews for node the one dispatcher lease, until now + lease_ms (the
 *           database's clock, as for job leases): 0 when node holds it, AHL_ECONFLICT when another
 *           node holds an unexpired lease. A write transaction. */
void ahl_store_outbox_enable(struct ahl_store *s, bool on);
bool ahl_store_outbox_on(const struct ahl_store *s);
int ahl_store_event_put(struct ahl_store_tx *tx, const struct ahl_event_rec *rec);
int ahl_store_event_list(struct ahl_store_tx *tx, uint64_t after_seq, unsigned limit,
                         ahl_store_event_cb cb, void *ctx);
int ahl_store_event_delete(struct ahl_store_tx *tx, uint64_t upto_seq);
int ahl_store_event_trim(struct ahl_store_tx *tx, uint64_t keep, uint64_t *dropped);
int ahl_store_event_lease(struct ahl_store_tx *tx, const char *node, uint32_t lease_ms);

/* A job's options: the request's optional members the job runs with (importConfiguration,
 * inputOwnerAccountId), one JSON object as text, "" for none; kept beside the job's row because
 * they may be larger than a row's fixed fields (1,000 metadata mappings). put sets them on job id
 * (AHL_ENOTFOUND when there is no such job); get returns them in *out (a malloc'd string the
 * caller frees, "" when none were set). */
int ahl_store_job_options_put(struct ahl_store_tx *tx, const char *id, const char *options);
int ahl_store_job_options_get(struct ahl_store_tx *tx, const char *id, char **out);

#endif /* AHL_STORE_STORE_H */
